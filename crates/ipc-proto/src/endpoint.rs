//! Where to listen and connect: [`Endpoint`] (`tcp:HOST:PORT`, `unix:PATH`
//! or plain `HOST:PORT`), [`Listener`] and [`Stream`].
//!
//! Safety rules built in:
//! - TCP binds loopback (`127.0.0.1`) when the host is empty or `localhost`.
//! - Binding a non-loopback address is refused unless a shared secret is
//!   configured or [`ListenOptions::allow_insecure_remote`] is set.
//! - A Unix socket is created with mode `0600` without a window where it has
//!   looser permissions under its real name: it is bound under a random
//!   temporary name in the same directory, chmod-ed, then hard-linked to its
//!   real name (which fails if the name exists, so nothing is ever replaced
//!   by accident) and the temporary name removed.
//! - An existing path is replaced only if it is a socket nobody listens on
//!   (connecting is refused: a stale socket from a crashed server). A live
//!   socket gives [`Error::SocketInUse`]; anything that is not a socket
//!   gives [`Error::NotASocket`] and is never touched.
//! - The socket file is removed when the [`Listener`] is dropped (only if it
//!   is still the file this listener created).
//! - A Unix socket path longer than [`MAX_UNIX_PATH`] bytes is an error when
//!   it is parsed, bound or connected to. (The kernel's `sun_path` holds 108
//!   bytes with the terminating NUL; a longer path used to be hard-linked into
//!   place and reported as listening although nobody could connect to it.)

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use tracing::{debug, info, warn};

use crate::auth::Secret;
use crate::connection::{Connection, Transport};
use crate::error::{Error, Result};

/// The longest Unix socket path, in bytes: `sun_path` in `sockaddr_un`
/// holds 108 bytes on Linux, and the path must leave room for its
/// terminating NUL. Relative paths count as written.
pub const MAX_UNIX_PATH: usize = 107;

/// An [`Error::InvalidEndpoint`] naming the limit if `path` is too long to
/// be a Unix socket address.
fn check_unix_path(path: &Path) -> Result<()> {
    let len = path.as_os_str().len();
    if len > MAX_UNIX_PATH {
        return Err(Error::InvalidEndpoint {
            input: format!("unix:{}", path.display()),
            reason: format!(
                "the socket path is {len} bytes, but a Unix socket path can have at most \
                 {MAX_UNIX_PATH} (sun_path holds 108 bytes including the terminating NUL); \
                 use a shorter path"
            ),
        });
    }
    Ok(())
}

/// A place to listen on or connect to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// TCP. `host` is a name or an IP literal (without brackets); empty
    /// input is stored as `localhost`.
    Tcp {
        /// Host name or IP address.
        host: String,
        /// Port; 0 asks the OS for a free one when binding.
        port: u16,
    },
    /// A Unix domain socket at a filesystem path.
    Unix(PathBuf),
}

impl Endpoint {
    /// A TCP endpoint.
    pub fn tcp(host: impl Into<String>, port: u16) -> Self {
        Endpoint::Tcp {
            host: host.into(),
            port,
        }
    }

    /// A Unix socket endpoint.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Endpoint::Unix(path.into())
    }

    /// Connects, with `TCP_NODELAY` set on TCP.
    pub fn connect(&self) -> Result<Stream> {
        match self {
            Endpoint::Tcp { host, port } => {
                let addrs = resolve(host, *port)?;
                let stream = TcpStream::connect(&addrs[..])
                    .map_err(|e| Error::io(format!("connecting to {self}"), e))?;
                stream.set_nodelay(true)?;
                Ok(Stream::Tcp(stream))
            }
            Endpoint::Unix(path) => {
                check_unix_path(path)?;
                Ok(Stream::Unix(UnixStream::connect(path).map_err(|e| {
                    Error::io(format!("connecting to {self}"), e)
                })?))
            }
        }
    }

    /// Connects and wraps the stream in a [`Connection`].
    pub fn connect_connection(&self) -> Result<Connection<Stream>> {
        Ok(Connection::new(self.connect()?))
    }
}

/// Resolves a host; `localhost` and empty mean `127.0.0.1` exactly (not a
/// DNS lookup that might give `::1` or something else first).
fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>> {
    if host.is_empty() || host.eq_ignore_ascii_case("localhost") {
        return Ok(vec![SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)]);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::io(format!("resolving {host}"), e))?
        .collect();
    if addrs.is_empty() {
        return Err(Error::InvalidEndpoint {
            input: host.to_owned(),
            reason: "the host name resolves to no address".into(),
        });
    }
    Ok(addrs)
}

