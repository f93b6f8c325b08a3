//! [`HttpServer`]: the listeners, the connections and their limits.
//!
//! - Binds every `http.listen` address before it returns (a port in use is
//!   an error at start), on a small tokio runtime of its own: the render
//!   service's scheduler and workers stay synchronous threads.
//! - At most `http.max_connections` connections are open; more wait in the
//!   kernel's accept queue. A request's head must arrive within
//!   `http.header_timeout_ms` and fit in `http.max_header_bytes`: a slow or
//!   oversized client is answered `408`/`431` (hyper's) and closed, without
//!   holding a slot.
//! - Shutdown: [`HttpServer::stop_accepting`] closes the listeners and asks
//!   every connection to finish the request it has (a render it waits for
//!   is answered by the service: done, or cancelled by its shutdown, which
//!   is `503`); [`HttpServer::shutdown`] then waits for them, at most
//!   [`DRAIN_TIMEOUT`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use render_service::{ServiceHandle, ValidConfig};
use tokio::sync::{watch, Semaphore};

use crate::handler::{self, State};

/// How long shutdown waits for open requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the HTTP front could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// A listener could not be bound.
    #[error("cannot listen on http://{address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime or a thread could not be started.
    #[error("cannot start the HTTP front: {0}")]
    Start(std::io::Error),
}

/// The HTTP front of a running service.
#[derive(Debug)]
pub struct HttpServer {
    runtime: Option<tokio::runtime::Runtime>,
    addresses: Vec<SocketAddr>,
    stop: watch::Sender<bool>,
    /// Connections still open (a permit each).
    connections: Arc<Semaphore>,
    max_connections: usize,
}

impl HttpServer {
    /// Binds `config`'s HTTP addresses and serves `service` on them.
    pub fn start(config: &ValidConfig, service: ServiceHandle) -> Result<HttpServer, HttpError> {
        let http = &config.raw.http;
        // As many threads as the cores it may run on (at most 4): one more
        // than that only switches between them.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("http")
            .enable_all()
            .build()
            .map_err(HttpError::Start)?;
        let mut listeners = Vec::new();
        for &address in &config.http_listen {
            let bound = std::net::TcpListener::bind(address)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|source| HttpError::Listen { address, source })?;
            listeners.push(bound);
        }
        let addresses = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let state = Arc::new(State::new(config, service).map_err(HttpError::Start)?);
        let (stop, stopped) = watch::channel(false);
        let connections = Arc::new(Semaphore::new(http.max_connections));
        let limits = Limits {
            header_timeout: Duration::from_millis(http.header_timeout_ms),
            max_header_bytes: http.max_header_bytes,
        };
        for listener in listeners {
            let _guard = runtime.enter();
            let listener = tokio::net::TcpListener::from_std(listener).map_err(HttpError::Start)?;
            runtime.spawn(accept_loop(
                listener,
                Arc::clone(&state),
                Arc::clone(&connections),
                stopped.clone(),
                limits,
            ));
        }
        Ok(HttpServer {
            runtime: Some(runtime),
            addresses,
            stop,
            connections,
            max_connections: http.max_connections,
        })
    }

    /// The addresses served (with the ports the system chose for port 0).
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// Closes the listeners and asks every connection to end after the
    /// request it has.
    pub fn stop_accepting(&self) {
        let _ = self.stop.send(true);
    }

    /// Stops accepting (if not yet) and waits for open connections, at
    /// most [`DRAIN_TIMEOUT`].
    pub fn shutdown(mut self) {
        self.stop_accepting();
        if let Some(runtime) = self.runtime.take() {
            let all = u32::try_from(self.max_connections).unwrap_or(u32::MAX);
            let connections = Arc::clone(&self.connections);
            runtime.block_on(async move {
                // Every permit back: every connection has ended.
                let _ = tokio::time::timeout(DRAIN_TIMEOUT, connections.acquire_many(all)).await;
            });
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// Until shutdown is asked (or the server is gone).
async fn wait_for_stop(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    header_timeout: Duration,
    max_header_bytes: usize,
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    connections: Arc<Semaphore>,
    mut stopped: watch::Receiver<bool>,
    limits: Limits,
) {
    loop {
        // A slot first: beyond the limit, connections wait in the backlog.
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            () = wait_for_stop(&mut stopped) => return,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = wait_for_stop(&mut stopped) => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                tracing::warn!("http accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, std::convert::Infallible>(handler::handle(&state, request).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(limits.max_header_bytes.max(8192))
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = wait_for_stop(&mut stopped) => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, "http connection ended: {e}");
            }
            drop(permit);
        });
    }
}
