//! Record batch compression: gzip, snappy, lz4 and zstd, all in pure Rust.
//!
//! Kafka compresses the records region of a v2 batch (everything after `recordsCount`) with the codec
//! named by bits 0–2 of the batch attributes. The formats are the ones the Java client writes:
//!
//! - gzip: RFC 1952 (one or more members), through `flate2` with its `miniz_oxide` backend.
//! - snappy: the xerial `snappy-java` *stream* format (`\x82SNAPPY\0`, version 1, compatible version 1,
//!   then chunks of `[int32 BE length][raw snappy block]`). [`compress`] writes that framing so Java,
//!   librdkafka and kafka-python read it; [`decompress`] also accepts a bare raw snappy block, which some
//!   older clients send.
//! - lz4: the LZ4 *frame* format (one or more frames; not the raw block format, not the legacy
//!   frame), through `lz4_flex`; [`compress`] writes 64 KiB independent blocks as Kafka does.
//! - zstd: standard zstd frames (one or more, skippable frames ignored), through `ruzstd`.
//!
//! Decompression never produces more than the caller's `max_size` bytes: every codec reads through a
//! capped loop (or checks snappy's declared length before allocating) and fails with
//! [`CompressionError::TooLarge`] as soon as the cap would be exceeded, so a zip bomb is an error, not an
//! out-of-memory abort. Output buffers grow with the data actually produced; a declared size found in a
//! header is only used as a capacity hint, clamped to the cap and to a plausible ratio of the input.

use std::io::{self, BufRead, Read, Write};

/// The compression codec of a record batch (attribute bits 0–2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// No compression (codec 0).
    None,
    /// gzip, RFC 1952 (codec 1).
    Gzip,
    /// snappy in the xerial `snappy-java` stream framing (codec 2).
    Snappy,
    /// LZ4 frame format (codec 3).
    Lz4,
    /// zstd frame format (codec 4).
    Zstd,
}

/// Mask of the codec bits in the batch attributes.
pub const CODEC_MASK: i16 = 0x07;

/// Default cap on the decompressed size of one batch: 64 MiB.
pub const DEFAULT_MAX_DECOMPRESSED_SIZE: usize = 64 * 1024 * 1024;

/// The 8-byte magic that opens a xerial `snappy-java` stream: `0x82 'S' 'N' 'A' 'P' 'P' 'Y' 0x00`.
pub const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0x00];

/// The full 16-byte xerial header [`compress`] writes: [`XERIAL_MAGIC`], then version 1 and minimum
/// compatible version 1, both as big-endian int32 (as snappy-java's `SnappyCodec` and kafka-python's
/// `_XERIAL_V1_HEADER` write them).
pub const XERIAL_HEADER: [u8; 16] = [
    0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0x00, 0, 0, 0, 1, 0, 0, 0, 1,
];

/// Uncompressed bytes per xerial chunk written by [`compress`] (snappy-java's and kafka-python's default).
pub const XERIAL_BLOCK_SIZE: usize = 32 * 1024;

/// Smallest zstd window a frame may declare regardless of `max_size`: 8 MiB, the largest window the
/// standard zstd levels 1–19 use. A frame declaring a window above `max(max_size, 8 MiB)` is rejected with
/// [`CompressionError::TooLarge`] because `ruzstd` reserves the whole window up front.
pub const ZSTD_MIN_WINDOW_LIMIT: usize = 8 * 1024 * 1024;

/// gzip/deflate cannot expand more than about 1032:1; used to clamp the size hint of the gzip trailer.
const GZIP_MAX_RATIO: usize = 1032;
/// LZ4 cannot expand more than about 255:1; used to clamp size hints.
const LZ4_MAX_RATIO: usize = 256;
/// A zstd RLE block expands 4 bytes into 128 KiB; used to clamp size hints.
const ZSTD_MAX_RATIO: usize = 32 * 1024;
/// Growth step floor for the capped read loop.
const MIN_CHUNK: usize = 64 * 1024;

