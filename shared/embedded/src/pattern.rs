//! EventBridge event patterns, compiled once and matched against event
//! envelopes. Supported: exact values (strings, numbers, booleans, null),
//! `prefix`, `suffix`, `anything-but` (a value, a list, or `{"prefix": …}`),
//! `exists`, `numeric`, `equals-ignore-case`, `wildcard` and `$or`. As in
//! EventBridge, a field matches when the event's value (or any element of
//! an array value) matches any matcher in the pattern's list.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid event pattern at '{path}': {reason}")]
pub struct PatternError {
    pub path: String,
    pub reason: String,
}

/// A compiled event pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    fields: Vec<(String, Node)>,
    any_of: Vec<Vec<Pattern>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Nested(Pattern),
    Leaf(Vec<Matcher>),
}

#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    Exact(Value),
    Prefix(String),
    Suffix(String),
    EqualsIgnoreCase(String),
    Wildcard(String),
    AnythingBut(Vec<Value>),
    AnythingButPrefix(String),
    Exists(bool),
    Numeric(Vec<(NumericOp, f64)>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum NumericOp {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

impl Pattern {
    /// Compiles a pattern from its JSON text.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let value: Value = serde_json::from_str(text).map_err(|e| PatternError {
            path: String::new(),
            reason: e.to_string(),
        })?;
        Self::from_value(&value)
    }

    pub fn from_value(value: &Value) -> Result<Self, PatternError> {
        match value {
            Value::Object(map) => compile_object(map, ""),
            _ => Err(err("", "a pattern must be a JSON object")),
        }
    }

    /// Does this pattern match `event` (an envelope with `detail` etc.)?
    pub fn matches(&self, event: &Value) -> bool {
        let fields_match = self.fields.iter().all(|(key, node)| {
            let value = event.as_object().and_then(|o| o.get(key));
            match node {
                Node::Nested(p) => value.is_some_and(|v| v.is_object() && p.matches(v)),
                Node::Leaf(matchers) => matchers.iter().any(|m| m.matches(value)),
            }
        });
        fields_match
            && self
                .any_of
                .iter()
                .all(|alternatives| alternatives.iter().any(|p| p.matches(event)))
    }
}

fn err(path: &str, reason: impl Into<String>) -> PatternError {
    PatternError {
        path: path.to_string(),
        reason: reason.into(),
    }
}

