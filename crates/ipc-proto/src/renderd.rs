//! renderd's socket protocol, so that Apache's mod_tile, `render_list` and
//! `render_expired` drive tessera unchanged.
//!
//! The wire format is mod_tile's C `struct protocol` (`includes/protocol.h`
//! of mod_tile 0.6) sent as raw memory: five `int`s (`ver`, `cmd`, `x`,
//! `y`, `z`), then `char xmlname[41]`, and in version 3 also
//! `char mimetype[41]` and `char options[41]`, padded to a multiple of 4
//! as the C compiler lays the struct out:
//!
//! | version | fields | bytes |
//! |---|---|---|
//! | 1 | ver, cmd, x, y, z | 20 |
//! | 2 | … + xmlname[41] + 3 bytes of padding | 64 |
//! | 3 | … + mimetype[41] + options[41] + 1 byte of padding | 144 |
//!
//! Integers are in the machine's native byte order (both ends of renderd's
//! socket run on one machine or one architecture; little-endian on x86-64
//! and arm64). Strings end at their first NUL; a name of 41 bytes without
//! one is taken whole.
//!
//! What this module promises:
//! - [`RenderdDecoder`] is a pure incremental decoder (no sockets): feed it
//!   bytes as they arrive, in any pieces, and take whole messages. It reads
//!   the version first and then exactly that version's size, as renderd
//!   does; a version other than 1-3 is an error (renderd closes such a
//!   connection), after which the stream cannot be resynchronised. It
//!   never holds more than one partial message beyond what it was fed.
//! - [`RenderdMessage::encode`] writes a message back in the same layout,
//!   padding zeroed. An answer ([`RenderdMessage::answer`]) is the request
//!   itself with the command replaced, in the request's version: mod_tile
//!   matches answers to requests by x, y, z and xmlname.
//! - [`bind_renderd`] listens like renderd (a Unix socket, or TCP), with
//!   tessera's safety rules: the protocol has no authentication, so a
//!   non-loopback TCP address is refused unless explicitly allowed.
//!
//! Limits: the commands are renderd's; which ones are answered, and how, is
//! the server's business (`render-service`'s renderd session).

use std::fmt;
use std::os::unix::fs::PermissionsExt;

use crate::endpoint::{Endpoint, ListenOptions, Listener};
use crate::error::{Error, Result};

/// Size of `xmlname`, `mimetype` and `options`, the terminating NUL
/// included (mod_tile's `XMLCONFIG_MAX`).
pub const XMLCONFIG_MAX: usize = 41;

/// The integer fields: ver, cmd, x, y, z.
const HEADER_LEN: usize = 20;

/// Where renderd's socket is by default (Debian, mod_tile 0.6).
pub const DEFAULT_RENDERD_SOCKET: &str = "/run/renderd/renderd.sock";

/// The map a version-1 request renders (it has no `xmlname`).
pub const DEFAULT_XMLNAME: &str = "default";

/// A protocol version, which fixes the message's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RenderdVersion {
    /// ver, cmd, x, y, z only; the map is `default`.
    V1 = 1,
    /// Adds `xmlname` (what `render_list` and `render_expired` send).
    V2 = 2,
    /// Adds `mimetype` and `options` (what mod_tile sends).
    V3 = 3,
}

impl RenderdVersion {
    /// The version for a `ver` field, if renderd knows it.
    pub fn from_raw(raw: i32) -> Option<Self> {
        match raw {
            1 => Some(Self::V1),
            2 => Some(Self::V2),
            3 => Some(Self::V3),
            _ => None,
        }
    }

    /// Bytes of a message of this version on the wire (C struct padding
    /// included).
    pub const fn wire_len(self) -> usize {
        match self {
            Self::V1 => HEADER_LEN,
            Self::V2 => 64,
            Self::V3 => 144,
        }
    }
}

