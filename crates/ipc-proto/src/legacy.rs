//! The line protocol of the original C# desktop client, so it keeps working
//! unchanged.
//!
//! # Main variant (callback)
//! The client connects and sends text lines `{z}_{x}_{y}` (`\n` or `\r\n`).
//! `stop` ends the batch (it does **not** stop the server); so does EOF
//! (the last C# version sends one request per connection, possibly without
//! a trailing newline, then closes). For each finished tile the server
//! connects back to the client's host on the server's port + 1
//! (configurable) and sends the tile exactly as the client wrote it (`01_0_0`
//! stays `01_0_0`: the C# client matches callbacks to its request text);
//! after the last tile of the batch it sends `done`. Every batch the client
//! ends gets its `done`, even one without a valid line. Two callback styles exist ([`CallbackStyle`]): the
//! original Python server opened one new connection per message and wrote
//! the text without a newline (the C# callback listener reads each
//! connection to EOF); [`CallbackStyle::Lines`] sends `\n`-terminated lines
//! over one connection.
//!
//! # Second variant (same connection)
//! A batch ends with an empty line; once every tile of it is done, the
//! server writes a single `\n` ([`BATCH_COMPLETE_REPLY`]) on the same
//! connection.
//!
//! # Bad input
//! [`LegacyDecoder`] is a pure incremental decoder (no sockets): feed it
//! bytes as they arrive, get [`LegacyEvent`]s. A line longer than the
//! maximum (counted as received: surrounding spaces count, the `\n` and a
//! `\r` just before it do not) yields one [`LegacyEvent::Invalid`] and the
//! rest of it is skipped
//! up to its `\n`, without buffering it; garbage or an out-of-range tile
//! yields `Invalid` for that line only. Nothing else is disturbed: the lines
//! before and after are decoded normally.

use std::fmt;
use std::io::{self, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use tile_math::TileCoord;
use tracing::{debug, trace};

use crate::endpoint::{Endpoint, ListenOptions, Listener};
use crate::error::{Error, Result};

/// Default maximum line length in bytes, without the line ending (`\n`, or
/// `\r\n`) but with any spaces around the request. The longest valid
/// request, `30_1073741823_1073741823`, has 24.
pub const DEFAULT_MAX_LINE: usize = 64;

/// The callback port is the server's port plus this, by default.
pub const DEFAULT_CALLBACK_PORT_OFFSET: u16 = 1;

/// What the second variant's server writes when a batch is complete.
pub const BATCH_COMPLETE_REPLY: &[u8] = b"\n";

/// The word that ends a batch in the main variant.
pub const STOP: &str = "stop";

/// The callback message that ends a batch.
pub const DONE: &str = "done";

/// What precedes the tile name in the callback for a tile that failed.
pub const FAILED_PREFIX: &str = "failed ";

/// One decoded line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyEvent {
    /// A tile request `{z}_{x}_{y}`.
    Tile {
        /// The tile.
        tile: TileCoord,
        /// The request exactly as written, without the line ending and the
        /// spaces around it (`01_0_0` stays `01_0_0`); the callback echoes
        /// it.
        text: String,
    },
    /// `stop`: the end of the batch (main variant).
    Stop,
    /// An empty line: the end of the batch (second variant).
    EndOfBatch,
    /// A line that is not a request; it is ignored.
    Invalid {
        /// 1-based line number on this connection.
        line_no: u64,
        /// What is wrong.
        reason: LineError,
    },
}

/// Why a line was invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// Longer than the maximum; the rest of the line was skipped.
    TooLong {
        /// The maximum.
        max: usize,
    },
    /// Not three decimal numbers separated by `_` (nor `stop`, nor empty).
    Syntax {
        /// The line, lossily decoded and cut to the maximum line length.
        line: String,
    },
    /// Three numbers, but no such tile.
    OutOfRange {
        /// tile-math's explanation.
        reason: String,
    },
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::TooLong { max } => write!(f, "line longer than {max} bytes"),
            LineError::Syntax { line } => {
                write!(f, "{line:?} is not z_x_y, \"stop\" or an empty line")
            }
            LineError::OutOfRange { reason } => write!(f, "{reason}"),
        }
    }
}

