//! Kafka's framing: every request and response travels as a 4-byte big-endian size followed by
//! that many bytes. This module owns splitting frames out of a read buffer (with the maximum
//! frame size checked before anything is reserved) and writing frames, with the size patched in
//! place once the payload is written.
//!
//! The size counts the payload only, not the 4 prefix bytes, and is an `int32` on the wire: a
//! negative value is always an error.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Length of the size prefix in front of every frame, in bytes.
pub const SIZE_PREFIX_LEN: usize = 4;

/// Default largest frame payload we accept or produce: 100 MiB, Kafka's own default for
/// `socket.request.max.bytes`.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 100 * 1024 * 1024;

/// What can go wrong while framing or unframing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The peer sent a size prefix below zero.
    #[error("frame size prefix is negative ({size}); the stream is corrupt or not Kafka")]
    NegativeSize {
        /// The size as read from the wire.
        size: i32,
    },
    /// A frame (incoming or outgoing) is larger than the configured maximum.
    #[error("frame of {size} bytes exceeds the maximum frame size of {max} bytes")]
    TooLarge {
        /// The payload size declared by the prefix or produced by the encoder.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// [`finish_frame`] was given a [`FrameStart`] that does not belong to this buffer.
    #[error("frame start at byte {start} is outside the {len}-byte buffer it should patch")]
    StartOutOfRange {
        /// Offset recorded by [`begin_frame`].
        start: usize,
        /// Current length of the buffer.
        len: usize,
    },
}

/// Splits whole frames out of a read buffer.
///
/// The decoder is stateless apart from its limit: all progress lives in the caller's
/// [`BytesMut`], so the same decoder can serve many connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDecoder {
    max_frame_size: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_SIZE)
    }
}

impl FrameDecoder {
    /// A decoder that rejects frames whose payload is larger than `max_frame_size` bytes.
    ///
    /// Values above `i32::MAX` behave like `i32::MAX`, since no larger frame can be declared.
    pub const fn new(max_frame_size: usize) -> Self {
        Self { max_frame_size }
    }

    /// The largest payload this decoder accepts.
    pub const fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Takes the next whole frame out of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` does not hold a whole frame yet (nothing is consumed), and
    /// `Ok(Some(payload))` with the payload split off the front of `buf` without copying (the
    /// size prefix is dropped). The declared size is validated as soon as its 4 bytes are
    /// present, before anything is reserved, so a hostile prefix is an error even when only the
    /// prefix has arrived.
    ///
    /// After an error the stream is unusable; the caller should close the connection.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(size) = self.declared_size(buf)? else {
            return Ok(None);
        };
        if buf.len() - SIZE_PREFIX_LEN < size {
            return Ok(None);
        }
        buf.advance(SIZE_PREFIX_LEN);
        Ok(Some(buf.split_to(size).freeze()))
    }

    /// How many more bytes must arrive before [`decode`](Self::decode) can return a frame.
    ///
    /// `0` means a frame is ready. While the prefix is incomplete this is only what is missing
    /// from the prefix; once the prefix is there it is exactly what is missing from the frame,
    /// never more than [`max_frame_size`](Self::max_frame_size) plus the prefix, so a reader can
    /// pass it to [`BytesMut::reserve`] without trusting the peer.
    pub fn bytes_needed(&self, buf: &[u8]) -> Result<usize, FrameError> {
        match self.declared_size(buf)? {
            None => Ok(SIZE_PREFIX_LEN - buf.len()),
            Some(size) => Ok((SIZE_PREFIX_LEN + size).saturating_sub(buf.len())),
        }
    }

    /// Reads and validates the size prefix, or `None` if fewer than 4 bytes are buffered.
    fn declared_size(&self, buf: &[u8]) -> Result<Option<usize>, FrameError> {
        let Some(prefix) = buf.first_chunk::<SIZE_PREFIX_LEN>() else {
            return Ok(None);
        };
        let size = i32::from_be_bytes(*prefix);
        let Ok(size) = usize::try_from(size) else {
            return Err(FrameError::NegativeSize { size });
        };
        if size > self.max_frame_size {
            return Err(FrameError::TooLarge {
                size,
                max: self.max_frame_size,
            });
        }
        Ok(Some(size))
    }
}

/// Marks where [`begin_frame`] reserved a size prefix; hand it back to [`finish_frame`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a started frame must be finished with finish_frame, or its size stays zero"]
pub struct FrameStart(usize);

/// Starts a frame at the end of `buf` by writing a placeholder size prefix.
///
/// Append the payload to `buf`, then call [`finish_frame`] to patch the size in place.
pub fn begin_frame(buf: &mut BytesMut) -> FrameStart {
    let start = buf.len();
    buf.put_i32(0);
    FrameStart(start)
}

/// Patches the size of a frame started with [`begin_frame`] and returns its payload length.
///
/// If the payload is larger than `max_frame_size` (or than `i32::MAX`), the whole frame,
/// prefix included, is removed from `buf` again and an error is returned, so the buffer never
/// holds a frame the peer would reject.
pub fn finish_frame(
    buf: &mut BytesMut,
    start: FrameStart,
    max_frame_size: usize,
) -> Result<usize, FrameError> {
    let FrameStart(start) = start;
    let len = buf.len();
    let Some(payload_len) = len.checked_sub(start + SIZE_PREFIX_LEN) else {
        return Err(FrameError::StartOutOfRange { start, len });
    };
    let declared = i32::try_from(payload_len)
        .ok()
        .filter(|_| payload_len <= max_frame_size);
    let Some(declared) = declared else {
        buf.truncate(start);
        return Err(FrameError::TooLarge {
            size: payload_len,
            max: max_frame_size.min(i32::MAX as usize),
        });
    };
    buf[start..start + SIZE_PREFIX_LEN].copy_from_slice(&declared.to_be_bytes());
    Ok(payload_len)
}

/// Appends `payload` to `buf` as one frame.
///
/// Nothing is written if the payload is larger than `max_frame_size`.
pub fn write_frame(
    buf: &mut BytesMut,
    payload: &[u8],
    max_frame_size: usize,
) -> Result<(), FrameError> {
    if payload.len() > max_frame_size || i32::try_from(payload.len()).is_err() {
        return Err(FrameError::TooLarge {
            size: payload.len(),
            max: max_frame_size.min(i32::MAX as usize),
        });
    }
    buf.reserve(SIZE_PREFIX_LEN + payload.len());
    let start = begin_frame(buf);
    buf.put_slice(payload);
    finish_frame(buf, start, max_frame_size).map(|_| ())
}
