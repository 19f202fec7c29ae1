//! `db/compute` and `db/get-random` (protocol.md §5.8).
//!
//! Compute streams the matching objects out of the database (filter and access rule in SQL)
//! and folds them into per-group accumulators with the reference evaluator, so memory grows
//! with the number of groups, not of objects.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::{Map, Number, Value};

use super::query::{QuerySpec, page_of};
use super::{RecordError, RecordService, invalid, object_json};
use crate::expr::{Expr, evaluate, parse, sort_cmp, truthy};
use crate::store::Order;

/// Most groups one computation may produce.
pub const MAX_GROUPS: usize = 10_000;
/// Most objects one `get-random` call returns.
pub const MAX_RANDOM: u64 = 1000;

/// One item of `computations` as the client sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct Computation {
    /// Key of the result in each group.
    pub name: Option<String>,
    /// `count`, `countif`, `sum`, `avg`, `min` or `max`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The value (or, for `countif`, the condition) computed per object.
    pub expression: Option<String>,
    /// `none`, `asc` or `desc`: order the groups by this result.
    pub sort: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Count,
    CountIf,
    Sum,
    Avg,
    Min,
    Max,
}

/// A checked computation.
#[derive(Debug)]
struct Plan {
    name: String,
    kind: Kind,
    expression: Option<Expr>,
    descending: Option<bool>,
}

/// How objects fall into groups.
#[derive(Debug)]
enum Grouping {
    /// All objects form one group.
    None,
    /// By the value of an expression: `groupby: {"group": value}`.
    Expression(Expr),
    /// By the values of fields: `groupby: {"<path>": value, …}`.
    Fields(Vec<(String, Expr)>),
}

/// Running state of one computation in one group.
#[derive(Debug, Clone)]
enum Acc {
    Count(u64),
    Sum { int: i64, float: f64, exact: bool },
    Avg { total: f64, n: u64 },
    Extreme(Option<Value>),
}

impl Acc {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Count | Kind::CountIf => Self::Count(0),
            Kind::Sum => Self::Sum {
                int: 0,
                float: 0.0,
                exact: true,
            },
            Kind::Avg => Self::Avg { total: 0.0, n: 0 },
            Kind::Min | Kind::Max => Self::Extreme(None),
        }
    }

    fn add(&mut self, plan: &Plan, object: &Value) {
        let value = plan.expression.as_ref().map(|e| evaluate(e, object));
        match self {
            Self::Count(n) => {
                if plan.kind == Kind::Count || value.as_ref().is_some_and(truthy) {
                    *n += 1;
                }
            }
            Self::Sum { int, float, exact } => {
                let Some(Value::Number(number)) = value else {
                    return;
                };
                match number.as_i64() {
                    Some(i) if *exact => match int.checked_add(i) {
                        Some(sum) => *int = sum,
                        None => {
                            *exact = false;
                            *float = *int as f64 + i as f64;
                        }
                    },
                    _ => {
                        if *exact {
                            *exact = false;
                            *float = *int as f64;
                        }
                        *float += number.as_f64().unwrap_or(0.0);
                    }
                }
            }
            Self::Avg { total, n } => {
                if let Some(x) = value.as_ref().and_then(Value::as_f64) {
                    *total += x;
                    *n += 1;
                }
            }
            Self::Extreme(best) => {
                let Some(value) = value.filter(|v| !v.is_null()) else {
                    return;
                };
                let better = match best {
                    None => true,
                    Some(current) => {
                        let order = sort_cmp(&value, current);
                        if plan.kind == Kind::Min {
                            order.is_lt()
                        } else {
                            order.is_gt()
                        }
                    }
                };
                if better {
                    *best = Some(value);
                }
            }
        }
    }

    fn result(self) -> Value {
        match self {
            Self::Count(n) => Value::from(n),
            Self::Sum { int, float, exact } => {
                if exact {
                    Value::from(int)
                } else {
                    Number::from_f64(float).map_or(Value::Null, Value::Number)
                }
            }
            Self::Avg { total, n } => {
                if n == 0 {
                    Value::Null
                } else {
                    Number::from_f64(total / n as f64).map_or(Value::Null, Value::Number)
                }
            }
            Self::Extreme(best) => best.unwrap_or(Value::Null),
        }
    }
}

fn parse_expression(field: &str, text: &str) -> Result<Expr, RecordError> {
    if text.trim().is_empty() {
        return Err(invalid(field, "The expression is empty."));
    }
    Ok(parse(text)?)
}