impl fmt::Display for Endpoint {
    /// `tcp:HOST:PORT` (IPv6 hosts in brackets) or `unix:PATH`; parsing the
    /// output gives the same endpoint back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp:[{host}]:{port}")
            }
            Endpoint::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl FromStr for Endpoint {
    type Err = Error;

    /// Parses `tcp:HOST:PORT`, `unix:PATH` or `HOST:PORT`. `HOST` may be a
    /// name, an IPv4 address, a bracketed IPv6 address (`[::1]`) or empty
    /// (`:7000` means `localhost:7000`).
    fn from_str(input: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidEndpoint {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(path) = input.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad("unix: needs a path"));
            }
            let path = PathBuf::from(path);
            check_unix_path(&path)?;
            return Ok(Endpoint::Unix(path));
        }
        if let Some((scheme, _)) = input.split_once("://") {
            if scheme == "tcp" {
                return Err(bad("write tcp:HOST:PORT, without `//`"));
            }
            // `http://host:port` and the like: a URL, not an endpoint.
            return Err(bad(&format!(
                "a {scheme}:// URL is not an endpoint: tessera speaks its own framed \
                 protocol, not {}; use tcp:HOST:PORT, unix:PATH or HOST:PORT",
                scheme.to_ascii_uppercase()
            )));
        }
        let rest = input.strip_prefix("tcp:").unwrap_or(input);
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad("expected tcp:HOST:PORT, unix:PATH or HOST:PORT"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| bad("the port is not a number from 0 to 65535"))?;
        let host = if let Some(inner) = host.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| bad("unclosed [ in IPv6 host"))?;
            inner
                .parse::<std::net::Ipv6Addr>()
                .map_err(|_| bad("not an IPv6 address inside [ ]"))?;
            inner
        } else {
            if host.contains(':') {
                return Err(bad(
                    "an IPv6 host must be written in brackets, e.g. [::1]:7000",
                ));
            }
            host
        };
        if host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(bad("the host contains a space or '/'"));
        }
        let host = if host.is_empty() { "localhost" } else { host };
        Ok(Endpoint::Tcp {
            host: host.to_owned(),
            port,
        })
    }
}

/// A connected socket of either transport.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// Unix domain socket.
    Unix(UnixStream),
}

impl Stream {
    /// The TCP stream, if this is one (e.g. to find the peer's address for
    /// the legacy callback).
    pub fn as_tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Tcp(s) => Some(s),
            Stream::Unix(_) => None,
        }
    }

    /// The peer, for logs: `ip:port`, or the Unix socket path if any.
    pub fn peer_description(&self) -> String {
        match self {
            Stream::Tcp(s) => s
                .peer_addr()
                .map_or_else(|_| "tcp:?".into(), |a| format!("tcp:{a}")),
            Stream::Unix(_) => "unix peer".into(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

impl Transport for Stream {
    fn try_clone(&self) -> io::Result<Self> {
        match self {
            Stream::Tcp(s) => Ok(Stream::Tcp(s.try_clone()?)),
            Stream::Unix(s) => Ok(Stream::Unix(s.try_clone()?)),
        }
    }
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        }
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(timeout),
            Stream::Unix(s) => s.set_read_timeout(timeout),
        }
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(timeout),
            Stream::Unix(s) => s.set_write_timeout(timeout),
        }
    }
    fn set_nodelay(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nodelay(true),
            Stream::Unix(_) => Ok(()),
        }
    }
}

/// How to listen.
#[derive(Debug, Clone, Default)]
pub struct ListenOptions {
    /// The shared secret connections must authenticate with. Its presence
    /// also allows binding a non-loopback address. The listener only keeps
    /// it for [`Listener::secret`]; the handshake itself runs on the
    /// connection's own thread ([`Connection::server_handshake`]) so a slow
    /// client cannot stall `accept`.
    pub secret: Option<Secret>,
    /// Allow a non-loopback TCP address without a secret (trusted networks
    /// only: anyone who can reach the port can make the server work).
    pub allow_insecure_remote: bool,
}

/// A bound listening socket.
#[derive(Debug)]
pub struct Listener {
    /// The OS listener.
    inner: ListenerKind,
    /// What we are bound to (with the real port when 0 was asked for).
    local: Endpoint,
    /// From [`ListenOptions::secret`].
    secret: Option<Secret>,
}

#[derive(Debug)]
enum ListenerKind {
    Tcp(TcpListener),
    Unix {
        listener: UnixListener,
        /// The socket file, removed on drop if it is still ours.
        path: PathBuf,
        /// `(dev, ino)` of the socket file we created.
        id: (u64, u64),
    },
}

