//! Frames to and from an upstream broker: requests with their header, responses read against a
//! size limit with memory taken only as bytes arrive (the upstream is not trusted either).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};
use tokio::io::AsyncRead;

use crate::frame_io::{read_body, read_size, ReadError};

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("response size {0} is negative")]
    Negative(i32),
    #[error("response size {0} is too small for a header")]
    TooSmall(i32),
    #[error(
        "response size {size} exceeds the limit of {limit} bytes (gateway.max_response_bytes)"
    )]
    TooLarge { size: i32, limit: i32 },
    #[error("connection closed in the middle of a response")]
    Truncated,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one response frame (size prefix excluded). `Ok(None)` is a clean close between frames.
pub async fn read_response<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: i32,
) -> Result<Option<Bytes>, FrameError> {
    let Some(size) = read_size(reader).await? else {
        return Ok(None);
    };
    let len = match size {
        s if s < 0 => return Err(FrameError::Negative(s)),
        // Every response starts with a 4-byte correlation id.
        s if s < 4 => return Err(FrameError::TooSmall(s)),
        s if s > limit => return Err(FrameError::TooLarge { size: s, limit }),
        s => usize::try_from(s).map_err(|_| FrameError::Negative(s))?,
    };
    Ok(Some(read_body(reader, len).await?))
}

impl From<ReadError> for FrameError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Truncated => FrameError::Truncated,
            ReadError::Io(e) => FrameError::Io(e),
        }
    }
}

/// The correlation id every response begins with.
pub fn correlation_id(response: &Bytes) -> Option<i32> {
    let bytes: [u8; 4] = response.get(..4)?.try_into().ok()?;
    Some(i32::from_be_bytes(bytes))
}

/// A request frame: size prefix, header (of the version `api` and `version` call for), body.
pub fn encode_request(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    body: &[u8],
) -> anyhow::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(body.len() + 64);
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(client_id.map(|c| StrBytes::from_string(c.to_string())))
        .encode(&mut buf, api.request_header_version(version))?;
    buf.put_slice(body);
    let size = i32::try_from(buf.len() - 4)?;
    if let Some(prefix) = buf.get_mut(..4) {
        prefix.copy_from_slice(&size.to_be_bytes());
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn read_bytes(bytes: &[u8], limit: i32) -> Result<Option<Bytes>, FrameError> {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        a.write_all(bytes).await.unwrap();
        drop(a);
        read_response(&mut b, limit).await
    }

    #[tokio::test]
    async fn a_whole_frame_is_read_and_a_clean_close_is_none() {
        let mut bytes = 6i32.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 7, 1, 2]);
        let frame = read_bytes(&bytes, 100).await.unwrap().unwrap();
        assert_eq!(correlation_id(&frame), Some(7));
        assert_eq!(&frame[4..], &[1, 2]);
        assert!(read_bytes(&[], 100).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn hostile_and_truncated_prefixes_are_errors() {
        assert!(matches!(
            read_bytes(&i32::MAX.to_be_bytes(), 1000).await,
            Err(FrameError::TooLarge {
                size: i32::MAX,
                limit: 1000
            })
        ));
        assert!(matches!(
            read_bytes(&(-5i32).to_be_bytes(), 1000).await,
            Err(FrameError::Negative(-5))
        ));
        assert!(matches!(
            read_bytes(&2i32.to_be_bytes(), 1000).await,
            Err(FrameError::TooSmall(2))
        ));
        // Half a prefix, then half a body.
        assert!(matches!(
            read_bytes(&[0, 0], 1000).await,
            Err(FrameError::Truncated)
        ));
        let mut short = 100i32.to_be_bytes().to_vec();
        short.extend_from_slice(&[0; 10]);
        assert!(matches!(
            read_bytes(&short, 1000).await,
            Err(FrameError::Truncated)
        ));
    }

    #[tokio::test]
    async fn a_declared_size_is_read_as_it_arrives_and_a_cut_is_an_error() {
        // 50 MB declared, 8 bytes sent: the reader waits for the rest, then the peer closes.
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        a.write_all(&(50i32 << 20).to_be_bytes()).await.unwrap();
        a.write_all(&[0; 8]).await.unwrap();
        let read = tokio::spawn(async move { read_response(&mut b, i32::MAX).await });
        tokio::task::yield_now().await;
        assert!(!read.is_finished());
        drop(a);
        assert!(matches!(read.await.unwrap(), Err(FrameError::Truncated)));
    }

    #[test]
    fn request_frames_carry_size_and_header() {
        let frame = encode_request(ApiKey::Metadata, 1, 42, Some("gw"), &[9, 9]).unwrap();
        let size = i32::from_be_bytes(frame[..4].try_into().unwrap());
        assert_eq!(size as usize, frame.len() - 4);
        // api key 3, version 1, correlation 42, client id "gw" (header v1), body.
        assert_eq!(&frame[4..12], &[0, 3, 0, 1, 0, 0, 0, 42]);
        assert_eq!(&frame[12..16], &[0, 2, b'g', b'w']);
        assert_eq!(&frame[16..], &[9, 9]);
    }
}
