//! The JSON payload conventions of the protocol (spec §2), shared by orchestrations and
//! activities: every user value travels as JSON text in an optional string, and both an
//! absent and an empty string mean `null`.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Reads a payload: absent or `""` is JSON `null`.
pub(crate) fn decode<T: DeserializeOwned>(raw: Option<&str>) -> serde_json::Result<T> {
    match raw {
        None | Some("") => T::deserialize(serde_json::Value::Null),
        Some(text) => serde_json::from_str(text),
    }
}

/// Writes a payload: `null` becomes an absent field.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Option<String>> {
    let text = serde_json::to_string(value)?;
    Ok(if text == "null" { None } else { Some(text) })
}

/// An optional string that counts as absent when empty (spec §2.2).
pub(crate) fn non_empty(raw: Option<&String>) -> Option<&str> {
    raw.map(String::as_str).filter(|s| !s.is_empty())
}
