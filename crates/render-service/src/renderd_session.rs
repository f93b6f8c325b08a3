//! One connection of renderd's socket protocol ([`ipc_proto::renderd`]), so
//! that Apache's mod_tile, `render_list` and `render_expired` drive tessera
//! as they drive renderd (`docs/protocol.md`, renderd section).
//!
//! What a connection promises:
//! - **Commands and classes.** `Render` and `RenderPrio` (mod_tile: a very
//!   old or a missing tile, a user waiting) are `viewport` work;
//!   `RenderLow` (mod_tile: an expired tile, the user waiting with the old
//!   one in hand) is `explicit`; `RenderBulk` (`render_list`,
//!   `render_expired`) is `bulk`; `Dirty` (mod_tile under load) is `dirty`
//!   work nobody waits for ([`ServiceHandle::submit_unattended`]).
//! - **Always a render.** renderd renders whatever it is asked for:
//!   mod_tile and renderd's tools look at the store themselves before they
//!   ask. So every request is rendered (`force`); requests for one
//!   metatile, from any connection, are merged by the scheduler.
//! - **Answers as renderd's.** A render request is answered `Done` once
//!   its whole metatile is stored, `NotDone` when it failed, was refused
//!   (queue full) or cancelled (shutdown); the answer is the request
//!   echoed in its own version with the command replaced, and answers go
//!   out as renders finish, so several requests may be open at once. A
//!   `Dirty` request is answered `NotDone` at once (queued, not rendered),
//!   as renderd 0.6 answers it. A map that is not served, a tile outside
//!   the world, and a command that is not a request are answered
//!   `NotDone` at once and logged (renderd never answers the first, which
//!   leaves mod_tile waiting for its timeout).
//! - **Exactly one answer** per request while the connection lasts,
//!   shutdown included (queued requests are answered `NotDone`).
//! - **A closed connection keeps its work.** renderd's protocol has no
//!   half-close: when the client closes (mod_tile gives up after its
//!   timeout), its open requests become unattended work of the same class,
//!   still rendered and stored, as renderd renders them with nobody to
//!   tell. The next request for the tile finds it.
//! - **Bad input** (a version other than 1-3, a connection that ends inside
//!   a message) is logged once and closes this connection only.
//! - **Bounds.** A connection with no open request that sends nothing for
//!   the idle timeout is closed; answers waiting for a client that does not
//!   read pause its work as for framed clients; connections are counted
//!   apart from the framed ones ([`accept_renderd`]).

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{never, select, unbounded, Receiver, Sender};
use ipc_proto::{Listener, RenderdCommand, RenderdDecoder, RenderdMessage, Stream, Transport};
use tile_math::TileCoord;

use crate::scheduler::{MapId, PriorityClass, RequestId, TileRequest};
use crate::server::{spawn_session, ConnectionSlots, SessionCount};
use crate::service::{ClientBacklog, ClientEvent, ServiceHandle, TileOutcome};

/// Timeouts of a renderd connection.
#[derive(Debug, Clone, Copy)]
pub struct RenderdOptions {
    /// A connection with no open request that sends nothing for this long
    /// is closed. `None`: never.
    pub idle_timeout: Option<Duration>,
    /// A client that takes no answer from its socket for this long is
    /// dropped.
    pub write_timeout: Duration,
}

/// The scheduler's class for a renderd command, or `None` when the
/// command is not a request.
pub fn class_of(command: RenderdCommand) -> Option<PriorityClass> {
    match command {
        RenderdCommand::Render | RenderdCommand::RenderPrio => Some(PriorityClass::Viewport),
        RenderdCommand::RenderLow => Some(PriorityClass::Explicit),
        RenderdCommand::RenderBulk => Some(PriorityClass::Bulk),
        RenderdCommand::Dirty => Some(PriorityClass::Dirty),
        RenderdCommand::Ignore | RenderdCommand::Done | RenderdCommand::NotDone => None,
    }
}

