//! Reply paths (chapter 6): where does the answer to a request go?
//!
//! - [`ReplyPath::Same`]: back on the connection the request came in on.
//!   TCP is full duplex; this is what every other chapter does.
//! - [`ReplyPath::Callback`]: what seeds 000 and 003 do. The server opens a
//!   **new** TCP connection to the client's IP address at *its own* port +
//!   offset (port+1 in seed 000), writes the reply and closes. The client
//!   must therefore also be a server: it listens on that port *before* it
//!   sends a request, and accepts one connection per reply.
//!
//! Both ends of the callback live in this file: [`CallbackSender`] is the
//! server side, [`CallbackInbox`] the client side.
//!
//! What the callback costs, per reply: a TCP handshake (connect), a
//! listener wake-up and `accept` on the client, a close handshake, and one
//! socket left in `TIME_WAIT` for 60 s on the side that closed first (the
//! server here). Chapter 6 measures it.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::ValueEnum;
use ipc_proto::Stream;

use crate::framing::Framing;

/// Where the server sends its replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReplyPath {
    /// On the connection the request came in on (full duplex).
    Same,
    /// On a new connection to the client's IP at server port + offset.
    Callback,
}

/// How long the server tries to connect back before the reply is lost, and
/// how long either side waits for a callback connection's bytes.
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(5);

/// The callback port: the server's port plus `offset`, or an error if that
/// runs past 65535.
pub fn callback_port(server_port: u16, offset: u16) -> Result<u16> {
    server_port.checked_add(offset).ok_or_else(|| {
        anyhow!("callback port {server_port} + {offset} is beyond 65535: use a smaller offset")
    })
}

/// Server side: delivers replies to one client by calling it back.
#[derive(Debug)]
pub struct CallbackSender {
    /// The client's IP (as this server sees it) and the callback port.
    addr: SocketAddr,
    framing: Framing,
}

impl CallbackSender {
    /// The sender for the client on `stream` (a TCP connection accepted by
    /// the server): the client's IP, at our own port + `offset`.
    ///
    /// This is seed 003's `res.connect((addr[0], PORT))`: the IP comes from
    /// `accept`, the port from an agreement. Behind NAT or in a container
    /// the IP the server sees may not be one the client listens on, and
    /// then every reply is lost.
    pub fn for_client(stream: &Stream, offset: u16, framing: Framing) -> Result<Self> {
        let tcp = stream
            .as_tcp()
            .context("--reply callback needs a TCP connection")?;
        let client_ip: IpAddr = tcp.peer_addr()?.ip();
        let port = callback_port(tcp.local_addr()?.port(), offset)?;
        Ok(Self {
            addr: SocketAddr::new(client_ip, port),
            framing,
        })
    }

    /// Where replies go.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends every reply in `out` (whole messages in the server's framing)
    /// on a connection of its own: connect, write, close.
    ///
    /// A reply that cannot be delivered (nobody listens, the client went
    /// away) is **lost**: there is no connection left to report it on. We
    /// log it and carry on with the next request.
    pub fn send_all(&self, out: &[u8]) {
        let mut rest = out;
        // Raw framing has no boundaries: all of `out` is one reply.
        while let Ok(Some((used, _payload))) = self.framing.split(rest) {
            let (reply, tail) = rest.split_at(used);
            if let Err(e) = self.send_one(reply) {
                log(&format!(
                    "callback to {} failed ({e}): reply {:?} lost",
                    self.addr,
                    String::from_utf8_lossy(reply)
                ));
            }
            rest = tail;
        }
    }

    /// One reply, one connection, exactly as in seed 003.
    fn send_one(&self, reply: &[u8]) -> io::Result<()> {
        let mut s = TcpStream::connect_timeout(&self.addr, CALLBACK_TIMEOUT)?;
        s.set_nodelay(true)?;
        s.set_write_timeout(Some(CALLBACK_TIMEOUT))?;
        s.write_all(reply)?;
        // Dropping `s` closes it: the client reads EOF, which is how it
        // knows the reply is complete. We closed first, so this end of the
        // connection now sits in TIME_WAIT for 60 s.
        Ok(())
    }
}

/// Client side: the listener on port + offset and the replies it received.
///
/// A thread accepts callback connections and reads each to EOF (one reply
/// per connection), like the C# `ServerThread` of seed 000; the client's
/// main thread waits on a channel for the next reply.
#[derive(Debug)]
pub struct CallbackInbox {
    replies: Receiver<io::Result<Vec<u8>>>,
    addr: SocketAddr,
    framing: Framing,
}

impl CallbackInbox {
    /// Listens for callbacks on `ip`:(`server_port` + `offset`).
    ///
    /// Call this **before** sending the first request: a reply that arrives
    /// before anybody listens is refused, and lost.
    pub fn listen(ip: IpAddr, server_port: u16, offset: u16, framing: Framing) -> Result<Self> {
        let port = callback_port(server_port, offset)?;
        let listener = TcpListener::bind((ip, port)).with_context(|| {
            format!(
                "cannot listen for callbacks on {ip}:{port} (another client, or \
                 another program, already uses it)"
            )
        })?;
        let addr = listener.local_addr()?;
        let (tx, replies) = mpsc::channel();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let reply = conn.and_then(|mut c| {
                    c.set_read_timeout(Some(CALLBACK_TIMEOUT))?;
                    let mut bytes = Vec::new();
                    c.read_to_end(&mut bytes)?;
                    Ok(bytes)
                });
                if tx.send(reply).is_err() {
                    return; // the client is done
                }
            }
        });
        Ok(Self {
            replies,
            addr,
            framing,
        })
    }

    /// Where this inbox listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits up to `timeout` for the next reply and returns its payload.
    pub fn receive(&self, timeout: Duration) -> Result<Vec<u8>> {
        let bytes = match self.replies.recv_timeout(timeout) {
            Ok(r) => r.context("reading a callback connection")?,
            Err(RecvTimeoutError::Timeout) => bail!(
                "no callback on {} within {:.1} s (is the server running with \
                 --reply callback and the same --callback-offset?)",
                self.addr,
                timeout.as_secs_f64()
            ),
            Err(RecvTimeoutError::Disconnected) => bail!("the callback listener stopped"),
        };
        match self.framing.split(&bytes)? {
            Some((used, payload)) if used == bytes.len() => Ok(bytes[payload].to_vec()),
            _ => bail!(
                "a callback connection carried {:?}, not exactly one reply",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }
}

// The server tells its operator about lost replies on stderr.
#[allow(clippy::print_stderr)]
fn log(msg: &str) {
    eprintln!("echo-demo: {msg}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_port_refuses_to_wrap() {
        assert_eq!(callback_port(9876, 1).unwrap(), 9877);
        assert!(callback_port(65535, 1).is_err());
    }
}
