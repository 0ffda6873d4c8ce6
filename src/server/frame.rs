//! Reading one frame: the 4-byte size prefix, checked before any allocation
//! ([`crate::protocol::frame`]), and the body read against the broker's memory budget.

use bytes::Bytes;
use tokio::io::AsyncRead;

use crate::frame_io::{read_body, read_size, ReadError};
use crate::memory_budget::{ExceedsBudget, MemoryBudget, Reservation};
use crate::protocol::frame::{check_size, SizeError};

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error(transparent)]
    Size(#[from] SizeError),
    #[error("frame refused: {0}")]
    OverBudget(#[from] ExceedsBudget),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// One request frame and the memory it holds against the budget; dropping the frame (and every
/// `Bytes` cut from it) is when the memory is really gone, so keep the reservation as long.
#[derive(Debug)]
pub struct Frame {
    pub body: Bytes,
    pub reservation: Reservation,
}

/// Reads one frame. `Ok(None)` is a clean close between frames.
///
/// The size is validated against `limit` before the body buffer is allocated, so a hostile
/// size prefix costs nothing. The declared size is then reserved from `budget` (waiting, and
/// so reading nothing more from this client, until it fits), and the buffer grows only as
/// bytes arrive.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: i32,
    budget: &MemoryBudget,
) -> Result<Option<Frame>, FrameError> {
    let Some(size) = read_size(reader).await? else {
        return Ok(None);
    };
    let len = check_size(size, limit)?;
    let reservation = budget.reserve(len).await?;
    let body = read_body(reader, len).await?;
    Ok(Some(Frame { body, reservation }))
}

impl From<ReadError> for FrameError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Truncated => FrameError::Truncated,
            ReadError::Io(e) => FrameError::Io(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn clean_close_truncation_and_a_frame() {
        let budget = MemoryBudget::new(1024);
        let mut empty: &[u8] = &[];
        assert!(read_frame(&mut empty, 10, &budget).await.unwrap().is_none());
        let mut half: &[u8] = &[0, 0];
        assert!(matches!(
            read_frame(&mut half, 10, &budget).await,
            Err(FrameError::Truncated)
        ));
        let mut short: &[u8] = &[0, 0, 0, 5, 1, 2];
        assert!(matches!(
            read_frame(&mut short, 10, &budget).await,
            Err(FrameError::Truncated)
        ));
        assert_eq!(
            budget.in_use(),
            0,
            "a truncated frame gives its memory back"
        );
        let mut ok: &[u8] = &[0, 0, 0, 2, 7, 8];
        let frame = read_frame(&mut ok, 10, &budget).await.unwrap().unwrap();
        assert_eq!(&frame.body[..], &[7, 8]);
        assert_eq!(budget.in_use(), 2);
        drop(frame);
        assert_eq!(budget.in_use(), 0);
        let mut huge: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut huge, 10, &budget).await,
            Err(FrameError::Size(SizeError::TooLarge { .. }))
        ));
    }

    #[tokio::test]
    async fn a_frame_larger_than_the_whole_budget_is_refused() {
        let budget = MemoryBudget::new(4);
        let mut five: &[u8] = &[0, 0, 0, 5, 1, 2, 3, 4, 5];
        assert!(matches!(
            read_frame(&mut five, 100, &budget).await,
            Err(FrameError::OverBudget(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_frame_that_does_not_fit_waits_without_reading() {
        let budget = MemoryBudget::new(10);
        let held = budget.reserve(8).await.unwrap();
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(&[0, 0, 0, 4, 1, 2, 3, 4]).await.unwrap();
        let reader = tokio::spawn({
            let budget = budget.clone();
            async move {
                read_frame(&mut server, 100, &budget)
                    .await
                    .map(|f| f.map(|f| f.body.to_vec()))
            }
        });
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        assert!(!reader.is_finished(), "4 bytes do not fit beside 8 of 10");
        drop(held);
        let body = reader.await.unwrap().unwrap().unwrap();
        assert_eq!(body, vec![1, 2, 3, 4]);
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn a_large_frame_arriving_in_pieces_is_read_whole() {
        let budget = MemoryBudget::new(1 << 20);
        let len = 200_000usize;
        let mut wire = (len as u32).to_be_bytes().to_vec();
        wire.extend((0..len).map(|i| (i % 251) as u8));
        let (mut client, mut server) = tokio::io::duplex(4096);
        let writer = tokio::spawn(async move { client.write_all(&wire).await.unwrap() });
        let frame = read_frame(&mut server, i32::MAX, &budget)
            .await
            .unwrap()
            .unwrap();
        writer.await.unwrap();
        assert_eq!(frame.body.len(), len);
        assert!(frame
            .body
            .iter()
            .enumerate()
            .all(|(i, b)| *b == (i % 251) as u8));
    }
}
