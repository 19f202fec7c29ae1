//! Message templates: built in, overridable from files; values are escaped in HTML.

use std::path::Path;

/// The messages Basalt sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// Sign-up confirmation link.
    Confirm,
    /// Magic sign-in link.
    MagicLink,
    /// Password reset link.
    ResetPassword,
    /// Confirmation of a new address.
    ChangeEmail,
    /// Notice to an owner that someone tried to sign up with their address.
    SignupAttempt,
}

impl Template {
    const ALL: [Template; 5] = [
        Self::Confirm,
        Self::MagicLink,
        Self::ResetPassword,
        Self::ChangeEmail,
        Self::SignupAttempt,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Confirm => "confirm",
            Self::MagicLink => "magic_link",
            Self::ResetPassword => "reset_password",
            Self::ChangeEmail => "change_email",
            Self::SignupAttempt => "signup_attempt",
        }
    }

    fn builtin(self) -> [&'static str; 3] {
        macro_rules! files {
            ($name:literal) => {
                [
                    include_str!(concat!("templates/", $name, ".subject.txt")),
                    include_str!(concat!("templates/", $name, ".txt")),
                    include_str!(concat!("templates/", $name, ".html")),
                ]
            };
        }
        match self {
            Self::Confirm => files!("confirm"),
            Self::MagicLink => files!("magic_link"),
            Self::ResetPassword => files!("reset_password"),
            Self::ChangeEmail => files!("change_email"),
            Self::SignupAttempt => files!("signup_attempt"),
        }
    }
}

/// Values a template may use as `{{name}}`.
#[derive(Debug, Clone)]
pub struct Vars<'a> {
    /// `{{app_name}}`.
    pub app_name: &'a str,
    /// `{{email}}`: the recipient.
    pub email: &'a str,
    /// `{{link}}`: the action link (empty for notices).
    pub link: &'a str,
    /// `{{valid_for}}`: the link's lifetime in words.
    pub valid_for: &'a str,
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Subject line, one line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

#[derive(Debug, Clone)]
struct Source {
    subject: String,
    text: String,
    html: String,
}

/// The loaded templates.
#[derive(Debug, Clone)]
pub struct Templates {
    sources: Vec<(Template, Source)>,
}

impl Templates {
    /// Built-in templates, each part replaced by `DIR/NAME.subject.txt`, `NAME.txt`, `NAME.html`
    /// where such a file exists.
    pub fn load(dir: Option<&Path>) -> std::io::Result<Self> {
        let mut sources = Vec::new();
        for template in Template::ALL {
            let [subject, text, html] = template.builtin();
            let read = |suffix: &str, builtin: &str| -> std::io::Result<String> {
                match dir {
                    Some(dir) => {
                        let path = dir.join(format!("{}.{suffix}", template.name()));
                        if path.exists() {
                            std::fs::read_to_string(path)
                        } else {
                            Ok(builtin.to_string())
                        }
                    }
                    None => Ok(builtin.to_string()),
                }
            };
            sources.push((
                template,
                Source {
                    subject: read("subject.txt", subject)?,
                    text: read("txt", text)?,
                    html: read("html", html)?,
                },
            ));
        }
        Ok(Self { sources })
    }

    /// Render a template.
    pub fn render(&self, template: Template, vars: &Vars<'_>) -> Rendered {
        let source = self
            .sources
            .iter()
            .find(|(t, _)| *t == template)
            .map(|(_, s)| s);
        let Some(source) = source else {
            return Rendered {
                subject: String::new(),
                text: String::new(),
                html: String::new(),
            };
        };
        let subject = fill(&source.subject, vars, |s| s.to_string());
        // A subject is one header line: no CR or LF from anywhere.
        let subject = subject
            .split(['\r', '\n'])
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        Rendered {
            subject,
            text: fill(&source.text, vars, |s| s.to_string()),
            html: fill(&source.html, vars, escape_html),
        }
    }
}

fn fill(source: &str, vars: &Vars<'_>, escape: impl Fn(&str) -> String) -> String {
    source
        .replace("{{app_name}}", &escape(vars.app_name))
        .replace("{{email}}", &escape(vars.email))
        .replace("{{valid_for}}", &escape(vars.valid_for))
        .replace("{{link}}", &escape(vars.link))
}

/// Escape text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// A lifetime in words: `24 hours`, `15 minutes`.
pub fn describe_secs(secs: u64) -> String {
    let plural = |n: u64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    if secs.is_multiple_of(3600) && secs >= 3600 {
        plural(secs / 3600, "hour")
    } else if secs.is_multiple_of(60) && secs >= 60 {
        plural(secs / 60, "minute")
    } else {
        plural(secs, "second")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(app: &'a str) -> Vars<'a> {
        Vars {
            app_name: app,
            email: "ada@example.com",
            link: "http://127.0.0.1:8090/_auth/email/confirm?token=abc",
            valid_for: "24 hours",
        }
    }

    #[test]
    fn confirm_has_the_link_in_both_bodies() {
        let t = Templates::load(None).unwrap();
        let r = t.render(Template::Confirm, &vars("Acme"));
        assert_eq!(r.subject, "Confirm your email for Acme");
        assert!(
            r.text
                .contains("http://127.0.0.1:8090/_auth/email/confirm?token=abc")
        );
        assert!(
            r.html
                .contains("href=\"http://127.0.0.1:8090/_auth/email/confirm?token=abc\"")
        );
        assert!(r.text.contains("24 hours"));
    }

    #[test]
    fn values_are_escaped_in_html_and_subjects_stay_one_line() {
        let t = Templates::load(None).unwrap();
        let r = t.render(Template::MagicLink, &vars("<b>Evil</b>\r\nBcc: x@y.z"));
        assert!(r.html.contains("&lt;b&gt;Evil&lt;/b&gt;"));
        assert!(!r.html.contains("<b>Evil"));
        assert!(!r.subject.contains('\n') && !r.subject.contains('\r'));
    }

    #[test]
    fn files_override_the_builtin_parts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("confirm.subject.txt"),
            "Hi from {{app_name}}",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let r = t.render(Template::Confirm, &vars("Acme"));
        assert_eq!(r.subject, "Hi from Acme");
        assert!(r.text.contains("Welcome to Acme"));
    }

    #[test]
    fn lifetimes_in_words() {
        assert_eq!(describe_secs(86_400), "24 hours");
        assert_eq!(describe_secs(900), "15 minutes");
        assert_eq!(describe_secs(3600), "1 hour");
        assert_eq!(describe_secs(90), "90 seconds");
    }
}
