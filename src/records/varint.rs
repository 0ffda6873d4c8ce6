//! A bounds-checked cursor over a byte slice: fixed-width big-endian integers and Kafka's
//! zigzag varints. Every read returns `None` instead of panicking when the input runs out, so
//! callers can turn exhaustion into a precise error.

/// Reads from the front of a slice, shrinking it as it goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// The bytes not yet consumed.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Takes the next `n` bytes, or `None` (consuming nothing) if fewer remain.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.buf.split_at_checked(n)?;
        self.buf = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.buf.split_first_chunk::<N>()?;
        self.buf = rest;
        Some(*head)
    }

    pub(crate) fn i8(&mut self) -> Option<i8> {
        self.array::<1>().map(i8::from_be_bytes)
    }

    pub(crate) fn i32(&mut self) -> Option<i32> {
        self.array::<4>().map(i32::from_be_bytes)
    }

    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.buf.split_first()?;
        self.buf = rest;
        Some(b)
    }

    /// Kafka's zigzag varint (`ByteUtils.readVarint`): at most 5 bytes. Like the Java reader,
    /// bits of the fifth byte beyond 32 are dropped rather than rejected, so we accept exactly
    /// what Kafka accepts.
    pub(crate) fn varint(&mut self) -> Result<i32, VarintError> {
        let mut value: u32 = 0;
        let mut shift: u32 = 0;
        loop {
            let b = self.u8().ok_or(VarintError::Truncated)?;
            value |= u32::from(b & 0x7f).wrapping_shl(shift);
            if b & 0x80 == 0 {
                // The fifth byte's high bits have fallen off the top, as in Java's `b << 28`.
                return Ok(zigzag32(value));
            }
            shift += 7;
            if shift > 28 {
                return Err(VarintError::TooLong);
            }
        }
    }

    /// Kafka's zigzag varlong (`ByteUtils.readVarlong`): at most 10 bytes.
    pub(crate) fn varlong(&mut self) -> Result<i64, VarintError> {
        let mut value: u64 = 0;
        let mut shift: u32 = 0;
        loop {
            let b = self.u8().ok_or(VarintError::Truncated)?;
            value |= u64::from(b & 0x7f).wrapping_shl(shift);
            if b & 0x80 == 0 {
                return Ok(zigzag64(value));
            }
            shift += 7;
            if shift > 63 {
                return Err(VarintError::TooLong);
            }
        }
    }
}

/// Appends `v` as a zigzag varlong (`ByteUtils.writeVarlong`). For values that fit an `i32`
/// the bytes are exactly those of Kafka's 32-bit varint, so one writer serves both.
pub(crate) fn write_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarintError {
    Truncated,
    TooLong,
}

fn zigzag32(raw: u32) -> i32 {
    ((raw >> 1) as i32) ^ -((raw & 1) as i32)
}

fn zigzag64(raw: u64) -> i64 {
    ((raw >> 1) as i64) ^ -((raw & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_values() {
        let cases: &[(&[u8], i32)] = &[
            (&[0x00], 0),
            (&[0x01], -1),
            (&[0x02], 1),
            (&[0x03], -2),
            (&[0xfe, 0x01], 127),
            (&[0xff, 0xff, 0xff, 0xff, 0x0f], i32::MIN),
            (&[0xfe, 0xff, 0xff, 0xff, 0x0f], i32::MAX),
        ];
        for (bytes, want) in cases {
            let mut c = Cursor::new(bytes);
            assert_eq!(c.varint(), Ok(*want), "{bytes:?}");
            assert!(c.is_empty());
        }
    }

    #[test]
    fn varint_errors() {
        assert_eq!(Cursor::new(&[0x80]).varint(), Err(VarintError::Truncated));
        assert_eq!(
            Cursor::new(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]).varint(),
            Err(VarintError::TooLong)
        );
        assert_eq!(
            Cursor::new(&[0x80; 11]).varlong(),
            Err(VarintError::TooLong)
        );
        assert_eq!(
            Cursor::new(&[0xff; 3]).varlong(),
            Err(VarintError::Truncated)
        );
    }

    #[test]
    fn varlong_extremes() {
        let mut max = [0xffu8; 10];
        max[0] = 0xfe;
        max[9] = 0x01;
        assert_eq!(Cursor::new(&max).varlong(), Ok(i64::MAX));
        assert_eq!(Cursor::new(&[0x01]).varlong(), Ok(-1));
    }

    #[test]
    fn written_varints_read_back_as_kafka_reads_them() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            127,
            300,
            i64::from(i32::MAX),
            i64::from(i32::MIN),
        ] {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            assert_eq!(Cursor::new(&out).varlong(), Ok(v), "{v}");
            let narrow = i32::try_from(v).unwrap();
            assert_eq!(Cursor::new(&out).varint(), Ok(narrow), "{v}");
        }
        for v in [i64::MAX, i64::MIN, 1 << 40] {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            assert_eq!(Cursor::new(&out).varlong(), Ok(v), "{v}");
        }
        let mut out = Vec::new();
        write_varlong(&mut out, -1);
        assert_eq!(out, [0x01]);
    }

    #[test]
    fn fixed_width_reads() {
        let mut c = Cursor::new(&[0, 0, 0, 1, 0xff]);
        assert_eq!(c.i32(), Some(1));
        assert_eq!(c.take(2), None);
        assert_eq!(c.remaining(), 1);
        assert_eq!(c.i8(), Some(-1));
        assert_eq!(c.take(1), None);
    }
}