/// renderd's commands (`enum protoCmd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RenderdCommand {
    /// Nothing to do (renderd also answers it for a tile out of bounds).
    Ignore = 0,
    /// Render now; someone waits (mod_tile: a very old tile).
    Render = 1,
    /// Re-render some time; nobody waits (mod_tile under load).
    Dirty = 2,
    /// Answer: the metatile is written.
    Done = 3,
    /// Answer: it was not rendered (failed, refused or dropped).
    NotDone = 4,
    /// Render first; someone waits (mod_tile: a missing tile).
    RenderPrio = 5,
    /// Bulk seeding (`render_list`, `render_expired`).
    RenderBulk = 6,
    /// Render soon; someone waits with an old tile in hand (mod_tile: an
    /// expired tile).
    RenderLow = 7,
}

impl RenderdCommand {
    /// The command for a `cmd` field, if renderd knows it.
    pub fn from_raw(raw: i32) -> Option<Self> {
        Some(match raw {
            0 => Self::Ignore,
            1 => Self::Render,
            2 => Self::Dirty,
            3 => Self::Done,
            4 => Self::NotDone,
            5 => Self::RenderPrio,
            6 => Self::RenderBulk,
            7 => Self::RenderLow,
            _ => return None,
        })
    }

    /// renderd's name for it, for logs (`cmdRenderPrio` → `RenderPrio`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Ignore => "Ignore",
            Self::Render => "Render",
            Self::Dirty => "Dirty",
            Self::Done => "Done",
            Self::NotDone => "NotDone",
            Self::RenderPrio => "RenderPrio",
            Self::RenderBulk => "RenderBulk",
            Self::RenderLow => "RenderLow",
        }
    }
}

/// One message of renderd's protocol, request or answer.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderdMessage {
    /// Its version, which fixes its size.
    pub version: RenderdVersion,
    /// The `cmd` field as sent; see [`RenderdMessage::command`].
    pub command: i32,
    /// Tile column.
    pub x: i32,
    /// Tile row.
    pub y: i32,
    /// Zoom level.
    pub z: i32,
    /// The map, NUL-padded (version 1: `default`).
    pub xmlname: [u8; XMLCONFIG_MAX],
    /// Version 3 only (mod_tile sends `image/png`); zeros otherwise.
    pub mimetype: [u8; XMLCONFIG_MAX],
    /// Version 3 only (style parameters, unused by tessera); zeros
    /// otherwise.
    pub options: [u8; XMLCONFIG_MAX],
}

/// Why bytes are not a renderd message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenderdDecodeError {
    /// The `ver` field is not 1, 2 or 3 (renderd closes the connection).
    #[error("protocol version {version} is not one of renderd's (1, 2, 3)")]
    BadVersion {
        /// The `ver` field as read.
        version: i32,
    },
    /// More bytes than the one message asked for ([`RenderdMessage::decode`]).
    #[error("{extra} bytes after a message of {len}")]
    TrailingBytes {
        /// The message's size.
        len: usize,
        /// The bytes after it.
        extra: usize,
    },
    /// The stream ended inside a message.
    #[error("the connection ended {have} bytes into a message of {need}")]
    Truncated {
        /// Bytes of the message that arrived.
        have: usize,
        /// Bytes it needed: 20 to read the version, then the version's size.
        need: usize,
    },
}

/// Why a message cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenderdBuildError {
    /// A name longer than 40 bytes does not fit renderd's fields.
    #[error("{field} {value:?} is longer than {} bytes", XMLCONFIG_MAX - 1)]
    TooLong {
        /// `xmlname`, `mimetype` or `options`.
        field: &'static str,
        /// The value given.
        value: String,
    },
}

