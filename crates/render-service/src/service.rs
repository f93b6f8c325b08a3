//! The running service: one scheduler thread, a pool of render workers, and
//! a [`ServiceHandle`] through which sessions (or an embedding application)
//! submit work and receive each tile's final answer.
//!
//! Threads and channels:
//! - **core** (one thread) owns the [`Scheduler`]. It receives [`Command`]s
//!   on a bounded channel, hands a job to a worker only when one is idle (so
//!   queued work stays re-rankable until the last moment), and routes every
//!   answer to the client's event channel.
//! - **workers** (one per core by default) each own a render-core
//!   [`Renderer`] per map. A worker draws a metatile, writes its tiles to the
//!   store atomically and reports back. A renderer error or panic becomes
//!   `TileFailed` for the requesters, and the worker carries on.
//! - **clients** each have an unbounded event channel. It cannot grow
//!   without bound: a client has at most `max_queued_tiles_per_client`
//!   tiles in flight, and each yields one event.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{bounded, select, tick, unbounded, Receiver, Sender};
use ipc_proto::FailureKind;
use render_core::{MapSource, RenderOptions, Renderer, TileEncoder};
use tile_math::{TileCoord, Viewport};

use crate::config::ValidConfig;
use crate::scheduler::{
    Answer, CancelReason, ClientId, JobId, MapId, Outcome, PriorityClass, RenderJob, RequestId,
    Scheduler, SchedulerConfig, TileRequest,
};
use crate::stats::{Stats, StatsSnapshot};
use crate::store::{StoredTile, TileStore};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// A map's style or data could not be loaded.
    #[error("map `{map}`: {source}")]
    Map {
        /// The map's name.
        map: String,
        /// What went wrong.
        source: render_core::Error,
    },
    /// A tile store could not be opened.
    #[error("map `{map}`: {source}")]
    Store {
        /// The map's name.
        map: String,
        /// What went wrong.
        source: crate::store::StoreError,
    },
    /// A thread could not be started.
    #[error("cannot start thread: {0}")]
    Thread(std::io::Error),
}

/// One map served: its style and data, and its part of the tile store.
#[derive(Debug)]
pub struct MapEntry {
    /// The name clients use.
    pub name: String,
    /// The loaded style and data.
    pub source: MapSource,
    /// Where its tiles go.
    pub store: TileStore,
    /// Stored tiles written before this are stale (the style or its data
    /// changed after them).
    pub fresh_after: SystemTime,
}

/// The final answer for one tile of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TileOutcome {
    /// The tile is in the store.
    Done {
        /// Its file.
        path: PathBuf,
        /// Its bytes, when it was just rendered (saves reading it back).
        png: Option<Arc<Vec<u8>>>,
        /// Render time per tile (metatile time / tiles), 0 from the store.
        render_ms: u32,
        /// Whether it came from the store without rendering.
        cached: bool,
    },
    /// It could not be made.
    Failed {
        /// Category.
        kind: FailureKind,
        /// Detail.
        message: String,
    },
    /// It was cancelled before it was made.
    Cancelled,
}

/// An event for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEvent {
    /// The client's request.
    pub request_id: RequestId,
    /// The tile.
    pub tile: TileCoord,
    /// Its final answer.
    pub outcome: TileOutcome,
}

/// What the core thread is asked to do.
#[derive(Debug)]
enum Command {
    Register {
        client: ClientId,
        events: Sender<ClientEvent>,
    },
    Unregister {
        client: ClientId,
    },
    Submit(TileRequest),
    Viewport {
        client: ClientId,
        viewport: Viewport,
    },
    Cancel {
        client: ClientId,
        ids: Vec<RequestId>,
    },
    CancelOutside {
        client: ClientId,
        keep_ring: u32,
    },
    Stats {
        reply: Sender<StatsSnapshot>,
    },
    WorkDone(WorkDone),
    Shutdown,
}

/// A worker's report on one job.
#[derive(Debug)]
struct WorkDone {
    job: JobId,
    tiles: HashMap<TileCoord, TileOutcome>,
    /// When the whole metatile failed (error or panic), its answer for any
    /// tile not in `tiles`.
    failure: Option<(FailureKind, String)>,
}

/// The service's shared parts, cheap to clone into sessions.
#[derive(Debug, Clone)]
pub struct ServiceHandle {
    commands: Sender<Command>,
    maps: Arc<Vec<MapEntry>>,
    next_client: Arc<AtomicU64>,
    stats: Arc<Stats>,
    shutting_down: Arc<AtomicBool>,
    retry_after_ms: u32,
}

