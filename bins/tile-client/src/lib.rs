//! tile-client: a blocking Rust client for tessera's tile-server, for other
//! Rust GIS applications to embed, and the library behind the `tile-client`
//! command.
//!
//! ```no_run
//! use tile_client::{Event, RequestOptions, TileClient};
//! # fn main() -> Result<(), tile_client::ClientError> {
//! let mut client = TileClient::connect(&"tcp:127.0.0.1:7420".parse()?, None, "my-app")?;
//! let tiles = vec!["12/2331/1185".parse().map_err(|_| tile_client::ClientError::Usage("tile".into()))?];
//! let id = client.request_tiles(tiles, &RequestOptions::default())?;
//! while let Some(event) = client.next_event()? {
//!     println!("{event:?}");
//!     if matches!(event, Event::BatchDone(ref b) if b.request_id == id) { break; }
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`TileClient`]: connect (with auth), send requests, viewports and
//!   cancels, and read [`Event`]s — every tile's one final answer, then a
//!   `BatchDone` per request.
//! - [`RequestOptions`]: map, priority, delivery, force, deadline.
//! - [`ExpireOptions`] and [`ExpireAnswer`]: expire lists sent a batch at a
//!   time ([`TileClient::send_expire`]), each answered once
//!   ([`TileClient::next_expire_answer`]).

use std::collections::{HashSet, VecDeque};

use ipc_proto::{
    BatchDone, Capabilities, Connection, Delivery, Endpoint, Expire, ExpireDone, Hello, Message,
    Priority, Rejected, Reloaded, RenderRequest, Secret, Stream, TileDone, TileFailed, TileSet,
    ViewArea, ViewportUpdate, Welcome, PROTOCOL_VERSION,
};
use tile_math::{LngLatBbox, TileCoord};

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The connection or the protocol failed.
    #[error(transparent)]
    Protocol(#[from] ipc_proto::Error),
    /// The server closed the connection.
    #[error("the server closed the connection{}", .0.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Closed(Option<String>),
    /// A bad argument.
    #[error("{0}")]
    Usage(String),
}

/// How a request is handled.
#[derive(Debug, Clone)]
pub struct RequestOptions {
    /// The map; empty means the server's first map.
    pub map: String,
    /// Priority class.
    pub priority: Priority,
    /// Paths in the server's store, or the PNG bytes.
    pub delivery: Delivery,
    /// Render even if the store has a fresh tile.
    pub force: bool,
    /// Give up on tiles that cannot start within this many milliseconds.
    pub deadline_ms: Option<u32>,
}

impl Default for RequestOptions {
    fn default() -> Self {
        Self {
            map: String::new(),
            priority: Priority::Explicit,
            delivery: Delivery::StorePath,
            force: false,
            deadline_ms: None,
        }
    }
}

/// What an expire batch asks the server to do (everything but its tiles).
#[derive(Debug, Clone)]
pub struct ExpireOptions {
    /// The map; empty means the server's first map.
    pub map: String,
    /// From this zoom up, mark stale without queueing a re-render.
    pub touch_from: Option<u8>,
    /// From this zoom up, delete.
    pub delete_from: Option<u8>,
    /// Each tile stands for the aligned block of this many tiles across
    /// that holds it (8: renderd's metatile).
    pub block_size: u8,
}

/// The server's one answer to an expire batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpireAnswer {
    /// What it did.
    Done(ExpireDone),
    /// It did nothing, and says why.
    Rejected(Rejected),
}

impl ExpireAnswer {
    /// The batch it answers.
    pub fn request_id(&self) -> u64 {
        match self {
            ExpireAnswer::Done(d) => d.request_id,
            ExpireAnswer::Rejected(r) => r.request_id,
        }
    }
}

/// Something the server said about a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A tile is ready.
    Done(TileDone),
    /// A tile could not be made.
    Failed(TileFailed),
    /// A tile was cancelled.
    Cancelled {
        /// Its request.
        request_id: u64,
        /// The tile.
        tile: TileCoord,
    },
    /// A whole request was refused (no `BatchDone` follows).
    Rejected(Rejected),
    /// Every tile of a request has been answered.
    BatchDone(BatchDone),
}

impl Event {
    /// The request this event belongs to.
    pub fn request_id(&self) -> u64 {
        match self {
            Event::Done(d) => d.request_id,
            Event::Failed(f) => f.request_id,
            Event::Cancelled { request_id, .. } => *request_id,
            Event::Rejected(r) => r.request_id,
            Event::BatchDone(b) => b.request_id,
        }
    }

    /// Whether this is the last event of its request.
    pub fn ends_request(&self) -> bool {
        matches!(self, Event::Rejected(_) | Event::BatchDone(_))
    }
}

