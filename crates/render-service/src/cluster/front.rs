//! A front's dispatcher: it stands in for the front's render workers. The
//! core hands it jobs as it would hand them to idle workers (one per slot
//! of the window) and gets the same reports back; in between, the jobs
//! live in the engine.
//!
//! Two threads, each with its own connection:
//! - **dispatch** publishes new jobs, re-ranks those whose class changed,
//!   withdraws those the core stopped (reported `stopped`, as a local
//!   worker would), and watches the engine's health: when it is back after
//!   a failure, every outstanding job is published again; when it has been
//!   gone longer than the engine timeout, every outstanding job is
//!   answered `Busy`, and new ones at once, until it is back.
//! - **completions** reads the front's completion stream and answers each
//!   outstanding job once, reading its tiles from the store.
//!
//! Both take a job out of the outstanding table under its lock before
//! reporting it, so each job gets exactly one report.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{select, tick, Receiver, Sender};
use ipc_proto::FailureKind;

use super::engine::{Completion, Engine};
use super::{process_id, queue_name, ClusterSettings, JobName};
use crate::scheduler::{JobId, RenderJob};
use crate::service::{already_rendered, Command, MapEntry, MapTable, WorkDone, WorkerJob};
use crate::stats::{ClusterCounters, Stats};

/// A published job, until its one report.
struct Outstanding {
    id: JobId,
    job: RenderJob,
    entry: Arc<MapEntry>,
    stop: Arc<AtomicBool>,
    rank: Arc<AtomicU8>,
    /// The class it was last published with.
    published: u8,
    /// When it was first published (ms since the epoch): the tie-break
    /// within a class, kept across re-ranks.
    since_ms: u64,
}

