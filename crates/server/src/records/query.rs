//! Query calls over a declared model: filter, sort, page, count, omit (protocol.md §5.4–§5.7).
//! Filters and sorts run in the database; the model's access rule is an extra condition of
//! the same query, so a filter never reveals objects the caller may not read.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::lookup::{Lookup, LookupSpec, references};
use super::{RecordError, RecordService, object_json};
use crate::config::Access;
use crate::expr::{Expr, ExprError, evaluate, parse, sort_cmp, truthy};
use crate::store::{Filter, ObjectQuery, Order};

/// Page size when a query names none.
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest page size.
pub const MAX_LIMIT: u32 = 1000;
/// Most objects a bulk update or delete touches in one call.
const MAX_BULK: u32 = 10_000;
/// Most objects read to answer a query whose filter or sort uses looked-up fields.
pub const MAX_LOOKUP_SCAN: u64 = 10_000;
/// Objects read per round when filtering on looked-up fields.
const SCAN_BATCH: u32 = 250;

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
    /// Joins run before filter and sort (§5.6).
    pub lookups: Option<Vec<LookupSpec>>,
    /// Grouping of `compute`: an expression or field paths.
    pub group: Option<Value>,
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
    /// The count info of one page.
    pub fn new(count: u64, current_page: u64, page_size: u32) -> Self {
        Self {
            count,
            total_pages: count.div_ceil(u64::from(page_size)),
            current_page,
            page_size,
        }
    }

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
    /// Which objects of a model a caller may see: `None` for none, `Some(None)` for all,
    /// `Some(Some(owner))` for one owner's.
    pub(super) fn reader_scope(
        &self,
        access: Access,
        caller: Option<&str>,
    ) -> Option<Option<String>> {
        Self::scope(access, caller, false)
    }

    fn scope(access: Access, caller: Option<&str>, writing: bool) -> Option<Option<String>> {
        match (access, caller, writing) {
            (Access::Owner, None, _) | (Access::Authenticated, None, _) => None,
            (Access::PublicRead, None, true) => None,
            (Access::Owner, Some(caller), _) | (Access::PublicRead, Some(caller), true) => {
                Some(Some(caller.to_string()))
            }
            _ => Some(None),
        }
    }

    /// The store query for a spec, with the access rule folded in; `None` when the caller
    /// can see nothing of this model.
    pub(super) fn object_query(
        &self,
        caller: Option<&str>,
        model: &str,
        spec: &QuerySpec,
        writing: bool,
    ) -> Result<Option<(ObjectQuery, u64)>, RecordError> {
        let filter = parse_filter(spec)?;
        self.object_query_with(caller, model, spec, filter.as_ref(), writing)
    }

    fn object_query_with(
        &self,
        caller: Option<&str>,
        model: &str,
        spec: &QuerySpec,
        filter: Option<&Expr>,
        writing: bool,
    ) -> Result<Option<(ObjectQuery, u64)>, RecordError> {
        let config = self.model(model)?;
        let Some(owner) = Self::scope(config.access, caller, writing) else {
            return Ok(None);
        };
        let filter = filter.map(Filter::compile).transpose()?;
        let sort = sort_keys(spec)?;
        let (page, limit) = page_of(spec)?;
        let query = ObjectQuery {
            model: model.to_string(),
            owner,
            filter,
            order: Order::by(&sort)?,
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
        let lookups = self.lookups(spec.lookups.as_deref())?;
        let filter = parse_filter(spec)?;
        let names: Vec<&str> = lookups.iter().map(Lookup::name).collect();
        if sort_reads(spec, &names) || filter.as_ref().is_some_and(|f| references(f, &names)) {
            return self
                .list_by_lookups(caller, model, spec, filter, &lookups, count)
                .await;
        }
        let Some((mut query, page)) =
            self.object_query_with(caller, model, spec, filter.as_ref(), false)?
        else {
            return Ok((Vec::new(), count.then(|| empty_info(spec))));
        };
        query.count = count;
        let page_size = query.limit;
        let (records, total) = self.store.query_objects(query).await?;
        let objects = self
            .finish(
                caller,
                spec,
                &lookups,
                records.iter().map(object_json).collect(),
            )
            .await?;
        let info = total.map(|count| CountInfo::new(count, page, page_size));
        Ok((objects, info))
    }

    /// Objects as returned: lookups run, omitted paths removed.
    pub(super) async fn finish(
        &self,
        caller: Option<&str>,
        spec: &QuerySpec,
        lookups: &[Lookup],
        mut objects: Vec<Value>,
    ) -> Result<Vec<Value>, RecordError> {
        self.apply_lookups(caller, lookups, &mut objects).await?;
        omit(spec, &mut objects);
        Ok(objects)
    }

    /// `list` when the filter or the sort reads looked-up fields: the conditions on the
    /// model's own fields (and the access rule) run in SQL, the rest here on each candidate
    /// after its lookups, reading at most [`MAX_LOOKUP_SCAN`] candidates.
    async fn list_by_lookups(
        &self,
        caller: Option<&str>,
        model: &str,
        spec: &QuerySpec,
        filter: Option<Expr>,
        lookups: &[Lookup],
        count: bool,
    ) -> Result<(Vec<Value>, Option<CountInfo>), RecordError> {
        let names: Vec<&str> = lookups.iter().map(Lookup::name).collect();
        let (in_sql, in_memory): (Vec<Expr>, Vec<Expr>) = match filter {
            None => (Vec::new(), Vec::new()),
            Some(Expr::And(items)) => items.into_iter().partition(|e| !references(e, &names)),
            Some(other) if references(&other, &names) => (Vec::new(), vec![other]),
            Some(other) => (vec![other], Vec::new()),
        };
        let sql_filter = (!in_sql.is_empty()).then_some(Expr::And(in_sql));
        let sort_in_memory = sort_reads(spec, &names);
        let scan_spec = QuerySpec {
            sort: if sort_in_memory {
                None
            } else {
                spec.sort.clone()
            },
            page: None,
            limit: None,
            ..spec.clone()
        };
        let Some((mut query, _)) =
            self.object_query_with(caller, model, &scan_spec, sql_filter.as_ref(), false)?
        else {
            return Ok((Vec::new(), count.then(|| empty_info(spec))));
        };
        let (page, page_size) = page_of(spec)?;
        let skip = (page - 1).saturating_mul(u64::from(page_size));
        let wanted = skip.saturating_add(u64::from(page_size));
        let mut matches: Vec<Value> = Vec::new();
        let mut scanned: u64 = 0;
        query.limit = SCAN_BATCH;
        loop {
            query.offset = scanned;
            let (records, _) = self.store.query_objects(query.clone()).await?;
            let done = records.len() < SCAN_BATCH as usize;
            scanned += records.len() as u64;
            let mut objects: Vec<Value> = records.iter().map(object_json).collect();
            self.apply_lookups(caller, lookups, &mut objects).await?;
            matches.extend(
                objects
                    .into_iter()
                    .filter(|o| in_memory.iter().all(|e| truthy(&evaluate(e, o)))),
            );
            if done || (!count && !sort_in_memory && matches.len() as u64 >= wanted) {
                break;
            }
            if scanned >= MAX_LOOKUP_SCAN {
                return Err(RecordError::TooBroad(MAX_LOOKUP_SCAN));
            }
        }
        if sort_in_memory {
            let keys: Vec<(Expr, bool)> = spec
                .sort
                .iter()
                .flatten()
                .map(|key| {
                    let path = key.field.strip_prefix("this.").unwrap_or(&key.field);
                    let desc = key.direction.as_deref() == Some("desc");
                    (
                        Expr::Field(path.split('.').map(String::from).collect()),
                        desc,
                    )
                })
                .collect();
            matches.sort_by(|a, b| {
                keys.iter()
                    .map(|(field, desc)| {
                        let order = sort_cmp(&evaluate(field, a), &evaluate(field, b));
                        if *desc { order.reverse() } else { order }
                    })
                    .find(|o| o.is_ne())
                    .unwrap_or_else(|| sort_cmp(&a["_id"], &b["_id"]))
            });
        }
        let total = matches.len() as u64;
        let mut objects: Vec<Value> = matches
            .into_iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .take(page_size as usize)
            .collect();
        omit(spec, &mut objects);
        Ok((
            objects,
            count.then(|| CountInfo::new(total, page, page_size)),
        ))
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

/// The parsed filter of a spec; an empty expression is none.
pub(super) fn parse_filter(spec: &QuerySpec) -> Result<Option<Expr>, RecordError> {
    match spec.expression.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => Ok(Some(parse(text)?)),
    }
}

/// The sort keys of a spec: `(field path, descending)`.
pub(super) fn sort_keys(spec: &QuerySpec) -> Result<Vec<(String, bool)>, RecordError> {
    spec.sort
        .iter()
        .flatten()
        .map(|key| match key.direction.as_deref() {
            None | Some("asc") => Ok((key.field.clone(), false)),
            Some("desc") => Ok((key.field.clone(), true)),
            Some(_) => Err(field("sort", "direction must be asc or desc.")),
        })
        .collect()
}

/// Whether a sort key of the spec starts with one of these top-level fields.
fn sort_reads(spec: &QuerySpec, names: &[&str]) -> bool {
    spec.sort.iter().flatten().any(|key| {
        let path = key.field.strip_prefix("this.").unwrap_or(&key.field);
        names.contains(&path.split('.').next().unwrap_or_default())
    })
}

/// The 1-based page and the page size of a spec.
pub(super) fn page_of(spec: &QuerySpec) -> Result<(u64, u32), RecordError> {
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
    Ok((page, limit))
}

/// The count info of a query the caller can see nothing of.
pub(super) fn empty_info(spec: &QuerySpec) -> CountInfo {
    let (page, size) = page_of(spec).unwrap_or((1, DEFAULT_LIMIT));
    CountInfo::new(0, page, size)
}

pub(super) fn omit(spec: &QuerySpec, objects: &mut [Value]) {
    for object in objects {
        for path in spec.omit.iter().flatten() {
            remove_path(object, path);
        }
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