impl RenderdMessage {
    /// A request (or answer) for tile `z/x/y` of map `xmlname`.
    pub fn new(
        version: RenderdVersion,
        command: RenderdCommand,
        (z, x, y): (i32, i32, i32),
        xmlname: &str,
    ) -> std::result::Result<Self, RenderdBuildError> {
        let xmlname = match version {
            RenderdVersion::V1 => DEFAULT_XMLNAME,
            _ => xmlname,
        };
        let mut message = Self {
            version,
            command: command as i32,
            x,
            y,
            z,
            xmlname: field("xmlname", xmlname)?,
            mimetype: [0; XMLCONFIG_MAX],
            options: [0; XMLCONFIG_MAX],
        };
        if version == RenderdVersion::V3 {
            message.mimetype = field("mimetype", "image/png")?;
        }
        Ok(message)
    }

    /// The command, if renderd knows it.
    pub fn command(&self) -> Option<RenderdCommand> {
        RenderdCommand::from_raw(self.command)
    }

    /// The map's name as bytes, up to its first NUL.
    pub fn xmlname(&self) -> &[u8] {
        until_nul(&self.xmlname)
    }

    /// The map's name, when it is UTF-8.
    pub fn xmlname_str(&self) -> Option<&str> {
        std::str::from_utf8(self.xmlname()).ok()
    }

    /// The answer to this request: the same message, in the same version,
    /// with `command` (`Done` or `NotDone`) in place of the request's.
    pub fn answer(&self, command: RenderdCommand) -> Self {
        Self {
            command: command as i32,
            ..self.clone()
        }
    }

    /// The message as it goes on the wire ([`RenderdVersion::wire_len`] bytes).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.version.wire_len());
        for value in [self.version as i32, self.command, self.x, self.y, self.z] {
            out.extend_from_slice(&value.to_ne_bytes());
        }
        if self.version != RenderdVersion::V1 {
            out.extend_from_slice(&self.xmlname);
        }
        if self.version == RenderdVersion::V3 {
            out.extend_from_slice(&self.mimetype);
            out.extend_from_slice(&self.options);
        }
        out.resize(self.version.wire_len(), 0);
        out
    }

    /// A whole message from `bytes`, which must hold exactly one.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Self, RenderdDecodeError> {
        let mut decoder = RenderdDecoder::new();
        decoder.feed(bytes);
        match decoder.take_message()? {
            Some(message) if decoder.buffered() == 0 => Ok(message),
            Some(message) => Err(RenderdDecodeError::TrailingBytes {
                len: message.version.wire_len(),
                extra: decoder.buffered(),
            }),
            None => {
                decoder.finish()?;
                Err(RenderdDecodeError::Truncated {
                    have: 0,
                    need: HEADER_LEN,
                })
            }
        }
    }
}

impl fmt::Debug for RenderdMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenderdMessage")
            .field("version", &self.version)
            .field("command", &self.command().map_or("unknown", |c| c.name()))
            .field("z", &self.z)
            .field("x", &self.x)
            .field("y", &self.y)
            .field("xmlname", &String::from_utf8_lossy(self.xmlname()))
            .field(
                "mimetype",
                &String::from_utf8_lossy(until_nul(&self.mimetype)),
            )
            .field(
                "options",
                &String::from_utf8_lossy(until_nul(&self.options)),
            )
            .finish()
    }
}

impl fmt::Display for RenderdMessage {
    /// `RenderPrio demo 12/2275/1185 (v3)`: what a log line needs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.command() {
            Some(command) => write!(f, "{}", command.name())?,
            None => write!(f, "command {}", self.command)?,
        }
        write!(
            f,
            " {:?} {}/{}/{} (v{})",
            String::from_utf8_lossy(self.xmlname()),
            self.z,
            self.x,
            self.y,
            self.version as i32
        )
    }
}

