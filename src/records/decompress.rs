//! Bounded decompression of a batch's records section.
//!
//! Every codec writes into one caller-owned `Vec` whose length and capacity never exceed
//! `limit`: streaming codecs are read in fixed chunks and the output is checked before it is
//! appended, and snappy's self-declared block lengths are checked against the budget before
//! anything is allocated for them. Sizes claimed inside a compressed stream are never used to
//! size an allocation beyond that budget.

use std::io::Read;

use super::varint::Cursor;
use super::RecordError;

pub const COMPRESSION_NONE: i16 = 0;
pub const COMPRESSION_GZIP: i16 = 1;
pub const COMPRESSION_SNAPPY: i16 = 2;
pub const COMPRESSION_LZ4: i16 = 3;
pub const COMPRESSION_ZSTD: i16 = 4;

/// Read granularity for streaming decoders: the most a decoder can produce beyond the limit
/// before we notice.
const CHUNK: usize = 32 * 1024;

/// snappy-java's stream ("xerial") framing: this magic, then two big-endian i32 versions.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

/// No snappy element produces more than 64 bytes from 3 input bytes, so a block claiming more
/// than this multiple of its own size is corrupt; rejecting it up front stops a few bytes from
/// reserving the whole budget.
const SNAPPY_MAX_EXPANSION: usize = 32;

/// zstd window bounds. The decoder allocates a buffer the size of the frame's declared window,
/// so the window must be capped. Java clients stream with the level's default window (2 MiB at
/// the default level 3, 8 MiB at level 19) without a content size, so the cap cannot go below
/// 8 MiB without rejecting real producers; above that it follows the decompression limit, up to
/// zstd's own default ceiling of 128 MiB.
const ZSTD_WINDOW_LOG_FLOOR: u32 = 23;
const ZSTD_WINDOW_LOG_CEIL: u32 = 27;

/// Decompresses `input` with `codec` into `out` (cleared first). Fails with
/// [`RecordError::DecompressionLimit`] as soon as the output would exceed `limit` bytes.
pub(crate) fn decompress(
    codec: i16,
    input: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), RecordError> {
    out.clear();
    match codec {
        COMPRESSION_NONE => append_bounded(out, input, limit),
        COMPRESSION_GZIP => {
            // Multi-member, like Java's GZIPInputStream, so concatenated gzip streams decode.
            read_bounded(flate2::read::MultiGzDecoder::new(input), limit, out)
        }
        COMPRESSION_SNAPPY => snappy(input, limit, out),
        COMPRESSION_LZ4 => lz4(input, limit, out),
        COMPRESSION_ZSTD => zstd(input, limit, out),
        other => Err(RecordError::UnsupportedCompression(other)),
    }
}

fn corrupt(codec: &str, e: impl std::fmt::Display) -> RecordError {
    RecordError::Corrupt(format!("{codec}: {e}"))
}

/// Appends `data`, growing capacity geometrically but never past `limit`.
fn append_bounded(out: &mut Vec<u8>, data: &[u8], limit: usize) -> Result<(), RecordError> {
    let new_len = out
        .len()
        .checked_add(data.len())
        .filter(|&l| l <= limit)
        .ok_or(RecordError::DecompressionLimit(limit))?;
    reserve_bounded(out, new_len, limit)?;
    out.extend_from_slice(data);
    Ok(())
}

/// Ensures capacity for `new_len` (<= `limit`) bytes; doubling amortises the copies while the
/// `min(limit)` keeps the worst case at exactly the budget.
fn reserve_bounded(out: &mut Vec<u8>, new_len: usize, limit: usize) -> Result<(), RecordError> {
    if new_len <= out.capacity() {
        return Ok(());
    }
    let target = out
        .capacity()
        .saturating_mul(2)
        .max(new_len)
        .min(limit)
        .max(new_len);
    out.try_reserve_exact(target.saturating_sub(out.len()))
        .map_err(|_| RecordError::DecompressionLimit(limit))
}

/// Drains a streaming decoder in fixed chunks, stopping at the first chunk that would exceed
/// the limit, so a bomb costs at most `limit + CHUNK` bytes of output work.
fn read_bounded<R: Read>(mut r: R, limit: usize, out: &mut Vec<u8>) -> Result<(), RecordError> {
    let mut chunk = [0u8; CHUNK];
    loop {
        let n = r
            .read(&mut chunk)
            .map_err(|e| RecordError::Corrupt(e.to_string()))?;
        if n == 0 {
            return Ok(());
        }
        let data = chunk
            .get(..n)
            .ok_or_else(|| RecordError::Corrupt("decoder overran its buffer".to_owned()))?;
        append_bounded(out, data, limit)?;
    }
}

