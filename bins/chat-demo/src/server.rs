//! The chat server.
//!
//! One thread reads from each client; one thread writes to each client.
//! Between them sits the client's **outbox**, a bounded queue. Broadcasting
//! a line means putting it into every outbox *without waiting*
//! (`try_send`). A client whose outbox is full is not reading fast enough:
//! it is dropped (its socket shut down) and everybody else is told. So one
//! stuck client can never stall the others, and memory stays bounded.
//!
//! Protocol (over `multiprocessing.connection` framing, see [`crate::mpconn`]),
//! by default the one of seed 004's own server, so that the seed's client
//! joins unchanged:
//! 1. the authkey handshake, if the server has a secret;
//! 2. every message is a chat line, broadcast to everyone (the sender
//!    included) as it is: the seed's client already sends `name: text`;
//! 3. arrivals and departures are announced by the client's address, in
//!    the seed's words: `('127.0.0.1', 50312) が接続したよ!` ("has
//!    connected") and `('127.0.0.1', 50312) が切断したよ!` ("has
//!    disconnected"); the one who leaves is not told;
//! 4. the end code `:end`: the client says it to leave; the server answers
//!    `:end` as the client's last message and closes.
//!
//! Like the seed's server, this one answers with pickled `str`s (what
//! Python's `send(str)` writes and `recv()` reads); it takes a client's
//! lines as pickled `str`s or UTF-8 bytes.
//!
//! With `--nicknames` ([`ServerConfig::nicknames`]) the client's first
//! message is instead its nickname; lines are broadcast as `nick: line`,
//! the server announces `* nick joined` and `* nick left`, and each client
//! is answered in the style its nickname came in (UTF-8 bytes or pickled
//! str, see [`crate::text`]).
//!
//! In both, a client that cannot keep up is dropped and the others hear
//! `* NAME was dropped: too slow (N messages waiting)`.

use std::collections::HashMap;
use std::io::Write;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use ipc_proto::{Listener, Stream, Transport};

use crate::mpconn;
use crate::text::{self, Style};

/// The end code of the lessons' chat.
pub const END_CODE: &str = ":end";
/// Longest chat message accepted.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Longest nickname.
pub const MAX_NICK: usize = 32;
/// Time a new connection gets for the handshake and its nickname.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The authkey, if clients must prove they know it.
    pub key: Option<Vec<u8>>,
    /// Capacity of each client's outbox, in messages.
    pub outbox: usize,
    /// The first message of each client is its nickname (our protocol);
    /// `false`: the seed's protocol, where every message is a chat line.
    pub nicknames: bool,
}

/// How the room speaks about a member coming and going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Notices {
    /// Seed 004's server: by address, in its words.
    Seed,
    /// Ours: `* nick joined` / `* nick left`.
    Nicknames,
}

impl Notices {
    fn joined(self, name: &str) -> String {
        match self {
            Notices::Seed => format!("{name} が接続したよ!"),
            Notices::Nicknames => format!("* {name} joined"),
        }
    }

    fn left(self, name: &str) -> String {
        match self {
            Notices::Seed => format!("{name} が切断したよ!"),
            Notices::Nicknames => format!("* {name} left"),
        }
    }
}

/// Everybody in the chat.
#[derive(Debug)]
struct Room {
    members: Mutex<HashMap<u64, Member>>,
    next_id: AtomicU64,
    /// Capacity of each outbox.
    outbox: usize,
}

#[derive(Debug)]
struct Member {
    /// The nickname, or in the seed's protocol the peer's address.
    name: String,
    /// Lines waiting for this member's writer thread.
    outbox: Sender<Arc<str>>,
    /// A handle to the socket, to shut it down when the member is dropped.
    socket: Stream,
}

