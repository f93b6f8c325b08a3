//! The frame codec: a pure function over bytes that never touches a socket.
//!
//! A frame on the wire is
//!
//! ```text
//! +----------------+---------+------+-----------------+
//! | length: u32 BE | version | kind | payload         |
//! | 4 bytes        | u8 = 1  | u8   | length - 2 bytes|
//! +----------------+---------+------+-----------------+
//! ```
//!
//! `length` counts every byte after the length field itself (version, kind
//! and payload), so it is at least 2. It may not exceed the receiver's
//! maximum frame size ([`DEFAULT_MAX_FRAME`] unless configured): a larger
//! length is an error as soon as the four length bytes have arrived, before
//! any buffer is grown for it.
//!
//! [`decode`] and [`check`] look at a byte slice and say one of three things:
//! here is a whole frame and how many bytes it used, the frame is not all
//! there yet (`Ok(None)`, read more and call again), or the bytes can never
//! be a valid frame (an [`Error`]; close the connection).

use crate::error::{Error, Result};

/// The frame format version this implementation reads and writes.
pub const FRAME_VERSION: u8 = 1;

/// Default maximum value of the length field: 1 MiB.
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;

/// Bytes of the length field.
pub const LENGTH_LEN: usize = 4;

/// Bytes before the payload: length, version and kind.
pub const HEADER_LEN: usize = LENGTH_LEN + 2;

/// The largest length field the format can express at all.
pub const MAX_LENGTH_FIELD: usize = u32::MAX as usize;

/// One frame, owning its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Message kind (see [`crate::message::Message::kind`]).
    pub kind: u8,
    /// Everything after the kind byte.
    pub payload: Vec<u8>,
}

/// One frame, borrowing its payload from the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRef<'a> {
    /// Message kind.
    pub kind: u8,
    /// Everything after the kind byte.
    pub payload: &'a [u8],
}

impl FrameRef<'_> {
    /// A copy that owns its payload.
    pub fn to_owned(self) -> Frame {
        Frame {
            kind: self.kind,
            payload: self.payload.to_vec(),
        }
    }
}

impl Frame {
    /// A frame of `kind` carrying `payload`.
    pub fn new(kind: u8, payload: Vec<u8>) -> Self {
        Self { kind, payload }
    }

    /// Borrows this frame as a [`FrameRef`].
    pub fn as_ref(&self) -> FrameRef<'_> {
        FrameRef {
            kind: self.kind,
            payload: &self.payload,
        }
    }

    /// Appends the encoded frame to `out`. Fails only if the payload is too
    /// long for the `u32` length field, or longer than `max` allows.
    pub fn encode(&self, out: &mut Vec<u8>, max: usize) -> Result<()> {
        let start = begin(out, self.kind);
        out.extend_from_slice(&self.payload);
        finish(out, start, max)
    }

    /// The encoded frame as a new vector (for tests and tools).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        self.encode(&mut out, MAX_LENGTH_FIELD)?;
        Ok(out)
    }
}

/// Starts a frame of `kind` at the end of `out`: writes a placeholder length,
/// the version and the kind. Returns the frame's start offset for [`finish`].
///
/// Message encoders write their payload straight into `out` between `begin`
/// and `finish`, so encoding never allocates an intermediate buffer.
pub fn begin(out: &mut Vec<u8>, kind: u8) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, FRAME_VERSION, kind]);
    start
}

/// Completes the frame started at `start` by [`begin`]: patches the length
/// field. If the frame is longer than `max` (or than a `u32` can say), the
/// frame is removed from `out` again and an error returned, so a caller's
/// write buffer never holds half a frame.
pub fn finish(out: &mut Vec<u8>, start: usize, max: usize) -> Result<()> {
    let len = out.len() - start - LENGTH_LEN;
    if len > max.min(MAX_LENGTH_FIELD) {
        out.truncate(start);
        return Err(Error::FrameTooLarge {
            len: len as u64,
            max,
        });
    }
    // `len <= u32::MAX` was checked just above.
    let be = (len as u32).to_be_bytes();
    out[start..start + LENGTH_LEN].copy_from_slice(&be);
    Ok(())
}

