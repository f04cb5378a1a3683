//! A plugin log event's fields as fields of the host's log line.
//!
//! `tracing` fixes an event's field names where the event is written (its callsite), so
//! the names a plugin chose cannot become fields of the host's own event. Instead the
//! host's event carries the plugin's fields beside it: [`PluginFields::emit_with`] puts
//! them in a thread-local while the event is dispatched (dispatch is synchronous, so the
//! formatters run inside it, on this thread), and the host's two formatters read them
//! there: [`JsonWithPluginFields`] adds them to the JSON line's `fields` object with
//! their JSON types, [`TextWithPluginFields`] appends them as `name=value`.
//!
//! A value recorded through `Debug` or `Display` arrives as text. In JSON it is written
//! as the JSON value that text is when it is a JSON array, object or string (the `Debug`
//! of a `Vec`, a map or a `String`: `cities = ?vec!["Tokyo"]` becomes `["Tokyo"]`), and
//! as a string otherwise (`Some(3)`, a struct's `Debug`). A plugin field named like one of
//! the host's own (`message`, `plugin`, `plugin_version`, `module`) is written as
//! `plugin.<name>`, so it cannot pass for the host's.

use std::cell::RefCell;
use std::fmt;

use durabletask_abi::{LogField, LogValue};
use serde_json::{Map, Value};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// At most this many fields of one event are kept (a plugin in a child process is
/// untrusted, and a log line is not a data channel).
pub(crate) const MAX_FIELDS: usize = 32;
/// A field's name is cut to this many bytes.
const MAX_NAME_BYTES: usize = 128;
/// A field's text value is cut to this many bytes.
const MAX_TEXT_BYTES: usize = 4 * 1024;

thread_local! {
    /// The fields of the plugin event being dispatched on this thread, if any.
    static CURRENT: RefCell<Option<PluginFields>> = const { RefCell::new(None) };
}

/// The fields of one plugin log event, copied from the plugin's record and cut to size.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct PluginFields {
    fields: Vec<(String, PluginValue)>,
}

