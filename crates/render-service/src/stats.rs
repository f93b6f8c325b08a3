//! Counters the service keeps for `StatsRequest`: tiles rendered and
//! served from the store, throughput, render-time percentiles, queue depths
//! by class and per client.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::scheduler::{PriorityClass, SchedulerStats};

/// How many recent per-tile render times the percentiles are taken over.
const RENDER_SAMPLES: usize = 10_000;

/// Upper bounds (milliseconds) of the metatile render-time histogram's
/// buckets; a last one counts everything (`+Inf`).
pub const RENDER_MS_BUCKETS: [f64; 12] = [
    5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10_000.0, 30_000.0,
];

/// Counters shared by the service's threads.
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    tiles_rendered: AtomicU64,
    metatiles_rendered: AtomicU64,
    tiles_failed: AtomicU64,
    tiles_from_store: AtomicU64,
    tiles_cancelled: AtomicU64,
    tiles_busy: AtomicU64,
    tiles_timed_out: AtomicU64,
    metatiles_stopped: AtomicU64,
    connections: AtomicU64,
    paused_clients: AtomicU64,
    clients_dropped_not_reading: AtomicU64,
    handshakes_evicted: AtomicU64,
    idle_connections_closed: AtomicU64,
    /// Per-tile render milliseconds (metatile time / tiles), most recent last.
    render_ms: Mutex<VecDeque<f64>>,
    /// Metatiles rendered by map and zoom, and their render times.
    renders: Mutex<RenderCounts>,
    /// A cluster front's dealings with the engine (shown only on a front).
    pub(crate) cluster: ClusterCounters,
}

/// What a cluster front did with the engine (`cluster_*` in the stats).
#[derive(Debug, Default)]
pub(crate) struct ClusterCounters {
    /// Set when this service is a cluster front.
    pub(crate) front: std::sync::atomic::AtomicBool,
    /// Jobs published to the shared queue.
    pub(crate) published: AtomicU64,
    /// Published jobs re-ranked (their class changed).
    pub(crate) reranked: AtomicU64,
    /// Jobs withdrawn (cancelled, left, preempted, shutdown).
    pub(crate) withdrawn: AtomicU64,
    /// Jobs answered from a render node's completion.
    pub(crate) completed: AtomicU64,
    /// Jobs answered Busy because the engine did not answer.
    pub(crate) busy: AtomicU64,
    /// Times the engine was lost.
    pub(crate) outages: AtomicU64,
    /// 1 while the engine answers.
    pub(crate) engine_up: AtomicU64,
}

impl ClusterCounters {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Metatiles rendered by map and zoom, and a histogram of their render
/// times, since the start (for Prometheus: counters only grow).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenderCounts {
    /// Metatiles rendered, by (map, zoom).
    pub by_map_zoom: BTreeMap<(String, u8), u64>,
    /// Metatiles whose render took at most [`RENDER_MS_BUCKETS`]`[i]`
    /// milliseconds (not cumulative); the last entry counts the rest.
    pub buckets: [u64; RENDER_MS_BUCKETS.len() + 1],
    /// Sum of the render times, milliseconds.
    pub sum_ms: f64,
    /// Metatiles counted.
    pub count: u64,
}

/// A consistent copy of the counters, as `(name, value)` pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// `snake_case` names, fixed order.
    pub entries: Vec<(String, u64)>,
}

impl StatsSnapshot {
    /// The value of a counter.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            tiles_rendered: AtomicU64::new(0),
            metatiles_rendered: AtomicU64::new(0),
            tiles_failed: AtomicU64::new(0),
            tiles_from_store: AtomicU64::new(0),
            tiles_cancelled: AtomicU64::new(0),
            tiles_busy: AtomicU64::new(0),
            tiles_timed_out: AtomicU64::new(0),
            metatiles_stopped: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            paused_clients: AtomicU64::new(0),
            clients_dropped_not_reading: AtomicU64::new(0),
            handshakes_evicted: AtomicU64::new(0),
            idle_connections_closed: AtomicU64::new(0),
            render_ms: Mutex::new(VecDeque::with_capacity(RENDER_SAMPLES)),
            renders: Mutex::new(RenderCounts::default()),
            cluster: ClusterCounters::default(),
        }
    }
}