/// Errors from [`compress`], [`decompress`] and [`Compression::from_attributes`].
#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    /// Attribute bits 0–2 hold a value Kafka does not define (5, 6 or 7).
    #[error("unknown compression codec {0} in batch attributes")]
    UnknownCodec(i16),
    /// The decompressed data would exceed the caller's cap.
    #[error("decompressed data exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The cap that was hit, in bytes.
        limit: usize,
    },
    /// gzip data is malformed (bad header, corrupt deflate stream, CRC or size mismatch, truncation).
    #[error("gzip: {0}")]
    Gzip(#[source] io::Error),
    /// A raw snappy block is malformed.
    #[error("snappy: {0}")]
    Snappy(#[source] snap::Error),
    /// The xerial snappy framing around the raw blocks is malformed.
    #[error("snappy (xerial framing): {0}")]
    SnappyFraming(&'static str),
    /// LZ4 frame data is malformed (bad magic or header, corrupt block, checksum mismatch, truncation).
    #[error("lz4: {0}")]
    Lz4(#[source] io::Error),
    /// LZ4 compression failed.
    #[error("lz4 compression: {0}")]
    Lz4Compress(#[source] lz4_flex::frame::Error),
    /// zstd frame data is malformed (bad magic or header, corrupt block, checksum mismatch, truncation).
    #[error("zstd: {0}")]
    Zstd(#[source] io::Error),
}

impl Compression {
    /// The codec named by bits 0–2 of a batch's attributes; the other bits are ignored.
    ///
    /// Values 5, 6 and 7 give [`CompressionError::UnknownCodec`].
    pub fn from_attributes(attributes: i16) -> Result<Self, CompressionError> {
        match attributes & CODEC_MASK {
            0 => Ok(Self::None),
            1 => Ok(Self::Gzip),
            2 => Ok(Self::Snappy),
            3 => Ok(Self::Lz4),
            4 => Ok(Self::Zstd),
            other => Err(CompressionError::UnknownCodec(other)),
        }
    }

    /// The attribute bits (0–2) for this codec, to be OR-ed into a batch's attributes.
    pub fn attribute_bits(self) -> i16 {
        match self {
            Self::None => 0,
            Self::Gzip => 1,
            Self::Snappy => 2,
            Self::Lz4 => 3,
            Self::Zstd => 4,
        }
    }

    /// The codec's name as Kafka's `compression.type` spells it (`none`, `gzip`, `snappy`, `lz4`, `zstd`).
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }

    /// All five codecs, in attribute order.
    pub const ALL: [Compression; 5] = [Self::None, Self::Gzip, Self::Snappy, Self::Lz4, Self::Zstd];
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Decompresses `input` (the records region of a batch) with `codec`, producing at most `max_size` bytes.
///
/// Returns [`CompressionError::TooLarge`] as soon as the output would exceed `max_size`; the output
/// buffer never grows past `max_size + 1` bytes. Malformed input, including empty input, gives the
/// codec's error variant. [`Compression::None`] copies the input (subject to the same cap). Never
/// panics.
///
/// Besides the output, each codec keeps bounded working memory: gzip a 32 KiB window; lz4 one or two
/// blocks of the size the frame header declares (at most 4 MiB each); zstd the window the frame
/// declares, which must be at most `max(max_size, 8 MiB)` or the frame is refused as `TooLarge`
/// (`ruzstd` reserves it up front, untouched pages cost no RSS); snappy nothing.
pub fn decompress(
    codec: Compression,
    input: &[u8],
    max_size: usize,
) -> Result<Vec<u8>, CompressionError> {
    match codec {
        Compression::None => {
            if input.len() > max_size {
                return Err(CompressionError::TooLarge { limit: max_size });
            }
            Ok(input.to_vec())
        }
        // No codec encodes anything, not even empty data, as zero bytes. (A batch left empty by
        // compaction keeps its codec bits but has no records region; callers skip decompression
        // when the record count is 0.)
        _ if input.is_empty() => Err(empty_input_error(codec)),
        Compression::Gzip => decompress_gzip(input, max_size),
        Compression::Snappy => decompress_snappy(input, max_size),
        Compression::Lz4 => decompress_lz4(input, max_size),
        Compression::Zstd => decompress_zstd(input, max_size),
    }
}

/// Compresses `input` with `codec` and **appends** the result to `out` (existing contents are kept, so a
/// batch encoder can write its header first).
///
/// Formats: gzip at the default level (6, as Java's `GZIPOutputStream`); snappy with the xerial framing
/// in 32 KiB chunks; lz4 as one LZ4 frame with 64 KiB independent blocks and no checksums (as Kafka's
/// `KafkaLZ4BlockOutputStream`); zstd as one frame with a content checksum.
///
/// **zstd limitation:** `ruzstd` 0.9 only implements its `Fastest` encoder level (about zstd level 1);
/// there is no way to ask for a better ratio. Output is standard zstd and any decoder reads it.
/// [`Compression::None`] copies the input.
pub fn compress(
    codec: Compression,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), CompressionError> {
    match codec {
        Compression::None => {
            out.extend_from_slice(input);
            Ok(())
        }
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            enc.write_all(input).map_err(CompressionError::Gzip)?;
            enc.finish().map_err(CompressionError::Gzip)?;
            Ok(())
        }
        Compression::Snappy => {
            compress_snappy_xerial(input, out);
            Ok(())
        }
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent)
                .block_checksums(false)
                .content_checksum(false);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, out);
            enc.write_all(input).map_err(CompressionError::Lz4)?;
            enc.finish().map_err(CompressionError::Lz4Compress)?;
            Ok(())
        }
        Compression::Zstd => {
            // Reading from a slice and writing to a Vec cannot fail, so ruzstd's internal unwraps on
            // those I/O results cannot fire.
            ruzstd::encoding::compress(input, out, ruzstd::encoding::CompressionLevel::Fastest);
            Ok(())
        }
    }
}

#[cold]
fn empty_input_error(codec: Compression) -> CompressionError {
    let eof = || io::Error::new(io::ErrorKind::UnexpectedEof, "empty input");
    match codec {
        Compression::Gzip => CompressionError::Gzip(eof()),
        Compression::Snappy => CompressionError::SnappyFraming("empty input"),
        Compression::Lz4 => CompressionError::Lz4(eof()),
        Compression::Zstd | Compression::None => CompressionError::Zstd(eof()),
    }
}

/// Reads `reader` to its end, appending to `out`, failing with `TooLarge` once `out.len()` would exceed
/// `max_size`. The initialised part of `out` grows by doubling (at least [`MIN_CHUNK`]), so zero-filling
/// costs at most about as much as the data produced, and at most `max_size + 1` bytes are ever requested.
fn read_capped<R: Read>(
    mut reader: R,
    out: &mut Vec<u8>,
    max_size: usize,
    map_err: fn(io::Error) -> CompressionError,
) -> Result<(), CompressionError> {
    let limit = max_size.saturating_add(1);
    let mut filled = out.len();
    loop {
        if filled == out.len() {
            if filled >= limit {
                out.truncate(filled);
                return Err(CompressionError::TooLarge { limit: max_size });
            }
            // Prefer the capacity already reserved (a size hint), otherwise double.
            let spare = out.capacity() - filled;
            let step = if spare > 0 {
                spare.min(filled.max(MIN_CHUNK))
            } else {
                filled.max(MIN_CHUNK)
            };
            let step = step.min(limit - filled);
            out.resize(filled + step, 0);
        }
        match reader.read(&mut out[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                out.truncate(filled);
                return Err(map_err(e));
            }
        }
    }
    out.truncate(filled);
    if filled > max_size {
        return Err(CompressionError::TooLarge { limit: max_size });
    }
    Ok(())
}

/// A capacity hint: the declared size clamped to the cap and to `ratio` times the input length.
fn size_hint(declared: usize, input_len: usize, ratio: usize, max_size: usize) -> usize {
    declared
        .min(input_len.saturating_mul(ratio))
        .min(max_size.saturating_add(1))
}

/// Gives back memory when a size hint overestimated the output by a lot.
fn trim(out: &mut Vec<u8>) {
    if out.capacity() - out.len() > (out.len() / 4).max(MIN_CHUNK) {
        out.shrink_to_fit();
    }
}

fn decompress_gzip(input: &[u8], max_size: usize) -> Result<Vec<u8>, CompressionError> {
    // The gzip trailer's ISIZE (input size mod 2^32) of the last member is a hint only.
    let declared = match input.len().checked_sub(4).and_then(|at| input.get(at..)) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]) as usize,
        _ => 0,
    };
    let mut out = Vec::with_capacity(size_hint(declared, input.len(), GZIP_MAX_RATIO, max_size));
    let decoder = flate2::read::MultiGzDecoder::new(input);
    read_capped(decoder, &mut out, max_size, CompressionError::Gzip)?;
    trim(&mut out);
    Ok(out)
}

