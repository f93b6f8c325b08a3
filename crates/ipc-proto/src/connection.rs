//! [`Connection`]: a buffered, blocking message connection over any byte
//! stream.
//!
//! The connection owns a read buffer and a write buffer. Reading loops
//! "decode a frame from the buffer, else read more bytes" (the codec in
//! [`crate::frame`] never blocks), so it never assumes the network delivers
//! whole messages. Writing encodes straight into the write buffer and hands
//! the whole buffer to the stream at once: [`Connection::send`] is one frame
//! per write call, [`Connection::queue`] + [`Connection::flush`] is several
//! frames per write call (pipelining).
//!
//! Connections made by this crate ([`crate::Endpoint::connect`],
//! [`crate::Listener::accept`], [`Connection::from_transport`]) have
//! `TCP_NODELAY` set, so small frames are not held back by Nagle's algorithm
//! waiting for a delayed ACK.
//!
//! After any error except a read timeout the connection is in an unknown
//! state and should be dropped (the protocol says: send `Goodbye` if you
//! can, then close).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use tracing::{debug, trace};

use crate::auth::{self, Secret};
use crate::error::{Error, Result};
use crate::frame::{self, Frame, FrameRef, DEFAULT_MAX_FRAME, HEADER_LEN};
use crate::message::{Capabilities, Hello, Message, Welcome, SUPPORTED_VERSIONS};

/// Initial size of a read buffer; it grows (doubling, up to the frame being
/// read) only for frames larger than this.
const INITIAL_READ_BUF: usize = 8 * 1024;

/// A byte stream that is a real socket: it can be cloned into a second
/// handle (for [`Connection::split`]), half-closed, and given timeouts.
pub trait Transport: Read + Write + Sized {
    /// A second handle to the same socket.
    fn try_clone(&self) -> io::Result<Self>;
    /// Shuts down reading, writing or both.
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;
    /// Timeout for blocking reads (`None`: wait forever).
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    /// Timeout for blocking writes (`None`: wait forever).
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    /// Sets `TCP_NODELAY` on TCP sockets; does nothing on other streams.
    fn set_nodelay(&self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for TcpStream {
    fn try_clone(&self) -> io::Result<Self> {
        TcpStream::try_clone(self)
    }
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        TcpStream::shutdown(self, how)
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, timeout)
    }
    fn set_nodelay(&self) -> io::Result<()> {
        TcpStream::set_nodelay(self, true)
    }
}

impl Transport for UnixStream {
    fn try_clone(&self) -> io::Result<Self> {
        UnixStream::try_clone(self)
    }
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        UnixStream::shutdown(self, how)
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_write_timeout(self, timeout)
    }
}

/// Received bytes not yet decoded: `buf[start..end]`.
#[derive(Debug)]
struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuf {
    fn new() -> Self {
        Self {
            buf: vec![0; INITIAL_READ_BUF],
            start: 0,
            end: 0,
        }
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads at least one byte (or EOF: `Ok(0)`) into the buffer. `need` is
    /// how many bytes the frame being assembled needs in total; the buffer is
    /// compacted and grown (doubling, never beyond `need`) only when it has
    /// no room. `need` has already been checked against the maximum frame.
    fn read_more<R: Read>(&mut self, r: &mut R, need: usize) -> io::Result<usize> {
        if self.start > 0 && (self.end == self.buf.len() || self.buf.len() - self.start < need) {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let grown = (self.buf.len() * 2).min(need).max(self.buf.len() + 1);
            self.buf.resize(grown, 0);
        }
        loop {
            match r.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// A point in time by which a whole message must have arrived, and how to
/// shorten the socket's read timeout to the time left before each read. A
/// per-read timeout alone lets a peer that sends one byte a second hold a
/// connection for ever.
struct ReadDeadline<R> {
    at: Instant,
    set_timeout: fn(&R, Option<Duration>) -> io::Result<()>,
}

impl<R> Clone for ReadDeadline<R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<R> Copy for ReadDeadline<R> {}

impl<R> std::fmt::Debug for ReadDeadline<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadDeadline")
            .field("at", &self.at)
            .finish()
    }
}

impl<R> ReadDeadline<R> {
    /// Before a read: the time left as the socket's timeout, or a
    /// `TimedOut` error when none is left.
    fn arm(&self, stream: &R) -> io::Result<()> {
        let left = self.at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "read deadline passed before a whole message arrived",
            ));
        }
        (self.set_timeout)(stream, Some(left))
    }
}

