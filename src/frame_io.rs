//! Reading one size-prefixed Kafka frame off a stream, shared by both ends of a connection: the
//! server reading requests (`server::frame`) and the gateway reading an upstream's responses
//! (`upstream::frame`). Each judges the size itself (against its own limits) between the two
//! reads; the body's memory is taken only as its bytes arrive, so a hostile size costs nothing.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The body buffer starts this small and at most doubles as bytes arrive.
const FIRST_CHUNK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads the 4-byte size prefix as the signed size the protocol declares. `Ok(None)` is a
/// clean close before it.
pub async fn read_size<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Option<i32>, ReadError> {
    let mut prefix = [0u8; 4];
    let mut filled = 0;
    while filled < prefix.len() {
        let rest = prefix.get_mut(filled..).ok_or(ReadError::Truncated)?;
        let n = reader.read(rest).await?;
        if n == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(ReadError::Truncated)
            };
        }
        filled += n;
    }
    Ok(Some(i32::from_be_bytes(prefix)))
}

/// Reads a body of `len` bytes, the buffer growing (at most doubling) as bytes arrive.
pub async fn read_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    len: usize,
) -> Result<Bytes, ReadError> {
    let mut body: Vec<u8> = Vec::new();
    while body.len() < len {
        if body.len() == body.capacity() {
            let grown = body.capacity().saturating_mul(2).max(FIRST_CHUNK).min(len);
            body.reserve_exact(grown.saturating_sub(body.len()));
        }
        let want = body.capacity().min(len).saturating_sub(body.len());
        let n = (&mut *reader).take(want as u64).read_buf(&mut body).await?;
        if n == 0 {
            return Err(ReadError::Truncated);
        }
    }
    Ok(Bytes::from(body))
}
