//! Filter expressions as PostgreSQL: [`compile`] turns an [`Expr`] into a boolean condition
//! over a row of `(id, data jsonb, created_at, updated_at)` that agrees with
//! `truthy(evaluate(..))` on every row (protocol.md §5.5), and [`order_by`] gives the sort of
//! §5.7. The SQLite twin is `sql_filter.rs`; both are property-tested against `expr::evaluate`.
//!
//! Values are `jsonb` (SQL NULL for null and missing); conditions are SQL booleans that are
//! never NULL. Every comparison is guarded by `jsonb_typeof`, so SQL's coercions and
//! three-valued logic never show. Strings compare byte-wise (`COLLATE "C"`), numbers as
//! `numeric`. A computed value read more than once is computed once in a sub-select, so the SQL
//! grows linearly with the expression. Every constant is a parameter; field paths are checked
//! to be `[A-Za-z0-9_]` segments and written into the SQL text.
//!
//! Guarded comparisons cannot use an index, so a comparison of a field with a value in
//! conjunctive position (the whole filter or a term of a top-level `&&`) also gets a plain
//! `(data -> 'a') = $n` or range conjunct that the exact condition implies: it leaves the
//! result unchanged and lets a declared index on `(model, (data -> 'a'))` find the rows
//! ([`index_columns`]).
//!
//! Arithmetic follows the evaluator: integers while the result fits `i64`, else `float8`;
//! a float result is written with a fraction digit (`4.0`), so that it stays a float. Known
//! gap: a float written in exponent form within the `i64` range (`1e16`, as serde writes it)
//! reads as an integer here, so arithmetic on it is exact where the evaluator rounds.

use serde_json::Value;

use crate::expr::{BinaryOp, Expr, Function, UnaryOp, truthy};

/// A boolean SQL condition with its parameters: `$n` is `params[n - first]`, each a `jsonb`.
#[derive(Debug, Clone, PartialEq)]
pub struct PgFilter {
    /// The condition, to put in a `WHERE` clause.
    pub sql: String,
    /// Values of its placeholders, in number order.
    pub params: Vec<Value>,
}

