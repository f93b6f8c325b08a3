//! The server: listeners for the framed protocol (TCP and Unix at the same
//! time) and for the legacy line protocol, an acceptor thread each, a
//! session thread per connection, and graceful shutdown.
//!
//! Secure defaults come from ipc-proto: TCP binds loopback unless told
//! otherwise, binding beyond loopback needs a shared secret (or an explicit
//! override), Unix sockets are created with mode 0600. The legacy protocol
//! has no authentication at all, so it is refused on a non-loopback address
//! unless the override is set.

use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ipc_proto::{
    Connection, Endpoint, ListenOptions, Listener, Message, Secret, Stream, Transport,
};

use crate::config::ValidConfig;
use crate::legacy_session::{serve_legacy_connection, LegacyOptions};
use crate::service::{ServiceError, ServiceHandle, TileService};
use crate::session::{serve_connection, SessionLimits};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The service (maps, store, threads) could not start.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// A listener could not be bound.
    #[error("cannot listen on {endpoint}: {source}")]
    Listen {
        /// The endpoint.
        endpoint: String,
        /// Why.
        source: ipc_proto::Error,
    },
    /// The secret file could not be read.
    #[error("secret file: {0}")]
    Secret(ipc_proto::Error),
    /// A thread could not be started.
    #[error("cannot start thread: {0}")]
    Thread(std::io::Error),
}

/// A running server. [`Server::shutdown`] stops it gracefully.
#[derive(Debug)]
pub struct Server {
    service: Option<TileService>,
    handle: ServiceHandle,
    endpoints: Vec<Endpoint>,
    legacy_endpoint: Option<Endpoint>,
    acceptors: Vec<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
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
                // make it safe to expose.
                let legacy_options = ListenOptions {
                    secret: None,
                    allow_insecure_remote: raw.allow_insecure_remote,
                };
                let listener = Listener::bind(endpoint, &legacy_options).map_err(|source| {
                    ServerError::Listen {
                        endpoint: endpoint.to_string(),
                        source,
                    }
                })?;
                Some(listener)
            }
            None => None,
        };
        let service = TileService::start(config)?;
        let handle = service.handle();
        let stopping = Arc::new(AtomicBool::new(false));
        let endpoints: Vec<Endpoint> = listeners
            .iter()
            .map(|l| l.local_endpoint().clone())
            .collect();
        let legacy_endpoint = legacy.as_ref().map(|l| l.local_endpoint().clone());
        let limits = SessionLimits {
            max_tiles_per_request: raw.max_tiles_per_request,
            max_frame: raw.max_frame_bytes,
            ..SessionLimits::default()
        };
        let max_connections = raw.max_connections;
        let mut acceptors = Vec::new();
        for listener in listeners {
            let (handle, stopping, limits, secret) = (
                handle.clone(),
                Arc::clone(&stopping),
                limits.clone(),
                secret.clone(),
            );
            let acceptor = std::thread::Builder::new()
                .name(format!("accept {}", listener.local_endpoint()))
                .spawn(move || {
                    accept_framed(listener, handle, stopping, limits, secret, max_connections)
                })
                .map_err(ServerError::Thread)?;
            acceptors.push(acceptor);
        }
        if let Some(listener) = legacy {
            let listen_port = match listener.local_endpoint() {
                Endpoint::Tcp { port, .. } => *port,
                Endpoint::Unix(_) => 0,
            };
            let legacy_options = LegacyOptions {
                callback_style: config.legacy_callback_style,
                callback_offset: raw.legacy_callback_offset,
                listen_port,
                callback_timeout: Duration::from_secs(5),
            };
            let (handle, stopping) = (handle.clone(), Arc::clone(&stopping));
            let acceptor = std::thread::Builder::new()
                .name("accept legacy".into())
                .spawn(move || {
                    accept_legacy(listener, handle, stopping, legacy_options, max_connections)
                })
                .map_err(ServerError::Thread)?;
            acceptors.push(acceptor);
        }
        for endpoint in &endpoints {
            tracing::info!(%endpoint, "listening");
        }
        if let Some(endpoint) = &legacy_endpoint {
            tracing::info!(%endpoint, "listening (legacy line protocol)");
        }
        Ok(Server {
            service: Some(service),
            handle,
            endpoints,
            legacy_endpoint,
            acceptors,
            stopping,
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

    /// The service, for stats or in-process requests.
    pub fn handle(&self) -> &ServiceHandle {
        &self.handle
    }

    /// Stops accepting, answers queued work `Cancelled`, lets running
    /// renders finish and be delivered, and ends the threads. Unix socket
    /// files are removed.
    pub fn shutdown(mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake each acceptor from its blocking accept() with a connection
        // of our own; it sees the flag and returns, dropping its listener.
        for endpoint in self.endpoints.iter().chain(self.legacy_endpoint.as_ref()) {
            if let Ok(stream) = endpoint.connect() {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
        for acceptor in self.acceptors.drain(..) {
            let _ = acceptor.join();
        }
        if let Some(service) = self.service.take() {
            service.shutdown();
        }
    }
}

fn accept_framed(
    listener: Listener,
    service: ServiceHandle,
    stopping: Arc<AtomicBool>,
    limits: SessionLimits,
    secret: Option<Secret>,
    max_connections: usize,
) {
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
                // Out of file descriptors and the like: back off rather
                // than spin, as mini-redis does.
                failures += 1;
                tracing::error!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(10u64 << failures.min(8)));
                continue;
            }
        };
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        if service.counters().open_connections() >= max_connections as u64 {
            refuse(stream, "too many connections; try again later");
            continue;
        }
        let (service, limits, secret) = (service.clone(), limits.clone(), secret.clone());
        service.counters().connection(true);
        let spawned = std::thread::Builder::new()
            .name("session".into())
            .spawn(move || {
                let peer = stream.peer_description();
                if let Err(e) =
                    serve_connection(Connection::new(stream), &service, secret.as_ref(), &limits)
                {
                    tracing::info!(%peer, "session ended: {e}");
                }
                service.counters().connection(false);
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start a session thread: {e}");
        }
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

fn accept_legacy(
    listener: Listener,
    service: ServiceHandle,
    stopping: Arc<AtomicBool>,
    options: LegacyOptions,
    max_connections: usize,
) {
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
        if service.counters().open_connections() >= max_connections as u64 {
            let _ = tcp.shutdown(Shutdown::Both);
            continue;
        }
        let service = service.clone();
        service.counters().connection(true);
        let spawned = std::thread::Builder::new()
            .name("legacy session".into())
            .spawn(move || {
                if let Err(e) = serve_legacy_connection(tcp, &service, options) {
                    tracing::info!("legacy session ended: {e}");
                }
                service.counters().connection(false);
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start a legacy session thread: {e}");
        }
    }
}
