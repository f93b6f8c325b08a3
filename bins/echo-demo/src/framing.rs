//! What a "message" is on a byte stream.
//!
//! TCP and Unix stream sockets carry bytes, not messages: one `send` of
//! `hello` may arrive as `he` + `llo`, and two sends may arrive as one
//! `hellohello`. A protocol must therefore say where a message ends. The
//! demos know four answers:
//!
//! - [`Framing::Raw`]: it doesn't. Whatever one `read` returns is treated
//!   as "the message". This is what the lessons' first servers do
//!   (`recv(1024)`), and it works only by luck on a quiet loopback.
//! - [`Framing::Lines`]: a message ends at `\n` (the legacy tile protocol,
//!   Julius's module mode, most text protocols).
//! - [`Framing::Frames`]: ipc-proto frames: a 4-byte big-endian length,
//!   a version byte and a kind byte, then the payload
//!   (`docs/protocol.md`, section 2). The echo works at the frame layer, so
//!   any well-formed frame comes back unchanged.
//! - [`Framing::Length`]: a bare 4-byte big-endian length, then the
//!   payload: what Python's `multiprocessing.connection` and the
//!   `shared/bench/ipc` peers use.

use anyhow::{bail, Result};
use clap::ValueEnum;
use ipc_proto::frame;

/// Longest line accepted in `lines` framing; a longer one closes the
/// connection (a peer that never sends `\n` must not eat all memory).
pub const MAX_LINE: usize = 64 * 1024;

/// Largest frame accepted in `frames` and `length` framing.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// The ipc-proto frame kind the echo client puts on its text messages.
///
/// The echo server does not decode messages, it echoes frames, so any kind
/// works; this one is simply outside the tile protocol's ranges.
pub const ECHO_TEXT_KIND: u8 = 0x7E;

/// How messages are delimited on the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Framing {
    /// No framing: each read is "a message" (the classic mistake).
    Raw,
    /// One message per `\n`-terminated line.
    Lines,
    /// ipc-proto frames (length, version, kind, payload).
    Frames,
    /// 4-byte big-endian length + payload (Python mpconn, the benchmark).
    Length,
}

impl Framing {
    /// Appends `text` to `out` as one message in this framing.
    pub fn encode(self, text: &[u8], out: &mut Vec<u8>) -> Result<()> {
        match self {
            Framing::Raw => out.extend_from_slice(text),
            Framing::Lines => {
                if text.contains(&b'\n') {
                    bail!("a line message cannot contain a newline");
                }
                out.extend_from_slice(text);
                out.push(b'\n');
            }
            Framing::Frames => {
                let start = frame::begin(out, ECHO_TEXT_KIND);
                out.extend_from_slice(text);
                frame::finish(out, start, MAX_FRAME)?;
            }
            Framing::Length => {
                let len = u32::try_from(text.len())?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(text);
            }
        }
        Ok(())
    }

    /// Looks for one whole message at the start of `buf`.
    ///
    /// Returns `Ok(Some((used, payload_range)))`: the message is
    /// `buf[..used]` on the wire and its content is `buf[payload_range]`;
    /// `Ok(None)`: not all there yet, read more; `Err`: the bytes can never
    /// become a valid message (close the connection).
    ///
    /// `Raw` has no boundaries: everything buffered is one message.
    pub fn split(self, buf: &[u8]) -> Result<Option<(usize, std::ops::Range<usize>)>> {
        match self {
            Framing::Raw if buf.is_empty() => Ok(None),
            Framing::Raw => Ok(Some((buf.len(), 0..buf.len()))),
            Framing::Lines => match buf.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    // Accept `\r\n` too (telnet, Windows clients).
                    let end = if nl > 0 && buf[nl - 1] == b'\r' {
                        nl - 1
                    } else {
                        nl
                    };
                    Ok(Some((nl + 1, 0..end)))
                }
                None if buf.len() > MAX_LINE => bail!("line longer than {MAX_LINE} bytes"),
                None => Ok(None),
            },
            Framing::Frames => {
                Ok(frame::check(buf, MAX_FRAME)?.map(|used| (used, frame::HEADER_LEN..used)))
            }
            Framing::Length => {
                let Some(head) = buf.get(..4) else {
                    return Ok(None);
                };
                let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
                if len > MAX_FRAME {
                    bail!("frame of {len} bytes is larger than the maximum of {MAX_FRAME}");
                }
                Ok((buf.len() >= 4 + len).then_some((4 + len, 4..4 + len)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_split_gives_the_text_back() {
        for framing in [
            Framing::Raw,
            Framing::Lines,
            Framing::Frames,
            Framing::Length,
        ] {
            let mut wire = Vec::new();
            framing.encode(b"hello", &mut wire).unwrap();
            let (used, range) = framing.split(&wire).unwrap().unwrap();
            assert_eq!(used, wire.len(), "{framing:?}");
            assert_eq!(&wire[range], b"hello", "{framing:?}");
            // Every strict prefix is "need more" (raw has no boundaries).
            if framing != Framing::Raw {
                for cut in 0..wire.len() {
                    assert!(framing.split(&wire[..cut]).unwrap().is_none());
                }
            }
        }
    }

    #[test]
    fn lines_accept_crlf_and_refuse_endless_lines() {
        let (used, r) = Framing::Lines.split(b"ab\r\ncd").unwrap().unwrap();
        assert_eq!((used, r), (4, 0..2));
        assert!(Framing::Lines.split(&vec![b'x'; MAX_LINE + 1]).is_err());
    }

    #[test]
    fn oversized_length_is_refused_from_the_header() {
        assert!(Framing::Length.split(&[0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(Framing::Frames.split(&[0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
