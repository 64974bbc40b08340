//! The per-record wire parser: validates one record of a batch's records region and returns the
//! positions of its fields, without copying. Shared by [`RecordRef`](super::RecordRef) and
//! [`Record`](super::Record); the header iterator re-walks the region this parser validated.

use crate::record::error::{RecordError, RecordField};
use crate::varint::{decode_varint, decode_varlong, VarintError};

/// A nullable byte field of a record: position relative to the record's first byte (after its
/// length varint) and length, -1 for null. Records are shorter than 2 GiB, so 32 bits suffice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field {
    /// First byte, relative to the record.
    pub start: u32,
    /// Length in bytes, or -1 for null.
    pub len: i32,
}

impl Field {
    /// A null field.
    pub const NULL: Field = Field { start: 0, len: -1 };

    /// The field's bytes within `record`, or `None` for null (empty if out of range, which
    /// validation excludes).
    #[inline]
    pub fn get(self, record: &[u8]) -> Option<&[u8]> {
        if self.len < 0 {
            return None;
        }
        let start = self.start as usize;
        Some(
            record
                .get(start..start + self.len as usize)
                .unwrap_or_default(),
        )
    }
}

/// The validated layout of one record, relative to the record's first byte.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    /// The record's length (bytes after its length varint).
    pub len: u32,
    /// Key, or null.
    pub key: Field,
    /// Value, or null.
    pub value: Field,
    /// First byte of the first header; the header region runs to the record's end.
    pub headers_start: u32,
    /// Number of headers (validated).
    pub header_count: u32,
    /// Offset delta from the batch's base offset.
    pub offset_delta: i32,
    /// Timestamp delta from the batch's base timestamp.
    pub timestamp_delta: i64,
    /// The unused attributes byte.
    pub attributes: i8,
}

impl Layout {
    /// The header region of `record`.
    #[inline]
    pub fn header_region(self, record: &[u8]) -> &[u8] {
        record
            .get(self.headers_start as usize..)
            .unwrap_or_default()
    }
}

/// One parsed record: where it starts in the parsed buffer, and its layout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawRecord {
    /// First byte after the length varint, in the parsed buffer.
    pub start: usize,
    /// Field positions relative to `start`.
    pub layout: Layout,
}

impl RawRecord {
    /// One past the record's last byte, in the parsed buffer.
    #[inline]
    pub fn end(&self) -> usize {
        self.start + self.layout.len as usize
    }
}

/// A cursor over one record's bytes.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    #[inline(always)]
    fn varint(&mut self) -> Result<i32, VarintError> {
        let (v, n) = decode_varint(self.rest)?;
        self.rest = self.rest.get(n..).unwrap_or_default();
        Ok(v)
    }

    #[inline(always)]
    fn varlong(&mut self) -> Result<i64, VarintError> {
        let (v, n) = decode_varlong(self.rest)?;
        self.rest = self.rest.get(n..).unwrap_or_default();
        Ok(v)
    }

    /// Skips `n` bytes, or returns the number of bytes left if fewer.
    #[inline(always)]
    fn skip(&mut self, n: usize) -> Result<(), usize> {
        match self.rest.get(n..) {
            Some(rest) => {
                self.rest = rest;
                Ok(())
            }
            None => Err(self.rest.len()),
        }
    }
}

/// Context for building errors of the record being parsed.
#[derive(Clone, Copy)]
struct Ctx {
    index: u32,
    position: usize,
}

impl Ctx {
    #[cold]
    fn varint(self, e: VarintError, field: RecordField) -> RecordError {
        match e {
            VarintError::Truncated { .. } => RecordError::VarintTruncated {
                index: self.index,
                position: self.position,
                field,
            },
            VarintError::TooLong { .. } => RecordError::VarintTooLong {
                index: self.index,
                position: self.position,
                field,
            },
        }
    }

    #[cold]
    fn out_of_bounds(self, field: RecordField, length: usize, remaining: usize) -> RecordError {
        RecordError::FieldOutOfBounds {
            index: self.index,
            position: self.position,
            field,
            length,
            remaining,
        }
    }

    #[cold]
    fn invalid_length(self, field: RecordField, length: i32) -> RecordError {
        RecordError::InvalidLength {
            index: self.index,
            position: self.position,
            field,
            length,
        }
    }
}

/// Reads a nullable length-prefixed byte field (key, value or header value) of a record of
/// `rec_len` bytes.
#[inline(always)]
fn nullable_field(
    r: &mut Reader<'_>,
    rec_len: usize,
    ctx: Ctx,
    length_field: RecordField,
    field: RecordField,
) -> Result<Field, RecordError> {
    let len = r.varint().map_err(|e| ctx.varint(e, length_field))?;
    if len >= 0 {
        // Below the record length, itself below 2^31.
        let start = (rec_len - r.rest.len()) as u32;
        r.skip(len as usize)
            .map_err(|remaining| ctx.out_of_bounds(field, len as usize, remaining))?;
        Ok(Field { start, len })
    } else if len == -1 {
        Ok(Field::NULL)
    } else {
        Err(ctx.invalid_length(length_field, len))
    }
}

/// Walks (validates) `count` headers at the start of `rest`, returning the bytes after them.
///
/// Headers whose key and value lengths are one-byte, non-negative varints (lengths below 64,
/// the common case) take a short path; anything else goes through the general one.
#[inline(always)]
fn skip_headers(
    mut rest: &[u8],
    count: u32,
    rec_len: usize,
    ctx: Ctx,
) -> Result<&[u8], RecordError> {
    for header in 0..count {
        // One byte with the continuation bit (0x80) and the sign bit (0x01) clear.
        if let Some((&kb, tail)) = rest.split_first() {
            if kb & 0x81 == 0 {
                if let Some((&vb, tail)) = tail
                    .get(usize::from(kb >> 1)..)
                    .and_then(<[u8]>::split_first)
                {
                    if vb & 0x81 == 0 {
                        if let Some(tail) = tail.get(usize::from(vb >> 1)..) {
                            rest = tail;
                            continue;
                        }
                    }
                }
            }
        }
        rest = skip_header_slow(rest, header, rec_len, ctx)?;
    }
    Ok(rest)
}

