//! The wire shapes of users and sessions (protocol.md §2.1–§2.2).

use serde_json::{Value, json};

use crate::auth::{Grant, IssuedSession};
use crate::clock::iso;

pub use crate::profile::user_json;

/// A Session object.
pub fn session_json(session: &IssuedSession) -> Value {
    json!({
        "userId": session.record.user_id,
        "token": session.token,
        "creationDtm": iso(session.record.created_at),
        "accessGroupKeys": [],
        "userAgent": session.record.user_agent,
    })
}

/// `{user, session}`, `session` possibly `null`.
pub fn grant_json(grant: &Grant) -> Value {
    json!({
        "user": user_json(&grant.user),
        "session": grant.session.as_ref().map(session_json),
    })
}