/// Checks whether `buf` starts with a whole valid frame header and frame.
///
/// - `Ok(Some(n))`: the first `n` bytes of `buf` are one whole frame.
/// - `Ok(None)`: not enough bytes yet; nothing seen so far is wrong.
/// - `Err(_)`: the bytes can never become a valid frame (length above `max`
///   or below 2, or an unknown version). The error comes as early as
///   possible: an oversized length after 4 bytes, a bad version after 5.
pub fn check(buf: &[u8], max: usize) -> Result<Option<usize>> {
    let Some(len_bytes) = buf.get(..LENGTH_LEN) else {
        return Ok(None);
    };
    let mut be = [0u8; LENGTH_LEN];
    be.copy_from_slice(len_bytes);
    let len = u32::from_be_bytes(be);
    if len as u64 > max as u64 {
        return Err(Error::FrameTooLarge {
            len: u64::from(len),
            max,
        });
    }
    if len < 2 {
        return Err(Error::FrameTooShort { len });
    }
    if let Some(&version) = buf.get(LENGTH_LEN) {
        if version != FRAME_VERSION {
            return Err(Error::UnsupportedVersion {
                version,
                supported: FRAME_VERSION,
            });
        }
    }
    let total = LENGTH_LEN + len as usize;
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some(total))
}

/// How many bytes the frame at the start of `buf` needs in total, once its
/// length field has arrived (`None` before that). Used by readers to grow
/// their buffer once, to the right size. Call [`check`] first.
pub fn needed(buf: &[u8]) -> Option<usize> {
    let len_bytes = buf.get(..LENGTH_LEN)?;
    let mut be = [0u8; LENGTH_LEN];
    be.copy_from_slice(len_bytes);
    Some(LENGTH_LEN + u32::from_be_bytes(be) as usize)
}

/// Decodes the frame at the start of `buf`, borrowing its payload.
///
/// Returns the frame and the number of bytes it used, `Ok(None)` if more
/// bytes are needed, or an error as described for [`check`].
pub fn decode_ref(buf: &[u8], max: usize) -> Result<Option<(FrameRef<'_>, usize)>> {
    let Some(total) = check(buf, max)? else {
        return Ok(None);
    };
    let frame = FrameRef {
        kind: buf[LENGTH_LEN + 1],
        payload: &buf[HEADER_LEN..total],
    };
    Ok(Some((frame, total)))
}

/// Decodes the frame at the start of `buf` into an owned [`Frame`].
pub fn decode(buf: &[u8], max: usize) -> Result<Option<(Frame, usize)>> {
    Ok(decode_ref(buf, max)?.map(|(f, n)| (f.to_owned(), n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let f = Frame::new(7, b"hello".to_vec());
        let bytes = f.to_bytes().unwrap();
        assert_eq!(bytes, [0, 0, 0, 7, 1, 7, b'h', b'e', b'l', b'l', b'o']);
        assert_eq!(decode(&bytes, 100).unwrap(), Some((f, bytes.len())));
    }

    #[test]
    fn incomplete_at_every_prefix() {
        let bytes = Frame::new(3, vec![9; 10]).to_bytes().unwrap();
        for cut in 0..bytes.len() {
            assert_eq!(check(&bytes[..cut], 100).unwrap(), None, "cut {cut}");
        }
    }

    #[test]
    fn oversized_is_rejected_from_the_length_alone() {
        let err = check(&[0, 0x10, 0, 1], DEFAULT_MAX_FRAME).unwrap_err();
        assert!(matches!(
            err,
            Error::FrameTooLarge {
                len: 0x10_0001,
                max: DEFAULT_MAX_FRAME
            }
        ));
        // Exactly the maximum is fine.
        assert_eq!(check(&[0, 0x10, 0, 0], DEFAULT_MAX_FRAME).unwrap(), None);
    }

    #[test]
    fn too_short_and_bad_version() {
        assert!(matches!(
            check(&[0, 0, 0, 1, 1], 100),
            Err(Error::FrameTooShort { len: 1 })
        ));
        assert!(matches!(
            check(&[0, 0, 0, 2, 2], 100),
            Err(Error::UnsupportedVersion { version: 2, .. })
        ));
    }

    #[test]
    fn encode_refuses_above_max_and_leaves_buffer_clean() {
        let mut out = vec![0xAA];
        let err = Frame::new(1, vec![0; 10]).encode(&mut out, 11).unwrap_err();
        assert!(matches!(err, Error::FrameTooLarge { len: 12, max: 11 }));
        assert_eq!(out, [0xAA]);
    }
}