/// A part of the filter language the PostgreSQL compiler does not cover yet.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0} in a filter is not supported on PostgreSQL yet")]
pub struct NotYet(pub &'static str);

/// Compile a filter whose placeholders start at `$first`.
pub fn compile(expr: &Expr, first: usize) -> Result<PgFilter, NotYet> {
    let mut compiler = Compiler {
        first,
        params: Vec::new(),
        shared: 0,
    };
    let sql = compiler.conjunct(expr)?;
    Ok(PgFilter {
        sql,
        params: compiler.params,
    })
}

/// The ISO 8601 form the API shows (`2024-03-19T13:55:55.772Z`) of a milliseconds column.
/// Seconds and milliseconds are added apart: an interval times a large number goes through
/// `float8` and would lose the last millisecond.
pub fn iso(column: &str) -> String {
    format!(
        "to_char(TIMESTAMP 'epoch' + ({column} / 1000) * INTERVAL '1 second' \
         + ({column} % 1000) * INTERVAL '1 millisecond', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
    )
}

/// The `ORDER BY` clause for `(field path, descending)` keys: null and missing values first
/// ascending, last descending, then by kind and value as `expr::sort_cmp`; ties by `id`.
pub fn order_by(sort: &[(String, bool)]) -> Result<String, NotYet> {
    let mut terms = Vec::new();
    for (path, desc) in sort {
        let direction = if *desc { "DESC" } else { "ASC" };
        for expr in sort_exprs(path)? {
            terms.push(format!("{expr} {direction}"));
        }
    }
    if !terms.iter().any(|t| t.starts_with("id ")) {
        terms.push("id ASC".into());
    }
    Ok(format!("ORDER BY {}", terms.join(", ")))
}

/// The elements of a declared index (after `model`): each field's value as `data #> path`,
/// then the `ORDER BY` expressions of each sort key and `id`, as [`order_by`] writes them.
pub fn index_columns(fields: &[String], sort: &[String]) -> Result<Vec<String>, NotYet> {
    let mut columns = Vec::new();
    for path in fields {
        let segments: Vec<String> = path.split('.').map(String::from).collect();
        check_path(&segments)?;
        if column(&segments).is_some() {
            return Err(NotYet("an index field is a path in data, not a column"));
        }
        columns.push(format!("({})", json_path(&segments)));
    }
    for path in sort {
        columns.extend(sort_exprs(path)?);
    }
    if !sort.is_empty() && !columns.iter().any(|c| c == "id") {
        columns.push("id".into());
    }
    Ok(columns)
}

/// The expressions one sort key orders by: its kind, then its value by kind (the column
/// itself for `_id`, `createdAt` and `updatedAt`; nothing below them, always missing).
fn sort_exprs(path: &str) -> Result<Vec<String>, NotYet> {
    let segments: Vec<String> = path.split('.').map(String::from).collect();
    let segments = match segments.split_first() {
        Some((first, rest)) if first == "this" && !rest.is_empty() => rest.to_vec(),
        _ => segments,
    };
    check_path(&segments)?;
    Ok(match column(&segments) {
        Some(Column::Id) => vec!["id".into()],
        Some(Column::CreatedAt) => vec!["created_at".into()],
        Some(Column::UpdatedAt) => vec!["updated_at".into()],
        Some(Column::Missing) => Vec::new(),
        None => {
            let v = json_path(&segments);
            vec![
                format!(
                    "(CASE jsonb_typeof({v}) WHEN 'boolean' THEN 1 WHEN 'number' THEN 2 \
                     WHEN 'string' THEN 3 WHEN 'array' THEN 4 WHEN 'object' THEN 5 ELSE 0 END)"
                ),
                format!("(CASE WHEN jsonb_typeof({v}) = 'boolean' THEN ({v})::boolean END)"),
                format!("(CASE WHEN jsonb_typeof({v}) = 'number' THEN ({v})::numeric END)"),
                format!(
                    "(CASE WHEN jsonb_typeof({v}) = 'string' THEN ({v} #>> '{{}}') END) \
                     COLLATE \"C\""
                ),
            ]
        }
    })
}

enum Column {
    Id,
    CreatedAt,
    UpdatedAt,
    /// Below `_id`, `createdAt` or `updatedAt`: always missing.
    Missing,
}

fn column(path: &[String]) -> Option<Column> {
    let column = match path.first().map(String::as_str) {
        Some("_id") => Column::Id,
        Some("createdAt") => Column::CreatedAt,
        Some("updatedAt") => Column::UpdatedAt,
        _ => return None,
    };
    Some(if path.len() == 1 {
        column
    } else {
        Column::Missing
    })
}

fn check_path(path: &[String]) -> Result<(), NotYet> {
    let valid = !path.is_empty()
        && path
            .iter()
            .all(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    if valid {
        Ok(())
    } else {
        Err(NotYet("this field path"))
    }
}

/// `data -> 'a' -> 'b'`: descends through objects only (`->` with a key on an array is NULL).
/// The segments are checked, so they may sit in string literals.
fn json_path(path: &[String]) -> String {
    let mut sql = String::from("data");
    for segment in path {
        sql.push_str(" -> '");
        sql.push_str(segment);
        sql.push('\'');
    }
    sql
}

/// A `jsonb` value expression, SQL NULL for null.
enum Val {
    /// Known null.
    Null,
    /// Cheap to write more than once (a field, a parameter).
    Simple(String),
    /// Computed: read at most once, else shared through a sub-select.
    Computed(String),
}

const LOWER: &str = "translate({x}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')";
const UPPER: &str = "translate({x}, 'abcdefghijklmnopqrstuvwxyz', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ')";

struct Compiler {
    first: usize,
    params: Vec<Value>,
    shared: usize,
}

impl Compiler {
    fn param(&mut self, value: Value) -> String {
        self.params.push(value);
        format!("${}::jsonb", self.first + self.params.len() - 1)
    }

    /// The SQL that names `value`; a computed value gets a sub-select in `from`.
    fn bind(&mut self, value: Val, from: &mut Vec<String>) -> String {
        match value {
            Val::Null => "NULL::jsonb".into(),
            Val::Simple(sql) => sql,
            Val::Computed(sql) => {
                self.shared += 1;
                let n = self.shared;
                // `OFFSET 0` keeps the planner from pulling the sub-select up, which would
                // copy `sql` into every use again.
                from.push(format!("(SELECT {sql} AS _v{n} OFFSET 0) AS _s{n}"));
                format!("_v{n}")
            }
        }
    }

    /// `body` with the value's SQL, which it may use several times.
    fn share(&mut self, value: Val, body: impl FnOnce(&str) -> String) -> String {
        let mut from = Vec::new();
        let v = self.bind(value, &mut from);
        wrap(body(&v), from)
    }

    /// `body` with both values' SQL, which it may use several times.
    fn share2(&mut self, a: Val, b: Val, body: impl FnOnce(&str, &str) -> String) -> String {
        let mut from = Vec::new();
        let a = self.bind(a, &mut from);
        let b = self.bind(b, &mut from);
        wrap(body(&a, &b), from)
    }

    fn cond(&mut self, expr: &Expr) -> Result<String, NotYet> {
        Ok(match expr {
            Expr::Literal(value) => bool_sql(truthy(value)),
            Expr::Exists(path) => {
                check_path(path)?;
                match column(path) {
                    Some(Column::Missing) => bool_sql(false),
                    Some(_) => bool_sql(true),
                    None => format!("({} IS NOT NULL)", field(path)),
                }
            }
            Expr::Unary(UnaryOp::Not, inner) => format!("(NOT {})", self.cond(inner)?),
            Expr::And(items) => self.junction(items, " AND ", true)?,
            Expr::Or(items) => self.junction(items, " OR ", false)?,
            Expr::Binary(op, l, r) => match op {
                BinaryOp::Eq => {
                    let (a, b) = (self.value(l)?, self.value(r)?);
                    self.share2(a, b, equal)
                }
                BinaryOp::Ne => {
                    let (a, b) = (self.value(l)?, self.value(r)?);
                    format!("(NOT {})", self.share2(a, b, equal))
                }
                BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                    let symbol = op.symbol();
                    let (a, b) = (self.value(l)?, self.value(r)?);
                    self.share2(a, b, |a, b| ordered(symbol, a, b))
                }
                BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div => {
                    let value = self.value(expr)?;
                    self.truthy(value)
                }
            },
            Expr::Call(function, args) => match (function, args.as_slice()) {
                (Function::In, [list, item]) => {
                    let (list, item) = (self.value(list)?, self.value(item)?);
                    self.share2(list, item, |list, item| {
                        format!(
                            "(EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN \
                             jsonb_typeof({list}) = 'array' THEN {list} END) AS _e \
                             WHERE {}))",
                            equal("NULLIF(_e.value, 'null'::jsonb)", item)
                        )
                    })
                }
                (Function::Includes | Function::StartsWith | Function::EndsWith, [a, b]) => {
                    let test = match function {
                        Function::Includes => "strpos({a}, {b}) > 0",
                        Function::StartsWith => "left({a}, length({b})) = {b}",
                        _ => "right({a}, length({b})) = {b}",
                    };
                    let (a, b) = (self.value(a)?, self.value(b)?);
                    self.share2(a, b, |a, b| {
                        let test = test
                            .replace("{a}", &format!("({a} #>> '{{}}')"))
                            .replace("{b}", &format!("({b} #>> '{{}}')"));
                        format!(
                            "(CASE WHEN jsonb_typeof({a}) = 'string' AND jsonb_typeof({b}) = \
                             'string' THEN {test} ELSE false END)"
                        )
                    })
                }
                _ => {
                    let value = self.value(expr)?;
                    self.truthy(value)
                }
            },
            Expr::Field(_) | Expr::Unary(_, _) => {
                let value = self.value(expr)?;
                self.truthy(value)
            }
        })
    }

    /// A condition in conjunctive position: the terms of `&&` in turn, and a comparison of a
    /// field with a value preceded by its [`Compiler::sargable`] form.
    fn conjunct(&mut self, expr: &Expr) -> Result<String, NotYet> {
        match expr {
            Expr::And(items) if !items.is_empty() => {
                let parts = items
                    .iter()
                    .map(|item| self.conjunct(item))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(format!("({})", parts.join(" AND ")))
            }
            _ => {
                let sargable = self.sargable(expr);
                let exact = self.cond(expr)?;
                Ok(match sargable {
                    Some(sargable) => format!("({sargable} AND {exact})"),
                    None => exact,
                })
            }
        }
    }

    /// For a comparison of a field with a value, a condition an index on the field can serve
    /// that the exact condition implies (so adding it changes nothing):
    /// - `==` a string, number or boolean: `(data -> 'a') = $n`. The exact condition is this
    ///   same `jsonb` equality once both sides are known not to be null.
    /// - `<`, `<=`, `>`, `>=` a number: the same operator on `jsonb`, which orders numbers
    ///   numerically, as the exact condition does once it has found two numbers. Every
    ///   number sorts below every boolean (`jsonb` orders null < string < number < boolean <
    ///   array < object), so `>`/`>=` also get `< 'false'` and read numbers only; `<`/`<=`
    ///   read strings and nulls too (nothing lies between the strings and the numbers).
    ///   Strings are left out: `jsonb` orders them by the database's collation, the
    ///   evaluator byte-wise.
    /// - `_id ==` a string: `id = $n`, for the primary key.
    fn sargable(&mut self, expr: &Expr) -> Option<String> {
        let Expr::Binary(op, l, r) = expr else {
            return None;
        };
        let (path, value, op) = match (l.as_ref(), r.as_ref()) {
            (Expr::Field(path), Expr::Literal(value)) => (path, value, *op),
            (Expr::Literal(value), Expr::Field(path)) => (path, value, mirrored(*op)?),
            _ => return None,
        };
        check_path(path).ok()?;
        match (column(path), op, value) {
            (Some(Column::Id), BinaryOp::Eq, Value::String(_)) => {
                let p = self.param(value.clone());
                Some(format!("id = ({p} #>> '{{}}')"))
            }
            (Some(_), _, _) => None,
            (None, BinaryOp::Eq, Value::String(_) | Value::Number(_) | Value::Bool(_))
            | (None, BinaryOp::Lt | BinaryOp::Le, Value::Number(_)) => {
                let p = self.param(value.clone());
                Some(format!("({}) {} {p}", json_path(path), sql_symbol(op)))
            }
            (None, BinaryOp::Gt | BinaryOp::Ge, Value::Number(_)) => {
                let p = self.param(value.clone());
                let f = json_path(path);
                Some(format!(
                    "({f}) {} {p} AND ({f}) < 'false'::jsonb",
                    sql_symbol(op)
                ))
            }
            _ => None,
        }
    }

    fn junction(&mut self, items: &[Expr], op: &str, empty: bool) -> Result<String, NotYet> {
        let parts = items
            .iter()
            .map(|item| self.cond(item))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(if parts.is_empty() {
            bool_sql(empty)
        } else {
            format!("({})", parts.join(op))
        })
    }

    fn truthy(&mut self, value: Val) -> String {
        self.share(value, |v| {
            format!(
                "(CASE WHEN {v} IS NULL THEN false \
                 WHEN jsonb_typeof({v}) = 'boolean' THEN {v} = 'true'::jsonb \
                 WHEN jsonb_typeof({v}) = 'number' THEN ({v})::numeric <> 0 \
                 WHEN jsonb_typeof({v}) = 'string' THEN {v} <> '\"\"'::jsonb \
                 ELSE true END)"
            )
        })
    }

    fn value(&mut self, expr: &Expr) -> Result<Val, NotYet> {
        Ok(match expr {
            Expr::Literal(Value::Null) => Val::Null,
            Expr::Literal(value) => Val::Simple(self.param(value.clone())),
            Expr::Field(path) => {
                check_path(path)?;
                match column(path) {
                    Some(Column::Id) => Val::Simple("to_jsonb(id)".into()),
                    Some(Column::CreatedAt) => {
                        Val::Simple(format!("to_jsonb({})", iso("created_at")))
                    }
                    Some(Column::UpdatedAt) => {
                        Val::Simple(format!("to_jsonb({})", iso("updated_at")))
                    }
                    Some(Column::Missing) => Val::Null,
                    None => Val::Simple(field(path)),
                }
            }
            Expr::Unary(UnaryOp::Plus, inner) => {
                let inner = self.value(inner)?;
                Val::Computed(self.share(inner, |x| {
                    format!("(CASE WHEN jsonb_typeof({x}) = 'number' THEN {x} END)")
                }))
            }
            Expr::Unary(UnaryOp::Neg, inner) => {
                let inner = self.value(inner)?;
                Val::Computed(self.share(inner, |x| {
                    format!(
                        "(CASE WHEN jsonb_typeof({x}) = 'number' THEN to_jsonb(-(({x})::numeric)) END)"
                    )
                }))
            }
            Expr::Call(Function::ToLower | Function::ToUpper, args) => {
                let [inner] = args.as_slice() else {
                    return Err(NotYet("this call"));
                };
                let template = if matches!(expr, Expr::Call(Function::ToLower, _)) {
                    LOWER
                } else {
                    UPPER
                };
                let inner = self.value(inner)?;
                Val::Computed(self.share(inner, |x| {
                    let text = template.replace("{x}", &format!("({x} #>> '{{}}')"));
                    format!("(CASE WHEN jsonb_typeof({x}) = 'string' THEN to_jsonb({text}) END)")
                }))
            }
            Expr::Call(Function::Size, args) => {
                let [inner] = args.as_slice() else {
                    return Err(NotYet("this call"));
                };
                let inner = self.value(inner)?;
                Val::Computed(self.share(inner, |x| {
                    format!(
                        "(CASE WHEN jsonb_typeof({x}) = 'array' THEN to_jsonb(jsonb_array_length({x})) END)"
                    )
                }))
            }
            Expr::Binary(
                op @ (BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div),
                l,
                r,
            ) => {
                let (a, b) = (self.value(l)?, self.value(r)?);
                Val::Computed(self.share2(a, b, |a, b| arithmetic(*op, a, b)))
            }
            // Conditions as values: `true` or `false`.
            Expr::Exists(_)
            | Expr::Unary(UnaryOp::Not, _)
            | Expr::And(_)
            | Expr::Or(_)
            | Expr::Binary(_, _, _)
            | Expr::Call(_, _) => Val::Computed(format!("to_jsonb({})", self.cond(expr)?)),
        })
    }
}

/// `body` evaluated over the sub-selects that compute its shared values.
fn wrap(body: String, from: Vec<String>) -> String {
    if from.is_empty() {
        body
    } else {
        format!("(SELECT {body} FROM {})", from.join(" CROSS JOIN "))
    }
}

/// The operator with its operands swapped: `1 < a` is `a > 1`.
fn mirrored(op: BinaryOp) -> Option<BinaryOp> {
    Some(match op {
        BinaryOp::Eq => BinaryOp::Eq,
        BinaryOp::Lt => BinaryOp::Gt,
        BinaryOp::Le => BinaryOp::Ge,
        BinaryOp::Gt => BinaryOp::Lt,
        BinaryOp::Ge => BinaryOp::Le,
        _ => return None,
    })
}

/// The SQL operator of a comparison (`==` is `=`).
fn sql_symbol(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Eq => "=",
        other => other.symbol(),
    }
}

