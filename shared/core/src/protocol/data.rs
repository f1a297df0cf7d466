//! What a `data` payload (or a presence `state`) must be to travel every
//! hop: within the size limit, plain JSON, and not nested too deep.

use serde_json::value::RawValue;

use super::MAX_DATA_DEPTH;

/// Why a payload cannot be carried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("data is {len} bytes; the limit is {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error(
        "data must be plain JSON (finite numbers, valid strings, at most {MAX_DATA_DEPTH} levels deep): {0}"
    )]
    NotPlainJson(String),
    #[error("data is nested {depth} levels deep; the limit is {MAX_DATA_DEPTH}")]
    TooDeep { depth: usize },
}

/// Checks that `data` is JSON every hop can carry: finite numbers, strings
/// without lone surrogates, and at most [`MAX_DATA_DEPTH`] levels of
/// nesting. Parsing it fully costs once per publish, never per delivery.
pub fn check_data(data: &RawValue) -> Result<(), DataError> {
    let value: serde_json::Value =
        serde_json::from_str(data.get()).map_err(|e| DataError::NotPlainJson(e.to_string()))?;
    let depth = depth_of(&value);
    if depth > MAX_DATA_DEPTH {
        return Err(DataError::TooDeep { depth });
    }
    Ok(())
}

/// Nesting depth of a JSON value (a scalar is 0), without recursion.
fn depth_of(value: &serde_json::Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        match v {
            serde_json::Value::Array(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            serde_json::Value::Object(map) => stack.extend(map.values().map(|i| (i, depth + 1))),
            _ => {}
        }
    }
    deepest
}

/// Checks a serialized `data` payload against the limit.
pub fn check_payload_size(len: usize, max: usize) -> Result<(), DataError> {
    if len > max {
        Err(DataError::TooLarge { len, max })
    } else {
        Ok(())
    }
}
