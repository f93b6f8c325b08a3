//! One client connection speaking the framed protocol (`docs/protocol.md`).
//!
//! Two threads per connection:
//! - the **reader** (the thread that called [`serve_connection`]) decodes
//!   requests, answers tiles that are fresh in the store at once, and hands
//!   the rest to the service;
//! - the **writer** turns every answer into a frame, batching whatever is
//!   ready into one write, and sends `BatchDone` when a request's last tile
//!   is answered.
//!
//! The two talk over a channel that carries, in order, "request accepted"
//! before any of its tiles: the writer always drains that channel before it
//! handles an answer from the service, so it never sees a tile of a request
//! it does not know.
//!
//! A client that half-closes (sends its requests, then `shutdown(Write)`)
//! still gets every answer; the connection closes once the last request is
//! finished. A client that vanishes is unregistered, and its queued work is
//! dropped.
//!
//! Promises kept on every path (`docs/protocol.md` §6-§7):
//! - the handshake has one deadline for all of it, so a peer trickling a
//!   byte a second cannot hold the connection;
//! - after it, a connection with no request open that sends no whole
//!   message for `idle_timeout` is closed with `Goodbye`;
//! - a frame or message the protocol forbids is answered with
//!   `Goodbye { reason }` naming it, then the connection closes (lingering
//!   until the peer closes too, so the `Goodbye` is not lost to a reset);
//! - answers waiting for a client are bounded in bytes (the service pauses
//!   its work), and a client that reads nothing for `write_timeout` is
//!   dropped;
//! - at server shutdown, every open request is answered to its `BatchDone`,
//!   then the client gets `Goodbye` and the connection closes.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::net::Shutdown;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{never, select, unbounded, Receiver, Sender};
use ipc_proto::{
    BatchDone, Capabilities, Connection, ConnectionWriter, Delivery, Hello, Message, Priority,
    RejectReason, Rejected, RenderRequest, Secret, Stream, TileDone, TileFailed, TilePayload,
    TileSet, Transport,
};
use tile_math::{tiles_covering, TileCoord};

use crate::scheduler::{ClientId, PriorityClass, RequestId, TileRequest};
use crate::service::{ClientBacklog, ClientEvent, ServiceHandle, TileOutcome};

/// What the server tells clients it can do.
pub const SERVER_CAPABILITIES: Capabilities = Capabilities(
    Capabilities::INLINE_PNG.0
        | Capabilities::STORE_PATH.0
        | Capabilities::VIEWPORT.0
        | Capabilities::STATS.0
        | Capabilities::LIST_MAPS.0
        | Capabilities::RELOAD.0
        | Capabilities::EXPIRE.0,
);

/// The `Goodbye` reason every client gets at server shutdown.
pub const SHUTDOWN_GOODBYE: &str = "the server is shutting down";

/// The writer hands its buffer to the socket once this much is queued,
/// even if more answers are ready: the buffer stays small, and a client
/// that does not read makes the write block (and time out) early.
const FLUSH_AT: usize = 256 << 10;

/// Per-connection limits.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// Most tiles one request may name.
    pub max_tiles_per_request: u64,
    /// Largest frame accepted.
    pub max_frame: usize,
    /// How long authentication and `Hello` may take, all of it.
    pub handshake_timeout: Duration,
    /// A connection with no open request and no whole message for this
    /// long is closed; `None` never.
    pub idle_timeout: Option<Duration>,
    /// A client that does not read its answers for this long is dropped.
    pub write_timeout: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max_tiles_per_request: 1_000_000,
            max_frame: ipc_proto::DEFAULT_MAX_FRAME,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(300)),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// From the reader to the writer, in order.
#[derive(Debug)]
enum Outgoing {
    /// A request was accepted: expect this many answers.
    Accepted {
        request_id: RequestId,
        tiles: usize,
        delivery: Delivery,
    },
    /// A tile answered by the reader itself (fresh in the store).
    Tile(ClientEvent),
    /// A message to send as it is (Pong, StatsReply, Rejected).
    Message(Message),
    /// Send `Goodbye { reason }` and close: open requests are abandoned.
    Close(String),
    /// The client will send nothing more.
    ReaderDone,
}