impl Stats {
    /// A metatile of `tiles` tiles took `ms` milliseconds.
    pub fn rendered(&self, tiles: usize, failed: usize, ms: f64) {
        self.metatiles_rendered.fetch_add(1, Ordering::Relaxed);
        self.tiles_rendered
            .fetch_add((tiles - failed.min(tiles)) as u64, Ordering::Relaxed);
        self.tiles_failed
            .fetch_add(failed as u64, Ordering::Relaxed);
        if tiles > 0 {
            let mut samples = self.lock_samples();
            if samples.len() == RENDER_SAMPLES {
                samples.pop_front();
            }
            samples.push_back(ms / tiles as f64);
        }
    }

    /// A metatile of `map` at `zoom` was drawn in `ms` milliseconds.
    pub fn rendered_on(&self, map: &str, zoom: u8, ms: f64) {
        let mut renders = self
            .renders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *renders
            .by_map_zoom
            .entry((map.to_owned(), zoom))
            .or_default() += 1;
        let bucket = RENDER_MS_BUCKETS
            .iter()
            .position(|le| ms <= *le)
            .unwrap_or(RENDER_MS_BUCKETS.len());
        renders.buckets[bucket] += 1;
        renders.sum_ms += ms;
        renders.count += 1;
    }

    /// Metatiles rendered by map and zoom, and their render times.
    pub fn render_counts(&self) -> RenderCounts {
        self.renders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A tile was answered from the store without rendering.
    pub fn from_store(&self) {
        self.tiles_from_store.fetch_add(1, Ordering::Relaxed);
    }

    /// Tiles were cancelled.
    pub fn cancelled(&self, n: usize) {
        self.tiles_cancelled.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Tiles were refused as busy.
    pub fn busy(&self, n: usize) {
        self.tiles_busy.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Tiles whose request's deadline passed before they were rendered.
    pub fn timed_out(&self, n: usize) {
        self.tiles_timed_out.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// A render was stopped before it finished (nobody waited for it any
    /// more, or on-screen work needed its worker).
    pub fn stopped(&self) {
        self.metatiles_stopped.fetch_add(1, Ordering::Relaxed);
    }

    /// A client was paused (+1) or resumed or gone (-1) for not reading.
    pub fn paused(&self, paused: bool) {
        if paused {
            self.paused_clients.fetch_add(1, Ordering::Relaxed);
        } else {
            self.paused_clients.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A client that stopped reading its answers was dropped.
    pub fn dropped_not_reading(&self) {
        self.clients_dropped_not_reading
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A connection still in its handshake was closed to make room.
    pub fn handshake_evicted(&self) {
        self.handshakes_evicted.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was closed for being idle.
    pub fn idle_closed(&self) {
        self.idle_connections_closed.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection opened (+1) or closed (-1).
    pub fn connection(&self, opened: bool) {
        if opened {
            self.connections.fetch_add(1, Ordering::Relaxed);
        } else {
            self.connections.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Open connections now.
    pub fn open_connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    fn lock_samples(&self) -> std::sync::MutexGuard<'_, VecDeque<f64>> {
        // Each update is one push or pop: a poisoned lock holds valid data.
        self.render_ms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The counters with the scheduler's queue depths.
    pub fn snapshot(&self, scheduler: &SchedulerStats) -> StatsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let uptime = self.started.elapsed().as_secs_f64();
        let rendered = load(&self.tiles_rendered);
        let mut entries = vec![
            ("uptime_s".to_owned(), uptime as u64),
            ("tiles_rendered".to_owned(), rendered),
            (
                "metatiles_rendered".to_owned(),
                load(&self.metatiles_rendered),
            ),
            ("tiles_failed".to_owned(), load(&self.tiles_failed)),
            ("tiles_from_store".to_owned(), load(&self.tiles_from_store)),
            ("tiles_cancelled".to_owned(), load(&self.tiles_cancelled)),
            ("tiles_busy".to_owned(), load(&self.tiles_busy)),
            ("tiles_timed_out".to_owned(), load(&self.tiles_timed_out)),
            (
                "metatiles_stopped".to_owned(),
                load(&self.metatiles_stopped),
            ),
            (
                "tiles_per_s".to_owned(),
                if uptime > 0.0 {
                    (rendered as f64 / uptime) as u64
                } else {
                    0
                },
            ),
            ("connections".to_owned(), load(&self.connections)),
            ("paused_clients".to_owned(), load(&self.paused_clients)),
            (
                "clients_dropped_not_reading".to_owned(),
                load(&self.clients_dropped_not_reading),
            ),
            (
                "handshakes_evicted".to_owned(),
                load(&self.handshakes_evicted),
            ),
            (
                "idle_connections_closed".to_owned(),
                load(&self.idle_connections_closed),
            ),
            (
                "queued_tiles".to_owned(),
                scheduler.queued_tiles_by_class.iter().sum::<usize>() as u64,
            ),
            ("queued_jobs".to_owned(), scheduler.queued_jobs as u64),
            ("running_jobs".to_owned(), scheduler.running_jobs as u64),
        ];
        for class in PriorityClass::ALL {
            let depth = scheduler.queued_tiles_by_class[class as usize] as u64;
            entries.push((format!("queued_{}", class.name()), depth));
        }
        let mut samples: Vec<f64> = self.lock_samples().iter().copied().collect();
        samples.sort_by(f64::total_cmp);
        for (name, q) in [
            ("render_ms_p50", 0.50),
            ("render_ms_p90", 0.90),
            ("render_ms_p99", 0.99),
        ] {
            let value = percentile(&samples, q);
            // Microseconds would be finer, but the protocol's values are
            // whole numbers and ms is what people read; round up so a
            // sub-millisecond render is not reported as 0.
            entries.push((name.to_owned(), value.ceil() as u64));
        }
        let cluster = &self.cluster;
        if cluster.front.load(Ordering::Relaxed) {
            for (name, counter) in [
                ("cluster_engine_up", &cluster.engine_up),
                ("cluster_engine_outages", &cluster.outages),
                ("cluster_jobs_published", &cluster.published),
                ("cluster_jobs_reranked", &cluster.reranked),
                ("cluster_jobs_withdrawn", &cluster.withdrawn),
                ("cluster_jobs_completed", &cluster.completed),
                ("cluster_jobs_busy", &cluster.busy),
            ] {
                entries.push((name.to_owned(), load(counter)));
            }
        }
        for (client, queued) in &scheduler.queued_tiles_by_client {
            entries.push((format!("client_{client}_queued"), *queued as u64));
        }
        StatsSnapshot { entries }
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_counts() {
        let stats = Stats::default();
        for ms in 1..=100 {
            stats.rendered(1, 0, f64::from(ms));
        }
        stats.rendered(64, 4, 640.0);
        stats.from_store();
        let snap = stats.snapshot(&SchedulerStats::default());
        assert_eq!(snap.get("tiles_rendered"), Some(160));
        assert_eq!(snap.get("tiles_failed"), Some(4));
        assert_eq!(snap.get("tiles_from_store"), Some(1));
        assert_eq!(snap.get("render_ms_p50"), Some(50));
        assert_eq!(snap.get("render_ms_p99"), Some(99));
        assert_eq!(snap.get("queued_viewport"), Some(0));
        // One machine: no cluster counters to confuse anyone.
        assert_eq!(snap.get("cluster_engine_up"), None);
        stats.cluster.front.store(true, Ordering::Relaxed);
        ClusterCounters::add(&stats.cluster.published);
        let snap = stats.snapshot(&SchedulerStats::default());
        assert_eq!(snap.get("cluster_jobs_published"), Some(1));
        assert_eq!(snap.get("cluster_engine_up"), Some(0));
    }

    #[test]
    fn renders_are_counted_by_map_and_zoom_and_bucketed_by_time() {
        let stats = Stats::default();
        stats.rendered_on("osm", 12, 4.0);
        stats.rendered_on("osm", 12, 5.0);
        stats.rendered_on("osm", 13, 30.0);
        stats.rendered_on("demo", 0, 60_000.0);
        let counts = stats.render_counts();
        let by: Vec<_> = counts
            .by_map_zoom
            .iter()
            .map(|((m, z), n)| (m.as_str(), *z, *n))
            .collect();
        assert_eq!(by, [("demo", 0, 1), ("osm", 12, 2), ("osm", 13, 1)]);
        // 4 and 5 ms fall in the first bucket (le 5), 30 in le 50, 60 s
        // beyond the last bound.
        assert_eq!(counts.buckets[0], 2);
        assert_eq!(counts.buckets[3], 1);
        assert_eq!(counts.buckets[RENDER_MS_BUCKETS.len()], 1);
        assert_eq!(counts.count, 4);
        assert_eq!(counts.sum_ms, 60_039.0);
    }
}
