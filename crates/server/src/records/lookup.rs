//! Lookups (protocol.md §5.6): joins that replace a reference with the object it names
//! (simple) or add the first object of another model that matches a query (complex).
//!
//! Every looked-up object passes the access rule of its own model for the caller, so a
//! lookup never reveals what a direct read would not.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::{RecordError, RecordService, can_read, invalid, object_json};
use crate::expr::{Expr, parse};
use crate::store::{Filter, ObjectQuery, Order};

/// Most lookups in one call.
const MAX_LOOKUPS: usize = 8;

/// A lookup as the client sends it: `{field}` or `{name, modelName, query}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LookupSpec {
    /// Simple: the field holding another object's `_id`.
    pub field: Option<String>,
    /// Complex: the field that receives the match.
    pub name: Option<String>,
    /// Complex: the model searched.
    pub model_name: Option<String>,
    /// Complex: `lookup.` is the candidate, `this.` the current object.
    pub query: Option<String>,
}

/// A checked lookup.
#[derive(Debug, Clone)]
pub(super) enum Lookup {
    /// Replace `field`'s id with the object it names.
    Simple { field: String },
    /// Put the first object of `model` matching `query` under `name`.
    Complex {
        name: String,
        model: String,
        query: Expr,
    },
}

impl Lookup {
    /// The field of the result it writes.
    pub(super) fn name(&self) -> &str {
        match self {
            Self::Simple { field } => field,
            Self::Complex { name, .. } => name,
        }
    }
}

fn top_level_name(value: Option<&str>, member: &str) -> Result<String, RecordError> {
    match value {
        Some(name)
            if !name.is_empty()
                && name.len() <= 128
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            Ok(name.to_string())
        }
        Some(_) => Err(invalid(
            member,
            format!("A lookup's {member} is one field name of letters, digits and '_'."),
        )),
        None => Err(invalid(
            member,
            "A lookup is {field} or {name, modelName, query}.",
        )),
    }
}

/// Check the `lookups` of a call.
fn parse_lookups(specs: Option<&[LookupSpec]>) -> Result<Vec<Lookup>, RecordError> {
    let specs = specs.unwrap_or_default();
    if specs.len() > MAX_LOOKUPS {
        return Err(invalid(
            "lookups",
            format!("At most {MAX_LOOKUPS} lookups per call."),
        ));
    }
    specs
        .iter()
        .map(|spec| {
            if spec.field.is_some() {
                return Ok(Lookup::Simple {
                    field: top_level_name(spec.field.as_deref(), "field")?,
                });
            }
            let name = top_level_name(spec.name.as_deref(), "name")?;
            let model = spec
                .model_name
                .clone()
                .filter(|m| !m.is_empty())
                .ok_or_else(|| invalid("modelName", "A complex lookup needs a modelName."))?;
            let query = spec
                .query
                .as_deref()
                .filter(|q| !q.trim().is_empty())
                .ok_or_else(|| invalid("query", "A complex lookup needs a query."))?;
            Ok(Lookup::Complex {
                name,
                model,
                query: parse(query)?,
            })
        })
        .collect()
}

/// Whether an expression reads one of these top-level fields.
pub(super) fn references(expr: &Expr, names: &[&str]) -> bool {
    let hit = |path: &[String]| path.first().is_some_and(|f| names.contains(&f.as_str()));
    match expr {
        Expr::Literal(_) => false,
        Expr::Field(path) | Expr::Exists(path) => hit(path),
        Expr::Unary(_, inner) => references(inner, names),
        Expr::Binary(_, a, b) => references(a, names) || references(b, names),
        Expr::And(items) | Expr::Or(items) | Expr::Call(_, items) => {
            items.iter().any(|e| references(e, names))
        }
    }
}

/// A lookup query for one current object: `lookup.x` becomes the candidate's field `x`,
/// every other field (with or without `this.`) the current object's value.
fn bind(expr: &Expr, current: &Value) -> Expr {
    let value_at = |path: &[String]| {
        path.iter()
            .try_fold(current, |v, key| v.as_object()?.get(key))
            .cloned()
            .unwrap_or(Value::Null)
    };
    match expr {
        Expr::Literal(_) => expr.clone(),
        Expr::Field(path) => match path.split_first() {
            Some((first, rest)) if first == "lookup" && !rest.is_empty() => {
                Expr::Field(rest.to_vec())
            }
            _ => Expr::Literal(value_at(path)),
        },
        Expr::Exists(path) => match path.split_first() {
            Some((first, rest)) if first == "lookup" && !rest.is_empty() => {
                Expr::Exists(rest.to_vec())
            }
            _ => Expr::Literal(Value::Bool(!value_at(path).is_null())),
        },
        Expr::Unary(op, inner) => Expr::Unary(*op, Box::new(bind(inner, current))),
        Expr::Binary(op, a, b) => {
            Expr::Binary(*op, Box::new(bind(a, current)), Box::new(bind(b, current)))
        }
        Expr::And(items) => Expr::And(items.iter().map(|e| bind(e, current)).collect()),
        Expr::Or(items) => Expr::Or(items.iter().map(|e| bind(e, current)).collect()),
        Expr::Call(function, items) => {
            Expr::Call(*function, items.iter().map(|e| bind(e, current)).collect())
        }
    }
}