fn compress_snappy_xerial(input: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&XERIAL_HEADER);
    let mut enc = snap::raw::Encoder::new();
    for chunk in input.chunks(XERIAL_BLOCK_SIZE) {
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        let start = out.len();
        out.resize(start + snap::raw::max_compress_len(chunk.len()), 0);
        // The output is sized by max_compress_len and chunks are far below snappy's input limit, so
        // this cannot fail; fall back to an empty-chunk-free path defensively anyway.
        let n = match enc.compress(chunk, &mut out[start..]) {
            Ok(n) => n,
            Err(_) => {
                out.truncate(len_at);
                continue;
            }
        };
        out.truncate(start + n);
        // n <= max_compress_len(32 KiB) fits an i32.
        out[len_at..start].copy_from_slice(&(n as u32).to_be_bytes());
    }
}

/// Decompresses one raw snappy block, appending to `out`, checking the declared length before allocating.
fn snappy_raw_into(
    block: &[u8],
    out: &mut Vec<u8>,
    max_size: usize,
) -> Result<(), CompressionError> {
    if block.is_empty() {
        return Ok(());
    }
    let len = snap::raw::decompress_len(block).map_err(CompressionError::Snappy)?;
    if len > max_size.saturating_sub(out.len()) {
        return Err(CompressionError::TooLarge { limit: max_size });
    }
    let start = out.len();
    out.resize(start + len, 0);
    match snap::raw::Decoder::new().decompress(block, &mut out[start..]) {
        Ok(n) if n == len => Ok(()),
        Ok(_) => {
            out.truncate(start);
            Err(CompressionError::SnappyFraming(
                "raw block shorter than its declared length",
            ))
        }
        Err(e) => {
            out.truncate(start);
            Err(CompressionError::Snappy(e))
        }
    }
}