/// Incremental decoder for the client → server lines.
#[derive(Debug, Clone)]
pub struct LegacyDecoder {
    /// Longest line accepted, without its line ending.
    max_line: usize,
    /// The current, unterminated line.
    line: Vec<u8>,
    /// Number of the current line (1-based).
    line_no: u64,
    /// Inside an overlong line that was already reported: drop bytes up to
    /// the next `\n`.
    skipping: bool,
}

impl Default for LegacyDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl LegacyDecoder {
    /// A decoder with [`DEFAULT_MAX_LINE`].
    pub fn new() -> Self {
        Self::with_max_line(DEFAULT_MAX_LINE)
    }

    /// A decoder accepting lines of up to `max_line` bytes.
    pub fn with_max_line(max_line: usize) -> Self {
        Self {
            max_line,
            line: Vec::with_capacity(max_line.min(256) + 1),
            line_no: 1,
            skipping: false,
        }
    }

    /// Decodes `bytes`, appending an event to `out` for every line they
    /// complete (and one `Invalid` as soon as a line gets too long).
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<LegacyEvent>) {
        while !bytes.is_empty() {
            let newline = bytes.iter().position(|&b| b == b'\n');
            let (chunk, rest) = match newline {
                Some(i) => (&bytes[..i], Some(&bytes[i + 1..])),
                None => (bytes, None),
            };
            if !self.skipping {
                // One byte of slack for a `\r` that turns out to be the
                // line ending.
                let room = (self.max_line + 1).saturating_sub(self.line.len());
                if chunk.len() > room {
                    out.push(self.invalid(LineError::TooLong { max: self.max_line }));
                    self.line.clear();
                    self.skipping = true;
                } else {
                    self.line.extend_from_slice(chunk);
                }
            }
            match rest {
                Some(rest) => {
                    if self.skipping {
                        self.skipping = false;
                    } else {
                        self.end_line(out);
                    }
                    self.line.clear();
                    self.line_no += 1;
                    bytes = rest;
                }
                None => break,
            }
        }
    }

    /// The stream ended (EOF): decodes a last line that had no line ending.
    /// EOF itself also ends the batch; the caller knows it happened.
    pub fn finish(&mut self, out: &mut Vec<LegacyEvent>) {
        if !self.skipping && !self.line.is_empty() {
            self.end_line(out);
        }
        self.line.clear();
        self.skipping = false;
    }

    /// Whether part of a line has arrived (its end has not): a batch is
    /// under way even if no event has come out of it yet.
    pub fn in_line(&self) -> bool {
        self.skipping || !self.line.is_empty()
    }

    /// Convenience: decodes a whole input at once, including EOF handling.
    pub fn decode_all(bytes: &[u8]) -> Vec<LegacyEvent> {
        let mut d = Self::new();
        let mut out = Vec::new();
        d.feed(bytes, &mut out);
        d.finish(&mut out);
        out
    }

    fn invalid(&self, reason: LineError) -> LegacyEvent {
        debug!(line_no = self.line_no, %reason, "invalid legacy line");
        LegacyEvent::Invalid {
            line_no: self.line_no,
            reason,
        }
    }

    fn end_line(&mut self, out: &mut Vec<LegacyEvent>) {
        let mut line = &self.line[..];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        // The limit is on the line as received (only the line ending taken
        // off), not on what is left after trimming.
        if line.len() > self.max_line {
            out.push(self.invalid(LineError::TooLong { max: self.max_line }));
            return;
        }
        let line = line.trim_ascii();
        let event = if line.is_empty() {
            LegacyEvent::EndOfBatch
        } else if line.eq_ignore_ascii_case(STOP.as_bytes()) {
            LegacyEvent::Stop
        } else {
            match parse_tile(line) {
                Ok(tile) => LegacyEvent::Tile {
                    tile,
                    // parse_tile accepted only ASCII digits and `_`.
                    text: String::from_utf8_lossy(line).into_owned(),
                },
                Err(reason) => self.invalid(reason),
            }
        };
        trace!(?event, "legacy line");
        out.push(event);
    }
}

