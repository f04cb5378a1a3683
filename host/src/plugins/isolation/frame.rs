//! The frames the host and a plugin's child process exchange over their socket: a
//! little-endian `u32` length, then a [`Frame`] encoded with protobuf (prost). The
//! requests and responses inside are the protocol's own encodings, passed through as
//! bytes: neither side decodes what it only forwards.
//!
//! The child runs plugin code, which may write anything to the socket: the host treats
//! every frame as untrusted (a size limit, a decode that may fail, ids it checks).

use std::io::{self, Read};

use bytes::Bytes;
use prost::Message;

use crate::plugins::loaded_plugin::Registrations;

/// The largest frame a child accepts from the host. A work item's history can be large
/// (the backend streams histories past gRPC's 64 MiB message limit), so this is generous.
pub(crate) const MAX_REQUEST_FRAME_BYTES: usize = 1 << 30;

/// The largest frame the host accepts from a child: a response (an activity's output,
/// an orchestration's actions) larger than this is more than any backend takes, and a
/// child that sends one is broken or hostile. The host reads a frame as its bytes
/// arrive, so a child cannot make it reserve this much by claiming it.
pub(crate) const MAX_RESPONSE_FRAME_BYTES: usize = 256 << 20;

/// The buffer each side reads its socket through: frames that arrive together (a
/// `Began` and its `Reply`, several calls) are taken with one system call instead of
/// two or three per frame.
pub(crate) const READ_BUFFER_BYTES: usize = 64 * 1024;

/// One message between the host and a child.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Frame {
    #[prost(oneof = "Body", tags = "1, 2, 3, 4, 5, 6, 7, 8")]
    pub(crate) body: Option<Body>,
}

