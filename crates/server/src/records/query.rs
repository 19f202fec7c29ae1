//! Query calls over a declared model: filter, sort, page, count, omit (protocol.md §5.4–§5.7).
//! Filters and sorts run in the database; the model's access rule is an extra condition of
//! the same query, so a filter never reveals objects the caller may not read.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{RecordError, RecordService, object_json};
use crate::config::Access;
use crate::expr::{ExprError, parse};
use crate::store::ObjectQuery;
use crate::store::sql_filter::{compile, order_by};

/// Page size when a query names none.
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest page size.
pub const MAX_LIMIT: u32 = 1000;
/// Most objects a bulk update or delete touches in one call.
const MAX_BULK: u32 = 10_000;

/// The `query` member of a query call; `null` members mean unused.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct QuerySpec {
    /// Filter expression; empty means none.
    pub expression: Option<String>,
    /// 1-based page.
    pub page: Option<u64>,
    /// Page size.
    pub limit: Option<u64>,
    /// Sort keys, first is primary.
    pub sort: Option<Vec<SortKey>>,
    /// Paths removed from every returned object.
    pub omit: Option<Vec<String>>,
    /// Lookups: not yet supported, ignored.
    #[serde(rename = "lookups")]
    pub _lookups: Option<Value>,
    /// Grouping of `compute`: not yet supported, ignored.
    #[serde(rename = "group")]
    pub _group: Option<Value>,
}

/// One sort key.
#[derive(Debug, Clone, Deserialize)]
pub struct SortKey {
    /// Field path.
    pub field: String,
    /// `asc` (default) or `desc`.
    pub direction: Option<String>,
}

/// `countInfo` of a list (protocol.md §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountInfo {
    /// Every match.
    pub count: u64,
    /// ⌈count / page size⌉.
    pub total_pages: u64,
    /// The page answered.
    pub current_page: u64,
    /// The page size.
    pub page_size: u32,
}

impl CountInfo {
    /// As the client reads it.
    pub fn to_json(self) -> Value {
        json!({
            "count": self.count,
            "totalPages": self.total_pages,
            "currentPage": self.current_page,
            "pageSize": self.page_size,
        })
    }
}

impl From<ExprError> for RecordError {
    fn from(err: ExprError) -> Self {
        Self::Expression(err)
    }
}

fn field(name: &str, message: impl Into<String>) -> RecordError {
    RecordError::Invalid {
        field: name.to_string(),
        message: message.into(),
    }
}

