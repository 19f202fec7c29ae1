//! Records: objects of the models declared in the configuration, with their access rules,
//! field types, required fields, defaults and unique fields (protocol.md §5.3).

mod compute;
mod lookup;
mod query;
mod update;
mod users;

pub use compute::Computation;
pub use lookup::LookupSpec;
pub use query::{CountInfo, DEFAULT_LIMIT, MAX_LIMIT, MAX_LOOKUP_SCAN, QuerySpec, SortKey};
pub use update::{FieldUpdate, apply_update};

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::auth::token::new_id;
use crate::clock::{SharedClock, iso};
use crate::config::{Access, FieldType, ModelConfig};
use crate::profile::ProfileService;
use crate::store::{ObjectRecord, ObjectWrite, Store, StoreError};

/// Deepest nesting of a stored value.
pub const MAX_DEPTH: usize = 16;
/// Attempts of an update that raced with another.
const RETRIES: usize = 5;

/// Outcomes of record operations a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The model is not declared.
    #[error("There is no model named '{0}'.")]
    ModelNotFound(String),
    /// No such object, or one the caller may not see.
    #[error("There is no such object.")]
    NotFound,
    /// The caller may see the object but not write it.
    #[error("You may not change this object.")]
    NotAllowed,
    /// The model's rule needs a signed-in user.
    #[error("This call needs a session: sign in first.")]
    MissingSession,
    /// A field is invalid.
    #[error("{message}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A unique field's value is taken.
    #[error("Another object already has this {0}.")]
    NotUnique(String),
    /// A filter or sort could not be used.
    #[error("{0}")]
    Expression(crate::expr::ExprError),
    /// A filter on looked-up fields would read more than this many objects.
    #[error(
        "The query reads more than {0} objects to filter on looked-up fields; add conditions on the model's own fields."
    )]
    TooBroad(u64),
    /// The database cancelled a statement that ran past `database.statement_timeout_ms`.
    #[error("The database took too long to answer.")]
    TimedOut,
    /// Storage failed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

impl From<StoreError> for RecordError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict { constraint } => Self::NotUnique(constraint),
            StoreError::TimedOut => Self::TimedOut,
            other => Self::Unavailable(format!("{other}: {:?}", std::error::Error::source(&other))),
        }
    }
}

