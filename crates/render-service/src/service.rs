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
//!   tiles in flight, and each yields one event. A client registered with a
//!   [`ClientBacklog`] is also bounded in bytes: when the answers waiting
//!   for it (PNG bytes included) pass `max_backlog_bytes`, the core stops
//!   starting its work until it has read half of them.
//!
//! Shutdown keeps every promise: submissions close first (a request either
//! reaches the core before the `Shutdown` command or is refused by
//! [`ServiceHandle::submit`]), then every queued tile is answered
//! `Cancelled`, running renders are delivered, and only then does the core
//! drop the client channels, so a session that sees its channel close knows
//! it has received every answer it will get.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{bounded, select, tick, unbounded, Receiver, Sender};
use ipc_proto::FailureKind;
use render_core::{MapSource, RenderOptions, Renderer, TileEncoder};
use tile_math::{TileCoord, Viewport};

use crate::cluster::{self, ClusterSettings, Role};
use crate::config::{MapSection, ValidConfig};
use crate::generation::{self, Generation};
use crate::reload::{ReloadError, ReloadReport, Reloader};
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
    /// What its tiles are drawn from; stored tiles stamped before its
    /// cut-off are stale.
    pub generation: Generation,
    /// 1, or 2 for a map's high-DPI variant (`<name>@2x`): tiles twice
    /// the size, drawn at twice the scale (strokes, text and icons).
    pub scale: u32,
    /// In a cluster, what its tiles look like, the same on every machine
    /// with the same files ([`generation::style_version`]); empty on one
    /// machine, where nobody asks.
    pub style_version: String,
}

impl MapEntry {
    /// Where its generation is recorded: beside its tiles, or, for a
    /// high-DPI variant, beside its map's (its own folder appears with its
    /// first tile).
    pub fn generation_record(&self) -> PathBuf {
        let root = self.store.root();
        let folder = match self.scale {
            1 => root,
            _ => root.parent().unwrap_or(root),
        };
        generation::record_path(folder, &self.name)
    }
}

/// Map ids with this bit are the high-DPI (`@2x`) variant of the map
/// without it: named `<map>@2x`, drawn at twice the scale on tiles twice
/// the size, stored apart (`<the map's folder>/@2x/`).
pub const HIDPI: MapId = 1 << 31;

/// A served map and its high-DPI variant: one style, loaded once.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    pub(crate) map: Arc<MapEntry>,
    pub(crate) hidpi: Arc<MapEntry>,
}

/// A map loaded and its stores opened, before its cut-off is known.
pub(crate) struct Prepared {
    pub(crate) name: String,
    pub(crate) source: MapSource,
    pub(crate) store: TileStore,
    pub(crate) fingerprint: String,
    hidpi_store: TileStore,
    hidpi_fingerprint: String,
    versions: (String, String),
}

impl Prepared {
    /// Opens the variant's store (inside the map's) and takes both
    /// fingerprints.
    pub(crate) fn new(
        name: String,
        source: MapSource,
        store: TileStore,
        options: &ServiceOptions,
    ) -> Result<Prepared, ServiceError> {
        let metatile = options.scheduler.metatile_size;
        let hidpi_store = TileStore::open_unmade(store.root().join("@2x"), store.layout().clone())
            .map_err(|source| ServiceError::Store {
                map: name.clone(),
                source,
            })?;
        // Only a cluster needs versions: they read every style file.
        let versions = match &options.cluster {
            Some(_) => (
                generation::style_version(&source, &options.render, metatile),
                generation::style_version(&source, &hidpi_options(&options.render), metatile),
            ),
            None => (String::new(), String::new()),
        };
        Ok(Prepared {
            versions,
            fingerprint: generation::fingerprint(&source, &options.render, metatile),
            hidpi_fingerprint: generation::fingerprint(
                &source,
                &hidpi_options(&options.render),
                metatile,
            ),
            name,
            source,
            store,
            hidpi_store,
        })
    }

    /// Both entries, with the cut-off `since` (a reload's), or each with
    /// its recorded generation (a start, a new map).
    pub(crate) fn into_served(self, since: Option<SystemTime>) -> Served {
        let Prepared {
            name,
            source,
            store,
            fingerprint,
            hidpi_store,
            hidpi_fingerprint,
            versions,
        } = self;
        // Both records beside the map's tiles (see `generation_record`).
        let generation_of = |name: &str, fingerprint: String| match since {
            Some(since) => Generation { fingerprint, since },
            None => {
                let record = generation::record_path(store.root(), name);
                let (generation, warning) =
                    generation::resolve(&record, fingerprint, source.modified(), SystemTime::now());
                if let Some(warning) = warning {
                    tracing::warn!(map = %name, "{warning}");
                }
                generation
            }
        };
        let hidpi_name = format!("{name}@2x");
        let hidpi = MapEntry {
            generation: generation_of(&hidpi_name, hidpi_fingerprint),
            name: hidpi_name,
            source: source.clone(),
            store: hidpi_store,
            scale: 2,
            style_version: versions.1,
        };
        let map = MapEntry {
            generation: generation_of(&name, fingerprint),
            name,
            source,
            store,
            scale: 1,
            style_version: versions.0,
        };
        if since.is_none() {
            // A reload publishes its cut-off after the swap.
            publish_cut_off(&map);
        }
        Served {
            map: Arc::new(map),
            hidpi: Arc::new(hidpi),
        }
    }
}

/// The render settings of a high-DPI variant: twice the tile size, the
/// scale and the buffer.
pub fn hidpi_options(options: &RenderOptions) -> RenderOptions {
    RenderOptions {
        tile_size: options.tile_size * 2,
        scale_factor: options.scale_factor * 2.0,
        buffer: options.buffer.map(|b| b * 2),
        buffer_if_unset: options.buffer_if_unset.map(|b| b * 2),
        ..options.clone()
    }
}

/// The maps served now. A reload replaces the whole table at once. Ids are
/// stable across reloads: a reloaded map keeps its id, a new map takes the
/// next one and a removed map leaves its slot empty, so queued work never
/// changes maps.
#[derive(Debug, Default)]
pub struct MapTable {
    slots: Vec<Option<Served>>,
    /// Ids in configuration order: the first is the default map.
    order: Vec<MapId>,
}

impl MapTable {
    /// A table of these maps, ids in this order.
    fn new(entries: Vec<Served>) -> MapTable {
        MapTable {
            order: (0..entries.len() as MapId).collect(),
            slots: entries.into_iter().map(Some).collect(),
        }
    }

