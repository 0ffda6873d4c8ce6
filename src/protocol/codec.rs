//! Request decoding and response encoding on top of `kafka-protocol`.
//!
//! The header is inspected by hand first (API key, version, correlation id) so that unknown
//! keys and unsupported versions are answered or refused without decoding the body.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("request header is truncated ({0} bytes)")]
    ShortHeader(usize),
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("malformed {api:?} v{version} request: {message}")]
    Malformed {
        api: ApiKey,
        version: i16,
        message: String,
    },
    #[error("cannot encode {api:?} v{version} response: {message}")]
    Encode {
        api: ApiKey,
        version: i16,
        message: String,
    },
}

/// The fixed leading fields of every request header.
#[derive(Debug, Clone, Copy)]
pub struct HeaderPrefix {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

/// Reads api key, version and correlation id without decoding anything else.
pub fn peek_header(frame: &Bytes) -> Result<HeaderPrefix, CodecError> {
    let mut buf = frame.get(..8).ok_or(CodecError::ShortHeader(frame.len()))?;
    Ok(HeaderPrefix {
        api_key: buf.get_i16(),
        api_version: buf.get_i16(),
        correlation_id: buf.get_i32(),
    })
}

/// A decoded request.
#[derive(Debug)]
pub struct Request {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: RequestKind,
}

/// Decodes header and body. The version must already be known to be supported.
pub fn decode_request(
    api_key: ApiKey,
    version: i16,
    mut frame: Bytes,
) -> Result<Request, CodecError> {
    let malformed = |e: anyhow::Error| CodecError::Malformed {
        api: api_key,
        version,
        message: e.to_string(),
    };
    let header_version = api_key.request_header_version(version);
    let header = RequestHeader::decode(&mut frame, header_version).map_err(malformed)?;
    let body = RequestKind::decode(api_key, &mut frame, version).map_err(malformed)?;
    Ok(Request {
        api_key,
        header,
        body,
    })
}

/// Room for an encoded response with its prefix and header. A Fetch is sized exactly: its
/// record bytes are most of it, megabytes at a time, and a buffer grown by doubling would
/// allocate and copy them several times over. Anything else starts small.
fn capacity_for(response: &ResponseKind, version: i16) -> usize {
    const HEADER: usize = 64;
    match response {
        ResponseKind::Fetch(fetch) => fetch
            .compute_size(version)
            .map_or(HEADER, |body| body.saturating_add(HEADER)),
        _ => HEADER,
    }
}

/// Encodes a response with its size prefix and header.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &ResponseKind,
) -> Result<Bytes, CodecError> {
    let fail = |e: anyhow::Error| CodecError::Encode {
        api: api_key,
        version,
        message: e.to_string(),
    };
    let mut buf = BytesMut::with_capacity(capacity_for(response, version));
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, api_key.response_header_version(version))
        .map_err(fail)?;
    response.encode(&mut buf, version).map_err(fail)?;
    let size = i32::try_from(buf.len() - 4).map_err(|_| CodecError::Encode {
        api: api_key,
        version,
        message: "response larger than 2 GiB".into(),
    })?;
    if let Some(prefix) = buf.get_mut(..4) {
        prefix.copy_from_slice(&size.to_be_bytes());
    }
    Ok(buf.freeze())
}