/// A request waiting for its render.
#[derive(Debug)]
struct Open {
    request: RenderdMessage,
    map: MapId,
    tile: TileCoord,
    class: PriorityClass,
}

/// The connection's open requests, shared by the reader (which adds them,
/// and hands the rest over when the connection ends) and the writer (which
/// answers them): whoever takes a request out owns it.
type OpenRequests = Arc<Mutex<HashMap<RequestId, Open>>>;

fn lock(open: &OpenRequests) -> MutexGuard<'_, HashMap<RequestId, Open>> {
    open.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Serves one connection until the client closes it, it breaks the
/// protocol, it idles out, or the server shuts down.
pub fn serve_renderd_connection(
    mut stream: Stream,
    service: &ServiceHandle,
    options: RenderdOptions,
) -> std::io::Result<()> {
    let writer_stream = stream.try_clone()?;
    writer_stream.set_write_timeout(Some(options.write_timeout))?;
    let (client, events, backlog) = service.register_with_backlog();
    let open: OpenRequests = Arc::new(Mutex::new(HashMap::new()));
    let (answers, answers_rx) = unbounded::<RenderdMessage>();
    let writer = {
        let open = Arc::clone(&open);
        std::thread::Builder::new()
            .name(format!("renderd-{client}-answers"))
            .spawn(move || {
                let mut writer = AnswerWriter {
                    stream: writer_stream,
                    open,
                    backlog,
                    client,
                };
                writer.run(&events, answers_rx);
            })
    };
    let writer = match writer {
        Ok(writer) => writer,
        Err(e) => {
            service.unregister(client);
            return Err(e);
        }
    };
    let mut reader = RequestReader {
        service,
        client,
        open: &open,
        answers: &answers,
        next_request: 1,
    };
    let result = reader.read_requests(&mut stream, options);
    // Nothing more is read: what is still open is rendered for nobody, as
    // renderd does, and the client is forgotten (in this order, so that a
    // running render is handed over, not stopped).
    let handed_over = reader.hand_over_open_requests();
    if handed_over > 0 {
        tracing::debug!(
            client,
            requests = handed_over,
            "renderd connection closed with requests open; they are still rendered"
        );
    }
    service.unregister(client);
    drop(answers);
    let _ = writer.join();
    let _ = stream.shutdown(Shutdown::Both);
    result
}

/// The reading side: requests in, submitted or answered at once.
struct RequestReader<'a> {
    service: &'a ServiceHandle,
    client: u64,
    open: &'a OpenRequests,
    answers: &'a Sender<RenderdMessage>,
    next_request: RequestId,
}

