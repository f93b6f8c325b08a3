//! The scheduler: which metatile to render next.
//!
//! This is tessera's reason to exist. It is a plain data structure with no
//! threads and no clock of its own (the caller passes `now`), so every rule
//! below is tested deterministically:
//!
//! - **Classes.** Work is ranked by class, highest first: [`PriorityClass::Viewport`]
//!   (on screen), `Neighbour` (around the screen), `Explicit`, `Bulk`, `Dirty`.
//! - **Viewports.** A client's tile that is on its current screen counts as
//!   `Viewport`, whatever class it was asked with; a tile in the ring around
//!   the screen counts as `Neighbour`. Work asked as `Viewport` or `Neighbour`
//!   that is no longer near the screen (the user scrolled away) drops to
//!   `Explicit`. Within a class, work is ordered by distance from the
//!   client's screen centre, then first come first served. A new viewport
//!   re-ranks the client's queued work at once.
//! - **Merging.** Requests for the same metatile, from any clients, become
//!   one job: it is rendered once and every requester is answered. Each
//!   requester ranks the job by its own class, so a duplicate at a higher
//!   class promotes the job. A request for a metatile being rendered joins
//!   that render.
//! - **Fairness.** Within a class, clients take turns (round robin).
//! - **Bounds.** Queued tiles are limited in total and per client. When the
//!   queue is full, the lowest-ranked work is refused with
//!   [`Outcome::Busy`]: a new request evicts queued work of a strictly lower
//!   class, or is itself refused. Nothing is dropped silently.
//! - **FIFO mode.** With [`SchedulerConfig::fifo`], every request counts as
//!   `Explicit` and viewports are ignored: arrival order, for comparison.
//! - **Deadlines.** Work past its deadline is answered
//!   [`CancelReason::DeadlineExpired`] instead of being rendered.
//! - **Running work the user left.** A cancel (by request, or of work
//!   outside the viewport) also answers the matching tiles of jobs being
//!   rendered, at once; a running job left with nobody waiting is
//!   *abandoned* ([`Scheduler::drain_abandoned`]: the service stops its
//!   render). While on-screen work waits, a running job that only
//!   left-behind screens want (asked as `Viewport`/`Neighbour`, now off
//!   every screen) may be *preempted* ([`Scheduler::preempt`]): its render
//!   is stopped and its interests go back to the queue
//!   ([`Scheduler::stopped`]). Nobody joins a render that is being stopped.
//! - **Exactly one final answer.** Every tile of every request leaves the
//!   scheduler exactly once: as part of a [`RenderJob`] whose completion
//!   delivers it ([`Scheduler::complete`]), or as an [`Answer`] (cancelled,
//!   busy) collected with [`Scheduler::drain_answers`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use tile_math::{Metatile, TileCoord, Viewport};

/// Who asked: one id per connection (or per embedding caller).
pub type ClientId = u64;

/// The client's own id for one request; answers carry it back.
pub type RequestId = u64;

/// Identifies one render of one metatile, from [`Scheduler::next_job`] to
/// [`Scheduler::complete`].
pub type JobId = u64;

/// Which map (style) a tile is for: an index into the service's maps.
pub type MapId = u32;

/// What a job renders: one metatile of one map. Requests for the same key
/// are merged.
type JobKey = (MapId, Metatile);

/// Priority classes, highest first. The order of the variants is the order
/// of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PriorityClass {
    /// On the client's screen now.
    Viewport = 0,
    /// In the ring of tiles around the screen (prefetch).
    Neighbour = 1,
    /// Asked for explicitly, e.g. `tile-client render`.
    Explicit = 2,
    /// Bulk seeding.
    Bulk = 3,
    /// Re-rendering tiles whose data changed.
    Dirty = 4,
}

