//! The wire shapes of users and sessions (protocol.md §2.1–§2.2).

use serde_json::{Map, Value, json};

use crate::auth::{Grant, IssuedSession};
use crate::clock::iso;
use crate::store::UserRecord;

/// Fields the server owns; profile data can never shadow them.
const OWNED: &[&str] = &[
    "_id",
    "provider",
    "providerUserId",
    "email",
    "emailVerified",
    "password",
    "signUpAt",
    "lastLoginAt",
    "createdAt",
    "updatedAt",
];

/// A User object: system fields, then profile fields; never a password.
pub fn user_json(user: &UserRecord) -> Value {
    let mut map = Map::new();
    map.insert("_id".into(), json!(user.id));
    map.insert("provider".into(), json!(user.provider));
    map.insert("providerUserId".into(), json!(user.provider_user_id));
    map.insert("email".into(), json!(user.email));
    map.insert("emailVerified".into(), json!(user.email_verified));
    for (key, value) in &user.data {
        if !OWNED.contains(&key.as_str()) {
            map.insert(key.clone(), value.clone());
        }
    }
    map.insert("signUpAt".into(), json!(iso(user.sign_up_at)));
    map.insert("lastLoginAt".into(), json!(iso(user.last_login_at)));
    map.insert("createdAt".into(), json!(iso(user.created_at)));
    map.insert("updatedAt".into(), json!(iso(user.updated_at)));
    Value::Object(map)
}

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