/// The running service. Dropping it without [`TileService::shutdown`]
/// leaves its threads running until the process ends.
#[derive(Debug)]
pub struct TileService {
    handle: ServiceHandle,
    core: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

/// Settings for starting a service without a configuration file.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// Render threads.
    pub threads: usize,
    /// Scheduler limits and metatile size.
    pub scheduler: SchedulerConfig,
    /// Drawing and encoding.
    pub render: RenderOptions,
}

impl ServiceOptions {
    /// The options a validated configuration describes.
    pub fn from_config(config: &ValidConfig) -> ServiceOptions {
        let raw = &config.raw;
        ServiceOptions {
            threads: config.threads,
            scheduler: SchedulerConfig {
                metatile_size: raw.render.metatile,
                max_queued_tiles: raw.server.max_queued_tiles,
                max_queued_tiles_per_client: raw.server.max_queued_tiles_per_client,
                fifo: raw.server.fifo,
                ..SchedulerConfig::default()
            },
            render: RenderOptions {
                tile_size: raw.render.tile_size,
                scale_factor: raw.render.scale_factor,
                buffer: raw.render.buffer,
                format: config.format,
                gdal_cache_mb: raw.render.gdal_cache_mb,
                ..RenderOptions::default()
            },
        }
    }
}

impl TileService {
    /// Loads every map of a configuration and starts the threads.
    pub fn start(config: &ValidConfig) -> Result<TileService, ServiceError> {
        let mut maps = Vec::new();
        for map in &config.raw.maps {
            let source = MapSource::load(&map.style).map_err(|source| ServiceError::Map {
                map: map.name.clone(),
                source,
            })?;
            for warning in source.warnings() {
                tracing::warn!(map = %map.name, "{warning}");
            }
            let store =
                TileStore::open(config.raw.store.dir.join(&map.name), config.layout.clone())
                    .map_err(|source| ServiceError::Store {
                        map: map.name.clone(),
                        source,
                    })?;
            maps.push((map.name.clone(), source, store));
        }
        Self::start_with(maps, ServiceOptions::from_config(config))
    }

    /// Starts a service over maps that are already loaded (for embedding).
    pub fn start_with(
        maps: Vec<(String, MapSource, TileStore)>,
        options: ServiceOptions,
    ) -> Result<TileService, ServiceError> {
        let maps: Arc<Vec<MapEntry>> = Arc::new(
            maps.into_iter()
                .map(|(name, source, store)| {
                    let fresh_after = source.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    MapEntry {
                        name,
                        source,
                        store,
                        fresh_after,
                    }
                })
                .collect(),
        );
        let threads = options.threads.max(1);
        // Commands are bounded so a flood of requests slows its senders
        // instead of growing memory; workers' reports use the same channel.
        let (commands, command_rx) = bounded::<Command>(65_536);
        let (jobs, job_rx) = bounded::<RenderJob>(threads);
        let stats = Arc::new(Stats::default());
        let encoder = TileEncoder::new(options.render.compression);
        let mut workers = Vec::with_capacity(threads);
        for index in 0..threads {
            let (job_rx, done, maps) = (job_rx.clone(), commands.clone(), Arc::clone(&maps));
            let context = WorkerContext {
                options: options.render.clone(),
                encoder: encoder.clone(),
                stats: Arc::clone(&stats),
            };
            let worker = std::thread::Builder::new()
                .name(format!("render-{index}"))
                .spawn(move || run_worker(job_rx, done, maps, context))
                .map_err(ServiceError::Thread)?;
            workers.push(worker);
        }
        let retry_after_ms = options.scheduler.retry_after_ms;
        let scheduler = Scheduler::new(options.scheduler);
        let core_stats = Arc::clone(&stats);
        let core = std::thread::Builder::new()
            .name("scheduler".into())
            .spawn(move || run_core(scheduler, command_rx, jobs, threads, core_stats))
            .map_err(ServiceError::Thread)?;
        let handle = ServiceHandle {
            commands,
            maps,
            next_client: Arc::new(AtomicU64::new(1)),
            stats,
            shutting_down: Arc::new(AtomicBool::new(false)),
            retry_after_ms,
        };
        Ok(TileService {
            handle,
            core: Some(core),
            workers,
        })
    }

    /// A handle for sessions and embedding code.
    pub fn handle(&self) -> ServiceHandle {
        self.handle.clone()
    }

