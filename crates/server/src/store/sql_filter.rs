//! Filter expressions as SQLite: [`compile`] turns an [`Expr`] into a boolean fragment over a
//! row of `objects` that agrees with `truthy(evaluate(..))` on every object (protocol.md §5.5),
//! and [`order_by`] gives the sort of §5.7.
//!
//! Fields are read with `json_type` and `json_extract`; computed values (arithmetic, `TOLOWER`,
//! `SIZE`, …) are NULL, INTEGER/REAL or TEXT; booleans are 0/1. Class tests (`json_type`,
//! `typeof`) guard every comparison, so SQL's own coercions and three-valued logic never show:
//! each boolean fragment is 0 or 1. A sub-expression read more than once is computed once in a
//! derived table (`(SELECT … FROM (SELECT <sub> AS _b1))`), so the SQL grows linearly with the
//! expression. User strings are always parameters; field paths are checked to be
//! `[A-Za-z0-9_]` segments and written into the SQL text, so that an expression index on
//! `json_extract(data, '$.path')` serves the filter.

use rusqlite::types::Value as SqlValue;
use serde_json::Value;

use crate::expr::{BinaryOp, Expr, ExprError, Function, UnaryOp, compare, equal, evaluate, truthy};

/// A boolean SQL fragment (always 0 or 1) with its `?` parameters, in order.
///
/// It names the columns `id`, `data`, `created_at` and `updated_at` of `objects` unqualified.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlFilter {
    /// The fragment, to put in a `WHERE` clause.
    pub sql: String,
    /// Values for its `?` placeholders, in order.
    pub params: Vec<SqlValue>,
}

/// Compile a filter expression into a boolean SQL fragment.
pub fn compile(expr: &Expr) -> Result<SqlFilter, ExprError> {
    let frag = Compiler::default().cond(expr)?.frag();
    Ok(SqlFilter {
        sql: frag.sql,
        params: frag.params,
    })
}

