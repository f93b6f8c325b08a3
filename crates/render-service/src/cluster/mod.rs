//! Past one machine: **fronts** that hold client sessions, **render
//! nodes** that draw, and the **engine** (Redis 7) they share, chosen by
//! measurement (docs/architecture.md). The same binary plays every role
//! (`tile-server --role front|render|both --queue redis://…`); without a
//! queue, one machine does everything and no engine is needed.
//!
//! The contract:
//! - **A front** keeps its scheduler (viewports, classes, merging, fairness,
//!   deadlines, bounds) and publishes the jobs it would have handed to its
//!   own workers into the shared queue: a window of
//!   [`ClusterSettings::window`] jobs, some slots kept for on-screen work.
//!   Each job's score is its class now, then its first publication time;
//!   when its class changes (a screen joins a bulk job, the user scrolls
//!   away), the front re-ranks it. A cancel withdraws the front's interest:
//!   a job nobody wants leaves the queue, and a node drawing it stops at its
//!   next lease renewal.
//! - **Merging across fronts**: a job is named by its map, style version
//!   and metatile; every front that publishes it is recorded, the queue
//!   keeps the best score, and one render answers them all.
//! - **A render node** takes the most urgent job of the style versions it
//!   has, under a lease it renews while drawing, writes the tiles to the
//!   shared store (the same [`crate::store::TileStore`], a shared
//!   directory), and reports the job done on each waiting front's
//!   completion stream. A node that dies stops renewing: its lease runs out
//!   and the next claim by any node puts the job back in the queue.
//! - **Exactly one answer per tile**: the front answers its clients, once
//!   per job, from the first completion it reads (tiles read from the
//!   store, never from a path a client named); a late duplicate finds the
//!   job gone. A front that loses the engine publishes its jobs again when
//!   it is back (publishing is idempotent), so an engine restart loses
//!   nothing; after [`ClusterSettings::engine_timeout`] without the engine,
//!   the work waiting on it is answered `Busy` (retry later), never left
//!   hanging.
//! - **Style versions**: a job names the version of its map's style
//!   ([`crate::generation::style_version`]); a node only claims the
//!   versions it has, and says so in its log when the fronts publish
//!   another.
//!
//! Layout: [`engine`] (the Redis client and the five Lua scripts of a
//! job's life), `front` (the dispatcher that stands in for a front's
//! workers), [`node`] ([`RenderNode`]).

pub mod engine;
mod front;
pub mod node;

use std::fmt;
use std::time::Duration;

use tile_math::{Metatile, TileCoord};

use crate::config::ClusterSection;

pub(crate) use front::start_front;
pub use node::RenderNode;

/// What this process does in a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Takes requests and draws them: with an engine, a front and a render
    /// node in one process.
    Both,
    /// Takes requests; render nodes draw them.
    Front,
    /// Draws what fronts ask, into the shared store; no listeners.
    Render,
}

impl Role {
    /// The role's name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Role::Both => "both",
            Role::Front => "front",
            Role::Render => "render",
        }
    }
}

/// A checked `[cluster]` section: there is an engine.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    /// This process's role.
    pub role: Role,
    /// The engine's address (`redis://…`).
    pub url: String,
    /// Every key of this cluster starts with it: `tessera:<name>:`.
    pub prefix: String,
    /// Jobs a front keeps published at once.
    pub window: usize,
    /// Of those, slots for on-screen and explicit work only.
    pub screen_reserve: usize,
    /// A render node's hold on a job between renewals.
    pub lease: Duration,
    /// How long work waits on an engine that does not answer.
    pub engine_timeout: Duration,
}