    /// Graceful shutdown: new work is refused, queued work is answered
    /// `Cancelled`, running renders finish and are delivered, then the
    /// threads end.
    pub fn shutdown(mut self) {
        self.handle.shutting_down.store(true, Ordering::SeqCst);
        let _ = self.handle.commands.send(Command::Shutdown);
        if let Some(core) = self.core.take() {
            let _ = core.join();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl ServiceHandle {
    /// A new client id and the channel its answers arrive on.
    pub fn register(&self) -> (ClientId, Receiver<ClientEvent>) {
        let client = self.next_client.fetch_add(1, Ordering::Relaxed);
        let (events, rx) = unbounded();
        let _ = self.commands.send(Command::Register { client, events });
        (client, rx)
    }

    /// Forgets a client: its queued work is dropped.
    pub fn unregister(&self, client: ClientId) {
        let _ = self.commands.send(Command::Unregister { client });
    }

    /// The maps served, in configuration order (the first is the default).
    pub fn maps(&self) -> &[MapEntry] {
        &self.maps
    }

    /// The id of a map by name; the empty name means the first map.
    pub fn map_id(&self, name: &str) -> Option<MapId> {
        if name.is_empty() {
            return (!self.maps.is_empty()).then_some(0);
        }
        self.maps
            .iter()
            .position(|m| m.name == name)
            .map(|i| i as MapId)
    }

    /// The map with this id.
    pub fn map(&self, id: MapId) -> Option<&MapEntry> {
        self.maps.get(id as usize)
    }

    /// A stored tile that is still fresh, if there is one.
    pub fn fresh_tile(&self, map: MapId, tile: TileCoord) -> Option<StoredTile> {
        let entry = self.map(map)?;
        let found = entry.store.fresh(tile, entry.fresh_after);
        if found.is_some() {
            self.stats.from_store();
        }
        found
    }

    /// Queues a request. Its answers arrive on the client's channel.
    pub fn submit(&self, request: TileRequest) -> bool {
        self.commands.send(Command::Submit(request)).is_ok()
    }

    /// Sets a client's viewport (re-ranks its queued work).
    pub fn set_viewport(&self, client: ClientId, viewport: Viewport) {
        let _ = self.commands.send(Command::Viewport { client, viewport });
    }

    /// Cancels requests.
    pub fn cancel(&self, client: ClientId, ids: Vec<RequestId>) {
        let _ = self.commands.send(Command::Cancel { client, ids });
    }

    /// Cancels queued work farther than `keep_ring` tiles outside the
    /// client's viewport.
    pub fn cancel_outside_viewport(&self, client: ClientId, keep_ring: u32) {
        let _ = self
            .commands
            .send(Command::CancelOutside { client, keep_ring });
    }

    /// The counters, with queue depths (asks the scheduler thread).
    pub fn stats(&self) -> Option<StatsSnapshot> {
        let (reply, rx) = bounded(1);
        self.commands.send(Command::Stats { reply }).ok()?;
        rx.recv_timeout(Duration::from_secs(5)).ok()
    }

    /// The shared counters (connections, store hits).
    pub fn counters(&self) -> &Stats {
        &self.stats
    }

    /// Whether shutdown has begun (new work is refused).
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// The retry hint for busy answers, in milliseconds.
    pub fn retry_after_ms(&self) -> u32 {
        self.retry_after_ms
    }
}

/// The scheduler thread: commands in, jobs out when a worker is idle,
/// answers to clients.
fn run_core(
    mut scheduler: Scheduler,
    commands: Receiver<Command>,
    jobs: Sender<RenderJob>,
    workers: usize,
    stats: Arc<Stats>,
) {
    let mut clients: HashMap<ClientId, Sender<ClientEvent>> = HashMap::new();
    let mut idle = workers;
    // Jobs handed out, and whether each is background (bulk, dirty) work.
    let mut running: HashMap<JobId, bool> = HashMap::new();
    let mut background_running = 0usize;
    let mut shutting_down = false;
    // Deadlines are swept a few times a second; nothing else waits on time.
    let deadlines = tick(Duration::from_millis(100));
    loop {
        select! {
            recv(commands) -> command => {
                let Ok(command) = command else { break };
                match command {
                    Command::Register { client, events } => {
                        clients.insert(client, events);
                    }
                    Command::Unregister { client } => {
                        scheduler.remove_client(client);
                        clients.remove(&client);
                    }
                    Command::Submit(request) => {
                        if shutting_down {
                            let client = request.client;
                            for tile in &request.tiles {
                                let event = ClientEvent { request_id: request.request_id, tile: *tile, outcome: TileOutcome::Cancelled };
                                send_event(&clients, client, event);
                            }
                        } else {
                            scheduler.submit(request);
                        }
                    }
                    Command::Viewport { client, viewport } => scheduler.set_viewport(client, viewport),
                    Command::Cancel { client, ids } => scheduler.cancel_requests(client, &ids),
                    Command::CancelOutside { client, keep_ring } => scheduler.cancel_outside_viewport(client, keep_ring),
                    Command::Stats { reply } => {
                        let _ = reply.send(stats.snapshot(&scheduler.stats()));
                    }
                    Command::WorkDone(done) => {
                        idle += 1;
                        if running.remove(&done.job) == Some(true) {
                            background_running -= 1;
                        }
                        deliver(&mut scheduler, &clients, done);
                    }
                    Command::Shutdown => {
                        shutting_down = true;
                        scheduler.cancel_all(CancelReason::Shutdown);
                    }
                }
            }
            recv(deadlines) -> _ => scheduler.expire(Instant::now()),
        }
        if !shutting_down {
            while idle > 0 {
                let lowest =
                    lowest_class_to_start(workers, background_running, scheduler.has_viewport());
                let Some(job) = scheduler.next_job_up_to(Instant::now(), lowest) else {
                    break;
                };
                let (id, background) = (job.id, is_background(job.class));
                if jobs.send(job).is_err() {
                    break;
                }
                running.insert(id, background);
                background_running += usize::from(background);
                idle -= 1;
            }
        }
        answer(&mut scheduler, &clients, &stats);
        if shutting_down && scheduler.is_idle() && idle == workers {
            break;
        }
    }
    // Dropping the job sender ends the workers.
}

/// Bulk seeding and dirty re-renders: work nobody is looking at.
fn is_background(class: PriorityClass) -> bool {
    class >= PriorityClass::Bulk
}

/// The lowest class the core may start now. A render in progress cannot be
/// interrupted, so while some client shows a map (has sent a viewport) and
/// there are at least two workers, background work may occupy all workers
/// but one: a new screen then starts at once instead of waiting for a bulk
/// metatile to finish. Without viewports (plain seeding) every worker takes
/// background work.
fn lowest_class_to_start(
    workers: usize,
    background_running: usize,
    has_viewport: bool,
) -> PriorityClass {
    if has_viewport && workers >= 2 && background_running + 1 >= workers {
        PriorityClass::Explicit
    } else {
        PriorityClass::Dirty
    }
}

/// Routes the scheduler's own answers (cancelled, busy) to their clients.
fn answer(
    scheduler: &mut Scheduler,
    clients: &HashMap<ClientId, Sender<ClientEvent>>,
    stats: &Stats,
) {
    for Answer {
        client,
        request_id,
        tile,
        outcome,
    } in scheduler.drain_answers()
    {
        let outcome = match outcome {
            Outcome::Cancelled(_) => {
                stats.cancelled(1);
                TileOutcome::Cancelled
            }
            Outcome::Busy { retry_after_ms } => {
                stats.busy(1);
                TileOutcome::Failed {
                    kind: FailureKind::Busy,
                    message: format!("queue full; retry after {retry_after_ms} ms"),
                }
            }
        };
        send_event(
            clients,
            client,
            ClientEvent {
                request_id,
                tile,
                outcome,
            },
        );
    }
}

/// Answers everyone waiting for a finished job.
fn deliver(
    scheduler: &mut Scheduler,
    clients: &HashMap<ClientId, Sender<ClientEvent>>,
    done: WorkDone,
) {
    for delivery in scheduler.complete(done.job) {
        for tile in delivery.tiles {
            let outcome = match (done.tiles.get(&tile), &done.failure) {
                (Some(outcome), _) => outcome.clone(),
                (None, Some((kind, message))) => TileOutcome::Failed {
                    kind: *kind,
                    message: message.clone(),
                },
                (None, None) => TileOutcome::Failed {
                    kind: FailureKind::Internal,
                    message: format!("tile {tile} was not in its rendered metatile"),
                },
            };
            send_event(
                clients,
                delivery.client,
                ClientEvent {
                    request_id: delivery.request_id,
                    tile,
                    outcome,
                },
            );
        }
    }
}

fn send_event(
    clients: &HashMap<ClientId, Sender<ClientEvent>>,
    client: ClientId,
    event: ClientEvent,
) {
    if let Some(events) = clients.get(&client) {
        // A client whose receiver is gone has disconnected; its answers have
        // nowhere to go, and Unregister will follow.
        let _ = events.send(event);
    }
}

/// What every worker shares.
struct WorkerContext {
    options: RenderOptions,
    encoder: TileEncoder,
    stats: Arc<Stats>,
}

/// A render worker: one `Renderer` per map, made on first use.
fn run_worker(
    jobs: Receiver<RenderJob>,
    done: Sender<Command>,
    maps: Arc<Vec<MapEntry>>,
    context: WorkerContext,
) {
    let mut renderers: Vec<Option<Renderer>> = (0..maps.len()).map(|_| None).collect();
    for job in jobs {
        let report = render_job(&job, &maps, &mut renderers, &context);
        if done.send(Command::WorkDone(report)).is_err() {
            break;
        }
    }
}

fn render_job(
    job: &RenderJob,
    maps: &[MapEntry],
    renderers: &mut [Option<Renderer>],
    worker: &WorkerContext,
) -> WorkDone {
    let WorkerContext {
        options,
        encoder,
        stats,
    } = worker;
    let started = Instant::now();
    let index = job.map as usize;
    let (Some(entry), Some(slot)) = (maps.get(index), renderers.get_mut(index)) else {
        return WorkDone {
            job: job.id,
            tiles: HashMap::new(),
            failure: Some((
                FailureKind::InvalidTile,
                format!("no map with id {}", job.map),
            )),
        };
    };
    let renderer = slot.get_or_insert_with(|| {
        Renderer::with_encoder(entry.source.clone(), options.clone(), encoder.clone())
    });
    let result = catch_unwind(AssertUnwindSafe(|| renderer.render_metatile(&job.metatile)));
    let rendered = match result {
        Ok(Ok(tiles)) => tiles,
        Ok(Err(error)) => {
            let kind = match error {
                render_core::Error::Data { .. } => FailureKind::DataSource,
                _ => FailureKind::Render,
            };
            tracing::warn!(metatile = %job.metatile, "render failed: {error}");
            return WorkDone {
                job: job.id,
                tiles: HashMap::new(),
                failure: Some((kind, error.to_string())),
            };
        }
        Err(panic) => {
            // The renderer may be in any state: build a new one next time.
            *slot = None;
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            tracing::error!(metatile = %job.metatile, "renderer panicked: {message}");
            return WorkDone {
                job: job.id,
                tiles: HashMap::new(),
                failure: Some((
                    FailureKind::Internal,
                    format!("renderer panicked: {message}"),
                )),
            };
        }
    };
    let count = rendered.len();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let per_tile_ms = (elapsed_ms / count.max(1) as f64).ceil() as u32;
    let mut failed = 0;
    let tiles = rendered
        .into_iter()
        .map(|t| {
            let written = if t.single_colour {
                entry.store.write_shared(t.tile, &t.png)
            } else {
                entry.store.write(t.tile, &t.png)
            };
            let outcome = match written {
                Ok(path) => TileOutcome::Done {
                    path,
                    png: Some(t.png),
                    render_ms: per_tile_ms,
                    cached: false,
                },
                Err(e) => {
                    failed += 1;
                    TileOutcome::Failed {
                        kind: FailureKind::Storage,
                        message: e.to_string(),
                    }
                }
            };
            (t.tile, outcome)
        })
        .collect();
    stats.rendered(count, failed, elapsed_ms);
    WorkDone {
        job: job.id,
        tiles,
        failure: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_worker_stays_free_for_screens_only_when_someone_shows_a_map() {
        use PriorityClass::{Dirty, Explicit};
        // Seeding alone (no viewport): every worker takes bulk work.
        for running in 0..4 {
            assert_eq!(lowest_class_to_start(4, running, false), Dirty);
        }
        // A viewport with 4 workers: bulk may use 3 of them.
        assert_eq!(lowest_class_to_start(4, 2, true), Dirty);
        assert_eq!(lowest_class_to_start(4, 3, true), Explicit);
        // 2 workers: 1 for bulk, 1 kept for the screen.
        assert_eq!(lowest_class_to_start(2, 0, true), Dirty);
        assert_eq!(lowest_class_to_start(2, 1, true), Explicit);
        // 1 worker: nothing to keep back, or bulk would never run.
        assert_eq!(lowest_class_to_start(1, 0, true), Dirty);
        assert!(is_background(PriorityClass::Bulk) && is_background(Dirty));
        assert!(!is_background(Explicit));
    }
}
