//! The messages of the tile service and their byte encoding.
//!
//! Each [`Message`] travels as one frame (see [`crate::frame`]); the frame's
//! kind byte says which message it is (see [`kind`]). Payloads are written by
//! hand, field by field, in the order the struct declares them:
//!
//! - integers are big-endian (`u8`, `u16`, `u32`, `u64`);
//! - `f64` is the IEEE 754 bit pattern as a big-endian `u64`;
//! - `bool` is one byte, `0` or `1` (anything else is an error);
//! - `Option<T>` is one byte, `0` (absent) or `1` followed by `T`;
//! - strings are a `u16` byte length then that many bytes of UTF-8 (checked);
//! - byte blobs (inline PNGs) are a `u32` byte length then the bytes;
//! - lists are a `u32` element count then the elements; the count is checked
//!   against the bytes left in the frame before anything is allocated;
//! - a tile is `z: u8, x: u32, y: u32` (9 bytes), checked with
//!   [`TileCoord::new`];
//! - enums are one byte (the values are listed with each enum).
//!
//! Decoding never panics and never trusts a length: every error is an
//! [`Error::Malformed`] naming the message and the field, an
//! [`Error::TrailingBytes`], or an [`Error::UnknownKind`].
//!
//! # Exactly one final answer
//!
//! For every [`RenderRequest`] the server sends **either** one [`Rejected`]
//! (and nothing else for that request id) **or**, for every distinct tile
//! the request names, exactly one of [`TileDone`], [`TileFailed`] or
//! [`Message::Cancelled`], followed by one [`BatchDone`] whose three counts
//! add up to the number of distinct tiles. A client can therefore keep a
//! counter per request and know when it is finished, even across cancels.

use tile_math::{LngLatBbox, TileCoord, TileRange};

use crate::error::{Error, Result};
use crate::frame::{self, FrameRef, DEFAULT_MAX_FRAME};

/// The protocol (message set) version this implementation speaks. It is
/// negotiated by [`Hello`] / [`Welcome`], and is separate from the frame
/// format's version byte ([`crate::frame::FRAME_VERSION`]).
pub const PROTOCOL_VERSION: u16 = 1;

/// Every protocol version this implementation can speak, oldest first.
pub const SUPPORTED_VERSIONS: &[u16] = &[PROTOCOL_VERSION];

/// Size of an authentication nonce and of an HMAC-SHA256 proof.
pub const NONCE_LEN: usize = 32;

/// Kind bytes of the messages. Gaps are reserved for future messages.
pub mod kind {
    /// [`super::Hello`]: client → server, first message after auth.
    pub const HELLO: u8 = 0x01;
    /// [`super::Welcome`]: server → client, answer to `Hello`.
    pub const WELCOME: u8 = 0x02;
    /// `Goodbye { reason }`: either side, before closing.
    pub const GOODBYE: u8 = 0x03;
    /// `Ping { token }`: either side.
    pub const PING: u8 = 0x04;
    /// `Pong { token }`: answer to `Ping` with the same token.
    pub const PONG: u8 = 0x05;
    /// `AuthNone`: server → client, first frame when no secret is configured.
    pub const AUTH_NONE: u8 = 0x08;
    /// `AuthChallenge { nonce }`: server → client, first frame with a secret.
    pub const AUTH_CHALLENGE: u8 = 0x09;
    /// `AuthResponse { client_nonce, proof }`: client → server.
    pub const AUTH_RESPONSE: u8 = 0x0A;
    /// `AuthOk { proof }`: server → client, the server's own proof.
    pub const AUTH_OK: u8 = 0x0B;
    /// `AuthFailed { reason }`: server → client, then the server closes.
    pub const AUTH_FAILED: u8 = 0x0C;
    /// [`super::RenderRequest`]: client → server.
    pub const RENDER_REQUEST: u8 = 0x10;
    /// [`super::ViewportUpdate`]: client → server.
    pub const VIEWPORT: u8 = 0x11;
    /// `Cancel { ids }`: client → server.
    pub const CANCEL: u8 = 0x12;
    /// `CancelOutsideViewport { keep_ring }`: client → server.
    pub const CANCEL_OUTSIDE_VIEWPORT: u8 = 0x13;
    /// `StatsRequest`: client → server.
    pub const STATS_REQUEST: u8 = 0x14;
    /// `ListMaps`: client → server.
    pub const LIST_MAPS: u8 = 0x15;
    /// `Reload`: client → server.
    pub const RELOAD: u8 = 0x16;
    /// [`super::Expire`]: client → server.
    pub const EXPIRE: u8 = 0x17;
    /// [`super::TileDone`]: server → client.
    pub const TILE_DONE: u8 = 0x20;
    /// [`super::TileFailed`]: server → client.
    pub const TILE_FAILED: u8 = 0x21;
    /// `Cancelled { request_id, tile }`: server → client.
    pub const CANCELLED: u8 = 0x22;
    /// [`super::Rejected`]: server → client.
    pub const REJECTED: u8 = 0x23;
    /// [`super::BatchDone`]: server → client.
    pub const BATCH_DONE: u8 = 0x24;
    /// `StatsReply { entries }`: server → client.
    pub const STATS_REPLY: u8 = 0x25;
    /// `MapList { maps }`: server → client.
    pub const MAP_LIST: u8 = 0x26;
    /// [`super::Reloaded`]: server → client.
    pub const RELOADED: u8 = 0x27;
    /// [`super::ExpireDone`]: server → client.
    pub const EXPIRE_DONE: u8 = 0x28;
}

/// Feature bits exchanged in [`Hello`] and [`Welcome`]. Unknown bits are
/// ignored, so a newer peer can announce more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(pub u64);

impl Capabilities {
    /// No capabilities.
    pub const NONE: Capabilities = Capabilities(0);
    /// Tiles can be delivered as inline PNG bytes ([`Delivery::InlinePng`]).
    pub const INLINE_PNG: Capabilities = Capabilities(1 << 0);
    /// Tiles can be delivered as paths in the server's tile store.
    pub const STORE_PATH: Capabilities = Capabilities(1 << 1);
    /// [`ViewportUpdate`] and `CancelOutsideViewport` are understood.
    pub const VIEWPORT: Capabilities = Capabilities(1 << 2);
    /// `StatsRequest` is answered.
    pub const STATS: Capabilities = Capabilities(1 << 3);
    /// `ListMaps` is answered with `MapList`.
    pub const LIST_MAPS: Capabilities = Capabilities(1 << 4);
    /// `Reload` is answered with [`Reloaded`].
    pub const RELOAD: Capabilities = Capabilities(1 << 5);
    /// [`Expire`] is answered with [`ExpireDone`].
    pub const EXPIRE: Capabilities = Capabilities(1 << 6);

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// The bits both sides have.
    pub const fn intersection(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 & other.0)
    }
}

impl std::ops::BitOr for Capabilities {
    type Output = Capabilities;
    fn bitor(self, rhs: Self) -> Self {
        Capabilities(self.0 | rhs.0)
    }
}