impl RequestReader<'_> {
    /// Reads and handles requests until EOF, a protocol error or the idle
    /// timeout.
    fn read_requests(
        &mut self,
        stream: &mut Stream,
        options: RenderdOptions,
    ) -> std::io::Result<()> {
        let mut decoder = RenderdDecoder::new();
        let mut buf = [0u8; 4096];
        let mut last_heard = Instant::now();
        stream.set_read_timeout(options.idle_timeout)?;
        loop {
            let n = match stream.read(&mut buf) {
                Ok(0) => {
                    if let Err(e) = decoder.finish() {
                        tracing::warn!(client = self.client, "renderd connection closed: {e}");
                    }
                    return Ok(());
                }
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    // The idle timer runs only while nothing is open.
                    if !lock(self.open).is_empty() {
                        last_heard = Instant::now();
                    } else if options
                        .idle_timeout
                        .is_some_and(|idle| last_heard.elapsed() >= idle)
                    {
                        self.service.counters().idle_closed();
                        tracing::info!(
                            client = self.client,
                            "renderd connection closed: idle timeout"
                        );
                        return Ok(());
                    }
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            last_heard = Instant::now();
            decoder.feed(&buf[..n]);
            loop {
                match decoder.take_message() {
                    Ok(Some(request)) => self.handle(request),
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(
                            client = self.client,
                            "renderd connection closed: {e}; nothing after it can be read"
                        );
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Submits one request, or answers it at once.
    fn handle(&mut self, request: RenderdMessage) {
        let refuse = |why: std::fmt::Arguments<'_>| {
            tracing::warn!(
                client = self.client,
                "renderd request {request}: {why}; NotDone"
            );
            let _ = self.answers.send(request.answer(RenderdCommand::NotDone));
        };
        let Some(class) = request.command().and_then(class_of) else {
            refuse(format_args!("not a request renderd serves"));
            return;
        };
        if request.xmlname().ends_with(b"@2x") {
            refuse(format_args!(
                "high-DPI variants (@2x) are not kept in mod_tile's layout"
            ));
            return;
        }
        let map = request
            .xmlname_str()
            .filter(|name| !name.is_empty())
            .and_then(|name| self.service.map_id(name));
        let Some(map) = map else {
            let table = self.service.maps();
            let names: Vec<&str> = table.iter().map(|m| m.name.as_str()).collect();
            refuse(format_args!(
                "no map of that name; this server has {}",
                names.join(", ")
            ));
            return;
        };
        let tile = u8::try_from(request.z)
            .ok()
            .zip(u32::try_from(request.x).ok())
            .zip(u32::try_from(request.y).ok())
            .and_then(|((z, x), y)| TileCoord::new(z, x, y).ok());
        let Some(tile) = tile else {
            refuse(format_args!("not a tile of the world"));
            return;
        };
        tracing::debug!(client = self.client, "renderd request {request}");
        if class == PriorityClass::Dirty {
            // Queued for some time, nobody waits: renderd answers NotDone
            // now ("not done yet") and so does tessera.
            if !self.service.submit_unattended(map, vec![tile], class) {
                tracing::debug!("renderd dirty request {request} during shutdown: dropped");
            }
            let _ = self.answers.send(request.answer(RenderdCommand::NotDone));
            return;
        }
        let request_id = self.next_request;
        self.next_request += 1;
        // Open before it is submitted: its answer may come at once.
        lock(self.open).insert(
            request_id,
            Open {
                request: request.clone(),
                map,
                tile,
                class,
            },
        );
        let submitted = self.service.submit(TileRequest {
            client: self.client,
            request_id,
            map,
            tiles: vec![tile],
            class,
            deadline: None,
            force: true,
        });
        if !submitted {
            // Shutdown has begun.
            if let Some(open) = lock(self.open).remove(&request_id) {
                let _ = self
                    .answers
                    .send(open.request.answer(RenderdCommand::NotDone));
            }
        }
    }

    /// The requests still open when the connection ends become work
    /// nobody waits for, in their own class; returns how many.
    fn hand_over_open_requests(&self) -> usize {
        let open: Vec<Open> = lock(self.open).drain().map(|(_, o)| o).collect();
        let mut groups: HashMap<(MapId, PriorityClass), Vec<TileCoord>> = HashMap::new();
        for request in &open {
            groups
                .entry((request.map, request.class))
                .or_default()
                .push(request.tile);
        }
        for ((map, class), tiles) in groups {
            self.service.submit_unattended(map, tiles, class);
        }
        open.len()
    }
}

/// The writing side: the service's answers and the reader's immediate
/// ones out to the socket.
struct AnswerWriter {
    stream: Stream,
    open: OpenRequests,
    backlog: Arc<ClientBacklog>,
    client: u64,
}

impl AnswerWriter {
    /// Runs until the reader is done, the socket fails, or the service has
    /// shut down and every immediate answer is written.
    fn run(&mut self, events: &Receiver<ClientEvent>, answers: Receiver<RenderdMessage>) {
        let never_events = never();
        let mut events_rx = events;
        loop {
            select! {
                recv(events_rx) -> event => match event {
                    Ok(event) => {
                        self.backlog.written(event.weight());
                        if self.answer_event(event).is_err() {
                            break;
                        }
                    }
                    Err(_) => {
                        // The service has shut down: every answer it will
                        // give has come. Anything still open (none, unless
                        // a request slipped past the gate) is not done.
                        let left: Vec<Open> =
                            lock(&self.open).drain().map(|(_, o)| o).collect();
                        let failed = left
                            .iter()
                            .any(|o| self.write(&o.request.answer(RenderdCommand::NotDone)).is_err());
                        if failed {
                            break;
                        }
                        // Stop reading: the reader ends and the answers it
                        // still sends are written before the close.
                        let _ = self.stream.shutdown(Shutdown::Read);
                        events_rx = &never_events;
                    }
                },
                recv(answers) -> answer => match answer {
                    Ok(answer) => {
                        if self.write(&answer).is_err() {
                            break;
                        }
                    }
                    // The reader is done and has handed over what is open.
                    Err(_) => break,
                },
            }
        }
        // Wakes the reader if it is still reading (the socket failed).
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    fn answer_event(&mut self, event: ClientEvent) -> std::io::Result<()> {
        let Some(open) = lock(&self.open).remove(&event.request_id) else {
            // Handed over when the connection ended.
            return Ok(());
        };
        let command = match &event.outcome {
            TileOutcome::Done { .. } => RenderdCommand::Done,
            TileOutcome::Failed { message, .. } => {
                tracing::debug!(
                    client = self.client,
                    "renderd request {}: not done: {message}",
                    open.request
                );
                RenderdCommand::NotDone
            }
            TileOutcome::Cancelled => RenderdCommand::NotDone,
        };
        self.write(&open.request.answer(command))
    }

    fn write(&mut self, answer: &RenderdMessage) -> std::io::Result<()> {
        self.stream.write_all(&answer.encode()).inspect_err(|e| {
            // mod_tile closes at once after a Dirty request, and after its
            // timeout: nobody to tell.
            tracing::debug!(client = self.client, "renderd answer not written: {e}");
        })
    }
}

/// Accepts renderd-protocol connections, at most `max_connections` at once
/// (counted here, apart from the framed connections); one more is closed
/// at once, as renderd drops connections beyond its limit.
pub(crate) fn accept_renderd(
    listener: Listener,
    service: ServiceHandle,
    stopping: Arc<AtomicBool>,
    options: RenderdOptions,
    max_connections: usize,
    sessions: Arc<SessionCount>,
) {
    let slots = ConnectionSlots::new(max_connections);
    let mut failures = 0u32;
    loop {
        let stream = match listener.accept() {
            Ok(stream) => {
                failures = 0;
                stream
            }
            Err(e) => {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                failures += 1;
                tracing::error!("renderd accept failed: {e}");
                std::thread::sleep(Duration::from_millis(10u64 << failures.min(8)));
                continue;
            }
        };
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Some(slot) = slots.take() else {
            tracing::warn!(max_connections, "too many renderd connections; one closed");
            let _ = stream.shutdown(Shutdown::Both);
            continue;
        };
        let service = service.clone();
        // Their NotDone answers at shutdown are owed.
        spawn_session("renderd", slot, &sessions, move || {
            serve_renderd_connection(stream, &service, options).map_err(|e| e.to_string())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mod_tiles_classes_map_onto_the_schedulers() {
        use RenderdCommand::*;
        assert_eq!(class_of(Render), Some(PriorityClass::Viewport));
        assert_eq!(class_of(RenderPrio), Some(PriorityClass::Viewport));
        assert_eq!(class_of(RenderLow), Some(PriorityClass::Explicit));
        assert_eq!(class_of(RenderBulk), Some(PriorityClass::Bulk));
        assert_eq!(class_of(Dirty), Some(PriorityClass::Dirty));
        for answer in [Ignore, Done, NotDone] {
            assert_eq!(class_of(answer), None);
        }
    }
}
