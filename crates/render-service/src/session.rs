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

use std::collections::{HashMap, HashSet};
use std::net::Shutdown;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{never, select, unbounded, Receiver, Sender};
use ipc_proto::{
    BatchDone, Capabilities, Connection, ConnectionWriter, Delivery, Message, Priority,
    RejectReason, Rejected, RenderRequest, Secret, Stream, TileDone, TileFailed, TilePayload,
    TileSet, Transport,
};
use tile_math::{tiles_covering, TileCoord};

use crate::scheduler::{ClientId, PriorityClass, RequestId, TileRequest};
use crate::service::{ClientEvent, ServiceHandle, TileOutcome};

/// What the server tells clients it can do.
pub const SERVER_CAPABILITIES: Capabilities = Capabilities(
    Capabilities::INLINE_PNG.0
        | Capabilities::STORE_PATH.0
        | Capabilities::VIEWPORT.0
        | Capabilities::STATS.0,
);

/// Per-connection limits.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// Most tiles one request may name.
    pub max_tiles_per_request: u64,
    /// Largest frame accepted.
    pub max_frame: usize,
    /// How long authentication and `Hello` may take.
    pub handshake_timeout: Duration,
    /// A client that does not read its answers for this long is dropped.
    pub write_timeout: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max_tiles_per_request: 1_000_000,
            max_frame: ipc_proto::DEFAULT_MAX_FRAME,
            handshake_timeout: Duration::from_secs(10),
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
    /// A message to send as it is (Pong, StatsReply, Rejected, Goodbye).
    Message(Message),
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