/// Client → server, the first message after authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Protocol versions the client speaks (list of `u16`).
    pub versions: Vec<u16>,
    /// A name for logs, e.g. `"tile-client 0.1"`.
    pub client_name: String,
    /// What the client wants to use.
    pub capabilities: Capabilities,
}

impl Hello {
    /// The highest version both the client and `supported` speak.
    pub fn negotiate(&self, supported: &[u16]) -> Result<u16> {
        self.versions
            .iter()
            .copied()
            .filter(|v| supported.contains(v))
            .max()
            .ok_or_else(|| Error::NoCommonVersion {
                offered: self.versions.clone(),
                supported: supported.to_vec(),
            })
    }
}

/// Server → client, the answer to [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The version the server chose from the client's list.
    pub version: u16,
    /// A name for logs.
    pub server_name: String,
    /// What the server offers (its own bits, not an intersection).
    pub capabilities: Capabilities,
    /// The largest frame length the server accepts; clients must not send
    /// longer frames.
    pub max_frame: u32,
}

/// Which tiles a request is for.
#[derive(Debug, Clone, PartialEq)]
pub enum TileSet {
    /// Tag 0: one tile.
    One(TileCoord),
    /// Tag 1: a list of tiles (duplicates count once).
    List(Vec<TileCoord>),
    /// Tag 2: every tile covering a bbox, over an inclusive zoom range.
    Bbox {
        /// The area, degrees; `west > east` crosses the antimeridian.
        bbox: LngLatBbox,
        /// First zoom.
        min_zoom: u8,
        /// Last zoom (inclusive), at least `min_zoom`, at most 30.
        max_zoom: u8,
    },
}

/// How urgently a tile is wanted. Declared highest first: the derived order
/// sorts the most urgent class first (`Viewport < Neighbour < ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// 0: on screen now.
    Viewport = 0,
    /// 1: just around the screen (prefetch).
    Neighbour = 1,
    /// 2: asked for explicitly (a command-line render).
    Explicit = 2,
    /// 3: bulk seeding.
    Bulk = 3,
    /// 4: re-rendering tiles whose data changed.
    Dirty = 4,
}

impl Priority {
    /// Every class, highest first.
    pub const ALL: [Priority; 5] = [
        Priority::Viewport,
        Priority::Neighbour,
        Priority::Explicit,
        Priority::Bulk,
        Priority::Dirty,
    ];

    fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get(usize::from(v)).copied()
    }
}

/// How a finished tile is handed to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// 0: the path of the PNG in the server's tile store (same machine).
    StorePath = 0,
    /// 1: the PNG bytes inside the [`TileDone`] message.
    InlinePng = 1,
}

/// Client → server: render some tiles.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderRequest {
    /// Chosen by the client, unique among its open requests; every answer
    /// carries it.
    pub request_id: u64,
    /// Which map (style) to render.
    pub map: String,
    /// Scheduling class.
    pub priority: Priority,
    /// Path or inline bytes.
    pub delivery: Delivery,
    /// Render even if a fresh tile is cached.
    pub force: bool,
    /// Give up (with [`FailureKind::Timeout`]) if a tile is not done within
    /// this many milliseconds of the request's arrival.
    pub deadline_ms: Option<u32>,
    /// The tiles.
    pub tiles: TileSet,
}

/// The area a client is looking at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ViewArea {
    /// Tag 0: a bbox in degrees.
    Bbox(LngLatBbox),
    /// Tag 1: a rectangle of tiles from the north-west to the south-east
    /// corner (both inclusive; `se.x < nw.x` wraps the antimeridian).
    Tiles {
        /// North-west corner.
        nw: TileCoord,
        /// South-east corner.
        se: TileCoord,
    },
}

/// Client → server: the screen moved. Queued work is re-ranked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewportUpdate {
    /// The zoom shown. For [`ViewArea::Tiles`] it equals the tiles' zoom.
    pub zoom: u8,
    /// What is on screen.
    pub area: ViewArea,
}

impl ViewportUpdate {
    /// The same viewport as tile-math's [`tile_math::Viewport`].
    pub fn to_viewport(&self) -> Result<tile_math::Viewport> {
        let bad = |e: tile_math::TileMathError| Error::malformed("Viewport", "area", e.to_string());
        match self.area {
            ViewArea::Bbox(bbox) => tile_math::Viewport::from_bbox(bbox, self.zoom).map_err(bad),
            ViewArea::Tiles { nw, se } => Ok(tile_math::Viewport::from_tile_range(
                TileRange::new(nw, se).map_err(bad)?,
            )),
        }
    }
}

/// How a finished tile reaches the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TilePayload {
    /// Tag 0: path in the server's tile store (`u16`-prefixed string).
    Path(String),
    /// Tag 1: PNG bytes (`u32`-prefixed blob).
    Png(Vec<u8>),
}

/// Server → client: a tile is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileDone {
    /// The request it belongs to.
    pub request_id: u64,
    /// The tile.
    pub tile: TileCoord,
    /// Milliseconds spent rendering (0 when served from cache).
    pub render_ms: u32,
    /// Whether it came from the cache rather than a fresh render.
    pub cached: bool,
    /// Path or bytes, as the request's [`Delivery`] asked.
    pub payload: TilePayload,
}

/// Why a tile failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// 0: the renderer failed (style or drawing error).
    Render = 0,
    /// 1: a data source could not be read.
    DataSource = 1,
    /// 2: the request's deadline passed.
    Timeout = 2,
    /// 3: the tile could not be stored or read back.
    Storage = 3,
    /// 4: the map is unknown or the tile is outside the map's zooms.
    InvalidTile = 4,
    /// 5: a bug in the server.
    Internal = 5,
    /// 6: the queue was full and the tile was pushed out by more urgent
    /// work before it was rendered; ask again later.
    Busy = 6,
}

impl FailureKind {
    /// Every kind, by wire value.
    pub const ALL: [FailureKind; 7] = [
        FailureKind::Render,
        FailureKind::DataSource,
        FailureKind::Timeout,
        FailureKind::Storage,
        FailureKind::InvalidTile,
        FailureKind::Internal,
        FailureKind::Busy,
    ];

    fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get(usize::from(v)).copied()
    }
}

/// Server → client: a tile could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileFailed {
    /// The request it belongs to.
    pub request_id: u64,
    /// The tile.
    pub tile: TileCoord,
    /// Category, for the client to decide whether to retry.
    pub kind: FailureKind,
    /// Human-readable detail.
    pub message: String,
}

/// Why a whole request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// 0: the queue is full ("busy"); retry after the hint.
    QueueFull = 0,
    /// 1: the server is shutting down.
    ShuttingDown = 1,
    /// 2: no map of that name.
    UnknownMap = 2,
    /// 3: the request names more tiles than the server accepts at once.
    TooManyTiles = 3,
    /// 4: the request is invalid (e.g. a delivery the server lacks).
    InvalidRequest = 4,
    /// 5: reserved. Version 1 servers never send it: a request id that is
    /// still open is a protocol error, answered with `Goodbye` and a close,
    /// so a `Rejected` always ends the request it names.
    DuplicateRequestId = 5,
}