/// The general path of [`skip_headers`] for one header, with every check and error.
#[inline(never)]
fn skip_header_slow(
    rest: &[u8],
    header: u32,
    rec_len: usize,
    ctx: Ctx,
) -> Result<&[u8], RecordError> {
    let mut r = Reader { rest };
    let key_len = r
        .varint()
        .map_err(|e| ctx.varint(e, RecordField::HeaderKeyLength))?;
    if key_len < 0 {
        return Err(RecordError::NegativeHeaderKeyLength {
            index: ctx.index,
            position: ctx.position,
            header,
            length: key_len,
        });
    }
    let key_len = key_len as usize;
    r.skip(key_len)
        .map_err(|remaining| ctx.out_of_bounds(RecordField::HeaderKey, key_len, remaining))?;
    nullable_field(
        &mut r,
        rec_len,
        ctx,
        RecordField::HeaderValueLength,
        RecordField::HeaderValue,
    )?;
    Ok(r.rest)
}

/// Parses and validates the record whose length varint starts at `pos` in `body`.
///
/// `index` is the record's index in the batch, for error context. Every check of the record
/// format is made here, including a full walk of the headers, so accessors never fail.
#[inline(always)]
/// Where the record at `pos` ends according to its length prefix alone, when that prefix is
/// readable and in bounds: a record whose fields are invalid can then be skipped without
/// losing the records after it.
pub(crate) fn record_end(body: &[u8], pos: usize) -> Option<usize> {
    let rest = body.get(pos..)?;
    let (length, n) = decode_varint(rest).ok()?;
    let len = usize::try_from(length).ok()?;
    let end = pos.checked_add(n)?.checked_add(len)?;
    (end <= body.len()).then_some(end)
}

pub(crate) fn parse_record(body: &[u8], pos: usize, index: u32) -> Result<RawRecord, RecordError> {
    let ctx = Ctx {
        index,
        position: pos,
    };
    let rest = body.get(pos..).unwrap_or_default();
    let (length, n) = decode_varint(rest).map_err(|e| ctx.varint(e, RecordField::Length))?;
    let after_length = rest.get(n..).unwrap_or_default();
    if length < 0 {
        return Err(RecordError::NegativeRecordLength {
            index,
            position: pos,
            length,
        });
    }
    let len = length as usize;
    let Some(rec) = after_length.get(..len) else {
        return Err(RecordError::RecordLengthOutOfBounds {
            index,
            position: pos,
            length,
            remaining: after_length.len(),
        });
    };
    let start = pos + n;
    let mut r = Reader { rest: rec };

    let Some((&attributes, tail)) = r.rest.split_first() else {
        return Err(ctx.out_of_bounds(RecordField::Attributes, 1, 0));
    };
    r.rest = tail;
    let timestamp_delta = r
        .varlong()
        .map_err(|e| ctx.varint(e, RecordField::TimestampDelta))?;
    let offset_delta = r
        .varint()
        .map_err(|e| ctx.varint(e, RecordField::OffsetDelta))?;
    let key = nullable_field(&mut r, len, ctx, RecordField::KeyLength, RecordField::Key)?;
    let value = nullable_field(
        &mut r,
        len,
        ctx,
        RecordField::ValueLength,
        RecordField::Value,
    )?;

    let header_count = r
        .varint()
        .map_err(|e| ctx.varint(e, RecordField::HeaderCount))?;
    if header_count < 0 {
        return Err(RecordError::NegativeHeaderCount {
            index,
            position: pos,
            count: header_count,
        });
    }
    if header_count as usize > r.rest.len() {
        return Err(RecordError::HeaderCountTooLarge {
            index,
            position: pos,
            count: header_count,
            remaining: r.rest.len(),
        });
    }
    let headers_start = (len - r.rest.len()) as u32;
    r.rest = skip_headers(r.rest, header_count as u32, len, ctx)?;

    if !r.rest.is_empty() {
        return Err(RecordError::RecordSizeMismatch {
            index,
            position: pos,
            declared: len,
            consumed: len - r.rest.len(),
        });
    }

    Ok(RawRecord {
        start,
        layout: Layout {
            // `length` is a non-negative i32.
            len: len as u32,
            key,
            value,
            headers_start,
            header_count: header_count as u32,
            offset_delta,
            timestamp_delta,
            attributes: attributes as i8,
        },
    })
}

/// Reads one header at the start of `buf` (already validated by [`parse_record`]).
///
/// Returns the key, the value (`None` for null) and the bytes after the header; `None` if the
/// bytes are not a header (never the case for a validated region).
#[inline]
#[allow(clippy::type_complexity)]
pub(crate) fn read_header(buf: &[u8]) -> Option<(&[u8], Option<&[u8]>, &[u8])> {
    let (key_len, n) = decode_varint(buf).ok()?;
    let (key, rest) = buf
        .get(n..)?
        .split_at_checked(usize::try_from(key_len).ok()?)?;
    let (value_len, m) = decode_varint(rest).ok()?;
    let rest = rest.get(m..)?;
    if value_len < 0 {
        return Some((key, None, rest));
    }
    let (value, rest) = rest.split_at_checked(value_len as usize)?;
    Some((key, Some(value), rest))
}
