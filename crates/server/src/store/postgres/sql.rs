//! Queries whose shape depends on the call (filters, owners, pages): SQL text with its bind
//! values, numbered as they are added, and the `ORDER BY`, page and count helpers.

use serde_json::Value;
use sqlx_core::query::query;
use sqlx_core::row::Row;
use sqlx_postgres::{PgArguments, PgConnection, Postgres};

use super::{backend, db_error};
use crate::expr::Expr;
use crate::store::{Order, StoreResult, pg_filter};

/// SQL text with its bind values, numbered as they are added: the store's queries whose shape
/// depends on the call (filters, owners, pages).
#[derive(Default)]
pub(super) struct Sql {
    pub(super) text: String,
    pub(super) binds: Vec<Bind>,
}

/// A bind value of [`Sql`].
pub(super) enum Bind {
    Text(String),
    Int(i64),
    Json(Value),
    Texts(Vec<String>),
}

impl Sql {
    pub(super) fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            binds: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Add a value and its placeholder.
    pub(super) fn bind(&mut self, value: Bind) -> &mut Self {
        self.binds.push(value);
        self.text.push_str(&format!("${}", self.binds.len()));
        self
    }

    /// Add a filter's condition, its placeholders numbered after those already here.
    pub(super) fn filter(&mut self, expr: &Expr) -> StoreResult<&mut Self> {
        let compiled = pg_filter::compile(expr, self.binds.len() + 1).map_err(backend)?;
        self.text.push('(');
        self.text.push_str(&compiled.sql);
        self.text.push(')');
        self.binds
            .extend(compiled.params.into_iter().map(Bind::Json));
        Ok(self)
    }

    pub(super) fn query(&self) -> sqlx_core::query::Query<'_, Postgres, PgArguments> {
        let mut statement = query(&self.text);
        for value in &self.binds {
            statement = match value {
                Bind::Text(text) => statement.bind(text.clone()),
                Bind::Int(int) => statement.bind(*int),
                Bind::Json(json) => statement.bind(json.clone()),
                Bind::Texts(texts) => statement.bind(texts.clone()),
            };
        }
        statement
    }
}

/// The `ORDER BY` clause of an [`Order`].
pub(super) fn order_by(order: &Order) -> StoreResult<String> {
    if order.random {
        return Ok("ORDER BY random()".into());
    }
    pg_filter::order_by(&order.keys).map_err(backend)
}

/// `LIMIT` and `OFFSET` of a page.
pub(super) fn push_page(sql: &mut Sql, limit: u32, offset: u64) {
    sql.push(" LIMIT ")
        .bind(Bind::Int(i64::from(limit)))
        .push(" OFFSET ")
        .bind(Bind::Int(i64::try_from(offset).unwrap_or(i64::MAX)));
}

/// `COUNT(*)` of the rows `sql` selects.
pub(super) async fn count(conn: &mut PgConnection, sql: &Sql) -> StoreResult<u64> {
    let n: i64 = sql
        .query()
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error)?
        .try_get(0)
        .map_err(db_error)?;
    Ok(u64::try_from(n).unwrap_or(0))
}
