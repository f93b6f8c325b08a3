//! The one error type of ipc-proto.
//!
//! Every variant carries enough context to say *what* was wrong without a
//! debugger: the field of a message that failed to decode, the announced
//! length of an oversized frame, the path of a socket file that is in use.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can go wrong in ipc-proto.
///
/// Errors from the frame layer ([`Error::FrameTooLarge`],
/// [`Error::FrameTooShort`], [`Error::UnsupportedVersion`],
/// [`Error::ConnectionResetMidFrame`]) leave the byte stream out of sync: the
/// connection must be closed. Errors from the message layer
/// ([`Error::UnknownKind`], [`Error::Malformed`], [`Error::TrailingBytes`])
/// happen after a whole frame was consumed; the protocol still asks the
/// receiver to close (see `docs/protocol.md`, "Errors and closing").
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system reported an I/O error.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),

    /// An I/O error with a word on what was being done.
    #[error("{context}: {source}")]
    IoContext {
        /// What was being done, e.g. `binding unix socket /run/tessera.sock`.
        context: String,
        /// The underlying error.
        source: io::Error,
    },

    /// A frame announced (or, when sending, would have) a length above the
    /// configured maximum. Reported before anything is allocated.
    #[error("frame of {len} bytes exceeds the maximum frame size of {max} bytes")]
    FrameTooLarge {
        /// The length field of the frame (bytes after the length field).
        len: u64,
        /// The configured maximum.
        max: usize,
    },

    /// A frame's length field is below 2, so it cannot even hold the version
    /// and kind bytes.
    #[error(
        "frame length {len} is too short: every frame holds at least a version and a kind byte"
    )]
    FrameTooShort {
        /// The length field that was read.
        len: u32,
    },

    /// A frame with a version byte this implementation does not speak.
    #[error(
        "unsupported frame version {version} (this implementation speaks version {supported})"
    )]
    UnsupportedVersion {
        /// The version byte that was read.
        version: u8,
        /// The version this implementation speaks.
        supported: u8,
    },

    /// A frame whose kind byte names no known message.
    #[error("unknown message kind {kind} (0x{kind:02x})")]
    UnknownKind {
        /// The kind byte.
        kind: u8,
    },

    /// A message whose payload does not decode.
    #[error("malformed {message} message, field `{field}`: {reason}")]
    Malformed {
        /// The message being decoded, e.g. `RenderRequest`.
        message: &'static str,
        /// The field that failed, e.g. `tiles.list[3]`.
        field: String,
        /// What was wrong with it.
        reason: String,
    },

    /// A message that cannot be put on the wire (a string longer than a
    /// `u16` length prefix can say, a list longer than `u32::MAX`).
    #[error("cannot encode {message} message, field `{field}`: {reason}")]
    Unencodable {
        /// The message being encoded.
        message: &'static str,
        /// The field that does not fit.
        field: &'static str,
        /// Why.
        reason: String,
    },

    /// A message that decoded fully but left bytes over in its frame.
    #[error("{message} message has {extra} unexpected trailing bytes")]
    TrailingBytes {
        /// The message that was decoded.
        message: &'static str,
        /// How many bytes were left.
        extra: usize,
    },

    /// The peer closed the connection in the middle of a frame.
    #[error("connection reset by peer in the middle of a frame ({buffered} bytes of it received)")]
    ConnectionResetMidFrame {
        /// Bytes of the partial frame that had arrived.
        buffered: usize,
    },

    /// The peer closed the connection cleanly where a message was required
    /// (for example in the middle of the authentication handshake).
    #[error("connection closed by peer while waiting for {expected}")]
    ClosedByPeer {
        /// What was being waited for.
        expected: &'static str,
    },

    /// The peer ended the session with `Goodbye` where another message was
    /// required.
    #[error("peer said goodbye: {reason}")]
    PeerGoodbye {
        /// The reason the peer gave.
        reason: String,
    },

    /// The peer sent a message that is not allowed at this point.
    #[error("protocol violation: expected {expected}, got {got}")]
    UnexpectedMessage {
        /// What was allowed here.
        expected: &'static str,
        /// The kind of message that arrived.
        got: &'static str,
    },

    /// The shared-secret handshake failed. The connection must be closed.
    #[error("authentication failed: {reason}")]
    AuthFailed {
        /// Why, in words fit for a log line. Never contains secret material.
        reason: String,
    },

    /// A secret that cannot be used (empty, unreadable).
    #[error("invalid shared secret: {reason}")]
    InvalidSecret {
        /// Why.
        reason: String,
    },

    /// Hello and Welcome found no protocol version both sides speak.
    #[error("no common protocol version: peer offers {offered:?}, we speak {supported:?}")]
    NoCommonVersion {
        /// Versions the client offered.
        offered: Vec<u16>,
        /// Versions this side speaks.
        supported: Vec<u16>,
    },

    /// An endpoint string that does not parse.
    #[error("invalid endpoint {input:?}: {reason}")]
    InvalidEndpoint {
        /// The text that was given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Listening on a non-loopback address without a shared secret.
    #[error(
        "refusing to listen on non-loopback address {addr} without a shared secret: \
         configure a secret, or set allow_insecure_remote if the network is trusted"
    )]
    InsecureRemote {
        /// The address that was asked for.
        addr: SocketAddr,
    },

    /// The legacy line protocol asked to listen on a non-loopback address.
    /// It has no authentication at all, so a shared secret (which only the
    /// framed protocol uses) does not make that safe.
    #[error(
        "refusing to serve the legacy line protocol on non-loopback address {addr}: \
         it has no authentication{}; listen on loopback, \
         or set allow_insecure_remote if the network is trusted",
        if *secret_configured {
            ", and the configured shared secret does not protect it \
             (only the framed protocol authenticates with it)"
        } else {
            " (a shared secret cannot protect it)"
        }
    )]
    InsecureLegacy {
        /// The address that was asked for.
        addr: SocketAddr,
        /// Whether a shared secret is configured (for the framed protocol).
        secret_configured: bool,
    },

    /// renderd's protocol asked to listen on a non-loopback address. It has
    /// no authentication at all, so a shared secret does not make that safe.
    #[error(
        "refusing to serve renderd's protocol on non-loopback address {addr}: it has no \
         authentication (a shared secret cannot protect it); use a Unix socket or loopback, \
         or set allow_insecure_remote if the network is trusted"
    )]
    InsecureRenderd {
        /// The address that was asked for.
        addr: SocketAddr,
    },

    /// A Unix socket path where another listener is accepting connections.
    #[error("unix socket {path} is in use by a running listener")]
    SocketInUse {
        /// The socket path.
        path: PathBuf,
    },

    /// A path that should become a Unix socket exists and is not a socket.
    /// It is never deleted.
    #[error("{path} exists and is not a socket; refusing to replace it")]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
}