impl ClusterSettings {
    /// The settings of a `[cluster]` section: `None` on one machine (role
    /// `both`, no queue); an error names the key and says what to do.
    pub(crate) fn from_section(
        section: &ClusterSection,
    ) -> Result<Option<ClusterSettings>, (String, String)> {
        let err = |key: &str, message: String| Err((format!("cluster.{key}"), message));
        let role = match section.role.as_str() {
            "both" => Role::Both,
            "front" => Role::Front,
            "render" => Role::Render,
            other => {
                return err(
                    "role",
                    format!("{other:?} is not `both`, `front` or `render`"),
                )
            }
        };
        let url = section.queue.trim();
        if url.is_empty() {
            if role == Role::Both {
                return Ok(None);
            }
            return err(
                "role",
                format!(
                    "a {} needs the engine the cluster shares: give --queue redis://HOST:PORT",
                    role.name()
                ),
            );
        }
        if url.starts_with("nats://") {
            return err(
                "queue",
                "NATS JetStream was measured and not chosen (no re-rankable priority within a \
                 stream; see docs/architecture.md): tessera's cluster runs on Redis 7, give \
                 redis://HOST:PORT"
                    .into(),
            );
        }
        if !(url.starts_with("redis://") || url.starts_with("redis+unix://")) {
            return err(
                "queue",
                format!("{url:?} is not an engine address: use redis://HOST:PORT[/DB]"),
            );
        }
        if let Err(e) = redis::Client::open(url) {
            return err("queue", format!("{url:?}: {e}"));
        }
        let name = &section.name;
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return err(
                "name",
                format!("{name:?} must be 1-64 letters, digits, '-' or '_'"),
            );
        }
        if section.window == 0 {
            return err("window", "must be at least 1".into());
        }
        if section.screen_reserve >= section.window {
            return err(
                "screen_reserve",
                format!(
                    "{} leaves no slot of the window ({}) for bulk work: use less",
                    section.screen_reserve, section.window
                ),
            );
        }
        if section.lease_ms < 300 {
            return err(
                "lease_ms",
                "must be at least 300 (it is renewed every third of it)".into(),
            );
        }
        if section.engine_timeout_ms < 100 {
            return err("engine_timeout_ms", "must be at least 100".into());
        }
        Ok(Some(ClusterSettings {
            role,
            url: url.to_owned(),
            prefix: format!("tessera:{name}:"),
            window: section.window,
            screen_reserve: section.screen_reserve,
            lease: Duration::from_millis(section.lease_ms),
            engine_timeout: Duration::from_millis(section.engine_timeout_ms),
        }))
    }
}

/// The queue of one map's style version: `<map>@<version>`. Map names are
/// letters, digits, `-`, `_` and `@2x`; versions hex.
pub fn queue_name(map: &str, version: &str) -> String {
    format!("{map}@{version}")
}

/// A job as the engine knows it: a queue (map and style version) and a
/// metatile, written `<queue>/<z>/<x>/<y>` with the metatile's north-west
/// tile. Every machine of a cluster uses the same metatile size (it is part
/// of the style version).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobName {
    pub(crate) queue: String,
    pub(crate) first: TileCoord,
}

impl JobName {
    /// The job of `metatile` in `queue` ([`queue_name`]).
    pub fn new(queue: String, metatile: &Metatile) -> JobName {
        JobName {
            queue,
            first: metatile.first_tile(),
        }
    }

    /// Reads a job's name as [`fmt::Display`] writes it; `None` for
    /// anything else (the engine is shared: never trust a name blindly).
    pub fn parse(text: &str) -> Option<JobName> {
        let mut parts = text.rsplitn(4, '/');
        let y = parts.next()?.parse().ok()?;
        let x = parts.next()?.parse().ok()?;
        let z = parts.next()?.parse().ok()?;
        let queue = parts.next()?;
        let valid_queue = !queue.is_empty()
            && queue
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_@".contains(&b));
        if !valid_queue {
            return None;
        }
        Some(JobName {
            queue: queue.to_owned(),
            first: TileCoord::new(z, x, y).ok()?,
        })
    }

    /// The metatile of `size` this job draws.
    pub fn metatile(&self, size: u32) -> Option<Metatile> {
        let metatile = Metatile::containing(self.first, size).ok()?;
        (metatile.first_tile() == self.first).then_some(metatile)
    }
}

impl fmt::Display for JobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.first;
        write!(f, "{}/{}/{}/{}", self.queue, t.z(), t.x(), t.y())
    }
}

