//! Lacework's search filters: `{"field", "expression", "value" | "values"}` with `eq`, `ne`,
//! `in`, `not_in`, `like`, `ilike`, `gt`, `ge`, `lt`, `le` on dotted field paths with `tags[0]`
//! style indexes, values compared as text.

use serde_json::Value;

/// The value at a dotted `path` such as `evalCtx.image_info.tags[0]`.
pub(crate) fn field<'a>(row: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = row;
    for part in path.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        cur = cur.get(name)?;
        if let Some(i) = index {
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

/// A scalar as the text filters compare (`true`, `42`); none for arrays, objects and null.
fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// SQL `LIKE`: `%` any run, `_` any one character.
fn like(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('%', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some(('_', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

/// Whether `row` passes `filter`; an error (Lacework's 400) for a malformed filter.
pub(crate) fn matches(row: &Value, filter: &Value) -> Result<bool, String> {
    let name = filter
        .get("field")
        .and_then(Value::as_str)
        .ok_or("filter without field")?;
    let expr = filter
        .get("expression")
        .and_then(Value::as_str)
        .ok_or("filter without expression")?;
    let actual = field(row, name).and_then(as_text);
    let value = filter.get("value").and_then(as_text);
    let values: Vec<String> = filter
        .get("values")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(as_text).collect())
        .unwrap_or_default();
    let need_value = || {
        value
            .clone()
            .ok_or(format!("filter on {name} needs a value"))
    };
    Ok(match expr {
        "eq" => actual == Some(need_value()?),
        "ne" => actual != Some(need_value()?),
        "in" => actual.is_some_and(|a| values.contains(&a)),
        "not_in" => !actual.is_some_and(|a| values.contains(&a)),
        "like" => actual.is_some_and(|a| like(&value.clone().unwrap_or_default(), &a)),
        "ilike" => actual.is_some_and(|a| {
            like(
                &value.clone().unwrap_or_default().to_lowercase(),
                &a.to_lowercase(),
            )
        }),
        "gt" => actual.is_some_and(|a| a > need_value().unwrap_or_default()),
        "ge" => actual.is_some_and(|a| a >= need_value().unwrap_or_default()),
        "lt" => actual.is_some_and(|a| a < need_value().unwrap_or_default()),
        "le" => actual.is_some_and(|a| a <= need_value().unwrap_or_default()),
        other => return Err(format!("unsupported filter expression {other:?}")),
    })
}

/// The `filters` of a search request (none when absent).
pub(crate) fn of_request(req: &Value) -> Vec<Value> {
    req.get("filters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The entries that pass every filter, in order; the first malformed filter met is an error
/// (filters are checked entry by entry, each stopping at its first failing filter).
pub(crate) fn select<'a>(
    entries: impl IntoIterator<Item = &'a Value>,
    filters: &[Value],
) -> Result<Vec<Value>, String> {
    let mut hits = Vec::new();
    for entry in entries {
        let mut ok = true;
        for f in filters {
            if !matches(entry, f)? {
                ok = false;
                break;
            }
        }
        if ok {
            hits.push(entry.clone());
        }
    }
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;
    use serde_json::json;

    fn row() -> Value {
        json!({
            "severity": "High",
            "score": 7,
            "evalCtx": {"image_info": {"repo": "Library/Nginx", "tags": ["1.4", "latest"]}, "is_reeval": false},
            "startTime": "2025-08-06T13:05:05.000Z",
        })
    }

    fn check(filter: Value) -> Result<bool, String> {
        matches(&row(), &filter)
    }

    fn f(field: &str, expression: &str, value: Value) -> Value {
        json!({"field": field, "expression": expression, "value": value})
    }

    #[test]
    fn like_patterns() -> TestResult {
        assert!(like("sha256:%", "sha256:abc"));
        assert!(like("a_c", "abc"));
        assert!(!like("a_c", "abbc"));
        assert!(like("%", ""));
        assert!(like("%b%", "abc"));
        assert!(!like("_", ""));
        assert!(!like("abc", "ABC"));
        Ok(())
    }

    #[test]
    fn field_paths_with_indexes() -> TestResult {
        let row = row();
        assert_eq!(
            field(&row, "evalCtx.image_info.tags[1]"),
            Some(&json!("latest"))
        );
        assert_eq!(
            field(&row, "evalCtx.image_info.tags[0]"),
            Some(&json!("1.4"))
        );
        assert_eq!(field(&row, "evalCtx.image_info.tags[2]"), None);
        assert_eq!(field(&row, "evalCtx.nope"), None);
        assert_eq!(field(&row, "severity"), Some(&json!("High")));
        assert_eq!(
            matches(
                &row,
                &json!({"field": "evalCtx.is_reeval", "expression": "eq", "value": "false"})
            ),
            Ok(true)
        );
        Ok(())
    }

    #[test]
    fn each_operator() -> TestResult {
        assert_eq!(check(f("severity", "eq", json!("High"))), Ok(true));
        assert_eq!(check(f("severity", "eq", json!("high"))), Ok(false));
        assert_eq!(check(f("score", "eq", json!(7))), Ok(true));
        assert_eq!(check(f("score", "eq", json!("7"))), Ok(true));
        assert_eq!(check(f("severity", "ne", json!("Low"))), Ok(true));
        assert_eq!(check(f("missing", "ne", json!("Low"))), Ok(true));
        let in_ = |values: Value, expression: &str| {
            check(json!({"field": "severity", "expression": expression, "values": values}))
        };
        assert_eq!(in_(json!(["Low", "High"]), "in"), Ok(true));
        assert_eq!(in_(json!(["Low"]), "in"), Ok(false));
        assert_eq!(in_(json!(["Low"]), "not_in"), Ok(true));
        assert_eq!(in_(json!(["High"]), "not_in"), Ok(false));
        assert_eq!(
            check(json!({"field": "missing", "expression": "not_in", "values": ["x"]})),
            Ok(true)
        );
        let repo = "evalCtx.image_info.repo";
        assert_eq!(check(f(repo, "like", json!("Library/%"))), Ok(true));
        assert_eq!(check(f(repo, "like", json!("library/%"))), Ok(false));
        assert_eq!(check(f(repo, "ilike", json!("library/ng_nx"))), Ok(true));
        assert_eq!(check(f(repo, "ilike", json!("%apache%"))), Ok(false));
        let t = "startTime";
        assert_eq!(check(f(t, "gt", json!("2025-08-06T00:00:00Z"))), Ok(true));
        assert_eq!(check(f(t, "lt", json!("2025-08-06T00:00:00Z"))), Ok(false));
        assert_eq!(
            check(f(t, "ge", json!("2025-08-06T13:05:05.000Z"))),
            Ok(true)
        );
        assert_eq!(
            check(f(t, "le", json!("2025-08-06T13:05:05.000Z"))),
            Ok(true)
        );
        assert_eq!(check(f(t, "le", json!("2025-08-06T13:05:04Z"))), Ok(false));
        assert_eq!(check(f("missing", "gt", json!(""))), Ok(false));
        Ok(())
    }

    #[test]
    fn malformed_filters() -> TestResult {
        assert_eq!(
            check(json!({"expression": "eq", "value": 1})),
            Err("filter without field".into())
        );
        assert_eq!(
            check(json!({"field": "severity", "value": 1})),
            Err("filter without expression".into())
        );
        assert_eq!(
            check(json!({"field": "severity", "expression": "eq"})),
            Err("filter on severity needs a value".into())
        );
        assert_eq!(
            check(f("severity", "regex", json!("x"))),
            Err("unsupported filter expression \"regex\"".into())
        );
        Ok(())
    }

    #[test]
    fn select_keeps_order_and_reports_the_first_malformed_filter_met() -> TestResult {
        let rows = [
            json!({"a": "1"}),
            json!({"a": "2"}),
            json!({"a": "1", "b": 1}),
        ];
        let hits = select(&rows, &[f("a", "eq", json!("1"))])?;
        assert_eq!(hits, vec![rows[0].clone(), rows[2].clone()]);
        // The failing filter stops the row before the malformed one is read...
        let filters = [f("a", "eq", json!("3")), json!({"field": "a"})];
        assert_eq!(select(&rows, &filters), Ok(vec![]));
        // ...and with no rows no filter is read at all.
        assert_eq!(select(&[], &[json!({})]), Ok(vec![]));
        assert!(select(&rows, &[json!({})]).is_err());
        Ok(())
    }
}