impl RecordService {
    /// The checked lookups of a call: well formed, and every model they search exists,
    /// whether or not there is anything to join.
    pub(super) fn lookups(&self, specs: Option<&[LookupSpec]>) -> Result<Vec<Lookup>, RecordError> {
        let lookups = parse_lookups(specs)?;
        for lookup in &lookups {
            if let Lookup::Complex { model, .. } = lookup
                && model != "users"
            {
                self.model(model)?;
            }
        }
        Ok(lookups)
    }

    /// Run the lookups on objects about to be returned (or filtered).
    pub(super) async fn apply_lookups(
        &self,
        caller: Option<&str>,
        lookups: &[Lookup],
        objects: &mut [Value],
    ) -> Result<(), RecordError> {
        for lookup in lookups {
            match lookup {
                Lookup::Simple { field } => self.simple_lookup(caller, field, objects).await?,
                Lookup::Complex { name, model, query } => {
                    for object in objects.iter_mut() {
                        let found = self
                            .first_match(caller, model, &bind(query, object))
                            .await?;
                        set_or_remove(object, name, found);
                    }
                }
            }
        }
        Ok(())
    }

    async fn simple_lookup(
        &self,
        caller: Option<&str>,
        field: &str,
        objects: &mut [Value],
    ) -> Result<(), RecordError> {
        let ids: Vec<String> = objects
            .iter()
            .filter_map(|o| o.get(field)?.as_str().map(String::from))
            .collect();
        let mut found: HashMap<String, Value> = HashMap::new();
        for record in self.store.objects_by_ids(ids.clone()).await? {
            let readable = self
                .models
                .get(&record.model)
                .is_some_and(|config| can_read(config.access, caller, &record));
            if readable {
                found.insert(record.id.clone(), object_json(&record));
            }
        }
        for id in ids {
            if !found.contains_key(&id)
                && let Some(view) = self
                    .profile
                    .get(caller, &id)
                    .await
                    .map_err(|err| RecordError::Unavailable(err.to_string()))?
            {
                found.insert(id, view.into_json());
            }
        }
        for object in objects.iter_mut() {
            let target = object
                .get(field)
                .and_then(Value::as_str)
                .and_then(|id| found.get(id))
                .cloned();
            set_or_remove(object, field, target);
        }
        Ok(())
    }

    /// The first object (by id) of `model` the caller may read that matches `filter`.
    async fn first_match(
        &self,
        caller: Option<&str>,
        model: &str,
        filter: &Expr,
    ) -> Result<Option<Value>, RecordError> {
        if model == "users" {
            return self.first_user(caller, filter).await;
        }
        let config = self.model(model)?;
        let Some(owner) = self.reader_scope(config.access, caller) else {
            return Ok(None);
        };
        let query = ObjectQuery {
            model: model.to_string(),
            owner,
            filter: Some(Filter::compile(filter)?),
            order: Order::by_id(),
            limit: 1,
            offset: 0,
            count: false,
        };
        let (mut records, _) = self.store.query_objects(query).await?;
        Ok(records.pop().map(|record| object_json(&record)))
    }
}

fn set_or_remove(object: &mut Value, field: &str, value: Option<Value>) {
    if let Some(map) = object.as_object_mut() {
        match value {
            Some(value) => {
                map.insert(field.to_string(), value);
            }
            None => {
                map.remove(field);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::evaluate;
    use serde_json::json;

    #[test]
    fn binding_splits_the_candidate_from_the_current_object() {
        let query = parse("lookup.user == this._id && lookup.team == team").unwrap();
        let bound = bind(&query, &json!({"_id": "u1", "team": "red"}));
        assert_eq!(
            evaluate(&bound, &json!({"user": "u1", "team": "red"})),
            json!(true)
        );
        assert_eq!(
            evaluate(&bound, &json!({"user": "u2", "team": "red"})),
            json!(false)
        );
    }

    #[test]
    fn references_see_every_position() {
        let expr = parse("a > 1 && (INCLUDES(b.name, 'x') || !EXISTS(c))").unwrap();
        assert!(references(&expr, &["b"]));
        assert!(references(&expr, &["c"]));
        assert!(!references(&expr, &["name"]));
    }

    #[test]
    fn lookups_are_checked() {
        let bad = [LookupSpec {
            field: Some("a.b".into()),
            name: None,
            model_name: None,
            query: None,
        }];
        assert!(parse_lookups(Some(&bad)).is_err());
        let half = [LookupSpec {
            field: None,
            name: Some("team".into()),
            model_name: None,
            query: Some("lookup.x == 1".into()),
        }];
        assert!(parse_lookups(Some(&half)).is_err());
    }
}