/// A request being answered.
#[derive(Debug)]
struct Pending {
    remaining: usize,
    delivery: Delivery,
    done: u32,
    failed: u32,
    cancelled: u32,
}

/// Runs the connection set-up (authentication, `Hello` → `Welcome`) with
/// one deadline for all of it. A peer that breaks the protocol gets
/// `Goodbye { reason }` before the error is returned.
pub fn handshake(
    conn: &mut Connection<Stream>,
    secret: Option<&Secret>,
    limits: &SessionLimits,
) -> ipc_proto::Result<Hello> {
    conn.set_max_frame(limits.max_frame);
    conn.set_write_timeout(Some(limits.write_timeout))?;
    conn.set_read_deadline(Some(Instant::now() + limits.handshake_timeout))?;
    let result = conn.server_handshake(secret, "tessera tile-server", SERVER_CAPABILITIES);
    conn.set_read_deadline(None)?;
    match result {
        Ok((hello, _version)) => Ok(hello),
        Err(e) => {
            // ipc-proto has already said goodbye for a wrong first message.
            let answered = matches!(e, ipc_proto::Error::UnexpectedMessage { .. });
            if e.is_protocol_violation() && !answered {
                let _ = conn.send(&Message::Goodbye {
                    reason: e.to_string(),
                });
            } else if e.is_timeout() {
                let _ = conn.send(&Message::Goodbye {
                    reason: format!(
                        "the handshake did not finish within {} ms",
                        limits.handshake_timeout.as_millis()
                    ),
                });
            }
            Err(e)
        }
    }
}

/// Serves one connection until the client leaves. Errors are returned for
/// logging; the client has been told what it could be told.
pub fn serve_connection(
    mut conn: Connection<Stream>,
    service: &ServiceHandle,
    secret: Option<&Secret>,
    limits: &SessionLimits,
) -> ipc_proto::Result<()> {
    match handshake(&mut conn, secret, limits) {
        Ok(hello) => serve_session(conn, &hello, service, limits),
        Err(e) => {
            linger_close(conn.get_ref());
            Err(e)
        }
    }
}