/// A field of `data`, SQL NULL when missing or null.
fn field(path: &[String]) -> String {
    format!("NULLIF({}, 'null'::jsonb)", json_path(path))
}

fn bool_sql(value: bool) -> String {
    if value { "true" } else { "false" }.into()
}

/// `expr::equal`: both null; or the same kind, not a list or object, and equal (numbers as
/// numbers: `jsonb` compares them as `numeric`).
fn equal(a: &str, b: &str) -> String {
    format!(
        "(CASE WHEN {a} IS NULL OR {b} IS NULL THEN ({a} IS NULL AND {b} IS NULL) \
         WHEN jsonb_typeof({a}) IN ('array', 'object') THEN false ELSE {a} = {b} END)"
    )
}

/// An integer as the evaluator reads numbers: no fraction digits written, within `i64`.
fn is_int(n: &str) -> String {
    format!("(scale({n}) = 0 AND {n} BETWEEN {I64_MIN} AND {I64_MAX})")
}

const I64_MIN: &str = "-9223372036854775808";
const I64_MAX: &str = "9223372036854775807";
/// Beyond this an `f64` result is infinite, which the evaluator turns into null.
const F64_MAX: &str = "1.7976931348623157e308";
/// Below half the smallest subnormal an `f64` result is zero (PostgreSQL would raise).
const F64_TINY: &str = "2.4703282292062328e-324";

