//! The storage list calls (`list-buckets`, `search-files`, `bucket/list-files`) and totals
//! (`bucket/get` with `detailed`, `storage/stats`), protocol.md §6.6. Filters and sorts are the
//! language of §5.5 compiled to SQL; the read rule is part of the same query, so a caller only
//! ever sees, counts and filters the buckets and files they may read.

use serde::Deserialize;
use serde_json::Value;

use super::{FileError, FileService};
use crate::expr::{ExprError, parse, truthy};
use crate::records::{CountInfo, DEFAULT_LIMIT, MAX_LIMIT, SortKey};
use crate::store::{BucketRecord, FileRecord, Filter, Order, StorageQuery, StorageStats};

/// `options` of a list call: `null` or `{page, limit, sort, returnCountInfo}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListOptions {
    /// 1-based page.
    pub page: Option<u64>,
    /// Page size (default 100, at most 1000, as the database API).
    pub limit: Option<u64>,
    /// One `{field, direction}` (the client's shape); a list of them is accepted too.
    pub sort: Option<Sort>,
    /// Any truthy value asks for the `{result, countInfo}` wrapper.
    pub return_count_info: Option<Value>,
}

/// The sort of a list call.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Sort {
    /// `{field, direction}`, as the client sends it.
    One(SortKey),
    /// Several keys, first is primary.
    Many(Vec<SortKey>),
}

impl From<ExprError> for FileError {
    fn from(err: ExprError) -> Self {
        Self::Expression(err)
    }
}

fn invalid(field: &'static str, message: &str) -> FileError {
    FileError::Invalid {
        field,
        message: message.to_string(),
    }
}

/// What a list call asks, checked: the store query (without reader and scope) and the page.
fn plan(expression: Option<&str>, options: &ListOptions) -> Result<(StorageQuery, u64), FileError> {
    let filter = match expression.map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(Filter::compile(&parse(text)?)?),
    };
    let keys: Vec<&SortKey> = match &options.sort {
        None => Vec::new(),
        Some(Sort::One(key)) => vec![key],
        Some(Sort::Many(keys)) => keys.iter().collect(),
    };
    let sort = keys
        .into_iter()
        .map(|key| match key.direction.as_deref() {
            None | Some("asc") => Ok((key.field.clone(), false)),
            Some("desc") => Ok((key.field.clone(), true)),
            Some(_) => Err(invalid(
                "options.sort.direction",
                "direction must be asc or desc.",
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let limit = match options.limit {
        None => DEFAULT_LIMIT,
        Some(0) => {
            return Err(invalid(
                "options.limit",
                "limit must be a positive integer.",
            ));
        }
        Some(n) => u32::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
    };
    let page = match options.page {
        None => 1,
        Some(0) => return Err(invalid("options.page", "page must be a positive integer.")),
        Some(n) => n,
    };
    let query = StorageQuery {
        reader: None,
        bucket_id: None,
        public_base: String::new(),
        filter,
        order: Order::by(&sort)?,
        limit,
        offset: (page - 1).saturating_mul(u64::from(limit)),
        count: options.return_count_info.as_ref().is_some_and(truthy),
    };
    Ok((query, page))
}

fn count_info(total: Option<u64>, page: u64, page_size: u32) -> Option<CountInfo> {
    total.map(|count| CountInfo {
        count,
        total_pages: count.div_ceil(u64::from(page_size)),
        current_page: page,
        page_size,
    })
}

/// What the files of a list call are: every bucket's or one's.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// `search-files`.
    AllBuckets,
    /// `bucket/list-files`: a bucket id or name.
    Bucket(&'a str),
}

impl FileService {
    /// A page of the buckets the caller may read (public ones and their own) that match, and
    /// the count info when asked.
    pub async fn list_buckets(
        &self,
        reader: Option<&str>,
        expression: Option<&str>,
        options: &ListOptions,
    ) -> Result<(Vec<BucketRecord>, Option<CountInfo>), FileError> {
        let (mut query, page) = plan(expression, options)?;
        query.reader = reader.map(String::from);
        let limit = query.limit;
        let (buckets, total) = self.store.query_buckets(query).await?;
        Ok((buckets, count_info(total, page, limit)))
    }

    /// A page of the files the caller may read (public ones and their own) that match, and
    /// the count info when asked. `public_base` is what `publicPath` starts with.
    pub async fn list_files(
        &self,
        reader: Option<&str>,
        scope: Scope<'_>,
        expression: Option<&str>,
        options: &ListOptions,
        public_base: &str,
    ) -> Result<(Vec<FileRecord>, Option<CountInfo>), FileError> {
        let (mut query, page) = plan(expression, options)?;
        if let Scope::Bucket(bucket) = scope {
            query.bucket_id = Some(self.readable_bucket(reader, bucket).await?.id);
        }
        query.reader = reader.map(String::from);
        query.public_base = public_base.to_string();
        let limit = query.limit;
        let (files, total) = self.store.query_files(query).await?;
        Ok((files, count_info(total, page, limit)))
    }

    /// Totals over the buckets and files the caller may read; with `bucket`, over that
    /// bucket's files.
    pub async fn stats(
        &self,
        reader: Option<&str>,
        bucket: Option<&BucketRecord>,
    ) -> Result<StorageStats, FileError> {
        let bucket_id = bucket.map(|b| b.id.as_str());
        Ok(self.store.storage_stats(reader, bucket_id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(value: serde_json::Value) -> ListOptions {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn options_take_one_sort_key_or_several() {
        let (one, _) = plan(
            None,
            &options(serde_json::json!({"sort": {"field": "size", "direction": "desc"}})),
        )
        .unwrap();
        let (many, _) = plan(
            None,
            &options(serde_json::json!({"sort": [{"field": "size", "direction": "desc"}]})),
        )
        .unwrap();
        assert_eq!(one.order.sqlite, many.order.sqlite);
        assert!(one.order.sqlite.contains("DESC"), "{}", one.order.sqlite);
    }

    #[test]
    fn pages_default_and_cap_like_the_database_api() {
        let (query, page) = plan(Some(""), &ListOptions::default()).unwrap();
        assert_eq!((query.limit, page, query.offset), (100, 1, 0));
        assert!(query.filter.is_none() && !query.count);
        let (query, page) = plan(
            None,
            &options(serde_json::json!({"page": 3, "limit": 5000, "returnCountInfo": 1})),
        )
        .unwrap();
        assert_eq!((query.limit, page, query.offset), (1000, 3, 2000));
        assert!(query.count);
    }

    #[test]
    fn bad_pages_directions_and_expressions_are_refused() {
        for bad in [
            serde_json::json!({"page": 0}),
            serde_json::json!({"limit": 0}),
            serde_json::json!({"sort": {"field": "size", "direction": "up"}}),
        ] {
            assert!(
                matches!(plan(None, &options(bad)), Err(FileError::Invalid { .. })),
                "accepted"
            );
        }
        assert!(matches!(
            plan(Some("size >"), &ListOptions::default()),
            Err(FileError::Expression(ExprError::Invalid { .. }))
        ));
    }
}