/// A connection to a tile-server.
#[derive(Debug)]
pub struct TileClient {
    conn: Connection<Stream>,
    welcome: Welcome,
    next_id: u64,
    /// Events read while waiting for something else (a `StatsReply`).
    backlog: VecDeque<Event>,
    /// Expire batches sent and not answered yet.
    expires_open: HashSet<u64>,
    /// Their answers, read while waiting for something else.
    expire_answers: VecDeque<ExpireAnswer>,
}

impl TileClient {
    /// Connects, authenticates (when `secret` is given) and says hello.
    pub fn connect(
        endpoint: &Endpoint,
        secret: Option<&Secret>,
        name: &str,
    ) -> Result<TileClient, ClientError> {
        let mut conn = endpoint.connect_connection()?;
        let hello = Hello {
            versions: vec![PROTOCOL_VERSION],
            client_name: name.to_owned(),
            capabilities: Capabilities::STORE_PATH
                | Capabilities::INLINE_PNG
                | Capabilities::VIEWPORT,
        };
        let welcome = conn.client_handshake(secret, &hello)?;
        Ok(TileClient {
            conn,
            welcome,
            next_id: 1,
            backlog: VecDeque::new(),
            expires_open: HashSet::new(),
            expire_answers: VecDeque::new(),
        })
    }

    /// Gives up reading after this long without a message (`None`: wait
    /// forever, the default).
    pub fn set_read_timeout(
        &self,
        timeout: Option<std::time::Duration>,
    ) -> Result<(), ClientError> {
        Ok(self.conn.set_read_timeout(timeout)?)
    }

    /// What the server said about itself.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// Sends a request for some tiles; returns its id.
    pub fn request_tiles(
        &mut self,
        tiles: Vec<TileCoord>,
        options: &RequestOptions,
    ) -> Result<u64, ClientError> {
        let set = match tiles.as_slice() {
            [one] => TileSet::One(*one),
            _ => TileSet::List(tiles),
        };
        self.request(set, options)
    }

    /// Sends a request for every tile of a bbox over a zoom range.
    pub fn request_bbox(
        &mut self,
        bbox: LngLatBbox,
        zooms: std::ops::RangeInclusive<u8>,
        options: &RequestOptions,
    ) -> Result<u64, ClientError> {
        self.request(
            TileSet::Bbox {
                bbox,
                min_zoom: *zooms.start(),
                max_zoom: *zooms.end(),
            },
            options,
        )
    }

    /// Sends a request; returns its id.
    pub fn request(
        &mut self,
        tiles: TileSet,
        options: &RequestOptions,
    ) -> Result<u64, ClientError> {
        let request_id = self.next_id;
        self.next_id += 1;
        self.queue(&Message::RenderRequest(RenderRequest {
            request_id,
            map: options.map.clone(),
            priority: options.priority,
            delivery: options.delivery,
            force: options.force,
            deadline_ms: options.deadline_ms,
            tiles,
        }))?;
        self.conn.flush()?;
        Ok(request_id)
    }

    /// Tells the server what is on screen; it re-ranks this connection's
    /// queued work at once.
    pub fn set_viewport(&mut self, zoom: u8, bbox: LngLatBbox) -> Result<(), ClientError> {
        self.queue(&Message::Viewport(ViewportUpdate {
            zoom,
            area: ViewArea::Bbox(bbox),
        }))?;
        Ok(self.conn.flush()?)
    }

    /// Cancels requests.
    pub fn cancel(&mut self, ids: Vec<u64>) -> Result<(), ClientError> {
        self.queue(&Message::Cancel { ids })?;
        Ok(self.conn.flush()?)
    }

    /// Cancels queued work farther than `keep_ring` tiles from the viewport.
    pub fn cancel_outside_viewport(&mut self, keep_ring: u32) -> Result<(), ClientError> {
        self.queue(&Message::CancelOutsideViewport { keep_ring })?;
        Ok(self.conn.flush()?)
    }

    /// Queues a message without sending it (the next flush sends all
    /// queued messages in one write).
    pub fn queue(&mut self, message: &Message) -> Result<(), ClientError> {
        Ok(self.conn.queue(message)?)
    }

    /// Sends queued messages.
    pub fn flush(&mut self) -> Result<(), ClientError> {
        Ok(self.conn.flush()?)
    }

    /// The next event, blocking; `None` when the server closed cleanly.
    pub fn next_event(&mut self) -> Result<Option<Event>, ClientError> {
        if let Some(event) = self.backlog.pop_front() {
            return Ok(Some(event));
        }
        loop {
            let Some(message) = self.conn.read_message()? else {
                return Ok(None);
            };
            if let Some(event) = self.event_of(message)? {
                return Ok(Some(event));
            }
        }
    }

