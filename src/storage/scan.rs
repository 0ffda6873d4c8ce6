//! Sequential walk over the batches of a log file, reading in large chunks so that scanning
//! headers of small batches does not cost one system call per batch.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::batch::{StoredHeader, HEADER_LEN};

const CHUNK: usize = 256 * 1024;

pub enum Scan<'a> {
    /// A batch whose framing fits in the file; `body` is the whole batch when requested.
    Batch {
        pos: u64,
        header: StoredHeader,
        body: Option<&'a [u8]>,
    },
    /// Clean end of the file.
    End,
    /// Bytes at `pos` do not form a batch (torn write or damage).
    Invalid { pos: u64 },
}

pub struct BatchScanner<'f> {
    file: &'f File,
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<'f> BatchScanner<'f> {
    pub fn new(file: &'f File, start: u64, end: u64) -> Self {
        Self {
            file,
            pos: start,
            end,
            buf: Vec::new(),
            buf_start: start,
        }
    }

    /// Makes `[at, at + need)` available in the buffer; false if it extends past the end.
    fn fill(&mut self, at: u64, need: usize) -> std::io::Result<bool> {
        let need_u64 = need as u64;
        let buf_end = self.buf_start + self.buf.len() as u64;
        if at >= self.buf_start && at + need_u64 <= buf_end {
            return Ok(true);
        }
        if at.saturating_add(need_u64) > self.end {
            return Ok(false);
        }
        let len = usize::try_from((self.end - at).min(need.max(CHUNK) as u64)).unwrap_or(need);
        self.buf.clear();
        self.buf.resize(len, 0);
        self.file.read_exact_at(&mut self.buf, at)?;
        self.buf_start = at;
        Ok(true)
    }

    fn slice(&self, at: u64, len: usize) -> Option<&[u8]> {
        let from = usize::try_from(at.checked_sub(self.buf_start)?).ok()?;
        self.buf.get(from..from.checked_add(len)?)
    }

    pub fn next_batch(&mut self, with_body: bool) -> std::io::Result<Scan<'_>> {
        let pos = self.pos;
        if pos >= self.end {
            return Ok(Scan::End);
        }
        if !self.fill(pos, HEADER_LEN)? {
            return Ok(Scan::Invalid { pos });
        }
        let Some(header) = self.slice(pos, HEADER_LEN).and_then(StoredHeader::parse) else {
            return Ok(Scan::Invalid { pos });
        };
        let size = header.frame.size;
        if pos.saturating_add(size as u64) > self.end {
            return Ok(Scan::Invalid { pos });
        }
        self.pos = pos + size as u64;
        if !with_body {
            return Ok(Scan::Batch {
                pos,
                header,
                body: None,
            });
        }
        if !self.fill(pos, size)? {
            return Ok(Scan::Invalid { pos });
        }
        Ok(Scan::Batch {
            pos,
            header,
            body: self.slice(pos, size),
        })
    }
}
