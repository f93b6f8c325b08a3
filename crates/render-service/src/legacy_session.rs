//! One connection of the legacy line protocol, so the original desktop
//! client keeps working unchanged (`docs/protocol.md`, section 8).
//!
//! The client sends `{z}_{x}_{y}` lines. A batch ends with `stop` or when
//! the client closes the connection (the main variant: each finished tile is
//! reported by calling back to the client's port + 1, then `done`), or with
//! an empty line (the second variant: a single `\n` on the same connection
//! when the batch is finished).
//!
//! The C# program closes its connection right after `stop`; its tiles are
//! still rendered and reported through the callback. Every request line gets
//! exactly one callback: the tile as the client wrote it (`01_0_0` stays
//! `01_0_0`), or `failed ` and that text. Every batch the client ends gets
//! its `done` (or `\n`), even one without a valid line.
//!
//! Timeouts: a connection that sends nothing for `idle_timeout` while none
//! of its empty-line batches waits for its `\n`, or that has not ended a
//! batch `batch_timeout` after the batch's first byte (a client trickling
//! one byte a second), is closed. A batch under way then is ended as at
//! EOF, except that an unfinished line is dropped: its tiles are still
//! rendered, each gets its callback, then `done`. Batches ended by an empty
//! line before the timeout still get their `\n` before the connection is
//! closed.
//!
//! Legacy tiles are rendered for the first map, as `Explicit` work.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{never, select, unbounded, Receiver, Sender};
use ipc_proto::legacy::{callback_addr, format_tile, CallbackSender};
use ipc_proto::{CallbackMessage, CallbackStyle, LegacyDecoder, LegacyEvent};

use crate::scheduler::{PriorityClass, RequestId, TileRequest};
use crate::service::{ClientEvent, ServiceHandle, TileOutcome};

/// How the legacy protocol calls back.
#[derive(Debug, Clone, Copy)]
pub struct LegacyOptions {
    /// Connection per message (the original) or one connection of lines.
    pub callback_style: CallbackStyle,
    /// The callback port is the legacy listen port plus this.
    pub callback_offset: u16,
    /// The port the legacy listener is bound to.
    pub listen_port: u16,
    /// Connect and write timeout of a callback.
    pub callback_timeout: Duration,
    /// A connection that sends nothing for this long, while none of its
    /// batches waits for its `\n` reply, is closed. `None`: never.
    pub idle_timeout: Option<Duration>,
    /// A batch must be ended (`stop`, an empty line, EOF) within this long
    /// of its first byte, or the connection is closed. `None`: no limit.
    pub batch_timeout: Option<Duration>,
}

/// How a batch is finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchEnd {
    /// `stop` or EOF: `done` through the callback.
    Callback,
    /// An empty line: `\n` on the connection.
    Reply,
}

/// From the reader to the answering thread, in order.
#[derive(Debug)]
enum Note {
    /// Request `request_id` (one tile, written `text`) belongs to batch
    /// `batch`.
    Tile {
        request_id: RequestId,
        batch: u64,
        text: String,
    },
    /// A tile answered from the store at once.
    Answered(ClientEvent),
    /// Batch `batch` has no more tiles.
    End { batch: u64, how: BatchEnd },
}

#[derive(Debug, Default)]
struct Batch {
    outstanding: usize,
    end: Option<BatchEnd>,
}

/// Empty-line batches waiting for their `\n`, shared by the reader (which
/// counts them in) and the answerer (which counts them out): the idle
/// timeout does not run while the client waits for a reply.
#[derive(Debug)]
struct Replies {
    /// Batches ended by an empty line and not yet answered.
    waiting: usize,
    /// When the last `\n` was written (or the connection opened).
    last: Instant,
}

type SharedReplies = Arc<Mutex<Replies>>;

fn lock(replies: &SharedReplies) -> MutexGuard<'_, Replies> {
    replies.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why the reader stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadEnd {
    /// The client closed (or the connection failed).
    Eof,
    /// Nothing arrived for the idle timeout.
    Idle,
    /// A batch was not ended within the batch timeout.
    Batch,
}

