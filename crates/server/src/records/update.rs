//! Field instructions of `update-fields` (protocol.md §5.3): `set`, `unset`, `increment`,
//! `decrement`, `min`, `max`, `multiply`, `push`, `pull`, `pop`, `shift`, on a dot path into
//! sub-objects.

use serde::Deserialize;
use serde_json::{Map, Number, Value};

/// One instruction.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldUpdate {
    /// Dot path into sub-objects.
    pub field: String,
    /// What to do.
    pub update_type: String,
    /// The operand, when the instruction takes one.
    #[serde(default)]
    pub value: Option<Value>,
}

/// Apply one instruction; the error says what was wrong, for people.
pub fn apply_update(doc: &mut Map<String, Value>, update: &FieldUpdate) -> Result<(), String> {
    let path: Vec<&str> = update.field.split('.').collect();
    if path.iter().any(|p| p.is_empty()) {
        return Err(format!("{} is not a field path.", update.field));
    }
    let (last, parents) = path.split_last().ok_or("empty field path")?;
    let mut target = doc;
    for part in parents {
        let entry = target
            .entry((*part).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        target = entry
            .as_object_mut()
            .ok_or_else(|| format!("{} is not inside an object.", update.field))?;
    }
    let field = (*last).to_string();
    let operand = || {
        update
            .value
            .clone()
            .ok_or_else(|| format!("{} needs a value.", update.update_type))
    };
    let number = |value: Value| -> Result<f64, String> {
        value
            .as_f64()
            .ok_or_else(|| format!("{} needs a number.", update.update_type))
    };
    let current_number = |target: &Map<String, Value>| -> Result<Option<Value>, String> {
        match target.get(&field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) if v.is_number() => Ok(Some(v.clone())),
            Some(_) => Err(format!("{} is not a number.", update.field)),
        }
    };
    match update.update_type.as_str() {
        "set" => {
            target.insert(field, operand()?);
        }
        "unset" => {
            target.remove(&field);
        }
        kind @ ("increment" | "decrement" | "multiply" | "min" | "max") => {
            let by = operand()?;
            let by_f = number(by.clone())?;
            let current = current_number(target)?;
            let result = match (kind, &current) {
                ("min" | "max", None) => by,
                (_, _) => {
                    let now = current.as_ref().and_then(Value::as_f64).unwrap_or(0.0);
                    let value = match kind {
                        "increment" => now + by_f,
                        "decrement" => now - by_f,
                        "multiply" => now * by_f,
                        "min" => now.min(by_f),
                        _ => now.max(by_f),
                    };
                    let integers = current.as_ref().is_none_or(|c| c.is_i64()) && by.is_i64();
                    to_number(value, integers)?
                }
            };
            target.insert(field, result);
        }
        "push" | "pull" | "pop" | "shift" => {
            let list = target
                .entry(field.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
            let list = list
                .as_array_mut()
                .ok_or_else(|| format!("{} is not a list.", update.field))?;
            match update.update_type.as_str() {
                "push" => list.push(operand()?),
                "pull" => {
                    let value = operand()?;
                    list.retain(|item| *item != value);
                }
                "pop" => {
                    list.pop();
                }
                _ => {
                    if !list.is_empty() {
                        list.remove(0);
                    }
                }
            }
        }
        other => {
            return Err(format!(
                "updateType {other:?} is not one of set, unset, increment, decrement, min, max, multiply, push, pull, pop, shift."
            ));
        }
    }
    Ok(())
}

fn to_number(value: f64, integer: bool) -> Result<Value, String> {
    if integer && value.fract() == 0.0 && value.abs() < 9.0e15 {
        return Ok(Value::Number(Number::from(value as i64)));
    }
    Number::from_f64(value)
        .map(Value::Number)
        .ok_or_else(|| "the result is not a finite number.".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(doc: Value, field: &str, kind: &str, value: Option<Value>) -> Result<Value, String> {
        let mut map = doc.as_object().cloned().unwrap();
        apply_update(
            &mut map,
            &FieldUpdate {
                field: field.into(),
                update_type: kind.into(),
                value,
            },
        )?;
        Ok(Value::Object(map))
    }

    #[test]
    fn the_instruction_table() {
        let doc = json!({"n": 5, "f": 1.5, "list": [1, 2, 2, 3], "s": "x", "sub": {"a": 1}});
        let cases: &[(&str, &str, Option<Value>, Value)] = &[
            ("n", "increment", Some(json!(2)), json!(7)),
            ("n", "decrement", Some(json!(7)), json!(-2)),
            ("n", "multiply", Some(json!(3)), json!(15)),
            ("f", "increment", Some(json!(1)), json!(2.5)),
            ("n", "min", Some(json!(1)), json!(1)),
            ("n", "max", Some(json!(1)), json!(5)),
            ("missing", "increment", Some(json!(4)), json!(4)),
            ("missing", "max", Some(json!(4)), json!(4)),
            ("list", "push", Some(json!(9)), json!([1, 2, 2, 3, 9])),
            ("list", "pull", Some(json!(2)), json!([1, 3])),
            ("list", "pop", None, json!([1, 2, 2])),
            ("list", "shift", None, json!([2, 2, 3])),
            ("sub.a", "set", Some(json!("b")), json!("b")),
            ("sub.new.deep", "set", Some(json!(1)), json!(1)),
        ];
        for (field, kind, value, expected) in cases {
            let out = run(doc.clone(), field, kind, value.clone()).unwrap();
            let pointer = format!("/{}", field.replace('.', "/"));
            assert_eq!(out.pointer(&pointer), Some(expected), "{field} {kind}");
        }
        let out = run(doc.clone(), "s", "unset", None).unwrap();
        assert!(out.get("s").is_none());
    }

    #[test]
    fn wrong_targets_are_refused() {
        let doc = json!({"s": "x", "n": 1});
        assert!(run(doc.clone(), "s", "increment", Some(json!(1))).is_err());
        assert!(run(doc.clone(), "n", "push", Some(json!(1))).is_err());
        assert!(run(doc.clone(), "n", "increment", Some(json!("1"))).is_err());
        assert!(run(doc.clone(), "n", "explode", None).is_err());
        assert!(run(doc.clone(), "s.inner", "set", Some(json!(1))).is_err());
        assert!(run(doc, "a..b", "set", Some(json!(1))).is_err());
    }
}
