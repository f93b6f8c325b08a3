//! The echo client: interactive on a terminal (prompt, send, print the
//! reply), scripted otherwise (`--send` lines, or stdin lines when stdin is
//! not a terminal).
//!
//! Options that reproduce the lessons' pitfalls on purpose:
//! - `--eof`: send everything, half-close, read to EOF (the cure for the
//!   reader that never sees EOF);
//! - `--nagle` + `--split-writes`: a message in two `write` calls with
//!   Nagle's algorithm on: the write-write-read pattern that stalls on the
//!   peer's delayed ACK;
//! - `--connect-per-message`: a new TCP connection for every message, which
//!   leaves one TIME_WAIT socket behind per message;
//! - `--repeat N`: send each message N times and print timings.
//! - `--reply callback`: receive each reply on a connection the server
//!   opens back to us on its port + 1, as in seeds 000 and 003 (chapter 6).

use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ipc_proto::{Endpoint, Stream, Transport};

use crate::cli::ClientArgs;
use crate::framing::Framing;
use crate::reply::{CallbackInbox, ReplyPath};

/// With `--reply callback` and no `--timeout`: how long to wait for the
/// server to call back.
const DEFAULT_CALLBACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `echo-demo client`.
pub fn run(args: &ClientArgs) -> Result<()> {
    let endpoint = args.addr.endpoint();
    let interactive = args.send.is_empty() && io::stdin().is_terminal();
    let mut input: Box<dyn Iterator<Item = io::Result<String>>> = if args.send.is_empty() {
        Box::new(io::stdin().lock().lines())
    } else {
        Box::new(args.send.clone().into_iter().map(Ok))
    };
    if args.eof {
        return send_all_then_half_close(&endpoint, args, input);
    }
    let mut conn = Conn::open(&endpoint, args)?;
    if interactive {
        eprintln!(
            "connected to {endpoint} ({:?} framing); type a line and Enter, Ctrl-D to quit",
            args.framing
        );
        if let Some(inbox) = &conn.callback {
            eprintln!("replies are expected as callbacks on {}", inbox.addr());
        }
    }
    let mut out = io::stdout().lock();
    loop {
        if interactive {
            write!(out, "> ")?;
            out.flush()?;
        }
        let Some(line) = input.next() else { break };
        let line = line?;
        let mut timings = Vec::with_capacity(args.repeat as usize);
        let mut reply = None;
        for _ in 0..args.repeat {
            if args.connect_per_message {
                conn = Conn::open(&endpoint, args)?;
            }
            let t0 = Instant::now();
            conn.send(line.as_bytes())?;
            reply = conn.receive()?;
            timings.push(t0.elapsed());
            if reply.is_none() {
                break;
            }
        }
        let Some(reply) = reply else {
            writeln!(out, "(the server closed the connection)")?;
            break;
        };
        let text = String::from_utf8_lossy(&reply);
        if interactive {
            writeln!(out, "< {text}")?;
        } else {
            writeln!(out, "{text}")?;
        }
        if args.repeat > 1 {
            eprintln!("{}", summarize(&timings));
        }
    }
    Ok(())
}

/// One connection and the bytes received on it that are not a whole reply
/// yet.
struct Conn {
    stream: Stream,
    framing: Framing,
    split_writes: bool,
    received: Vec<u8>,
    /// With `--reply callback`: where the replies arrive instead.
    callback: Option<CallbackInbox>,
    timeout: Option<Duration>,
}