impl RecordService {
    /// The store query for a spec, with the access rule folded in; `None` when the caller
    /// can see nothing of this model.
    fn object_query(
        &self,
        caller: Option<&str>,
        model: &str,
        spec: &QuerySpec,
        writing: bool,
    ) -> Result<Option<(ObjectQuery, u64)>, RecordError> {
        let config = self.model(model)?;
        let owner = match (config.access, caller, writing) {
            (Access::Owner, None, _) | (Access::Authenticated, None, _) => return Ok(None),
            (Access::PublicRead, None, true) => return Ok(None),
            (Access::Owner, Some(caller), _) | (Access::PublicRead, Some(caller), true) => {
                Some(caller.to_string())
            }
            _ => None,
        };
        let filter = match spec.expression.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(compile(&parse(text)?)?),
        };
        let sort: Vec<(String, bool)> = spec
            .sort
            .iter()
            .flatten()
            .map(|key| match key.direction.as_deref() {
                None | Some("asc") => Ok((key.field.clone(), false)),
                Some("desc") => Ok((key.field.clone(), true)),
                Some(_) => Err(field("sort", "direction must be asc or desc.")),
            })
            .collect::<Result<_, _>>()?;
        let limit = match spec.limit {
            None => DEFAULT_LIMIT,
            Some(0) => return Err(field("limit", "limit must be a positive integer.")),
            Some(n) => u32::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
        };
        let page = match spec.page {
            None => 1,
            Some(0) => return Err(field("page", "page must be a positive integer.")),
            Some(n) => n,
        };
        let query = ObjectQuery {
            model: model.to_string(),
            owner,
            filter,
            order_by: order_by(&sort)?,
            limit,
            offset: (page - 1).saturating_mul(u64::from(limit)),
            count: false,
        };
        Ok(Some((query, page)))
    }

    /// A page of the objects the caller may read that match, and the count info if asked.
    pub async fn list(
        &self,
        caller: Option<&str>,
        model: &str,
        spec: &QuerySpec,
        count: bool,
    ) -> Result<(Vec<Value>, Option<CountInfo>), RecordError> {
        let Some((mut query, page)) = self.object_query(caller, model, spec, false)? else {
            let info = count.then_some(CountInfo {
                count: 0,
                total_pages: 0,
                current_page: spec.page.unwrap_or(1),
                page_size: spec.limit.map_or(DEFAULT_LIMIT, |l| {
                    u32::try_from(l).unwrap_or(MAX_LIMIT).min(MAX_LIMIT)
                }),
            });
            return Ok((Vec::new(), info));
        };
        query.count = count;
        let page_size = query.limit;
        let (records, total) = self.store.query_objects(query).await?;
        let omit = spec.omit.clone().unwrap_or_default();
        let objects = records
            .iter()
            .map(|record| {
                let mut object = object_json(record);
                for path in &omit {
                    remove_path(&mut object, path);
                }
                object
            })
            .collect();
        let info = total.map(|count| CountInfo {
            count,
            total_pages: count.div_ceil(u64::from(page_size)),
            current_page: page,
            page_size,
        });
        Ok((objects, info))
    }

    /// The ids of the objects a bulk write may touch.
    async fn writable_ids(
        &self,
        caller: Option<&str>,
        model: &str,
        spec: &QuerySpec,
    ) -> Result<Vec<String>, RecordError> {
        let spec = QuerySpec {
            page: None,
            limit: None,
            sort: None,
            ..spec.clone()
        };
        let Some((mut query, _)) = self.object_query(caller, model, &spec, true)? else {
            return Ok(Vec::new());
        };
        query.limit = MAX_BULK;
        let (records, _) = self.store.query_objects(query).await?;
        Ok(records.into_iter().map(|r| r.id).collect())
    }

    /// Merge `values` into every matching object the caller may write:
    /// `(totalMatch, updated)`.
    pub async fn update_matching(
        &self,
        caller: Option<&str>,
        model: &str,
        spec: &QuerySpec,
        values: Map<String, Value>,
    ) -> Result<(u64, u64), RecordError> {
        let ids = self.writable_ids(caller, model, spec).await?;
        let mut updated = 0;
        for id in &ids {
            match self.update(caller, model, id, values.clone()).await {
                Ok(_) => updated += 1,
                Err(RecordError::NotFound) => {}
                Err(err) => return Err(err),
            }
        }
        Ok((ids.len() as u64, updated))
    }

    /// Apply field instructions to every matching object the caller may write.
    pub async fn update_fields_matching(
        &self,
        caller: Option<&str>,
        model: &str,
        spec: &QuerySpec,
        updates: Vec<super::FieldUpdate>,
    ) -> Result<(u64, u64), RecordError> {
        let ids = self.writable_ids(caller, model, spec).await?;
        let mut updated = 0;
        for id in &ids {
            match self.update_fields(caller, model, id, updates.clone()).await {
                Ok(_) => updated += 1,
                Err(RecordError::NotFound) => {}
                Err(err) => return Err(err),
            }
        }
        Ok((ids.len() as u64, updated))
    }

    /// Delete every matching object the caller may write: `(totalMatch, deleted)`.
    pub async fn delete_matching(
        &self,
        caller: Option<&str>,
        model: &str,
        spec: &QuerySpec,
    ) -> Result<(u64, u64), RecordError> {
        let ids = self.writable_ids(caller, model, spec).await?;
        let mut deleted = 0;
        for id in &ids {
            if self.store.delete_object(model, id).await? {
                deleted += 1;
            }
        }
        Ok((ids.len() as u64, deleted))
    }
}

/// Remove a dot path from an object (missing parts are fine).
fn remove_path(object: &mut Value, path: &str) {
    let mut parts = path.split('.').peekable();
    let mut current = object;
    while let Some(part) = parts.next() {
        let Some(map) = current.as_object_mut() else {
            return;
        };
        if parts.peek().is_none() {
            map.remove(part);
            return;
        }
        match map.get_mut(part) {
            Some(next) => current = next,
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omit_removes_nested_paths() {
        let mut object = json!({"a": 1, "b": {"c": 2, "d": 3}});
        remove_path(&mut object, "b.c");
        remove_path(&mut object, "x.y");
        remove_path(&mut object, "a");
        assert_eq!(object, json!({"b": {"d": 3}}));
    }
}
