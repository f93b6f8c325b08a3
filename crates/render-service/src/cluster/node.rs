//! A render node: an ordinary [`TileService`](crate::TileService) (warm
//! renderers, the shared store, reloads) fed from the engine instead of
//! from client sessions.
//!
//! - **claim** (one thread) keeps one job per render thread in hand: it
//!   claims the most urgent job of the style versions this node has, and
//!   submits its metatile to the service as one request (which still
//!   answers from the store when another render got there first). With
//!   nothing queued it waits on the engine's wake-up list.
//! - **report** (one thread) collects the service's answers; when a job's
//!   tiles are all answered it reports the job (`done`, `failed:<kind>` or
//!   `stopped`) and frees its slot. It renews every held lease each third
//!   of the lease; a renewal refused (nobody wants the job any more, or
//!   the lease was lost) cancels the request, which stops the render.
//!   A report the engine did not take is kept and sent again.
//! - Every few seconds it compares its style versions with those the
//!   fronts publish, and says in its log which maps it refuses and why.
//!
//! Shutdown stops claiming, lets the jobs in hand finish and reports them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, tick, Receiver, Sender};

use super::engine::{Engine, EngineError};
use super::{process_id, queue_name, ClusterSettings, JobName};
use crate::scheduler::{ClientId, MapId, PriorityClass, RequestId, TileRequest};
use crate::service::{ClientEvent, ServiceHandle, TileOutcome};

/// A running render node. [`RenderNode::shutdown`] before the service's.
#[derive(Debug)]
pub struct RenderNode {
    id: String,
    closing: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// A job in hand: its request to the service and what came back so far.
struct InHand {
    job: JobName,
    tiles_left: usize,
    failure: Option<(u8, String)>,
    cancelled: usize,
    render_ms: u32,
}

/// What both threads share.
struct Node {
    id: String,
    settings: ClusterSettings,
    service: ServiceHandle,
    client: ClientId,
    in_hand: Mutex<HashMap<RequestId, InHand>>,
    closing: Arc<AtomicBool>,
}

impl Node {
    fn in_hand(&self) -> std::sync::MutexGuard<'_, HashMap<RequestId, InHand>> {
        self.in_hand
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The queues this node can serve now (the maps may be reloaded), with
    /// the map each is for.
    fn queues(&self) -> Vec<(String, MapId)> {
        let maps = self.service.maps();
        maps.ids()
            .filter_map(|id| {
                let entry = maps.get(id)?;
                Some((queue_name(&entry.name, &entry.style_version), id))
            })
            .collect()
    }
}

impl RenderNode {
    /// Starts drawing jobs from the engine with `service`, `slots` at a
    /// time (its render threads).
    pub fn start(
        service: ServiceHandle,
        settings: &ClusterSettings,
        slots: usize,
    ) -> Result<RenderNode, EngineError> {
        let claim_engine = Engine::new(&settings.url, &settings.prefix)?;
        let report_engine = Engine::new(&settings.url, &settings.prefix)?;
        let (client, events) = service.register();
        let closing = Arc::new(AtomicBool::new(false));
        let node = Arc::new(Node {
            id: process_id("node"),
            settings: settings.clone(),
            service,
            client,
            in_hand: Mutex::new(HashMap::new()),
            closing: Arc::clone(&closing),
        });
        tracing::info!(
            node = %node.id,
            engine = %super::redacted(&settings.url),
            slots,
            "render node"
        );
        let slots = slots.max(1);
        let (free, free_rx) = bounded::<()>(slots);
        for _ in 0..slots {
            let _ = free.send(());
        }
        let spawn = |name: &str, body: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(body)
                .map_err(EngineError::Thread)
        };
        let claimer = {
            let (node, free) = (Arc::clone(&node), free.clone());
            spawn(
                "cluster-claim",
                Box::new(move || claim_loop(&node, claim_engine, &free_rx, &free)),
            )?
        };
        let reporter = {
            let node = Arc::clone(&node);
            spawn(
                "cluster-report",
                Box::new(move || report_loop(&node, report_engine, &events, &free)),
            )?
        };
        Ok(RenderNode {
            id: node.id.clone(),
            closing,
            threads: vec![claimer, reporter],
        })
    }