/// The read loop shared by [`Connection`] and [`ConnectionReader`]: decode
/// from the buffer, else read more. `Ok(None)` is a clean EOF between frames.
fn read_with<R: Read, T>(
    stream: &mut R,
    rbuf: &mut ReadBuf,
    max_frame: usize,
    deadline: Option<ReadDeadline<R>>,
    f: impl FnOnce(FrameRef<'_>) -> Result<T>,
) -> Result<Option<T>> {
    loop {
        if let Some((frame, used)) = frame::decode_ref(rbuf.data(), max_frame)? {
            let value = f(frame);
            rbuf.consume(used);
            return value.map(Some);
        }
        if let Some(deadline) = &deadline {
            deadline.arm(stream)?;
        }
        let need = frame::needed(rbuf.data()).unwrap_or(HEADER_LEN);
        let n = rbuf.read_more(stream, need)?;
        if n == 0 {
            let buffered = rbuf.data().len();
            if buffered == 0 {
                trace!("peer closed the connection");
                return Ok(None);
            }
            debug!(
                buffered,
                "peer closed the connection in the middle of a frame"
            );
            return Err(Error::ConnectionResetMidFrame { buffered });
        }
    }
}

fn decode_message(frame: FrameRef<'_>) -> Result<Message> {
    let msg = Message::decode(frame);
    match &msg {
        Ok(m) => trace!(kind = m.name(), len = frame.payload.len(), "received"),
        Err(e) => debug!(kind = frame.kind, error = %e, "undecodable message"),
    }
    msg
}

/// Writes the whole write buffer in one `write_all` and clears it.
fn flush_buf<W: Write>(stream: &mut W, wbuf: &mut Vec<u8>) -> Result<()> {
    if !wbuf.is_empty() {
        let result = stream.write_all(wbuf);
        wbuf.clear();
        result?;
    }
    stream.flush()?;
    Ok(())
}

/// A message connection over a stream `S` (usually [`crate::Stream`],
/// `TcpStream` or `UnixStream`; any `Read + Write` works for the basics,
/// which is how the tests feed bytes in odd chunks).
#[derive(Debug)]
pub struct Connection<S> {
    /// The socket (or test double).
    stream: S,
    /// Bytes received but not yet decoded into a message.
    rbuf: ReadBuf,
    /// Frames encoded but not yet written (see [`Connection::queue`]).
    wbuf: Vec<u8>,
    /// Largest frame we accept; a longer announced length is an error.
    max_frame: usize,
    /// Largest frame the peer accepts; we refuse to send longer ones.
    peer_max_frame: usize,
    /// See [`Connection::set_read_deadline`].
    deadline: Option<ReadDeadline<S>>,
}

impl<S: Read + Write> Connection<S> {
    /// A connection over `stream`, with [`DEFAULT_MAX_FRAME`] both ways.
    ///
    /// This does not change socket options: use
    /// [`Connection::from_transport`] (or the crate's `connect` / `accept`)
    /// to get `TCP_NODELAY`.
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            rbuf: ReadBuf::new(),
            wbuf: Vec::new(),
            max_frame: DEFAULT_MAX_FRAME,
            peer_max_frame: DEFAULT_MAX_FRAME,
            deadline: None,
        }
    }

    /// Sets the largest frame this side accepts (the length field's value).
    pub fn set_max_frame(&mut self, max: usize) {
        self.max_frame = max;
    }

    /// The largest frame this side accepts.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Sets the largest frame the peer accepts (from its [`Welcome`]).
    pub fn set_peer_max_frame(&mut self, max: usize) {
        self.peer_max_frame = max;
    }

    /// Reads the next message, blocking until a whole frame has arrived.
    ///
    /// - `Ok(Some(msg))`: a message.
    /// - `Ok(None)`: the peer closed the connection cleanly between frames.
    /// - `Err(Error::ConnectionResetMidFrame)`: it closed in mid-frame.
    /// - `Err(Error::Io)` with kind `WouldBlock`/`TimedOut`: the read timeout
    ///   passed; bytes received so far are kept, so calling again continues.
    /// - other errors: the frame or message was invalid; close.
    pub fn read_message(&mut self) -> Result<Option<Message>> {
        read_with(
            &mut self.stream,
            &mut self.rbuf,
            self.max_frame,
            self.deadline,
            decode_message,
        )
    }

    /// Reads the next raw frame (for tools and tests), like
    /// [`Connection::read_message`] without decoding the payload.
    pub fn read_frame(&mut self) -> Result<Option<Frame>> {
        read_with(
            &mut self.stream,
            &mut self.rbuf,
            self.max_frame,
            self.deadline,
            |f| Ok(f.to_owned()),
        )
    }

    /// Reads a message where the protocol requires one: EOF is an error
    /// ([`Error::ClosedByPeer`]).
    pub fn expect_message(&mut self, expected: &'static str) -> Result<Message> {
        self.read_message()?.ok_or(Error::ClosedByPeer { expected })
    }

    /// Encodes `msg` into the write buffer without writing it. Several
    /// queued messages go out together on the next [`Connection::flush`].
    pub fn queue(&mut self, msg: &Message) -> Result<()> {
        msg.encode(&mut self.wbuf, self.peer_max_frame)?;
        trace!(kind = msg.name(), "queued");
        Ok(())
    }

    /// Writes every queued frame in one `write_all` call.
    pub fn flush(&mut self) -> Result<()> {
        flush_buf(&mut self.stream, &mut self.wbuf)
    }

    /// Sends one message now (together with anything queued before it).
    pub fn send(&mut self, msg: &Message) -> Result<()> {
        self.queue(msg)?;
        self.flush()
    }

    /// Bytes queued and not yet flushed.
    pub fn pending_write(&self) -> usize {
        self.wbuf.len()
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The stream, for setting options. Reading or writing it directly
    /// bypasses the buffers and desynchronises the connection.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The stream back. Unread buffered bytes and unflushed frames are lost.
    pub fn into_inner(self) -> S {
        self.stream
    }

    /// Runs the client side of the connection set-up: authentication (see
    /// [`crate::auth`]), then `Hello` → `Welcome`. The peer's `max_frame`
    /// from the `Welcome` becomes this connection's send limit.
    pub fn client_handshake(&mut self, secret: Option<&Secret>, hello: &Hello) -> Result<Welcome> {
        auth::authenticate_client(self, secret)?;
        self.send(&Message::Hello(hello.clone()))?;
        match self.expect_message("Welcome")? {
            Message::Welcome(w) => {
                if !hello.versions.contains(&w.version) {
                    return Err(Error::NoCommonVersion {
                        offered: hello.versions.clone(),
                        supported: vec![w.version],
                    });
                }
                self.peer_max_frame = w.max_frame as usize;
                Ok(w)
            }
            Message::Goodbye { reason } => Err(Error::PeerGoodbye { reason }),
            other => Err(Error::UnexpectedMessage {
                expected: "Welcome",
                got: other.name(),
            }),
        }
    }

    /// Runs the server side of the connection set-up: authentication, then
    /// reads `Hello`, picks the highest common version and answers
    /// `Welcome` (or `Goodbye` and an error if there is none). Returns the
    /// client's `Hello` and the chosen version.
    pub fn server_handshake(
        &mut self,
        secret: Option<&Secret>,
        server_name: &str,
        capabilities: Capabilities,
    ) -> Result<(Hello, u16)> {
        auth::authenticate_server(self, secret)?;
        let hello = match self.expect_message("Hello")? {
            Message::Hello(h) => h,
            other => {
                let got = other.name();
                let _ = self.send(&Message::Goodbye {
                    reason: format!("expected Hello, got {got}"),
                });
                return Err(Error::UnexpectedMessage {
                    expected: "Hello",
                    got,
                });
            }
        };
        let version = match hello.negotiate(SUPPORTED_VERSIONS) {
            Ok(v) => v,
            Err(e) => {
                let _ = self.send(&Message::Goodbye {
                    reason: e.to_string(),
                });
                return Err(e);
            }
        };
        self.send(&Message::Welcome(Welcome {
            version,
            server_name: server_name.to_owned(),
            capabilities,
            max_frame: u32::try_from(self.max_frame).unwrap_or(u32::MAX),
        }))?;
        Ok((hello, version))
    }
}