impl RejectReason {
    /// Every reason, by wire value.
    pub const ALL: [RejectReason; 6] = [
        RejectReason::QueueFull,
        RejectReason::ShuttingDown,
        RejectReason::UnknownMap,
        RejectReason::TooManyTiles,
        RejectReason::InvalidRequest,
        RejectReason::DuplicateRequestId,
    ];

    fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get(usize::from(v)).copied()
    }
}

/// Server → client: a whole request was refused; it is the final answer for
/// every one of its tiles and no `BatchDone` follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The refused request.
    pub request_id: u64,
    /// Why.
    pub reason: RejectReason,
    /// When it makes sense to try again ([`RejectReason::QueueFull`]).
    pub retry_after_ms: Option<u32>,
    /// Human-readable detail.
    pub message: String,
}

/// What a reload did to one map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapReloadStatus {
    /// 0: its files and settings are as they were; its tiles stay fresh.
    Unchanged = 0,
    /// 1: loaded again; its older tiles are stale.
    Reloaded = 1,
    /// 2: new in the configuration, now served.
    Added = 2,
    /// 3: no longer in the configuration, no longer served.
    Removed = 3,
    /// 4: its new style or data did not load: the old one still serves
    /// (or, for a new map, it is not served); the detail says why.
    Failed = 4,
}

impl MapReloadStatus {
    /// Every status, by code.
    pub const ALL: [MapReloadStatus; 5] = [
        MapReloadStatus::Unchanged,
        MapReloadStatus::Reloaded,
        MapReloadStatus::Added,
        MapReloadStatus::Removed,
        MapReloadStatus::Failed,
    ];

    /// A word for logs and the command line.
    pub fn name(self) -> &'static str {
        match self {
            MapReloadStatus::Unchanged => "unchanged",
            MapReloadStatus::Reloaded => "reloaded",
            MapReloadStatus::Added => "added",
            MapReloadStatus::Removed => "removed",
            MapReloadStatus::Failed => "failed",
        }
    }
}

/// One map in a [`Reloaded`] answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapReload {
    /// The map's name.
    pub map: String,
    /// What happened to it.
    pub status: MapReloadStatus,
    /// Why it failed (empty otherwise).
    pub detail: String,
}

/// Server → client: the answer to `Reload`, sent once the new maps serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Why nothing was reloaded (the configuration did not read or check,
    /// or the server has nothing to reload from); empty when it was.
    pub error: String,
    /// Each map of the old and the new configuration.
    pub maps: Vec<MapReload>,
    /// Settings that changed but only take effect at a restart
    /// (`server.listen`, `render.threads`, ...).
    pub restart_needed: Vec<String>,
}

/// Most tiles one [`Expire`] may carry; a server refuses more with
/// [`RejectReason::TooManyTiles`]. It bounds the store work one message
/// asks for, whatever the frame limit; 65,536 tiles take 589,824 bytes,
/// inside the default frame limit.
pub const MAX_EXPIRE_TILES: usize = 65_536;

/// Client → server: tiles whose data changed (an expire list, already
/// expanded to the zooms wanted). The server acts on every metatile of its
/// own size that overlaps a block, if the store holds any of its tiles:
/// from `delete_from` up it deletes them, otherwise it marks them stale,
/// and below `touch_from` it also queues their re-render at
/// [`Priority::Dirty`]. Answered with one [`ExpireDone`] or one
/// [`Rejected`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expire {
    /// Chosen by the client, unique among its open requests; the answer
    /// carries it.
    pub request_id: u64,
    /// Which map; empty: the default map, whose high-DPI variant is
    /// expired with it, as with any map named without `@2x`.
    pub map: String,
    /// From this zoom up, stored tiles are marked stale but not queued
    /// for a re-render; `None`: every zoom below `delete_from` is queued.
    pub touch_from: Option<u8>,
    /// From this zoom up, stored tiles are deleted; `None`: none are.
    pub delete_from: Option<u8>,
    /// Each tile stands for the `block_size`×`block_size` block of tiles,
    /// aligned on multiples of it, that holds it (1 to 64; 8 is a
    /// renderd metatile), so a client that does not know the server's
    /// metatile size can still send one tile per block.
    pub block_size: u8,
    /// The tiles, at any zooms (at most [`MAX_EXPIRE_TILES`]).
    pub tiles: Vec<TileCoord>,
}

/// Server → client: what one [`Expire`] did, counted in metatiles of the
/// server's size. Each metatile is counted once, under the first that
/// applies: failed, deleted, touched, queued, absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpireDone {
    /// The `Expire` it answers.
    pub request_id: u64,
    /// Metatiles whose stored tiles were deleted.
    pub deleted: u32,
    /// Metatiles whose stored tiles were marked stale (`touch_from` and
    /// up), not queued.
    pub touched: u32,
    /// Metatiles marked stale and queued for a re-render at `Dirty`
    /// priority (below `touch_from`). A full queue drops the re-render;
    /// the tiles stay stale and are drawn again when next asked for.
    pub queued: u32,
    /// Metatiles of which the store held no tile: nothing done.
    pub absent: u32,
    /// Metatiles the store could not act on (a file that could not be
    /// deleted or re-dated).
    pub failed: u32,
    /// Why the first of them failed (empty when none did).
    pub error: String,
}

/// Server → client: every tile of a request has had its final answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchDone {
    /// The finished request.
    pub request_id: u64,
    /// Tiles answered with `TileDone`.
    pub done: u32,
    /// Tiles answered with `TileFailed`.
    pub failed: u32,
    /// Tiles answered with `Cancelled`.
    pub cancelled: u32,
}

