//! One render-service client seen from async code.
//!
//! The service answers each client on a blocking channel; a bridge owns one
//! client and a thread that hands each answer to the request waiting for
//! it (a `tokio` one-shot channel per request). The promise:
//! - Every tile asked through [`Bridge::render`] gets one answer: the
//!   service's, or `None` when the service shut down before answering
//!   (its channel closed).
//! - A request given up (its [`PendingTile`] dropped: the browser closed
//!   the connection or aborted the fetch) is cancelled in the service at
//!   once, so queued work nobody waits for is dropped, and a running
//!   render nobody waits for is stopped, like any other client's.
//! - A bridge that is dropped unregisters its client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use render_service::{ClientId, PriorityClass, RequestId, ServiceHandle, TileOutcome, TileRequest};
use tile_math::{TileCoord, Viewport};
use tokio::sync::oneshot;

type Waiting = Arc<Mutex<HashMap<RequestId, oneshot::Sender<TileOutcome>>>>;

/// A service client for async requests.
#[derive(Debug)]
pub struct Bridge {
    handle: ServiceHandle,
    client: ClientId,
    waiting: Waiting,
    next_id: AtomicU64,
}

impl Bridge {
    /// Registers a client and starts the thread that routes its answers.
    pub fn new(handle: ServiceHandle) -> std::io::Result<Arc<Bridge>> {
        let (client, events) = handle.register();
        let waiting: Waiting = Arc::default();
        let routes = Arc::clone(&waiting);
        std::thread::Builder::new()
            .name(format!("http-client-{client}"))
            .spawn(move || {
                // Ends when the service drops the client's channel: at
                // unregister or shutdown. Waiting requests then see their
                // sender dropped.
                for event in events {
                    let sender = lock(&routes).remove(&event.request_id);
                    if let Some(sender) = sender {
                        let _ = sender.send(event.outcome);
                    }
                }
                lock(&routes).clear();
            })?;
        Ok(Arc::new(Bridge {
            handle,
            client,
            waiting,
            next_id: AtomicU64::new(1),
        }))
    }

    /// Asks for one tile; `None` when the service is shutting down.
    pub fn render(
        self: &Arc<Self>,
        map: render_service::scheduler::MapId,
        tile: TileCoord,
        class: PriorityClass,
    ) -> Option<PendingTile> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        // In the table before the request goes: its answer may come at once.
        lock(&self.waiting).insert(id, sender);
        let submitted = self.handle.submit(TileRequest {
            client: self.client,
            request_id: id,
            map,
            tiles: vec![tile],
            class,
            deadline: None,
            force: false,
        });
        if !submitted {
            lock(&self.waiting).remove(&id);
            return None;
        }
        Some(PendingTile {
            bridge: Arc::clone(self),
            id,
            receiver: Some(receiver),
        })
    }

    /// The screen of this client: its queued work is re-ranked, and work
    /// more than `keep_ring` tiles outside it is cancelled.
    pub fn set_viewport(&self, viewport: Viewport, keep_ring: u32) {
        self.handle.set_viewport(self.client, viewport);
        self.handle.cancel_outside_viewport(self.client, keep_ring);
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.handle.unregister(self.client);
    }
}

fn lock(
    waiting: &Mutex<HashMap<RequestId, oneshot::Sender<TileOutcome>>>,
) -> std::sync::MutexGuard<'_, HashMap<RequestId, oneshot::Sender<TileOutcome>>> {
    // One insert or remove at a time: a poisoned table is consistent.
    waiting
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A tile asked for and not yet answered. Dropping it cancels the request.
#[derive(Debug)]
pub struct PendingTile {
    bridge: Arc<Bridge>,
    id: RequestId,
    receiver: Option<oneshot::Receiver<TileOutcome>>,
}

impl PendingTile {
    /// Waits for the answer; `None` if the service shut down first.
    pub async fn outcome(&mut self) -> Option<TileOutcome> {
        let receiver = self.receiver.as_mut()?;
        let outcome = receiver.await.ok();
        self.receiver = None;
        outcome
    }
}

impl PendingTile {
    /// Stops waiting without cancelling: the render goes on and is stored
    /// for the next request (a render timeout served the stale tile).
    pub fn detach(mut self) {
        self.receiver = None;
    }
}

impl Drop for PendingTile {
    fn drop(&mut self) {
        if self.receiver.is_some() {
            // Given up before its answer: nobody waits for it any more.
            lock(&self.bridge.waiting).remove(&self.id);
            self.bridge.handle.cancel(self.bridge.client, vec![self.id]);
        }
    }
}