    /// Asks for the server's counters.
    pub fn stats(&mut self) -> Result<Vec<(String, u64)>, ClientError> {
        self.queue(&Message::StatsRequest)?;
        self.conn.flush()?;
        loop {
            let Some(message) = self.conn.read_message()? else {
                return Err(ClientError::Closed(None));
            };
            if let Message::StatsReply { entries } = message {
                return Ok(entries);
            }
            if let Some(event) = self.event_of(message)? {
                self.backlog.push_back(event);
            }
        }
    }

    /// The names of the server's maps, the default first.
    pub fn list_maps(&mut self) -> Result<Vec<String>, ClientError> {
        self.queue(&Message::ListMaps)?;
        self.conn.flush()?;
        loop {
            let Some(message) = self.conn.read_message()? else {
                return Err(ClientError::Closed(None));
            };
            if let Message::MapList { maps } = message {
                return Ok(maps);
            }
            if let Some(event) = self.event_of(message)? {
                self.backlog.push_back(event);
            }
        }
    }

    /// Asks the server to reload its configuration and styles; returns its
    /// answer once the new maps serve (which can take as long as loading
    /// the styles).
    pub fn reload(&mut self) -> Result<Reloaded, ClientError> {
        self.queue(&Message::Reload)?;
        self.conn.flush()?;
        loop {
            let Some(message) = self.conn.read_message()? else {
                return Err(ClientError::Closed(None));
            };
            if let Message::Reloaded(answer) = message {
                return Ok(answer);
            }
            if let Some(event) = self.event_of(message)? {
                self.backlog.push_back(event);
            }
        }
    }

    /// Sends a batch of an expire list (at most
    /// [`ipc_proto::MAX_EXPIRE_TILES`] tiles, within the server's frame
    /// limit); returns its id. No tiles: the server only checks the map
    /// and the zooms.
    pub fn send_expire(
        &mut self,
        tiles: Vec<TileCoord>,
        options: &ExpireOptions,
    ) -> Result<u64, ClientError> {
        let request_id = self.next_id;
        self.next_id += 1;
        self.queue(&Message::Expire(Expire {
            request_id,
            map: options.map.clone(),
            touch_from: options.touch_from,
            delete_from: options.delete_from,
            block_size: options.block_size,
            tiles,
        }))?;
        self.conn.flush()?;
        self.expires_open.insert(request_id);
        Ok(request_id)
    }

    /// The next answer to an expire batch, blocking (answers come in the
    /// order the batches were sent). Other events read meanwhile wait for
    /// [`TileClient::next_event`].
    pub fn next_expire_answer(&mut self) -> Result<ExpireAnswer, ClientError> {
        loop {
            if let Some(answer) = self.expire_answers.pop_front() {
                return Ok(answer);
            }
            let Some(message) = self.conn.read_message()? else {
                return Err(ClientError::Closed(None));
            };
            if let Some(event) = self.event_of(message)? {
                self.backlog.push_back(event);
            }
        }
    }

    /// Round trip time check.
    pub fn ping(&mut self, token: u64) -> Result<(), ClientError> {
        self.queue(&Message::Ping { token })?;
        self.conn.flush()?;
        loop {
            let Some(message) = self.conn.read_message()? else {
                return Err(ClientError::Closed(None));
            };
            if message == (Message::Pong { token }) {
                return Ok(());
            }
            if let Some(event) = self.event_of(message)? {
                self.backlog.push_back(event);
            }
        }
    }

    /// Says goodbye and closes.
    pub fn close(mut self) -> Result<(), ClientError> {
        self.queue(&Message::Goodbye {
            reason: "done".into(),
        })?;
        self.conn.flush()?;
        Ok(self.conn.shutdown_write()?)
    }

    fn event_of(&mut self, message: Message) -> Result<Option<Event>, ClientError> {
        Ok(Some(match message {
            Message::ExpireDone(d) if self.expires_open.remove(&d.request_id) => {
                self.expire_answers.push_back(ExpireAnswer::Done(d));
                return Ok(None);
            }
            Message::Rejected(r) if self.expires_open.remove(&r.request_id) => {
                self.expire_answers.push_back(ExpireAnswer::Rejected(r));
                return Ok(None);
            }
            Message::TileDone(d) => Event::Done(d),
            Message::TileFailed(f) => Event::Failed(f),
            Message::Cancelled { request_id, tile } => Event::Cancelled { request_id, tile },
            Message::Rejected(r) => Event::Rejected(r),
            Message::BatchDone(b) => Event::BatchDone(b),
            Message::Goodbye { reason } => return Err(ClientError::Closed(Some(reason))),
            Message::Pong { .. } | Message::StatsReply { .. } => return Ok(None),
            other => {
                return Err(ClientError::Protocol(ipc_proto::Error::UnexpectedMessage {
                    expected: "an answer",
                    got: other.name(),
                }))
            }
        }))
    }
}