fn decompress_snappy(input: &[u8], max_size: usize) -> Result<Vec<u8>, CompressionError> {
    if !input.starts_with(&XERIAL_MAGIC) {
        // Bare raw snappy block (what some older clients send), as snappy-java also falls back to.
        let mut out = Vec::new();
        snappy_raw_into(input, &mut out, max_size)?;
        return Ok(out);
    }
    if input.len() < XERIAL_HEADER.len() {
        return Err(CompressionError::SnappyFraming("truncated xerial header"));
    }
    // Version fields are informational: snappy-java writes 1/1 and every reader accepts that; we accept
    // any value rather than reject data a future writer might label differently.
    let mut rest = &input[XERIAL_HEADER.len()..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        // snappy-java concatenates streams by writing another header mid-stream; its first byte (0x82)
        // can never start a valid (non-negative) chunk length, so this is unambiguous.
        if rest.starts_with(&XERIAL_MAGIC) {
            if rest.len() < XERIAL_HEADER.len() {
                return Err(CompressionError::SnappyFraming("truncated xerial header"));
            }
            rest = &rest[XERIAL_HEADER.len()..];
            continue;
        }
        let Some((len_bytes, after)) = rest.split_first_chunk::<4>() else {
            return Err(CompressionError::SnappyFraming("truncated chunk length"));
        };
        let len = i32::from_be_bytes(*len_bytes);
        let Ok(len) = usize::try_from(len) else {
            return Err(CompressionError::SnappyFraming("negative chunk length"));
        };
        if len > after.len() {
            return Err(CompressionError::SnappyFraming(
                "chunk length exceeds the remaining input",
            ));
        }
        let (block, after) = after.split_at(len);
        snappy_raw_into(block, &mut out, max_size)?;
        rest = after;
    }
    Ok(out)
}

fn decompress_lz4(input: &[u8], max_size: usize) -> Result<Vec<u8>, CompressionError> {
    // LZ4 frame header: magic (4) FLG (1) BD (1) [content size (8) if FLG bit 3]. Hint only.
    let declared = match input {
        [0x04, 0x22, 0x4D, 0x18, flg, _bd, c0, c1, c2, c3, c4, c5, c6, c7, ..]
            if flg & 0x08 != 0 =>
        {
            usize::try_from(u64::from_le_bytes([*c0, *c1, *c2, *c3, *c4, *c5, *c6, *c7]))
                .unwrap_or(usize::MAX)
        }
        // Unknown: guess a typical 4:1 ratio; the buffer doubles from there if needed.
        _ => input.len().saturating_mul(4),
    };
    let mut out = Vec::with_capacity(size_hint(declared, input.len(), LZ4_MAX_RATIO, max_size));
    // Copy straight out of the decoder's block buffer (one copy per block): reading through `Read`
    // with small buffers was measured 10x slower (protocol.md §4.2).
    let mut decoder = lz4_flex::frame::FrameDecoder::new(input);
    let mut frames = 0usize;
    loop {
        // Frame boundary. `lz4_flex` treats a short read of the magic or header as a clean end of
        // stream (so 1–6 arbitrary bytes would decode to nothing), and accepts legacy frames Kafka
        // never writes: check the next frame's magic and minimal header length ourselves.
        let remaining: &[u8] = decoder.get_ref();
        if remaining.is_empty() && frames > 0 {
            break;
        }
        match remaining.first_chunk::<4>() {
            Some(magic) if u32::from_le_bytes(*magic) == LZ4_FRAME_MAGIC => {}
            _ => {
                return Err(CompressionError::Lz4(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "missing LZ4 frame magic",
                )))
            }
        }
        if remaining.len() < LZ4_MIN_FRAME_HEADER {
            return Err(CompressionError::Lz4(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated LZ4 frame header",
            )));
        }
        // Decode this frame: `fill_buf` returns an empty slice at its end mark.
        loop {
            let block = match decoder.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CompressionError::Lz4(e)),
            };
            if block.is_empty() {
                break;
            }
            let n = block.len();
            if n > max_size.saturating_sub(out.len()) {
                return Err(CompressionError::TooLarge { limit: max_size });
            }
            out.extend_from_slice(block);
            decoder.consume(n);
        }
        frames += 1;
    }
    trim(&mut out);
    Ok(out)
}