impl Listener {
    /// Binds `endpoint` (see the module docs for the safety rules).
    pub fn bind(endpoint: &Endpoint, options: &ListenOptions) -> Result<Listener> {
        let (inner, local) = match endpoint {
            Endpoint::Tcp { host, port } => {
                let addrs = resolve(host, *port)?;
                for addr in &addrs {
                    if !addr.ip().is_loopback()
                        && options.secret.is_none()
                        && !options.allow_insecure_remote
                    {
                        return Err(Error::InsecureRemote { addr: *addr });
                    }
                }
                let listener = TcpListener::bind(&addrs[..])
                    .map_err(|e| Error::io(format!("binding {endpoint}"), e))?;
                let bound = listener.local_addr()?;
                let local = Endpoint::Tcp {
                    host: if host.is_empty() {
                        "localhost".into()
                    } else {
                        host.clone()
                    },
                    port: bound.port(),
                };
                (ListenerKind::Tcp(listener), local)
            }
            Endpoint::Unix(path) => {
                let (listener, id) = bind_unix(path)?;
                (
                    ListenerKind::Unix {
                        listener,
                        path: path.clone(),
                        id,
                    },
                    endpoint.clone(),
                )
            }
        };
        // The program says when it is ready: binding is one step of that.
        debug!(endpoint = %local, "bound");
        Ok(Listener {
            inner,
            local,
            secret: options.secret.clone(),
        })
    }

    /// The endpoint actually bound (the OS-chosen port when 0 was asked).
    pub fn local_endpoint(&self) -> &Endpoint {
        &self.local
    }

    /// The secret from the [`ListenOptions`].
    pub fn secret(&self) -> Option<&Secret> {
        self.secret.as_ref()
    }

    /// Waits for the next connection; TCP streams get `TCP_NODELAY`.
    pub fn accept(&self) -> Result<Stream> {
        match &self.inner {
            ListenerKind::Tcp(l) => {
                let (s, peer) = l.accept()?;
                s.set_nodelay(true)?;
                debug!(%peer, "accepted");
                Ok(Stream::Tcp(s))
            }
            ListenerKind::Unix { listener, .. } => {
                let (s, _) = listener.accept()?;
                debug!("accepted unix connection");
                Ok(Stream::Unix(s))
            }
        }
    }

    /// Accepts and wraps the stream in a [`Connection`].
    pub fn accept_connection(&self) -> Result<Connection<Stream>> {
        Ok(Connection::new(self.accept()?))
    }

    /// Puts the listening socket into (or out of) non-blocking mode, for a
    /// readiness loop (`mio`, `poll`): [`Listener::accept`] then fails with
    /// `WouldBlock` instead of waiting. Accepted streams stay blocking.
    pub fn set_nonblocking(&self, nonblocking: bool) -> Result<()> {
        match &self.inner {
            ListenerKind::Tcp(l) => l.set_nonblocking(nonblocking)?,
            ListenerKind::Unix { listener, .. } => listener.set_nonblocking(nonblocking)?,
        }
        Ok(())
    }

    /// A handle that wakes a thread blocked in [`Listener::accept`] on this
    /// listener, from any other thread: after [`ListenerWaker::wake`] every
    /// `accept` fails at once. It works on the socket itself, so it does not
    /// depend on the Unix socket file still existing (connecting to the
    /// path to wake the acceptor hangs for ever once someone deleted it).
    pub fn waker(&self) -> Result<ListenerWaker> {
        let socket = match &self.inner {
            ListenerKind::Tcp(l) => {
                socket2::Socket::from(std::os::fd::OwnedFd::from(l.try_clone()?))
            }
            ListenerKind::Unix { listener, .. } => {
                socket2::Socket::from(std::os::fd::OwnedFd::from(listener.try_clone()?))
            }
        };
        Ok(ListenerWaker { socket })
    }
}

/// Wakes the acceptor of a [`Listener`]; see [`Listener::waker`].
#[derive(Debug)]
pub struct ListenerWaker {
    /// A second descriptor of the listening socket.
    socket: socket2::Socket,
}

impl ListenerWaker {
    /// Makes every blocked and future `accept` on the listener fail.
    /// Linux wakes a thread blocked in `accept(2)` when its listening socket
    /// is shut down (the call fails with `EINVAL`); the descriptor stays
    /// open until the [`Listener`] is dropped.
    pub fn wake(&self) -> Result<()> {
        self.socket
            .shutdown(std::net::Shutdown::Both)
            .map_err(|e| Error::io("waking the acceptor", e))
    }
}

/// The listening socket's descriptor, to register it with a readiness loop.
impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.inner {
            ListenerKind::Tcp(l) => l.as_fd(),
            ListenerKind::Unix { listener, .. } => listener.as_fd(),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let ListenerKind::Unix { path, id, .. } = &self.inner {
            match std::fs::symlink_metadata(path) {
                Ok(m) if (m.dev(), m.ino()) == *id => {
                    if let Err(e) = std::fs::remove_file(path) {
                        warn!(path = %path.display(), error = %e, "could not remove socket file");
                    }
                }
                _ => debug!(path = %path.display(), "socket file is gone or replaced; left alone"),
            }
        }
    }
}

