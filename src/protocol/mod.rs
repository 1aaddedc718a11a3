//! The wire format around every API: length-prefixed frames, request headers and
//! response headers (versions per API as `kafka-protocol` defines them).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::error::ConnectionError;

pub mod frame;
pub mod frames;

pub use frame::Frame;
use frame::SegmentedBuf;

/// A request whose header has been decoded; the body is still bytes.
#[derive(Debug)]
pub struct Request {
    /// Which API.
    pub api_key: ApiKey,
    /// Which version of it.
    pub version: i16,
    /// Correlation id to echo in the response.
    pub correlation_id: i32,
    /// Client id from the header, if any.
    pub client_id: Option<StrBytes>,
    /// The encoded request body.
    pub body: Bytes,
}

impl Request {
    /// Decodes the header of one frame. Unknown API keys are an error (the
    /// connection is closed, as Kafka does); version checks are the caller's.
    pub fn parse(mut frame: Bytes) -> Result<Request, ConnectionError> {
        if frame.len() < 8 {
            return Err(ConnectionError::Malformed(format!("frame of {} bytes has no header", frame.len())));
        }
        let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let api_key = ApiKey::try_from(raw_key).map_err(|_| ConnectionError::UnknownApiKey(raw_key))?;
        let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        if version < 0 || version > api_key.valid_versions().max {
            // Beyond what the schemas know: only the fixed prefix can be trusted.
            return Ok(Request { api_key, version, correlation_id, client_id: None, body: Bytes::new() });
        }
        let header_version = api_key.request_header_version(version);
        let header = RequestHeader::decode(&mut frame, header_version)
            .map_err(|e| ConnectionError::Malformed(format!("request header: {e}")))?;
        Ok(Request { api_key, version, correlation_id, client_id: header.client_id, body: frame })
    }

    /// Decodes the body as `T` at this request's version.
    pub fn decode<T: Decodable>(&mut self) -> Result<T, ConnectionError> {
        let body = T::decode(&mut self.body, self.version)
            .map_err(|e| ConnectionError::Malformed(format!("{:?} v{} body: {e}", self.api_key, self.version)))?;
        if self.body.has_remaining() {
            tracing::debug!(api = ?self.api_key, trailing = self.body.remaining(), "ignoring trailing request bytes");
        }
        Ok(body)
    }
}

/// Encodes a response frame (length prefix, header, body) ready to write.
pub fn encode_response<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Result<BytesMut, ConnectionError> {
    match encode_response_sharing(api_key, version, correlation_id, body, Vec::new())? {
        Frame::Contiguous(buf) => Ok(buf),
        // Nothing was shared, so the encoder produced one buffer; join anyway.
        segmented => Ok(BytesMut::from(&segmented.to_bytes()[..])),
    }
}

/// Encodes a response frame whose `shared` byte strings (record batches) are
/// referenced, not copied, wherever the body contains them.
pub fn encode_response_sharing<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
    shared: Vec<Bytes>,
) -> Result<Frame, ConnectionError> {
    let header_version = api_key.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let size = 4
        + header.compute_size(header_version).map_err(|e| ConnectionError::Encode(e.to_string()))?
        + body.compute_size(version).map_err(|e| ConnectionError::Encode(e.to_string()))?;
    let shared_len: usize = shared.iter().map(Bytes::len).sum();
    let mut buf = SegmentedBuf::new(shared, size.saturating_sub(shared_len) + 64);
    buf.put_i32(0); // length, patched below
    header.encode(&mut buf, header_version).map_err(|e| ConnectionError::Encode(e.to_string()))?;
    body.encode(&mut buf, version).map_err(|e| ConnectionError::Encode(format!("{api_key:?} v{version}: {e}")))?;
    buf.patch_front(&((size - 4) as i32).to_be_bytes());
    let frame = buf.into_frame();
    if frame.len() != size {
        return Err(ConnectionError::Encode(format!("{api_key:?} v{version}: encoded {} bytes, computed {size}", frame.len())));
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::MetadataRequest;

    #[test]
    fn parses_header_and_body() {
        let mut frame = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Metadata as i16)
            .with_request_api_version(12)
            .with_correlation_id(77)
            .with_client_id(Some(StrBytes::from_static_str("t")));
        header.encode(&mut frame, ApiKey::Metadata.request_header_version(12)).unwrap();
        MetadataRequest::default().encode(&mut frame, 12).unwrap();
        let mut req = Request::parse(frame.freeze()).unwrap();
        assert_eq!((req.api_key, req.version, req.correlation_id), (ApiKey::Metadata, 12, 77));
        assert_eq!(req.client_id.as_deref(), Some("t"));
        let body: MetadataRequest = req.decode().unwrap();
        assert!(body.topics.is_none() || body.topics.unwrap().is_empty());
    }

    #[test]
    fn rejects_unknown_keys_and_short_frames() {
        assert!(matches!(Request::parse(Bytes::from_static(&[0, 1])), Err(ConnectionError::Malformed(_))));
        let frame = Bytes::from_static(&[0x7f, 0, 0, 0, 0, 0, 0, 1]);
        assert!(matches!(Request::parse(frame), Err(ConnectionError::UnknownApiKey(0x7f00))));
    }
}
