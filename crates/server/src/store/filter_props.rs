//! What the two filter compilers' property tests share (test builds only): the objects
//! they run on and the strategies that draw objects, expressions and sort keys, so that
//! `sql_filter` and `pg_filter` are checked against the evaluator on the same inputs.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::clock;
use crate::expr::{BinaryOp, Expr, Function, UnaryOp, evaluate, truthy};

/// An object as a test row holds it.
#[derive(Debug, Clone)]
pub(crate) struct Object {
    pub(crate) id: String,
    pub(crate) data: Map<String, Value>,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

impl Object {
    /// The object as filters see it: its data plus `_id`, `createdAt`, `updatedAt`.
    pub(crate) fn visible(&self) -> Value {
        let mut view = self.data.clone();
        view.insert("_id".into(), json!(self.id));
        view.insert("createdAt".into(), json!(clock::iso(self.created_at)));
        view.insert("updatedAt".into(), json!(clock::iso(self.updated_at)));
        Value::Object(view)
    }
}

/// The comparison operators.
pub(crate) const COMPARISONS: [BinaryOp; 6] = [
    BinaryOp::Eq,
    BinaryOp::Ne,
    BinaryOp::Lt,
    BinaryOp::Le,
    BinaryOp::Gt,
    BinaryOp::Ge,
];

/// The arithmetic operators.
pub(crate) const ARITHMETIC: [BinaryOp; 4] =
    [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div];

/// A test row with fixed creation and update times.
pub(crate) fn object(id: &str, data: Value) -> Object {
    Object {
        id: id.into(),
        data: data.as_object().cloned().unwrap_or_default(),
        created_at: 1_710_856_555_772,
        updated_at: 1_710_921_600_000,
    }
}

/// Ids whose visible object makes `expr` truthy, by the reference semantics, sorted: what
/// a compiled filter must select.
pub(crate) fn expected(objects: &[Object], expr: &Expr) -> Vec<String> {
    let mut ids: Vec<String> = objects
        .iter()
        .filter(|o| truthy(&evaluate(expr, &o.visible())))
        .map(|o| o.id.clone())
        .collect();
    ids.sort();
    ids
}

/// The check of both compilers' property tests: the ids the compiled `sql` (with `params`)
/// selected are those the evaluator selects; else the case, readably.
pub(crate) fn check_selected(
    got: Vec<String>,
    objects: &[Object],
    expr: &Expr,
    sql: &str,
    params: &dyn std::fmt::Debug,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        got,
        expected(objects, expr),
        "\nexpr: {}\nsql: {}\nparams: {:?}\nobjects: {:?}",
        expr,
        sql,
        params,
        objects.iter().map(Object::visible).collect::<Vec<_>>(),
    );
    Ok(())
}

const PATHS: &[&[&str]] = &[
    &["a"],
    &["b"],
    &["c"],
    &["a", "x"],
    &["b", "x"],
    &["d"],
    &["_id"],
    &["createdAt"],
    &["updatedAt"],
    &["_id", "x"],
];

/// A field path of the objects (some missing, some system fields, one below `_id`).
pub(crate) fn arb_path() -> impl Strategy<Value = Vec<String>> {
    let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    prop_oneof![
        3 => prop::sample::select(&PATHS[..3]).prop_map(path),
        1 => prop::sample::select(PATHS).prop_map(path),
    ]
}

/// A constant of any kind, edge cases included.
pub(crate) fn arb_scalar() -> impl Strategy<Value = Value> {
    let common = vec![
        Value::Null,
        json!(true),
        json!(false),
        json!(0),
        json!(1),
        json!(2),
        json!(-1),
        json!(0.5),
        json!(2.5),
        json!(""),
        json!("a"),
        json!("A"),
        json!("ab"),
        json!("aB"),
        json!("b"),
        json!("ba"),
    ];
    let rare = vec![
        json!(i64::MAX),
        json!(i64::MIN),
        json!(1e300),
        json!(-0.0),
        json!(0.1),
        json!(3.0),
        json!(-1.5),
        json!("é"),
        json!("É"),
        json!("o1"),
        json!("a b"),
        json!("%"),
        json!("'"),
        json!("\""),
        json!("0"),
        json!("null"),
    ];
    prop_oneof![
        4 => prop::sample::select(common),
        1 => prop::sample::select(rare),
    ]
}

fn arb_field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => arb_scalar(),
        2 => prop::collection::vec(arb_scalar(), 0..4).prop_map(Value::Array),
        1 => prop::collection::vec(prop::collection::vec(arb_scalar(), 0..2), 0..2)
            .prop_map(|v| json!(v)),
        2 => arb_scalar().prop_map(|x| json!({ "x": x })),
    ]
}

/// A few objects with fields `a`, `b`, `c` of any kind, some missing.
pub(crate) fn arb_objects() -> impl Strategy<Value = Vec<Object>> {
    let one = (
        prop::option::of(arb_field_value()),
        prop::option::of(arb_field_value()),
        prop::option::of(arb_field_value()),
        0i64..4_000_000_000_000,
        0i64..1_000_000,
    );
    prop::collection::vec(one, 1..10).prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(|(i, (a, b, c, created_at, later))| {
                let mut data = Map::new();
                for (key, value) in [("a", a), ("b", b), ("c", c)] {
                    if let Some(value) = value {
                        data.insert(key.into(), value);
                    }
                }
                Object {
                    id: format!("o{i}"),
                    data,
                    created_at,
                    updated_at: created_at + later,
                }
            })
            .collect()
    })
}