impl PriorityClass {
    /// Every class, highest first.
    pub const ALL: [PriorityClass; 5] = [
        PriorityClass::Viewport,
        PriorityClass::Neighbour,
        PriorityClass::Explicit,
        PriorityClass::Bulk,
        PriorityClass::Dirty,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// Lower-case name, for stats and logs.
    pub fn name(self) -> &'static str {
        match self {
            PriorityClass::Viewport => "viewport",
            PriorityClass::Neighbour => "neighbour",
            PriorityClass::Explicit => "explicit",
            PriorityClass::Bulk => "bulk",
            PriorityClass::Dirty => "dirty",
        }
    }
}

/// Limits and shape of the scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Metatile size N (N×N tiles are rendered together).
    pub metatile_size: u32,
    /// Most tiles queued at once, over all clients.
    pub max_queued_tiles: usize,
    /// Most tiles one client may have queued.
    pub max_queued_tiles_per_client: usize,
    /// How many rings of tiles around the screen count as `Neighbour`.
    pub neighbour_rings: u32,
    /// The retry hint sent with [`Outcome::Busy`].
    pub retry_after_ms: u32,
    /// First come, first served: every request counts as `Explicit` and
    /// viewports are ignored, so work is rendered in arrival order (clients
    /// still take turns). What the original program did; for comparison
    /// benchmarks, not for serving users.
    pub fifo: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            metatile_size: tile_math::DEFAULT_METATILE_SIZE,
            max_queued_tiles: 2_000_000,
            max_queued_tiles_per_client: 1_000_000,
            neighbour_rings: 1,
            retry_after_ms: 500,
            fifo: false,
        }
    }
}

/// One request for tiles, as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct TileRequest {
    /// Who asked.
    pub client: ClientId,
    /// The client's id for this request.
    pub request_id: RequestId,
    /// Which map.
    pub map: MapId,
    /// The tiles. Duplicates are answered once each time they are listed.
    pub tiles: Vec<TileCoord>,
    /// The class the client asked for.
    pub class: PriorityClass,
    /// Render only if it can start before this instant.
    pub deadline: Option<Instant>,
    /// Render even if the store has a fresh tile (the store check is the
    /// caller's; the scheduler passes the flag on to the job).
    pub force: bool,
}

/// Why queued work was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// The client sent `Cancel` for this request.
    ByClient,
    /// The client asked to drop everything outside its viewport.
    OutsideViewport,
    /// The job's deadline passed before it could start.
    DeadlineExpired,
    /// The client went away.
    ClientGone,
    /// The server is shutting down.
    Shutdown,
}

/// A final answer the scheduler gives without rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The tile will not be rendered for this request.
    Cancelled(CancelReason),
    /// The queue (total or this client's share) is full; try again later.
    Busy {
        /// Suggested wait before retrying.
        retry_after_ms: u32,
    },
}

/// One final answer for one tile of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Who asked.
    pub client: ClientId,
    /// Which request.
    pub request_id: RequestId,
    /// Which tile.
    pub tile: TileCoord,
    /// What happened.
    pub outcome: Outcome,
}

/// A metatile to render, handed to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderJob {
    /// Pass back to [`Scheduler::complete`].
    pub id: JobId,
    /// Which map.
    pub map: MapId,
    /// What to render.
    pub metatile: Metatile,
    /// Whether any requester asked to bypass the store.
    pub force: bool,
    /// The class it was picked in (its best requester's).
    pub class: PriorityClass,
}

/// Who is waiting for which tiles of a finished job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Who asked.
    pub client: ClientId,
    /// Which request.
    pub request_id: RequestId,
    /// The tiles of the metatile this request asked for.
    pub tiles: Vec<TileCoord>,
}

/// Queue depths and counts, for stats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchedulerStats {
    /// Queued tiles by effective class, highest class first.
    pub queued_tiles_by_class: [usize; 5],
    /// Queued metatile jobs.
    pub queued_jobs: usize,
    /// Jobs handed out and not completed.
    pub running_jobs: usize,
    /// Queued tiles per client.
    pub queued_tiles_by_client: BTreeMap<ClientId, usize>,
}