/// Serves one legacy connection until the client closes it and every batch
/// is answered.
pub fn serve_legacy_connection(
    stream: TcpStream,
    service: &ServiceHandle,
    options: LegacyOptions,
) -> std::io::Result<()> {
    let peer = stream.peer_addr()?;
    let callback = callback_addr(peer.ip(), options.listen_port, options.callback_offset);
    let reply_stream = stream.try_clone()?;
    let replies: SharedReplies = Arc::new(Mutex::new(Replies {
        waiting: 0,
        last: Instant::now(),
    }));
    let (client, events) = service.register();
    let (notes, notes_rx) = unbounded::<Note>();
    let answerer = {
        let sender = callback.map(|addr| {
            CallbackSender::new(addr, options.callback_style, options.callback_timeout)
        });
        let replies = Arc::clone(&replies);
        std::thread::Builder::new()
            .name(format!("legacy-{client}-callback"))
            .spawn(move || {
                answer_batches(&events, notes_rx, sender, reply_stream, callback, &replies)
            })
    };
    let answerer = match answerer {
        Ok(handle) => handle,
        Err(e) => {
            service.unregister(client);
            return Err(e);
        }
    };
    let mut reader = LegacyReader {
        service,
        client,
        notes: &notes,
        replies: &replies,
        batch: 0,
        next_request: 1,
        batch_open: false,
        ended: false,
    };
    let result = reader.read_requests(&stream, &options);
    match result {
        Ok(ReadEnd::Eof) | Err(_) => {}
        Ok(end) => {
            service.counters().idle_closed();
            let what = if end == ReadEnd::Idle {
                "idle timeout"
            } else {
                "batch not ended in time"
            };
            tracing::info!(%peer, client, "legacy connection closed: {what}");
        }
    }
    // Nothing more is read; the answerer closes the connection once every
    // `\n` owed on it is written.
    let _ = stream.shutdown(Shutdown::Read);
    drop(notes);
    let _ = answerer.join();
    service.unregister(client);
    result.map(|_| ())
}

/// The reading side's state: which batch is open and whether it has had a
/// line.
struct LegacyReader<'a> {
    service: &'a ServiceHandle,
    client: u64,
    notes: &'a Sender<Note>,
    replies: &'a SharedReplies,
    batch: u64,
    next_request: RequestId,
    /// The current batch has had a line (a tile or an invalid one), so the
    /// client is owed its `done` when it ends.
    batch_open: bool,
    /// A batch was ended since this was last cleared.
    ended: bool,
}