fn until_nul(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// `value` NUL-padded, cut to 40 bytes (for names known to fit).
fn name_bytes(value: &str) -> [u8; XMLCONFIG_MAX] {
    let mut out = [0; XMLCONFIG_MAX];
    let len = value.len().min(XMLCONFIG_MAX - 1);
    out[..len].copy_from_slice(&value.as_bytes()[..len]);
    out
}

fn field(
    name: &'static str,
    value: &str,
) -> std::result::Result<[u8; XMLCONFIG_MAX], RenderdBuildError> {
    if value.len() >= XMLCONFIG_MAX || value.contains('\0') {
        return Err(RenderdBuildError::TooLong {
            field: name,
            value: value.to_owned(),
        });
    }
    let mut out = [0; XMLCONFIG_MAX];
    out[..value.len()].copy_from_slice(value.as_bytes());
    Ok(out)
}

/// Incremental decoder of renderd messages; see the module docs.
#[derive(Debug, Default)]
pub struct RenderdDecoder {
    buf: Vec<u8>,
    /// Set once a bad version was seen: nothing after it can be framed.
    broken: bool,
}

impl RenderdDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes as they arrived.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes fed and not yet taken as messages.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole message, `None` until enough bytes have come, or the
    /// error that ends the stream.
    pub fn take_message(
        &mut self,
    ) -> std::result::Result<Option<RenderdMessage>, RenderdDecodeError> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let int = |i: usize| {
            let mut bytes = [0u8; 4];
            bytes.copy_from_slice(&self.buf[i * 4..i * 4 + 4]);
            i32::from_ne_bytes(bytes)
        };
        let raw_version = int(0);
        let Some(version) = RenderdVersion::from_raw(raw_version) else {
            self.broken = true;
            return Err(RenderdDecodeError::BadVersion {
                version: raw_version,
            });
        };
        if self.buf.len() < version.wire_len() {
            return Ok(None);
        }
        let name = |at: usize| {
            let mut out = [0u8; XMLCONFIG_MAX];
            out.copy_from_slice(&self.buf[at..at + XMLCONFIG_MAX]);
            out
        };
        let mut message = RenderdMessage {
            version,
            command: int(1),
            x: int(2),
            y: int(3),
            z: int(4),
            xmlname: [0; XMLCONFIG_MAX],
            mimetype: [0; XMLCONFIG_MAX],
            options: [0; XMLCONFIG_MAX],
        };
        match version {
            // renderd upgrades a version-1 request to the default map.
            RenderdVersion::V1 => message.xmlname = name_bytes(DEFAULT_XMLNAME),
            RenderdVersion::V2 => message.xmlname = name(HEADER_LEN),
            RenderdVersion::V3 => {
                message.xmlname = name(HEADER_LEN);
                message.mimetype = name(HEADER_LEN + XMLCONFIG_MAX);
                message.options = name(HEADER_LEN + 2 * XMLCONFIG_MAX);
            }
        }
        self.buf.drain(..version.wire_len());
        Ok(Some(message))
    }

    /// At the end of the stream: `Ok` when it ended between messages,
    /// otherwise how much of a message was missing.
    pub fn finish(&self) -> std::result::Result<(), RenderdDecodeError> {
        if self.buf.is_empty() || self.broken {
            return Ok(());
        }
        let need = match self.buf.get(..4) {
            Some(bytes) if self.buf.len() >= HEADER_LEN => {
                let mut raw = [0u8; 4];
                raw.copy_from_slice(bytes);
                RenderdVersion::from_raw(i32::from_ne_bytes(raw))
                    .map_or(HEADER_LEN, |v| v.wire_len())
            }
            _ => HEADER_LEN,
        };
        Err(RenderdDecodeError::Truncated {
            have: self.buf.len(),
            need,
        })
    }
}

