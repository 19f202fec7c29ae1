//! User agents, parsed with the uap-core regexes into the shape the protocol shows.

use std::sync::OnceLock;

use serde_json::{Value, json};
use ua_parser::{Extractor, Regexes};

/// uap-core's `regexes.yaml`, converted to JSON (see `assets/README.md`).
const REGEXES: &str = include_str!("../../assets/uap-regexes.json");

/// Compiled on first use (~0.2 s, ~25 MiB): an idle server that nobody signs in to stays small.
static PARSER: OnceLock<Option<Extractor<'static>>> = OnceLock::new();

fn parser() -> Option<&'static Extractor<'static>> {
    PARSER
        .get_or_init(|| {
            let parsed = serde_json::from_str::<Regexes<'static>>(REGEXES)
                .map_err(|err| err.to_string())
                .and_then(|regexes| Extractor::try_from(regexes).map_err(|err| err.to_string()));
            if let Err(err) = &parsed {
                tracing::error!(error = %err, "user agent regexes failed to load");
            }
            parsed.ok()
        })
        .as_ref()
}

/// A family or version part as a non-empty string, `missing` otherwise.
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
    let ua = parser.ua.extract(header);
    let os = parser.os.extract(header);
    let device = parser.dev.extract(header);
    json!({
        "family": part(ua.as_ref().map(|ua| &*ua.family), "Other"),
        "major": part(ua.as_ref().and_then(|ua| ua.major), "0"),
        "minor": part(ua.as_ref().and_then(|ua| ua.minor), "0"),
        "patch": part(ua.as_ref().and_then(|ua| ua.patch), "0"),
        "device": {
            "family": part(device.as_ref().map(|d| &*d.device), "Other"),
            "major": "0",
            "minor": "0",
            "patch": "0",
        },
        "os": {
            "family": part(os.as_ref().map(|os| &*os.os), "Other"),
            "major": part(os.as_ref().and_then(|os| os.major.as_deref()), "0"),
            "minor": part(os.as_ref().and_then(|os| os.minor.as_deref()), "0"),
            "patch": part(os.as_ref().and_then(|os| os.patch.as_deref()), "0"),
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
        assert_eq!(parsed["os"]["major"], "17");
        assert_eq!(parsed["os"]["minor"], "3");
    }

    #[test]
    fn an_android_phone_is_named_by_brand_and_model() {
        let ua = "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/112.0.0.0 Mobile Safari/537.36";
        let parsed = parse_user_agent(Some(ua));
        assert_eq!(parsed["family"], "Chrome Mobile");
        assert_eq!(parsed["major"], "112");
        assert_eq!(parsed["device"]["family"], "Samsung SM-S911B");
        assert_eq!(parsed["os"]["family"], "Android");
    }

    #[test]
    fn a_desktop_browser_on_linux_has_no_device() {
        let ua = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
        let parsed = parse_user_agent(Some(ua));
        assert_eq!(parsed["family"], "Firefox");
        assert_eq!(parsed["major"], "121");
        assert_eq!(parsed["device"]["family"], "Other");
        assert_eq!(parsed["os"]["family"], "Linux");
    }

    #[test]
    fn missing_agents_have_string_leaves() {
        let parsed = parse_user_agent(None);
        assert_eq!(parsed["family"], "Other");
        assert_eq!(parsed["os"]["major"], "0");
        assert_eq!(parsed["device"]["patch"], "0");
    }
}