/// Every message of protocol version 1.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// See [`Hello`].
    Hello(Hello),
    /// See [`Welcome`].
    Welcome(Welcome),
    /// Either side, before it closes on purpose.
    Goodbye {
        /// Why, for logs.
        reason: String,
    },
    /// Either side; answered with `Pong` carrying the same token.
    Ping {
        /// Echoed back.
        token: u64,
    },
    /// Answer to `Ping`.
    Pong {
        /// The ping's token.
        token: u64,
    },
    /// Server's first frame when it has no shared secret.
    AuthNone,
    /// Server's first frame when it has a shared secret.
    AuthChallenge {
        /// 32 random bytes.
        nonce: [u8; NONCE_LEN],
    },
    /// Client's answer to `AuthChallenge`.
    AuthResponse {
        /// 32 random bytes chosen by the client.
        client_nonce: [u8; NONCE_LEN],
        /// HMAC-SHA256 proof (see [`crate::auth`]).
        proof: [u8; NONCE_LEN],
    },
    /// Server accepted the client and proves it knows the secret too.
    AuthOk {
        /// HMAC-SHA256 proof (see [`crate::auth`]).
        proof: [u8; NONCE_LEN],
    },
    /// Server refused the client; it closes the connection after this.
    AuthFailed {
        /// Why, for logs (never secret material).
        reason: String,
    },
    /// See [`RenderRequest`].
    RenderRequest(RenderRequest),
    /// See [`ViewportUpdate`].
    Viewport(ViewportUpdate),
    /// Cancel requests by id. Tiles already finished keep their answer; the
    /// others get `Cancelled`.
    Cancel {
        /// Request ids.
        ids: Vec<u64>,
    },
    /// Cancel every queued tile of this connection that is farther than
    /// `keep_ring` tiles outside the last `Viewport` (or at another zoom).
    CancelOutsideViewport {
        /// 0 keeps only the tiles on screen, 1 also the ring around it, ...
        keep_ring: u32,
    },
    /// Ask for server counters.
    StatsRequest,
    /// Ask which maps the server has; answered with `MapList`.
    ListMaps,
    /// See [`TileDone`].
    TileDone(TileDone),
    /// See [`TileFailed`].
    TileFailed(TileFailed),
    /// A tile was cancelled before it was finished.
    Cancelled {
        /// The request it belonged to.
        request_id: u64,
        /// The tile.
        tile: TileCoord,
    },
    /// See [`Rejected`].
    Rejected(Rejected),
    /// See [`BatchDone`].
    BatchDone(BatchDone),
    /// Server counters as `(name, value)` pairs, e.g. `("queue_len", 12)`,
    /// `("render_ms_p99", 85)`. Names are ASCII `snake_case`.
    StatsReply {
        /// The counters.
        entries: Vec<(String, u64)>,
    },
    /// The names of the maps the server has, the default map (the one an
    /// empty `RenderRequest.map` means) first.
    MapList {
        /// Map names.
        maps: Vec<String>,
    },
    /// Reload the configuration and the styles; answered with `Reloaded`.
    Reload,
    /// See [`Reloaded`].
    Reloaded(Reloaded),
    /// See [`Expire`].
    Expire(Expire),
    /// See [`ExpireDone`].
    ExpireDone(ExpireDone),
}

/// The name of the message with this kind byte, if there is one.
pub fn kind_name(kind: u8) -> Option<&'static str> {
    Some(match kind {
        kind::HELLO => "Hello",
        kind::WELCOME => "Welcome",
        kind::GOODBYE => "Goodbye",
        kind::PING => "Ping",
        kind::PONG => "Pong",
        kind::AUTH_NONE => "AuthNone",
        kind::AUTH_CHALLENGE => "AuthChallenge",
        kind::AUTH_RESPONSE => "AuthResponse",
        kind::AUTH_OK => "AuthOk",
        kind::AUTH_FAILED => "AuthFailed",
        kind::RENDER_REQUEST => "RenderRequest",
        kind::VIEWPORT => "Viewport",
        kind::CANCEL => "Cancel",
        kind::CANCEL_OUTSIDE_VIEWPORT => "CancelOutsideViewport",
        kind::STATS_REQUEST => "StatsRequest",
        kind::LIST_MAPS => "ListMaps",
        kind::TILE_DONE => "TileDone",
        kind::TILE_FAILED => "TileFailed",
        kind::CANCELLED => "Cancelled",
        kind::REJECTED => "Rejected",
        kind::BATCH_DONE => "BatchDone",
        kind::STATS_REPLY => "StatsReply",
        kind::MAP_LIST => "MapList",
        kind::RELOAD => "Reload",
        kind::RELOADED => "Reloaded",
        kind::EXPIRE => "Expire",
        kind::EXPIRE_DONE => "ExpireDone",
        _ => return None,
    })
}

impl Message {
    /// The frame kind byte of this message.
    pub fn kind(&self) -> u8 {
        match self {
            Message::Hello(_) => kind::HELLO,
            Message::Welcome(_) => kind::WELCOME,
            Message::Goodbye { .. } => kind::GOODBYE,
            Message::Ping { .. } => kind::PING,
            Message::Pong { .. } => kind::PONG,
            Message::AuthNone => kind::AUTH_NONE,
            Message::AuthChallenge { .. } => kind::AUTH_CHALLENGE,
            Message::AuthResponse { .. } => kind::AUTH_RESPONSE,
            Message::AuthOk { .. } => kind::AUTH_OK,
            Message::AuthFailed { .. } => kind::AUTH_FAILED,
            Message::RenderRequest(_) => kind::RENDER_REQUEST,
            Message::Viewport(_) => kind::VIEWPORT,
            Message::Cancel { .. } => kind::CANCEL,
            Message::CancelOutsideViewport { .. } => kind::CANCEL_OUTSIDE_VIEWPORT,
            Message::StatsRequest => kind::STATS_REQUEST,
            Message::ListMaps => kind::LIST_MAPS,
            Message::TileDone(_) => kind::TILE_DONE,
            Message::TileFailed(_) => kind::TILE_FAILED,
            Message::Cancelled { .. } => kind::CANCELLED,
            Message::Rejected(_) => kind::REJECTED,
            Message::BatchDone(_) => kind::BATCH_DONE,
            Message::StatsReply { .. } => kind::STATS_REPLY,
            Message::MapList { .. } => kind::MAP_LIST,
            Message::Reload => kind::RELOAD,
            Message::Reloaded(_) => kind::RELOADED,
            Message::Expire(_) => kind::EXPIRE,
            Message::ExpireDone(_) => kind::EXPIRE_DONE,
        }
    }