fn lz4(input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), RecordError> {
    // Kafka v2 batches use the standard LZ4 frame format.
    let mut dec = lz4::Decoder::new(input).map_err(|e| corrupt("lz4", e))?;
    read_bounded(&mut dec, limit, out).map_err(|e| match e {
        RecordError::Corrupt(m) => corrupt("lz4", m),
        other => other,
    })?;
    // The decoder reports a frame cut short as a clean end of stream; `finish` is where it
    // admits the frame was incomplete.
    let (_, res) = dec.finish();
    res.map_err(|e| corrupt("lz4", e))
}

fn zstd(input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), RecordError> {
    let mut dec =
        zstd::stream::read::Decoder::with_buffer(input).map_err(|e| corrupt("zstd", e))?;
    dec.window_log_max(zstd_window_log_max(limit))
        .map_err(|e| corrupt("zstd", e))?;
    read_bounded(dec, limit, out).map_err(|e| match e {
        RecordError::Corrupt(m) => corrupt("zstd", m),
        other => other,
    })
}

/// ceil(log2(limit)) within the floor and ceiling described at the constants.
pub(crate) fn zstd_window_log_max(limit: usize) -> u32 {
    let ceil_log2 = usize::BITS - limit.saturating_sub(1).leading_zeros();
    ceil_log2.clamp(ZSTD_WINDOW_LOG_FLOOR, ZSTD_WINDOW_LOG_CEIL)
}

/// Kafka's snappy is either snappy-java's framed stream or, from some librdkafka versions, one
/// raw snappy block. snappy-java itself falls back to raw when the magic is absent; so do we.
fn snappy(input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), RecordError> {
    if input.len() >= XERIAL_HEADER_LEN && input.starts_with(XERIAL_MAGIC) {
        xerial(input, limit, out)
    } else {
        snappy_block(input, limit, out)
    }
}

/// snappy-java stream: header, then `[i32 length][raw snappy block]` until the end. A header
/// may reappear at a block boundary when streams were concatenated; snappy-java skips it.
fn xerial(input: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), RecordError> {
    let mut c = Cursor::new(input);
    while !c.is_empty() {
        if c.rest().starts_with(XERIAL_MAGIC) {
            c.take(XERIAL_HEADER_LEN)
                .ok_or_else(|| corrupt("snappy", "truncated stream header"))?;
            continue;
        }
        let len = c
            .i32()
            .ok_or_else(|| corrupt("snappy", "truncated block length"))?;
        let len = usize::try_from(len)
            .map_err(|_| corrupt("snappy", format!("negative block length {len}")))?;
        let block = c
            .take(len)
            .ok_or_else(|| corrupt("snappy", format!("block of {len} bytes is truncated")))?;
        snappy_block(block, limit, out)?;
    }
    Ok(())
}

/// Appends one raw snappy block. The block's declared length is checked against the remaining
/// budget (and against what its size could possibly expand to) before any allocation.
fn snappy_block(block: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), RecordError> {
    let len = snap::raw::decompress_len(block).map_err(|e| corrupt("snappy", e))?;
    if len > block.len().saturating_mul(SNAPPY_MAX_EXPANSION) {
        return Err(corrupt(
            "snappy",
            format!(
                "block of {} bytes claims {len} decompressed bytes",
                block.len()
            ),
        ));
    }
    let start = out.len();
    let end = start
        .checked_add(len)
        .filter(|&e| e <= limit)
        .ok_or(RecordError::DecompressionLimit(limit))?;
    reserve_bounded(out, end, limit)?;
    out.resize(end, 0);
    let dst = out
        .get_mut(start..end)
        .ok_or_else(|| corrupt("snappy", "output window out of range"))?;
    let written = snap::raw::Decoder::new()
        .decompress(block, dst)
        .map_err(|e| corrupt("snappy", e))?;
    if written != len {
        return Err(corrupt(
            "snappy",
            format!("block declared {len} bytes but produced {written}"),
        ));
    }
    Ok(())
}