/// Serves a connection whose handshake is done, until the client leaves or
/// the server shuts down.
pub fn serve_session(
    conn: Connection<Stream>,
    hello: &Hello,
    service: &ServiceHandle,
    limits: &SessionLimits,
) -> ipc_proto::Result<()> {
    tracing::debug!(client = %hello.client_name, "session started");
    // Reads wake up now and then to check for idleness; a partial frame
    // stays buffered across these wake-ups.
    let idle_check = limits
        .idle_timeout
        .map(|t| (t / 4).clamp(Duration::from_millis(50), Duration::from_secs(5)));
    conn.set_read_timeout(idle_check)?;
    conn.set_write_timeout(Some(limits.write_timeout))?;
    // Second handles to the socket: the writer wakes a blocked reader when
    // the client stops reading or the server shuts down, and the closing
    // code drains what the client still sends.
    let killer = conn.get_ref().try_clone()?;
    let lingerer = conn.get_ref().try_clone()?;
    let (mut reader, writer) = conn.split()?;
    let (client, events, backlog) = service.register_with_backlog();
    let open_ids: Arc<Mutex<HashSet<RequestId>>> = Arc::default();
    let (out, out_rx) = unbounded::<Outgoing>();
    let writer_thread = {
        let open_ids = Arc::clone(&open_ids);
        let service = service.clone();
        std::thread::Builder::new()
            .name(format!("session-{client}-writer"))
            .spawn(move || {
                let mut writer = SessionWriter {
                    conn: writer,
                    pending: HashMap::new(),
                    open_ids: &open_ids,
                    backlog: &backlog,
                };
                let result = writer.run(&events, out_rx, &killer);
                if let Err(e) = &result {
                    if e.is_timeout() {
                        service.counters().dropped_not_reading();
                        tracing::info!(
                            client,
                            waiting_bytes = backlog.bytes(),
                            "dropped: the client read nothing for the write timeout"
                        );
                    }
                    // The client stopped reading or vanished: wake the reader.
                    let _ = killer.shutdown(Shutdown::Both);
                }
                result
            })
    };
    let writer_thread = match writer_thread {
        Ok(handle) => handle,
        Err(e) => {
            service.unregister(client);
            return Err(e.into());
        }
    };
    let mut context = ReaderContext {
        service,
        client,
        limits,
        out: &out,
        open_ids: &open_ids,
    };
    let mut last_message = Instant::now();
    let read_result = loop {
        match reader.read_message() {
            Ok(Some(Message::Goodbye { .. })) | Ok(None) => break Ok(()),
            Ok(Some(message)) => {
                last_message = Instant::now();
                if let Err(reason) = context.handle(message) {
                    let _ = out.send(Outgoing::Close(reason.clone()));
                    break Err(ipc_proto::Error::PeerGoodbye { reason });
                }
            }
            Err(e) if e.is_timeout() => {
                let Some(idle_timeout) = limits.idle_timeout else {
                    continue;
                };
                let none_open = lock(&open_ids).is_empty();
                if none_open && last_message.elapsed() >= idle_timeout {
                    service.counters().idle_closed();
                    let reason = format!(
                        "idle: no request for {} s; send Ping to keep a connection open",
                        idle_timeout.as_secs_f64()
                    );
                    let _ = out.send(Outgoing::Close(reason.clone()));
                    break Err(ipc_proto::Error::PeerGoodbye { reason });
                }
            }
            Err(e) if e.is_protocol_violation() => {
                let _ = out.send(Outgoing::Close(e.to_string()));
                break Err(e);
            }
            Err(e) => break Err(e),
        }
    };
    if read_result.is_err() {
        // A broken or closed connection: nothing more can be delivered.
        service.unregister(client);
    }
    let _ = out.send(Outgoing::ReaderDone);
    drop(out);
    let write_result = writer_thread.join().unwrap_or(Ok(()));
    service.unregister(client);
    linger_close(&lingerer);
    read_result.and(write_result)
}

/// Closes a connection without losing what was last sent to it: if the
/// peer's unread bytes were still in our receive buffer at `close`, the
/// kernel would answer with a reset, and the peer could lose our final
/// `Goodbye`. So: half-close, read and discard until the peer closes too,
/// for a second at most.
pub(crate) fn linger_close(stream: &Stream) {
    let _ = stream.shutdown(Shutdown::Write);
    let until = Instant::now() + Duration::from_secs(1);
    let mut sink = [0u8; 4096];
    let mut stream = match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    };
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each update is one insert or remove: a poisoned lock holds valid data.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct ReaderContext<'a> {
    service: &'a ServiceHandle,
    client: ClientId,
    limits: &'a SessionLimits,
    out: &'a Sender<Outgoing>,
    open_ids: &'a Mutex<HashSet<RequestId>>,
}