    /// The maps, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<MapEntry>> {
        self.order.iter().filter_map(|&id| self.get(id))
    }

    /// The map with this id (a [`HIDPI`] id: its variant), if it is
    /// still served.
    pub fn get(&self, id: MapId) -> Option<&Arc<MapEntry>> {
        let served = self.served(id & !HIDPI)?;
        Some(if id & HIDPI != 0 {
            &served.hidpi
        } else {
            &served.map
        })
    }

    pub(crate) fn served(&self, id: MapId) -> Option<&Served> {
        self.slots.get(id as usize)?.as_ref()
    }

    /// The id of a map by name; the empty name means the default map, and
    /// `<map>@2x` its high-DPI variant.
    pub fn id_of(&self, name: &str) -> Option<MapId> {
        if name.is_empty() {
            return self.order.first().copied();
        }
        if let Some(base) = name.strip_suffix("@2x") {
            return self.id_of_named(base).map(|id| id | HIDPI);
        }
        self.order
            .iter()
            .copied()
            .find(|&id| self.get(id).is_some_and(|m| m.name == name))
    }

    /// Every map id served, each map's high-DPI variant after it.
    pub(crate) fn ids(&self) -> impl Iterator<Item = MapId> + '_ {
        self.order.iter().flat_map(|&id| [id, id | HIDPI])
    }

    /// How many maps are served.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no map is served.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// A table that serves `maps` (in this order), keeping the ids of those
    /// already here by name.
    pub(crate) fn replaced_by(&self, maps: Vec<Served>) -> MapTable {
        let mut slots: Vec<Option<Served>> = vec![None; self.slots.len()];
        let mut order = Vec::with_capacity(maps.len());
        for entry in maps {
            let id = match self.id_of_named(&entry.map.name) {
                Some(id) => id,
                None => {
                    slots.push(None);
                    (slots.len() - 1) as MapId
                }
            };
            slots[id as usize] = Some(entry);
            order.push(id);
        }
        MapTable { slots, order }
    }

    /// The id of a served map by its name (never the default's "").
    fn id_of_named(&self, name: &str) -> Option<MapId> {
        self.order
            .iter()
            .copied()
            .find(|&id| self.get(id).is_some_and(|m| m.name == name))
    }
}

/// The client that owns work nobody waits for
/// ([`ServiceHandle::submit_unattended`]); connections get ids from 1 on.
pub const UNATTENDED: ClientId = 0;

/// The final answer for one tile of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TileOutcome {
    /// The tile is in the store.
    Done {
        /// Its file (in the mod_tile layout: its metatile's `.meta` file).
        path: PathBuf,
        /// Its bytes, when it was just rendered (saves reading it back), or
        /// read from a `.meta` file.
        png: Option<Arc<Vec<u8>>>,
        /// Render time per tile (metatile time / tiles), 0 from the store.
        render_ms: u32,
        /// Whether it came from the store without rendering.
        cached: bool,
        /// Whether `path` is the tile's own PNG file, which a client on the
        /// same machine can be given instead of the bytes (not in the
        /// mod_tile layout: `png` then always holds the bytes).
        own_file: bool,
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

impl ClientEvent {
    /// The memory this event keeps alive until it is written out, in
    /// bytes: a fixed part plus the PNG it carries, if any. Counted into a
    /// client's [`ClientBacklog`] when it is sent and out again when it has
    /// been written.
    pub fn weight(&self) -> usize {
        const FIXED: usize = 96;
        FIXED
            + match &self.outcome {
                TileOutcome::Done { path, png, .. } => {
                    path.as_os_str().len() + png.as_ref().map_or(0, |p| p.len())
                }
                TileOutcome::Failed { message, .. } => message.len(),
                TileOutcome::Cancelled => 0,
            }
    }
}

/// Bytes of answers sent to one client and not yet written to its socket.
/// The core adds, the client's writer subtracts; the core pauses the
/// client's work while it is above the limit.
#[derive(Debug, Default)]
pub struct ClientBacklog {
    bytes: AtomicUsize,
}

impl ClientBacklog {
    /// Bytes waiting now.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    fn add(&self, n: usize) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// The writer has written `n` bytes' worth of events.
    pub fn written(&self, n: usize) {
        // Saturating: a miscount must not wrap into "huge".
        let _ = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(n))
            });
    }
}

/// What the core thread is asked to do.
#[derive(Debug)]
pub(crate) enum Command {
    Register {
        client: ClientId,
        events: Sender<ClientEvent>,
        backlog: Option<Arc<ClientBacklog>>,
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
pub(crate) struct WorkDone {
    pub(crate) job: JobId,
    pub(crate) tiles: HashMap<TileCoord, TileOutcome>,
    /// When the whole metatile failed (error or panic), its answer for any
    /// tile not in `tiles`.
    pub(crate) failure: Option<(FailureKind, String)>,
    /// The render was stopped before it finished (its stop flag was set):
    /// nothing was made, and nobody is answered from it.
    pub(crate) stopped: bool,
}

/// A job as a worker gets it: what to render, and the flag the core sets
/// to stop the render (nobody waits for it any more, or on-screen work
/// needs the worker).
#[derive(Debug)]
pub(crate) struct WorkerJob {
    pub(crate) job: RenderJob,
    pub(crate) stop: Arc<AtomicBool>,
    /// The class the job ranks in now ([`PriorityClass`] as a number),
    /// kept current by the core for a cluster front, which re-ranks the
    /// job in the shared queue when it changes.
    pub(crate) rank: Arc<AtomicU8>,
}

/// The service's shared parts, cheap to clone into sessions.
#[derive(Debug, Clone)]
pub struct ServiceHandle {
    commands: Sender<Command>,
    /// The maps now. Workers take the time and the map under the read lock,
    /// a reload swaps the table and sets new cut-offs under the write lock
    /// (see [`crate::generation`] for why).
    maps: Arc<RwLock<Arc<MapTable>>>,
    next_client: Arc<AtomicU64>,
    /// Request ids of [`UNATTENDED`] work.
    next_unattended: Arc<AtomicU64>,
    stats: Arc<Stats>,
    /// `true` once shutdown has begun. Submissions hold the read lock while
    /// they check it and send, and shutdown sets it under the write lock
    /// before it sends `Shutdown`: so every accepted submission reaches the
    /// core before the shutdown command, and none is lost behind it.
    closed: Arc<RwLock<bool>>,
    retry_after_ms: u32,
    /// Where a reload reads the configuration from, once the server has
    /// said ([`ServiceHandle::set_reloader`]).
    reloader: Arc<OnceLock<Reloader>>,
    /// The metatile size the scheduler renders (fixed until a restart).
    metatile_size: u32,
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
    /// Most bytes of answers that may wait for one client (registered with
    /// a backlog) before its work is paused.
    pub max_backlog_bytes: usize,
    /// In a cluster, its settings: a front hands its jobs to render nodes
    /// through the engine instead of drawing them; a render node is an
    /// ordinary service fed by [`crate::cluster::RenderNode`]. Maps get
    /// style versions either way.
    pub cluster: Option<ClusterSettings>,
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
                // renderd's rule for styles without a buffer-size (such as
                // openstreetmap-carto): half a tile, scaled.
                buffer_if_unset: Some(
                    (f64::from(raw.render.tile_size / 2) * raw.render.scale_factor).round() as u32,
                ),
                format: config.format,
                gdal_cache_mb: raw.render.gdal_cache_mb,
                statement_timeout_ms: Some(raw.render.statement_timeout_ms).filter(|ms| *ms > 0),
                postgis_connections: match raw.render.postgis_connections {
                    0 => render_core::postgis_connections_for(config.threads, cores()),
                    n => n,
                },
                ..RenderOptions::default()
            },
            max_backlog_bytes: raw.server.max_queued_bytes_per_client,
            cluster: config.cluster.clone(),
        }
    }
}