impl Error {
    /// A [`Error::Malformed`] for `message`'s `field`.
    pub(crate) fn malformed(
        message: &'static str,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::Malformed {
            message,
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Whether this is a read or write timeout (including a read deadline
    /// that passed): the connection is still in sync, and calling again
    /// continues where the last call stopped.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Io(e) | Error::IoContext { source: e, .. }
            if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
    }

    /// Whether the peer broke the protocol: a frame or message that does not
    /// decode, or a message that is not allowed where it came. The protocol
    /// asks the receiver to send `Goodbye { reason }` and close.
    pub fn is_protocol_violation(&self) -> bool {
        matches!(
            self,
            Error::FrameTooLarge { .. }
                | Error::FrameTooShort { .. }
                | Error::UnsupportedVersion { .. }
                | Error::UnknownKind { .. }
                | Error::Malformed { .. }
                | Error::TrailingBytes { .. }
                | Error::UnexpectedMessage { .. }
        )
    }

    /// An [`Error::IoContext`].
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::IoContext {
            context: context.into(),
            source,
        }
    }
}

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its causes as one line for a person, each said once:
/// `connecting to tcp:h:1: Connection refused (os error 111)`.
///
/// Errors of this workspace write their cause into their own message
/// (`{context}: {source}`) *and* return it from `source()`, as thiserror
/// does for a field named `source`; walking the chain as anyhow's `{:#}`
/// does then repeats every cause. Here a cause is added only while the
/// line does not yet end in the root cause's words, and only if its text
/// is not in the line already; a cause that starts with the whole line so
/// far (a context that repeats the inner error's own context) replaces it.
pub fn say_once(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut root = error;
    while let Some(cause) = root.source() {
        root = cause;
    }
    let root_text = root.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        if line.contains(&root_text) {
            break;
        }
        let text = cause.to_string();
        if text.starts_with(&line) {
            line = text;
        } else if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        next = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync_static() {
        fn assert_bounds<T: Send + Sync + 'static + std::error::Error>() {}
        assert_bounds::<Error>();
    }

    #[test]
    fn say_once_says_each_cause_once() {
        /// A context over an error, as anyhow's `context` makes one.
        #[derive(Debug)]
        struct Context(&'static str, Error);
        impl std::fmt::Display for Context {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Context {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.1)
            }
        }
        let refused = || io::Error::new(io::ErrorKind::ConnectionRefused, "Connection refused");
        // Message and source() both carry the cause: said once.
        let bound = Error::io("binding tcp:127.0.0.1:1", refused());
        assert_eq!(
            say_once(&bound),
            "binding tcp:127.0.0.1:1: Connection refused"
        );
        // A context that repeats the inner context is dropped.
        let context = Context(
            "binding tcp:127.0.0.1:1",
            Error::io("binding tcp:127.0.0.1:1", refused()),
        );
        assert_eq!(
            say_once(&context),
            "binding tcp:127.0.0.1:1: Connection refused"
        );
        // A context that adds something is kept, and the cause follows.
        let context = Context("starting", Error::io("binding tcp:127.0.0.1:1", refused()));
        assert_eq!(
            say_once(&context),
            "starting: binding tcp:127.0.0.1:1: Connection refused"
        );
        // A message without its cause gets it.
        let context = Context("reading the secret", Error::Io(refused()));
        assert_eq!(
            say_once(&context),
            "reading the secret: I/O error: Connection refused"
        );
    }

    #[test]
    fn messages_name_the_field() {
        let e = Error::malformed("RenderRequest", "map", "not UTF-8");
        assert_eq!(
            e.to_string(),
            "malformed RenderRequest message, field `map`: not UTF-8"
        );
    }
}