fn plans(computations: &[Computation]) -> Result<Vec<Plan>, RecordError> {
    if computations.is_empty() {
        return Err(invalid("computations", "Give at least one computation."));
    }
    if computations.len() > 32 {
        return Err(invalid("computations", "At most 32 computations per call."));
    }
    let mut plans: Vec<Plan> = Vec::with_capacity(computations.len());
    for computation in computations {
        let name = computation
            .name
            .as_deref()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid("name", "Every computation needs a name."))?;
        if name == "groupby" || plans.iter().any(|p| p.name == name) {
            return Err(invalid(
                "name",
                format!("The computation name '{name}' is reserved or used twice."),
            ));
        }
        let kind = match computation.kind.as_deref() {
            Some("count") => Kind::Count,
            Some("countif") => Kind::CountIf,
            Some("sum") => Kind::Sum,
            Some("avg") => Kind::Avg,
            Some("min") => Kind::Min,
            Some("max") => Kind::Max,
            _ => {
                return Err(invalid(
                    "type",
                    "type must be count, countif, sum, avg, min or max.",
                ));
            }
        };
        let expression = match (kind, computation.expression.as_deref()) {
            (Kind::Count, _) => None,
            (_, Some(text)) => Some(parse_expression("expression", text)?),
            (_, None) => {
                return Err(invalid(
                    "expression",
                    format!("The computation '{name}' needs an expression."),
                ));
            }
        };
        let descending = match computation.sort.as_deref() {
            None | Some("none") => None,
            Some("asc") => Some(false),
            Some("desc") => Some(true),
            Some(_) => return Err(invalid("sort", "sort must be none, asc or desc.")),
        };
        plans.push(Plan {
            name: name.to_string(),
            kind,
            expression,
            descending,
        });
    }
    Ok(plans)
}

fn grouping(group: Option<&Value>) -> Result<Grouping, RecordError> {
    match group {
        None | Some(Value::Null) => Ok(Grouping::None),
        Some(Value::String(text)) => Ok(Grouping::Expression(parse_expression("group", text)?)),
        Some(Value::Array(items)) if items.is_empty() => Ok(Grouping::None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(path) => {
                    let field = parse_expression("group", path)?;
                    match field {
                        Expr::Field(_) => Ok((path.clone(), field)),
                        _ => Err(invalid("group", format!("'{path}' is not a field path."))),
                    }
                }
                _ => Err(invalid("group", "group fields must be strings.")),
            })
            .collect::<Result<_, _>>()
            .map(Grouping::Fields),
        Some(_) => Err(invalid(
            "group",
            "group must be an expression or a list of field paths.",
        )),
    }
}

impl Grouping {
    /// The group's `groupby` value for an object.
    fn key(&self, object: &Value) -> Value {
        match self {
            Self::None => Value::Null,
            Self::Expression(expr) => {
                let mut map = Map::new();
                map.insert("group".into(), evaluate(expr, object));
                Value::Object(map)
            }
            Self::Fields(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(path, expr)| (path.clone(), evaluate(expr, object)))
                    .collect(),
            ),
        }
    }
}

/// The order of two `groupby` values: member by member.
fn key_cmp(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => x
            .values()
            .zip(y.values())
            .map(|(p, q)| sort_cmp(p, q))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal),
        _ => sort_cmp(a, b),
    }
}

/// Groups in the order they were first seen, each with one accumulator per computation.
#[derive(Default)]
struct Groups {
    index: HashMap<String, usize>,
    keys: Vec<Value>,
    accs: Vec<Vec<Acc>>,
    overflow: bool,
}