fn invalid(field: &str, message: impl Into<String>) -> RecordError {
    RecordError::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Nesting depth of a JSON value.
pub fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Whether a value has a declared type (`null` never does).
pub fn matches_type(kind: FieldType, value: &Value) -> bool {
    match kind {
        FieldType::String => value.is_string(),
        FieldType::Number => value.is_number(),
        FieldType::Integer => value.is_i64() || value.is_u64(),
        FieldType::Boolean => value.is_boolean(),
        FieldType::Object => value.is_object(),
        FieldType::Array => value.is_array(),
        FieldType::Date => value
            .as_str()
            .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
    }
}

/// The rules of the declared models.
pub struct RecordService {
    store: Arc<dyn Store>,
    clock: SharedClock,
    models: HashMap<String, ModelConfig>,
    /// `users`, for lookups of user ids.
    profile: Arc<ProfileService>,
}

impl RecordService {
    /// A service for the declared models.
    pub fn new(
        store: Arc<dyn Store>,
        clock: SharedClock,
        models: &[ModelConfig],
        profile: Arc<ProfileService>,
    ) -> Self {
        Self {
            store,
            clock,
            models: models.iter().map(|m| (m.name.clone(), m.clone())).collect(),
            profile,
        }
    }

    fn model(&self, name: &str) -> Result<&ModelConfig, RecordError> {
        self.models
            .get(name)
            .ok_or_else(|| RecordError::ModelNotFound(name.to_string()))
    }

    /// Create one object or, for an array, several, all or none. Returns them as stored.
    pub async fn create(
        &self,
        caller: Option<&str>,
        model: &str,
        values: Vec<Map<String, Value>>,
    ) -> Result<Vec<Value>, RecordError> {
        let config = self.model(model)?;
        if config.access != Access::Open && caller.is_none() {
            return Err(RecordError::MissingSession);
        }
        let now = self.clock.now();
        let mut writes = Vec::with_capacity(values.len());
        for mut data in values {
            // An id given by the app is ignored (protocol.md §5.3).
            data.remove("_id");
            check_values(&data)?;
            for (field, declared) in &config.fields {
                if let Some(default) = &declared.default
                    && data.get(field).is_none_or(Value::is_null)
                {
                    data.insert(field.clone(), default.clone());
                }
            }
            check_fields(config, &data)?;
            let record = ObjectRecord {
                id: new_id(now),
                model: model.to_string(),
                owner_id: caller.map(String::from),
                data,
                version: 1,
                created_at: now,
                updated_at: now,
            };
            writes.push(ObjectWrite {
                unique: unique_values(config, &record.data),
                record,
            });
        }
        let views = writes.iter().map(|w| object_json(&w.record)).collect();
        self.store.insert_objects(writes).await?;
        Ok(views)
    }

    /// An object the caller may read, or `None`.
    pub async fn get(
        &self,
        caller: Option<&str>,
        model: &str,
        id: &str,
        lookups: Option<&[LookupSpec]>,
    ) -> Result<Option<Value>, RecordError> {
        let config = self.model(model)?;
        let lookups = self.lookups(lookups)?;
        let found = self.store.object(model, id).await?;
        let Some(record) = found.filter(|record| can_read(config.access, caller, record)) else {
            return Ok(None);
        };
        let mut objects = [object_json(&record)];
        self.apply_lookups(caller, &lookups, &mut objects).await?;
        let [object] = objects;
        Ok(Some(object))
    }

    /// Merge top-level `values` into an object; returns it whole.
    pub async fn update(
        &self,
        caller: Option<&str>,
        model: &str,
        id: &str,
        values: Map<String, Value>,
    ) -> Result<Value, RecordError> {
        check_values(&values)?;
        self.modify(caller, model, id, move |data| {
            data.extend(values.clone());
            Ok(())
        })
        .await
    }

    /// Apply field instructions (`set`, `increment`, `push`, …) to an object; returns it whole.
    pub async fn update_fields(
        &self,
        caller: Option<&str>,
        model: &str,
        id: &str,
        updates: Vec<FieldUpdate>,
    ) -> Result<Value, RecordError> {
        for update in &updates {
            let top = update.field.split('.').next().unwrap_or_default();
            if is_system(top) {
                return Err(invalid(
                    &update.field,
                    format!("{} is managed by the server.", update.field),
                ));
            }
        }
        self.modify(caller, model, id, move |data| {
            for update in &updates {
                apply_update(data, update).map_err(|message| invalid(&update.field, message))?;
            }
            Ok(())
        })
        .await
    }

    /// Delete an object the caller may write.
    pub async fn delete(
        &self,
        caller: Option<&str>,
        model: &str,
        id: &str,
    ) -> Result<(), RecordError> {
        let config = self.model(model)?;
        self.writable(config, caller, id).await?;
        if self.store.delete_object(model, id).await? {
            Ok(())
        } else {
            Err(RecordError::NotFound)
        }
    }

    /// The object, if the caller may write it: one they may not read is not found.
    async fn writable(
        &self,
        config: &ModelConfig,
        caller: Option<&str>,
        id: &str,
    ) -> Result<ObjectRecord, RecordError> {
        let record = self
            .store
            .object(&config.name, id)
            .await?
            .filter(|record| can_read(config.access, caller, record))
            .ok_or(RecordError::NotFound)?;
        check_write(config.access, caller, &record)?;
        Ok(record)
    }

    /// Read, change, validate, write if nobody wrote meanwhile (else retry).
    async fn modify(
        &self,
        caller: Option<&str>,
        model: &str,
        id: &str,
        change: impl Fn(&mut Map<String, Value>) -> Result<(), RecordError>,
    ) -> Result<Value, RecordError> {
        let config = self.model(model)?;
        for _ in 0..RETRIES {
            let record = self.writable(config, caller, id).await?;
            let expected = record.version;
            let mut data = record.data.clone();
            change(&mut data)?;
            if let Some((field, _)) = data.iter().find(|(_, v)| depth(v) > MAX_DEPTH) {
                return Err(invalid(
                    field,
                    format!("{field} nests deeper than {MAX_DEPTH} levels."),
                ));
            }
            check_fields(config, &data)?;
            let updated = ObjectRecord {
                data,
                version: expected + 1,
                updated_at: self.clock.now(),
                ..record
            };
            let write = ObjectWrite {
                unique: unique_values(config, &updated.data),
                record: updated,
            };
            let view = object_json(&write.record);
            if self.store.replace_object(write, expected).await? {
                return Ok(view);
            }
        }
        Err(RecordError::Unavailable(format!(
            "object {id} kept changing; gave up after {RETRIES} attempts"
        )))
    }
}

fn is_system(field: &str) -> bool {
    field.starts_with('_') || field == "createdAt" || field == "updatedAt"
}

/// Values from a request: no system fields, bounded nesting.
fn check_values(values: &Map<String, Value>) -> Result<(), RecordError> {
    for (field, value) in values {
        if is_system(field) {
            return Err(invalid(field, format!("{field} is managed by the server.")));
        }
        if depth(value) > MAX_DEPTH {
            return Err(invalid(
                field,
                format!("{field} nests deeper than {MAX_DEPTH} levels."),
            ));
        }
    }
    Ok(())
}

/// Declared types and required fields.
fn check_fields(config: &ModelConfig, data: &Map<String, Value>) -> Result<(), RecordError> {
    for (field, declared) in &config.fields {
        match data.get(field) {
            None | Some(Value::Null) if declared.required => {
                return Err(invalid(field, format!("{field} is required.")));
            }
            Some(value) if !value.is_null() => {
                if let Some(kind) = declared.kind
                    && !matches_type(kind, value)
                {
                    let kind = format!("{kind:?}").to_lowercase();
                    return Err(invalid(field, format!("{field} must be a {kind}.")));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn unique_values(config: &ModelConfig, data: &Map<String, Value>) -> Vec<(String, String)> {
    config
        .fields
        .iter()
        .filter(|(_, declared)| declared.unique)
        .filter_map(|(field, _)| {
            data.get(field)
                .filter(|v| !v.is_null())
                .map(|v| (field.clone(), v.to_string()))
        })
        .collect()
}

fn can_read(access: Access, caller: Option<&str>, record: &ObjectRecord) -> bool {
    match access {
        Access::Owner => caller.is_some() && caller == record.owner_id.as_deref(),
        Access::PublicRead | Access::Open => true,
        Access::Authenticated => caller.is_some(),
    }
}

fn check_write(
    access: Access,
    caller: Option<&str>,
    record: &ObjectRecord,
) -> Result<(), RecordError> {
    match (access, caller) {
        (Access::Open, _) => Ok(()),
        (_, None) => Err(RecordError::MissingSession),
        (Access::Authenticated, Some(_)) => Ok(()),
        (Access::Owner | Access::PublicRead, Some(caller)) => {
            if record.owner_id.as_deref() == Some(caller) {
                Ok(())
            } else {
                Err(RecordError::NotAllowed)
            }
        }
    }
}

/// An object as the client sees it: `_id`, its fields, `createdAt`, `updatedAt`.
pub fn object_json(record: &ObjectRecord) -> Value {
    let mut map = Map::new();
    map.insert("_id".into(), Value::String(record.id.clone()));
    for (key, value) in &record.data {
        map.insert(key.clone(), value.clone());
    }
    map.insert("createdAt".into(), Value::String(iso(record.created_at)));
    map.insert("updatedAt".into(), Value::String(iso(record.updated_at)));
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_are_checked() {
        assert!(matches_type(FieldType::Integer, &json!(3)));
        assert!(!matches_type(FieldType::Integer, &json!(3.5)));
        assert!(matches_type(
            FieldType::Date,
            &json!("2024-03-19T13:55:55.772Z")
        ));
        assert!(!matches_type(FieldType::Date, &json!("yesterday")));
        assert!(!matches_type(FieldType::String, &Value::Null));
    }

    #[test]
    fn access_rules() {
        let record = ObjectRecord {
            id: "o".into(),
            model: "m".into(),
            owner_id: Some("ada".into()),
            data: Map::new(),
            version: 1,
            created_at: 0,
            updated_at: 0,
        };
        assert!(can_read(Access::Owner, Some("ada"), &record));
        assert!(!can_read(Access::Owner, Some("bob"), &record));
        assert!(!can_read(Access::Owner, None, &record));
        assert!(can_read(Access::PublicRead, None, &record));
        assert!(!can_read(Access::Authenticated, None, &record));
        assert!(matches!(
            check_write(Access::PublicRead, Some("bob"), &record),
            Err(RecordError::NotAllowed)
        ));
        assert!(check_write(Access::Authenticated, Some("bob"), &record).is_ok());
        assert!(check_write(Access::Open, None, &record).is_ok());
        assert!(matches!(
            check_write(Access::Owner, None, &record),
            Err(RecordError::MissingSession)
        ));
    }
}
