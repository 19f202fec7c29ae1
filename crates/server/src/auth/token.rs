//! Secrets and identifiers: 32 random bytes as base64url, stored only as SHA-256.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::store::Millis;

/// A freshly minted bearer secret: hand `secret` out once, store `hash`.
#[derive(Debug, Clone)]
pub struct Secret {
    /// URL-safe text given to the user.
    pub secret: String,
    /// SHA-256 of it, hex; what the database keeps.
    pub hash: String,
}

/// Mint a new secret from the OS CSPRNG.
pub fn new_secret() -> Secret {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_secret(&secret);
    Secret { secret, hash }
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A 24-hex id in the MongoDB ObjectId style: 4 bytes of seconds, 8 random bytes.
pub fn new_id(now: Millis) -> String {
    let seconds = u32::try_from(now / 1000).unwrap_or(u32::MAX);
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&seconds.to_be_bytes());
    rand::rng().fill_bytes(&mut bytes[4..]);
    hex::encode(bytes)
}

/// The `ref_` handle that names another session in the sessions list.
pub fn session_handle(session_id: &str) -> String {
    format!("ref_{}", URL_SAFE_NO_PAD.encode(session_id.as_bytes()))
}

/// The session id behind a `ref_` handle.
pub fn parse_session_handle(handle: &str) -> Option<String> {
    let encoded = handle.strip_prefix("ref_")?;
    let bytes = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_url_safe_and_distinct() {
        let a = new_secret();
        let b = new_secret();
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.secret.len(), 43);
        assert!(
            a.secret
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(a.hash, hash_secret(&a.secret));
        assert_eq!(a.hash.len(), 64);
    }

    #[test]
    fn ids_are_24_hex() {
        let id = new_id(1_700_000_000_000);
        assert_eq!(id.len(), 24);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert!(id.starts_with("6553f100"));
    }

    #[test]
    fn handles_round_trip() {
        let handle = session_handle("6553f100aabbccddeeff0011");
        assert!(handle.starts_with("ref_"));
        assert_eq!(
            parse_session_handle(&handle).unwrap(),
            "6553f100aabbccddeeff0011"
        );
        assert_eq!(parse_session_handle("nope"), None);
    }
}