    /// This node's name in the engine and its log.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Stops claiming; the jobs in hand finish and are reported (or, with
    /// the engine gone, given up after the engine timeout: their leases
    /// run out and other nodes take them).
    pub fn shutdown(mut self) {
        self.closing.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Claims a job whenever a slot is free.
fn claim_loop(node: &Node, mut engine: Engine, free: &Receiver<()>, give_back: &Sender<()>) {
    let mut next_request: RequestId = 1;
    let mut failing = false;
    while !node.closing.load(Ordering::Relaxed) {
        if free.recv_timeout(Duration::from_millis(100)).is_err() {
            continue;
        }
        let queues = node.queues();
        let names: Vec<String> = queues.iter().map(|(q, _)| q.clone()).collect();
        match engine.claim(&node.id, &names, node.settings.lease) {
            Ok(Some((name, force))) => {
                failing = false;
                let map = JobName::parse(&name).and_then(|job| {
                    let map = queues.iter().find(|(q, _)| *q == job.queue)?.1;
                    let metatile = job.metatile(node.service.metatile_size())?;
                    Some((job, map, metatile))
                });
                let Some((job, map, metatile)) = map else {
                    // Not a job this node can read: say so and let it go
                    // back (its lease runs out) rather than guess.
                    tracing::error!(node = %node.id, job = %name, "claimed a job it cannot read");
                    let _ = give_back.send(());
                    continue;
                };
                let request_id = next_request;
                next_request += 1;
                let tiles: Vec<_> = metatile.tiles().collect();
                node.in_hand().insert(
                    request_id,
                    InHand {
                        job,
                        tiles_left: tiles.len(),
                        failure: None,
                        cancelled: 0,
                        render_ms: 0,
                    },
                );
                tracing::debug!(node = %node.id, job = %name, "claimed");
                let submitted = node.service.submit(TileRequest {
                    client: node.client,
                    request_id,
                    map,
                    tiles,
                    class: PriorityClass::Explicit,
                    deadline: None,
                    force,
                });
                if !submitted {
                    // The service is shutting down: report the job
                    // stopped, so it goes back to the queue at once.
                    if let Some(in_hand) = node.in_hand().get_mut(&request_id) {
                        in_hand.cancelled = in_hand.tiles_left;
                        in_hand.tiles_left = 0;
                    }
                }
            }
            Ok(None) => {
                failing = false;
                let _ = give_back.send(());
                let _ = engine.wait_for_work(Duration::from_millis(500));
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(node = %node.id, "cannot claim work: {e}");
                    failing = true;
                }
                let _ = give_back.send(());
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// A finished job's report, until the engine has it.
struct Report {
    job: JobName,
    status: String,
    message: String,
    render_ms: u32,
}

/// Collects answers, reports finished jobs, renews leases, checks versions.
fn report_loop(node: &Node, mut engine: Engine, events: &Receiver<ClientEvent>, free: &Sender<()>) {
    let renew_every = node.settings.lease / 3;
    let renewals = tick(renew_every);
    let checks = tick(Duration::from_secs(5));
    let mut reports: Vec<Report> = Vec::new();
    let mut refused: HashSet<(String, String)> = HashSet::new();
    let mut unreported_since: Option<Instant> = None;
    check_versions(node, &mut engine, &mut refused);
    loop {
        select! {
            recv(events) -> event => match event {
                Ok(event) => answered(node, event),
                Err(_) => break,
            },
            recv(renewals) -> _ => renew(node, &mut engine),
            recv(checks) -> _ => check_versions(node, &mut engine, &mut refused),
            default(Duration::from_millis(100)) => {}
        }
        // Jobs whose every tile is answered are reported.
        node.in_hand().retain(|_, job| {
            if job.tiles_left > 0 {
                return true;
            }
            reports.push(finished(job));
            false
        });
        let before = reports.len();
        reports.retain(|r| {
            match engine.complete(&node.id, &r.job, &r.status, &r.message, r.render_ms) {
                Ok(_) => {
                    tracing::debug!(node = %node.id, job = %r.job, status = %r.status, "reported");
                    false
                }
                Err(e) => {
                    if unreported_since.is_none() {
                        tracing::warn!(node = %node.id, "cannot report a finished job: {e}");
                        unreported_since = Some(Instant::now());
                    }
                    true
                }
            }
        });
        for _ in reports.len()..before {
            let _ = free.send(());
        }
        if reports.is_empty() {
            unreported_since = None;
        }
        if node.closing.load(Ordering::Relaxed) && node.in_hand().is_empty() {
            // Reports the engine never took are given up after the engine
            // timeout: their leases run out and the jobs go to other nodes.
            let gave_up =
                unreported_since.is_some_and(|t| t.elapsed() >= node.settings.engine_timeout);
            if reports.is_empty() || gave_up {
                break;
            }
        }
    }
    node.service.unregister(node.client);
}

/// One tile's answer.
fn answered(node: &Node, event: ClientEvent) {
    let mut in_hand = node.in_hand();
    let Some(job) = in_hand.get_mut(&event.request_id) else {
        return;
    };
    job.tiles_left = job.tiles_left.saturating_sub(1);
    match event.outcome {
        TileOutcome::Done { render_ms, .. } => job.render_ms = job.render_ms.max(render_ms),
        TileOutcome::Failed { kind, message } => {
            job.failure.get_or_insert((kind as u8, message));
        }
        TileOutcome::Cancelled => job.cancelled += 1,
    }
}

/// The report of a job whose tiles are all answered.
fn finished(job: &InHand) -> Report {
    let (status, message) = match (&job.failure, job.cancelled) {
        (Some((kind, message)), _) => (format!("failed:{kind}"), message.clone()),
        (None, 0) => ("done".to_owned(), String::new()),
        // Stopped (nobody wants it) or the service is going down: the
        // engine puts it back if someone still wants it.
        (None, _) => ("stopped".to_owned(), String::new()),
    };
    Report {
        job: job.job.clone(),
        status,
        message,
        // Per tile, as a local render reports it.
        render_ms: job.render_ms,
    }
}

/// Renews every lease in hand; a refused renewal stops that render.
fn renew(node: &Node, engine: &mut Engine) {
    let held: Vec<(RequestId, String)> = node
        .in_hand()
        .iter()
        .filter(|(_, job)| job.tiles_left > 0)
        .map(|(id, job)| (*id, job.job.to_string()))
        .collect();
    for (request, name) in held {
        match engine.renew(&node.id, &name, node.settings.lease) {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(node = %node.id, job = %name, "nobody wants it any more: stopping");
                node.service.cancel(node.client, vec![request]);
            }
            // The engine is away: keep drawing; the report waits for it.
            Err(_) => return,
        }
    }
}

/// Compares this node's style versions with the fronts', and says once per
/// difference which maps it refuses.
fn check_versions(node: &Node, engine: &mut Engine, refused: &mut HashSet<(String, String)>) {
    let Ok(theirs) = engine.versions() else {
        return;
    };
    let maps = node.service.maps();
    for id in maps.ids() {
        let Some(entry) = maps.get(id) else { continue };
        let Some(wanted) = theirs.get(&entry.name) else {
            continue;
        };
        if *wanted == entry.style_version {
            continue;
        }
        if refused.insert((entry.name.clone(), wanted.clone())) {
            tracing::error!(
                node = %node.id,
                map = %entry.name,
                mine = %entry.style_version,
                fronts = %wanted,
                "refusing the jobs of map `{}`: the fronts publish style version {wanted}, \
                 this node has {} (other style files or render settings); give it the \
                 fronts' files and reload",
                entry.name,
                entry.style_version
            );
        }
    }
}