/// The `ORDER BY` clause for `(field path, descending)` keys: null and missing values first
/// ascending, last descending, then by kind and value as `expr::sort_cmp`; ties by `id`.
pub fn order_by(sort: &[(String, bool)]) -> Result<String, ExprError> {
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

/// The columns of a declared index (after `model`): the value of each field as comparisons
/// read it, then the `ORDER BY` expressions of each sort key and `id`, written exactly as
/// [`compile`] and [`order_by`] write them so that SQLite matches them.
pub fn index_columns(fields: &[String], sort: &[String]) -> Result<Vec<String>, ExprError> {
    let mut columns = Vec::new();
    for path in fields {
        let segments = checked_segments(path)?;
        match field(&segments) {
            Target::Json(json_path) => columns.push(format!("json_extract(data, '{json_path}')")),
            Target::Column(_) | Target::Missing => return Err(bad_path(0)),
        }
    }
    for path in sort {
        columns.extend(sort_exprs(path)?);
    }
    if !sort.is_empty() && !columns.iter().any(|c| c == "id") {
        columns.push("id".into());
    }
    Ok(columns)
}

/// A field path as segments, a leading `this.` dropped, every character checked.
fn checked_segments(path: &str) -> Result<Vec<String>, ExprError> {
    let segments: Vec<String> = path.split('.').map(String::from).collect();
    let segments = match segments.split_first() {
        Some((first, rest)) if first == "this" && !rest.is_empty() => rest.to_vec(),
        _ => segments,
    };
    let mut offset = 0;
    for segment in &segments {
        if let Some(bad) = segment.chars().position(|c| !is_key_char(c)) {
            return Err(bad_path(offset + bad));
        }
        if segment.is_empty() {
            return Err(bad_path(offset));
        }
        offset += segment.chars().count() + 1;
    }
    Ok(segments)
}

/// The expressions one sort key orders by: its kind, then its value (the column itself for
/// `_id`, `createdAt` and `updatedAt`; nothing for paths below them, always missing).
fn sort_exprs(path: &str) -> Result<Vec<String>, ExprError> {
    let segments = checked_segments(path)?;
    Ok(match field(&segments) {
        Target::Column(_) => {
            let column = match segments[0].as_str() {
                "createdAt" => "created_at",
                "updatedAt" => "updated_at",
                _ => "id",
            };
            vec![column.to_string()]
        }
        Target::Missing => Vec::new(),
        // The path holds only checked characters, so it may sit in a string literal.
        Target::Json(json_path) => vec![
            format!(
                "CASE json_type(data, '{json_path}') WHEN 'true' THEN 1 WHEN 'false' THEN 1 \
                 WHEN 'integer' THEN 2 WHEN 'real' THEN 2 WHEN 'text' THEN 3 \
                 WHEN 'array' THEN 4 WHEN 'object' THEN 5 ELSE 0 END"
            ),
            format!(
                "CASE WHEN json_type(data, '{json_path}') IN ('array', 'object') THEN NULL \
                 ELSE json_extract(data, '{json_path}') END"
            ),
        ],
    })
}

fn bad_path(position: usize) -> ExprError {
    ExprError::Invalid {
        position,
        message: "a field path is names of letters, digits and '_' joined by '.'".into(),
    }
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

// ---------------------------------------------------------------------------------------------
// SQL fragments

/// SQL text with its parameters; text is only ever built from constants and other fragments.
#[derive(Debug, Clone, Default)]
struct Frag {
    sql: String,
    params: Vec<SqlValue>,
}

impl Frag {
    fn param(value: SqlValue) -> Self {
        Self {
            sql: "?".into(),
            params: vec![value],
        }
    }

    /// A generated column name such as `_b3`.
    fn name(prefix: &'static str, n: usize) -> Self {
        Self {
            sql: format!("{prefix}{n}"),
            params: Vec::new(),
        }
    }
}

trait Piece {
    fn put(self, out: &mut Frag);
}

impl Piece for &'static str {
    fn put(self, out: &mut Frag) {
        out.sql.push_str(self);
    }
}

impl Piece for &Frag {
    fn put(self, out: &mut Frag) {
        out.sql.push_str(&self.sql);
        out.params.extend(self.params.iter().cloned());
    }
}

impl Piece for Frag {
    fn put(self, out: &mut Frag) {
        out.sql.push_str(&self.sql);
        out.params.extend(self.params);
    }
}

/// Concatenate constant SQL and fragments, keeping parameters in textual order.
macro_rules! sql {
    ($($piece:expr),* $(,)?) => {{
        let mut out = Frag::default();
        $( Piece::put($piece, &mut out); )*
        out
    }};
}

/// A boolean: known at compile time, or SQL that is always 0 or 1.
#[derive(Debug, Clone)]
enum Cond {
    Known(bool),
    Sql(Frag),
}

impl Cond {
    fn frag(self) -> Frag {
        match self {
            Self::Known(true) => sql!["1"],
            Self::Known(false) => sql!["0"],
            Self::Sql(frag) => frag,
        }
    }
}

fn all_of(conds: Vec<Cond>) -> Cond {
    junction(conds, false, " AND ")
}

fn any_of(conds: Vec<Cond>) -> Cond {
    junction(conds, true, " OR ")
}

/// `AND`/`OR` of 0/1 operands, which is 0/1; `absorbing` decides alone.
fn junction(conds: Vec<Cond>, absorbing: bool, op: &'static str) -> Cond {
    let mut parts = Vec::new();
    for cond in conds {
        match cond {
            Cond::Known(b) if b == absorbing => return Cond::Known(absorbing),
            Cond::Known(_) => {}
            Cond::Sql(frag) => parts.push(frag),
        }
    }
    if parts.is_empty() {
        Cond::Known(!absorbing)
    } else {
        Cond::Sql(balanced(parts, op))
    }
}

/// Join as a balanced tree, so long lists stay within SQLite's expression depth.
fn balanced(mut parts: Vec<Frag>, op: &'static str) -> Frag {
    if parts.len() == 1 {
        return parts.remove(0);
    }
    let right = parts.split_off(parts.len() / 2);
    sql!["(", balanced(parts, op), op, balanced(right, op), ")"]
}

fn not(cond: Cond) -> Cond {
    match cond {
        Cond::Known(b) => Cond::Known(!b),
        Cond::Sql(frag) => Cond::Sql(sql!["(NOT ", frag, ")"]),
    }
}

/// `then` (0/1) where `cond` holds, else 0; `then` is not evaluated otherwise, which matters
/// for JSON functions that reject non-JSON text.
fn guard(cond: Cond, then: Frag) -> Cond {
    match cond {
        Cond::Known(false) => Cond::Known(false),
        Cond::Known(true) => Cond::Sql(then),
        Cond::Sql(test) => Cond::Sql(sql!["(CASE WHEN ", test, " THEN ", then, " ELSE 0 END)"]),
    }
}

/// `CASE` over arms whose results have the classes given; `None` when no arm can apply
/// (the value is null). Returns the SQL and the classes it can produce.
fn case(arms: Vec<(Cond, Frag, u8)>) -> Option<(Frag, u8)> {
    let mut whens = Vec::new();
    let mut otherwise = None;
    let mut can = 0;
    for (cond, result, classes) in arms {
        match cond {
            Cond::Known(false) => continue,
            Cond::Known(true) => {
                otherwise = Some(result);
                can |= classes;
                break;
            }
            Cond::Sql(test) => {
                whens.push((test, result));
                can |= classes;
            }
        }
    }
    if whens.is_empty() {
        return otherwise.map(|frag| (frag, can));
    }
    if otherwise.is_none() {
        can |= NULL;
    }
    let mut out = sql!["(CASE"];
    for (test, result) in whens {
        out = sql![out, " WHEN ", test, " THEN ", result];
    }
    if let Some(frag) = otherwise {
        out = sql![out, " ELSE ", frag];
    }
    Some((sql![out, " END)"], can))
}

// ---------------------------------------------------------------------------------------------
// Operands

const NULL: u8 = 1;
const TRUE: u8 = 2;
const FALSE: u8 = 4;
const NUM: u8 = 8;
const TEXT: u8 = 16;
const ARRAY: u8 = 32;
const OBJECT: u8 = 64;
const ANY: u8 = 127;

fn class_of(value: &Value) -> u8 {
    match value {
        Value::Null => NULL,
        Value::Bool(true) => TRUE,
        Value::Bool(false) => FALSE,
        Value::Number(_) => NUM,
        Value::String(_) => TEXT,
        Value::Array(_) => ARRAY,
        Value::Object(_) => OBJECT,
    }
}

/// `json_type` names of the classes in `mask`, as an SQL list body.
fn json_type_names(mask: u8) -> Frag {
    const NAMES: [(u8, &str); 7] = [
        (NULL, "'null'"),
        (TRUE, "'true'"),
        (FALSE, "'false'"),
        (NUM, "'integer', 'real'"),
        (TEXT, "'text'"),
        (ARRAY, "'array'"),
        (OBJECT, "'object'"),
    ];
    let mut out = Frag::default();
    for (class, names) in NAMES {
        if mask & class != 0 {
            if !out.sql.is_empty() {
                out.sql.push_str(", ");
            }
            out.sql.push_str(names);
        }
    }
    out
}

const ID: &str = "id";
const CREATED_AT: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', created_at / 1000.0, 'unixepoch')";
const UPDATED_AT: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', updated_at / 1000.0, 'unixepoch')";

/// Where a field path leads.
enum Target {
    /// A column expression of the row, always a string.
    Column(&'static str),
    /// Below `_id`, `createdAt` or `updatedAt`: always missing.
    Missing,
    /// A JSON path into `data`.
    Json(String),
}

fn field(path: &[String]) -> Target {
    let column = match path.first().map(String::as_str) {
        Some("_id") => ID,
        Some("createdAt") => CREATED_AT,
        Some("updatedAt") => UPDATED_AT,
        _ => return Target::Json(format!("$.{}", path.join("."))),
    };
    if path.len() == 1 {
        Target::Column(column)
    } else {
        Target::Missing
    }
}

fn check_path(path: &[String]) -> Result<(), ExprError> {
    if path.is_empty()
        || path
            .iter()
            .any(|s| s.is_empty() || !s.chars().all(is_key_char))
    {
        return Err(ExprError::Invalid {
            position: 0,
            message: format!("invalid field path '{}'", path.join(".")),
        });
    }
    Ok(())
}

/// A value an operator reads, perhaps several times.
#[derive(Debug, Clone)]
enum Operand {
    /// Known at compile time.
    Const(Value),
    /// In `data` at this JSON path.
    Field(String),
    /// A column expression of the row, always a string.
    Column(&'static str),
    /// A computed value bound to the column `_bN`, of the classes given.
    Value(usize, u8),
    /// A computed boolean (0/1) bound to the column `_bN`.
    Bool(usize),
    /// The current element of `json_each(…) AS _eN`.
    Elem(usize),
}

impl Operand {
    fn can(&self) -> u8 {
        match self {
            Self::Const(value) => class_of(value),
            Self::Field(_) | Self::Elem(_) => ANY,
            Self::Column(_) => TEXT,
            Self::Value(_, can) => *can,
            Self::Bool(_) => TRUE | FALSE,
        }
    }

    /// A JSON path, written into the SQL text so that an expression index on
    /// `json_extract(data, '$.a.b')` matches it. Paths are checked to be `$.` and key
    /// characters joined by `.`; anything else (never produced) would go as a parameter.
    fn path(path: &str) -> Frag {
        let safe = path.strip_prefix("$.").is_some_and(|rest| {
            rest.split('.')
                .all(|s| !s.is_empty() && s.chars().all(is_key_char))
        });
        if safe {
            Frag {
                sql: format!("'{path}'"),
                params: Vec::new(),
            }
        } else {
            Frag::param(SqlValue::Text(path.to_string()))
        }
    }

    /// Whether the value is of one of the classes in `mask`.
    fn is(&self, mask: u8) -> Cond {
        let can = self.can();
        if can & mask == 0 {
            return Cond::Known(false);
        }
        if can & !mask == 0 {
            return Cond::Known(true);
        }
        match self {
            Self::Field(path) => {
                // `json_type` is NULL for a missing field, which counts as null.
                let missing = if mask & NULL != 0 { "1" } else { "0" };
                Cond::Sql(sql![
                    "COALESCE(json_type(data, ",
                    Self::path(path),
                    ") IN (",
                    json_type_names(mask),
                    "), ",
                    missing,
                    ")"
                ])
            }
            Self::Elem(n) => Cond::Sql(sql![
                "(",
                Frag::name("_e", *n),
                ".type IN (",
                json_type_names(mask),
                "))"
            ]),
            // Computed values are null, numbers or strings (see `Compiler::value`).
            Self::Value(n, _) => {
                let b = Frag::name("_b", *n);
                let mut tests = Vec::new();
                if mask & NULL != 0 {
                    tests.push(Cond::Sql(sql!["(", &b, " IS NULL)"]));
                }
                if mask & NUM != 0 {
                    tests.push(Cond::Sql(sql!["(typeof(", &b, ") IN ('integer', 'real'))"]));
                }
                if mask & TEXT != 0 {
                    tests.push(Cond::Sql(sql!["(typeof(", &b, ") = 'text')"]));
                }
                any_of(tests)
            }
            Self::Bool(n) => {
                let b = Frag::name("_b", *n);
                if mask & TRUE != 0 {
                    Cond::Sql(b)
                } else {
                    not(Cond::Sql(b))
                }
            }
            // Their class is always known.
            Self::Const(_) | Self::Column(_) => Cond::Known(false),
        }
    }

    /// The SQL value; for a number or a string, its plain SQL form.
    fn val(&self) -> Frag {
        match self {
            Self::Const(value) => constant(value),
            Self::Field(path) => sql!["json_extract(data, ", Self::path(path), ")"],
            Self::Column(column) => sql![*column],
            Self::Value(n, _) | Self::Bool(n) => Frag::name("_b", *n),
            Self::Elem(n) => sql![Frag::name("_e", *n), ".value"],
        }
    }

    /// The length of an array (use only where it is one).
    fn array_len(&self) -> Frag {
        match self {
            Self::Field(path) => sql!["json_array_length(data, ", Self::path(path), ")"],
            other => sql!["json_array_length(", other.val(), ")"],
        }
    }

    /// A table of the elements of an array (use only where it is one).
    fn each(&self) -> Frag {
        match self {
            Self::Field(path) => sql!["json_each(data, ", Self::path(path), ")"],
            other => sql!["json_each(", other.val(), ")"],
        }
    }
}

/// A constant as an SQL value. Only numbers and strings are ever read as values, and lists
/// through `json_each`; null and booleans are only ever tested by class.
fn constant(value: &Value) -> Frag {
    match value {
        Value::Null | Value::Bool(_) => sql!["NULL"],
        Value::Number(n) => Frag::param(match n.as_i64() {
            Some(int) => SqlValue::Integer(int),
            None => SqlValue::Real(n.as_f64().unwrap_or(f64::NAN)),
        }),
        Value::String(text) => Frag::param(SqlValue::Text(text.clone())),
        Value::Array(_) | Value::Object(_) => Frag::param(SqlValue::Text(value.to_string())),
    }
}

/// `a == b`: the same class and, for numbers and strings, the same value.
fn eq(a: &Operand, b: &Operand) -> Cond {
    if let (Operand::Const(x), Operand::Const(y)) = (a, b) {
        return Cond::Known(equal(x, y));
    }
    any_of(vec![
        all_of(vec![a.is(NULL), b.is(NULL)]),
        all_of(vec![a.is(TRUE), b.is(TRUE)]),
        all_of(vec![a.is(FALSE), b.is(FALSE)]),
        same_class(a, b, NUM, " = "),
        same_class(a, b, TEXT, " = "),
    ])
}

/// `a < b` and friends: two numbers or two strings (byte-wise, SQLite's BINARY collation).
fn ordered(a: &Operand, b: &Operand, op: BinaryOp) -> Cond {
    if let (Operand::Const(x), Operand::Const(y)) = (a, b) {
        let order = compare(x, y);
        return Cond::Known(order.is_some_and(|o| match op {
            BinaryOp::Lt => o.is_lt(),
            BinaryOp::Le => o.is_le(),
            BinaryOp::Gt => o.is_gt(),
            _ => o.is_ge(),
        }));
    }
    let symbol = match op {
        BinaryOp::Lt => " < ",
        BinaryOp::Le => " <= ",
        BinaryOp::Gt => " > ",
        _ => " >= ",
    };
    any_of(vec![
        same_class(a, b, NUM, symbol),
        same_class(a, b, TEXT, symbol),
    ])
}

fn same_class(a: &Operand, b: &Operand, class: u8, op: &'static str) -> Cond {
    match all_of(vec![a.is(class), b.is(class)]) {
        Cond::Known(false) => Cond::Known(false),
        both => all_of(vec![both, Cond::Sql(sql!["(", a.val(), op, b.val(), ")"])]),
    }
}

fn truthy_cond(a: &Operand) -> Cond {
    if let Operand::Const(value) = a {
        return Cond::Known(truthy(value));
    }
    any_of(vec![
        a.is(TRUE | ARRAY | OBJECT),
        all_of(vec![a.is(NUM), Cond::Sql(sql!["(", a.val(), " <> 0)"])]),
        all_of(vec![a.is(TEXT), Cond::Sql(sql!["(", a.val(), " <> '')"])]),
    ])
}

/// `INCLUDES`, `STARTSWITH`, `ENDSWITH`: two strings, compared as bytes.
fn text_test(function: Function, a: &Operand, b: &Operand) -> Cond {
    let both = all_of(vec![a.is(TEXT), b.is(TEXT)]);
    if let Cond::Known(false) = both {
        return both;
    }
    let text = sql!["CAST(", a.val(), " AS BLOB)"];
    let part = sql!["CAST(", b.val(), " AS BLOB)"];
    // An empty part always matches. SQLite's `substr` and `instr` give NULL for an empty
    // blob, so the rest of the test may be NULL: COALESCE keeps the fragment 0/1.
    let test = match function {
        Function::Includes => sql!["instr(", &text, ", ", &part, ") > 0"],
        Function::StartsWith => sql!["substr(", &text, ", 1, length(", &part, ")) = ", &part],
        _ => sql![
            "(length(",
            &text,
            ") >= length(",
            &part,
            ") AND substr(",
            &text,
            ", length(",
            &text,
            ") - length(",
            &part,
            ") + 1) = ",
            &part,
            ")"
        ],
    };
    let test = sql!["COALESCE(length(", &part, ") = 0 OR ", test, ", 0)"];
    all_of(vec![both, Cond::Sql(test)])
}

/// Constant lists up to this length become an `OR` of comparisons; longer ones a `json_each`.
const INLINE_LIST: usize = 8;

fn is_constant(expr: &Expr) -> bool {
    match expr {
        Expr::Literal(_) => true,
        Expr::Field(_) | Expr::Exists(_) => false,
        Expr::Unary(_, x) => is_constant(x),
        Expr::Binary(_, l, r) => is_constant(l) && is_constant(r),
        Expr::And(items) | Expr::Or(items) | Expr::Call(_, items) => items.iter().all(is_constant),
    }
}

/// Sub-expressions bound to derived-table columns, in order.
type Binds = Vec<(usize, Frag)>;

/// `body`, evaluated where the bound columns exist.
fn with_binds(body: Frag, binds: Binds) -> Frag {
    if binds.is_empty() {
        return body;
    }
    let mut columns = Frag::default();
    for (i, (n, frag)) in binds.into_iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        columns = sql![columns, sep, frag, " AS ", Frag::name("_b", n)];
    }
    sql!["(SELECT ", body, " FROM (SELECT ", columns, "))"]
}

fn cond_with_binds(cond: Cond, binds: Binds) -> Cond {
    match cond {
        Cond::Known(b) => Cond::Known(b),
        Cond::Sql(frag) => Cond::Sql(with_binds(frag, binds)),
    }
}

fn malformed(what: &str) -> ExprError {
    ExprError::Invalid {
        position: 0,
        message: format!("malformed expression: {what}"),
    }
}

#[derive(Default)]
struct Compiler {
    names: usize,
}

impl Compiler {
    fn fresh(&mut self) -> usize {
        self.names += 1;
        self.names
    }

    /// The truthiness of `expr`.
    fn cond(&mut self, expr: &Expr) -> Result<Cond, ExprError> {
        if is_constant(expr) {
            return Ok(Cond::Known(truthy(&evaluate(expr, &Value::Null))));
        }
        match expr {
            Expr::And(items) => Ok(all_of(self.conds(items)?)),
            Expr::Or(items) => Ok(any_of(self.conds(items)?)),
            Expr::Unary(UnaryOp::Not, inner) => Ok(not(self.cond(inner)?)),
            Expr::Exists(path) => {
                check_path(path)?;
                Ok(match field(path) {
                    Target::Column(_) => Cond::Known(true),
                    Target::Missing => Cond::Known(false),
                    Target::Json(json_path) => not(Operand::Field(json_path).is(NULL)),
                })
            }
            Expr::Binary(op, l, r) if !is_arithmetic(*op) => {
                let mut binds = Vec::new();
                let a = self.operand(l, &mut binds)?;
                let b = self.operand(r, &mut binds)?;
                let cond = match op {
                    BinaryOp::Eq => eq(&a, &b),
                    BinaryOp::Ne => not(eq(&a, &b)),
                    _ => ordered(&a, &b, *op),
                };
                Ok(cond_with_binds(cond, binds))
            }
            Expr::Call(
                function @ (Function::Includes | Function::StartsWith | Function::EndsWith),
                args,
            ) => {
                let [l, r] = args.as_slice() else {
                    return Err(malformed("wrong number of arguments"));
                };
                let mut binds = Vec::new();
                let a = self.operand(l, &mut binds)?;
                let b = self.operand(r, &mut binds)?;
                Ok(cond_with_binds(text_test(*function, &a, &b), binds))
            }
            Expr::Call(Function::In, args) => {
                let [list, item] = args.as_slice() else {
                    return Err(malformed("wrong number of arguments"));
                };
                self.in_list(list, item)
            }
            _ => {
                let mut binds = Vec::new();
                let a = self.operand(expr, &mut binds)?;
                Ok(cond_with_binds(truthy_cond(&a), binds))
            }
        }
    }

    fn conds(&mut self, items: &[Expr]) -> Result<Vec<Cond>, ExprError> {
        items.iter().map(|e| self.cond(e)).collect()
    }

    fn in_list(&mut self, list: &Expr, item: &Expr) -> Result<Cond, ExprError> {
        let mut binds = Vec::new();
        let list = self.operand(list, &mut binds)?;
        let mut item = self.operand(item, &mut binds)?;
        if let Operand::Const(Value::Array(items)) = &list
            && items.len() <= INLINE_LIST
        {
            let tests = items.iter().map(|x| eq(&Operand::Const(x.clone()), &item));
            return Ok(cond_with_binds(any_of(tests.collect()), binds));
        }
        if let Operand::Column(column) = item {
            // Inside `json_each`, `id` would name the element's id: read the row's first.
            let n = self.fresh();
            binds.push((n, sql![column]));
            item = Operand::Value(n, TEXT);
        }
        let e = self.fresh();
        let test = eq(&Operand::Elem(e), &item).frag();
        let exists = sql![
            "EXISTS (SELECT 1 FROM ",
            list.each(),
            " AS ",
            Frag::name("_e", e),
            " WHERE ",
            test,
            ")"
        ];
        Ok(cond_with_binds(guard(list.is(ARRAY), exists), binds))
    }

    /// `expr` as something operators can read several times.
    fn operand(&mut self, expr: &Expr, binds: &mut Binds) -> Result<Operand, ExprError> {
        if is_constant(expr) {
            return Ok(Operand::Const(evaluate(expr, &Value::Null)));
        }
        match expr {
            Expr::Field(path) => {
                check_path(path)?;
                Ok(match field(path) {
                    Target::Column(column) => Operand::Column(column),
                    Target::Missing => Operand::Const(Value::Null),
                    Target::Json(json_path) => Operand::Field(json_path),
                })
            }
            Expr::Binary(op, ..) if is_arithmetic(*op) => self.bind_value(expr, binds),
            Expr::Unary(UnaryOp::Neg | UnaryOp::Plus, _)
            | Expr::Call(Function::ToLower | Function::ToUpper | Function::Size, _) => {
                self.bind_value(expr, binds)
            }
            _ => match self.cond(expr)? {
                Cond::Known(b) => Ok(Operand::Const(Value::Bool(b))),
                Cond::Sql(frag) => {
                    let n = self.fresh();
                    binds.push((n, frag));
                    Ok(Operand::Bool(n))
                }
            },
        }
    }

    fn bind_value(&mut self, expr: &Expr, binds: &mut Binds) -> Result<Operand, ExprError> {
        match self.value(expr)? {
            None => Ok(Operand::Const(Value::Null)),
            Some((frag, can)) => {
                let n = self.fresh();
                binds.push((n, frag));
                Ok(Operand::Value(n, can))
            }
        }
    }

    /// A computed value and the classes it can have; `None` when it is always null.
    fn value(&mut self, expr: &Expr) -> Result<Option<(Frag, u8)>, ExprError> {
        let mut binds = Vec::new();
        let result = match expr {
            Expr::Binary(op, l, r) => {
                let a = self.operand(l, &mut binds)?;
                let b = self.operand(r, &mut binds)?;
                let numbers = all_of(vec![a.is(NUM), b.is(NUM)]);
                let (x, y) = (a.val(), b.val());
                // Infinite results become NULL, as in `evaluate`; NaN already is.
                let finite = |f: Frag| sql!["nullif(nullif(", f, ", 9e999), -9e999)"];
                let mut arms = vec![(
                    numbers,
                    match op {
                        BinaryOp::Add => finite(sql!["(", &x, ") + (", &y, ")"]),
                        BinaryOp::Sub => finite(sql!["(", &x, ") - (", &y, ")"]),
                        BinaryOp::Mul => finite(sql!["(", &x, ") * (", &y, ")"]),
                        // SQLite's division by zero is NULL.
                        _ => finite(sql!["CAST(", &x, " AS REAL) / (", &y, ")"]),
                    },
                    NUM | NULL,
                )];
                if *op == BinaryOp::Add {
                    let texts = all_of(vec![a.is(TEXT), b.is(TEXT)]);
                    arms.push((texts, sql!["(", &x, ") || (", &y, ")"], TEXT));
                }
                case(arms)
            }
            Expr::Unary(op @ (UnaryOp::Neg | UnaryOp::Plus), inner) => {
                let a = self.operand(inner, &mut binds)?;
                let result = if *op == UnaryOp::Neg {
                    sql!["-(", a.val(), ")"]
                } else {
                    a.val()
                };
                case(vec![(a.is(NUM), result, NUM)])
            }
            Expr::Call(function @ (Function::ToLower | Function::ToUpper), args) => {
                let [arg] = args.as_slice() else {
                    return Err(malformed("wrong number of arguments"));
                };
                let a = self.operand(arg, &mut binds)?;
                let result = if *function == Function::ToLower {
                    sql!["lower(", a.val(), ")"]
                } else {
                    sql!["upper(", a.val(), ")"]
                };
                case(vec![(a.is(TEXT), result, TEXT)])
            }
            Expr::Call(Function::Size, args) => {
                let [arg] = args.as_slice() else {
                    return Err(malformed("wrong number of arguments"));
                };
                let a = self.operand(arg, &mut binds)?;
                case(vec![(a.is(ARRAY), a.array_len(), NUM)])
            }
            _ => return Err(malformed("not a value")),
        };
        Ok(result.map(|(frag, can)| (with_binds(frag, binds), can)))
    }
}

fn is_arithmetic(op: BinaryOp) -> bool {
    matches!(
        op,
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rusqlite::Connection;
    use serde_json::{Map, json};

    use super::*;
    use crate::clock::iso;
    use crate::expr::{parse, sort_cmp};
    use crate::store::filter_props::{
        ARITHMETIC, COMPARISONS, Object, arb_expr, arb_objects, arb_sort, arb_typed_expr,
        check_selected, expected, object,
    };

    fn database(objects: &[Object]) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE objects (id TEXT PRIMARY KEY NOT NULL, model TEXT NOT NULL,
                owner_id TEXT, data TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 1,
                created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)",
        )
        .unwrap();
        let mut insert = conn
            .prepare(
                "INSERT INTO objects (id, model, data, created_at, updated_at)
                 VALUES (?1, 'things', ?2, ?3, ?4)",
            )
            .unwrap();
        for o in objects {
            let data = serde_json::to_string(&o.data).unwrap();
            insert
                .execute(rusqlite::params![o.id, data, o.created_at, o.updated_at])
                .unwrap();
        }
        drop(insert);
        conn
    }

    fn select(conn: &Connection, filter: &SqlFilter) -> Vec<String> {
        let sql = format!("SELECT id FROM objects WHERE {} ORDER BY id", filter.sql);
        let mut stmt = conn.prepare(&sql).unwrap_or_else(|e| panic!("{e}: {sql}"));
        let rows = stmt
            .query_map(rusqlite::params_from_iter(&filter.params), |row| row.get(0))
            .unwrap();
        rows.collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{e}: {sql}"))
    }

    fn filter(src: &str) -> SqlFilter {
        compile(&parse(src).unwrap()).unwrap()
    }

    fn samples() -> Vec<Object> {
        vec![
            object(
                "o1",
                json!({ "title": "Rust", "done": false, "n": 1, "tags": ["a", "b"] }),
            ),
            object(
                "o2",
                json!({ "title": "rust", "done": true, "n": 2.5, "tags": ["o2"] }),
            ),
            object("o3", json!({ "title": null, "n": "2", "tags": "a" })),
            object("o4", json!({ "profile": { "city": "Oslo" }, "n": 0 })),
            object("o5", json!({ "title": "') OR 1=1 --", "n": -1 })),
        ]
    }

    #[test]
    fn typical_filters_select_what_evaluate_selects() {
        let objects = samples();
        let conn = database(&objects);
        for src in [
            "done == false",
            "!done",
            "title == 'Rust'",
            "TOLOWER(title) == 'rust'",
            "INCLUDES(TOLOWER(title), 'us')",
            "n > 0 && n < 3",
            "n == 2",
            "n * 2 >= 2",
            "n / 0 == null",
            "IN(tags, 'a')",
            "IN(tags, _id)",
            "SIZE(tags) == 0",
            "EXISTS(title)",
            "!EXISTS(this.title)",
            "profile.city == 'Oslo'",
            "IN(['o1', 'o3'], _id)",
            "IN(['o1', 'o2', 'o3', 'o4', 'o5', 'x', 'y', 'z', 'w'], this._id)",
            "_id > 'o2'",
            "createdAt == '2024-03-19T13:55:55.772Z'",
            "createdAt < updatedAt",
            "title + '!' == 'Rust!'",
            "STARTSWITH(title, 'Ru') || ENDSWITH(title, 'st')",
        ] {
            assert_eq!(
                select(&conn, &filter(src)),
                expected(&objects, &parse(src).unwrap()),
                "{src}"
            );
        }
    }

    #[test]
    fn common_filters_compile_to_plain_sql() {
        let plain = filter("done == false");
        assert_eq!(
            plain.sql,
            "COALESCE(json_type(data, '$.done') IN ('false'), 0)"
        );
        assert!(plain.params.is_empty());
        let indexed = filter("status == 'open'");
        assert!(
            indexed.sql.contains("json_extract(data, '$.status') = ?"),
            "{}",
            indexed.sql
        );
        let by_id = filter("IN(['a', 'b'], this._id)");
        assert_eq!(by_id.sql, "((? = id) OR (? = id))");
        assert_eq!(filter("1 + 1 == 2").sql, "1");
    }

    #[test]
    fn comparisons_with_a_value_use_an_expression_index() {
        let conn = database(&samples());
        conn.execute_batch(
            "CREATE INDEX \"objects_by:things:status\" ON objects (model, json_extract(data, '$.status'));
             CREATE INDEX \"objects_by:things:price\" ON objects (model, json_extract(data, '$.price'))",
        )
        .unwrap();
        for (src, index) in [
            ("status == 'open'", "objects_by:things:status"),
            (
                "status == 'open' && INCLUDES(title, 'x')",
                "objects_by:things:status",
            ),
            ("price < 10", "objects_by:things:price"),
        ] {
            let compiled = filter(src);
            let sql = format!(
                "EXPLAIN QUERY PLAN SELECT * FROM objects WHERE model = ? AND ({}) {}",
                compiled.sql,
                order_by(&[("title".into(), false)]).unwrap()
            );
            let mut params = vec![SqlValue::Text("things".into())];
            params.extend(compiled.params);
            let plan: Vec<String> = conn
                .prepare(&sql)
                .unwrap()
                .query_map(rusqlite::params_from_iter(params.iter()), |row| row.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                plan.iter().any(|step| step.contains(index)),
                "{src}: {plan:?}"
            );
        }
    }

    /// The query plan of a page of `things` with this filter and sort.
    fn plan(conn: &Connection, src: &str, sort: &[(String, bool)]) -> Vec<String> {
        let compiled = filter(src);
        let sql = format!(
            "EXPLAIN QUERY PLAN SELECT * FROM objects WHERE model = ? AND ({}) {} LIMIT 20",
            compiled.sql,
            order_by(sort).unwrap()
        );
        let mut params = vec![SqlValue::Text("things".into())];
        params.extend(compiled.params);
        conn.prepare(&sql)
            .unwrap()
            .query_map(rusqlite::params_from_iter(params.iter()), |row| row.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn a_sorted_index_serves_a_filtered_page_in_order() {
        let conn = database(&samples());
        let columns = index_columns(&["status".into()], &["price".into()]).unwrap();
        conn.execute_batch(&format!(
            "CREATE INDEX \"objects_by:things:status:sort:price\" ON objects (model, {})",
            columns.join(", ")
        ))
        .unwrap();
        for desc in [false, true] {
            let steps = plan(&conn, "status == 'open'", &[("price".into(), desc)]);
            assert!(
                steps
                    .iter()
                    .any(|s| s.contains("objects_by:things:status:sort:price")),
                "{steps:?}"
            );
            // Rows come in index order; at most ties on the sort key are sorted (by id).
            assert!(
                !steps.iter().any(|s| s == "USE TEMP B-TREE FOR ORDER BY"),
                "{steps:?}"
            );
        }
    }

    #[test]
    fn a_sort_only_index_serves_an_unfiltered_page_in_order() {
        let conn = database(&samples());
        let columns = index_columns(&[], &["title".into(), "createdAt".into()]).unwrap();
        assert_eq!(columns.last().map(String::as_str), Some("id"));
        conn.execute_batch(&format!(
            "CREATE INDEX \"objects_by:things::sort:title,createdAt\" ON objects (model, {})",
            columns.join(", ")
        ))
        .unwrap();
        let steps = plan(
            &conn,
            "true",
            &[("title".into(), false), ("createdAt".into(), false)],
        );
        assert!(
            steps.iter().any(|s| s.contains("objects_by:things::sort")),
            "{steps:?}"
        );
        assert!(
            !steps.iter().any(|s| s.contains("TEMP B-TREE")),
            "{steps:?}"
        );
    }

    #[test]
    fn index_columns_refuse_system_fields_as_filter_fields() {
        assert!(index_columns(&["createdAt".into()], &[]).is_err());
        assert!(index_columns(&["a-b".into()], &[]).is_err());
        assert_eq!(
            index_columns(&["address.city".into()], &[]).unwrap(),
            vec!["json_extract(data, '$.address.city')".to_string()]
        );
    }

    #[test]
    fn user_strings_never_reach_the_sql_text() {
        let objects = samples();
        let conn = database(&objects);
        let evil = "') OR 1=1 --";
        for src in [
            "title == \"') OR 1=1 --\"",
            "title == '\\') OR 1=1 --'",
            "INCLUDES(title, \"' OR '1'='1\")",
            "IN([\"x') OR 1=1 --\"], title)",
        ] {
            let compiled = filter(src);
            assert!(!compiled.sql.contains("1=1"), "{src}: {}", compiled.sql);
            assert!(!compiled.sql.contains("'1'"), "{src}: {}", compiled.sql);
            assert_eq!(
                select(&conn, &compiled),
                expected(&objects, &parse(src).unwrap()),
                "{src}"
            );
        }
        assert_eq!(select(&conn, &filter("title == \"') OR 1=1 --\"")), ["o5"]);

        // Field names cannot carry SQL either: the parser refuses them, and so does `compile`
        // for a hand-built expression.
        assert!(parse("this.a') OR 1=1 --").is_err());
        for name in [evil, "a'b", "a\"b", "a[0]", "a.b", "", "a b", "é"] {
            let field = Expr::Field(vec![name.to_string()]);
            assert!(compile(&field).is_err(), "{name}");
            assert!(
                compile(&Expr::Exists(vec![name.to_string()])).is_err(),
                "{name}"
            );
        }
        for path in [
            evil, "a'b", "a\"b", "a[0]", "a..b", "", "a b", "é", "$.a", "a.",
        ] {
            assert!(order_by(&[(path.to_string(), false)]).is_err(), "{path}");
        }
        assert!(order_by(&[("title'; DROP TABLE objects; --".into(), true)]).is_err());
    }

    #[test]
    fn deep_expressions_stay_linear_and_run() {
        let objects = samples();
        let conn = database(&objects);
        // 64 levels of arithmetic, each reading its operand several times.
        let mut src = "n".to_string();
        for i in 0..62 {
            src = if i % 2 == 0 {
                format!("({src} + 1)")
            } else {
                format!("({src} * 2)")
            };
        }
        let src = format!("{src} > 100");
        let expr = parse(&src).unwrap();
        assert_eq!(expr.depth(), MAX_TEST_DEPTH);
        let compiled = compile(&expr).unwrap();
        assert!(compiled.sql.len() < 100_000, "{} bytes", compiled.sql.len());
        assert_eq!(select(&conn, &compiled), expected(&objects, &expr));

        let mut src = "n".to_string();
        for i in 0..63 {
            src = match i % 3 {
                0 => format!("({src} == 2.5)"),
                1 => format!("({src} != false)"),
                _ => format!("IN([true, 1], {src})"),
            };
        }
        let expr = parse(&src).unwrap();
        let compiled = compile(&expr).unwrap();
        assert!(compiled.sql.len() < 100_000, "{} bytes", compiled.sql.len());
        assert_eq!(select(&conn, &compiled), expected(&objects, &expr));

        let ors = vec!["n == 2 || title == 'x'"; 150].join(" || ");
        let expr = parse(&ors).unwrap();
        assert_eq!(
            select(&conn, &compile(&expr).unwrap()),
            expected(&objects, &expr)
        );

        let many: Vec<String> = (0..500).map(|i| format!("'o{i}'")).collect();
        let src = format!("IN([{}], _id)", many.join(","));
        let expr = parse(&src).unwrap();
        assert_eq!(
            select(&conn, &compile(&expr).unwrap()),
            expected(&objects, &expr)
        );
    }

    const MAX_TEST_DEPTH: usize = 64;

    #[test]
    fn order_by_sorts_missing_first_then_by_id() {
        assert_eq!(order_by(&[]).unwrap(), "ORDER BY id ASC",);
        assert_eq!(
            order_by(&[("createdAt".into(), true), ("this._id".into(), false)]).unwrap(),
            "ORDER BY created_at DESC, id ASC",
        );
        let objects = samples();
        let conn = database(&objects);
        let ids = |sort: &[(String, bool)]| -> Vec<String> {
            let sql = format!("SELECT id FROM objects {}", order_by(sort).unwrap());
            let mut stmt = conn.prepare(&sql).unwrap();
            stmt.query_map([], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(
            ids(&[("title".into(), false)]),
            ["o3", "o4", "o5", "o1", "o2"]
        );
        assert_eq!(
            ids(&[("title".into(), true)]),
            ["o2", "o1", "o5", "o3", "o4"]
        );
        assert_eq!(ids(&[("n".into(), false)]), ["o5", "o4", "o1", "o2", "o3"]);
        assert!(matches!(
            order_by(&[("a.b-c".into(), false)]),
            Err(ExprError::Invalid { position: 3, .. })
        ));
    }

    /// Field values for the exhaustive tests; `None` is a missing field.
    fn pool() -> Vec<Option<Value>> {
        vec![
            None,
            Some(Value::Null),
            Some(json!(true)),
            Some(json!(false)),
            Some(json!(0)),
            Some(json!(-0.0)),
            Some(json!(1)),
            Some(json!(2)),
            Some(json!(0.5)),
            Some(json!(1e300)),
            Some(json!(i64::MAX)),
            Some(json!(i64::MIN)),
            Some(json!("")),
            Some(json!("a")),
            Some(json!("A")),
            Some(json!("ab")),
            Some(json!("ba")),
            Some(json!("é")),
            Some(json!([])),
            Some(json!([1, "a", null])),
            Some(json!([true])),
            Some(json!({ "x": 1 })),
        ]
    }

    /// `expr` as an SQL value of this module's representation (test only: fields, booleans).
    fn value_sql(expr: &Expr) -> Frag {
        let mut compiler = Compiler::default();
        let mut binds = Vec::new();
        let operand = compiler.operand(expr, &mut binds).unwrap();
        let value = match &operand {
            Operand::Field(path) => sql![
                "(CASE json_type(data, ",
                Operand::path(path),
                ") WHEN 'true' THEN x'01' WHEN 'false' THEN x'02' ELSE jsonb_extract(data, ",
                Operand::path(path),
                ") END)"
            ],
            Operand::Bool(n) => sql![
                "(CASE WHEN ",
                Frag::name("_b", *n),
                " THEN x'01' ELSE x'02' END)"
            ],
            Operand::Const(value) => {
                sql![
                    "jsonb(",
                    Frag::param(SqlValue::Text(value.to_string())),
                    ")"
                ]
            }
            other => other.val(),
        };
        with_binds(value, binds)
    }

    fn decode(conn: &Connection, value: SqlValue) -> Value {
        match value {
            SqlValue::Null => Value::Null,
            SqlValue::Integer(int) => json!(int),
            SqlValue::Real(float) if float.is_finite() => json!(float),
            SqlValue::Real(float) => json!(format!("non-finite {float}")),
            SqlValue::Text(text) => Value::String(text),
            SqlValue::Blob(blob) => {
                let text: String = conn
                    .query_row("SELECT json(?1)", [blob], |row| row.get(0))
                    .unwrap();
                serde_json::from_str(&text).unwrap()
            }
        }
    }

    /// Same class and value; numbers compare numerically.
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(_), Value::Number(_)) => equal(a, b),
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
            }
            _ => a == b,
        }
    }

    /// Check both the value and the truthiness SQL of each expression on every object.
    fn check_all(objects: &[Object], exprs: &[Expr]) {
        let conn = database(objects);
        let views: Vec<(String, Value)> = objects
            .iter()
            .map(|o| (o.id.clone(), o.visible()))
            .collect();
        for expr in exprs {
            let value = value_sql(expr);
            let sql = format!("SELECT id, {} FROM objects ORDER BY id", value.sql);
            let mut stmt = conn.prepare(&sql).unwrap_or_else(|e| panic!("{e}: {sql}"));
            let rows: Vec<(String, SqlValue)> = stmt
                .query_map(rusqlite::params_from_iter(&value.params), |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            for ((id, got), (view_id, view)) in rows.into_iter().zip(&views) {
                assert_eq!(&id, view_id);
                let got = decode(&conn, got);
                let want = evaluate(expr, view);
                assert!(
                    same(&got, &want),
                    "{expr} on {view}: SQL gives {got}, evaluate {want}\n{sql}"
                );
            }
            assert_eq!(
                select(&conn, &compile(expr).unwrap()),
                expected(objects, expr),
                "{expr}"
            );
        }
    }

    fn field_expr(path: &str) -> Expr {
        Expr::Field(path.split('.').map(String::from).collect())
    }

    #[test]
    fn every_operator_agrees_on_every_pair_of_values() {
        let pool = pool();
        let mut objects = Vec::new();
        for (i, a) in pool.iter().enumerate() {
            for (j, b) in pool.iter().enumerate() {
                let mut data = Map::new();
                if let Some(a) = a {
                    data.insert("a".into(), a.clone());
                }
                if let Some(b) = b {
                    data.insert("b".into(), b.clone());
                }
                let mut o = object(&format!("r{i:02}{j:02}"), Value::Object(data));
                o.created_at += i64::try_from(i).unwrap();
                objects.push(o);
            }
        }
        let (a, b) = (field_expr("a"), field_expr("b"));
        let literals: Vec<Expr> = pool.iter().flatten().cloned().map(Expr::Literal).collect();
        let mut binary: Vec<Box<dyn Fn(Expr, Expr) -> Expr>> = Vec::new();
        for op in COMPARISONS.into_iter().chain(ARITHMETIC) {
            binary.push(Box::new(move |l, r| {
                Expr::Binary(op, Box::new(l), Box::new(r))
            }));
        }
        for function in [
            Function::In,
            Function::Includes,
            Function::StartsWith,
            Function::EndsWith,
        ] {
            binary.push(Box::new(move |l, r| Expr::Call(function, vec![l, r])));
        }
        binary.push(Box::new(|l, r| Expr::And(vec![l, r])));
        binary.push(Box::new(|l, r| Expr::Or(vec![l, r])));
        let mut exprs = Vec::new();
        for make in &binary {
            exprs.push(make(a.clone(), b.clone()));
            exprs.push(make(field_expr("createdAt"), b.clone()));
            exprs.push(make(a.clone(), field_expr("_id")));
            for literal in &literals {
                exprs.push(make(a.clone(), literal.clone()));
                exprs.push(make(literal.clone(), b.clone()));
            }
        }
        for x in [a.clone(), field_expr("_id"), field_expr("_id.x")] {
            for op in [UnaryOp::Not, UnaryOp::Neg, UnaryOp::Plus] {
                exprs.push(Expr::Unary(op, Box::new(x.clone())));
            }
            for function in [Function::ToLower, Function::ToUpper, Function::Size] {
                exprs.push(Expr::Call(function, vec![x.clone()]));
            }
        }
        exprs.push(Expr::Exists(vec!["a".into()]));
        exprs.push(a.clone());
        // Computed values as operands: bound in derived tables.
        let sum = Expr::Binary(BinaryOp::Add, Box::new(a.clone()), Box::new(b.clone()));
        let lower = Expr::Call(Function::ToLower, vec![a.clone()]);
        let test = Expr::Binary(BinaryOp::Lt, Box::new(a.clone()), Box::new(b.clone()));
        for x in [sum, lower, test] {
            for make in &binary {
                exprs.push(make(x.clone(), b.clone()));
                exprs.push(make(a.clone(), x.clone()));
            }
        }
        check_all(&objects, &exprs);
    }

    // -----------------------------------------------------------------------------------------
    // Properties

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 5000,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn sql_selects_exactly_what_evaluate_selects(
            objects in arb_objects(),
            expr in prop_oneof![arb_expr(), arb_typed_expr()],
        ) {
            let compiled = compile(&expr).unwrap();
            let conn = database(&objects);
            let got = select(&conn, &compiled);
            check_selected(got, &objects, &expr, &compiled.sql, &compiled.params)?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 1000,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn order_by_sorts_as_sort_cmp(objects in arb_objects(), sort in arb_sort()) {
            let conn = database(&objects);
            let sql = format!("SELECT id FROM objects {}", order_by(&sort).unwrap());
            let mut stmt = conn.prepare(&sql).unwrap();
            let got: Vec<String> = stmt
                .query_map([], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let mut want: Vec<(String, Value)> =
                objects.iter().map(|o| (o.id.clone(), o.visible())).collect();
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
        }

        #[test]
        fn created_at_renders_as_the_api_does(ms in 0i64..253_402_300_799_999) {
            let conn = database(&[]);
            let sql = format!("SELECT {CREATED_AT} FROM (SELECT ?1 AS created_at)");
            let rendered: String = conn.query_row(&sql, [ms], |row| row.get(0)).unwrap();
            prop_assert_eq!(rendered, iso(ms));
        }
    }
}