/// Serves one connection until the client leaves. Errors are returned for
/// logging; the client has been told what it could be told.
pub fn serve_connection(
    mut conn: Connection<Stream>,
    service: &ServiceHandle,
    secret: Option<&Secret>,
    limits: &SessionLimits,
) -> ipc_proto::Result<()> {
    conn.set_max_frame(limits.max_frame);
    conn.set_read_timeout(Some(limits.handshake_timeout))?;
    let (hello, _version) =
        conn.server_handshake(secret, "tessera tile-server", SERVER_CAPABILITIES)?;
    tracing::debug!(client = %hello.client_name, "session started");
    conn.set_read_timeout(None)?;
    conn.set_write_timeout(Some(limits.write_timeout))?;
    // A second handle to the socket, so the writer can wake a blocked
    // reader when the client stops reading.
    let killer = conn.get_ref().try_clone()?;
    let (mut reader, writer) = conn.split()?;
    let (client, events) = service.register();
    let open_ids: Arc<Mutex<HashSet<RequestId>>> = Arc::default();
    let (out, out_rx) = unbounded::<Outgoing>();
    let writer_thread = {
        let open_ids = Arc::clone(&open_ids);
        std::thread::Builder::new()
            .name(format!("session-{client}-writer"))
            .spawn(move || {
                let result = run_writer(writer, &events, out_rx, &open_ids);
                if result.is_err() {
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
    let read_result = loop {
        match reader.read_message() {
            Ok(Some(Message::Goodbye { .. })) | Ok(None) => break Ok(()),
            Ok(Some(message)) => {
                if let Err(reason) = context.handle(message) {
                    let _ = out.send(Outgoing::Message(Message::Goodbye {
                        reason: reason.clone(),
                    }));
                    break Err(ipc_proto::Error::PeerGoodbye { reason });
                }
            }
            Err(e) => break Err(e),
        }
    };
    if read_result.is_err() {
        // A broken connection: nothing more can be delivered.
        service.unregister(client);
    }
    let _ = out.send(Outgoing::ReaderDone);
    drop(out);
    let write_result = writer_thread.join().unwrap_or(Ok(()));
    service.unregister(client);
    read_result.and(write_result)
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
            Message::RenderRequest(request) => self.render(request),
            Message::Viewport(update) => match update.to_viewport() {
                Ok(viewport) => self.service.set_viewport(self.client, viewport),
                Err(e) => tracing::warn!(client = self.client, "ignored a bad viewport: {e}"),
            },
            Message::Cancel { ids } => self.service.cancel(self.client, ids),
            Message::CancelOutsideViewport { keep_ring } => {
                self.service.cancel_outside_viewport(self.client, keep_ring)
            }
            Message::StatsRequest => {
                let entries = self.service.stats().map(|s| s.entries).unwrap_or_default();
                send(Message::StatsReply { entries });
            }
            Message::Ping { token } => send(Message::Pong { token }),
            other => return Err(format!("{} is not a client request", other.name())),
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

    fn render(&mut self, request: RenderRequest) {
        let id = request.request_id;
        if self.service.is_shutting_down() {
            return self.reject(
                id,
                RejectReason::ShuttingDown,
                "the server is shutting down".into(),
            );
        }
        let Some(map) = self.service.map_id(&request.map) else {
            let names: Vec<&str> = self
                .service
                .maps()
                .iter()
                .map(|m| m.name.as_str())
                .collect();
            let message = format!(
                "no map named {:?}; this server has {}",
                request.map,
                names.join(", ")
            );
            return self.reject(id, RejectReason::UnknownMap, message);
        };
        let tiles = match expand_tiles(&request.tiles, self.limits.max_tiles_per_request) {
            Ok(tiles) => tiles,
            Err((reason, message)) => return self.reject(id, reason, message),
        };
        {
            let mut open = self
                .open_ids
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !open.insert(id) {
                drop(open);
                return self.reject(
                    id,
                    RejectReason::DuplicateRequestId,
                    format!("request {id} is still open"),
                );
            }
        }
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
                        path: stored.path,
                        png: None,
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
            return;
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
            // The service has stopped: answer the tiles here.
            for tile in to_render {
                let event = ClientEvent {
                    request_id: id,
                    tile,
                    outcome: TileOutcome::Cancelled,
                };
                let _ = self.out.send(Outgoing::Tile(event));
            }
        }
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

/// The writer thread: answers in, frames out.
fn run_writer(
    mut writer: ConnectionWriter<Stream>,
    events: &Receiver<ClientEvent>,
    out: Receiver<Outgoing>,
    open_ids: &Mutex<HashSet<RequestId>>,
) -> ipc_proto::Result<()> {
    let mut pending: HashMap<RequestId, Pending> = HashMap::new();
    let mut out = Some(out);
    let mut reader_done = false;
    loop {
        if reader_done && pending.is_empty() {
            writer.flush()?;
            return writer.shutdown_write().or(Ok(()));
        }
        let never_out = never();
        let out_rx = out.as_ref().unwrap_or(&never_out);
        select! {
            recv(out_rx) -> item => match item {
                Ok(item) => handle_outgoing(item, &mut writer, &mut pending, &mut reader_done, open_ids)?,
                Err(_) => {
                    out = None;
                    reader_done = true;
                }
            },
            recv(events) -> event => {
                let Ok(event) = event else {
                    // The service is gone: nothing more will be answered.
                    writer.flush()?;
                    return Ok(());
                };
                // Everything the reader sent before this answer comes first.
                if let Some(rx) = &out {
                    while let Ok(item) = rx.try_recv() {
                        handle_outgoing(item, &mut writer, &mut pending, &mut reader_done, open_ids)?;
                    }
                }
                answer_tile(event, &mut writer, &mut pending, open_ids)?;
            }
        }
        let idle = events.is_empty() && out.as_ref().is_none_or(Receiver::is_empty);
        if idle {
            writer.flush()?;
        }
    }
}

fn handle_outgoing(
    item: Outgoing,
    writer: &mut ConnectionWriter<Stream>,
    pending: &mut HashMap<RequestId, Pending>,
    reader_done: &mut bool,
    open_ids: &Mutex<HashSet<RequestId>>,
) -> ipc_proto::Result<()> {
    match item {
        Outgoing::Accepted {
            request_id,
            tiles,
            delivery,
        } => {
            pending.insert(
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
                finish_request(request_id, writer, pending, open_ids)?;
            }
        }
        Outgoing::Tile(event) => answer_tile(event, writer, pending, open_ids)?,
        Outgoing::Message(message) => writer.queue(&message)?,
        Outgoing::ReaderDone => *reader_done = true,
    }
    Ok(())
}

fn answer_tile(
    event: ClientEvent,
    writer: &mut ConnectionWriter<Stream>,
    pending: &mut HashMap<RequestId, Pending>,
    open_ids: &Mutex<HashSet<RequestId>>,
) -> ipc_proto::Result<()> {
    let ClientEvent {
        request_id,
        tile,
        outcome,
    } = event;
    let Some(state) = pending.get_mut(&request_id) else {
        tracing::warn!(request_id, %tile, "answer for a request that is not open");
        return Ok(());
    };
    let message = match outcome {
        TileOutcome::Done {
            path,
            png,
            render_ms,
            cached,
        } => {
            let payload = match state.delivery {
                Delivery::StorePath => Ok(TilePayload::Path(path.to_string_lossy().into_owned())),
                Delivery::InlinePng => match png {
                    Some(png) => Ok(TilePayload::Png(png.as_ref().clone())),
                    None => std::fs::read(&path).map(TilePayload::Png),
                },
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
    writer.queue(&message)?;
    state.remaining = state.remaining.saturating_sub(1);
    if state.remaining == 0 {
        finish_request(request_id, writer, pending, open_ids)?;
    }
    Ok(())
}

fn finish_request(
    request_id: RequestId,
    writer: &mut ConnectionWriter<Stream>,
    pending: &mut HashMap<RequestId, Pending>,
    open_ids: &Mutex<HashSet<RequestId>>,
) -> ipc_proto::Result<()> {
    if let Some(state) = pending.remove(&request_id) {
        writer.queue(&Message::BatchDone(BatchDone {
            request_id,
            done: state.done,
            failed: state.failed,
            cancelled: state.cancelled,
        }))?;
    }
    open_ids
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&request_id);
    Ok(())
}
