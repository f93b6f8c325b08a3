//! The server: listeners for the framed protocol (TCP and Unix at the same
//! time) and for the legacy line protocol, an acceptor thread each, a
//! session thread per connection, and graceful shutdown.
//!
//! Connection slots cannot be held for ever: connections still in their
//! handshake are bounded apart from established sessions (a new one closes
//! the oldest, which is the slowest), the handshake has one deadline, and
//! idle sessions are closed (see [`crate::session`]).
//!
//! Shutdown: acceptors are woken through their sockets (not by connecting
//! to them, which hangs once someone deleted a Unix socket's file), the
//! service answers every queued tile, each session sends its last answers,
//! `BatchDone`s and `Goodbye`, and `shutdown` returns only when every
//! session has ended (or the write timeout has passed for clients that do
//! not read).
//!
//! Secure defaults come from ipc-proto: TCP binds loopback unless told
//! otherwise, binding beyond loopback needs a shared secret (or an explicit
//! override), Unix sockets are created with mode 0600. The legacy protocol
//! and renderd's protocol have no authentication at all, so they are
//! refused on a non-loopback address unless the override is set; renderd
//! sockets get the configured mode (mod_tile connects as the web server's
//! user).

use std::collections::VecDeque;
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipc_proto::{
    Connection, Endpoint, ListenOptions, Listener, ListenerWaker, Message, Secret, Stream,
    Transport,
};

use crate::config::ValidConfig;
use crate::legacy_session::{serve_legacy_connection, LegacyOptions};
use crate::renderd_session::{accept_renderd, RenderdOptions};
use crate::service::{ServiceError, ServiceHandle, TileService};
use crate::session::{handshake, serve_session, SessionLimits};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The service (maps, store, threads) could not start.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// A listener could not be bound.
    #[error("cannot listen on {endpoint}: {}", without_context(source))]
    Listen {
        /// The endpoint.
        endpoint: String,
        /// Why.
        source: ipc_proto::Error,
    },
    /// The secret file could not be read (the message names it).
    #[error("{0}")]
    Secret(ipc_proto::Error),
    /// A thread could not be started.
    #[error("cannot start thread: {0}")]
    Thread(std::io::Error),
}

impl ServerError {
    /// Whether the configuration is at fault (a style or its data that
    /// does not load, an unreadable secret file, an address that may not
    /// be served without a secret) rather than the machine the server runs
    /// on (a port in use, a tile directory that cannot be made, no
    /// threads). `tile-server` exits 2 for the first, 1 for the second.
    pub fn is_configuration(&self) -> bool {
        match self {
            ServerError::Service(ServiceError::Map { .. }) | ServerError::Secret(_) => true,
            ServerError::Listen { source, .. } => matches!(
                source,
                ipc_proto::Error::InsecureRemote { .. }
                    | ipc_proto::Error::InsecureLegacy { .. }
                    | ipc_proto::Error::InsecureRenderd { .. }
            ),
            _ => false,
        }
    }
}