    /// The message's name, e.g. `"TileDone"`.
    pub fn name(&self) -> &'static str {
        kind_name(self.kind()).unwrap_or("?")
    }

    /// Appends this message as one whole frame to `out`.
    ///
    /// Fails, leaving `out` as it was, if the frame would be longer than
    /// `max_frame` or a field cannot be encoded (a string over 65535 bytes).
    pub fn encode(&self, out: &mut Vec<u8>, max_frame: usize) -> Result<()> {
        let start = frame::begin(out, self.kind());
        if let Err(e) = self.encode_payload(out) {
            out.truncate(start);
            return Err(e);
        }
        frame::finish(out, start, max_frame)
    }

    /// This message as one frame in a new vector, limited to
    /// [`DEFAULT_MAX_FRAME`].
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.encode(&mut out, DEFAULT_MAX_FRAME)?;
        Ok(out)
    }

    /// Decodes exactly one whole frame from `bytes` (no more, no less).
    pub fn from_bytes(bytes: &[u8], max_frame: usize) -> Result<Message> {
        match frame::decode_ref(bytes, max_frame)? {
            Some((f, used)) if used == bytes.len() => Message::decode(f),
            Some((_, used)) => Err(Error::TrailingBytes {
                message: "frame",
                extra: bytes.len() - used,
            }),
            None => Err(Error::ConnectionResetMidFrame {
                buffered: bytes.len(),
            }),
        }
    }

    fn encode_payload(&self, out: &mut Vec<u8>) -> Result<()> {
        let name = self.name();
        let mut w = Writer { out, message: name };
        match self {
            Message::Hello(h) => {
                w.list_len(h.versions.len(), "versions")?;
                for v in &h.versions {
                    w.u16(*v);
                }
                w.str(&h.client_name, "client_name")?;
                w.u64(h.capabilities.0);
            }
            Message::Welcome(m) => {
                w.u16(m.version);
                w.str(&m.server_name, "server_name")?;
                w.u64(m.capabilities.0);
                w.u32(m.max_frame);
            }
            Message::Goodbye { reason } | Message::AuthFailed { reason } => {
                w.str(reason, "reason")?;
            }
            Message::Ping { token } | Message::Pong { token } => w.u64(*token),
            Message::AuthNone | Message::StatsRequest | Message::ListMaps | Message::Reload => {}
            Message::AuthChallenge { nonce } => w.bytes(nonce),
            Message::AuthResponse {
                client_nonce,
                proof,
            } => {
                w.bytes(client_nonce);
                w.bytes(proof);
            }
            Message::AuthOk { proof } => w.bytes(proof),
            Message::RenderRequest(r) => {
                w.u64(r.request_id);
                w.str(&r.map, "map")?;
                w.u8(r.priority as u8);
                w.u8(r.delivery as u8);
                w.bool(r.force);
                w.opt_u32(r.deadline_ms);
                match &r.tiles {
                    TileSet::One(t) => {
                        w.u8(0);
                        w.tile(*t);
                    }
                    TileSet::List(list) => {
                        w.u8(1);
                        w.list_len(list.len(), "tiles")?;
                        for t in list {
                            w.tile(*t);
                        }
                    }
                    TileSet::Bbox {
                        bbox,
                        min_zoom,
                        max_zoom,
                    } => {
                        w.u8(2);
                        w.bbox(bbox);
                        w.u8(*min_zoom);
                        w.u8(*max_zoom);
                    }
                }
            }
            Message::Viewport(v) => {
                w.u8(v.zoom);
                match &v.area {
                    ViewArea::Bbox(b) => {
                        w.u8(0);
                        w.bbox(b);
                    }
                    ViewArea::Tiles { nw, se } => {
                        w.u8(1);
                        w.tile(*nw);
                        w.tile(*se);
                    }
                }
            }
            Message::Cancel { ids } => {
                w.list_len(ids.len(), "ids")?;
                for id in ids {
                    w.u64(*id);
                }
            }
            Message::CancelOutsideViewport { keep_ring } => w.u32(*keep_ring),
            Message::TileDone(d) => {
                w.u64(d.request_id);
                w.tile(d.tile);
                w.u32(d.render_ms);
                w.bool(d.cached);
                match &d.payload {
                    TilePayload::Path(p) => {
                        w.u8(0);
                        w.str(p, "payload.path")?;
                    }
                    TilePayload::Png(png) => {
                        w.u8(1);
                        w.list_len(png.len(), "payload.png")?;
                        w.bytes(png);
                    }
                }
            }
            Message::TileFailed(f) => {
                w.u64(f.request_id);
                w.tile(f.tile);
                w.u8(f.kind as u8);
                w.str(&f.message, "message")?;
            }
            Message::Cancelled { request_id, tile } => {
                w.u64(*request_id);
                w.tile(*tile);
            }
            Message::Rejected(r) => {
                w.u64(r.request_id);
                w.u8(r.reason as u8);
                w.opt_u32(r.retry_after_ms);
                w.str(&r.message, "message")?;
            }
            Message::BatchDone(b) => {
                w.u64(b.request_id);
                w.u32(b.done);
                w.u32(b.failed);
                w.u32(b.cancelled);
            }
            Message::StatsReply { entries } => {
                w.list_len(entries.len(), "entries")?;
                for (k, v) in entries {
                    w.str(k, "entries.key")?;
                    w.u64(*v);
                }
            }
            Message::MapList { maps } => {
                w.list_len(maps.len(), "maps")?;
                for name in maps {
                    w.str(name, "maps")?;
                }
            }
            Message::Reloaded(r) => {
                w.str(&r.error, "error")?;
                w.list_len(r.maps.len(), "maps")?;
                for m in &r.maps {
                    w.str(&m.map, "maps.map")?;
                    w.u8(m.status as u8);
                    w.str(&m.detail, "maps.detail")?;
                }
                w.list_len(r.restart_needed.len(), "restart_needed")?;
                for key in &r.restart_needed {
                    w.str(key, "restart_needed")?;
                }
            }
            Message::Expire(e) => {
                w.u64(e.request_id);
                w.str(&e.map, "map")?;
                w.opt_u8(e.touch_from);
                w.opt_u8(e.delete_from);
                w.u8(e.block_size);
                w.list_len(e.tiles.len(), "tiles")?;
                for t in &e.tiles {
                    w.tile(*t);
                }
            }
            Message::ExpireDone(d) => {
                w.u64(d.request_id);
                w.u32(d.deleted);
                w.u32(d.touched);
                w.u32(d.queued);
                w.u32(d.absent);
                w.u32(d.failed);
                w.str(&d.error, "error")?;
            }
        }
        Ok(())
    }

    /// Decodes the message carried by `frame`.
    pub fn decode(frame: FrameRef<'_>) -> Result<Message> {
        let name = kind_name(frame.kind).ok_or(Error::UnknownKind { kind: frame.kind })?;
        let mut r = Reader {
            buf: frame.payload,
            pos: 0,
            message: name,
        };
        let msg = match frame.kind {
            kind::HELLO => {
                let n = r.count("versions", 2)?;
                let mut versions = Vec::with_capacity(n);
                for _ in 0..n {
                    versions.push(r.u16("versions")?);
                }
                Message::Hello(Hello {
                    versions,
                    client_name: r.str("client_name")?,
                    capabilities: Capabilities(r.u64("capabilities")?),
                })
            }
            kind::WELCOME => Message::Welcome(Welcome {
                version: r.u16("version")?,
                server_name: r.str("server_name")?,
                capabilities: Capabilities(r.u64("capabilities")?),
                max_frame: r.u32("max_frame")?,
            }),
            kind::GOODBYE => Message::Goodbye {
                reason: r.str("reason")?,
            },
            kind::PING => Message::Ping {
                token: r.u64("token")?,
            },
            kind::PONG => Message::Pong {
                token: r.u64("token")?,
            },
            kind::AUTH_NONE => Message::AuthNone,
            kind::AUTH_CHALLENGE => Message::AuthChallenge {
                nonce: r.array("nonce")?,
            },
            kind::AUTH_RESPONSE => Message::AuthResponse {
                client_nonce: r.array("client_nonce")?,
                proof: r.array("proof")?,
            },
            kind::AUTH_OK => Message::AuthOk {
                proof: r.array("proof")?,
            },
            kind::AUTH_FAILED => Message::AuthFailed {
                reason: r.str("reason")?,
            },
            kind::RENDER_REQUEST => Message::RenderRequest(decode_render_request(&mut r)?),
            kind::VIEWPORT => Message::Viewport(decode_viewport(&mut r)?),
            kind::CANCEL => {
                let n = r.count("ids", 8)?;
                let mut ids = Vec::with_capacity(n);
                for _ in 0..n {
                    ids.push(r.u64("ids")?);
                }
                Message::Cancel { ids }
            }
            kind::CANCEL_OUTSIDE_VIEWPORT => Message::CancelOutsideViewport {
                keep_ring: r.u32("keep_ring")?,
            },
            kind::STATS_REQUEST => Message::StatsRequest,
            kind::LIST_MAPS => Message::ListMaps,
            kind::RELOAD => Message::Reload,
            kind::RELOADED => {
                let error = r.str("error")?;
                // A map is at least two string lengths and a status byte.
                let n = r.count("maps", 5)?;
                let mut maps = Vec::with_capacity(n);
                for i in 0..n {
                    let map = r.str("maps.map").map_err(|e| at_index(e, i))?;
                    let code = r.u8("maps.status").map_err(|e| at_index(e, i))?;
                    let status = MapReloadStatus::ALL
                        .get(usize::from(code))
                        .copied()
                        .ok_or_else(|| r.bad("maps.status", format!("unknown status {code}")))?;
                    let detail = r.str("maps.detail").map_err(|e| at_index(e, i))?;
                    maps.push(MapReload {
                        map,
                        status,
                        detail,
                    });
                }
                let n = r.count("restart_needed", 2)?;
                let mut restart_needed = Vec::with_capacity(n);
                for i in 0..n {
                    restart_needed.push(r.str("restart_needed").map_err(|e| at_index(e, i))?);
                }
                Message::Reloaded(Reloaded {
                    error,
                    maps,
                    restart_needed,
                })
            }
            kind::EXPIRE => Message::Expire(decode_expire(&mut r)?),
            kind::EXPIRE_DONE => Message::ExpireDone(ExpireDone {
                request_id: r.u64("request_id")?,
                deleted: r.u32("deleted")?,
                touched: r.u32("touched")?,
                queued: r.u32("queued")?,
                absent: r.u32("absent")?,
                failed: r.u32("failed")?,
                error: r.str("error")?,
            }),
            kind::TILE_DONE => Message::TileDone(TileDone {
                request_id: r.u64("request_id")?,
                tile: r.tile("tile")?,
                render_ms: r.u32("render_ms")?,
                cached: r.bool("cached")?,
                payload: match r.u8("payload.tag")? {
                    0 => TilePayload::Path(r.str("payload.path")?),
                    1 => TilePayload::Png(r.blob("payload.png")?),
                    t => return Err(r.bad("payload.tag", format!("unknown payload tag {t}"))),
                },
            }),
            kind::TILE_FAILED => Message::TileFailed(TileFailed {
                request_id: r.u64("request_id")?,
                tile: r.tile("tile")?,
                kind: {
                    let v = r.u8("kind")?;
                    FailureKind::from_u8(v)
                        .ok_or_else(|| r.bad("kind", format!("unknown failure kind {v}")))?
                },
                message: r.str("message")?,
            }),
            kind::CANCELLED => Message::Cancelled {
                request_id: r.u64("request_id")?,
                tile: r.tile("tile")?,
            },
            kind::REJECTED => Message::Rejected(Rejected {
                request_id: r.u64("request_id")?,
                reason: {
                    let v = r.u8("reason")?;
                    RejectReason::from_u8(v)
                        .ok_or_else(|| r.bad("reason", format!("unknown reject reason {v}")))?
                },
                retry_after_ms: r.opt_u32("retry_after_ms")?,
                message: r.str("message")?,
            }),
            kind::BATCH_DONE => Message::BatchDone(BatchDone {
                request_id: r.u64("request_id")?,
                done: r.u32("done")?,
                failed: r.u32("failed")?,
                cancelled: r.u32("cancelled")?,
            }),
            kind::STATS_REPLY => {
                let n = r.count("entries", 10)?;
                let mut entries = Vec::with_capacity(n);
                for i in 0..n {
                    let k = r.str("entries.key").map_err(|e| at_index(e, i))?;
                    let v = r.u64("entries.value").map_err(|e| at_index(e, i))?;
                    entries.push((k, v));
                }
                Message::StatsReply { entries }
            }
            kind::MAP_LIST => {
                let n = r.count("maps", 2)?;
                let mut maps = Vec::with_capacity(n);
                for i in 0..n {
                    maps.push(r.str("maps").map_err(|e| at_index(e, i))?);
                }
                Message::MapList { maps }
            }
            other => return Err(Error::UnknownKind { kind: other }),
        };
        r.finish()?;
        Ok(msg)
    }
}