fn compile_object(map: &Map<String, Value>, path: &str) -> Result<Pattern, PatternError> {
    let mut pattern = Pattern {
        fields: Vec::new(),
        any_of: Vec::new(),
    };
    for (key, value) in map {
        let here = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        if key == "$or" {
            let alternatives = value
                .as_array()
                .filter(|a| a.len() >= 2)
                .ok_or_else(|| err(&here, "$or takes an array of at least two patterns"))?;
            let compiled = alternatives
                .iter()
                .map(|alt| match alt {
                    Value::Object(m) => compile_object(m, path),
                    _ => Err(err(&here, "each $or alternative must be an object")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            pattern.any_of.push(compiled);
            continue;
        }
        let node = match value {
            Value::Object(m) => Node::Nested(compile_object(m, &here)?),
            Value::Array(items) if !items.is_empty() => Node::Leaf(
                items
                    .iter()
                    .map(|item| compile_matcher(item, &here))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Array(_) => return Err(err(&here, "a match list must not be empty")),
            _ => return Err(err(&here, "leaf values must be arrays, e.g. [\"value\"]")),
        };
        pattern.fields.push((key.clone(), node));
    }
    Ok(pattern)
}

fn compile_matcher(item: &Value, path: &str) -> Result<Matcher, PatternError> {
    let Value::Object(op) = item else {
        return match item {
            Value::Array(_) => Err(err(path, "nested arrays are not allowed")),
            other => Ok(Matcher::Exact(other.clone())),
        };
    };
    if op.len() != 1 {
        return Err(err(path, "a matcher object has exactly one operator"));
    }
    let (name, arg) = op.iter().next().expect("one entry");
    let string_arg = |what: &str| {
        arg.as_str()
            .map(str::to_owned)
            .ok_or_else(|| err(path, format!("{what} takes a string")))
    };
    Ok(match name.as_str() {
        "prefix" => Matcher::Prefix(string_arg("prefix")?),
        "suffix" => Matcher::Suffix(string_arg("suffix")?),
        "equals-ignore-case" => Matcher::EqualsIgnoreCase(string_arg("equals-ignore-case")?),
        "wildcard" => Matcher::Wildcard(string_arg("wildcard")?),
        "exists" => Matcher::Exists(
            arg.as_bool()
                .ok_or_else(|| err(path, "exists takes true or false"))?,
        ),
        "anything-but" => match arg {
            Value::Array(values) => Matcher::AnythingBut(values.clone()),
            Value::Object(inner) => match inner.get("prefix").and_then(Value::as_str) {
                Some(p) if inner.len() == 1 => Matcher::AnythingButPrefix(p.to_owned()),
                _ => {
                    return Err(err(
                        path,
                        "anything-but object supports only {\"prefix\": …}",
                    ));
                }
            },
            scalar => Matcher::AnythingBut(vec![scalar.clone()]),
        },
        "numeric" => Matcher::Numeric(compile_numeric(arg, path)?),
        other => return Err(err(path, format!("unsupported operator '{other}'"))),
    })
}

fn compile_numeric(arg: &Value, path: &str) -> Result<Vec<(NumericOp, f64)>, PatternError> {
    let items = arg
        .as_array()
        .filter(|a| !a.is_empty() && a.len() % 2 == 0)
        .ok_or_else(|| err(path, "numeric takes pairs like [\">\", 0, \"<=\", 5]"))?;
    items
        .chunks(2)
        .map(|pair| {
            let op = match pair[0].as_str() {
                Some("<") => NumericOp::Lt,
                Some("<=") => NumericOp::Le,
                Some("=") => NumericOp::Eq,
                Some(">=") => NumericOp::Ge,
                Some(">") => NumericOp::Gt,
                _ => return Err(err(path, "numeric operator must be <, <=, =, >= or >")),
            };
            let n = pair[1]
                .as_f64()
                .ok_or_else(|| err(path, "numeric bound must be a number"))?;
            Ok((op, n))
        })
        .collect()
}

impl Matcher {
    /// `value` is the event's value at this field, `None` when absent.
    fn matches(&self, value: Option<&Value>) -> bool {
        match (self, value) {
            (Matcher::Exists(want), v) => *want == v.is_some(),
            (_, None) => false,
            (m, Some(Value::Array(items))) => items.iter().any(|item| m.matches_scalar(item)),
            (m, Some(v)) => m.matches_scalar(v),
        }
    }

    fn matches_scalar(&self, v: &Value) -> bool {
        match self {
            Matcher::Exact(want) => match (want, v) {
                (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
                _ => want == v,
            },
            Matcher::Prefix(p) => v.as_str().is_some_and(|s| s.starts_with(p.as_str())),
            Matcher::Suffix(p) => v.as_str().is_some_and(|s| s.ends_with(p.as_str())),
            Matcher::EqualsIgnoreCase(p) => v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(p)),
            Matcher::Wildcard(p) => v.as_str().is_some_and(|s| wildcard_match(p, s)),
            Matcher::AnythingBut(values) => !values.iter().any(|x| x == v),
            Matcher::AnythingButPrefix(p) => v.as_str().is_some_and(|s| !s.starts_with(p.as_str())),
            Matcher::Exists(_) => true,
            Matcher::Numeric(conds) => v.as_f64().is_some_and(|n| {
                conds.iter().all(|(op, bound)| match op {
                    NumericOp::Lt => n < *bound,
                    NumericOp::Le => n <= *bound,
                    NumericOp::Eq => n == *bound,
                    NumericOp::Ge => n >= *bound,
                    NumericOp::Gt => n > *bound,
                })
            }),
        }
    }
}

/// `*` matches any run of characters (including none).
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        json!({
            "source": "acme.orders",
            "detail-type": "fanout.broadcast",
            "detail": {
                "tenant": "acme",
                "target": {"room": "lobby"},
                "count": 5,
                "tags": ["red", "blue"]
            }
        })
    }

    fn check(pattern: Value) -> bool {
        Pattern::from_value(&pattern).unwrap().matches(&event())
    }

    #[test]
    fn table() {
        let cases = [
            (json!({"detail-type": ["fanout.broadcast"]}), true),
            (json!({"detail-type": ["other", "fanout.broadcast"]}), true),
            (json!({"detail-type": ["other"]}), false),
            (json!({"source": [{"prefix": "acme."}]}), true),
            (json!({"source": [{"prefix": "globex."}]}), false),
            (json!({"source": [{"suffix": ".orders"}]}), true),
            (json!({"source": [{"anything-but": "aws.events"}]}), true),
            (
                json!({"source": [{"anything-but": ["acme.orders"]}]}),
                false,
            ),
            (
                json!({"source": [{"anything-but": {"prefix": "acme"}}]}),
                false,
            ),
            (
                json!({"detail": {"target": {"room": [{"exists": true}]}}}),
                true,
            ),
            (
                json!({"detail": {"target": {"user": [{"exists": true}]}}}),
                false,
            ),
            (
                json!({"detail": {"target": {"user": [{"exists": false}]}}}),
                true,
            ),
            (
                json!({"detail": {"missing": [{"anything-but": "x"}]}}),
                false,
            ),
            (
                json!({"detail": {"count": [{"numeric": [">", 0, "<=", 5]}]}}),
                true,
            ),
            (json!({"detail": {"count": [{"numeric": ["<", 5]}]}}), false),
            (json!({"detail": {"count": [5]}}), true),
            (json!({"detail": {"tags": ["blue"]}}), true),
            (json!({"detail": {"tags": ["green"]}}), false),
            (
                json!({"detail": {"tenant": [{"equals-ignore-case": "ACME"}]}}),
                true,
            ),
            (json!({"source": [{"wildcard": "acme.*ers"}]}), true),
            (json!({"source": [{"wildcard": "*.billing"}]}), false),
            (
                json!({"$or": [{"source": ["x"]}, {"detail": {"tenant": ["acme"]}}]}),
                true,
            ),
            (
                json!({"$or": [{"source": ["x"]}, {"detail": {"tenant": ["y"]}}]}),
                false,
            ),
            (json!({"detail": {"tenant": {"nested": ["x"]}}}), false),
            (json!({}), true),
        ];
        for (pattern, want) in cases {
            assert_eq!(check(pattern.clone()), want, "{pattern}");
        }
    }

    #[test]
    fn invalid_patterns_are_refused_with_the_path() {
        for (bad, path) in [
            (json!({"source": "acme"}), "source"),
            (json!({"source": []}), "source"),
            (json!({"detail": {"n": [{"numeric": [">"]}]}}), "detail.n"),
            (json!({"source": [{"regex": "x"}]}), "source"),
            (json!({"source": [{"prefix": 5}]}), "source"),
            (json!({"$or": [{"a": ["b"]}]}), "$or"),
        ] {
            let e = Pattern::from_value(&bad).unwrap_err();
            assert_eq!(e.path, path, "{bad}");
        }
        assert!(Pattern::parse("[1]").is_err());
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("a*", "abc"));
        assert!(wildcard_match("*c", "abc"));
        assert!(wildcard_match("a*b*c", "a-b-c"));
        assert!(!wildcard_match("a*b*c", "a-c"));
        assert!(wildcard_match("abc", "abc"));
        assert!(!wildcard_match("a*a", "a"));
    }
}