/// Magic number of an LZ4 frame (little-endian on the wire: `04 22 4D 18`).
const LZ4_FRAME_MAGIC: u32 = 0x184D_2204;
/// magic (4) + FLG + BD + header checksum.
const LZ4_MIN_FRAME_HEADER: usize = 7;

const ZSTD_MAGIC: u32 = 0xFD2F_B528;

fn decompress_zstd(input: &[u8], max_size: usize) -> Result<Vec<u8>, CompressionError> {
    use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};

    let window_limit = max_size.max(ZSTD_MIN_WINDOW_LIMIT) as u64;
    // Frame_Content_Size of the first frame, if present, is a hint only.
    let declared = zstd_declared_size(input).unwrap_or(input.len().saturating_mul(4));
    let mut out = Vec::with_capacity(size_hint(declared, input.len(), ZSTD_MAX_RATIO, max_size));
    let mut rest = input;
    let mut frames = 0usize;
    while !rest.is_empty() {
        let expected = zstd_declared_size(rest);
        if expected.is_some_and(|n| n > max_size.saturating_sub(out.len())) {
            return Err(CompressionError::TooLarge { limit: max_size });
        }
        let mut decoder = ruzstd::decoding::FrameDecoder::new();
        decoder.set_max_window_size(window_limit);
        let start = out.len();
        // `new_with_decoder` reads the frame header from `rest`, advancing it.
        match ruzstd::decoding::StreamingDecoder::new_with_decoder(&mut rest, &mut decoder) {
            Ok(mut stream) => {
                read_capped(&mut stream, &mut out, max_size, CompressionError::Zstd)?;
            }
            Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                length,
                ..
            })) => {
                // Skippable frame: magic and length are consumed; skip the payload.
                let length = length as usize;
                if length > rest.len() {
                    return Err(CompressionError::Zstd(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "truncated skippable frame",
                    )));
                }
                rest = &rest[length..];
                continue;
            }
            Err(FrameDecoderError::WindowSizeTooBig { .. }) => {
                return Err(CompressionError::TooLarge { limit: max_size });
            }
            Err(e) => return Err(CompressionError::Zstd(io::Error::other(e.to_string()))),
        }
        if !decoder.is_finished() {
            return Err(CompressionError::Zstd(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated frame",
            )));
        }
        if let (Some(stored), Some(computed)) = (
            decoder.get_checksum_from_data(),
            decoder.get_calculated_checksum(),
        ) {
            if stored != computed {
                return Err(CompressionError::Zstd(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "content checksum mismatch",
                )));
            }
        }
        if let Some(expected) = expected {
            if expected != out.len() - start {
                return Err(CompressionError::Zstd(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "frame content size mismatch",
                )));
            }
        }
        frames += 1;
    }
    if frames == 0 {
        return Err(CompressionError::Zstd(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "no zstd frame in input",
        )));
    }
    trim(&mut out);
    Ok(out)
}

/// Frame_Content_Size from the first frame header, parsed by hand (a capacity hint only).
fn zstd_declared_size(input: &[u8]) -> Option<usize> {
    let (magic, rest) = input.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*magic) != ZSTD_MAGIC {
        return None;
    }
    let (&fhd, rest) = rest.split_first()?;
    let fcs_flag = fhd >> 6;
    let single_segment = fhd & 0x20 != 0;
    let did_len = [0usize, 1, 2, 4][usize::from(fhd & 0x03)];
    let skip = usize::from(!single_segment) + did_len;
    let rest = rest.get(skip..)?;
    let size = match (fcs_flag, single_segment) {
        (0, true) => u64::from(*rest.first()?),
        (0, false) => return None,
        (1, _) => u64::from(u16::from_le_bytes(*rest.first_chunk::<2>()?)) + 256,
        (2, _) => u64::from(u32::from_le_bytes(*rest.first_chunk::<4>()?)),
        _ => u64::from_le_bytes(*rest.first_chunk::<8>()?),
    };
    usize::try_from(size).ok()
}