fn decode_render_request(r: &mut Reader<'_>) -> Result<RenderRequest> {
    let request_id = r.u64("request_id")?;
    let map = r.str("map")?;
    let priority = {
        let v = r.u8("priority")?;
        Priority::from_u8(v).ok_or_else(|| r.bad("priority", format!("unknown priority {v}")))?
    };
    let delivery = match r.u8("delivery")? {
        0 => Delivery::StorePath,
        1 => Delivery::InlinePng,
        v => return Err(r.bad("delivery", format!("unknown delivery {v}"))),
    };
    let force = r.bool("force")?;
    let deadline_ms = r.opt_u32("deadline_ms")?;
    let tiles = match r.u8("tiles.tag")? {
        0 => TileSet::One(r.tile("tiles.one")?),
        1 => {
            let n = r.count("tiles.list", 9)?;
            let mut list = Vec::with_capacity(n);
            for i in 0..n {
                list.push(r.tile("tiles.list").map_err(|e| at_index(e, i))?);
            }
            TileSet::List(list)
        }
        2 => {
            let bbox = r.bbox("tiles.bbox")?;
            let min_zoom = r.u8("tiles.min_zoom")?;
            let max_zoom = r.u8("tiles.max_zoom")?;
            if max_zoom > tile_math::MAX_ZOOM {
                return Err(r.bad(
                    "tiles.max_zoom",
                    format!("zoom {max_zoom} is above {}", tile_math::MAX_ZOOM),
                ));
            }
            if min_zoom > max_zoom {
                return Err(r.bad(
                    "tiles.min_zoom",
                    format!("min_zoom {min_zoom} is above max_zoom {max_zoom}"),
                ));
            }
            TileSet::Bbox {
                bbox,
                min_zoom,
                max_zoom,
            }
        }
        t => return Err(r.bad("tiles.tag", format!("unknown tile set tag {t}"))),
    };
    Ok(RenderRequest {
        request_id,
        map,
        priority,
        delivery,
        force,
        deadline_ms,
        tiles,
    })
}