/// A plugin field's value, as the plugin recorded it.
#[derive(Debug, Clone, PartialEq)]
enum PluginValue {
    Text(String),
    Formatted(String),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

impl PluginFields {
    /// Copies a record's fields (at most [`MAX_FIELDS`], names and texts cut to size).
    pub(crate) fn from_record(fields: &[LogField<'_>]) -> Self {
        let fields = fields
            .iter()
            .take(MAX_FIELDS)
            .map(|field| {
                let value = match field.value {
                    LogValue::Text(text) => PluginValue::Text(cut(text.as_str(), MAX_TEXT_BYTES)),
                    LogValue::Formatted(text) => {
                        PluginValue::Formatted(cut(text.as_str(), MAX_TEXT_BYTES))
                    }
                    LogValue::I64(number) => PluginValue::I64(number),
                    LogValue::U64(number) => PluginValue::U64(number),
                    LogValue::F64(number) => PluginValue::F64(number),
                    LogValue::Bool(flag) => PluginValue::Bool(flag),
                };
                (field_name(field.name.as_str()), value)
            })
            .collect();
        Self { fields }
    }

    /// Runs `emit` (which writes the host's event for the plugin's record) with these
    /// fields visible to the host's formatters.
    pub(crate) fn emit_with(self, emit: impl FnOnce()) {
        if self.fields.is_empty() {
            emit();
            return;
        }
        /// Clears the fields even if `emit` unwinds, so they cannot stick to a later event.
        struct Clear;
        impl Drop for Clear {
            fn drop(&mut self) {
                CURRENT.with_borrow_mut(|current| *current = None);
            }
        }
        CURRENT.with_borrow_mut(|current| *current = Some(self));
        let _clear = Clear;
        emit();
    }

    /// Adds the fields to a JSON log line's `fields` object (or its top level when it has
    /// none), answering the new line. A line that is not a JSON object is kept as is.
    fn splice_into_json(&self, line: &str) -> String {
        let Ok(mut event) = serde_json::from_str::<Map<String, Value>>(line.trim_end()) else {
            return line.to_owned();
        };
        let target = match event.get_mut("fields") {
            Some(Value::Object(fields)) => fields,
            _ => &mut event,
        };
        for (name, value) in &self.fields {
            let name = if target.contains_key(name) {
                format!("plugin.{name}")
            } else {
                name.clone()
            };
            target.insert(name, value.to_json());
        }
        let mut line = Value::Object(event).to_string();
        line.push('\n');
        line
    }

    /// Appends the fields as ` name=value`, as `tracing`'s text format writes fields. A
    /// name the host's own fields use is written `plugin.<name>`, and a formatted value
    /// with control characters (a line break) is quoted and escaped: a plugin cannot
    /// pass for the host or write a line of its own.
    fn write_text(&self, writer: &mut Writer<'_>) -> fmt::Result {
        for (name, value) in &self.fields {
            if HOST_FIELDS.contains(&name.as_str()) {
                write!(writer, " plugin.{name}=")?;
            } else {
                write!(writer, " {name}=")?;
            }
            match value {
                PluginValue::Text(text) => write!(writer, "{text:?}")?,
                PluginValue::Formatted(text) if text.chars().any(char::is_control) => {
                    write!(writer, "{text:?}")?;
                }
                PluginValue::Formatted(text) => writer.write_str(text)?,
                PluginValue::I64(number) => write!(writer, "{number}")?,
                PluginValue::U64(number) => write!(writer, "{number}")?,
                PluginValue::F64(number) => write!(writer, "{number}")?,
                PluginValue::Bool(flag) => write!(writer, "{flag}")?,
            }
        }
        Ok(())
    }
}

impl PluginValue {
    fn to_json(&self) -> Value {
        match self {
            Self::Text(text) => Value::from(text.as_str()),
            Self::Formatted(text) => match serde_json::from_str::<Value>(text) {
                Ok(value @ (Value::Array(_) | Value::Object(_) | Value::String(_))) => value,
                _ => Value::from(text.as_str()),
            },
            Self::I64(number) => Value::from(*number),
            Self::U64(number) => Value::from(*number),
            // NaN and the infinities are not JSON numbers (`Value::from` would make them
            // null): written as text instead.
            Self::F64(number) if number.is_finite() => Value::from(*number),
            Self::F64(number) => Value::from(number.to_string()),
            Self::Bool(flag) => Value::from(*flag),
        }
    }
}

/// The fields the host writes on every plugin event (see `callbacks::forward_log`).
const HOST_FIELDS: [&str; 4] = ["message", "plugin", "plugin_version", "module"];

/// A plugin's field name as the host writes it: cut to size, with anything that could
/// break a `name=value` pair or a line (whitespace, control characters, `=`) made `_`.
fn field_name(name: &str) -> String {
    truncated(name, MAX_NAME_BYTES)
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() || c == '=' {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// `text`, cut to at most `limit` bytes at a character boundary.
pub(crate) fn truncated(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn cut(text: &str, limit: usize) -> String {
    truncated(text, limit).to_owned()
}

/// A JSON event format that adds the fields of the plugin event being dispatched.
pub(crate) struct JsonWithPluginFields<E>(pub(crate) E);

impl<S, N, E> FormatEvent<S, N> for JsonWithPluginFields<E>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
    E: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        CURRENT.with_borrow(|current| match current {
            None => self.0.format_event(context, writer, event),
            Some(fields) => {
                let mut line = String::new();
                self.0
                    .format_event(context, Writer::new(&mut line), event)?;
                writer.write_str(&fields.splice_into_json(&line))
            }
        })
    }
}

/// `tracing`'s text field format, followed by the fields of the plugin event being
/// dispatched.
#[derive(Default)]
pub(crate) struct TextWithPluginFields(DefaultFields);

impl<'w> FormatFields<'w> for TextWithPluginFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        self.0.format_fields(writer.by_ref(), fields)?;
        CURRENT.with_borrow(|current| match current {
            Some(plugin_fields) => plugin_fields.write_text(&mut writer),
            None => Ok(()),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use abi_stable::std_types::RStr;

    use super::*;

    fn field<'a>(name: &'a str, value: LogValue<'a>) -> LogField<'a> {
        LogField {
            name: RStr::from_str(name),
            value,
        }
    }

    fn json_fields(fields: &[LogField<'_>], line: &str) -> Value {
        let line = PluginFields::from_record(fields).splice_into_json(line);
        assert!(line.ends_with('\n'));
        serde_json::from_str::<Value>(&line).unwrap()["fields"].clone()
    }

    #[test]
    fn fields_keep_their_json_types_and_lists_become_arrays() {
        let fields = [
            field("city", LogValue::Text(RStr::from_str("Tokyo"))),
            field("count", LogValue::U64(3)),
            field("delta", LogValue::I64(-2)),
            field("ratio", LogValue::F64(0.5)),
            field("done", LogValue::Bool(true)),
            field(
                "cities",
                LogValue::Formatted(RStr::from_str(r#"["Tokyo", "London"]"#)),
            ),
            field("name", LogValue::Formatted(RStr::from_str(r#""Seattle""#))),
            field("maybe", LogValue::Formatted(RStr::from_str("Some(3)"))),
            field("id", LogValue::Formatted(RStr::from_str("00123"))),
            field("nan", LogValue::F64(f64::NAN)),
        ];
        let fields = json_fields(
            &fields,
            r#"{"level":"INFO","fields":{"message":"saying hello"},"target":"plugin"}"#,
        );
        assert_eq!(
            fields,
            serde_json::json!({
                "message": "saying hello",
                "city": "Tokyo",
                "count": 3,
                "delta": -2,
                "ratio": 0.5,
                "done": true,
                "cities": ["Tokyo", "London"],
                "name": "Seattle",
                "maybe": "Some(3)",
                "id": "00123",
                "nan": "NaN",
            })
        );
    }

    #[test]
    fn a_field_named_like_the_hosts_own_is_prefixed() {
        let fields = [
            field("plugin", LogValue::Text(RStr::from_str("forged"))),
            field("message", LogValue::Text(RStr::from_str("forged too"))),
        ];
        let fields = json_fields(&fields, r#"{"fields":{"message":"real","plugin":"hello"}}"#);
        assert_eq!(fields["plugin"], "hello");
        assert_eq!(fields["message"], "real");
        assert_eq!(fields["plugin.plugin"], "forged");
        assert_eq!(fields["plugin.message"], "forged too");
    }

    #[test]
    fn fields_are_counted_and_cut_to_size() {
        let long_name = "n".repeat(MAX_NAME_BYTES + 10);
        let long_text = "é".repeat(MAX_TEXT_BYTES);
        let many: Vec<LogField<'_>> = (0..MAX_FIELDS + 5)
            .map(|_| field(&long_name, LogValue::Text(RStr::from_str(&long_text))))
            .collect();
        let kept = PluginFields::from_record(&many);
        assert_eq!(kept.fields.len(), MAX_FIELDS);
        let (name, value) = &kept.fields[0];
        assert_eq!(name.len(), MAX_NAME_BYTES);
        let PluginValue::Text(text) = value else {
            panic!("{value:?}")
        };
        assert!(text.len() <= MAX_TEXT_BYTES && text.len() > MAX_TEXT_BYTES - 2);
        assert!(text.chars().all(|character| character == 'é'));
    }

    #[test]
    fn texts_are_cut_on_a_character_boundary() {
        assert_eq!(truncated("hello", 10), "hello");
        assert_eq!(truncated("héllo", 2), "h");
        assert_eq!(truncated("héllo", 3), "hé");
    }

    #[test]
    fn a_line_that_is_not_json_is_kept() {
        let fields = [field("n", LogValue::U64(1))];
        assert_eq!(
            PluginFields::from_record(&fields).splice_into_json("not json\n"),
            "not json\n"
        );
    }

    #[test]
    fn in_text_a_plugin_cannot_pass_for_the_host_or_break_the_line() {
        let fields = [
            field("plugin", LogValue::Text(RStr::from_str("forged"))),
            field("bad name=x", LogValue::U64(1)),
            field(
                "note",
                LogValue::Formatted(RStr::from_str("a\nINFO forged line")),
            ),
        ];
        let mut text = String::new();
        PluginFields::from_record(&fields)
            .write_text(&mut Writer::new(&mut text))
            .unwrap();
        assert_eq!(
            text,
            r#" plugin.plugin="forged" bad_name_x=1 note="a\nINFO forged line""#
        );
        assert!(!text.contains('\n'));
    }

    #[test]
    fn text_fields_follow_tracings_text_format() {
        let fields = [
            field("city", LogValue::Text(RStr::from_str("Tokyo"))),
            field("cities", LogValue::Formatted(RStr::from_str(r#"["a"]"#))),
            field("n", LogValue::I64(-1)),
        ];
        let mut text = String::new();
        PluginFields::from_record(&fields)
            .write_text(&mut Writer::new(&mut text))
            .unwrap();
        assert_eq!(text, r#" city="Tokyo" cities=["a"] n=-1"#);
    }

    #[test]
    fn the_fields_are_visible_only_while_the_event_is_emitted() {
        let fields = PluginFields::from_record(&[field("n", LogValue::U64(1))]);
        let expected = fields.clone();
        fields.emit_with(|| {
            CURRENT.with_borrow(|current| assert_eq!(current.as_ref(), Some(&expected)));
        });
        CURRENT.with_borrow(|current| assert!(current.is_none()));
    }
}
