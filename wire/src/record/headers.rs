//! Lazy iteration over a record's headers. The header region was validated when the record was
//! parsed, so iteration cannot fail; it yields [`Header`]s that borrow the record's buffer.

use bytes::Bytes;

use crate::record::parse::read_header;

/// One record header: a key (UTF-8 by convention, checked on request) and a nullable value.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    buf: &'a Bytes,
    key: &'a [u8],
    value: Option<&'a [u8]>,
}

impl<'a> Header<'a> {
    /// The key's bytes.
    #[inline]
    pub fn key(&self) -> &'a [u8] {
        self.key
    }

    /// The key as UTF-8 text, or the UTF-8 error if it is not valid UTF-8.
    #[inline]
    pub fn key_str(&self) -> Result<&'a str, std::str::Utf8Error> {
        std::str::from_utf8(self.key)
    }

    /// The key as a `Bytes` slice of the record buffer (a reference-count increment, no copy).
    #[inline]
    pub fn key_bytes(&self) -> Bytes {
        self.buf.slice_ref(self.key)
    }

    /// The value's bytes, or `None` for a null value.
    #[inline]
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value
    }

    /// The value as a `Bytes` slice of the record buffer, or `None` for a null value.
    #[inline]
    pub fn value_bytes(&self) -> Option<Bytes> {
        self.value.map(|v| self.buf.slice_ref(v))
    }
}

/// Iterator over a record's headers, in wire order.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    buf: &'a Bytes,
    rest: &'a [u8],
    remaining: u32,
}

impl<'a> Headers<'a> {
    /// `count` headers in `region`, a part of `buf` validated by the record parser.
    #[inline]
    pub(crate) fn new(buf: &'a Bytes, region: &'a [u8], count: u32) -> Self {
        Headers {
            buf,
            rest: region,
            remaining: count,
        }
    }

    /// Number of headers not yet yielded.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.remaining as usize
    }
}

impl<'a> Iterator for Headers<'a> {
    type Item = Header<'a>;

    #[inline]
    fn next(&mut self) -> Option<Header<'a>> {
        if self.remaining == 0 {
            return None;
        }
        let Some((key, value, rest)) = read_header(self.rest) else {
            // Unreachable for a validated region; stop rather than yield garbage.
            self.remaining = 0;
            return None;
        };
        self.rest = rest;
        self.remaining -= 1;
        Some(Header {
            buf: self.buf,
            key,
            value,
        })
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

impl ExactSizeIterator for Headers<'_> {}
