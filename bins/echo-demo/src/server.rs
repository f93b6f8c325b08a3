//! The four server modes of the lessons. Each is a few lines on top of
//! [`Session`], which holds the echo logic; only the way the server waits
//! for its sockets differs:
//!
//! | mode         | lesson | what a second client sees                      |
//! |--------------|--------|------------------------------------------------|
//! | `single`     | 1      | connection refused once the first one is done  |
//! | `sequential` | 2      | it connects, but waits until the first leaves  |
//! | `threaded`   | 3      | served at once, by its own thread              |
//! | `poll`       | 3      | served at once, by the same single thread      |

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use anyhow::{Context, Result};
use ipc_proto::{Endpoint, Listener, Stream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::cli::Mode;
use crate::reply::{CallbackSender, ReplyPath};
use crate::session::{EchoConfig, Session, Verdict};

/// Runs the server in `mode` on an already bound `listener` until the stop
/// word arrives (or, in `single` mode, until its one client leaves).
pub fn serve(listener: &Listener, config: &EchoConfig, mode: Mode) -> Result<()> {
    match mode {
        Mode::Single => single(listener, config),
        Mode::Sequential => sequential(listener, config),
        Mode::Threaded => threaded(listener, config),
        Mode::Poll => poll_loop(listener, config),
    }
}

/// Lesson 1: accept one client, echo until it leaves, exit.
fn single(listener: &Listener, config: &EchoConfig) -> Result<()> {
    let stream = listener.accept()?;
    log_outcome(serve_blocking(stream, config));
    Ok(())
}

/// Lesson 2: accept clients one after another. While one is served, the
/// next has connected (the kernel completed its handshake and holds it in
/// the listen backlog) but nobody reads from it: it just waits.
fn sequential(listener: &Listener, config: &EchoConfig) -> Result<()> {
    loop {
        let stream = listener.accept()?;
        if log_outcome(serve_blocking(stream, config)) == Verdict::StopServer {
            return Ok(());
        }
    }
}

/// Lesson 3a: one thread per client. The accept loop never serves anybody
/// itself, so it is always ready for the next client.
///
/// The stop word arrives on some client's thread while the main thread is
/// blocked in `accept`. That thread sets a flag and then connects to the
/// server itself: `accept` returns, sees the flag and stops.
fn threaded(listener: &Listener, config: &EchoConfig) -> Result<()> {
    let stopping = Arc::new(AtomicBool::new(false));
    let wake_addr = listener.local_endpoint().clone();
    loop {
        let stream = listener.accept()?;
        if stopping.load(Ordering::SeqCst) {
            return Ok(());
        }
        let (config, stopping, wake_addr) = (config.clone(), stopping.clone(), wake_addr.clone());
        thread::spawn(move || {
            if log_outcome(serve_blocking(stream, &config)) == Verdict::StopServer {
                stopping.store(true, Ordering::SeqCst);
                wake(&wake_addr);
            }
        });
    }
}

/// Unblocks an `accept` on our own listener by connecting to it.
fn wake(addr: &Endpoint) {
    let addr = match addr {
        // A wildcard address cannot be connected to; loopback reaches it.
        Endpoint::Tcp { host, port } if host == "0.0.0.0" => Endpoint::tcp("127.0.0.1", *port),
        other => other.clone(),
    };
    let _ = addr.connect();
}

/// Serves one connection with blocking reads and writes: read what is
/// there, let the session answer, send all answers at once.
///
/// With `--reply callback` the answers do not go back on `stream` but on
/// new connections to the client ([`CallbackSender`], chapter 6).
pub fn serve_blocking(mut stream: Stream, config: &EchoConfig) -> Result<Verdict> {
    let peer = stream.peer_description();
    eprintln_info(&format!("[{peer}] connected"));
    let callback = match config.reply {
        ReplyPath::Same => None,
        ReplyPath::Callback => {
            let sender =
                CallbackSender::for_client(&stream, config.callback_offset, config.framing)?;
            eprintln_info(&format!("[{peer}] replies go to {}", sender.addr()));
            Some(sender)
        }
    };
    // The one place where the reply path makes a difference.
    let send = |stream: &mut Stream, out: &[u8]| -> Result<()> {
        match &callback {
            None => stream.write_all(out)?,
            Some(sender) => sender.send_all(out),
        }
        Ok(())
    };
    let mut session = Session::new(config, peer.clone());
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    loop {
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context(format!("reading from {peer}")),
        };
        if n == 0 {
            // EOF: the client closed, or half-closed (shutdown(SHUT_WR)) and
            // still waits for our answer. Answer, then close our side too.
            session.on_eof(&mut out);
            send(&mut stream, &out)?;
            eprintln_info(&format!("[{peer}] disconnected"));
            return Ok(Verdict::Continue);
        }
        let verdict = session.on_bytes(&buf[..n], &mut out)?;
        if !out.is_empty() {
            send(&mut stream, &out)?;
            out.clear();
        }
        if verdict == Verdict::StopServer {
            eprintln_info(&format!("[{peer}] sent the stop word: stopping the server"));
            return Ok(Verdict::StopServer);
        }
    }
}