/// A `float8` as the evaluator's float, written with at least one fraction digit so that
/// later arithmetic keeps treating it as a float. Integral values within `i64` (every float of
/// 2^53 or more is integral) are written exactly, as the evaluator compares them with integers
/// exactly; others with their shortest digits, which keep every order and equality.
fn float_json(float: &str) -> String {
    format!(
        "(SELECT to_jsonb(round(_n, greatest(1, scale(_n)))) FROM (SELECT CASE \
         WHEN _f >= -9223372036854775808::float8 AND _f < 9223372036854775808::float8 \
         AND _f = trunc(_f) THEN _f::bigint::numeric ELSE _f::text::numeric END AS _n \
         FROM (SELECT ({float}) AS _f OFFSET 0) AS _r OFFSET 0) AS _q)"
    )
}

/// `+ - * /` as `expr::evaluate`: integers while the exact result fits `i64`, else `float8`
/// (infinite → null, division by zero → null); `+` joins two strings. The exact `numeric`
/// result decides overflow first, so `float8` never raises; type tests come first, so no
/// cast sees a value of another kind, even when the planner folds constants.
fn arithmetic(op: BinaryOp, a: &str, b: &str) -> String {
    let symbol = op.symbol();
    let (an, bn) = (format!("({a})::numeric"), format!("({b})::numeric"));
    let (af, bf) = (format!("({a})::float8"), format!("({b})::float8"));
    let numbers = match op {
        BinaryOp::Div => {
            let exact = format!("({an} / NULLIF({bn}, 0))");
            format!(
                "(CASE WHEN {bn} = 0 THEN NULL WHEN abs({exact}) > {F64_MAX} THEN NULL \
                 WHEN {an} <> 0 AND abs({exact}) < {F64_TINY} THEN '0.0'::jsonb \
                 ELSE {} END)",
                float_json(&format!("{af} / NULLIF({bf}, 0)"))
            )
        }
        _ => {
            let exact = format!("({an} {symbol} {bn})");
            format!(
                "(CASE WHEN {} AND {} AND {exact} BETWEEN {I64_MIN} AND {I64_MAX} \
                 THEN to_jsonb({exact}) \
                 WHEN abs({exact}) > {F64_MAX} THEN NULL \
                 WHEN {exact} <> 0 AND abs({exact}) < {F64_TINY} THEN '0.0'::jsonb \
                 ELSE {} END)",
                is_int(&an),
                is_int(&bn),
                float_json(&format!("{af} {symbol} {bf}"))
            )
        }
    };
    let text = if op == BinaryOp::Add {
        format!(
            " WHEN jsonb_typeof({a}) = 'string' AND jsonb_typeof({b}) = 'string' \
             THEN to_jsonb(({a} #>> '{{}}') || ({b} #>> '{{}}'))"
        )
    } else {
        String::new()
    };
    format!(
        "(CASE WHEN jsonb_typeof({a}) = 'number' AND jsonb_typeof({b}) = 'number' \
         THEN {numbers}{text} END)"
    )
}