impl Room {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Member>> {
        // A panic elsewhere must not take the whole chat down.
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts `line` into every outbox without ever waiting. Members whose
    /// outbox is full are dropped, and the others are told.
    fn broadcast(&self, line: &str) {
        let line: Arc<str> = Arc::from(line);
        let mut dropped = Vec::new();
        {
            let mut members = self.lock();
            let full: Vec<u64> = members
                .iter()
                .filter(|(_, m)| {
                    matches!(m.outbox.try_send(line.clone()), Err(TrySendError::Full(_)))
                })
                .map(|(id, _)| *id)
                .collect();
            for id in full {
                if let Some(m) = members.remove(&id) {
                    // Its writer is stuck in `write`; this makes it fail.
                    let _ = m.socket.shutdown(Shutdown::Both);
                    dropped.push(m.name);
                }
            }
        }
        // Announce outside the lock (announcing may drop more members, each
        // only once, so this ends).
        for name in dropped {
            log(&format!("{name} dropped: outbox full"));
            self.broadcast(&format!(
                "* {name} was dropped: too slow ({} messages waiting)",
                self.outbox
            ));
        }
    }
}

/// Accepts clients forever, one reader and one writer thread each.
pub fn serve(listener: &Listener, config: &ServerConfig) -> Result<()> {
    let room = Arc::new(Room {
        members: Mutex::default(),
        next_id: AtomicU64::new(0),
        outbox: config.outbox,
    });
    loop {
        let stream = match listener.accept() {
            Ok(s) => s,
            Err(e) => {
                log(&format!("accept failed: {e}"));
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let (room, config) = (room.clone(), config.clone());
        thread::spawn(move || {
            let peer = stream.peer_description();
            if let Err(e) = client_session(stream, &room, &config) {
                log(&format!("[{peer}] {e:#}"));
            }
        });
    }
}

/// Handshake, nickname (if asked for), then the reader loop of one client.
fn client_session(mut stream: Stream, room: &Room, config: &ServerConfig) -> Result<()> {
    stream.set_read_timeout(Some(LOGIN_TIMEOUT))?;
    if let Some(key) = &config.key {
        mpconn::server_handshake(&mut stream, key).context("handshake")?;
    }
    let id = room.next_id.fetch_add(1, Ordering::Relaxed);
    let (name, style, notices) = if config.nicknames {
        let Some((nick, style)) = read_nickname(&mut stream)? else {
            return Ok(());
        };
        (nick, style, Notices::Nicknames)
    } else {
        (python_address(&stream, id), Style::Pickle, Notices::Seed)
    };
    stream.set_read_timeout(None)?;

    // Join: a writer thread drains the bounded outbox into the socket.
    let (tx, rx) = bounded::<Arc<str>>(config.outbox);
    {
        let mut members = room.lock();
        if config.nicknames && members.values().any(|m| m.name == name) {
            drop(members);
            refuse(
                &mut stream,
                style,
                &format!("* error: the nickname {name:?} is taken"),
            );
            bail!("refused nickname {name:?}: taken");
        }
        members.insert(
            id,
            Member {
                name: name.clone(),
                outbox: tx,
                socket: stream.try_clone()?,
            },
        );
    }
    let writer = thread::spawn({
        let socket = stream.try_clone()?;
        move || write_outbox(socket, &rx, style)
    });
    log(&format!("{name} joined"));
    room.broadcast(&notices.joined(&name));

    // The reader loop.
    let reason = loop {
        let message = match mpconn::recv_bytes(&mut stream, MAX_MESSAGE) {
            Ok(Some(m)) => m,
            Ok(None) => break "left (connection closed)".to_owned(),
            Err(e) => break format!("left ({e})"),
        };
        match text::decode(&message) {
            Ok((line, _)) if line == END_CODE => break "left".to_owned(),
            Ok((line, _)) => match notices {
                Notices::Seed => room.broadcast(&line),
                Notices::Nicknames => room.broadcast(&format!("{name}: {line}")),
            },
            // Refused, not fatal: tell this client only.
            Err(e) => send_to(room, id, &format!("* error: {e}")),
        }
    };
    leave(room, id, &notices.left(&name), &reason);
    let _ = writer.join();
    Ok(())
}

/// Reads and checks a nickname; `None` if the client closed first. A bad
/// one is refused (error, `:end`, close).
fn read_nickname(stream: &mut Stream) -> Result<Option<(String, Style)>> {
    let Some(first) = mpconn::recv_bytes(stream, MAX_MESSAGE)? else {
        return Ok(None);
    };
    let (nick, style) = match text::decode(&first) {
        Ok(x) => x,
        Err(e) => {
            refuse(stream, Style::Bytes, &format!("* error: {e}"));
            bail!("refused a nickname: {e}");
        }
    };
    if let Err(why) = check_nick(&nick) {
        refuse(stream, style, &format!("* error: {why}"));
        bail!("refused nickname {nick:?}: {why}");
    }
    Ok(Some((nick, style)))
}

/// The peer's address as the seed's server prints it (Python's
/// `str(listener.last_accepted)`): `('127.0.0.1', 50312)`, or
/// `('::1', 50312, 0, 0)` over IPv6. A Unix socket client has no address
/// (Python prints an empty string), so it is named by its number.
pub fn python_address(stream: &Stream, id: u64) -> String {
    match stream.as_tcp().map(std::net::TcpStream::peer_addr) {
        Some(Ok(SocketAddr::V4(a))) => format!("('{}', {})", a.ip(), a.port()),
        Some(Ok(SocketAddr::V6(a))) => format!(
            "('{}', {}, {}, {})",
            a.ip(),
            a.port(),
            a.flowinfo(),
            a.scope_id()
        ),
        _ => format!("'unix peer {id}'"),
    }
}

/// Removes member `id` if still present: its last message is the end code,
/// then its writer closes the socket; the others hear `notice`.
fn leave(room: &Room, id: u64, notice: &str, reason: &str) {
    let member = room.lock().remove(&id);
    if let Some(m) = member {
        // The end code goes last; if even that does not fit, just close.
        if m.outbox.try_send(Arc::from(END_CODE)).is_err() {
            let _ = m.socket.shutdown(Shutdown::Both);
        }
        log(&format!("{} {reason}", m.name));
        drop(m); // dropping the sender lets the writer finish
        room.broadcast(notice);
    }
}

/// A line for one member only.
fn send_to(room: &Room, id: u64, line: &str) {
    if let Some(m) = room.lock().get(&id) {
        let _ = m.outbox.try_send(Arc::from(line));
    }
}

/// The writer thread: outbox → socket, in the client's style. Ends when the
/// outbox is closed (the member left or was dropped) or the socket fails.
fn write_outbox(mut socket: Stream, outbox: &Receiver<Arc<str>>, style: Style) {
    let mut out = Vec::new();
    while let Ok(line) = outbox.recv() {
        out.clear();
        mpconn::encode(&text::encode(&line, style), &mut out);
        // Batch whatever else is already queued into the same write.
        while let Ok(more) = outbox.try_recv() {
            mpconn::encode(&text::encode(&more, style), &mut out);
        }
        if socket.write_all(&out).is_err() {
            break;
        }
    }
    let _ = socket.shutdown(Shutdown::Both);
}

/// Tells a client why it is not let in, then closes.
fn refuse(stream: &mut Stream, style: Style, line: &str) {
    let _ = mpconn::send_bytes(stream, &text::encode(line, style));
    let _ = mpconn::send_bytes(stream, &text::encode(END_CODE, style));
    let _ = stream.shutdown(Shutdown::Both);
}

/// A nickname: 1 to 32 characters, no spaces or control characters, not
/// looking like a notice (`*`) or a command (`:`).
pub fn check_nick(nick: &str) -> Result<(), String> {
    if nick.is_empty() || nick.chars().count() > MAX_NICK {
        return Err(format!("a nickname has 1 to {MAX_NICK} characters"));
    }
    if nick.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a nickname has no spaces or control characters".into());
    }
    if nick.starts_with(['*', ':']) {
        return Err("a nickname does not start with '*' or ':'".into());
    }
    Ok(())
}

// The server reports to its operator on stderr.
#[allow(clippy::print_stderr)]
fn log(msg: &str) {
    eprintln!("chat-demo: {msg}");
}