/// Logs a connection's error (one client's trouble is not the server's).
fn log_outcome(result: Result<Verdict>) -> Verdict {
    result.unwrap_or_else(|e| {
        eprintln_info(&format!("connection closed: {e:#}"));
        Verdict::Continue
    })
}

/// Lesson 3b: one thread serves everybody. `poll.poll` sleeps until some
/// socket is ready (a new client to accept, bytes to read, room to write);
/// then we do exactly the work that will not block, and sleep again.
///
/// mio is edge-triggered: an event says "something changed", so we read
/// (and accept) until the OS says `WouldBlock`.
fn poll_loop(listener: &Listener, config: &EchoConfig) -> Result<()> {
    const LISTENER: Token = Token(0);
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(256);
    listener.set_nonblocking(true)?;
    let listen_fd = listener.as_fd().as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&listen_fd), LISTENER, Interest::READABLE)?;
    let mut clients: HashMap<Token, Client> = HashMap::new();
    let mut next_token = 1;
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.into());
        }
        for event in &events {
            if event.token() == LISTENER {
                // Accept everybody who is waiting.
                while let Some(stream) = accept_nonblocking(listener)? {
                    let token = Token(next_token);
                    next_token += 1;
                    let client = Client::new(stream, config)?;
                    poll.registry().register(
                        &mut SourceFd(&client.fd),
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    clients.insert(token, client);
                }
                continue;
            }
            let Some(client) = clients.get_mut(&event.token()) else {
                continue;
            };
            match client.on_ready() {
                Ok(State::Open) => {}
                Ok(State::Finished) => {
                    if let Some(c) = clients.remove(&event.token()) {
                        poll.registry().deregister(&mut SourceFd(&c.fd))?;
                        eprintln_info(&format!("[{}] disconnected", c.peer));
                    }
                }
                Ok(State::StopServer) => {
                    eprintln_info("a client sent the stop word: stopping the server");
                    return Ok(());
                }
                Err(e) => {
                    if let Some(c) = clients.remove(&event.token()) {
                        poll.registry().deregister(&mut SourceFd(&c.fd))?;
                        eprintln_info(&format!("[{}] connection closed: {e:#}", c.peer));
                    }
                }
            }
        }
    }
}

/// `accept` on a non-blocking listener: `None` when nobody is waiting.
fn accept_nonblocking(listener: &Listener) -> Result<Option<Stream>> {
    match listener.accept() {
        Ok(stream) => {
            match &stream {
                Stream::Tcp(s) => s.set_nonblocking(true)?,
                Stream::Unix(s) => s.set_nonblocking(true)?,
            }
            eprintln_info(&format!("[{}] connected", stream.peer_description()));
            Ok(Some(stream))
        }
        Err(ipc_proto::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// One client of the poll loop: its socket, its session, and the answers
/// the socket had no room for yet.
struct Client {
    stream: Stream,
    fd: RawFd,
    peer: String,
    session: Session,
    /// Answers not yet written (the socket's send buffer was full).
    out: Vec<u8>,
    /// The client has closed its side.
    eof: bool,
}

enum State {
    Open,
    Finished,
    StopServer,
}

/// Stop reading from a client that does not read its answers once this
/// many bytes of answers wait (back-pressure instead of unbounded memory).
const MAX_UNSENT: usize = 1 << 20;

impl Client {
    fn new(stream: Stream, config: &EchoConfig) -> Result<Self> {
        let fd = match &stream {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        };
        let peer = stream.peer_description();
        Ok(Self {
            session: Session::new(config, peer.clone()),
            stream,
            fd,
            peer,
            out: Vec::new(),
            eof: false,
        })
    }

    /// The socket is readable and/or writable: do what won't block.
    fn on_ready(&mut self) -> Result<State> {
        let mut buf = [0u8; 16 * 1024];
        let mut verdict = Verdict::Continue;
        while !self.eof && self.out.len() < MAX_UNSENT && verdict == Verdict::Continue {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    self.session.on_eof(&mut self.out);
                }
                Ok(n) => verdict = self.session.on_bytes(&buf[..n], &mut self.out)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.write_what_fits()?;
        Ok(match verdict {
            Verdict::StopServer => State::StopServer,
            Verdict::Continue if self.eof && self.out.is_empty() => State::Finished,
            Verdict::Continue => State::Open,
        })
    }

    fn write_what_fits(&mut self) -> Result<()> {
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

// A server tells its operator what happens, on stderr.
#[allow(clippy::print_stderr)]
fn eprintln_info(msg: &str) {
    eprintln!("echo-demo: {msg}");
}