/// `expr::compare` then the operator: two strings byte-wise, two numbers numerically, else
/// false.
fn ordered(symbol: &str, a: &str, b: &str) -> String {
    format!(
        "(CASE WHEN jsonb_typeof({a}) = 'string' AND jsonb_typeof({b}) = 'string' \
         THEN ({a} #>> '{{}}') COLLATE \"C\" {symbol} ({b} #>> '{{}}') COLLATE \"C\" \
         WHEN jsonb_typeof({a}) = 'number' AND jsonb_typeof({b}) = 'number' \
         THEN ({a})::numeric {symbol} ({b})::numeric ELSE false END)"
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use serde_json::json;
    use sqlx_core::connection::Connection;
    use sqlx_core::row::Row;
    use sqlx_postgres::PgConnection;

    use super::*;
    use crate::clock;
    use crate::expr::{parse, sort_cmp};
    use crate::store::conformance::TestDatabase;
    use crate::store::filter_props::{
        Object, arb_expr, arb_objects, arb_path, arb_scalar, arb_sort, arb_typed_expr,
        check_selected, expected, object,
    };

    /// A test database with a `rows` table shaped as the compiler expects, and a runtime.
    struct Rows {
        runtime: tokio::runtime::Runtime,
        conn: PgConnection,
        _db: TestDatabase,
    }

    impl Rows {
        fn new() -> Self {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let (db, conn) = runtime.block_on(async {
                let db = TestDatabase::create().await;
                let mut conn = PgConnection::connect(&db.url).await.unwrap();
                sqlx_core::query::query(
                    "CREATE TABLE rows (id TEXT PRIMARY KEY, data JSONB NOT NULL, \
                     created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)",
                )
                .execute(&mut conn)
                .await
                .unwrap();
                (db, conn)
            });
            Self {
                runtime,
                conn,
                _db: db,
            }
        }

        /// The ids `sql` selects (in the order of `order`) from exactly these objects.
        fn select(&mut self, objects: &[Object], sql: &str, params: &[Value]) -> Vec<String> {
            let rows: Vec<Value> = objects
                .iter()
                .map(|o| {
                    json!({"id": o.id, "data": o.data, "created_at": o.created_at,
                           "updated_at": o.updated_at})
                })
                .collect();
            let conn = &mut self.conn;
            self.runtime.block_on(async {
                sqlx_core::query::query("DELETE FROM rows")
                    .execute(&mut *conn)
                    .await
                    .unwrap();
                sqlx_core::query::query(
                    "INSERT INTO rows SELECT * FROM jsonb_to_recordset($1) \
                     AS x(id TEXT, data JSONB, created_at BIGINT, updated_at BIGINT)",
                )
                .bind(Value::Array(rows))
                .execute(&mut *conn)
                .await
                .unwrap();
                let mut query = sqlx_core::query::query(sql);
                for param in params {
                    query = query.bind(param.clone());
                }
                query
                    .fetch_all(&mut *conn)
                    .await
                    .unwrap_or_else(|err| panic!("{err}\nsql: {sql}"))
                    .iter()
                    .map(|row| row.get::<String, _>(0))
                    .collect()
            })
        }

        fn filter(&mut self, objects: &[Object], expr: &Expr) -> (Vec<String>, PgFilter) {
            let compiled = compile(expr, 1).unwrap();
            let sql = format!("SELECT id FROM rows WHERE {} ORDER BY id", compiled.sql);
            (self.select(objects, &sql, &compiled.params), compiled)
        }
    }

    #[test]
    fn examples_select_what_evaluate_selects() {
        let objects = vec![
            object(
                "o1",
                json!({"title": "Rust", "count": 3, "tags": ["a", "b"], "p": {"c": "Oslo"}}),
            ),
            object(
                "o2",
                json!({"title": "rust", "count": 3.0, "done": true, "tags": []}),
            ),
            object(
                "o3",
                json!({"title": "Go", "count": "3", "done": null, "p": {"c": null}}),
            ),
            object("o4", json!({"count": -1, "title": "", "tags": ["a"]})),
        ];
        let mut rows = Rows::new();
        for src in [
            "count == 3",
            "count != 3",
            "count > 0 && count <= 3",
            "title < 'a'",
            "title >= 'R'",
            "TOLOWER(title) == 'rust'",
            "TOUPPER(title) == 'GO'",
            "INCLUDES(title, 'us')",
            "STARTSWITH(title, 'R') || ENDSWITH(title, 'o')",
            "EXISTS(done)",
            "!EXISTS(p.c)",
            "p.c == 'Oslo'",
            "IN(['Rust', 'Go', 3], title)",
            "IN(tags, 'a')",
            "SIZE(tags) == 0",
            "title",
            "!title",
            "done == null",
            "-count == 1",
            "_id == 'o2' || createdAt > '2024-03-19T13:55:55.771Z'",
            "updatedAt == '2024-03-20T08:00:00.000Z'",
            "_id.x == null",
            "3 == count",
            "count == 3.0",
            "0 < count && count < 4",
            "count > -2",
            "-1 >= count",
            "done == true && 'Rust' == title",
            "'o2' == _id",
            "_id == 3",
            "p.c == 'Oslo' && count >= 3",
        ] {
            let expr = parse(src).unwrap();
            let (got, compiled) = rows.filter(&objects, &expr);
            assert_eq!(got, expected(&objects, &expr), "{src}\n{}", compiled.sql);
        }
    }

    #[test]
    fn comparisons_with_a_value_get_an_index_condition() {
        let sql = |src: &str| compile(&parse(src).unwrap(), 1).unwrap().sql;
        for (src, plain) in [
            ("status == 'open'", "(data -> 'status') = $1::jsonb AND "),
            ("'open' == status", "(data -> 'status') = $1::jsonb AND "),
            ("a.b == 3", "(data -> 'a' -> 'b') = $1::jsonb AND "),
            ("done == false", "(data -> 'done') = $1::jsonb AND "),
            ("price <= 10", "(data -> 'price') <= $1::jsonb AND "),
            (
                "10 < price",
                "(data -> 'price') > $1::jsonb AND (data -> 'price') < 'false'",
            ),
            ("_id == 'o1'", "(id = ($1::jsonb #>> '{}') AND "),
            (
                "x == 1 && (y == 2 && z < 3)",
                "(data -> 'z') < $5::jsonb AND ",
            ),
        ] {
            assert!(sql(src).contains(plain), "{src}: {}", sql(src));
        }
        // Only where it holds: not under `||` or `!`, not for strings ordered byte-wise,
        // null, lists or computed values.
        for src in [
            "status == 'a' || status == 'b'",
            "!(status == 'open')",
            "status != 'open'",
            "title < 'm'",
            "status == null",
            "tags == [1]",
            "n + 1 == 2",
            "createdAt == '2024-03-19T13:55:55.772Z'",
        ] {
            let sql = sql(src);
            assert!(
                !sql.contains("((data -> ") && !sql.contains("(id = ("),
                "{src}: {sql}"
            );
        }
    }

    #[test]
    fn arithmetic_select_what_evaluate_selects() {
        let objects = vec![
            object("o1", json!({"n": 3, "f": 0.1, "s": "ab", "big": i64::MAX})),
            object("o2", json!({"n": -2, "f": 2.5, "s": "a", "big": 1e300})),
            object("o3", json!({"n": 0, "f": 0.2, "s": "", "big": i64::MIN})),
        ];
        let mut rows = Rows::new();
        for src in [
            "n + 1 == 4",
            "n * 2 < 0",
            "n / 2 == 1.5",
            "n / 0 == null",
            "f + 0.2 == 0.30000000000000004",
            "f * 2 == 0.4",
            "s + 'c' == 'abc'",
            "big + 1 > big",
            "big * big == null",
            "big - 1 < big",
            "(n * 1.0 + 1) / 2 == 2",
            "1e300 * 1e300 == null",
            "1e-200 * 1e-200 == 0",
            "-big > 0",
            "n - f",
        ] {
            let expr = parse(src).unwrap();
            let (got, compiled) = rows.filter(&objects, &expr);
            assert_eq!(got, expected(&objects, &expr), "{src}\n{}", compiled.sql);
        }
    }

    #[test]
    fn deep_expressions_stay_linear_and_run() {
        let objects = vec![
            object("o1", json!({"n": 3, "title": "Rust"})),
            object("o2", json!({"n": 2.5, "title": "x"})),
        ];
        let mut rows = Rows::new();
        // 63 levels, each reading its operand several times: shared sub-selects (kept from
        // being pulled up) keep both the text and the plan linear.
        let mut arithmetic = "n".to_string();
        for i in 0..62 {
            arithmetic = if i % 2 == 0 {
                format!("({arithmetic} + 1)")
            } else {
                format!("({arithmetic} * 2)")
            };
        }
        let mut tests = "n".to_string();
        for i in 0..63 {
            tests = match i % 3 {
                0 => format!("({tests} == 2.5)"),
                1 => format!("({tests} != false)"),
                _ => format!("IN([true, 1], {tests})"),
            };
        }
        let mut cases = "title".to_string();
        for _ in 0..31 {
            cases = format!("TOLOWER(TOUPPER({cases}))");
        }
        for src in [
            format!("{arithmetic} > 100"),
            tests,
            format!("{cases} == 'rust'"),
        ] {
            let expr = parse(&src).unwrap();
            let compiled = compile(&expr, 1).unwrap();
            assert!(compiled.sql.len() < 200_000, "{} bytes", compiled.sql.len());
            let (got, _) = rows.filter(&objects, &expr);
            assert_eq!(got, expected(&objects, &expr), "{src}");
        }
    }

    fn runner(cases: u32) -> TestRunner {
        TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        })
    }

    #[test]
    fn sql_selects_exactly_what_evaluate_selects() {
        selects_what_evaluate_selects(1500, prop_oneof![arb_expr(), arb_typed_expr()]);
    }

    /// Run `cases` filters drawn from `exprs` on drawn objects: the SQL selects exactly the
    /// objects `evaluate` selects.
    fn selects_what_evaluate_selects(cases: u32, exprs: impl Strategy<Value = Expr>) {
        let rows = std::cell::RefCell::new(Rows::new());
        runner(cases)
            .run(&(arb_objects(), exprs), |(objects, expr)| {
                let (got, compiled) = rows.borrow_mut().filter(&objects, &expr);
                check_selected(got, &objects, &expr, &compiled.sql, &compiled.params)
            })
            .unwrap();
    }

    /// Comparisons of a field with a value, alone or under `&&`: the filters that get an
    /// index condition besides the exact one.
    fn arb_indexable_expr() -> impl Strategy<Value = Expr> {
        let compare = prop::sample::select(vec![
            BinaryOp::Eq,
            BinaryOp::Lt,
            BinaryOp::Le,
            BinaryOp::Gt,
            BinaryOp::Ge,
        ]);
        let one = (compare, arb_path(), arb_scalar(), any::<bool>())
            .prop_map(|(op, path, value, field_first)| {
                let (field, value) = (Expr::Field(path), Expr::Literal(value));
                let (l, r) = if field_first {
                    (field, value)
                } else {
                    (value, field)
                };
                Expr::Binary(op, Box::new(l), Box::new(r))
            })
            .boxed();
        prop_oneof![
            one.clone(),
            prop::collection::vec(one.clone(), 1..4).prop_map(Expr::And),
            (one.clone(), prop::collection::vec(one, 1..3))
                .prop_map(|(first, rest)| { Expr::And(vec![first, Expr::And(rest)]) }),
        ]
    }

    #[test]
    fn index_conditions_change_nothing() {
        selects_what_evaluate_selects(600, arb_indexable_expr());
    }

    #[test]
    fn order_by_sorts_as_sort_cmp() {
        let rows = std::cell::RefCell::new(Rows::new());
        runner(400)
            .run(&(arb_objects(), arb_sort()), |(objects, sort)| {
                let sql = format!("SELECT id FROM rows {}", order_by(&sort).unwrap());
                let got = rows.borrow_mut().select(&objects, &sql, &[]);
                let mut want: Vec<(String, Value)> = objects
                    .iter()
                    .map(|o| (o.id.clone(), o.visible()))
                    .collect();
                want.sort_by(|(x_id, x), (y_id, y)| {
                    sort.iter()
                        .fold(std::cmp::Ordering::Equal, |order, (path, desc)| {
                            order.then_with(|| {
                                let path = path.strip_prefix("this.").unwrap_or(path);
                                let key = |v: &Value| {
                                    path.split('.')
                                        .try_fold(v, |v, k| v.as_object()?.get(k))
                                        .cloned()
                                        .unwrap_or(Value::Null)
                                };
                                let o = sort_cmp(&key(x), &key(y));
                                if *desc { o.reverse() } else { o }
                            })
                        })
                        .then_with(|| x_id.cmp(y_id))
                });
                let want: Vec<String> = want.into_iter().map(|(id, _)| id).collect();
                prop_assert_eq!(got, want, "{}", sql);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn times_render_as_the_api_does() {
        let rows = std::cell::RefCell::new(Rows::new());
        runner(200)
            .run(&(0i64..253_402_300_799_999), |ms| {
                let sql = format!("SELECT {} FROM (SELECT {ms}::BIGINT AS t) AS x", iso("t"));
                let got = rows.borrow_mut().select(&[], &sql, &[]);
                prop_assert_eq!(got, vec![clock::iso(ms)]);
                Ok(())
            })
            .unwrap();
    }
}