/// One request's wish for some tiles of one metatile.
#[derive(Debug, Clone)]
struct Interest {
    client: ClientId,
    request_id: RequestId,
    tiles: Vec<TileCoord>,
    class: PriorityClass,
    deadline: Option<Instant>,
    force: bool,
    /// Arrival order, for first-come-first-served ties.
    seq: u64,
}

/// A queued metatile and everyone waiting for it.
#[derive(Debug, Clone)]
struct Job {
    key: JobKey,
    interests: Vec<Interest>,
}

/// Where a job stands in one client's queue: class first, then distance from
/// the client's screen centre, then arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct RankKey {
    /// Distance in tiles, as ordered bits of a non-negative f64.
    distance_bits: u64,
    seq: u64,
    key: JobKey,
}

#[derive(Debug, Default)]
struct ClientState {
    viewport: Option<Viewport>,
    /// This client's view of the queued jobs, one ordered set per class.
    queues: [BTreeSet<RankKey>; 5],
    /// Where each of this client's jobs sits in `queues`.
    placed: HashMap<JobKey, (PriorityClass, RankKey)>,
    queued_tiles: usize,
    /// The client is not reading its answers fast enough: none of its work
    /// is started until it catches up (work it shares with others still
    /// runs when they are served).
    paused: bool,
}

/// The scheduler. See the module docs for the rules.
#[derive(Debug)]
pub struct Scheduler {
    config: SchedulerConfig,
    queued: HashMap<JobKey, Job>,
    running: HashMap<JobId, Job>,
    running_by_key: HashMap<JobKey, JobId>,
    clients: BTreeMap<ClientId, ClientState>,
    /// The client served last in each class, for round robin.
    last_served: [Option<ClientId>; 5],
    queued_tiles: usize,
    next_seq: u64,
    next_job: JobId,
    answers: Vec<Answer>,
    /// Running jobs being stopped (abandoned or preempted): new requests
    /// do not join them.
    stopping: HashSet<JobId>,
    /// Running jobs abandoned since the last [`Scheduler::drain_abandoned`].
    abandoned: Vec<JobId>,
}