impl RecordService {
    /// `db/compute`: one result per group of the matching objects the caller may read.
    pub async fn compute(
        &self,
        caller: Option<&str>,
        model: &str,
        spec: &QuerySpec,
        computations: &[Computation],
    ) -> Result<Vec<Value>, RecordError> {
        let plans = Arc::new(plans(computations)?);
        let grouping = Arc::new(grouping(spec.group.as_ref())?);
        let scan_spec = QuerySpec {
            sort: None,
            page: None,
            limit: None,
            ..spec.clone()
        };
        let Some((query, _)) = self.object_query(caller, model, &scan_spec, false)? else {
            return Ok(Vec::new());
        };
        let groups = Arc::new(Mutex::new(Groups::default()));
        let sink = Arc::clone(&groups);
        let (plans_in, grouping_in) = (Arc::clone(&plans), Arc::clone(&grouping));
        self.store
            .scan_objects(
                query,
                Box::new(move |record| {
                    let object = object_json(&record);
                    let key = grouping_in.key(&object);
                    let mut groups = sink.lock().unwrap_or_else(|e| e.into_inner());
                    let slot = match groups.index.get(&key.to_string()) {
                        Some(&slot) => slot,
                        None if groups.keys.len() >= MAX_GROUPS => {
                            groups.overflow = true;
                            return false;
                        }
                        None => {
                            let slot = groups.keys.len();
                            groups.index.insert(key.to_string(), slot);
                            groups.keys.push(key);
                            groups
                                .accs
                                .push(plans_in.iter().map(|p| Acc::new(p.kind)).collect());
                            slot
                        }
                    };
                    for (acc, plan) in groups.accs[slot].iter_mut().zip(plans_in.iter()) {
                        acc.add(plan, &object);
                    }
                    true
                }),
            )
            .await?;
        let groups = std::mem::take(&mut *groups.lock().unwrap_or_else(|e| e.into_inner()));
        if groups.overflow {
            return Err(invalid(
                "group",
                format!("The grouping makes more than {MAX_GROUPS} groups; filter first."),
            ));
        }
        let mut results: Vec<(Value, Vec<Value>)> = groups
            .keys
            .into_iter()
            .zip(groups.accs)
            .map(|(key, accs)| (key, accs.into_iter().map(Acc::result).collect()))
            .collect();
        results.sort_by(|(ka, a), (kb, b)| {
            plans
                .iter()
                .enumerate()
                .filter_map(|(i, plan)| {
                    let order = sort_cmp(&a[i], &b[i]);
                    plan.descending
                        .map(|desc| if desc { order.reverse() } else { order })
                })
                .find(|o| o.is_ne())
                .unwrap_or_else(|| key_cmp(ka, kb))
        });
        // Every group unless a page is asked for.
        let (page, limit) = match (spec.page, spec.limit) {
            (None, None) => (1, MAX_GROUPS as u64),
            _ => page_of(spec).map(|(page, size)| (page, u64::from(size)))?,
        };
        let skip = (page - 1).saturating_mul(limit);
        Ok(results
            .into_iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|(key, values)| {
                let mut out = Map::new();
                out.insert("groupby".into(), key);
                for (plan, value) in plans.iter().zip(values) {
                    out.insert(plan.name.clone(), value);
                }
                Value::Object(out)
            })
            .collect())
    }

    /// `db/get-random`: up to `count` random matching objects the caller may read.
    pub async fn random(
        &self,
        caller: Option<&str>,
        model: &str,
        spec: &QuerySpec,
        count: u64,
    ) -> Result<Vec<Value>, RecordError> {
        if count == 0 || count > MAX_RANDOM {
            return Err(invalid(
                "count",
                format!("count must be between 1 and {MAX_RANDOM}."),
            ));
        }
        let lookups = self.lookups(spec.lookups.as_deref())?;
        let spec = QuerySpec {
            sort: None,
            page: None,
            limit: Some(count),
            ..spec.clone()
        };
        let Some((mut query, _)) = self.object_query(caller, model, &spec, false)? else {
            return Ok(Vec::new());
        };
        query.order = Order::random();
        let (records, _) = self.store.query_objects(query).await?;
        let objects = records.iter().map(object_json).collect();
        self.finish(caller, &spec, &lookups, objects).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan(kind: &str, expression: Option<&str>) -> Plan {
        plans(&[Computation {
            name: Some("x".into()),
            kind: Some(kind.into()),
            expression: expression.map(String::from),
            sort: None,
        }])
        .unwrap()
        .remove(0)
    }

    fn fold(plan: &Plan, objects: &[Value]) -> Value {
        let mut acc = Acc::new(plan.kind);
        for object in objects {
            acc.add(plan, object);
        }
        acc.result()
    }

    #[test]
    fn accumulators_follow_the_evaluator() {
        let objects = [
            json!({"qty": 2, "price": 1.5}),
            json!({"qty": 3, "price": "n/a"}),
            json!({"qty": null}),
        ];
        assert_eq!(fold(&plan("count", None), &objects), json!(3));
        assert_eq!(fold(&plan("countif", Some("qty > 2")), &objects), json!(1));
        assert_eq!(fold(&plan("sum", Some("qty")), &objects), json!(5));
        assert_eq!(
            fold(&plan("sum", Some("qty * price")), &objects),
            json!(3.0)
        );
        assert_eq!(fold(&plan("avg", Some("qty")), &objects), json!(2.5));
        assert_eq!(fold(&plan("min", Some("qty")), &objects), json!(2));
        assert_eq!(fold(&plan("max", Some("qty")), &objects), json!(3));
        assert_eq!(fold(&plan("avg", Some("missing")), &objects), Value::Null);
    }

    #[test]
    fn integer_sums_that_overflow_become_floats() {
        let objects = [json!({"n": i64::MAX}), json!({"n": 1})];
        let sum = fold(&plan("sum", Some("n")), &objects);
        assert!(sum.is_f64(), "{sum}");
    }

    #[test]
    fn bad_computations_name_the_field() {
        let err = plans(&[Computation {
            name: Some("total".into()),
            kind: Some("median".into()),
            expression: None,
            sort: None,
        }])
        .unwrap_err();
        assert!(matches!(err, RecordError::Invalid { field, .. } if field == "type"));
        assert!(matches!(
            grouping(Some(&json!(["a", "b + 1"]))),
            Err(RecordError::Invalid { .. })
        ));
    }
}
