//! The 4-byte size prefix of every Kafka frame, judged before anything is allocated for it.

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("frame size {0} is negative")]
    Negative(i32),
    #[error("frame size is zero")]
    Zero,
    #[error("frame size {size} exceeds the limit of {limit} bytes for this connection")]
    TooLarge { size: i32, limit: i32 },
}

/// Checks a frame size (read as the signed `i32` the protocol declares) against the
/// connection's current limit.
pub fn check_size(size: i32, limit: i32) -> Result<usize, SizeError> {
    match size {
        s if s < 0 => Err(SizeError::Negative(s)),
        0 => Err(SizeError::Zero),
        s if s > limit => Err(SizeError::TooLarge { size: s, limit }),
        s => usize::try_from(s).map_err(|_| SizeError::Negative(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked_as_signed() {
        assert_eq!(check_size(-1, 100), Err(SizeError::Negative(-1)));
        assert!(matches!(
            check_size(i32::MIN, 100),
            Err(SizeError::Negative(_))
        ));
        assert_eq!(check_size(0, 100), Err(SizeError::Zero));
        assert!(matches!(
            check_size(101, 100),
            Err(SizeError::TooLarge { .. })
        ));
        assert_eq!(check_size(100, 100).unwrap(), 100);
    }
}
