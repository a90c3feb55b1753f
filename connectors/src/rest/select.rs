//! Dotted-path lookup into a JSON document.

use conveyor_config::JsonPath;
use serde_json::Value;

/// The value at `path` (array elements by numeric segment), if present.
pub fn select<'v>(doc: &'v Value, path: &JsonPath) -> Option<&'v Value> {
    let mut cur = doc;
    for seg in &path.0 {
        cur = match cur {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Moves the value at `path` out of `doc`.
pub fn take(doc: &mut Value, path: &JsonPath) -> Option<Value> {
    let mut cur = doc;
    for seg in &path.0 {
        cur = match cur {
            Value::Object(m) => m.get_mut(seg)?,
            Value::Array(a) => a.get_mut(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur.take())
}
