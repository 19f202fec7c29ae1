//! User agents, parsed with the uap-core regexes into the shape the protocol shows.

use std::sync::OnceLock;

use serde_json::{Value, json};
use uaparser::{Parser, UserAgentParser};

/// Compiled on first use (~0.2 s, ~30 MiB): an idle server that nobody signs in to stays small.
static PARSER: OnceLock<Option<UserAgentParser>> = OnceLock::new();

fn parser() -> Option<&'static UserAgentParser> {
    PARSER
        .get_or_init(|| {
            // Without Unicode classes the compiled regexes take a few MiB instead of ~130.
            let parsed = UserAgentParser::builder()
                .with_unicode_support(false)
                .build_from_bytes(include_bytes!("../../assets/uap-regexes.yaml"));
            if let Err(err) = &parsed {
                tracing::error!(error = %err, "user agent regexes failed to load");
            }
            parsed.ok()
        })
        .as_ref()
}

fn part(value: Option<&str>, missing: &str) -> String {
    value
        .filter(|v| !v.is_empty())
        .unwrap_or(missing)
        .to_string()
}

/// `{family, major, minor, patch, device{…}, os{…}}`, every leaf a string.
pub fn parse_user_agent(header: Option<&str>) -> Value {
    let header = header.unwrap_or_default();
    let Some(parser) = parser() else {
        return unknown();
    };
    let client = parser.parse(header);
    let ua = client.user_agent;
    let os = client.os;
    let device = client.device;
    json!({
        "family": part(Some(&ua.family), "Other"),
        "major": part(ua.major.as_deref(), "0"),
        "minor": part(ua.minor.as_deref(), "0"),
        "patch": part(ua.patch.as_deref(), "0"),
        "device": {
            "family": part(Some(&device.family), "Other"),
            "major": "0",
            "minor": "0",
            "patch": "0",
        },
        "os": {
            "family": part(Some(&os.family), "Other"),
            "major": part(os.major.as_deref(), "0"),
            "minor": part(os.minor.as_deref(), "0"),
            "patch": part(os.patch.as_deref(), "0"),
        },
    })
}

fn unknown() -> Value {
    let zero = json!({"family": "Other", "major": "0", "minor": "0", "patch": "0"});
    let mut value = zero.clone();
    value["device"] = zero.clone();
    value["os"] = zero;
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chrome_on_a_mac() {
        let ua = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.6261.94 Safari/537.36";
        let parsed = parse_user_agent(Some(ua));
        assert_eq!(parsed["family"], "Chrome");
        assert_eq!(parsed["major"], "122");
        assert_eq!(parsed["os"]["family"], "Mac OS X");
        assert_eq!(parsed["device"]["family"], "Mac");
    }

    #[test]
    fn an_iphone_is_a_device() {
        let ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3 Mobile/15E148 Safari/604.1";
        let parsed = parse_user_agent(Some(ua));
        assert_eq!(parsed["device"]["family"], "iPhone");
        assert_eq!(parsed["os"]["family"], "iOS");
    }

    #[test]
    fn missing_agents_have_string_leaves() {
        let parsed = parse_user_agent(None);
        assert_eq!(parsed["family"], "Other");
        assert_eq!(parsed["os"]["major"], "0");
        assert_eq!(parsed["device"]["patch"], "0");
    }
}