/// Any expression of the language.
pub(crate) fn arb_expr() -> impl Strategy<Value = Expr> {
    let literal = prop_oneof![
        5 => arb_scalar(),
        1 => prop::collection::vec(arb_scalar(), 0..12).prop_map(Value::Array),
    ];
    let leaf = prop_oneof![
        4 => arb_path().prop_map(Expr::Field),
        1 => arb_path().prop_map(Expr::Exists),
        3 => literal.prop_map(Expr::Literal),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        let binary = prop::sample::select([&COMPARISONS[..], &ARITHMETIC[..]].concat());
        let unary = prop::sample::select(vec![UnaryOp::Not, UnaryOp::Neg, UnaryOp::Plus]);
        let function = prop::sample::select(vec![
            Function::In,
            Function::Includes,
            Function::ToLower,
            Function::ToUpper,
            Function::StartsWith,
            Function::EndsWith,
            Function::Size,
        ]);
        let list = prop_oneof![
            prop::collection::vec(arb_scalar(), 0..12)
                .prop_map(|items| Expr::Literal(Value::Array(items))),
            arb_path().prop_map(Expr::Field),
            inner.clone(),
        ];
        prop_oneof![
            4 => (binary, inner.clone(), inner.clone())
                .prop_map(|(op, l, r)| Expr::Binary(op, Box::new(l), Box::new(r))),
            2 => (unary, inner.clone()).prop_map(|(op, x)| Expr::Unary(op, Box::new(x))),
            1 => prop::collection::vec(inner.clone(), 1..4).prop_map(Expr::And),
            1 => prop::collection::vec(inner.clone(), 1..4).prop_map(Expr::Or),
            2 => (list, inner.clone())
                .prop_map(|(l, v)| Expr::Call(Function::In, vec![l, v])),
            3 => (function, inner.clone(), inner).prop_map(|(f, a, b)| {
                let args = if f.arity() == 1 { vec![a] } else { vec![a, b] };
                Expr::Call(f, args)
            }),
        ]
    })
}

/// Expressions whose parts have matching types more often than chance would give.
pub(crate) fn arb_typed_expr() -> impl Strategy<Value = Expr> {
    let field = |names: &'static [&'static str]| {
        prop::sample::select(names).prop_map(|name| Expr::Field(vec![name.to_string()]))
    };
    let number = prop::sample::select(vec![
        json!(0),
        json!(1),
        json!(2),
        json!(-1),
        json!(0.5),
        json!(2.5),
        json!(1e300),
    ])
    .prop_map(Expr::Literal);
    let text = prop::sample::select(vec!["", "a", "A", "ab", "b", "ba", "o1", "é"])
        .prop_map(|s| Expr::Literal(json!(s)));
    let num_expr = prop_oneof![
        2 => field(&["a", "b", "c"]),
        2 => number,
        1 => field(&["a", "b"]).prop_map(|f| Expr::Call(Function::Size, vec![f])),
    ]
    .prop_recursive(3, 12, 2, |inner| {
        let op = prop::sample::select(ARITHMETIC.to_vec());
        prop_oneof![
            3 => (op, inner.clone(), inner.clone())
                .prop_map(|(op, l, r)| Expr::Binary(op, Box::new(l), Box::new(r))),
            1 => (prop::sample::select(vec![UnaryOp::Neg, UnaryOp::Plus]), inner)
                .prop_map(|(op, x)| Expr::Unary(op, Box::new(x))),
        ]
    });
    let str_expr = prop_oneof![
        2 => field(&["a", "b", "c", "_id", "createdAt"]),
        2 => text,
    ]
    .prop_recursive(2, 8, 2, |inner| {
        let case = prop::sample::select(vec![Function::ToLower, Function::ToUpper]);
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(l, r)| Expr::Binary(
                BinaryOp::Add,
                Box::new(l),
                Box::new(r)
            )),
            (case, inner).prop_map(|(f, x)| Expr::Call(f, vec![x])),
        ]
    });
    let compare = prop::sample::select(COMPARISONS.to_vec());
    let text_test = prop::sample::select(vec![
        Function::Includes,
        Function::StartsWith,
        Function::EndsWith,
    ]);
    let list = prop_oneof![
        field(&["a", "b", "c"]),
        prop::collection::vec(arb_scalar(), 0..12).prop_map(|v| Expr::Literal(json!(v))),
    ];
    let any_value = prop_oneof![num_expr.clone(), str_expr.clone()];
    let test = prop_oneof![
        (compare.clone(), num_expr.clone(), num_expr).prop_map(|(op, l, r)| Expr::Binary(
            op,
            Box::new(l),
            Box::new(r)
        )),
        (compare, str_expr.clone(), str_expr.clone()).prop_map(|(op, l, r)| Expr::Binary(
            op,
            Box::new(l),
            Box::new(r)
        )),
        (text_test, str_expr.clone(), str_expr).prop_map(|(f, l, r)| Expr::Call(f, vec![l, r])),
        (list, any_value.clone()).prop_map(|(l, v)| Expr::Call(Function::In, vec![l, v])),
        arb_path().prop_map(Expr::Exists),
        any_value,
    ];
    test.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(Expr::And),
            prop::collection::vec(inner.clone(), 1..4).prop_map(Expr::Or),
            inner.prop_map(|x| Expr::Unary(UnaryOp::Not, Box::new(x))),
        ]
    })
}

/// Up to two sort keys.
pub(crate) fn arb_sort() -> impl Strategy<Value = Vec<(String, bool)>> {
    let key = (
        prop::sample::select(vec![
            "a",
            "b",
            "c",
            "a.x",
            "d",
            "_id",
            "createdAt",
            "this.b",
        ]),
        any::<bool>(),
    )
        .prop_map(|(path, desc)| (path.to_string(), desc));
    prop::collection::vec(key, 0..3)
}