/// The machine's cores (1 if unknown).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Tells readers outside tessera (mod_tile) from when the map's stored
/// tiles count ([`TileStore::publish_cut_off`]); a failure is logged, the
/// generation still holds for tessera.
/// A high-DPI variant has none of its own: mod_tile knows no `@2x`, and its
/// store counts its map's (the folder above it) as mod_tile would.
pub(crate) fn publish_cut_off(entry: &MapEntry) {
    if entry.scale != 1 {
        return;
    }
    if let Err(e) = entry.store.publish_cut_off(entry.generation.since) {
        tracing::warn!(map = %entry.name, "cannot tell mod_tile which tiles are stale: {e}");
    }
}

/// Loads one configured map's style and data as the service does when it
/// starts (`--check-config` loads them this way too). The style's warnings
/// are in [`MapSource::warnings`].
pub fn load_map(config: &ValidConfig, map: &MapSection) -> Result<MapSource, ServiceError> {
    let load = render_core::LoadOptions {
        in_memory_limit_bytes: config.raw.render.in_memory_limit_mb.saturating_mul(1 << 20),
    };
    MapSource::load_with(&map.style, &load).map_err(|source| ServiceError::Map {
        map: map.name.clone(),
        source,
    })
}

impl TileService {
    /// Loads every map of a configuration and starts the threads.
    pub fn start(config: &ValidConfig) -> Result<TileService, ServiceError> {
        let mut maps = Vec::new();
        for map in &config.raw.maps {
            let source = load_map(config, map)?;
            for warning in source.warnings() {
                tracing::warn!(map = %map.name, "{warning}");
            }
            let (root, layout) = config.store_location(&map.name);
            let store = TileStore::open(root, layout).map_err(|source| ServiceError::Store {
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
        let mut entries = Vec::with_capacity(maps.len());
        for (name, source, store) in maps {
            entries.push(Prepared::new(name, source, store, &options)?.into_served(None));
        }
        let maps = Arc::new(RwLock::new(Arc::new(MapTable::new(entries))));
        let threads = options.threads.max(1);
        // Commands are bounded so a flood of requests slows its senders
        // instead of growing memory; workers' reports use the same channel.
        let (commands, command_rx) = bounded::<Command>(65_536);
        let stats = Arc::new(Stats::default());
        // A cluster front's "workers" are slots in the engine's queue: its
        // window of published jobs, some kept for on-screen work.
        let front = options.cluster.clone().filter(|c| c.role != Role::Render);
        let (slots, reserve) = match &front {
            Some(c) => (c.window, c.screen_reserve),
            None => (threads, 1),
        };
        let (jobs, job_rx) = bounded::<WorkerJob>(slots);
        let encoder = TileEncoder::new(options.render.compression);
        let remote = front.is_some();
        let mut workers = match &front {
            Some(settings) => cluster::start_front(
                settings,
                job_rx.clone(),
                commands.clone(),
                Arc::clone(&maps),
                Arc::clone(&stats),
            )
            .map_err(ServiceError::Thread)?,
            None => Vec::with_capacity(threads),
        };
        let local_workers = if remote { 0 } else { threads };
        for index in 0..local_workers {
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
        let metatile_size = options.scheduler.metatile_size.max(1);
        let scheduler = Scheduler::new(options.scheduler);
        let core = Core {
            scheduler,
            stats: Arc::clone(&stats),
            clients: HashMap::new(),
            workers: slots,
            reserve,
            remote,
            max_backlog: options.max_backlog_bytes.max(1),
        };
        let core = std::thread::Builder::new()
            .name("scheduler".into())
            .spawn(move || core.run(command_rx, jobs))
            .map_err(ServiceError::Thread)?;
        let handle = ServiceHandle {
            commands,
            maps,
            // Client 0 is UNATTENDED: registered with the core below.
            next_client: Arc::new(AtomicU64::new(1)),
            next_unattended: Arc::new(AtomicU64::new(1)),
            stats,
            closed: Arc::new(RwLock::new(false)),
            retry_after_ms,
            reloader: Arc::new(OnceLock::new()),
            metatile_size,
        };
        // Unattended work's answers go to a channel nobody reads: sending to
        // it fails, which the core takes as "nobody to tell".
        let (events, _) = unbounded();
        let _ = handle.commands.send(Command::Register {
            client: UNATTENDED,
            events,
            backlog: None,
        });
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
    /// threads end. When it returns, every answer is in its client's
    /// channel and every channel is closed.
    pub fn shutdown(mut self) {
        {
            let mut closed = self
                .handle
                .closed
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *closed = true;
            // Sent under the lock: no submission can slip in behind it.
            let _ = self.handle.commands.send(Command::Shutdown);
        }
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
        self.register_client(None)
    }

    /// Like [`ServiceHandle::register`], for a client whose answers are
    /// bounded in bytes: the caller reports what it has written with
    /// [`ClientBacklog::written`] (each event's [`ClientEvent::weight`]),
    /// and the client's work is paused while too much waits.
    pub fn register_with_backlog(&self) -> (ClientId, Receiver<ClientEvent>, Arc<ClientBacklog>) {
        let backlog = Arc::new(ClientBacklog::default());
        let (client, rx) = self.register_client(Some(Arc::clone(&backlog)));
        (client, rx, backlog)
    }

    fn register_client(
        &self,
        backlog: Option<Arc<ClientBacklog>>,
    ) -> (ClientId, Receiver<ClientEvent>) {
        let client = self.next_client.fetch_add(1, Ordering::Relaxed);
        let (events, rx) = unbounded();
        // If the core has stopped, `events` is dropped here and the
        // receiver reads as closed at once: the session then ends.
        let _ = self.commands.send(Command::Register {
            client,
            events,
            backlog,
        });
        (client, rx)
    }

    /// Forgets a client: its queued work is dropped.
    pub fn unregister(&self, client: ClientId) {
        let _ = self.commands.send(Command::Unregister { client });
    }

    /// The maps served now, in configuration order (the first is the
    /// default). A reload may replace them at any time; this table stays
    /// as it was.
    pub fn maps(&self) -> Arc<MapTable> {
        Arc::clone(&self.read_maps())
    }

    fn read_maps(&self) -> std::sync::RwLockReadGuard<'_, Arc<MapTable>> {
        // The table is replaced whole: a poisoned lock still holds one.
        self.maps
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The id of a map by name; the empty name means the default map.
    pub fn map_id(&self, name: &str) -> Option<MapId> {
        self.read_maps().id_of(name)
    }

    /// The map with this id, if it is still served.
    pub fn map(&self, id: MapId) -> Option<Arc<MapEntry>> {
        self.read_maps().get(id).cloned()
    }

    /// Replaces the map table. `build` gets the current table and returns
    /// the new one; it runs under the write lock, so the cut-offs it sets
    /// from the clock are later than the stamp of any render that got a
    /// map from the old table (see [`crate::generation`]). Keep it short:
    /// no loading in there.
    pub(crate) fn swap_maps(&self, build: impl FnOnce(&MapTable) -> MapTable) {
        let mut maps = self
            .maps
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = build(&maps);
        *maps = Arc::new(next);
    }

    /// Says where reloads read the configuration from (the server does,
    /// with the file and the command line it started with). `false` if
    /// one was set already: it stays.
    pub fn set_reloader(&self, reloader: Reloader) -> bool {
        self.reloader.set(reloader).is_ok()
    }

    /// Reads the configuration again and reloads the maps that changed
    /// (see [`crate::reload`]); returns once the new maps serve.
    pub fn reload(&self) -> Result<ReloadReport, ReloadError> {
        self.reloader
            .get()
            .ok_or(ReloadError::NoSource)?
            .reload(self)
    }

    /// The fingerprints of the served maps' files as they are now (none
    /// without a reloader). See [`Reloader::inputs_now`].
    pub fn inputs_now(&self) -> Vec<String> {
        self.reloader
            .get()
            .map(|reloader| reloader.inputs_now(self))
            .unwrap_or_default()
    }

    /// A stored tile that is still fresh, if there is one.
    pub fn fresh_tile(&self, map: MapId, tile: TileCoord) -> Option<StoredTile> {
        let entry = self.map(map)?;
        let found = entry.store.fresh(tile, entry.generation.since);
        if found.is_some() {
            self.stats.from_store();
        }
        found
    }

    /// Queues work that nobody waits for: re-renders of expired tiles
    /// (`tile-client expire`, renderd's `dirty` requests). It belongs to
    /// the service's own [`UNATTENDED`] client, whose answers are dropped;
    /// it is merged with any other request for the same metatiles, bounded
    /// like a client's work (`max_queued_tiles_per_client`; beyond it the
    /// tiles are not queued and stay as they are in the store), and it does
    /// not end when the connection that asked for it closes. `false` when
    /// shutdown has begun.
    pub fn submit_unattended(
        &self,
        map: MapId,
        tiles: Vec<TileCoord>,
        class: PriorityClass,
    ) -> bool {
        let request_id = self.next_unattended.fetch_add(1, Ordering::Relaxed);
        self.submit(TileRequest {
            client: UNATTENDED,
            request_id,
            map,
            tiles,
            class,
            deadline: None,
            force: true,
        })
    }

    /// Queues a request. Its answers arrive on the client's channel.
    /// `false` when shutdown has begun: nothing was queued, and the caller
    /// answers the tiles itself.
    pub fn submit(&self, request: TileRequest) -> bool {
        let closed = self
            .closed
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        !*closed && self.commands.send(Command::Submit(request)).is_ok()
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
        *self
            .closed
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The retry hint for busy answers, in milliseconds.
    pub fn retry_after_ms(&self) -> u32 {
        self.retry_after_ms
    }

    /// The metatile size: tiles across a metatile, the unit of rendering
    /// (and of expiry).
    pub fn metatile_size(&self) -> u32 {
        self.metatile_size
    }
}

/// Where one client's answers go.
#[derive(Debug)]
struct ClientSink {
    events: Sender<ClientEvent>,
    backlog: Option<Arc<ClientBacklog>>,
    paused: bool,
}

/// The scheduler thread's state: the scheduler, the clients' channels and
/// the worker bookkeeping.
struct Core {
    scheduler: Scheduler,
    stats: Arc<Stats>,
    clients: HashMap<ClientId, ClientSink>,
    /// Render workers, or a cluster front's slots in the engine.
    workers: usize,
    /// Of those, how many only on-screen and explicit work may take while
    /// someone shows a map ([`lowest_class_to_start`]).
    reserve: usize,
    /// A cluster front: jobs are drawn elsewhere; their ranks are kept
    /// current for the shared queue, and shutdown withdraws them.
    remote: bool,
    max_backlog: usize,
}

impl Core {
    /// Commands in, jobs out when a worker is idle, answers to clients.
    fn run(mut self, commands: Receiver<Command>, jobs: Sender<WorkerJob>) {
        let mut idle = self.workers;
        // Jobs handed out: whether each is background work, and its stop
        // flag; `stopping` counts the flags set whose reports are awaited.
        let mut running: HashMap<JobId, RunningJob> = HashMap::new();
        let mut stopping = 0usize;
        let mut background_running = 0usize;
        let mut shutting_down = false;
        // Deadlines and paused clients are looked at a few times a second;
        // nothing else waits on time.
        let ticks = tick(Duration::from_millis(100));
        loop {
            select! {
                recv(commands) -> command => {
                    let Ok(command) = command else { break };
                    match command {
                        Command::WorkDone(done) => {
                            idle += 1;
                            if let Some(job) = running.remove(&done.job) {
                                background_running -= usize::from(job.background);
                                stopping -= usize::from(job.stop.load(Ordering::Relaxed));
                            }
                            if done.stopped {
                                tracing::debug!(job = done.job, "job stopped");
                                self.stats.stopped();
                                self.scheduler.stopped(done.job);
                                if shutting_down {
                                    // A preempted job's interests came back
                                    // to a queue that shutdown had emptied.
                                    self.scheduler.cancel_all(CancelReason::Shutdown);
                                }
                            } else {
                                tracing::debug!(job = done.job, "job done");
                                self.deliver(done);
                            }
                        }
                        Command::Shutdown => {
                            shutting_down = true;
                            self.scheduler.cancel_all(CancelReason::Shutdown);
                            if self.remote {
                                // A front does not wait for other machines'
                                // renders: its jobs are withdrawn, their
                                // requesters answered `Cancelled`.
                                for id in running.keys().copied().collect::<Vec<_>>() {
                                    stopping += stop_render(&running, id, "shutting down");
                                }
                            }
                        }
                        other => self.handle(other, shutting_down),
                    }
                }
                recv(ticks) -> _ => {
                    self.scheduler.expire(Instant::now());
                    self.resume_caught_up();
                }
            }
            // Renders nobody waits for any more stop; while on-screen work
            // waits and no worker is free, a render only left-behind
            // screens want makes way for it.
            for id in self.scheduler.drain_abandoned() {
                stopping += stop_render(&running, id, "nobody waits for it");
            }
            if !shutting_down && idle == 0 {
                while stopping < self.scheduler.viewport_jobs_waiting() {
                    let Some(id) = self.scheduler.preempt() else {
                        break;
                    };
                    stopping += stop_render(&running, id, "on-screen work needs the worker");
                }
            }
            if !shutting_down {
                while idle > 0 {
                    let lowest = lowest_class_to_start(
                        self.workers,
                        self.reserve,
                        background_running,
                        self.scheduler.has_viewport(),
                    );
                    let Some(job) = self.scheduler.next_job_up_to(Instant::now(), lowest) else {
                        break;
                    };
                    let (id, background) = (job.id, is_background(job.class));
                    tracing::debug!(
                        job = id,
                        metatile = %job.metatile,
                        class = job.class.name(),
                        "job started"
                    );
                    let flag = Arc::new(AtomicBool::new(false));
                    let rank = Arc::new(AtomicU8::new(job.class as u8));
                    if jobs
                        .send(WorkerJob {
                            job,
                            stop: Arc::clone(&flag),
                            rank: Arc::clone(&rank),
                        })
                        .is_err()
                    {
                        break;
                    }
                    running.insert(
                        id,
                        RunningJob {
                            background,
                            stop: flag,
                            rank,
                        },
                    );
                    background_running += usize::from(background);
                    idle -= 1;
                }
            }
            if self.remote {
                // Published jobs follow their requesters' screens.
                for (id, job) in &running {
                    if let Some(class) = self.scheduler.running_class(*id) {
                        job.rank.store(class as u8, Ordering::Relaxed);
                    }
                }
            }
            self.answer();
            if shutting_down && self.scheduler.is_idle() && idle == self.workers {
                break;
            }
        }
        // The submission gate closed before `Shutdown` was sent, so nothing
        // should be left; answer anything that is, rather than lose it.
        for command in commands.try_iter() {
            self.handle(command, true);
        }
        self.answer();
        // Dropping the job sender ends the workers; dropping the clients'
        // senders tells every session that its last answer has been sent.
    }

    /// Commands other than a worker's report and shutdown.
    fn handle(&mut self, command: Command, shutting_down: bool) {
        match command {
            Command::Register {
                client,
                events,
                backlog,
            } => {
                let sink = ClientSink {
                    events,
                    backlog,
                    paused: false,
                };
                self.clients.insert(client, sink);
            }
            Command::Unregister { client } => {
                self.scheduler.remove_client(client);
                if self.clients.remove(&client).is_some_and(|s| s.paused) {
                    self.stats.paused(false);
                }
            }
            Command::Submit(request) => {
                if shutting_down {
                    for tile in &request.tiles {
                        let event = ClientEvent {
                            request_id: request.request_id,
                            tile: *tile,
                            outcome: TileOutcome::Cancelled,
                        };
                        self.stats.cancelled(1);
                        self.send_event(request.client, event);
                    }
                } else {
                    let client = request.client;
                    self.scheduler.submit(request);
                    // A client's scheduler state is made on its first
                    // request: carry a pause over to it.
                    if self.clients.get(&client).is_some_and(|s| s.paused) {
                        self.scheduler.set_paused(client, true);
                    }
                }
            }
            Command::Viewport { client, viewport } => {
                tracing::debug!(client, range = ?viewport.range(), "viewport");
                self.scheduler.set_viewport(client, viewport);
            }
            Command::Cancel { client, ids } => self.scheduler.cancel_requests(client, &ids),
            Command::CancelOutside { client, keep_ring } => {
                self.scheduler.cancel_outside_viewport(client, keep_ring);
            }
            Command::Stats { reply } => {
                let _ = reply.send(self.stats.snapshot(&self.scheduler.stats()));
            }
            Command::WorkDone(_) | Command::Shutdown => {
                unreachable!("handled by the core loop")
            }
        }
    }

    /// Routes the scheduler's own answers (cancelled, expired, busy) to
    /// their clients.
    fn answer(&mut self) {
        for Answer {
            client,
            request_id,
            tile,
            outcome,
        } in self.scheduler.drain_answers()
        {
            let outcome = match outcome {
                Outcome::Cancelled(CancelReason::DeadlineExpired) => {
                    self.stats.timed_out(1);
                    TileOutcome::Failed {
                        kind: FailureKind::Timeout,
                        message: "the request's deadline passed before the tile was rendered"
                            .into(),
                    }
                }
                Outcome::Cancelled(_) => {
                    self.stats.cancelled(1);
                    TileOutcome::Cancelled
                }
                Outcome::Busy { retry_after_ms } => {
                    self.stats.busy(1);
                    TileOutcome::Failed {
                        kind: FailureKind::Busy,
                        message: format!("queue full; retry after {retry_after_ms} ms"),
                    }
                }
            };
            let event = ClientEvent {
                request_id,
                tile,
                outcome,
            };
            self.send_event(client, event);
        }
    }

    /// Answers everyone waiting for a finished job.
    fn deliver(&mut self, done: WorkDone) {
        for delivery in self.scheduler.complete(done.job) {
            for tile in delivery.tiles {
                let outcome = match (done.tiles.get(&tile), &done.failure) {
                    (Some(outcome), _) => outcome.clone(),
                    (None, Some((kind, message))) => TileOutcome::Failed {
                        kind: *kind,
                        message: message.clone(),
                    },
                    (None, None) => {
                        tracing::warn!(tile = %tile, "tile failed: not in its rendered metatile");
                        TileOutcome::Failed {
                            kind: FailureKind::Internal,
                            message: format!("tile {tile} was not in its rendered metatile"),
                        }
                    }
                };
                let event = ClientEvent {
                    request_id: delivery.request_id,
                    tile,
                    outcome,
                };
                self.send_event(delivery.client, event);
            }
        }
    }

    fn send_event(&mut self, client: ClientId, event: ClientEvent) {
        let Some(sink) = self.clients.get_mut(&client) else {
            return;
        };
        let weight = event.weight();
        // A client whose receiver is gone has disconnected; its answers
        // have nowhere to go, and Unregister will follow.
        if sink.events.send(event).is_err() {
            return;
        }
        let Some(backlog) = &sink.backlog else { return };
        backlog.add(weight);
        if !sink.paused && backlog.bytes() > self.max_backlog {
            sink.paused = true;
            self.scheduler.set_paused(client, true);
            self.stats.paused(true);
            tracing::info!(
                client,
                bytes = backlog.bytes(),
                "client is not reading its answers; its work is paused"
            );
        }
    }

    /// Resumes paused clients that have read at least half of their
    /// backlog.
    fn resume_caught_up(&mut self) {
        let low = self.max_backlog / 2;
        for (client, sink) in &mut self.clients {
            if sink.paused && sink.backlog.as_ref().is_none_or(|b| b.bytes() <= low) {
                sink.paused = false;
                self.scheduler.set_paused(*client, false);
                self.stats.paused(false);
            }
        }
    }
}

/// A job a worker has, as the core keeps it.
struct RunningJob {
    /// Bulk or dirty work (see [`lowest_class_to_start`]).
    background: bool,
    /// Set to stop its render.
    stop: Arc<AtomicBool>,
    /// Its class now (see [`WorkerJob::rank`]).
    rank: Arc<AtomicU8>,
}

/// Sets a running job's stop flag: 1 if it was not set yet, else 0.
fn stop_render(running: &HashMap<JobId, RunningJob>, id: JobId, why: &str) -> usize {
    match running.get(&id) {
        Some(job) if !job.stop.swap(true, Ordering::Relaxed) => {
            tracing::debug!(job = id, "stopping the render: {why}");
            1
        }
        _ => 0,
    }
}

/// Bulk seeding and dirty re-renders: work nobody is looking at.
fn is_background(class: PriorityClass) -> bool {
    class >= PriorityClass::Bulk
}

/// The lowest class the core may start now. Bulk and dirty renders are not
/// preempted (only left-behind screen work is), so while some client shows
/// a map (has sent a viewport) and
/// there are at least two workers, background work may occupy all workers
/// but `reserve` (one on a machine; a cluster front keeps several slots,
/// since a screen's metatiles go to several render nodes at once): a new
/// screen then starts at once instead of waiting for a bulk metatile to
/// finish. Without viewports (plain seeding) every worker takes background
/// work.
fn lowest_class_to_start(
    workers: usize,
    reserve: usize,
    background_running: usize,
    has_viewport: bool,
) -> PriorityClass {
    if has_viewport && workers >= 2 && background_running + reserve.max(1) >= workers {
        PriorityClass::Explicit
    } else {
        PriorityClass::Dirty
    }
}

/// What every worker shares.
struct WorkerContext {
    options: RenderOptions,
    encoder: TileEncoder,
    stats: Arc<Stats>,
}

/// A worker's renderer for one map, with the map it was made for: a
/// reloaded map gets a new renderer.
struct WarmRenderer {
    entry: Arc<MapEntry>,
    renderer: Renderer,
}

/// A render worker: one `Renderer` per map, made on first use.
fn run_worker(
    jobs: Receiver<WorkerJob>,
    done: Sender<Command>,
    maps: Arc<RwLock<Arc<MapTable>>>,
    context: WorkerContext,
) {
    let mut renderers: HashMap<MapId, WarmRenderer> = HashMap::new();
    for WorkerJob { job, stop, .. } in jobs {
        // The stamp is taken with the map, under the read lock: a reload
        // cannot slip in between (see `crate::generation`).
        let (stamp, entry) = {
            let table = maps
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (SystemTime::now(), table.get(job.map).cloned())
        };
        let report = match entry {
            Some(entry) => {
                let warm = renderers.entry(job.map).or_insert_with(|| WarmRenderer {
                    entry: Arc::clone(&entry),
                    renderer: context.renderer_for(&entry),
                });
                if !Arc::ptr_eq(&warm.entry, &entry) {
                    tracing::debug!(map = %entry.name, "new renderer for the reloaded map");
                    *warm = WarmRenderer {
                        entry: Arc::clone(&entry),
                        renderer: context.renderer_for(&entry),
                    };
                }
                let report = render_job(&job, &stop, &entry, &mut warm.renderer, stamp, &context);
                if report.panicked {
                    // The renderer may be in any state: build a new one
                    // next time.
                    renderers.remove(&job.map);
                }
                report.done
            }
            None => WorkDone {
                job: job.id,
                tiles: HashMap::new(),
                failure: Some((
                    FailureKind::InvalidTile,
                    "its map is no longer served (removed by a reload)".to_owned(),
                )),
                stopped: false,
            },
        };
        if done.send(Command::WorkDone(report)).is_err() {
            break;
        }
    }
}

impl WorkerContext {
    fn renderer_for(&self, entry: &MapEntry) -> Renderer {
        let options = match entry.scale {
            2 => hidpi_options(&self.options),
            _ => self.options.clone(),
        };
        Renderer::with_encoder(entry.source.clone(), options, self.encoder.clone())
    }
}

/// What a render produced, and whether the renderer panicked.
struct JobReport {
    done: WorkDone,
    panicked: bool,
}

fn render_job(
    job: &RenderJob,
    stop: &AtomicBool,
    entry: &MapEntry,
    renderer: &mut Renderer,
    stamp: SystemTime,
    worker: &WorkerContext,
) -> JobReport {
    let stats = &worker.stats;
    if !job.force {
        if let Some(done) = already_rendered(job, entry) {
            return JobReport::of(done);
        }
    }
    let started = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| {
        renderer.render_metatile_unless_stopped(&job.metatile, stop)
    }));
    let rendered = match result {
        Ok(Ok(tiles)) => tiles,
        Ok(Err(render_core::Error::Stopped { .. })) => {
            return JobReport::of(WorkDone {
                job: job.id,
                tiles: HashMap::new(),
                failure: None,
                stopped: true,
            });
        }
        Ok(Err(error)) => {
            let kind = match error {
                render_core::Error::Data { .. } => FailureKind::DataSource,
                _ => FailureKind::Render,
            };
            // One line for the metatile: each of its tiles failed for this.
            tracing::warn!(
                map = %entry.name,
                metatile = %job.metatile,
                tiles = job.metatile.tile_count(),
                "render failed: {error}"
            );
            return JobReport::of(WorkDone {
                job: job.id,
                tiles: HashMap::new(),
                failure: Some((kind, error.to_string())),
                stopped: false,
            });
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            tracing::error!(
                map = %entry.name,
                metatile = %job.metatile,
                tiles = job.metatile.tile_count(),
                "renderer panicked: {message}"
            );
            return JobReport {
                done: WorkDone {
                    job: job.id,
                    tiles: HashMap::new(),
                    failure: Some((
                        FailureKind::Internal,
                        format!("renderer panicked: {message}"),
                    )),
                    stopped: false,
                },
                panicked: true,
            };
        }
    };
    let count = rendered.len();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::debug!(
        map = %entry.name,
        job = job.id,
        metatile = %job.metatile,
        ms = elapsed_ms.round(),
        "metatile rendered"
    );
    let per_tile_ms = (elapsed_ms / count.max(1) as f64).ceil() as u32;
    let written = match entry.store.write_metatile(&job.metatile, &rendered, stamp) {
        Ok(written) => written,
        Err(e) => {
            // One file for the whole metatile: one line for its tiles.
            tracing::warn!(
                map = %entry.name,
                metatile = %job.metatile,
                tiles = count,
                "tile failed: {e}"
            );
            stats.rendered(count, count, elapsed_ms);
            return JobReport::of(WorkDone {
                job: job.id,
                tiles: HashMap::new(),
                failure: Some((FailureKind::Storage, e.to_string())),
                stopped: false,
            });
        }
    };
    let own_file = entry.store.has_tile_files();
    let mut failed = 0;
    let tiles = rendered
        .into_iter()
        .zip(written)
        .map(|(t, (_, written))| {
            let outcome = match written {
                Ok(path) => TileOutcome::Done {
                    path,
                    png: Some(t.png),
                    render_ms: per_tile_ms,
                    cached: false,
                    own_file,
                },
                Err(e) => {
                    failed += 1;
                    tracing::warn!(map = %entry.name, tile = %t.tile, "tile failed: {e}");
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
    stats.rendered_on(&entry.name, job.metatile.z(), elapsed_ms);
    JobReport::of(WorkDone {
        job: job.id,
        tiles,
        failure: None,
        stopped: false,
    })
}

/// A job whose every tile is in the store and fresh: another render of the
/// same metatile finished between its requesters' store check and this
/// moment (a thousand browsers asking for one missing tile at once). It is
/// answered from the store instead of being drawn again. A `stat` per tile;
/// the first one missing or stale ends the look.
pub(crate) fn already_rendered(job: &RenderJob, entry: &MapEntry) -> Option<WorkDone> {
    let mut tiles = HashMap::new();
    for tile in job.metatile.tiles() {
        let stored = entry.store.fresh(tile, entry.generation.since)?;
        tiles.insert(
            tile,
            TileOutcome::Done {
                own_file: stored.png.is_none(),
                path: stored.path,
                png: stored.png,
                render_ms: 0,
                cached: true,
            },
        );
    }
    tracing::debug!(map = %entry.name, metatile = %job.metatile, "already rendered: answered from the store");
    Some(WorkDone {
        job: job.id,
        tiles,
        failure: None,
        stopped: false,
    })
}

impl JobReport {
    fn of(done: WorkDone) -> JobReport {
        JobReport {
            done,
            panicked: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::SchedulerConfig;
    use tile_math::LngLatBbox;

    /// A core on its own thread; the test plays the workers.
    fn start_core(
        workers: usize,
        max_backlog: usize,
    ) -> (Sender<Command>, Receiver<WorkerJob>, JoinHandle<()>) {
        let (commands, command_rx) = bounded(1024);
        let (jobs, job_rx) = bounded(workers);
        let core = Core {
            scheduler: Scheduler::new(SchedulerConfig::default()),
            stats: Arc::new(Stats::default()),
            clients: HashMap::new(),
            workers,
            reserve: 1,
            remote: false,
            max_backlog,
        };
        let thread = std::thread::spawn(move || core.run(command_rx, jobs));
        (commands, job_rx, thread)
    }

    /// Waits until the core has handled every command sent before: it
    /// answers `Stats` only after them, and hands out jobs in the same
    /// turn as the command that made them possible.
    fn sync(commands: &Sender<Command>) {
        let (reply, rx) = bounded(1);
        commands.send(Command::Stats { reply }).unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
    }

    fn bulk(client: ClientId, request_id: RequestId, class: PriorityClass) -> Command {
        // Tiles of 8 different metatiles at z12.
        let tiles = (0..8)
            .map(|i| TileCoord::new(12, i * 8, 0).unwrap())
            .collect();
        Command::Submit(TileRequest {
            client,
            request_id,
            map: 0,
            tiles,
            class,
            deadline: None,
            force: false,
        })
    }

    fn register(
        commands: &Sender<Command>,
        client: ClientId,
        backlog: Option<Arc<ClientBacklog>>,
    ) -> Receiver<ClientEvent> {
        let (events, rx) = unbounded();
        commands
            .send(Command::Register {
                client,
                events,
                backlog,
            })
            .unwrap();
        rx
    }

    /// Shuts the core down, reporting `taken` (the jobs the test took and
    /// kept) and every job still handed out, or the core waits for them.
    fn stop(
        commands: Sender<Command>,
        jobs: Receiver<WorkerJob>,
        core: JoinHandle<()>,
        taken: Vec<JobId>,
    ) {
        commands.send(Command::Shutdown).unwrap();
        let mut ids: Vec<JobId> = taken;
        while !core.is_finished() {
            ids.extend(jobs.try_iter().map(|j| j.job.id));
            for job in ids.drain(..) {
                let _ = commands.send(Command::WorkDone(WorkDone {
                    job,
                    tiles: HashMap::new(),
                    failure: Some((FailureKind::Internal, "test".into())),
                    stopped: false,
                }));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        core.join().unwrap();
    }

    #[test]
    fn the_core_keeps_a_worker_for_the_screen_while_a_map_is_shown() {
        let (commands, jobs, core) = start_core(2, 1 << 20);
        let _events = register(&commands, 1, None);
        let viewport = Viewport::from_bbox(LngLatBbox::new(24.9, 60.1, 25.0, 60.2), 12).unwrap();
        commands
            .send(Command::Viewport {
                client: 1,
                viewport,
            })
            .unwrap();
        commands.send(bulk(1, 1, PriorityClass::Bulk)).unwrap();
        sync(&commands);
        let handed: Vec<RenderJob> = jobs.try_iter().map(|w| w.job).collect();
        assert_eq!(handed.len(), 1, "bulk work may take one of two workers");
        assert_eq!(handed[0].class, PriorityClass::Bulk);
        let first = handed[0].id;
        // The screen's tile starts at once on the worker kept free.
        commands.send(bulk(1, 2, PriorityClass::Viewport)).unwrap();
        sync(&commands);
        let handed: Vec<RenderJob> = jobs.try_iter().map(|w| w.job).collect();
        assert_eq!(handed.len(), 1);
        // (Off screen, the scheduler ranks it Explicit: still not bulk.)
        assert!(
            handed[0].class < PriorityClass::Bulk,
            "{:?}",
            handed[0].class
        );
        stop(commands, jobs, core, vec![first, handed[0].id]);
    }

    #[test]
    fn the_core_gives_every_worker_to_seeding_when_no_map_is_shown() {
        let (commands, jobs, core) = start_core(2, 1 << 20);
        let _events = register(&commands, 1, None);
        commands.send(bulk(1, 1, PriorityClass::Bulk)).unwrap();
        sync(&commands);
        let handed: Vec<RenderJob> = jobs.try_iter().map(|w| w.job).collect();
        assert_eq!(handed.len(), 2);
        assert!(handed.iter().all(|j| j.class == PriorityClass::Bulk));
        stop(commands, jobs, core, handed.iter().map(|j| j.id).collect());
    }

    #[test]
    fn a_client_that_does_not_read_is_paused_and_resumed_when_it_catches_up() {
        let (commands, jobs, core) = start_core(1, 1000);
        let backlog = Arc::new(ClientBacklog::default());
        let events = register(&commands, 1, Some(Arc::clone(&backlog)));
        commands.send(bulk(1, 1, PriorityClass::Explicit)).unwrap();
        let job = jobs.recv_timeout(Duration::from_secs(10)).unwrap().job;
        // The job's tile is answered with a PNG bigger than the limit.
        let tile = job
            .metatile
            .tiles()
            .find(|t| t.y() == 0 && t.x() % 8 == 0)
            .unwrap();
        let png = Arc::new(vec![0u8; 4000]);
        let outcome = TileOutcome::Done {
            path: PathBuf::from("/t.png"),
            png: Some(png),
            render_ms: 1,
            cached: false,
            own_file: true,
        };
        commands
            .send(Command::WorkDone(WorkDone {
                job: job.id,
                tiles: HashMap::from([(tile, outcome)]),
                failure: None,
                stopped: false,
            }))
            .unwrap();
        sync(&commands);
        assert!(backlog.bytes() > 1000);
        // The worker is idle and seven metatiles are queued, but the client
        // is paused: nothing is handed out.
        assert!(jobs.try_recv().is_err(), "work of a paused client started");
        // The client reads its answer: within a tick its work goes on.
        let event = events.recv().unwrap();
        backlog.written(event.weight());
        assert_eq!(backlog.bytes(), 0);
        let next = jobs.recv_timeout(Duration::from_secs(10)).unwrap().job;
        assert_eq!(next.class, PriorityClass::Explicit);
        stop(commands, jobs, core, vec![next.id]);
    }

    #[test]
    fn the_core_stops_renders_left_behind_or_unwanted_and_answers_every_tile_once() {
        let (commands, jobs, core) = start_core(1, 1 << 20);
        let events = register(&commands, 1, None);
        let screen = |x: u32| {
            Viewport::from_tile_range(
                tile_math::TileRange::new(
                    TileCoord::new(12, x, 0).unwrap(),
                    TileCoord::new(12, x + 3, 2).unwrap(),
                )
                .unwrap(),
            )
        };
        let ask = |request_id: RequestId, x: u32| {
            Command::Submit(TileRequest {
                client: 1,
                request_id,
                map: 0,
                tiles: vec![TileCoord::new(12, x, 0).unwrap()],
                class: PriorityClass::Viewport,
                deadline: None,
                force: false,
            })
        };
        let recv = || jobs.recv_timeout(Duration::from_secs(10)).unwrap();
        commands
            .send(Command::Viewport {
                client: 1,
                viewport: screen(0),
            })
            .unwrap();
        commands.send(ask(1, 0)).unwrap();
        let first = recv();
        assert!(!first.stop.load(Ordering::Relaxed));
        // The user moves on and asks for the new screen; the old request
        // stays (demoted). The one worker is busy with the old screen: it
        // is told to stop.
        commands
            .send(Command::Viewport {
                client: 1,
                viewport: screen(64),
            })
            .unwrap();
        commands.send(ask(2, 64)).unwrap();
        sync(&commands);
        assert!(
            first.stop.load(Ordering::Relaxed),
            "the left-behind render goes on"
        );
        let stopped = |id| {
            Command::WorkDone(WorkDone {
                job: id,
                tiles: HashMap::new(),
                failure: None,
                stopped: true,
            })
        };
        commands.send(stopped(first.job.id)).unwrap();
        let second = recv();
        assert_eq!(second.job.metatile.x(), 64, "the new screen first");
        // The user cancels the new screen's request while it renders: its
        // tile is answered at once and the render is stopped.
        commands
            .send(Command::Cancel {
                client: 1,
                ids: vec![2],
            })
            .unwrap();
        let event = events.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(
            (event.request_id, event.outcome),
            (2, TileOutcome::Cancelled)
        );
        sync(&commands);
        assert!(second.stop.load(Ordering::Relaxed));
        commands.send(stopped(second.job.id)).unwrap();
        // The left-behind request is still wanted: rendered now.
        let third = recv();
        assert_eq!(third.job.metatile.x(), 0);
        assert!(!third.stop.load(Ordering::Relaxed));
        let (reply, rx) = bounded(1);
        commands.send(Command::Stats { reply }).unwrap();
        let snapshot = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(snapshot.get("metatiles_stopped"), Some(2));
        stop(commands, jobs, core, vec![third.job.id]);
        let rest: Vec<ClientEvent> = events.try_iter().collect();
        assert_eq!(rest.len(), 1, "request 1's tile answered once: {rest:?}");
        assert_eq!(rest[0].request_id, 1);
    }

    #[test]
    fn one_worker_stays_free_for_screens_only_when_someone_shows_a_map() {
        use PriorityClass::{Dirty, Explicit};
        // Seeding alone (no viewport): every worker takes bulk work.
        for running in 0..4 {
            assert_eq!(lowest_class_to_start(4, 1, running, false), Dirty);
        }
        // A viewport with 4 workers: bulk may use 3 of them.
        assert_eq!(lowest_class_to_start(4, 1, 2, true), Dirty);
        assert_eq!(lowest_class_to_start(4, 1, 3, true), Explicit);
        // 2 workers: 1 for bulk, 1 kept for the screen.
        assert_eq!(lowest_class_to_start(2, 1, 0, true), Dirty);
        assert_eq!(lowest_class_to_start(2, 1, 1, true), Explicit);
        // 1 worker: nothing to keep back, or bulk would never run.
        assert_eq!(lowest_class_to_start(1, 1, 0, true), Dirty);
        // A cluster front's window of 64 with 16 kept for screens.
        assert_eq!(lowest_class_to_start(64, 16, 47, true), Dirty);
        assert_eq!(lowest_class_to_start(64, 16, 48, true), Explicit);
        assert_eq!(lowest_class_to_start(64, 16, 63, false), Dirty);
        assert!(is_background(PriorityClass::Bulk) && is_background(Dirty));
        assert!(!is_background(Explicit));
    }
}
