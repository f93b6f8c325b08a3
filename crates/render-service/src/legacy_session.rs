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
//! exactly one callback: `{z}_{x}_{y}`, or `failed {z}_{x}_{y}`.
//!
//! Legacy tiles are rendered for the first map, as `Explicit` work.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crossbeam_channel::{never, select, unbounded, Receiver, Sender};
use ipc_proto::legacy::{callback_addr, CallbackSender};
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
    /// Request `request_id` (one tile) belongs to batch `batch`.
    Tile { request_id: RequestId, batch: u64 },
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
    let (client, events) = service.register();
    let (notes, notes_rx) = unbounded::<Note>();
    let answerer = {
        let sender = callback.map(|addr| {
            CallbackSender::new(addr, options.callback_style, options.callback_timeout)
        });
        std::thread::Builder::new()
            .name(format!("legacy-{client}-callback"))
            .spawn(move || answer_batches(&events, notes_rx, sender, reply_stream, callback))
    };
    let answerer = match answerer {
        Ok(handle) => handle,
        Err(e) => {
            service.unregister(client);
            return Err(e);
        }
    };
    let result = read_requests(stream, service, client, &notes);
    drop(notes);
    let _ = answerer.join();
    service.unregister(client);
    result
}

fn read_requests(
    mut stream: TcpStream,
    service: &ServiceHandle,
    client: u64,
    notes: &Sender<Note>,
) -> std::io::Result<()> {
    let mut decoder = LegacyDecoder::new();
    let mut reader = LegacyReader {
        service,
        client,
        notes,
        batch: 0,
        next_request: 1,
        open_tiles: 0,
    };
    let mut events = Vec::new();
    let mut buf = [0u8; 4096];
    let result = loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        };
        decoder.feed(&buf[..n], &mut events);
        events.drain(..).for_each(|event| reader.handle(event));
    };
    // EOF ends the batch in progress, including an unterminated last line.
    decoder.finish(&mut events);
    events.drain(..).for_each(|event| reader.handle(event));
    if reader.open_tiles > 0 {
        let _ = notes.send(Note::End {
            batch: reader.batch,
            how: BatchEnd::Callback,
        });
    }
    result
}

/// The reading side's state: which batch is open and how many tiles it has.
struct LegacyReader<'a> {
    service: &'a ServiceHandle,
    client: u64,
    notes: &'a Sender<Note>,
    batch: u64,
    next_request: RequestId,
    open_tiles: usize,
}

impl LegacyReader<'_> {
    /// Legacy tiles are rendered for the first map.
    const MAP: u32 = 0;

    fn handle(&mut self, event: LegacyEvent) {
        match event {
            LegacyEvent::Tile(tile) => {
                let request_id = self.next_request;
                self.next_request += 1;
                self.open_tiles += 1;
                let _ = self.notes.send(Note::Tile {
                    request_id,
                    batch: self.batch,
                });
                if let Some(stored) = self.service.fresh_tile(Self::MAP, tile) {
                    let outcome = TileOutcome::Done {
                        path: stored.path,
                        png: None,
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
            LegacyEvent::Stop | LegacyEvent::EndOfBatch => {
                let how = if event == LegacyEvent::Stop {
                    BatchEnd::Callback
                } else {
                    BatchEnd::Reply
                };
                let _ = self.notes.send(Note::End {
                    batch: self.batch,
                    how,
                });
                self.batch += 1;
                self.open_tiles = 0;
            }
            LegacyEvent::Invalid { line_no, reason } => {
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
) {
    let mut answerer = Answerer {
        batch_of: HashMap::new(),
        batches: HashMap::new(),
        callback,
        reply,
        callback_addr,
    };
    let mut notes = Some(notes);
    loop {
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
                let Ok(event) = event else { return };
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
    /// Which batch each open request belongs to.
    batch_of: HashMap<RequestId, u64>,
    batches: HashMap<u64, Batch>,
    callback: Option<CallbackSender>,
    reply: TcpStream,
    callback_addr: Option<SocketAddr>,
}

impl Answerer {
    fn note(&mut self, note: Note) {
        match note {
            Note::Tile { request_id, batch } => {
                self.batch_of.insert(request_id, batch);
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
        let message = match event.outcome {
            TileOutcome::Done { .. } => CallbackMessage::Tile(event.tile),
            TileOutcome::Failed { .. } | TileOutcome::Cancelled => {
                CallbackMessage::Failed(event.tile)
            }
        };
        self.send(message);
        if let Some(batch) = self
            .batch_of
            .remove(&event.request_id)
            .and_then(|b| self.batches.get_mut(&b))
        {
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
                }
                None => {}
            }
        }
    }
}