impl LegacyReader<'_> {
    /// Legacy tiles are rendered for the first map.
    const MAP: u32 = 0;

    /// Reads and submits requests until EOF or a timeout; then ends the
    /// batch under way, if any, as EOF does.
    fn read_requests(
        &mut self,
        mut stream: &TcpStream,
        options: &LegacyOptions,
    ) -> std::io::Result<ReadEnd> {
        let mut decoder = LegacyDecoder::new();
        let mut events = Vec::new();
        let mut buf = [0u8; 4096];
        let mut last_byte = Instant::now();
        // When the first byte of the batch under way arrived.
        let mut batch_started: Option<Instant> = None;
        let result = loop {
            let now = Instant::now();
            let idle_deadline = options.idle_timeout.map(|idle| {
                let replies = lock(self.replies);
                if replies.waiting > 0 {
                    // The client waits for us; look again later.
                    now + idle
                } else {
                    last_byte.max(replies.last) + idle
                }
            });
            let batch_deadline = options
                .batch_timeout
                .zip(batch_started)
                .map(|(limit, started)| started + limit);
            if batch_deadline.is_some_and(|d| now >= d) {
                break Ok(ReadEnd::Batch);
            }
            if idle_deadline.is_some_and(|d| now >= d) {
                break Ok(ReadEnd::Idle);
            }
            let wait = [idle_deadline, batch_deadline]
                .into_iter()
                .flatten()
                .min()
                .map(|d| d - now);
            if let Err(e) = stream.set_read_timeout(wait) {
                break Err(e);
            }
            let n = match stream.read(&mut buf) {
                Ok(0) => break Ok(ReadEnd::Eof),
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::Interrupted
                            | std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(e) => break Err(e),
            };
            last_byte = Instant::now();
            decoder.feed(&buf[..n], &mut events);
            events.drain(..).for_each(|event| self.handle(event));
            if std::mem::take(&mut self.ended) {
                batch_started = None;
            }
            if batch_started.is_none() && (self.batch_open || decoder.in_line()) {
                batch_started = Some(last_byte);
            }
        };
        match result {
            // EOF ends the batch in progress, including an unterminated
            // last line.
            Ok(ReadEnd::Eof) | Err(_) => {
                decoder.finish(&mut events);
                events.drain(..).for_each(|event| self.handle(event));
            }
            // A timeout ends it too, but half a line is not a request.
            Ok(ReadEnd::Idle | ReadEnd::Batch) => {
                self.batch_open |= decoder.in_line();
            }
        }
        if self.batch_open {
            self.end_batch(BatchEnd::Callback);
        }
        result
    }

    fn end_batch(&mut self, how: BatchEnd) {
        if how == BatchEnd::Reply {
            lock(self.replies).waiting += 1;
        }
        let _ = self.notes.send(Note::End {
            batch: self.batch,
            how,
        });
        self.batch += 1;
        self.batch_open = false;
        self.ended = true;
    }

    fn handle(&mut self, event: LegacyEvent) {
        match event {
            LegacyEvent::Tile { tile, text } => {
                let request_id = self.next_request;
                self.next_request += 1;
                self.batch_open = true;
                let _ = self.notes.send(Note::Tile {
                    request_id,
                    batch: self.batch,
                    text,
                });
                if let Some(stored) = self.service.fresh_tile(Self::MAP, tile) {
                    let outcome = TileOutcome::Done {
                        own_file: stored.png.is_none(),
                        path: stored.path,
                        png: stored.png,
                        render_ms: 0,
                        cached: true,
                    };
                    let _ = self.notes.send(Note::Answered(ClientEvent {
                        request_id,
                        tile,
                        outcome,
                    }));
                    return;
                }
                let request = TileRequest {
                    client: self.client,
                    request_id,
                    map: Self::MAP,
                    tiles: vec![tile],
                    class: PriorityClass::Explicit,
                    deadline: None,
                    force: false,
                };
                if !self.service.submit(request) {
                    let event = ClientEvent {
                        request_id,
                        tile,
                        outcome: TileOutcome::Cancelled,
                    };
                    let _ = self.notes.send(Note::Answered(event));
                }
            }
            LegacyEvent::Stop => self.end_batch(BatchEnd::Callback),
            LegacyEvent::EndOfBatch => self.end_batch(BatchEnd::Reply),
            LegacyEvent::Invalid { line_no, reason } => {
                self.batch_open = true;
                tracing::warn!(
                    client = self.client,
                    line_no,
                    "legacy request ignored: {reason}"
                );
            }
        }
    }
}