/// The engine's address as logs and messages show it: a password in it
/// (`redis://:secret@host` or `redis://user:secret@host`) is replaced by
/// `***`.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// A name for this process in the engine, unique enough across machines
/// and restarts: the host, the process id and the start time.
pub fn process_id(role: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(32)
        .collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{role}-{host}-{}-{nanos:08x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(role: &str, queue: &str) -> ClusterSection {
        ClusterSection {
            role: role.into(),
            queue: queue.into(),
            ..ClusterSection::default()
        }
    }

    #[test]
    fn one_machine_needs_no_engine_and_the_other_roles_need_one() {
        assert_eq!(
            ClusterSettings::from_section(&section("both", "")),
            Ok(None)
        );
        let (key, message) = ClusterSettings::from_section(&section("front", "")).unwrap_err();
        assert_eq!(key, "cluster.role");
        assert!(message.contains("--queue redis://"), "{message}");
        let front = ClusterSettings::from_section(&section("render", "redis://10.0.0.1:6379"))
            .unwrap()
            .unwrap();
        assert_eq!(front.role, Role::Render);
        assert_eq!(front.prefix, "tessera:tessera:");
    }

    #[test]
    fn other_engines_and_bad_values_are_refused_with_the_reason() {
        let (key, message) =
            ClusterSettings::from_section(&section("front", "nats://127.0.0.1:4222")).unwrap_err();
        assert_eq!(key, "cluster.queue");
        assert!(message.contains("docs/architecture.md"), "{message}");
        let (key, _) = ClusterSettings::from_section(&section("front", "http://x:1")).unwrap_err();
        assert_eq!(key, "cluster.queue");
        let (key, _) = ClusterSettings::from_section(&section("boss", "")).unwrap_err();
        assert_eq!(key, "cluster.role");
        let mut bad = section("front", "redis://127.0.0.1:1");
        bad.screen_reserve = bad.window;
        assert_eq!(
            ClusterSettings::from_section(&bad).unwrap_err().0,
            "cluster.screen_reserve"
        );
        let mut bad = section("front", "redis://127.0.0.1:1");
        bad.name = "a:b".into();
        assert_eq!(
            ClusterSettings::from_section(&bad).unwrap_err().0,
            "cluster.name"
        );
    }

    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            redacted("redis://:s3cret@10.0.0.5:6379/2"),
            "redis://:***@10.0.0.5:6379/2"
        );
        assert_eq!(
            redacted("redis://tessera:s3cret@db:6379"),
            "redis://tessera:***@db:6379"
        );
        assert_eq!(redacted("redis://db:6379"), "redis://db:6379");
        assert_eq!(redacted("redis://user@db:6379"), "redis://user@db:6379");
        let engine = engine::Engine::new("redis://:s3cret@127.0.0.1:1", "t:").unwrap();
        assert!(!format!("{engine:?}").contains("s3cret"));
        let error = engine::Engine::new("redis://:s3cret@127.0.0.1:1", "t:")
            .unwrap()
            .ping()
            .unwrap_err();
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }

    #[test]
    fn job_names_go_there_and_back_and_strangers_are_refused() {
        let metatile = Metatile::containing(TileCoord::new(12, 1234, 2345).unwrap(), 8).unwrap();
        let job = JobName::new(queue_name("osm@2x", "0123456789ab"), &metatile);
        let text = job.to_string();
        assert_eq!(text, "osm@2x@0123456789ab/12/1232/2344");
        let back = JobName::parse(&text).unwrap();
        assert_eq!(back, job);
        assert_eq!(back.metatile(8), Some(metatile));
        // Not the corner of a metatile of this size.
        assert_eq!(
            JobName::parse("osm@1/12/1233/2344").unwrap().metatile(8),
            None
        );
        for stranger in [
            "",
            "osm@1/12/1/2/3/4x",
            "../etc/12/0/0",
            "osm@1/40/0/0",
            "osm@1/1/5/0",
            "osm 1/1/0/0",
        ] {
            assert_eq!(JobName::parse(stranger), None, "{stranger:?}");
        }
    }
}