impl ReaderContext<'_> {
    /// Handles one message; `Err` closes the connection with that reason.
    fn handle(&mut self, message: Message) -> Result<(), String> {
        let send = |m: Message| {
            let _ = self.out.send(Outgoing::Message(m));
        };
        match message {
            Message::RenderRequest(request) => self.render(request)?,
            Message::Viewport(update) => match update.to_viewport() {
                Ok(viewport) => self.service.set_viewport(self.client, viewport),
                // Well formed but not a viewport (a bbox too small to
                // cover a tile, say): a malformed message, like any other.
                Err(e) => return Err(e.to_string()),
            },
            Message::Cancel { ids } => self.service.cancel(self.client, ids),
            Message::CancelOutsideViewport { keep_ring } => {
                self.service.cancel_outside_viewport(self.client, keep_ring)
            }
            Message::StatsRequest => {
                let entries = self.service.stats().map(|s| s.entries).unwrap_or_default();
                send(Message::StatsReply { entries });
            }
            Message::ListMaps => {
                let maps = self.service.maps().iter().map(|m| m.name.clone()).collect();
                send(Message::MapList { maps });
            }
            Message::Reload => {
                let answer = match self.service.reload() {
                    Ok(report) => report.to_message(),
                    Err(e) => ipc_proto::Reloaded {
                        error: e.to_string(),
                        maps: Vec::new(),
                        restart_needed: Vec::new(),
                    },
                };
                send(Message::Reloaded(answer));
            }
            Message::Expire(request) => {
                // Answered before the next message is read, but its answer
                // (a `Rejected` perhaps) must not be taken for an open
                // request's.
                if lock(self.open_ids).contains(&request.request_id) {
                    return Err(format!(
                        "protocol violation: request id {} is still open; ids must be \
                         unique among a connection's open requests",
                        request.request_id
                    ));
                }
                send(crate::expire::answer(self.service, &request));
            }
            Message::Ping { token } => send(Message::Pong { token }),
            other => {
                return Err(format!(
                    "protocol violation: {} is not a client request",
                    other.name()
                ))
            }
        }
        Ok(())
    }

    fn reject(&self, request_id: RequestId, reason: RejectReason, message: String) {
        let retry_after_ms =
            (reason == RejectReason::QueueFull).then(|| self.service.retry_after_ms());
        let rejected = Rejected {
            request_id,
            reason,
            retry_after_ms,
            message,
        };
        let _ = self
            .out
            .send(Outgoing::Message(Message::Rejected(rejected)));
    }

    /// Accepts, answers from the store, or rejects a request. `Err` is a
    /// protocol violation that closes the connection.
    fn render(&mut self, request: RenderRequest) -> Result<(), String> {
        let id = request.request_id;
        // Before anything else: a reused id is the client's bug, and no
        // answer under that id could be told apart from the open request's.
        if lock(self.open_ids).contains(&id) {
            return Err(format!(
                "protocol violation: request id {id} is still open; ids must be unique \
                 among a connection's open requests"
            ));
        }
        if self.service.is_shutting_down() {
            self.reject(id, RejectReason::ShuttingDown, SHUTDOWN_GOODBYE.into());
            return Ok(());
        }
        let Some(map) = self.service.map_id(&request.map) else {
            let table = self.service.maps();
            let names: Vec<&str> = table.iter().map(|m| m.name.as_str()).collect();
            let message = format!(
                "no map named {:?}; this server has {}",
                request.map,
                names.join(", ")
            );
            self.reject(id, RejectReason::UnknownMap, message);
            return Ok(());
        };
        let tiles = match expand_tiles(&request.tiles, self.limits.max_tiles_per_request) {
            Ok(tiles) => tiles,
            Err((reason, message)) => {
                self.reject(id, reason, message);
                return Ok(());
            }
        };
        // Only this thread inserts, so the check above still holds.
        lock(self.open_ids).insert(id);
        let _ = self.out.send(Outgoing::Accepted {
            request_id: id,
            tiles: tiles.len(),
            delivery: request.delivery,
        });
        let mut to_render = Vec::with_capacity(tiles.len());
        for tile in tiles {
            let fresh = if request.force {
                None
            } else {
                self.service.fresh_tile(map, tile)
            };
            match fresh {
                Some(stored) => {
                    let outcome = TileOutcome::Done {
                        own_file: stored.png.is_none(),
                        path: stored.path,
                        png: stored.png,
                        render_ms: 0,
                        cached: true,
                    };
                    let _ = self.out.send(Outgoing::Tile(ClientEvent {
                        request_id: id,
                        tile,
                        outcome,
                    }));
                }
                None => to_render.push(tile),
            }
        }
        if to_render.is_empty() {
            return Ok(());
        }
        let deadline = request
            .deadline_ms
            .map(|ms| Instant::now() + Duration::from_millis(u64::from(ms)));
        let submitted = self.service.submit(TileRequest {
            client: self.client,
            request_id: id,
            map,
            tiles: to_render.clone(),
            class: class_of(request.priority),
            deadline,
            force: request.force,
        });
        if !submitted {
            // Shutdown began after the check above: answer the tiles here.
            for tile in to_render {
                let event = ClientEvent {
                    request_id: id,
                    tile,
                    outcome: TileOutcome::Cancelled,
                };
                let _ = self.out.send(Outgoing::Tile(event));
            }
        }
        Ok(())
    }
}