/// Parses `z_x_y` strictly: three runs of ASCII digits joined by `_`.
fn parse_tile(line: &[u8]) -> Result<TileCoord, LineError> {
    let syntax = || LineError::Syntax {
        line: String::from_utf8_lossy(line).into_owned(),
    };
    let mut parts = line.split(|&b| b == b'_');
    let mut num = || -> Result<u32, LineError> {
        let part = parts.next().ok_or_else(syntax)?;
        if part.is_empty() || part.len() > 10 || !part.iter().all(u8::is_ascii_digit) {
            return Err(syntax());
        }
        part.iter()
            .try_fold(0u32, |acc, &d| {
                acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))
            })
            .ok_or_else(|| LineError::OutOfRange {
                reason: "number does not fit 32 bits".into(),
            })
    };
    let (z, x, y) = (num()?, num()?, num()?);
    if parts.next().is_some() {
        return Err(syntax());
    }
    let z = u8::try_from(z).map_err(|_| LineError::OutOfRange {
        reason: format!("zoom {z} is out of range"),
    })?;
    TileCoord::new(z, x, y).map_err(|e| LineError::OutOfRange {
        reason: e.to_string(),
    })
}

/// A tile in the legacy text form `{z}_{x}_{y}`.
pub fn format_tile(tile: TileCoord) -> String {
    format!("{}_{}_{}", tile.z(), tile.x(), tile.y())
}

/// How the server delivers callback messages to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallbackStyle {
    /// What the original Python server did and the C# listener expects: one
    /// new TCP connection per message, the text without a newline, then
    /// close (the C# side reads each connection to EOF).
    #[default]
    ConnectionPerMessage,
    /// One connection for the whole batch, one `\n`-terminated line per
    /// message, closed after `done`.
    Lines,
}

/// A message from the server to the client's callback listener. A tile is
/// named by its request text as the client wrote it
/// ([`LegacyEvent::Tile`]'s `text`), since the client matches callbacks to
/// its requests by text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackMessage {
    /// This tile is finished.
    Tile(String),
    /// This tile could not be made (not in the original protocol: the
    /// original server printed an error and sent nothing, so the client
    /// never heard of the tile; `failed {z}_{x}_{y}` tells it).
    Failed(String),
    /// The batch is finished.
    Done,
}

impl CallbackMessage {
    /// The bytes for this message in `style`.
    pub fn encode(&self, style: CallbackStyle) -> Vec<u8> {
        let mut text = match self {
            CallbackMessage::Tile(t) => t.clone(),
            CallbackMessage::Failed(t) => format!("{FAILED_PREFIX}{t}"),
            CallbackMessage::Done => DONE.to_owned(),
        };
        if style == CallbackStyle::Lines {
            text.push('\n');
        }
        text.into_bytes()
    }
}

/// Binds the legacy listener. The line protocol has no authentication, so a
/// non-loopback address is refused unless `allow_insecure_remote` is set,
/// whether or not a shared secret is configured for the framed protocol
/// (`secret_configured` only makes the refusal say so): the error is
/// [`Error::InsecureLegacy`].
pub fn bind_legacy(
    endpoint: &Endpoint,
    allow_insecure_remote: bool,
    secret_configured: bool,
) -> Result<Listener> {
    let options = ListenOptions {
        secret: None,
        allow_insecure_remote,
    };
    Listener::bind(endpoint, &options).map_err(|e| match e {
        Error::InsecureRemote { addr } => Error::InsecureLegacy {
            addr,
            secret_configured,
        },
        other => other,
    })
}