/// Sends each tile's callback and ends batches when their last tile is in.
fn answer_batches(
    events: &Receiver<ClientEvent>,
    notes: Receiver<Note>,
    callback: Option<CallbackSender>,
    reply: TcpStream,
    callback_addr: Option<SocketAddr>,
    replies: &SharedReplies,
) {
    let mut answerer = Answerer {
        batch_of: HashMap::new(),
        batches: HashMap::new(),
        callback,
        reply,
        callback_addr,
        replies: Arc::clone(replies),
    };
    let mut notes = Some(notes);
    let mut closed = false;
    loop {
        if notes.is_none() && !closed && !answerer.owes_reply() {
            // The reader is done and no `\n` is owed: close the connection
            // now (callbacks go elsewhere) so a timed-out client sees it.
            let _ = answerer.reply.shutdown(Shutdown::Both);
            closed = true;
        }
        if notes.is_none() && answerer.batches.is_empty() {
            return;
        }
        let never_rx = never();
        let notes_rx = notes.as_ref().unwrap_or(&never_rx);
        select! {
            recv(notes_rx) -> note => match note {
                Ok(note) => answerer.note(note),
                Err(_) => notes = None,
            },
            recv(events) -> event => {
                let Ok(event) = event else {
                    // The server is shutting down and every answer has
                    // been given: end the connection so its reader stops.
                    let _ = answerer.reply.shutdown(Shutdown::Both);
                    return;
                };
                // Notes sent before this answer come first.
                if let Some(rx) = &notes {
                    while let Ok(note) = rx.try_recv() {
                        answerer.note(note);
                    }
                }
                answerer.tile(event);
            }
        }
    }
}

/// The answering thread's state.
struct Answerer {
    /// Which batch each open request belongs to, and its text as written.
    batch_of: HashMap<RequestId, (u64, String)>,
    batches: HashMap<u64, Batch>,
    callback: Option<CallbackSender>,
    reply: TcpStream,
    callback_addr: Option<SocketAddr>,
    replies: SharedReplies,
}

impl Answerer {
    /// Whether a batch ended by an empty line still waits for its `\n`.
    fn owes_reply(&self) -> bool {
        self.batches
            .values()
            .any(|b| b.end == Some(BatchEnd::Reply))
    }

    fn note(&mut self, note: Note) {
        match note {
            Note::Tile {
                request_id,
                batch,
                text,
            } => {
                self.batch_of.insert(request_id, (batch, text));
                self.batches.entry(batch).or_default().outstanding += 1;
            }
            Note::Answered(event) => self.tile(event),
            Note::End { batch, how } => {
                self.batches.entry(batch).or_default().end = Some(how);
                self.finish_batches();
            }
        }
    }

    fn tile(&mut self, event: ClientEvent) {
        let (batch, text) = match self.batch_of.remove(&event.request_id) {
            Some((batch, text)) => (Some(batch), text),
            None => (None, format_tile(event.tile)),
        };
        // The client matches callbacks to its request text: echo it.
        let message = match event.outcome {
            TileOutcome::Done { .. } => CallbackMessage::Tile(text),
            TileOutcome::Failed { .. } | TileOutcome::Cancelled => CallbackMessage::Failed(text),
        };
        self.send(message);
        if let Some(batch) = batch.and_then(|b| self.batches.get_mut(&b)) {
            batch.outstanding = batch.outstanding.saturating_sub(1);
        }
        self.finish_batches();
    }

    fn send(&mut self, message: CallbackMessage) {
        let Some(sender) = self.callback.as_mut() else {
            return;
        };
        if let Err(e) = sender.send(message) {
            tracing::warn!(callback = ?self.callback_addr, "legacy callback failed: {e}");
        }
    }

    /// Ends every batch that is over and fully answered, oldest first.
    fn finish_batches(&mut self) {
        let mut finished: Vec<u64> = self
            .batches
            .iter()
            .filter(|(_, b)| b.outstanding == 0 && b.end.is_some())
            .map(|(id, _)| *id)
            .collect();
        finished.sort_unstable();
        for id in finished {
            match self.batches.remove(&id).and_then(|b| b.end) {
                Some(BatchEnd::Callback) => self.send(CallbackMessage::Done),
                Some(BatchEnd::Reply) => {
                    if let Err(e) = self
                        .reply
                        .write_all(ipc_proto::legacy::BATCH_COMPLETE_REPLY)
                    {
                        tracing::warn!("legacy batch reply failed: {e}");
                    }
                    let mut replies = lock(&self.replies);
                    replies.waiting = replies.waiting.saturating_sub(1);
                    replies.last = Instant::now();
                }
                None => {}
            }
        }
    }
}