/// Listens for renderd's protocol on `endpoint`.
///
/// - A Unix socket is created as tessera's are (mode 0600, no window with
///   looser permissions, a stale socket replaced, a live one refused),
///   then given `unix_mode`: Apache's mod_tile connects as the web server's
///   user, so a deployment typically needs `0660` (with the server's group)
///   or `0666` in a private directory. renderd itself leaves its socket
///   world-writable (`umask(0)`).
/// - TCP binds loopback by default. The protocol has no authentication,
///   so a non-loopback address is refused unless `allow_insecure_remote`
///   (a shared secret, which only tessera's framed protocol uses, does not
///   help).
pub fn bind_renderd(
    endpoint: &Endpoint,
    allow_insecure_remote: bool,
    unix_mode: u32,
) -> Result<Listener> {
    let options = ListenOptions {
        secret: None,
        allow_insecure_remote,
    };
    let listener = Listener::bind(endpoint, &options).map_err(|e| match e {
        Error::InsecureRemote { addr } => Error::InsecureRenderd { addr },
        other => other,
    })?;
    if let Endpoint::Unix(path) = endpoint {
        if unix_mode & 0o777 != 0o600 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(unix_mode & 0o777))
                .map_err(|e| Error::io(format!("chmod {unix_mode:o} {}", path.display()), e))?;
        }
    }
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: RenderdVersion, command: RenderdCommand) -> RenderdMessage {
        RenderdMessage::new(version, command, (12, 2275, 1185), "demo").unwrap()
    }

    #[test]
    fn the_sizes_are_those_of_the_c_structs_on_this_machine() {
        // sizeof(struct protocol_v1), sizeof(struct protocol_v2) and
        // sizeof(struct protocol) with 4-byte ints: 20, 61 → 64, 143 → 144.
        assert_eq!(RenderdVersion::V1.wire_len(), 20);
        assert_eq!(RenderdVersion::V2.wire_len(), 64);
        assert_eq!(RenderdVersion::V3.wire_len(), 144);
        for version in [RenderdVersion::V1, RenderdVersion::V2, RenderdVersion::V3] {
            let bytes = request(version, RenderdCommand::Render).encode();
            assert_eq!(bytes.len(), version.wire_len());
        }
    }

    #[test]
    fn version_2_is_laid_out_byte_for_byte_as_render_list_sends_it() {
        let bytes = request(RenderdVersion::V2, RenderdCommand::RenderBulk).encode();
        let mut expected = Vec::new();
        for v in [2i32, 6, 2275, 1185, 12] {
            expected.extend_from_slice(&v.to_ne_bytes());
        }
        expected.extend_from_slice(b"demo");
        expected.resize(20 + 41, 0);
        expected.extend_from_slice(&[0, 0, 0]); // padding to 64
        assert_eq!(bytes, expected);
        if cfg!(target_endian = "little") {
            assert_eq!(&bytes[..8], &[2, 0, 0, 0, 6, 0, 0, 0]);
        }
        assert_eq!(
            RenderdMessage::decode(&bytes).unwrap(),
            request(RenderdVersion::V2, RenderdCommand::RenderBulk)
        );
    }

    #[test]
    fn version_3_carries_mimetype_and_options_and_answers_echo_them() {
        let mut bytes = request(RenderdVersion::V3, RenderdCommand::RenderPrio).encode();
        assert_eq!(&bytes[20..24], b"demo");
        assert_eq!(&bytes[61..70], b"image/png");
        // options "lang=fi" at 20 + 82.
        bytes[102..109].copy_from_slice(b"lang=fi");
        let message = RenderdMessage::decode(&bytes).unwrap();
        assert_eq!(message.command(), Some(RenderdCommand::RenderPrio));
        assert_eq!(message.xmlname_str(), Some("demo"));
        assert_eq!((message.z, message.x, message.y), (12, 2275, 1185));
        let answer = message.answer(RenderdCommand::Done).encode();
        assert_eq!(answer.len(), 144);
        assert_eq!(&answer[4..8], &(RenderdCommand::Done as i32).to_ne_bytes());
        assert_eq!(answer[..4], bytes[..4]);
        assert_eq!(answer[8..], bytes[8..], "everything but cmd is echoed");
    }

    #[test]
    fn version_1_means_the_default_map() {
        let bytes = request(RenderdVersion::V1, RenderdCommand::Render).encode();
        assert_eq!(bytes.len(), 20);
        let message = RenderdMessage::decode(&bytes).unwrap();
        assert_eq!(message.xmlname_str(), Some("default"));
        assert_eq!(message.answer(RenderdCommand::NotDone).encode().len(), 20);
    }

    #[test]
    fn messages_split_anywhere_and_run_together_decode_in_order() {
        let mut stream = Vec::new();
        let sent = [
            request(RenderdVersion::V2, RenderdCommand::RenderBulk),
            request(RenderdVersion::V3, RenderdCommand::Dirty),
            request(RenderdVersion::V1, RenderdCommand::Render),
            request(RenderdVersion::V2, RenderdCommand::RenderLow),
        ];
        for m in &sent {
            stream.extend(m.encode());
        }
        for piece in [1, 3, 7, 19, 20, 21, 64, 100, stream.len()] {
            let mut decoder = RenderdDecoder::new();
            let mut got = Vec::new();
            for chunk in stream.chunks(piece) {
                decoder.feed(chunk);
                while let Some(m) = decoder.take_message().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, sent, "pieces of {piece}");
            decoder.finish().unwrap();
            assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn a_bad_version_is_an_error_and_a_short_message_is_truncated() {
        let mut bytes = request(RenderdVersion::V2, RenderdCommand::Render).encode();
        bytes[..4].copy_from_slice(&4i32.to_ne_bytes());
        let mut decoder = RenderdDecoder::new();
        decoder.feed(&bytes);
        assert_eq!(
            decoder.take_message(),
            Err(RenderdDecodeError::BadVersion { version: 4 })
        );
        let mut decoder = RenderdDecoder::new();
        decoder.feed(&0i32.to_ne_bytes());
        decoder.feed(&[0; 16]);
        assert_eq!(
            decoder.take_message(),
            Err(RenderdDecodeError::BadVersion { version: 0 })
        );
        // 30 bytes of a version-2 message, then the end.
        let whole = request(RenderdVersion::V2, RenderdCommand::Render).encode();
        let mut decoder = RenderdDecoder::new();
        decoder.feed(&whole[..30]);
        assert_eq!(decoder.take_message(), Ok(None));
        assert_eq!(
            decoder.finish(),
            Err(RenderdDecodeError::Truncated { have: 30, need: 64 })
        );
        let mut decoder = RenderdDecoder::new();
        decoder.feed(&whole[..5]);
        assert_eq!(
            decoder.finish(),
            Err(RenderdDecodeError::Truncated { have: 5, need: 20 })
        );
        // decode() wants exactly one message: one and a bit is too long.
        let mut long = whole.clone();
        long.push(0);
        assert!(RenderdMessage::decode(&long).is_err());
        assert!(RenderdMessage::decode(&whole[..63]).is_err());
    }

    #[test]
    fn names_of_41_bytes_without_nul_are_taken_whole_and_long_names_refused() {
        let mut bytes = request(RenderdVersion::V2, RenderdCommand::Render).encode();
        bytes[20..61].copy_from_slice(&[b'a'; 41]);
        let message = RenderdMessage::decode(&bytes).unwrap();
        assert_eq!(message.xmlname().len(), 41);
        let long = "x".repeat(41);
        assert!(
            RenderdMessage::new(RenderdVersion::V2, RenderdCommand::Render, (0, 0, 0), &long)
                .is_err()
        );
        assert!(RenderdMessage::new(
            RenderdVersion::V2,
            RenderdCommand::Render,
            (0, 0, 0),
            &long[..40]
        )
        .is_ok());
        // Non-UTF-8 names decode; they just match no map.
        bytes[20] = 0xff;
        assert_eq!(RenderdMessage::decode(&bytes).unwrap().xmlname_str(), None);
    }

    #[test]
    fn unknown_commands_are_kept_as_sent() {
        let mut bytes = request(RenderdVersion::V2, RenderdCommand::Render).encode();
        bytes[4..8].copy_from_slice(&99i32.to_ne_bytes());
        let message = RenderdMessage::decode(&bytes).unwrap();
        assert_eq!(message.command, 99);
        assert_eq!(message.command(), None);
        assert_eq!(message.to_string(), "command 99 \"demo\" 12/2275/1185 (v2)");
    }
}