impl Conn {
    fn open(endpoint: &Endpoint, args: &ClientArgs) -> Result<Self> {
        let stream = endpoint.connect()?;
        if args.nagle {
            // ipc-proto always sets TCP_NODELAY; the Nagle lesson turns it off.
            if let Some(tcp) = stream.as_tcp() {
                tcp.set_nodelay(false)?;
            }
        }
        let timeout = args.timeout.map(Duration::from_secs_f64);
        if timeout.is_some() {
            stream.set_read_timeout(timeout)?;
        }
        let callback = match (args.reply, stream.as_tcp()) {
            (ReplyPath::Same, _) => None,
            // Listen on port+1 *before* the first request goes out, on the
            // address this connection comes from: that is the IP the
            // server sees, and so the one it will call back.
            (ReplyPath::Callback, Some(tcp)) => Some(CallbackInbox::listen(
                tcp.local_addr()?.ip(),
                tcp.peer_addr()?.port(),
                args.callback_offset,
                args.framing,
            )?),
            (ReplyPath::Callback, None) => bail!("--reply callback needs a TCP server"),
        };
        Ok(Self {
            stream,
            framing: args.framing,
            split_writes: args.split_writes,
            received: Vec::new(),
            callback,
            timeout,
        })
    }

    /// Sends one message: one `write` call, or two with `--split-writes`.
    fn send(&mut self, text: &[u8]) -> Result<()> {
        let mut wire = Vec::with_capacity(text.len() + 8);
        self.framing.encode(text, &mut wire)?;
        if self.split_writes && wire.len() > 1 {
            self.stream.write_all(&wire[..1])?;
            self.stream.write_all(&wire[1..])?;
        } else {
            self.stream.write_all(&wire)?;
        }
        Ok(())
    }

    /// Reads one reply; `None` if the server closed the connection.
    ///
    /// In `raw` framing "one reply" is whatever one `read` returns: that is
    /// the lesson (the reply may be cut, or two replies glued together).
    fn receive(&mut self) -> Result<Option<Vec<u8>>> {
        if let Some(inbox) = &self.callback {
            // Nothing comes back on our own connection: the reply arrives
            // on a connection of its own, accepted by the inbox's thread.
            let timeout = self.timeout.unwrap_or(DEFAULT_CALLBACK_TIMEOUT);
            return inbox.receive(timeout).map(Some);
        }
        let mut buf = [0u8; 64 * 1024];
        loop {
            if let Some((used, payload)) = self.framing.split(&self.received)? {
                let reply = self.received[payload].to_vec();
                self.received.drain(..used);
                return Ok(Some(reply));
            }
            let n = match self.stream.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    bail!("no reply within the --timeout")
                }
                Err(e) => return Err(e).context("reading the reply"),
            };
            if n == 0 {
                if !self.received.is_empty() {
                    bail!("the server closed the connection in the middle of a reply");
                }
                return Ok(None);
            }
            self.received.extend_from_slice(&buf[..n]);
        }
    }
}

/// The half-close lesson: write everything, `shutdown(SHUT_WR)` so the
/// server's read returns 0 (EOF), then read the answer until the server
/// closes. Without the shutdown, a server that reads to EOF waits forever.
fn send_all_then_half_close(
    endpoint: &Endpoint,
    args: &ClientArgs,
    input: Box<dyn Iterator<Item = io::Result<String>>>,
) -> Result<()> {
    let lines: Vec<String> = input.collect::<io::Result<_>>()?;
    let mut stream = endpoint.connect()?;
    if let Some(secs) = args.timeout {
        stream.set_read_timeout(Some(Duration::from_secs_f64(secs)))?;
    }
    stream.write_all(lines.join("\n").as_bytes())?;
    stream.shutdown(Shutdown::Write)?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .context("reading the answer to EOF")?;
    println!("{}", String::from_utf8_lossy(&answer));
    Ok(())
}

/// `N round trips: mean .., p50 .., max ..`.
fn summarize(timings: &[Duration]) -> String {
    let mut us: Vec<f64> = timings.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    us.sort_by(f64::total_cmp);
    let total: f64 = us.iter().sum();
    let n = us.len().max(1);
    format!(
        "{} round trips in {:.3} s: mean {:.1} us, p50 {:.1} us, max {:.1} us",
        us.len(),
        total / 1e6,
        total / n as f64,
        us.get(n.div_ceil(2) - 1).copied().unwrap_or(0.0),
        us.last().copied().unwrap_or(0.0)
    )
}