fn decode_expire(r: &mut Reader<'_>) -> Result<Expire> {
    let request_id = r.u64("request_id")?;
    let map = r.str("map")?;
    let mut zoom = |field: &str| -> Result<Option<u8>> {
        let zoom = r.opt_u8(field)?;
        match zoom {
            Some(z) if z > tile_math::MAX_ZOOM => {
                Err(r.bad(field, format!("zoom {z} is above {}", tile_math::MAX_ZOOM)))
            }
            _ => Ok(zoom),
        }
    };
    let touch_from = zoom("touch_from")?;
    let delete_from = zoom("delete_from")?;
    let block_size = r.u8("block_size")?;
    if !(1..=64).contains(&block_size) {
        return Err(r.bad(
            "block_size",
            format!("block size {block_size} is not 1 to 64"),
        ));
    }
    let n = r.count("tiles", 9)?;
    let mut tiles = Vec::with_capacity(n);
    for i in 0..n {
        tiles.push(r.tile("tiles").map_err(|e| at_index(e, i))?);
    }
    Ok(Expire {
        request_id,
        map,
        touch_from,
        delete_from,
        block_size,
        tiles,
    })
}

fn decode_viewport(r: &mut Reader<'_>) -> Result<ViewportUpdate> {
    let zoom = r.u8("zoom")?;
    if zoom > tile_math::MAX_ZOOM {
        return Err(r.bad(
            "zoom",
            format!("zoom {zoom} is above {}", tile_math::MAX_ZOOM),
        ));
    }
    let area = match r.u8("area.tag")? {
        0 => ViewArea::Bbox(r.bbox("area.bbox")?),
        1 => {
            let nw = r.tile("area.nw")?;
            let se = r.tile("area.se")?;
            if nw.z() != zoom || se.z() != zoom {
                return Err(r.bad("area", "corner tiles are not at the viewport's zoom"));
            }
            TileRange::new(nw, se).map_err(|e| r.bad("area", e.to_string()))?;
            ViewArea::Tiles { nw, se }
        }
        t => return Err(r.bad("area.tag", format!("unknown area tag {t}"))),
    };
    Ok(ViewportUpdate { zoom, area })
}

/// Appends `[i]` to the field name of a decode error from a list element.
fn at_index(e: Error, i: usize) -> Error {
    match e {
        Error::Malformed {
            message,
            field,
            reason,
        } => Error::Malformed {
            message,
            field: format!("{field}[{i}]"),
            reason,
        },
        other => other,
    }
}

/// Big-endian writer into a frame being built.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
    message: &'static str,
}

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.out.push(v);
    }
    fn bool(&mut self, v: bool) {
        self.out.push(u8::from(v));
    }
    fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.out.extend_from_slice(b);
    }
    fn opt_u32(&mut self, v: Option<u32>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.u32(v);
            }
        }
    }
    fn opt_u8(&mut self, v: Option<u8>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.u8(v);
            }
        }
    }
    fn tile(&mut self, t: TileCoord) {
        self.u8(t.z());
        self.u32(t.x());
        self.u32(t.y());
    }
    fn bbox(&mut self, b: &LngLatBbox) {
        self.f64(b.west);
        self.f64(b.south);
        self.f64(b.east);
        self.f64(b.north);
    }
    fn str(&mut self, s: &str, field: &'static str) -> Result<()> {
        let len = u16::try_from(s.len()).map_err(|_| Error::Unencodable {
            message: self.message,
            field,
            reason: format!("string of {} bytes is longer than 65535", s.len()),
        })?;
        self.u16(len);
        self.bytes(s.as_bytes());
        Ok(())
    }
    fn list_len(&mut self, n: usize, field: &'static str) -> Result<()> {
        let n = u32::try_from(n).map_err(|_| Error::Unencodable {
            message: self.message,
            field,
            reason: format!("{n} elements do not fit a u32 count"),
        })?;
        self.u32(n);
        Ok(())
    }
}

/// Big-endian reader over a frame's payload; every error names the field.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    message: &'static str,
}