/// What both threads share.
struct Shared {
    front: String,
    settings: ClusterSettings,
    outstanding: Mutex<HashMap<String, Outstanding>>,
    /// Since when the engine has not answered, if it has not.
    down_since: Mutex<Option<Instant>>,
    closing: AtomicBool,
    done: Sender<Command>,
    stats: Arc<Stats>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Outstanding>> {
        self.outstanding
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn down_since(&self) -> Option<Instant> {
        *self
            .down_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks the engine unreachable (from the first failure on).
    fn engine_failed(&self, why: &dyn std::fmt::Display) {
        let mut down = self
            .down_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if down.is_none() {
            tracing::warn!(front = %self.front, "lost the engine: {why}");
            *down = Some(Instant::now());
            ClusterCounters::add(&self.stats.cluster.outages);
            self.stats.cluster.engine_up.store(0, Ordering::Relaxed);
        }
    }

    fn report(&self, done: WorkDone) {
        let _ = self.done.send(Command::WorkDone(done));
    }
}

/// Starts a front's dispatcher over the core's job channel.
pub(crate) fn start_front(
    settings: &ClusterSettings,
    jobs: Receiver<WorkerJob>,
    done: Sender<Command>,
    maps: Arc<RwLock<Arc<MapTable>>>,
    stats: Arc<Stats>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    stats.cluster.front.store(true, Ordering::Relaxed);
    stats.cluster.engine_up.store(1, Ordering::Relaxed);
    let engine = |role: &str| {
        Engine::new(&settings.url, &settings.prefix)
            .map_err(|e| std::io::Error::other(format!("{role}: {e}")))
    };
    let (dispatch_engine, completion_engine) = (engine("dispatch")?, engine("completions")?);
    let shared = Arc::new(Shared {
        front: process_id("front"),
        settings: settings.clone(),
        outstanding: Mutex::new(HashMap::new()),
        down_since: Mutex::new(None),
        closing: AtomicBool::new(false),
        done,
        stats,
    });
    tracing::info!(
        front = %shared.front,
        engine = %super::redacted(&settings.url),
        "cluster front"
    );
    let reader = {
        let shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("cluster-completions".into())
            .spawn(move || read_completions(&shared, completion_engine))?
    };
    let dispatcher = std::thread::Builder::new()
        .name("cluster-dispatch".into())
        .spawn(move || {
            Dispatcher {
                shared,
                engine: dispatch_engine,
                maps,
                published_maps: None,
                pending_withdrawals: Vec::new(),
                last_attempt: None,
            }
            .run(&jobs);
        })?;
    Ok(vec![dispatcher, reader])
}

struct Dispatcher {
    shared: Arc<Shared>,
    engine: Engine,
    maps: Arc<RwLock<Arc<MapTable>>>,
    /// The map table whose versions the engine has (a reload makes another).
    published_maps: Option<Arc<MapTable>>,
    /// Interests withdrawn while the engine was away.
    pending_withdrawals: Vec<JobName>,
    /// The last time a lost engine was tried.
    last_attempt: Option<Instant>,
}

impl Dispatcher {
    fn run(mut self, jobs: &Receiver<WorkerJob>) {
        // Render nodes compare their styles with these from the start.
        self.publish_versions();
        // Stops and re-ranks are noticed within a tick; a new job is
        // published at once.
        let ticks = tick(Duration::from_millis(10));
        loop {
            select! {
                recv(jobs) -> job => match job {
                    Ok(job) => self.start(job),
                    Err(_) => break,
                },
                recv(ticks) -> _ => self.tend(),
            }
        }
        // The core has ended: it reported every job first, so nothing is
        // outstanding; withdraw anything left rather than leave it queued.
        self.tend();
        let names: Vec<JobName> = self
            .shared
            .lock()
            .drain()
            .filter_map(|(name, _)| JobName::parse(&name))
            .collect();
        for name in names.iter().chain(&self.pending_withdrawals) {
            let _ = self.engine.withdraw(&self.shared.front, name);
        }
        self.shared.closing.store(true, Ordering::Relaxed);
        // Nobody reads this front's completion stream any more.
        let _ = self.engine.forget_front(&self.shared.front);
    }

    fn maps(&self) -> Arc<MapTable> {
        Arc::clone(
            &self
                .maps
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// A job from the core: published, or answered at once.
    fn start(&mut self, WorkerJob { job, stop, rank }: WorkerJob) {
        let Some(entry) = self.maps().get(job.map).cloned() else {
            self.shared.report(failed(
                job.id,
                FailureKind::InvalidTile,
                "its map is no longer served (removed by a reload)".into(),
            ));
            return;
        };
        if let Some(since) = self.engine_gone() {
            ClusterCounters::add(&self.shared.stats.cluster.busy);
            self.shared
                .report(engine_busy(job.id, self.engine.url(), since));
            return;
        }
        let name = JobName::new(queue_name(&entry.name, &entry.style_version), &job.metatile);
        let outstanding = Outstanding {
            id: job.id,
            published: rank.load(Ordering::Relaxed),
            job,
            entry,
            stop,
            rank,
            since_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        };
        let (score, force) = (score(&outstanding), outstanding.job.force);
        self.shared.lock().insert(name.to_string(), outstanding);
        self.publish_versions();
        if self.shared.down_since().is_none() {
            match self.engine.publish(&self.shared.front, &name, score, force) {
                Ok(_) => ClusterCounters::add(&self.shared.stats.cluster.published),
                // Published again when the engine is back.
                Err(e) => self.shared.engine_failed(&e),
            }
        }
    }

    /// Since when the engine has been gone, once that is longer than the
    /// engine timeout.
    fn engine_gone(&self) -> Option<Instant> {
        self.shared
            .down_since()
            .filter(|since| since.elapsed() >= self.shared.settings.engine_timeout)
    }

    /// The styles versions of the maps served, told once per map table.
    fn publish_versions(&mut self) {
        let maps = self.maps();
        if self
            .published_maps
            .as_ref()
            .is_some_and(|m| Arc::ptr_eq(m, &maps))
        {
            return;
        }
        let versions: Vec<(String, String)> = maps
            .ids()
            .filter_map(|id| maps.get(id))
            .map(|m| (m.name.clone(), m.style_version.clone()))
            .collect();
        match self.engine.set_versions(&versions) {
            Ok(()) => self.published_maps = Some(maps),
            Err(e) => self.shared.engine_failed(&e),
        }
    }

    /// Stops, re-ranks, and the engine's health.
    fn tend(&mut self) {
        if self.shared.down_since().is_some() {
            self.try_engine();
        }
        let up = self.shared.down_since().is_none();
        let mut stopped = Vec::new();
        let mut reranked = Vec::new();
        {
            let mut outstanding = self.shared.lock();
            outstanding.retain(|name, job| {
                if job.stop.load(Ordering::Relaxed) {
                    stopped.push((name.clone(), job.id));
                    return false;
                }
                let rank = job.rank.load(Ordering::Relaxed);
                if up && rank != job.published {
                    job.published = rank;
                    reranked.push((name.clone(), score(job), job.job.force));
                }
                true
            });
        }
        for (name, id) in stopped {
            tracing::debug!(job = %name, "withdrawn");
            ClusterCounters::add(&self.shared.stats.cluster.withdrawn);
            if let Some(name) = JobName::parse(&name) {
                self.withdraw(name);
            }
            self.shared.report(WorkDone {
                job: id,
                tiles: HashMap::new(),
                failure: None,
                stopped: true,
            });
        }
        for (name, score, force) in reranked {
            let Some(job) = JobName::parse(&name) else {
                continue;
            };
            tracing::debug!(job = %name, score, "re-ranked");
            if let Err(e) = self.engine.publish(&self.shared.front, &job, score, force) {
                self.shared.engine_failed(&e);
                break;
            }
            ClusterCounters::add(&self.shared.stats.cluster.reranked);
        }
    }

    fn withdraw(&mut self, name: JobName) {
        if self.shared.down_since().is_some() {
            self.pending_withdrawals.push(name);
        } else if let Err(e) = self.engine.withdraw(&self.shared.front, &name) {
            self.shared.engine_failed(&e);
            self.pending_withdrawals.push(name);
        }
    }

    /// With the engine lost: tries it (a few times a second); back, every
    /// outstanding job is published again; gone too long, the work waiting
    /// on it is answered `Busy`.
    fn try_engine(&mut self) {
        if self
            .last_attempt
            .is_some_and(|t| t.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        self.last_attempt = Some(Instant::now());
        if self.engine.ping().is_ok() && self.republish().is_ok() {
            let count = self.shared.lock().len();
            tracing::info!(
                front = %self.shared.front,
                jobs = count,
                "the engine is back; outstanding jobs published again"
            );
            // Up before new work can be published again.
            self.shared
                .stats
                .cluster
                .engine_up
                .store(1, Ordering::Relaxed);
            *self
                .shared
                .down_since
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
            return;
        }
        if let Some(since) = self.engine_gone() {
            let failed: Vec<(String, JobId)> = self
                .shared
                .lock()
                .drain()
                .map(|(name, j)| (name, j.id))
                .collect();
            if !failed.is_empty() {
                tracing::warn!(
                    front = %self.shared.front,
                    jobs = failed.len(),
                    "the engine has not answered for {:.1} s: answering its work Busy",
                    since.elapsed().as_secs_f64()
                );
            }
            for (name, id) in failed {
                // Answered here: when the engine is back, nobody should
                // still draw it for this front.
                self.pending_withdrawals.extend(JobName::parse(&name));
                ClusterCounters::add(&self.shared.stats.cluster.busy);
                self.shared
                    .report(engine_busy(id, self.engine.url(), since));
            }
        }
    }

    /// Publishes every outstanding job again (idempotent: a queued job keeps
    /// its place, a running one is left to its node) and the withdrawals
    /// the engine missed.
    fn republish(&mut self) -> Result<(), super::engine::EngineError> {
        self.published_maps = None;
        self.publish_versions();
        let jobs: Vec<(String, f64, bool)> = self
            .shared
            .lock()
            .iter()
            .map(|(name, job)| (name.clone(), score(job), job.job.force))
            .collect();
        for (name, score, force) in jobs {
            if let Some(job) = JobName::parse(&name) {
                self.engine
                    .publish(&self.shared.front, &job, score, force)?;
            }
        }
        while let Some(name) = self.pending_withdrawals.pop() {
            if let Err(e) = self.engine.withdraw(&self.shared.front, &name) {
                self.pending_withdrawals.push(name);
                return Err(e);
            }
        }
        Ok(())
    }
}

/// A job's score in the shared queue: lower is sooner. Its class now, then
/// the time it was first published.
fn score(job: &Outstanding) -> f64 {
    // Integers up to 2^53 are exact in a Redis score (a double); classes
    // are 0..=4 and times ~1.8e12 ms.
    f64::from(job.rank.load(Ordering::Relaxed)) * 1e13 + job.since_ms as f64
}

fn failed(job: JobId, kind: FailureKind, message: String) -> WorkDone {
    WorkDone {
        job,
        tiles: HashMap::new(),
        failure: Some((kind, message)),
        stopped: false,
    }
}

fn engine_busy(job: JobId, url: &str, since: Instant) -> WorkDone {
    failed(
        job,
        FailureKind::Busy,
        format!(
            "the render engine at {url} has not answered for {:.1} s: retry later",
            since.elapsed().as_secs_f64()
        ),
    )
}

/// The completion thread: reads the front's stream until the dispatcher
/// has ended.
fn read_completions(shared: &Shared, mut engine: Engine) {
    // Only completions after the front started count: its stream name is
    // new with every start.
    let mut after = "0".to_owned();
    let mut failing = false;
    while !shared.closing.load(Ordering::Relaxed) {
        match engine.completions(&shared.front, &after, Duration::from_millis(250)) {
            Ok(completions) => {
                failing = false;
                for completion in completions {
                    after.clone_from(&completion.id);
                    answer(shared, completion);
                }
            }
            Err(e) => {
                if !failing {
                    shared.engine_failed(&e);
                    failing = true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Answers the job a completion is for, if it is still outstanding.
fn answer(shared: &Shared, completion: Completion) {
    let Some(job) = shared.lock().remove(&completion.job) else {
        // Withdrawn, already answered, or failed while the engine was
        // away: nobody waits for this report.
        return;
    };
    let Completion {
        status,
        message,
        render_ms,
        ..
    } = completion;
    let done = match status.split_once(':') {
        None if status == "done" => match already_rendered(&job.job, &job.entry) {
            Some(mut done) => {
                done.job = job.id;
                for outcome in done.tiles.values_mut() {
                    if let crate::service::TileOutcome::Done {
                        cached,
                        render_ms: ms,
                        ..
                    } = outcome
                    {
                        *cached = false;
                        *ms = render_ms;
                    }
                }
                done
            }
            None => failed(
                job.id,
                FailureKind::Storage,
                format!(
                    "a render node drew metatile {} but its tiles are not in the store here: \
                     do the front and the render nodes share the tile directory {}?",
                    job.job.metatile,
                    job.entry.store.root().display()
                ),
            ),
        },
        Some(("failed", code)) => {
            let kind = code
                .parse::<u8>()
                .ok()
                .and_then(|n| FailureKind::ALL.into_iter().find(|k| *k as u8 == n))
                .unwrap_or(FailureKind::Render);
            failed(job.id, kind, message)
        }
        // "stopped" reaches only fronts that no longer want the job (the
        // script tells nobody else); anything else is not ours to trust.
        _ => failed(
            job.id,
            FailureKind::Internal,
            format!("a render node reported {status:?} for this job"),
        ),
    };
    tracing::debug!(metatile = %job.job.metatile, "completed by a render node");
    ClusterCounters::add(&shared.stats.cluster.completed);
    shared.report(done);
}