/// The scheduler's class for a protocol priority.
pub fn class_of(priority: Priority) -> PriorityClass {
    match priority {
        Priority::Viewport => PriorityClass::Viewport,
        Priority::Neighbour => PriorityClass::Neighbour,
        Priority::Explicit => PriorityClass::Explicit,
        Priority::Bulk => PriorityClass::Bulk,
        Priority::Dirty => PriorityClass::Dirty,
    }
}

/// The distinct tiles of a request, in the order given (a bbox in
/// mercantile's order), or why the request is refused.
pub fn expand_tiles(set: &TileSet, max: u64) -> Result<Vec<TileCoord>, (RejectReason, String)> {
    let too_many = |n: u64| {
        (
            RejectReason::TooManyTiles,
            format!("{n} tiles in one request; the limit is {max}"),
        )
    };
    match set {
        TileSet::One(tile) => Ok(vec![*tile]),
        TileSet::List(list) => {
            if list.len() as u64 > max {
                return Err(too_many(list.len() as u64));
            }
            let mut seen = HashSet::with_capacity(list.len());
            Ok(list.iter().copied().filter(|t| seen.insert(*t)).collect())
        }
        TileSet::Bbox {
            bbox,
            min_zoom,
            max_zoom,
        } => {
            let cover = tiles_covering(*bbox, *min_zoom..=*max_zoom)
                .map_err(|e| (RejectReason::InvalidRequest, e.to_string()))?;
            let total = cover.total();
            if total > max {
                return Err(too_many(total));
            }
            Ok(cover.collect())
        }
    }
}

/// The writer thread's state: the socket's writing half, and the requests
/// it is answering.
struct SessionWriter<'a> {
    conn: ConnectionWriter<Stream>,
    pending: HashMap<RequestId, Pending>,
    open_ids: &'a Mutex<HashSet<RequestId>>,
    backlog: &'a ClientBacklog,
}