/// Where the callback listener of a client is: the client's IP and the
/// server's own port plus `offset`. `None` if that port would overflow.
pub fn callback_addr(client_ip: IpAddr, server_port: u16, offset: u16) -> Option<SocketAddr> {
    Some(SocketAddr::new(client_ip, server_port.checked_add(offset)?))
}

/// Sends callback messages to one client's listener in one style.
#[derive(Debug)]
pub struct CallbackSender {
    /// The client's callback listener.
    addr: SocketAddr,
    /// Connection per message or lines.
    style: CallbackStyle,
    /// Connect timeout, so a vanished client cannot block a worker forever.
    timeout: Duration,
    /// The open connection in [`CallbackStyle::Lines`].
    open: Option<TcpStream>,
}

impl CallbackSender {
    /// A sender to `addr`; nothing is connected until the first message.
    pub fn new(addr: SocketAddr, style: CallbackStyle, timeout: Duration) -> Self {
        Self {
            addr,
            style,
            timeout,
            open: None,
        }
    }

    fn connect(&self) -> io::Result<TcpStream> {
        let s = TcpStream::connect_timeout(&self.addr, self.timeout)?;
        s.set_nodelay(true)?;
        s.set_write_timeout(Some(self.timeout))?;
        Ok(s)
    }

    /// Sends one message. In [`CallbackStyle::Lines`], `Done` also closes
    /// the connection.
    pub fn send(&mut self, msg: CallbackMessage) -> io::Result<()> {
        let bytes = msg.encode(self.style);
        match self.style {
            CallbackStyle::ConnectionPerMessage => {
                let mut s = self.connect()?;
                s.write_all(&bytes)?;
                // Half-close so the C# reader sees EOF right away.
                let _ = s.shutdown(Shutdown::Write);
            }
            CallbackStyle::Lines => {
                if self.open.is_none() {
                    self.open = Some(self.connect()?);
                }
                if let Some(s) = self.open.as_mut() {
                    if let Err(e) = s.write_all(&bytes) {
                        self.open = None;
                        return Err(e);
                    }
                }
                if msg == CallbackMessage::Done {
                    if let Some(s) = self.open.take() {
                        let _ = s.shutdown(Shutdown::Write);
                    }
                }
            }
        }
        trace!(addr = %self.addr, ?msg, "callback sent");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(z: u8, x: u32, y: u32) -> LegacyEvent {
        let tile = TileCoord::new(z, x, y).unwrap();
        LegacyEvent::Tile {
            tile,
            text: format_tile(tile),
        }
    }

    #[test]
    fn the_c_sharp_test_batch() {
        let ev = LegacyDecoder::decode_all(b"16_58001_25480\n16_58001_25481\nstop\n");
        assert_eq!(
            ev,
            [t(16, 58001, 25480), t(16, 58001, 25481), LegacyEvent::Stop]
        );
    }

    #[test]
    fn format_and_encode() {
        let tile = TileCoord::new(16, 58001, 25480).unwrap();
        assert_eq!(format_tile(tile), "16_58001_25480");
        assert_eq!(
            CallbackMessage::Tile(format_tile(tile)).encode(CallbackStyle::ConnectionPerMessage),
            b"16_58001_25480"
        );
        assert_eq!(
            CallbackMessage::Failed("01_0_0".into()).encode(CallbackStyle::Lines),
            b"failed 01_0_0\n"
        );
        assert_eq!(
            CallbackMessage::Done.encode(CallbackStyle::Lines),
            b"done\n"
        );
    }

    #[test]
    fn callback_port_overflow() {
        let ip = IpAddr::from([127, 0, 0, 1]);
        assert_eq!(callback_addr(ip, 12345, 1).unwrap().port(), 12346);
        assert!(callback_addr(ip, u16::MAX, 1).is_none());
    }
}