/// Binds a Unix socket at `path` with mode 0600 (see the module docs).
fn bind_unix(path: &Path) -> Result<(UnixListener, (u64, u64))> {
    check_unix_path(path)?;
    let shown = path.display();
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => {
                return Err(Error::SocketInUse {
                    path: path.to_owned(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                info!(path = %shown, "replacing stale socket file");
                std::fs::remove_file(path)
                    .map_err(|e| Error::io(format!("removing stale socket {shown}"), e))?;
            }
            Err(e) => return Err(Error::io(format!("probing existing socket {shown}"), e)),
        },
        Ok(_) => {
            return Err(Error::NotASocket {
                path: path.to_owned(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("checking {shown}"), e)),
    }

    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix)
        .map_err(|e| Error::io("random name", io::Error::other(e.to_string())))?;
    let hex: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let name = format!(".tessera-{hex}.sock");
    let tmp = dir.join(&name);

    // The temporary name must fit `sun_path` too. When the directory is too
    // long for it (the real path fits, but its name is shorter than the
    // temporary one), bind through `/proc/self/fd/N/`, which names the same
    // directory in a few bytes.
    let dir_handle;
    let bind_at = if tmp.as_os_str().len() <= MAX_UNIX_PATH {
        tmp.clone()
    } else {
        dir_handle = std::fs::File::open(&dir)
            .map_err(|e| Error::io(format!("opening directory {}", dir.display()), e))?;
        PathBuf::from(format!("/proc/self/fd/{}/{name}", dir_handle.as_raw_fd()))
    };
    let listener = UnixListener::bind(&bind_at)
        .map_err(|e| Error::io(format!("binding unix socket {}", tmp.display()), e))?;
    let cleanup = |tmp: &Path| {
        let _ = std::fs::remove_file(tmp);
    };
    if let Err(e) = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)) {
        cleanup(&tmp);
        return Err(Error::io(format!("chmod 0600 {}", tmp.display()), e));
    }
    // A hard link never replaces an existing file: if someone created the
    // path since we checked, we fail instead of stealing it.
    let linked = std::fs::hard_link(&tmp, path);
    cleanup(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(Error::SocketInUse {
                path: path.to_owned(),
            })
        }
        Err(e) => return Err(Error::io(format!("linking socket to {shown}"), e)),
    }
    let meta =
        std::fs::symlink_metadata(path).map_err(|e| Error::io(format!("checking {shown}"), e))?;
    Ok((listener, (meta.dev(), meta.ino())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for (input, shown) in [
            ("tcp:127.0.0.1:7000", "tcp:127.0.0.1:7000"),
            ("localhost:0", "tcp:localhost:0"),
            (":7000", "tcp:localhost:7000"),
            ("tcp:[::1]:80", "tcp:[::1]:80"),
            ("unix:/tmp/x.sock", "unix:/tmp/x.sock"),
            ("example.org:443", "tcp:example.org:443"),
        ] {
            let e: Endpoint = input.parse().unwrap();
            assert_eq!(e.to_string(), shown, "{input}");
            assert_eq!(shown.parse::<Endpoint>().unwrap(), e);
        }
    }

    #[test]
    fn parse_errors() {
        for bad in [
            "nohost",
            "tcp:1.2.3.4:99999",
            "::1:80",
            "[::1:80",
            "unix:",
            "a b:1",
        ] {
            assert!(
                matches!(bad.parse::<Endpoint>(), Err(Error::InvalidEndpoint { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_url_is_refused_with_the_forms_that_work() {
        let err = "http://localhost:7420".parse::<Endpoint>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid endpoint \"http://localhost:7420\": a http:// URL is not an endpoint: \
             tessera speaks its own framed protocol, not HTTP; use tcp:HOST:PORT, unix:PATH \
             or HOST:PORT"
        );
        assert!(!err.to_string().contains("brackets"), "{err}");
        let err = "tcp://localhost:7420".parse::<Endpoint>().unwrap_err();
        assert!(
            err.to_string()
                .ends_with("write tcp:HOST:PORT, without `//`"),
            "{err}"
        );
    }

    #[test]
    fn non_loopback_needs_secret_or_override() {
        let e = Endpoint::tcp("0.0.0.0", 0);
        assert!(matches!(
            Listener::bind(&e, &ListenOptions::default()),
            Err(Error::InsecureRemote { .. })
        ));
        let opts = ListenOptions {
            secret: Some(Secret::new("s").unwrap()),
            ..ListenOptions::default()
        };
        assert!(Listener::bind(&e, &opts).is_ok());
    }
}