impl<S: Transport> Connection<S> {
    /// A connection over a socket, with `TCP_NODELAY` set on TCP.
    pub fn from_transport(stream: S) -> Result<Self> {
        stream.set_nodelay()?;
        Ok(Self::new(stream))
    }

    /// Flushes queued frames, then half-closes: the peer reads EOF after
    /// the last frame, and this side can still read its answers.
    pub fn shutdown_write(&mut self) -> Result<()> {
        self.flush()?;
        self.stream.shutdown(Shutdown::Write)?;
        Ok(())
    }

    /// Shuts the socket down both ways (other handles see EOF / errors).
    pub fn shutdown(&mut self) -> Result<()> {
        let _ = self.flush();
        self.stream.shutdown(Shutdown::Both)?;
        Ok(())
    }

    /// Timeout for [`Connection::read_message`].
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        Ok(self.stream.set_read_timeout(timeout)?)
    }

    /// Timeout for writes.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        Ok(self.stream.set_write_timeout(timeout)?)
    }

    /// Every read from now on must be finished by `at`: each blocking read
    /// waits only for the time left, and once it has passed reads fail with
    /// a timeout ([`Error::is_timeout`]). This bounds a whole exchange (the
    /// handshake, say) however slowly the peer trickles its bytes. `None`
    /// removes the deadline; set a read timeout afterwards if one is wanted.
    pub fn set_read_deadline(&mut self, at: Option<Instant>) -> Result<()> {
        self.deadline = at.map(|at| ReadDeadline {
            at,
            set_timeout: <S as Transport>::set_read_timeout,
        });
        if at.is_none() {
            self.stream.set_read_timeout(None)?;
        }
        Ok(())
    }

    /// Splits into a reading half and a writing half that can be moved to two
    /// threads (full duplex). Buffered unread bytes go to the reader, queued
    /// frames to the writer.
    pub fn split(self) -> Result<(ConnectionReader<S>, ConnectionWriter<S>)> {
        let write_stream = self.stream.try_clone()?;
        Ok((
            ConnectionReader {
                stream: self.stream,
                rbuf: self.rbuf,
                max_frame: self.max_frame,
                deadline: self.deadline,
            },
            ConnectionWriter {
                stream: write_stream,
                wbuf: self.wbuf,
                peer_max_frame: self.peer_max_frame,
            },
        ))
    }
}

