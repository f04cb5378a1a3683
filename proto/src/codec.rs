//! The protobuf codec of the generated stubs: tonic-prost's, except that a message that
//! does not decode is `INVALID_ARGUMENT` (the caller sent something malformed) instead of
//! tonic-prost's `INTERNAL` (which says the server failed, and invites a retry).

use std::marker::PhantomData;

use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// A [`Codec`] for prost messages whose decode errors are `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct ProtocolCodec<T, U> {
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for ProtocolCodec<T, U> {
    fn default() -> Self {
        ProtocolCodec {
            _types: PhantomData,
        }
    }
}

impl<T, U> Codec for ProtocolCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProtocolDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProtocolDecoder(ProstDecoder::default())
    }
}

/// Decodes with prost; a malformed message is the sender's error.
#[derive(Debug)]
pub struct ProtocolDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for ProtocolDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|status| {
            Status::invalid_argument(format!("malformed protobuf message: {}", status.message()))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
