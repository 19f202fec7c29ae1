//! Profile data: the `users` model of the database API over the same record the auth API
//! returns (protocol.md §5.3, §10). A signed-in user reads and updates only their own object;
//! others see the configured public fields.

use std::sync::Arc;

use serde_json::{Map, Value};

use serde_json::json;

use crate::clock::{SharedClock, iso};
use crate::records::{MAX_DEPTH, depth};
use crate::store::{Store, StoreError, UserRecord};

/// Fields the database API can never write on `users`.
const SYSTEM_FIELDS: &[&str] = &[
    "_id",
    "_parent",
    "password",
    "email",
    "emailVerified",
    "phone",
    "phoneVerified",
    "provider",
    "providerUserId",
    "signUpAt",
    "lastLoginAt",
    "createdAt",
    "updatedAt",
];

/// Outcomes of profile operations a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// Only the account itself may do this.
    #[error("not allowed")]
    NotAllowed,
    /// No such object.
    #[error("object not found")]
    NotFound,
    /// A field may not be written (named).
    #[error("{0} cannot be changed through the database API")]
    SystemField(String),
    /// A value nests too deeply.
    #[error("{0} nests deeper than {MAX_DEPTH} levels")]
    TooDeep(String),
    /// The database cancelled a statement that ran past `database.statement_timeout_ms`.
    #[error("The database took too long to answer.")]
    TimedOut,
    /// Storage failed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

impl From<StoreError> for ProfileError {
    fn from(err: StoreError) -> Self {
        if matches!(err, StoreError::TimedOut) {
            return Self::TimedOut;
        }
        Self::Unavailable(format!("{err}: {:?}", std::error::Error::source(&err)))
    }
}

/// What a read returns: the whole record for its owner, public fields for others.
#[derive(Debug, Clone)]
pub enum UserView {
    /// The caller's own account.
    Own(UserRecord),
    /// Someone else's account: `_id` and the public fields.
    Public(Map<String, Value>),
}

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

impl UserView {
    /// As the database API answers it.
    pub fn into_json(self) -> Value {
        match self {
            Self::Own(user) => user_json(&user),
            Self::Public(fields) => Value::Object(fields),
        }
    }
}

/// The profile rules.
pub struct ProfileService {
    store: Arc<dyn Store>,
    clock: SharedClock,
    public_fields: Vec<String>,
}

impl ProfileService {
    /// A service exposing `public_fields` of other users.
    pub fn new(store: Arc<dyn Store>, clock: SharedClock, public_fields: Vec<String>) -> Self {
        Self {
            store,
            clock,
            public_fields,
        }
    }

    /// `users` object `id` as the caller may see it; `None` when it does not exist.
    pub async fn get(
        &self,
        caller: Option<&str>,
        id: &str,
    ) -> Result<Option<UserView>, ProfileError> {
        let Some(user) = self.store.user_by_id(id).await? else {
            return Ok(None);
        };
        Ok(Some(self.view(caller, user)))
    }

    /// A user as `caller` sees it.
    pub fn view(&self, caller: Option<&str>, user: UserRecord) -> UserView {
        if caller == Some(user.id.as_str()) {
            return UserView::Own(user);
        }
        let mut view = Map::new();
        view.insert("_id".into(), Value::String(user.id.clone()));
        for field in &self.public_fields {
            if let Some(value) = user.data.get(field) {
                view.insert(field.clone(), value.clone());
            }
        }
        UserView::Public(view)
    }

    /// The profile fields everyone may read.
    pub fn public_fields(&self) -> &[String] {
        &self.public_fields
    }

    /// Merge `values` into the caller's own `users` object; returns it whole.
    pub async fn update(
        &self,
        caller: &str,
        id: &str,
        values: Map<String, Value>,
    ) -> Result<UserRecord, ProfileError> {
        if caller != id {
            return Err(ProfileError::NotAllowed);
        }
        for (key, value) in &values {
            if SYSTEM_FIELDS.contains(&key.as_str()) || key.starts_with('_') {
                return Err(ProfileError::SystemField(key.clone()));
            }
            if depth(value) > MAX_DEPTH {
                return Err(ProfileError::TooDeep(key.clone()));
            }
        }
        self.store
            .update_user_data(id, values, self.clock.now())
            .await?
            .ok_or(ProfileError::NotFound)
    }

    /// Delete the caller's own account (its sessions and tokens go with it).
    pub async fn delete(&self, caller: &str, id: &str) -> Result<(), ProfileError> {
        if caller != id {
            return Err(ProfileError::NotAllowed);
        }
        if self.store.delete_user(id).await? {
            Ok(())
        } else {
            Err(ProfileError::NotFound)
        }
    }
}