/// The reading half of a split [`Connection`].
#[derive(Debug)]
pub struct ConnectionReader<S> {
    /// One handle of the socket.
    stream: S,
    /// Bytes received but not yet decoded.
    rbuf: ReadBuf,
    /// Largest frame we accept.
    max_frame: usize,
    /// See [`Connection::set_read_deadline`].
    deadline: Option<ReadDeadline<S>>,
}

impl<S: Transport> ConnectionReader<S> {
    /// See [`Connection::read_message`].
    pub fn read_message(&mut self) -> Result<Option<Message>> {
        read_with(
            &mut self.stream,
            &mut self.rbuf,
            self.max_frame,
            self.deadline,
            decode_message,
        )
    }

    /// See [`Connection::read_frame`].
    pub fn read_frame(&mut self) -> Result<Option<Frame>> {
        read_with(
            &mut self.stream,
            &mut self.rbuf,
            self.max_frame,
            self.deadline,
            |f| Ok(f.to_owned()),
        )
    }

    /// Timeout for reads.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        Ok(self.stream.set_read_timeout(timeout)?)
    }

    /// Whether part of a frame has arrived and waits for the rest.
    pub fn has_partial_frame(&self) -> bool {
        !self.rbuf.data().is_empty()
    }

    /// Shuts down the reading direction.
    pub fn shutdown_read(&self) -> Result<()> {
        Ok(self.stream.shutdown(Shutdown::Read)?)
    }
}

/// The writing half of a split [`Connection`].
#[derive(Debug)]
pub struct ConnectionWriter<S> {
    /// The other handle of the socket.
    stream: S,
    /// Frames encoded but not yet written.
    wbuf: Vec<u8>,
    /// Largest frame the peer accepts.
    peer_max_frame: usize,
}

impl<S: Transport> ConnectionWriter<S> {
    /// See [`Connection::queue`].
    pub fn queue(&mut self, msg: &Message) -> Result<()> {
        msg.encode(&mut self.wbuf, self.peer_max_frame)
    }

    /// See [`Connection::flush`].
    pub fn flush(&mut self) -> Result<()> {
        flush_buf(&mut self.stream, &mut self.wbuf)
    }

    /// Bytes queued and not yet flushed.
    pub fn pending_write(&self) -> usize {
        self.wbuf.len()
    }

    /// See [`Connection::send`].
    pub fn send(&mut self, msg: &Message) -> Result<()> {
        self.queue(msg)?;
        self.flush()
    }

    /// See [`Connection::shutdown_write`].
    pub fn shutdown_write(&mut self) -> Result<()> {
        self.flush()?;
        Ok(self.stream.shutdown(Shutdown::Write)?)
    }

    /// Timeout for writes.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        Ok(self.stream.set_write_timeout(timeout)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_buffer_grows_only_to_the_frame() {
        let big = Message::Goodbye {
            reason: "x".repeat(60_000),
        }
        .to_bytes()
        .unwrap();
        let mut conn = Connection::new(io::Cursor::new(big.clone()));
        let msg = conn.read_message().unwrap().unwrap();
        assert!(matches!(msg, Message::Goodbye { .. }));
        assert!(conn.rbuf.buf.len() <= big.len().max(INITIAL_READ_BUF));
        assert!(conn.read_message().unwrap().is_none());
    }
}