/// What a frame carries.
#[derive(Clone, PartialEq, prost::Oneof)]
pub(crate) enum Body {
    /// Child → host, first frame: the plugin loaded and registered these names.
    #[prost(message, tag = "1")]
    Loaded(Registrations),
    /// Child → host, first frame: the library could not be loaded, and why.
    #[prost(message, tag = "2")]
    LoadFailed(LoadFailed),
    /// Host → child: run this work item.
    #[prost(message, tag = "3")]
    Call(Call),
    /// Child → host: the response to call `id`.
    #[prost(message, tag = "4")]
    Reply(Reply),
    /// Child → host: the activity of call `id` left its first poll and runs on the
    /// plugin's runtime (no call of the host's is inside the plugin for it any more).
    #[prost(message, tag = "5")]
    Started(Started),
    /// Child → host: a log record of the plugin's.
    #[prost(message, tag = "6")]
    Log(Log),
    /// Host → child: stop the plugin's runtime and exit.
    #[prost(message, tag = "7")]
    Shutdown(Shutdown),
    /// Child → host: call `id` goes into the plugin's code now (a step or batch starts
    /// to run, or an activity's first poll), so a crash from here on may be its doing.
    #[prost(message, tag = "8")]
    Began(Started),
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct LoadFailed {
    /// Which [`LoadError`](crate::plugins::LoadError) it was (see `child_main`).
    #[prost(uint32, tag = "1")]
    pub(crate) kind: u32,
    #[prost(string, tag = "2")]
    pub(crate) message: String,
}

/// The kinds of work a host hands a child.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub(crate) enum CallKind {
    Orchestration = 0,
    Activity = 1,
    EntityBatch = 2,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct Call {
    #[prost(uint64, tag = "1")]
    pub(crate) id: u64,
    #[prost(enumeration = "CallKind", tag = "2")]
    pub(crate) kind: i32,
    /// For an entity batch: which request shape `request` is (the ABI's `EntityShape`).
    #[prost(uint32, tag = "3")]
    pub(crate) shape: u32,
    /// The encoded `OrchestratorRequest`, `ActivityRequest` or entity request.
    #[prost(bytes = "bytes", tag = "4")]
    pub(crate) request: Bytes,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct Reply {
    #[prost(uint64, tag = "1")]
    pub(crate) id: u64,
    /// The encoded `OrchestratorResponse`, `ActivityResponse` or `EntityBatchResult`.
    #[prost(bytes = "bytes", tag = "2")]
    pub(crate) response: Bytes,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct Started {
    #[prost(uint64, tag = "1")]
    pub(crate) id: u64,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct Log {
    /// The ABI's `LogLevel` as a number.
    #[prost(uint32, tag = "1")]
    pub(crate) level: u32,
    /// The plugin's module that logged it.
    #[prost(string, tag = "2")]
    pub(crate) target: String,
    #[prost(string, tag = "3")]
    pub(crate) message: String,
    /// The event's fields, when the plugin keeps them apart from the message.
    #[prost(message, repeated, tag = "4")]
    pub(crate) fields: Vec<LogField>,
}

/// A field of a [`Log`]: the ABI's `LogField` on the wire.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct LogField {
    #[prost(string, tag = "1")]
    pub(crate) name: String,
    #[prost(oneof = "LogValue", tags = "2, 3, 4, 5, 6, 7")]
    pub(crate) value: Option<LogValue>,
}

/// The ABI's `LogValue` on the wire.
#[derive(Clone, PartialEq, prost::Oneof)]
pub(crate) enum LogValue {
    #[prost(string, tag = "2")]
    Text(String),
    #[prost(string, tag = "3")]
    Formatted(String),
    #[prost(sint64, tag = "4")]
    I64(i64),
    #[prost(uint64, tag = "5")]
    U64(u64),
    #[prost(double, tag = "6")]
    F64(f64),
    #[prost(bool, tag = "7")]
    Bool(bool),
}

impl LogField {
    /// The frame's field from the ABI's.
    pub(crate) fn from_abi(field: &durabletask_abi::LogField<'_>) -> Self {
        use durabletask_abi::LogValue as Abi;
        let value = match field.value {
            Abi::Text(text) => LogValue::Text(text.as_str().to_owned()),
            Abi::Formatted(text) => LogValue::Formatted(text.as_str().to_owned()),
            Abi::I64(number) => LogValue::I64(number),
            Abi::U64(number) => LogValue::U64(number),
            Abi::F64(number) => LogValue::F64(number),
            Abi::Bool(flag) => LogValue::Bool(flag),
        };
        Self {
            name: field.name.as_str().to_owned(),
            value: Some(value),
        }
    }

    /// The ABI's field, borrowing this one's text (`None`: a frame with no value, from a
    /// confused or hostile child).
    pub(crate) fn to_abi(&self) -> Option<durabletask_abi::LogField<'_>> {
        use abi_stable::std_types::RStr;
        use durabletask_abi::LogValue as Abi;
        let value = match self.value.as_ref()? {
            LogValue::Text(text) => Abi::Text(RStr::from_str(text)),
            LogValue::Formatted(text) => Abi::Formatted(RStr::from_str(text)),
            LogValue::I64(number) => Abi::I64(*number),
            LogValue::U64(number) => Abi::U64(*number),
            LogValue::F64(number) => Abi::F64(*number),
            LogValue::Bool(flag) => Abi::Bool(*flag),
        };
        Some(durabletask_abi::LogField {
            name: RStr::from_str(&self.name),
            value,
        })
    }
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct Shutdown {}

impl Frame {
    pub(crate) fn new(body: Body) -> Self {
        Self { body: Some(body) }
    }

    /// The frame with its length in front, ready for one `write_all`.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let length = self.encoded_len();
        let mut bytes = Vec::with_capacity(4 + length);
        // A frame over 4 GiB cannot be built from requests the backend accepts; the
        // reader refuses anything over MAX_FRAME_BYTES anyway.
        bytes.extend_from_slice(&u32::try_from(length).unwrap_or(u32::MAX).to_le_bytes());
        self.encode_raw(&mut bytes);
        bytes
    }
}

/// Reads one frame of at most `max_bytes`; `Ok(None)` at a clean end of the stream (the
/// other side closed it between frames).
pub(crate) fn read(reader: &mut impl Read, max_bytes: usize) -> io::Result<Option<Frame>> {
    let mut length = [0u8; 4];
    match reader.read_exact(&mut length) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    let length = u32::from_le_bytes(length) as usize;
    if length > max_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {length} bytes is over the limit of {max_bytes}"),
        ));
    }
    // Grown as the bytes arrive, not allocated from the length a child claims.
    let mut body = Vec::new();
    let read = reader.take(length as u64).read_to_end(&mut body)?;
    if read < length {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("a frame cut short after {read} of {length} bytes"),
        ));
    }
    // Decoded from `Bytes`: the request or response inside is a view of the frame's
    // buffer, not a copy.
    let frame = Frame::decode(Bytes::from(body))
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
    if frame.body.is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a frame with nothing in it",
        ));
    }
    Ok(Some(frame))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::io::Write;

    fn write(writer: &mut impl Write, frame: &Frame) -> io::Result<()> {
        writer.write_all(&frame.to_bytes())
    }

    #[test]
    fn frames_read_back_as_written_and_a_clean_end_is_none() {
        let call = Frame::new(Body::Call(Call {
            id: 7,
            kind: CallKind::EntityBatch as i32,
            shape: 2,
            request: Bytes::from_static(&[1, 2, 3]),
        }));
        let log = Frame::new(Body::Log(Log {
            level: 3,
            target: "orders".to_owned(),
            message: "charged".to_owned(),
            fields: vec![
                LogField {
                    name: "amount".to_owned(),
                    value: Some(LogValue::I64(-5)),
                },
                LogField {
                    name: "items".to_owned(),
                    value: Some(LogValue::Formatted("[1, 2]".to_owned())),
                },
            ],
        }));
        let mut bytes = Vec::new();
        write(&mut bytes, &call).unwrap();
        write(&mut bytes, &log).unwrap();
        let mut reader = bytes.as_slice();
        assert_eq!(
            read(&mut reader, MAX_REQUEST_FRAME_BYTES).unwrap(),
            Some(call)
        );
        assert_eq!(
            read(&mut reader, MAX_REQUEST_FRAME_BYTES).unwrap(),
            Some(log)
        );
        assert_eq!(read(&mut reader, MAX_REQUEST_FRAME_BYTES).unwrap(), None);
    }

    #[test]
    fn log_fields_cross_the_socket_as_they_left_the_plugin() {
        use abi_stable::std_types::RStr;
        use durabletask_abi::LogValue as Abi;
        let values = [
            Abi::Text(RStr::from_str("Tokyo")),
            Abi::Formatted(RStr::from_str("[1, 2]")),
            Abi::I64(i64::MIN),
            Abi::U64(u64::MAX),
            Abi::F64(0.25),
            Abi::Bool(true),
        ];
        for value in values {
            let field = durabletask_abi::LogField {
                name: RStr::from_str("n"),
                value,
            };
            let frame =
                LogField::decode(LogField::from_abi(&field).encode_to_vec().as_slice()).unwrap();
            let back = frame.to_abi().unwrap();
            assert_eq!((back.name.as_str(), back.value), ("n", value));
        }
        let empty = LogField {
            name: "n".to_owned(),
            value: None,
        };
        assert!(empty.to_abi().is_none());
    }

    #[test]
    fn an_oversized_a_cut_or_an_empty_frame_is_an_error() {
        let oversized = (u32::try_from(MAX_RESPONSE_FRAME_BYTES).unwrap() + 1).to_le_bytes();
        let error = read(&mut oversized.as_slice(), MAX_RESPONSE_FRAME_BYTES).unwrap_err();
        assert!(error.to_string().contains("over the limit"), "{error}");

        let mut cut = Frame::new(Body::Started(Started { id: 1 })).to_bytes();
        cut.pop();
        assert!(read(&mut cut.as_slice(), MAX_RESPONSE_FRAME_BYTES).is_err());

        let empty = 0u32.to_le_bytes();
        let error = read(&mut empty.as_slice(), MAX_RESPONSE_FRAME_BYTES).unwrap_err();
        assert!(error.to_string().contains("nothing in it"), "{error}");

        let garbage = [3u8, 0, 0, 0, 0xff, 0xff, 0xff];
        assert!(read(&mut garbage.as_slice(), MAX_RESPONSE_FRAME_BYTES).is_err());
    }
}