/// A bind error without ipc-proto's own "binding ENDPOINT" context, which
/// the message has said already.
fn without_context(error: &ipc_proto::Error) -> String {
    match error {
        ipc_proto::Error::IoContext { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

/// A running server. [`Server::shutdown`] stops it gracefully.
#[derive(Debug)]
pub struct Server {
    service: Option<TileService>,
    handle: ServiceHandle,
    endpoints: Vec<Endpoint>,
    legacy_endpoint: Option<Endpoint>,
    renderd_endpoints: Vec<Endpoint>,
    acceptors: Vec<JoinHandle<()>>,
    wakers: Vec<ListenerWaker>,
    stopping: Arc<AtomicBool>,
    sessions: Arc<SessionCount>,
    handshakes: Arc<Handshakes>,
    /// How long shutdown waits for sessions to hand over their last answers.
    drain_timeout: Duration,
}

/// Sessions running now, so that shutdown can wait for their last answers.
#[derive(Debug, Default)]
pub(crate) struct SessionCount {
    running: Mutex<usize>,
    ended: Condvar,
}

impl SessionCount {
    fn lock(&self) -> std::sync::MutexGuard<'_, usize> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a session until the guard is dropped.
    pub(crate) fn enter(self: &Arc<Self>) -> SessionGuard {
        *self.lock() += 1;
        SessionGuard(Arc::clone(self))
    }

    /// Waits until no session runs, or `timeout` passes; returns how many
    /// still run.
    fn wait_all(&self, timeout: Duration) -> usize {
        let until = Instant::now() + timeout;
        let mut running = self.lock();
        while *running > 0 {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            running = self
                .ended
                .wait_timeout(running, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        *running
    }
}

/// One running session, counted in [`SessionCount`].
pub(crate) struct SessionGuard(Arc<SessionCount>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        *self.0.lock() -= 1;
        self.0.ended.notify_all();
    }
}

/// Connections in their handshake, oldest first, bounded: admitting one
/// more than the limit closes the oldest, if it has had at least
/// [`EVICTABLE_AFTER`]. A real client finishes its handshake in well under
/// a millisecond, so under a flood of silent or trickling connections it
/// is the flood that is evicted, while a burst of real clients connecting
/// together (younger than that) may briefly go over the limit, up to
/// [`HARD_LIMIT_FACTOR`] times it; past that new connections are refused.
#[derive(Debug)]
struct Handshakes {
    max: usize,
    next_id: AtomicU64,
    open: Mutex<VecDeque<(u64, Instant, Stream)>>,
}

/// A connection still in its handshake after this long may be evicted.
const EVICTABLE_AFTER: Duration = Duration::from_millis(250);
/// How far above `max_handshakes` a burst of young connections may go.
const HARD_LIMIT_FACTOR: usize = 4;

/// What [`Handshakes::admit`] did.
enum Admitted {
    /// Admitted with this id; `evicted` older connections were closed.
    Yes { id: u64, evicted: bool },
    /// Too many young handshakes at once: refuse this one.
    No,
}

impl Handshakes {
    fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            next_id: AtomicU64::new(0),
            open: Mutex::new(VecDeque::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, Instant, Stream)>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits a connection (a second handle of its socket), evicting the
    /// oldest when full.
    fn admit(&self, socket: Stream) -> Admitted {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut open = self.lock();
        let mut evicted = false;
        while open.len() >= self.max {
            match open.front() {
                Some((_, since, _)) if now.duration_since(*since) >= EVICTABLE_AFTER => {
                    if let Some((_, _, oldest)) = open.pop_front() {
                        // Its session thread's next read sees EOF, and its
                        // handshake fails; writing stays possible, so one
                        // that finished its handshake just now can still
                        // be told why it is closed.
                        let _ = oldest.shutdown(Shutdown::Read);
                        evicted = true;
                    }
                }
                _ => break,
            }
        }
        if open.len() >= self.max * HARD_LIMIT_FACTOR {
            return Admitted::No;
        }
        open.push_back((id, now, socket));
        Admitted::Yes { id, evicted }
    }

    /// The handshake of `id` has ended (either way). `false` if it had
    /// been evicted or closed for shutdown meanwhile.
    fn done(&self, id: u64) -> bool {
        let mut open = self.lock();
        let before = open.len();
        open.retain(|(i, _, _)| *i != id);
        open.len() < before
    }

    /// Wakes every connection still in its handshake so that it ends
    /// (shutdown): reads see EOF; a session that finished its handshake
    /// at that very moment learns it from [`Handshakes::done`] and says
    /// goodbye.
    fn close_all(&self) {
        for (_, _, socket) in self.lock().drain(..) {
            let _ = socket.shutdown(Shutdown::Read);
        }
    }
}

impl Server {
    /// Loads the maps, binds every listener and starts serving.
    pub fn start(config: &ValidConfig) -> Result<Server, ServerError> {
        let raw = &config.raw.server;
        let secret = match &raw.secret_file {
            Some(path) => Some(Secret::from_file(path).map_err(ServerError::Secret)?),
            None => None,
        };
        let options = ListenOptions {
            secret: secret.clone(),
            allow_insecure_remote: raw.allow_insecure_remote,
        };
        // Bind before loading maps: a busy port is reported at once.
        let mut listeners = Vec::new();
        for endpoint in &config.listen {
            let listener =
                Listener::bind(endpoint, &options).map_err(|source| ServerError::Listen {
                    endpoint: endpoint.to_string(),
                    source,
                })?;
            listeners.push(listener);
        }
        let legacy = match &config.legacy_listen {
            Some(endpoint) => {
                // The legacy protocol cannot authenticate: a secret does not
                // make it safe to expose, and the refusal says so.
                let listener = ipc_proto::legacy::bind_legacy(
                    endpoint,
                    raw.allow_insecure_remote,
                    secret.is_some(),
                )
                .map_err(|source| ServerError::Listen {
                    endpoint: endpoint.to_string(),
                    source,
                })?;
                Some(listener)
            }
            None => None,
        };
        let mut renderd_listeners = Vec::new();
        for endpoint in &config.renderd_listen {
            let listener = ipc_proto::renderd::bind_renderd(
                endpoint,
                raw.allow_insecure_remote,
                config.renderd_socket_mode,
            )
            .map_err(|source| ServerError::Listen {
                endpoint: endpoint.to_string(),
                source,
            })?;
            renderd_listeners.push(listener);
        }
        let service = TileService::start(config)?;
        let handle = service.handle();
        let stopping = Arc::new(AtomicBool::new(false));
        let endpoints: Vec<Endpoint> = listeners
            .iter()
            .map(|l| l.local_endpoint().clone())
            .collect();
        let legacy_endpoint = legacy.as_ref().map(|l| l.local_endpoint().clone());
        let renderd_endpoints: Vec<Endpoint> = renderd_listeners
            .iter()
            .map(|l| l.local_endpoint().clone())
            .collect();
        let limits = SessionLimits {
            max_tiles_per_request: raw.max_tiles_per_request,
            max_frame: raw.max_frame_bytes,
            handshake_timeout: Duration::from_millis(raw.handshake_timeout_ms),
            idle_timeout: (raw.idle_timeout_ms > 0)
                .then(|| Duration::from_millis(raw.idle_timeout_ms)),
            write_timeout: Duration::from_millis(raw.write_timeout_ms),
        };
        let drain_timeout = limits.write_timeout + Duration::from_secs(2);
        let sessions = Arc::new(SessionCount::default());
        let handshakes = Arc::new(Handshakes::new(raw.max_handshakes));
        let max_connections = raw.max_connections;
        let mut acceptors = Vec::new();
        let mut wakers = Vec::new();
        for listener in listeners {
            wakers.push(listener.waker().map_err(|source| ServerError::Listen {
                endpoint: listener.local_endpoint().to_string(),
                source,
            })?);
            let framed = FramedAcceptor {
                service: handle.clone(),
                stopping: Arc::clone(&stopping),
                limits: limits.clone(),
                secret: secret.clone(),
                max_connections,
                sessions: Arc::clone(&sessions),
                handshakes: Arc::clone(&handshakes),
            };
            let acceptor = std::thread::Builder::new()
                .name(format!("accept {}", listener.local_endpoint()))
                .spawn(move || framed.run(listener))
                .map_err(ServerError::Thread)?;
            acceptors.push(acceptor);
        }
        if let Some(listener) = legacy {
            wakers.push(listener.waker().map_err(|source| ServerError::Listen {
                endpoint: listener.local_endpoint().to_string(),
                source,
            })?);
            let listen_port = match listener.local_endpoint() {
                Endpoint::Tcp { port, .. } => *port,
                Endpoint::Unix(_) => 0,
            };
            let millis = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
            let legacy_options = LegacyOptions {
                callback_style: config.legacy_callback_style,
                callback_offset: raw.legacy_callback_offset,
                listen_port,
                callback_timeout: Duration::from_secs(5),
                idle_timeout: millis(raw.legacy_idle_timeout_ms),
                batch_timeout: millis(raw.legacy_batch_timeout_ms),
            };
            let (handle, stopping, legacy_sessions) =
                (handle.clone(), Arc::clone(&stopping), Arc::clone(&sessions));
            // Legacy connections have slots of their own: they cannot take
            // the framed clients' `max_connections`.
            let legacy_max = raw.legacy_max_connections;
            let acceptor = std::thread::Builder::new()
                .name("accept legacy".into())
                .spawn(move || {
                    accept_legacy(
                        listener,
                        handle,
                        stopping,
                        legacy_options,
                        legacy_max,
                        legacy_sessions,
                    )
                })
                .map_err(ServerError::Thread)?;
            acceptors.push(acceptor);
        }
        let renderd_options = RenderdOptions {
            idle_timeout: limits.idle_timeout,
            write_timeout: limits.write_timeout,
        };
        for listener in renderd_listeners {
            wakers.push(listener.waker().map_err(|source| ServerError::Listen {
                endpoint: listener.local_endpoint().to_string(),
                source,
            })?);
            let (handle, stopping, sessions) =
                (handle.clone(), Arc::clone(&stopping), Arc::clone(&sessions));
            let max = raw.renderd_max_connections;
            let acceptor = std::thread::Builder::new()
                .name(format!("accept renderd {}", listener.local_endpoint()))
                .spawn(move || {
                    accept_renderd(listener, handle, stopping, renderd_options, max, sessions)
                })
                .map_err(ServerError::Thread)?;
            acceptors.push(acceptor);
        }
        for endpoint in &endpoints {
            tracing::info!(%endpoint, "listening");
        }
        for endpoint in &renderd_endpoints {
            tracing::info!(%endpoint, "listening (renderd protocol)");
        }
        if let Some(endpoint) = &legacy_endpoint {
            tracing::info!(%endpoint, "listening (legacy line protocol)");
        }
        // "ready" is the program's to say, once its other listeners (HTTP)
        // are bound too: tile-server logs it.
        Ok(Server {
            service: Some(service),
            handle,
            endpoints,
            legacy_endpoint,
            renderd_endpoints,
            acceptors,
            wakers,
            stopping,
            sessions,
            handshakes,
            drain_timeout,
        })
    }

    /// Where the framed protocol is served (with the real port when 0 was
    /// asked for).
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// Where the legacy protocol is served.
    pub fn legacy_endpoint(&self) -> Option<&Endpoint> {
        self.legacy_endpoint.as_ref()
    }

    /// Where renderd's protocol is served.
    pub fn renderd_endpoints(&self) -> &[Endpoint] {
        &self.renderd_endpoints
    }

    /// The service, for stats or in-process requests.
    pub fn handle(&self) -> &ServiceHandle {
        &self.handle
    }

    /// Stops accepting, answers queued work `Cancelled`, lets running
    /// renders finish and be delivered, lets every session send its last
    /// answers, `BatchDone`s and `Goodbye`, and ends the threads. Unix
    /// socket files are removed (when they are still ours).
    pub fn shutdown(mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake each acceptor from its blocking accept() through the socket
        // itself; it sees the flag and returns, dropping its listener.
        for waker in &self.wakers {
            if let Err(e) = waker.wake() {
                tracing::warn!("{e}");
            }
        }
        for acceptor in self.acceptors.drain(..) {
            let _ = acceptor.join();
        }
        // Nobody in a handshake has a request to answer.
        self.handshakes.close_all();
        if let Some(service) = self.service.take() {
            service.shutdown();
        }
        let left = self.sessions.wait_all(self.drain_timeout);
        if left > 0 {
            tracing::warn!(
                sessions = left,
                "shutdown: sessions still writing after {} s; leaving them",
                self.drain_timeout.as_secs()
            );
        }
    }
}

/// The acceptor of one framed-protocol listener and what its sessions
/// share.
struct FramedAcceptor {
    service: ServiceHandle,
    stopping: Arc<AtomicBool>,
    limits: SessionLimits,
    secret: Option<Secret>,
    max_connections: usize,
    sessions: Arc<SessionCount>,
    handshakes: Arc<Handshakes>,
}

impl FramedAcceptor {
    fn run(self, listener: Listener) {
        let mut failures = 0u32;
        loop {
            let stream = match listener.accept() {
                Ok(stream) => {
                    failures = 0;
                    stream
                }
                Err(e) => {
                    if self.stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    // Out of file descriptors and the like: back off rather
                    // than spin, as mini-redis does.
                    failures += 1;
                    tracing::error!("accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(10u64 << failures.min(8)));
                    continue;
                }
            };
            if self.stopping.load(Ordering::SeqCst) {
                refuse(stream, crate::session::SHUTDOWN_GOODBYE);
                return;
            }
            if self.service.counters().open_connections() >= self.max_connections as u64 {
                refuse(stream, "too many connections; try again later");
                continue;
            }
            self.spawn_session(stream);
        }
    }

    fn spawn_session(&self, stream: Stream) {
        let Ok(second) = stream.try_clone() else {
            refuse(stream, "the server cannot serve this connection now");
            return;
        };
        let (slot, evicted) = match self.handshakes.admit(second) {
            Admitted::Yes { id, evicted } => (id, evicted),
            Admitted::No => {
                refuse(
                    stream,
                    "too many connections in their handshake; try again later",
                );
                return;
            }
        };
        if evicted {
            self.service.counters().handshake_evicted();
            tracing::info!("closed the oldest connection still in its handshake to make room");
        }
        let guard = self.sessions.enter();
        let (service, limits, secret, handshakes, stopping) = (
            self.service.clone(),
            self.limits.clone(),
            self.secret.clone(),
            Arc::clone(&self.handshakes),
            Arc::clone(&self.stopping),
        );
        let spawned = std::thread::Builder::new()
            .name("session".into())
            .spawn(move || {
                let _guard = guard;
                let peer = stream.peer_description();
                let mut conn = Connection::new(stream);
                let hello = handshake(&mut conn, secret.as_ref(), &limits);
                let kept = handshakes.done(slot);
                let result = match hello {
                    // Welcomed, but closed for shutdown (or evicted) in the
                    // same instant: say so instead of vanishing.
                    Ok(_) if !kept || stopping.load(Ordering::SeqCst) => {
                        let reason = if stopping.load(Ordering::SeqCst) {
                            crate::session::SHUTDOWN_GOODBYE
                        } else {
                            "too many connections in their handshake; try again"
                        };
                        let _ = conn.send(&Message::Goodbye {
                            reason: reason.into(),
                        });
                        crate::session::linger_close(conn.get_ref());
                        Ok(())
                    }
                    Ok(hello) => {
                        service.counters().connection(true);
                        let result = serve_session(conn, &hello, &service, &limits);
                        service.counters().connection(false);
                        result
                    }
                    Err(e) => {
                        crate::session::linger_close(conn.get_ref());
                        Err(e)
                    }
                };
                if let Err(e) = result {
                    tracing::info!(%peer, "session ended: {e}");
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start a session thread: {e}");
        }
    }
}

/// Connections of one kind (legacy, renderd) open at once, at most `max`,
/// counted apart from the framed connections: a slot per connection,
/// given back when its session thread ends, however it ends.
#[derive(Debug)]
pub(crate) struct ConnectionSlots {
    open: Arc<AtomicUsize>,
    max: usize,
}

/// One connection's place among its [`ConnectionSlots`].
#[derive(Debug)]
pub(crate) struct ConnectionSlot(Arc<AtomicUsize>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ConnectionSlots {
    pub(crate) fn new(max: usize) -> ConnectionSlots {
        ConnectionSlots {
            open: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// A slot, or `None` when all are taken. Only the acceptor takes
    /// slots, so checking and then counting is not a race.
    pub(crate) fn take(&self) -> Option<ConnectionSlot> {
        if self.open.load(Ordering::SeqCst) >= self.max {
            return None;
        }
        self.open.fetch_add(1, Ordering::SeqCst);
        Some(ConnectionSlot(Arc::clone(&self.open)))
    }
}

/// Runs one accepted connection's session on a thread of its own (named
/// `kind session`), holding its slot and counted for shutdown, which waits
/// for the answers the session owes.
pub(crate) fn spawn_session(
    kind: &str,
    slot: ConnectionSlot,
    sessions: &Arc<SessionCount>,
    run: impl FnOnce() -> Result<(), String> + Send + 'static,
) {
    let guard = sessions.enter();
    let name = kind.to_owned();
    let spawned = std::thread::Builder::new()
        .name(format!("{kind} session"))
        .spawn(move || {
            let _slot = slot;
            let _guard = guard;
            if let Err(e) = run() {
                tracing::info!("{name} session ended: {e}");
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start a {kind} session thread: {e}");
    }
}

fn refuse(stream: Stream, reason: &str) {
    let mut conn = Connection::new(stream);
    let _ = conn.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = conn.send(&Message::Goodbye {
        reason: reason.into(),
    });
    let _ = conn.shutdown();
}

/// Accepts legacy connections, at most `max_connections` at once (counted
/// here, apart from the framed connections and their stats); one more is
/// closed at once, since the line protocol has no way to say why.
fn accept_legacy(
    listener: Listener,
    service: ServiceHandle,
    stopping: Arc<AtomicBool>,
    options: LegacyOptions,
    max_connections: usize,
    sessions: Arc<SessionCount>,
) {
    let slots = ConnectionSlots::new(max_connections);
    loop {
        let stream = match listener.accept() {
            Ok(stream) => stream,
            Err(e) => {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                tracing::error!("legacy accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Stream::Tcp(tcp) = stream else { continue };
        let Some(slot) = slots.take() else {
            tracing::info!(max_connections, "too many legacy connections; one closed");
            let _ = tcp.shutdown(Shutdown::Both);
            continue;
        };
        let service = service.clone();
        // The legacy client's answers are its callbacks and `done`s.
        spawn_session("legacy", slot, &sessions, move || {
            serve_legacy_connection(tcp, &service, options).map_err(|e| e.to_string())
        });
    }
}