impl SessionWriter<'_> {
    /// Answers in, frames out, until the client is done (every request
    /// answered after it half-closed), the connection must close, or the
    /// server has shut down (then `Goodbye`).
    fn run(
        &mut self,
        events: &Receiver<ClientEvent>,
        out: Receiver<Outgoing>,
        socket: &Stream,
    ) -> ipc_proto::Result<()> {
        let mut out = Some(out);
        let never_events = never();
        let mut events = events;
        let mut reader_done = false;
        // The service closed this client's channel: every answer it will
        // give has been received.
        let mut service_done = false;
        loop {
            if reader_done && self.pending.is_empty() {
                if service_done {
                    self.conn.queue(&Message::Goodbye {
                        reason: SHUTDOWN_GOODBYE.into(),
                    })?;
                }
                self.conn.flush()?;
                return self.conn.shutdown_write().or(Ok(()));
            }
            let never_out = never();
            let out_rx = out.as_ref().unwrap_or(&never_out);
            select! {
                recv(out_rx) -> item => match item {
                    Ok(item) => {
                        if let Some(reason) = self.outgoing(item, &mut reader_done)? {
                            self.conn.queue(&Message::Goodbye { reason })?;
                            self.conn.flush()?;
                            return Ok(());
                        }
                    }
                    Err(_) => {
                        out = None;
                        reader_done = true;
                    }
                },
                recv(events) -> event => {
                    let Ok(event) = event else {
                        // The server is shutting down. Stop the reader (it
                        // sees EOF), answer what it still hands over, then
                        // say goodbye.
                        service_done = true;
                        events = &never_events;
                        let _ = socket.shutdown(Shutdown::Read);
                        continue;
                    };
                    // Everything the reader sent before this answer comes first.
                    if let Some(rx) = &out {
                        while let Ok(item) = rx.try_recv() {
                            if let Some(reason) = self.outgoing(item, &mut reader_done)? {
                                self.conn.queue(&Message::Goodbye { reason })?;
                                self.conn.flush()?;
                                return Ok(());
                            }
                        }
                    }
                    let weight = event.weight();
                    self.answer_tile(event)?;
                    self.backlog.written(weight);
                }
            }
            let idle = events.is_empty() && out.as_ref().is_none_or(Receiver::is_empty);
            if idle || self.conn.pending_write() >= FLUSH_AT {
                self.conn.flush()?;
            }
        }
    }

    /// Handles one item from the reader; `Some(reason)` closes the
    /// connection with that `Goodbye`.
    fn outgoing(
        &mut self,
        item: Outgoing,
        reader_done: &mut bool,
    ) -> ipc_proto::Result<Option<String>> {
        match item {
            Outgoing::Accepted {
                request_id,
                tiles,
                delivery,
            } => {
                self.pending.insert(
                    request_id,
                    Pending {
                        remaining: tiles,
                        delivery,
                        done: 0,
                        failed: 0,
                        cancelled: 0,
                    },
                );
                if tiles == 0 {
                    self.finish_request(request_id)?;
                }
            }
            Outgoing::Tile(event) => self.answer_tile(event)?,
            Outgoing::Message(message) => self.conn.queue(&message)?,
            Outgoing::Close(reason) => return Ok(Some(reason)),
            Outgoing::ReaderDone => *reader_done = true,
        }
        Ok(None)
    }

    fn answer_tile(&mut self, event: ClientEvent) -> ipc_proto::Result<()> {
        let ClientEvent {
            request_id,
            tile,
            outcome,
        } = event;
        let Some(state) = self.pending.get_mut(&request_id) else {
            tracing::warn!(request_id, %tile, "answer for a request that is not open");
            return Ok(());
        };
        let message = match outcome {
            TileOutcome::Done {
                path,
                png,
                render_ms,
                cached,
                own_file,
            } => {
                // A tile without a file of its own (mod_tile's `.meta`
                // layout) has no path to give: its bytes go instead.
                let payload = match (state.delivery, png) {
                    (Delivery::StorePath, _) if own_file => {
                        Ok(TilePayload::Path(path.to_string_lossy().into_owned()))
                    }
                    (_, Some(png)) => Ok(TilePayload::Png(png.as_ref().clone())),
                    (_, None) => std::fs::read(&path).map(TilePayload::Png),
                };
                match payload {
                    Ok(payload) => {
                        state.done += 1;
                        Message::TileDone(TileDone {
                            request_id,
                            tile,
                            render_ms,
                            cached,
                            payload,
                        })
                    }
                    Err(e) => {
                        state.failed += 1;
                        Message::TileFailed(TileFailed {
                            request_id,
                            tile,
                            kind: ipc_proto::FailureKind::Storage,
                            message: format!("reading {}: {e}", path.display()),
                        })
                    }
                }
            }
            TileOutcome::Failed { kind, message } => {
                state.failed += 1;
                Message::TileFailed(TileFailed {
                    request_id,
                    tile,
                    kind,
                    message,
                })
            }
            TileOutcome::Cancelled => {
                state.cancelled += 1;
                Message::Cancelled { request_id, tile }
            }
        };
        self.conn.queue(&message)?;
        state.remaining = state.remaining.saturating_sub(1);
        if state.remaining == 0 {
            self.finish_request(request_id)?;
        }
        Ok(())
    }

    fn finish_request(&mut self, request_id: RequestId) -> ipc_proto::Result<()> {
        if let Some(state) = self.pending.remove(&request_id) {
            self.conn.queue(&Message::BatchDone(BatchDone {
                request_id,
                done: state.done,
                failed: state.failed,
                cancelled: state.cancelled,
            }))?;
        }
        lock(self.open_ids).remove(&request_id);
        Ok(())
    }
}