impl Scheduler {
    /// An empty scheduler.
    pub fn new(config: SchedulerConfig) -> Self {
        Self {
            config,
            queued: HashMap::new(),
            running: HashMap::new(),
            running_by_key: HashMap::new(),
            clients: BTreeMap::new(),
            last_served: [None; 5],
            queued_tiles: 0,
            next_seq: 0,
            next_job: 1,
            answers: Vec::new(),
            stopping: HashSet::new(),
            abandoned: Vec::new(),
        }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// Takes the answers given since the last call (cancellations, refusals).
    pub fn drain_answers(&mut self) -> Vec<Answer> {
        std::mem::take(&mut self.answers)
    }

    /// Tiles queued (not running), over all clients.
    pub fn queued_tiles(&self) -> usize {
        self.queued_tiles
    }

    /// Whether nothing is queued or running.
    pub fn is_idle(&self) -> bool {
        self.queued.is_empty() && self.running.is_empty()
    }

    /// Queues the tiles of a request. Tiles of a metatile being rendered
    /// join that render; tiles that do not fit are answered `Busy`.
    pub fn submit(&mut self, request: TileRequest) {
        let TileRequest {
            client,
            request_id,
            map,
            tiles,
            class,
            deadline,
            force,
        } = request;
        let size = self.config.metatile_size.max(1);
        // Group by metatile, keeping the client's order within each group.
        let mut groups: Vec<(Metatile, Vec<TileCoord>)> = Vec::new();
        let mut group_of: HashMap<Metatile, usize> = HashMap::new();
        for tile in tiles {
            let Ok(meta) = Metatile::containing(tile, size) else {
                continue;
            };
            let index = *group_of.entry(meta).or_insert_with(|| {
                groups.push((meta, Vec::new()));
                groups.len() - 1
            });
            groups[index].1.push(tile);
        }
        self.clients.entry(client).or_default();
        for (metatile, tiles) in groups {
            let key = (map, metatile);
            let seq = self.next_seq;
            self.next_seq += 1;
            let interest = Interest {
                client,
                request_id,
                tiles,
                class,
                deadline,
                force,
                seq,
            };
            if let Some(&job_id) = self.running_by_key.get(&key) {
                if let Some(job) = self.running.get_mut(&job_id) {
                    if !self.stopping.contains(&job_id) {
                        job.interests.push(interest);
                        continue;
                    }
                }
            }
            if self.make_room(&interest) {
                self.enqueue(key, interest);
            } else {
                self.refuse_busy(&interest);
            }
        }
    }

    /// Sets a client's viewport and re-ranks its queued work at once.
    pub fn set_viewport(&mut self, client: ClientId, viewport: Viewport) {
        self.clients.entry(client).or_default().viewport = Some(viewport);
        self.rerank_client(client);
    }

    /// Cancels the tiles of some of a client's requests, queued or being
    /// rendered: each is answered `Cancelled` now. A render left with
    /// nobody waiting is abandoned ([`Scheduler::drain_abandoned`]).
    pub fn cancel_requests(&mut self, client: ClientId, request_ids: &[RequestId]) {
        let matches =
            |interest: &Interest, _: &Metatile| request_ids.contains(&interest.request_id);
        self.remove_interests(client, CancelReason::ByClient, matches);
        self.remove_running_interests(client, Some(CancelReason::ByClient), matches);
    }

    /// Cancels a client's tiles, queued or being rendered, that are neither
    /// on its screen nor within `keep_rings` rings of tiles around it (at
    /// the viewport's zoom). Without a viewport, nothing is cancelled.
    pub fn cancel_outside_viewport(&mut self, client: ClientId, keep_rings: u32) {
        let Some(viewport) = self.clients.get(&client).and_then(|c| c.viewport) else {
            return;
        };
        let rings = keep_rings;
        let outside = |interest: &Interest, _: &Metatile| {
            !interest
                .tiles
                .iter()
                .any(|t| viewport.ring_of(*t).is_some_and(|r| r <= rings))
        };
        self.remove_interests(client, CancelReason::OutsideViewport, outside);
        self.remove_running_interests(client, Some(CancelReason::OutsideViewport), outside);
    }

    /// Forgets a client that went away: its queued work is answered
    /// `ClientGone` (so the bookkeeping stays exact) and jobs nobody else
    /// wants are dropped. Running jobs still finish for the other requesters;
    /// those nobody else waits for are abandoned.
    pub fn remove_client(&mut self, client: ClientId) {
        self.remove_interests(client, CancelReason::ClientGone, |_, _| true);
        // Nobody is left to answer: the client's interests in running jobs
        // are dropped silently.
        self.remove_running_interests(client, None, |_, _| true);
        self.clients.remove(&client);
        for served in &mut self.last_served {
            if *served == Some(client) {
                *served = None;
            }
        }
    }

    /// Answers every queued tile with `reason` and empties the queue
    /// (graceful shutdown). Running jobs still complete.
    pub fn cancel_all(&mut self, reason: CancelReason) {
        let clients: Vec<ClientId> = self.clients.keys().copied().collect();
        for client in clients {
            self.remove_interests(client, reason, |_, _| true);
        }
    }

    /// Answers queued work whose deadline is before `now`.
    pub fn expire(&mut self, now: Instant) {
        let clients: Vec<ClientId> = self.clients.keys().copied().collect();
        for client in clients {
            self.remove_interests(client, CancelReason::DeadlineExpired, |interest, _| {
                interest.deadline.is_some_and(|d| d < now)
            });
        }
    }

    /// The next metatile to render, or `None` when nothing is queued.
    /// Expired work met on the way is answered, not rendered.
    pub fn next_job(&mut self, now: Instant) -> Option<RenderJob> {
        self.next_job_up_to(now, PriorityClass::Dirty)
    }

    /// Like [`Scheduler::next_job`], but only work of class `lowest` or
    /// higher; lower work stays queued.
    pub fn next_job_up_to(&mut self, now: Instant, lowest: PriorityClass) -> Option<RenderJob> {
        loop {
            let (class, client) = self.pick_client(lowest)?;
            let key = self.clients.get(&client)?.queues[class.index()]
                .first()
                .copied()?;
            self.last_served[class.index()] = Some(client);
            let Some(mut job) = self.take_job(key.key) else {
                // Unreachable while `place` keeps the queues exact; never
                // loop on a stale entry.
                if let Some(state) = self.clients.get_mut(&client) {
                    state.queues[class.index()].remove(&key);
                    state.placed.remove(&key.key);
                }
                continue;
            };
            let (live, expired): (Vec<Interest>, Vec<Interest>) = job
                .interests
                .drain(..)
                .partition(|i| i.deadline.is_none_or(|d| d >= now));
            for interest in &expired {
                self.answer_all(interest, Outcome::Cancelled(CancelReason::DeadlineExpired));
            }
            if live.is_empty() {
                continue;
            }
            job.interests = live;
            let id = self.next_job;
            self.next_job += 1;
            let force = job.interests.iter().any(|i| i.force);
            let (map, metatile) = job.key;
            self.running_by_key.insert(job.key, id);
            self.running.insert(id, job);
            return Some(RenderJob {
                id,
                map,
                metatile,
                force,
                class,
            });
        }
    }

    /// Marks a job finished and says who is waiting for which of its tiles.
    /// The caller answers each of them with the render's result.
    pub fn complete(&mut self, job: JobId) -> Vec<Delivery> {
        let id = job;
        let Some(job) = self.running.remove(&id) else {
            return Vec::new();
        };
        self.forget_running(id, job.key);
        job.interests
            .into_iter()
            .map(|i| Delivery {
                client: i.client,
                request_id: i.request_id,
                tiles: i.tiles,
            })
            .collect()
    }

    /// Running jobs abandoned since the last call: nobody waits for them,
    /// so their renders should stop. Each is reported once; it still ends
    /// with [`Scheduler::stopped`] (or [`Scheduler::complete`], if it
    /// finished first).
    pub fn drain_abandoned(&mut self) -> Vec<JobId> {
        std::mem::take(&mut self.abandoned)
    }

    /// A running job to stop so that waiting on-screen work can start
    /// sooner: while some client's on-screen work waits, a running job that
    /// only left-behind screens want (every interest was asked as
    /// `Viewport` or `Neighbour` and now ranks below both for its client),
    /// the most recently started if several (it has the least work to
    /// lose). The job is marked as stopping: nobody joins it, and
    /// [`Scheduler::stopped`] puts its interests back in the queue. `None`
    /// in FIFO mode, or when nothing qualifies.
    pub fn preempt(&mut self) -> Option<JobId> {
        if self.config.fifo {
            return None;
        }
        let screen_waits = self
            .clients
            .values()
            .any(|c| !c.paused && !c.queues[PriorityClass::Viewport.index()].is_empty());
        if !screen_waits {
            return None;
        }
        let left_behind = |job: &Job| {
            !job.interests.is_empty()
                && job.interests.iter().all(|i| {
                    i.class <= PriorityClass::Neighbour
                        && self.clients.get(&i.client).is_some_and(|c| {
                            self.rank(c, &i.tiles, i.class).0 > PriorityClass::Neighbour
                        })
                })
        };
        let id = self
            .running
            .iter()
            .filter(|(id, job)| !self.stopping.contains(id) && left_behind(job))
            .map(|(id, _)| *id)
            .max()?;
        self.stopping.insert(id);
        Some(id)
    }

    /// The class a running job ranks in now: its best requester's, as the
    /// viewports stand (a request that joined it, a screen that moved).
    /// A cluster front re-ranks the job in the shared queue with it;
    /// `None` for a job that is not running.
    pub fn running_class(&self, job: JobId) -> Option<PriorityClass> {
        let job = self.running.get(&job)?;
        job.interests
            .iter()
            .filter_map(|i| {
                let client = self.clients.get(&i.client)?;
                Some(self.rank(client, &i.tiles, i.class).0)
            })
            .min()
    }

    /// How many jobs wait as on-screen work (summed over clients that are
    /// not paused; a job two clients see counts twice).
    pub fn viewport_jobs_waiting(&self) -> usize {
        self.clients
            .values()
            .filter(|c| !c.paused)
            .map(|c| c.queues[PriorityClass::Viewport.index()].len())
            .sum()
    }

    /// A running job's render was stopped before it finished: whoever still
    /// wants its tiles (a preempted job's left-behind screens) is queued
    /// again, ranked as before; nobody is answered now.
    pub fn stopped(&mut self, job: JobId) {
        let Some(job_state) = self.running.remove(&job) else {
            return;
        };
        self.forget_running(job, job_state.key);
        for interest in job_state.interests {
            self.enqueue(job_state.key, interest);
        }
    }

    /// Queue depths and counts.
    pub fn stats(&self) -> SchedulerStats {
        let mut stats = SchedulerStats {
            queued_jobs: self.queued.len(),
            running_jobs: self.running.len(),
            ..SchedulerStats::default()
        };
        for (id, client) in &self.clients {
            if client.queued_tiles > 0 {
                stats
                    .queued_tiles_by_client
                    .insert(*id, client.queued_tiles);
            }
            for (key, (class, _)) in &client.placed {
                let tiles: usize = self.queued.get(key).map_or(0, |job| {
                    job.interests
                        .iter()
                        .filter(|i| i.client == *id)
                        .map(|i| i.tiles.len())
                        .sum()
                });
                stats.queued_tiles_by_class[class.index()] += tiles;
            }
        }
        stats
    }

    // ---- internals -------------------------------------------------------

    /// The class a client's wish counts in, and its distance from the
    /// client's screen centre.
    fn rank(
        &self,
        client: &ClientState,
        tiles: &[TileCoord],
        asked: PriorityClass,
    ) -> (PriorityClass, f64) {
        if self.config.fifo {
            return (PriorityClass::Explicit, 0.0);
        }
        let Some(viewport) = client.viewport else {
            return (asked, 0.0);
        };
        let ring = tiles.iter().filter_map(|t| viewport.ring_of(*t)).min();
        let class = match ring {
            Some(0) => PriorityClass::Viewport,
            Some(r) if r <= self.config.neighbour_rings => asked.min(PriorityClass::Neighbour),
            // Asked as on-screen work, but the user has moved on.
            _ => asked.max(PriorityClass::Explicit),
        };
        let distance = tiles
            .iter()
            .map(|t| viewport.distance_from_centre(*t))
            .fold(f64::INFINITY, f64::min);
        (class, if distance.is_finite() { distance } else { 0.0 })
    }

    /// Puts (or re-puts) the job `key` in `client`'s queues, ranked by the
    /// best of the client's interests in it; removes it from them if the
    /// client no longer wants it.
    fn place(&mut self, client_id: ClientId, key: JobKey) {
        let Some(client) = self.clients.get(&client_id) else {
            return;
        };
        let mut best: Option<(PriorityClass, RankKey)> = None;
        let interests = self
            .queued
            .get(&key)
            .map_or(&[][..], |job| &job.interests[..]);
        for interest in interests.iter().filter(|i| i.client == client_id) {
            let (class, distance) = self.rank(client, &interest.tiles, interest.class);
            let rank = RankKey {
                distance_bits: distance.max(0.0).to_bits(),
                seq: interest.seq,
                key,
            };
            if best.is_none_or(|(c, r)| (class, rank) < (c, r)) {
                best = Some((class, rank));
            }
        }
        let Some(client) = self.clients.get_mut(&client_id) else {
            return;
        };
        if let Some((class, rank)) = client.placed.remove(&key) {
            client.queues[class.index()].remove(&rank);
        }
        if let Some((class, rank)) = best {
            client.queues[class.index()].insert(rank);
            client.placed.insert(key, (class, rank));
        }
    }

    fn rerank_client(&mut self, client: ClientId) {
        let keys: Vec<JobKey> = match self.clients.get(&client) {
            Some(state) => state.placed.keys().copied().collect(),
            None => return,
        };
        for key in keys {
            self.place(client, key);
        }
    }

    fn enqueue(&mut self, key: JobKey, interest: Interest) {
        let client = interest.client;
        let tiles = interest.tiles.len();
        self.queued
            .entry(key)
            .or_insert_with(|| Job {
                key,
                interests: Vec::new(),
            })
            .interests
            .push(interest);
        self.queued_tiles += tiles;
        if let Some(state) = self.clients.get_mut(&client) {
            state.queued_tiles += tiles;
        }
        self.place(client, key);
    }

    /// Makes room for `interest`, evicting queued work of a strictly lower
    /// class if the queue is full. False if there is no room.
    fn make_room(&mut self, interest: &Interest) -> bool {
        let needed = interest.tiles.len();
        let client_queued = self
            .clients
            .get(&interest.client)
            .map_or(0, |c| c.queued_tiles);
        if client_queued + needed > self.config.max_queued_tiles_per_client {
            return false;
        }
        let class = self
            .clients
            .get(&interest.client)
            .map_or(interest.class, |c| {
                self.rank(c, &interest.tiles, interest.class).0
            });
        while self.queued_tiles + needed > self.config.max_queued_tiles {
            let Some((victim_class, victim_client, key)) = self.lowest_ranked() else {
                return false;
            };
            if victim_class <= class {
                return false;
            }
            // Refuse the victim's wishes in that metatile, lowest first.
            let job_key = key.key;
            let Some(job) = self.queued.get_mut(&job_key) else {
                return false;
            };
            let (evicted, kept): (Vec<Interest>, Vec<Interest>) = job
                .interests
                .drain(..)
                .partition(|i| i.client == victim_client);
            job.interests = kept;
            let now_empty = job.interests.is_empty();
            for victim in &evicted {
                self.forget_tiles(victim);
                self.refuse_busy(victim);
            }
            if now_empty {
                self.queued.remove(&job_key);
            }
            self.place(victim_client, job_key);
        }
        true
    }

    /// The worst-ranked queued entry over all clients: lowest class, then
    /// farthest, then newest.
    fn lowest_ranked(&self) -> Option<(PriorityClass, ClientId, RankKey)> {
        let mut worst: Option<(PriorityClass, ClientId, RankKey)> = None;
        for (&id, client) in &self.clients {
            for class in PriorityClass::ALL.iter().rev() {
                if let Some(key) = client.queues[class.index()].last() {
                    if worst.is_none_or(|(c, _, k)| (*class, *key) > (c, k)) {
                        worst = Some((*class, id, *key));
                    }
                    break;
                }
            }
        }
        worst
    }

    /// Pauses or resumes a client: while paused, none of its queued work is
    /// picked (a job it shares with another client runs when that client is
    /// served). Its work stays queued and keeps its rank.
    pub fn set_paused(&mut self, client: ClientId, paused: bool) {
        if let Some(state) = self.clients.get_mut(&client) {
            state.paused = paused;
        }
    }

    /// Whether any client has told us what is on its screen (the service
    /// then keeps a worker free for on-screen work).
    pub fn has_viewport(&self) -> bool {
        self.clients.values().any(|c| c.viewport.is_some())
    }

    /// Chooses whose work runs next: the highest class (down to `lowest`)
    /// any client has work in, and within it the next client after the last
    /// one served.
    fn pick_client(&self, lowest: PriorityClass) -> Option<(PriorityClass, ClientId)> {
        for class in PriorityClass::ALL.into_iter().filter(|c| *c <= lowest) {
            let has_work = |(_, c): &(&ClientId, &ClientState)| {
                !c.paused && !c.queues[class.index()].is_empty()
            };
            let after = self.last_served[class.index()].map_or(0, |c| c.saturating_add(1));
            let next = self
                .clients
                .range(after..)
                .find(has_work)
                .or_else(|| self.clients.iter().find(has_work));
            if let Some((&id, _)) = next {
                return Some((class, id));
            }
        }
        None
    }

    /// Removes a queued job from every client's queues and returns it.
    fn take_job(&mut self, key: JobKey) -> Option<Job> {
        let job = self.queued.remove(&key)?;
        for interest in &job.interests {
            self.forget_tiles(interest);
            if let Some(client) = self.clients.get_mut(&interest.client) {
                if let Some((class, rank)) = client.placed.remove(&key) {
                    client.queues[class.index()].remove(&rank);
                }
            }
        }
        Some(job)
    }

    /// Removes a client's queued interests that match, answering each of
    /// their tiles with `reason`.
    fn remove_interests(
        &mut self,
        client: ClientId,
        reason: CancelReason,
        matches: impl Fn(&Interest, &Metatile) -> bool,
    ) {
        let keys: Vec<JobKey> = match self.clients.get(&client) {
            Some(state) => state.placed.keys().copied().collect(),
            None => return,
        };
        for key in keys {
            let Some(job) = self.queued.get_mut(&key) else {
                continue;
            };
            // Most jobs are untouched (a deadline sweep, one cancelled
            // request among many): leave them and their ranking alone.
            if !job
                .interests
                .iter()
                .any(|i| i.client == client && matches(i, &key.1))
            {
                continue;
            }
            let (removed, kept): (Vec<Interest>, Vec<Interest>) = job
                .interests
                .drain(..)
                .partition(|i| i.client == client && matches(i, &key.1));
            job.interests = kept;
            if job.interests.is_empty() {
                self.queued.remove(&key);
            }
            for interest in &removed {
                self.forget_tiles(interest);
                self.answer_all(interest, Outcome::Cancelled(reason));
            }
            self.place(client, key);
        }
    }

    /// Removes a client's interests in running jobs that match, answering
    /// each of their tiles with `reason` (none: dropped unanswered, for a
    /// client that is gone). A job left with nobody is abandoned.
    fn remove_running_interests(
        &mut self,
        client: ClientId,
        reason: Option<CancelReason>,
        matches: impl Fn(&Interest, &Metatile) -> bool,
    ) {
        let mut removed = Vec::new();
        for (id, job) in &mut self.running {
            let before = job.interests.len();
            let metatile = job.key.1;
            let (gone, kept): (Vec<Interest>, Vec<Interest>) = job
                .interests
                .drain(..)
                .partition(|i| i.client == client && matches(i, &metatile));
            job.interests = kept;
            removed.extend(gone);
            if before > 0 && job.interests.is_empty() && self.stopping.insert(*id) {
                self.abandoned.push(*id);
            }
        }
        if let Some(reason) = reason {
            for interest in &removed {
                self.answer_all(interest, Outcome::Cancelled(reason));
            }
        }
    }

    /// Forgets a job that is no longer running.
    fn forget_running(&mut self, id: JobId, key: JobKey) {
        self.stopping.remove(&id);
        // A newer render of the same metatile may have started meanwhile.
        if self.running_by_key.get(&key) == Some(&id) {
            self.running_by_key.remove(&key);
        }
    }

    fn forget_tiles(&mut self, interest: &Interest) {
        let tiles = interest.tiles.len();
        self.queued_tiles = self.queued_tiles.saturating_sub(tiles);
        if let Some(client) = self.clients.get_mut(&interest.client) {
            client.queued_tiles = client.queued_tiles.saturating_sub(tiles);
        }
    }

    fn refuse_busy(&mut self, interest: &Interest) {
        let retry_after_ms = self.config.retry_after_ms;
        self.answer_all(interest, Outcome::Busy { retry_after_ms });
    }

    fn answer_all(&mut self, interest: &Interest, outcome: Outcome) {
        for &tile in &interest.tiles {
            self.answers.push(Answer {
                client: interest.client,
                request_id: interest.request_id,
                tile,
                outcome: outcome.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests;
