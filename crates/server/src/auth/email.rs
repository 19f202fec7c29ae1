//! Email addresses: parsed once at the edge, trusted afterwards.

use std::fmt;

/// A syntactically valid address with its domain lowercased (IDNA to punycode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress {
    address: String,
}

/// Why an address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid email address")]
pub struct InvalidEmail;

impl EmailAddress {
    /// Parse an address as typed by a person.
    pub fn parse(input: &str) -> Result<Self, InvalidEmail> {
        if input.is_empty() || input.len() > 254 {
            return Err(InvalidEmail);
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidEmail);
        }
        let (local, domain) = input.split_once('@').ok_or(InvalidEmail)?;
        if local.is_empty() || local.len() > 64 || domain.contains('@') {
            return Err(InvalidEmail);
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(InvalidEmail);
        }
        if local.chars().any(|c| "<>()[]\\,;:\"".contains(c)) {
            return Err(InvalidEmail);
        }
        let domain = idna::domain_to_ascii(domain).map_err(|_| InvalidEmail)?;
        let labels_ok = !domain.is_empty()
            && domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !labels_ok {
            return Err(InvalidEmail);
        }
        let address = format!("{local}@{domain}");
        if address.len() > 254 {
            return Err(InvalidEmail);
        }
        Ok(Self { address })
    }

    /// The address to store and to send mail to.
    pub fn as_str(&self) -> &str {
        &self.address
    }

    /// The case-blind key that makes addresses unique.
    pub fn key(&self) -> String {
        self.address.to_lowercase()
    }

    /// The part before the `@`.
    pub fn local_part(&self) -> &str {
        self.address.split('@').next().unwrap_or_default()
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_addresses_are_kept_with_a_lowercased_domain() {
        let cases = [
            ("ada@example.com", "ada@example.com"),
            ("Ada+test@Example.COM", "Ada+test@example.com"),
            ("a.b-c_d@sub.example.co.uk", "a.b-c_d@sub.example.co.uk"),
            ("ada@bücher.de", "ada@xn--bcher-kva.de"),
        ];
        for (input, stored) in cases {
            assert_eq!(
                EmailAddress::parse(input).unwrap().as_str(),
                stored,
                "{input}"
            );
        }
    }

    #[test]
    fn invalid_addresses_are_refused() {
        let long = format!("{}@example.com", "a".repeat(250));
        let cases = [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@@example.com",
            "a@b@example.com",
            "ada @example.com",
            "ada@exa mple.com",
            "ada@example",
            "ada@-example.com",
            "ada\n@example.com",
            ".ada@example.com",
            "a..da@example.com",
            "ada@example..com",
            long.as_str(),
        ];
        for input in cases {
            assert_eq!(EmailAddress::parse(input), Err(InvalidEmail), "{input:?}");
        }
    }

    #[test]
    fn keys_compare_case_blind() {
        let a = EmailAddress::parse("ADA@example.com").unwrap();
        let b = EmailAddress::parse("ada@EXAMPLE.com").unwrap();
        assert_eq!(a.key(), b.key());
    }
}