impl<'a> Reader<'a> {
    fn bad(&self, field: &str, reason: impl Into<String>) -> Error {
        Error::malformed(self.message, field, reason)
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(self.bad(
                field,
                format!(
                    "truncated: needs {n} bytes, {} left in the frame",
                    self.remaining()
                ),
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }

    fn u8(&mut self, field: &str) -> Result<u8> {
        Ok(self.take(1, field)?[0])
    }
    fn u16(&mut self, field: &str) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }
    fn u32(&mut self, field: &str) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
    fn u64(&mut self, field: &str) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }
    fn f64(&mut self, field: &str) -> Result<f64> {
        Ok(f64::from_bits(self.u64(field)?))
    }
    fn bool(&mut self, field: &str) -> Result<bool> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.bad(field, format!("boolean byte must be 0 or 1, got {v}"))),
        }
    }
    fn opt_u32(&mut self, field: &str) -> Result<Option<u32>> {
        match self.u8(field)? {
            0 => Ok(None),
            1 => Ok(Some(self.u32(field)?)),
            v => Err(self.bad(field, format!("option tag must be 0 or 1, got {v}"))),
        }
    }
    fn opt_u8(&mut self, field: &str) -> Result<Option<u8>> {
        match self.u8(field)? {
            0 => Ok(None),
            1 => Ok(Some(self.u8(field)?)),
            v => Err(self.bad(field, format!("option tag must be 0 or 1, got {v}"))),
        }
    }
    fn str(&mut self, field: &str) -> Result<String> {
        let n = usize::from(self.u16(field)?);
        let bytes = self.take(n, field)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(self.bad(field, format!("not UTF-8: {e}"))),
        }
    }
    /// A `u32` element count, checked against the bytes left assuming each
    /// element takes at least `min_size` bytes, before anything is allocated.
    fn count(&mut self, field: &str, min_size: usize) -> Result<usize> {
        let n = self.u32(field)? as usize;
        if n.saturating_mul(min_size) > self.remaining() {
            return Err(self.bad(
                field,
                format!(
                    "count {n} needs at least {} bytes, {} left in the frame",
                    n.saturating_mul(min_size),
                    self.remaining()
                ),
            ));
        }
        Ok(n)
    }
    fn blob(&mut self, field: &str) -> Result<Vec<u8>> {
        let n = self.count(field, 1)?;
        Ok(self.take(n, field)?.to_vec())
    }
    fn tile(&mut self, field: &str) -> Result<TileCoord> {
        let z = self.u8(field)?;
        let x = self.u32(field)?;
        let y = self.u32(field)?;
        TileCoord::new(z, x, y).map_err(|e| self.bad(field, e.to_string()))
    }
    fn bbox(&mut self, field: &str) -> Result<LngLatBbox> {
        let b = LngLatBbox::new(
            self.f64(field)?,
            self.f64(field)?,
            self.f64(field)?,
            self.f64(field)?,
        );
        b.validate().map_err(|e| self.bad(field, e.to_string()))?;
        Ok(b)
    }
    fn finish(&self) -> Result<()> {
        if self.remaining() > 0 {
            return Err(Error::TrailingBytes {
                message: self.message,
                extra: self.remaining(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(m: &Message) {
        let bytes = m.to_bytes().unwrap();
        assert_eq!(&Message::from_bytes(&bytes, DEFAULT_MAX_FRAME).unwrap(), m);
    }

    #[test]
    fn simple_round_trips() {
        round_trip(&Message::Ping { token: 42 });
        round_trip(&Message::StatsRequest);
        round_trip(&Message::ListMaps);
        round_trip(&Message::MapList {
            maps: vec!["osm".into(), "demo".into()],
        });
        round_trip(&Message::MapList { maps: vec![] });
        round_trip(&Message::Reload);
        round_trip(&Message::Reloaded(Reloaded {
            error: "cannot read tile-server.toml".into(),
            maps: vec![],
            restart_needed: vec![],
        }));
        round_trip(&Message::RenderRequest(RenderRequest {
            request_id: 7,
            map: "osm".into(),
            priority: Priority::Neighbour,
            delivery: Delivery::InlinePng,
            force: true,
            deadline_ms: Some(500),
            tiles: TileSet::List(vec![TileCoord::new(16, 58001, 25480).unwrap()]),
        }));
    }

    #[test]
    fn unknown_kind_is_named() {
        let bytes = [0, 0, 0, 2, 1, 0x7f];
        let err = Message::from_bytes(&bytes, 100).unwrap_err();
        assert!(matches!(err, Error::UnknownKind { kind: 0x7f }), "{err}");
    }

    #[test]
    fn list_count_is_checked_before_allocating() {
        // Cancel with a count of 2^32-1 and no elements.
        let bytes = [0, 0, 0, 6, 1, kind::CANCEL, 0xff, 0xff, 0xff, 0xff];
        let err = Message::from_bytes(&bytes, 100).unwrap_err();
        match err {
            Error::Malformed { field, .. } => assert_eq!(field, "ids"),
            other => panic!("{other}"),
        }
    }

    fn expire(tiles: Vec<TileCoord>) -> Expire {
        Expire {
            request_id: 9,
            map: "osm".into(),
            touch_from: Some(13),
            delete_from: None,
            block_size: 8,
            tiles,
        }
    }

    #[test]
    fn expire_messages_round_trip() {
        round_trip(&Message::Expire(expire(vec![
            TileCoord::new(17, 72817, 37800).unwrap(),
            TileCoord::WORLD,
        ])));
        round_trip(&Message::Expire(Expire {
            map: String::new(),
            touch_from: None,
            delete_from: Some(30),
            block_size: 1,
            ..expire(vec![])
        }));
        round_trip(&Message::ExpireDone(ExpireDone {
            request_id: u64::MAX,
            deleted: 1,
            touched: 2,
            queued: 3,
            absent: u32::MAX,
            failed: 1,
            error: "deleting /t/3/1/1.png: Permission denied (os error 13)".into(),
        }));
        // The most tiles a message may hold fit the default frame.
        let most = vec![TileCoord::WORLD; MAX_EXPIRE_TILES];
        round_trip(&Message::Expire(expire(most)));
    }

    #[test]
    fn malformed_expires_name_the_field() {
        let good = Message::Expire(expire(vec![TileCoord::new(1, 1, 0).unwrap()]))
            .to_bytes()
            .unwrap();
        // Offsets in the payload: request_id 0..8, map 8..13 ("osm"),
        // touch_from 13..15, delete_from 15, block_size 16, count 17..21,
        // the tile 21..30. The frame header is 6 bytes.
        let at = |payload_offset: usize| 6 + payload_offset;
        let broken = |offset: usize, byte: u8| {
            let mut bytes = good.clone();
            bytes[at(offset)] = byte;
            Message::from_bytes(&bytes, DEFAULT_MAX_FRAME).unwrap_err()
        };
        let field_of = |e: Error| match e {
            Error::Malformed { field, reason, .. } => format!("{field}: {reason}"),
            other => panic!("{other}"),
        };
        assert_eq!(field_of(broken(14, 31)), "touch_from: zoom 31 is above 30");
        assert_eq!(
            field_of(broken(13, 2)),
            "touch_from: option tag must be 0 or 1, got 2"
        );
        assert_eq!(
            field_of(broken(16, 0)),
            "block_size: block size 0 is not 1 to 64"
        );
        assert_eq!(
            field_of(broken(16, 65)),
            "block_size: block size 65 is not 1 to 64"
        );
        // x = 2 at zoom 1 is outside the world.
        assert!(field_of(broken(25, 2)).starts_with("tiles[0]: "));
        // A count larger than the frame holds is refused before allocating.
        let err = broken(17, 0xff);
        assert!(field_of(err).starts_with("tiles: count "));
        // One byte short, one byte too many.
        let mut short = good.clone();
        short.pop();
        short[3] -= 1;
        assert!(Message::from_bytes(&short, DEFAULT_MAX_FRAME).is_err());
        let mut long = good.clone();
        long.push(0);
        long[3] += 1;
        assert!(matches!(
            Message::from_bytes(&long, DEFAULT_MAX_FRAME),
            Err(Error::TrailingBytes { .. })
        ));
    }

    #[test]
    fn an_unknown_reload_status_is_refused() {
        let good = Message::Reloaded(Reloaded {
            error: String::new(),
            maps: vec![MapReload {
                map: "a".into(),
                status: MapReloadStatus::Failed,
                detail: String::new(),
            }],
            restart_needed: vec![],
        });
        let mut bytes = good.to_bytes().unwrap();
        // The status byte follows the map's name, the only `a`.
        let status_at = bytes.iter().rposition(|&b| b == b'a').unwrap() + 1;
        assert_eq!(bytes[status_at], 4);
        bytes[status_at] = 5;
        let err = Message::from_bytes(&bytes, DEFAULT_MAX_FRAME).unwrap_err();
        assert!(err.to_string().contains("unknown status 5"), "{err}");
    }

    #[test]
    fn bad_tile_names_its_index() {
        let mut m = Message::RenderRequest(RenderRequest {
            request_id: 1,
            map: "m".into(),
            priority: Priority::Viewport,
            delivery: Delivery::StorePath,
            force: false,
            deadline_ms: None,
            tiles: TileSet::List(vec![TileCoord::WORLD, TileCoord::WORLD]),
        })
        .to_bytes()
        .unwrap();
        // Make the second tile 0/1/0 (out of range at zoom 0).
        // The last 9 bytes are z (1), x (4), y (4): set x's low byte.
        let n = m.len();
        m[n - 5] = 1;
        let err = Message::from_bytes(&m, 100).unwrap_err();
        match err {
            Error::Malformed { field, .. } => assert_eq!(field, "tiles.list[1]"),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn negotiate_picks_highest_common() {
        let h = Hello {
            versions: vec![1, 2, 7],
            client_name: String::new(),
            capabilities: Capabilities::NONE,
        };
        assert_eq!(h.negotiate(&[1, 2, 3]).unwrap(), 2);
        assert!(matches!(
            h.negotiate(&[4]),
            Err(Error::NoCommonVersion { .. })
        ));
    }

    #[test]
    fn priorities_sort_highest_first() {
        let mut p = vec![Priority::Dirty, Priority::Viewport, Priority::Bulk];
        p.sort();
        assert_eq!(p, [Priority::Viewport, Priority::Bulk, Priority::Dirty]);
    }
}
