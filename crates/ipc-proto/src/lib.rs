//! ipc-proto: the tile protocol, framed, over TCP and Unix sockets.
//!
//! This crate is what makes the classic socket mistakes impossible for
//! tessera's clients and servers: it never assumes TCP delivers whole
//! messages, answers on the connection the request came in on, keeps one
//! connection open for many requests, sets `TCP_NODELAY`, and understands
//! half-close. It also speaks the legacy line protocol
//! (`16_58001_25480\n...stop`) of the original desktop client, and
//! renderd's binary socket protocol (what Apache's mod_tile speaks).
//!
//! The byte-exact specification, written so that a C# or Python client can
//! be built from it alone, is `docs/protocol.md` in the repository; the
//! crate's tests check its hex test vectors against this code.
//!
//! # Layout
//! - [`frame`]: the pure frame codec (length prefix, version, kind). It works
//!   on byte slices, never blocks and never touches a socket; an oversized
//!   length is an error before anything is allocated.
//! - [`message`]: [`Message`], every message of the tile service, and its
//!   hand-written big-endian encoding; the "exactly one final answer per
//!   tile" invariant.
//! - [`connection`]: [`Connection`], a buffered, blocking connection over
//!   any stream: whole frames across partial reads, one write per frame or
//!   per batch of queued frames, clean EOF vs. EOF mid-frame, half-close,
//!   and [`Connection::split`] into reader and writer halves.
//! - [`endpoint`]: [`Endpoint`] (`tcp:HOST:PORT`, `unix:PATH`, `HOST:PORT`),
//!   [`Listener`] and [`Stream`]; loopback by default, Unix sockets 0600 and
//!   stale-socket replacement.
//! - [`auth`]: the optional mutual HMAC-SHA256 challenge–response with a
//!   shared [`Secret`].
//! - [`legacy`]: the line protocol of the original C# client: an
//!   incremental [`LegacyDecoder`] and the port+1 callbacks.
//! - [`renderd`]: renderd's socket protocol (mod_tile's `struct protocol`,
//!   versions 1-3): a pure incremental [`RenderdDecoder`], the answers, and
//!   its listener.
//! - [`error`]: [`Error`] and [`Result`].
//!
//! # A client in five lines
//! ```no_run
//! use ipc_proto::{Capabilities, Endpoint, Hello, Message, PROTOCOL_VERSION};
//! # fn main() -> ipc_proto::Result<()> {
//! let mut conn = "tcp:localhost:7420".parse::<Endpoint>()?.connect_connection()?;
//! let hello = Hello { versions: vec![PROTOCOL_VERSION], client_name: "demo".into(),
//!                     capabilities: Capabilities::STORE_PATH };
//! let welcome = conn.client_handshake(None, &hello)?;
//! conn.send(&Message::Ping { token: 1 })?;
//! let pong = conn.read_message()?;
//! # let _ = (welcome, pong); Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod connection;
pub mod endpoint;
pub mod error;
pub mod frame;
pub mod legacy;
pub mod message;
pub mod renderd;

pub use auth::Secret;
pub use connection::{Connection, ConnectionReader, ConnectionWriter, Transport};
pub use endpoint::{Endpoint, ListenOptions, Listener, ListenerWaker, Stream};
pub use error::{say_once, Error, Result};
pub use frame::{Frame, FrameRef, DEFAULT_MAX_FRAME, FRAME_VERSION};
pub use legacy::{CallbackMessage, CallbackStyle, LegacyDecoder, LegacyEvent};
pub use message::{
    BatchDone, Capabilities, Delivery, Expire, ExpireDone, FailureKind, Hello, MapReload,
    MapReloadStatus, Message, Priority, RejectReason, Rejected, Reloaded, RenderRequest, TileDone,
    TileFailed, TilePayload, TileSet, ViewArea, ViewportUpdate, Welcome, MAX_EXPIRE_TILES,
    PROTOCOL_VERSION, SUPPORTED_VERSIONS,
};
pub use renderd::{RenderdCommand, RenderdDecoder, RenderdMessage, RenderdVersion};
