//! The 4-byte size prefix of every Kafka frame, checked before any allocation.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {0} is negative")]
    Negative(i32),
    #[error("frame size is zero")]
    Zero,
    #[error("frame size {size} exceeds the limit of {limit} bytes for this connection")]
    TooLarge { size: i32, limit: i32 },
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Checks a frame size against the connection's current limit.
pub fn check_size(size: i32, limit: i32) -> Result<usize, FrameError> {
    match size {
        s if s < 0 => Err(FrameError::Negative(s)),
        0 => Err(FrameError::Zero),
        s if s > limit => Err(FrameError::TooLarge { size: s, limit }),
        s => usize::try_from(s).map_err(|_| FrameError::Negative(s)),
    }
}

/// Reads one frame. `Ok(None)` is a clean close between frames.
///
/// The size is validated against `limit` before the body buffer is allocated, so a hostile
/// size prefix costs nothing.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: i32,
) -> Result<Option<Bytes>, FrameError> {
    let mut prefix = [0u8; 4];
    let mut filled = 0;
    while filled < prefix.len() {
        let rest = prefix.get_mut(filled..).ok_or(FrameError::Truncated)?;
        let n = reader.read(rest).await?;
        if n == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
        filled += n;
    }
    let len = check_size(i32::from_be_bytes(prefix), limit)?;
    let mut body = BytesMut::zeroed(len);
    reader.read_exact(&mut body).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Truncated
        } else {
            FrameError::Io(e)
        }
    })?;
    Ok(Some(body.freeze()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sizes_are_checked_as_signed() {
        assert!(matches!(check_size(-1, 100), Err(FrameError::Negative(-1))));
        assert!(matches!(
            check_size(i32::MIN, 100),
            Err(FrameError::Negative(_))
        ));
        assert!(matches!(check_size(0, 100), Err(FrameError::Zero)));
        assert!(matches!(
            check_size(101, 100),
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(check_size(100, 100).unwrap(), 100);
    }

    #[tokio::test]
    async fn clean_close_truncation_and_a_frame() {
        let mut empty: &[u8] = &[];
        assert!(read_frame(&mut empty, 10).await.unwrap().is_none());
        let mut half: &[u8] = &[0, 0];
        assert!(matches!(
            read_frame(&mut half, 10).await,
            Err(FrameError::Truncated)
        ));
        let mut short: &[u8] = &[0, 0, 0, 5, 1, 2];
        assert!(matches!(
            read_frame(&mut short, 10).await,
            Err(FrameError::Truncated)
        ));
        let mut ok: &[u8] = &[0, 0, 0, 2, 7, 8];
        assert_eq!(
            &read_frame(&mut ok, 10).await.unwrap().unwrap()[..],
            &[7, 8]
        );
        let mut huge: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut huge, 10).await,
            Err(FrameError::TooLarge { .. })
        ));
    }
}
