//! The cluster end to end: a real Redis and real tile-server processes,
//! each in a network namespace of its own made by the test (`ip netns`,
//! veth pairs on a bridge in the engine's namespace, addresses 10.77.0.0/24
//! that exist only there). Clients reach the fronts through Unix sockets in
//! the test's folder (a path crosses namespaces; the fronts' and nodes'
//! traffic with the engine does not leave theirs). Fronts and render nodes
//! share the tile directory, as machines share an NFS export.
//!
//! Needs root (namespaces) and redis-server: scripts/install-deps.sh
//! installs it; CI runs as root.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipc_proto::{FailureKind, Priority};
use tile_client::{Event, RequestOptions, TileClient};
use tile_math::{LngLatBbox, Metatile, TileCoord};

use crate::support::{write_slow_style, write_small_style, ServerProcess};

const ENGINE_IP: &str = "10.77.0.1";

/// A few hosts and an engine, each in its own network namespace.
struct Lab {
    tag: String,
    dir: tempfile::TempDir,
    hosts: Vec<String>,
    engine: Option<Child>,
    style: PathBuf,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lab {
    /// The engine's namespace with a bridge, and one namespace per host
    /// (`f1`, `r1`, ...) wired to it, host `i` at 10.77.0.(10+i).
    fn new(hosts: &[&str], squares: usize) -> Lab {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "tsc{}x{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = tempfile::tempdir().unwrap();
        let style = match squares {
            0 => write_small_style(dir.path()),
            n => write_slow_style(dir.path(), n),
        };
        let mut lab = Lab {
            tag,
            dir,
            hosts: Vec::new(),
            engine: None,
            style,
        };
        let engine = lab.ns("engine");
        ip(&["netns", "add", &engine]);
        lab.hosts.push("engine".into());
        ip(&["-n", &engine, "link", "set", "lo", "up"]);
        ip(&["-n", &engine, "link", "add", "br0", "type", "bridge"]);
        ip(&[
            "-n",
            &engine,
            "addr",
            "add",
            &format!("{ENGINE_IP}/24"),
            "dev",
            "br0",
        ]);
        ip(&["-n", &engine, "link", "set", "br0", "up"]);
        for (i, host) in hosts.iter().enumerate() {
            let ns = lab.ns(host);
            ip(&["netns", "add", &ns]);
            lab.hosts.push((*host).into());
            let port = format!("v{i}");
            ip(&[
                "-n", &engine, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ]);
            ip(&["-n", &engine, "link", "set", &port, "master", "br0", "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("10.77.0.{}/24", 10 + i),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        lab.start_engine();
        lab
    }

    fn ns(&self, host: &str) -> String {
        format!("{}{host}", self.tag)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `program` inside `host`'s namespace.
    fn command(&self, host: &str, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns(host), program]);
        command
    }

    /// Redis in the engine's namespace, without persistence: a restart
    /// forgets everything, the hard case.
    fn start_engine(&mut self) {
        let child = self
            .command("engine", "redis-server")
            .args([
                "--bind",
                ENGINE_IP,
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--protected-mode", "no", "--loglevel", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/install-deps.sh installs it)");
        self.engine = Some(child);
        eventually(
            Duration::from_secs(20),
            || self.redis(&["PING"]) == "PONG",
            || "redis-server did not start".to_owned(),
        );
    }

    fn kill_engine(&mut self) {
        if let Some(mut child) = self.engine.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A command to the engine, from its namespace; its answer as text.
    fn redis(&self, args: &[&str]) -> String {
        let out = self
            .command("engine", "redis-cli")
            .args(["-h", ENGINE_IP, "--raw"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn redis_number(&self, args: &[&str]) -> u64 {
        self.redis(args).parse().unwrap_or(0)
    }

    /// Jobs waiting in every queue of the engine.
    fn queued(&self) -> u64 {
        self.redis(&["KEYS", "tessera:tessera:q:*"])
            .lines()
            .filter(|k| !k.is_empty())
            .map(|k| self.redis_number(&["ZCARD", k]))
            .sum()
    }

    /// Within 5 s, nothing is queued or running in the engine.
    fn assert_engine_empties(&self, when: &str) {
        eventually(
            Duration::from_secs(5),
            || self.queued() == 0 && self.redis_number(&["ZCARD", "tessera:tessera:running"]) == 0,
            || format!("work left in the engine {when}: {} queued", self.queued()),
        );
    }

    /// The cluster's configuration, with `extra` TOML lines in `[cluster]`
    /// (an engine timeout of 5 s unless they say otherwise).
    fn config(&self, name: &str, style: &Path, extra: &str) -> PathBuf {
        let extra = match extra.contains("engine_timeout_ms") {
            true => extra.to_owned(),
            false => format!("engine_timeout_ms = 5000\n{extra}"),
        };
        let path = self.path(name);
        std::fs::write(
            &path,
            format!(
                "[server]\nlisten = []\n[render]\nthreads = 1\nmetatile = 8\n\
                 [store]\ndir = {tiles:?}\n\
                 [cluster]\nqueue = \"redis://{ENGINE_IP}:6379\"\nlease_ms = 1000\n\
                 window = 16\nscreen_reserve = 4\n{extra}\n\
                 [[map]]\nname = \"m\"\nstyle = {style:?}\n",
                tiles = self.path("tiles"),
            ),
        )
        .unwrap();
        path
    }

    /// A front in `host`, on the Unix socket `<host>.sock`.
    fn front(&self, host: &str, extra: &str) -> ServerProcess {
        let config = self.config(&format!("{host}.toml"), &self.style, extra);
        let socket = self.path(&format!("{host}.sock"));
        ServerProcess::start(
            self.command(host, env!("CARGO_BIN_EXE_tile-server"))
                .arg("--config")
                .arg(&config)
                .args(["--role", "front"])
                .arg("--listen")
                .arg(format!("unix:{}", socket.display()))
                .env("RUST_LOG", "info,render_service::cluster=debug"),
        )
    }

    /// A render node of one thread in `host`, drawing `style`.
    fn node(&self, host: &str, style: &Path) -> ServerProcess {
        let config = self.config(&format!("{host}.toml"), style, "");
        ServerProcess::start(
            self.command(host, env!("CARGO_BIN_EXE_tile-server"))
                .arg("--config")
                .arg(&config)
                .args(["--role", "render"])
                .env("RUST_LOG", "info,render_service::cluster=debug"),
        )
    }

    /// A client of `host` that asked for every tile of `zooms` over the
    /// world: the client, the request's id and the tiles.
    fn seeding(
        &self,
        host: &str,
        zooms: std::ops::RangeInclusive<u8>,
        priority: Priority,
    ) -> (TileClient, u64, Vec<TileCoord>) {
        let tiles = world(zooms);
        let mut client = self.client(host);
        let id = client
            .request_tiles(tiles.clone(), &options(priority))
            .unwrap();
        (client, id, tiles)
    }

    fn client(&self, host: &str) -> TileClient {
        let endpoint = format!("unix:{}", self.path(&format!("{host}.sock")).display());
        let client = TileClient::connect(&endpoint.parse().unwrap(), None, "cluster-test").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(90)))
            .unwrap();
        client
    }

    /// Cuts `host` off the network, or joins it again.
    fn link(&self, host: &str, up: bool) {
        ip(&[
            "-n",
            &self.ns(host),
            "link",
            "set",
            "eth0",
            if up { "up" } else { "down" },
        ]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.kill_engine();
        for host in &self.hosts {
            let _ = Command::new("ip")
                .args(["netns", "del", &format!("{}{host}", self.tag)])
                .status();
        }
    }
}

/// Waits until `done` holds, checking every 20 ms; fails with `why` after
/// `within`.
fn eventually(within: Duration, mut done: impl FnMut() -> bool, why: impl Fn() -> String) {
    let until = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < until, "{}", why());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every tile of zooms `zooms` over the whole world.
fn world(zooms: std::ops::RangeInclusive<u8>) -> Vec<TileCoord> {
    let mut tiles = Vec::new();
    for z in zooms {
        for x in 0..1u32 << z {
            for y in 0..1u32 << z {
                tiles.push(TileCoord::new(z, x, y).unwrap());
            }
        }
    }
    tiles
}

fn options(priority: Priority) -> RequestOptions {
    RequestOptions {
        priority,
        ..RequestOptions::default()
    }
}

/// How each tile of a request was answered, in order.
#[derive(Default, Debug)]
struct Answers {
    done: Vec<TileCoord>,
    failed: Vec<(TileCoord, FailureKind, String)>,
    cancelled: Vec<TileCoord>,
}

impl Answers {
    /// Each tile of `asked` answered exactly once, and nothing else.
    fn assert_each_once(&self, asked: &[TileCoord]) {
        let mut seen: HashMap<TileCoord, usize> = HashMap::new();
        for tile in self
            .done
            .iter()
            .chain(self.failed.iter().map(|f| &f.0))
            .chain(&self.cancelled)
        {
            *seen.entry(*tile).or_default() += 1;
        }
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "tiles answered more than once: {twice:?}");
        let asked: HashSet<_> = asked.iter().copied().collect();
        let missing: Vec<_> = asked.iter().filter(|t| !seen.contains_key(t)).collect();
        assert!(missing.is_empty(), "tiles never answered: {missing:?}");
        assert_eq!(
            seen.len(),
            asked.len(),
            "answers for tiles nobody asked for"
        );
    }
}

/// Reads request `id`'s answers up to its `BatchDone`, calling `each`
/// after every answer; then makes sure nothing more comes for a while.
fn answers(client: &mut TileClient, id: u64, mut each: impl FnMut(&Answers)) -> Answers {
    let mut answers = Answers::default();
    loop {
        let event = client
            .next_event()
            .unwrap_or_else(|e| {
                panic!(
                    "request {id}: {} tiles answered, then nothing within the read timeout \
                     (a hang): {e}",
                    answers.done.len() + answers.failed.len() + answers.cancelled.len()
                )
            })
            .expect("the front closed");
        assert_eq!(event.request_id(), id, "{event:?}");
        match event {
            Event::Done(d) => answers.done.push(d.tile),
            Event::Failed(f) => answers.failed.push((f.tile, f.kind, f.message)),
            Event::Cancelled { tile, .. } => answers.cancelled.push(tile),
            Event::BatchDone(_) => break,
            Event::Rejected(r) => panic!("request refused: {r:?}"),
        }
        each(&answers);
    }
    answers
}

/// Nothing more arrives on `client` within `wait`.
fn assert_quiet(client: &mut TileClient, wait: Duration) {
    client.set_read_timeout(Some(wait)).unwrap();
    // A timeout (or the end of the connection) is the quiet we want.
    if let Ok(Some(event)) = client.next_event() {
        panic!("an answer after the request ended: {event:?}");
    }
}

/// Every tile is in the shared store.
fn assert_stored(lab: &Lab, tiles: &[TileCoord]) {
    let missing: Vec<_> = tiles
        .iter()
        .filter(|t| {
            !lab.path("tiles")
                .join(format!("m/{}/{}/{}.png", t.z(), t.x(), t.y()))
                .is_file()
        })
        .collect();
    assert!(
        missing.is_empty(),
        "tiles missing from the store: {missing:?}"
    );
}

#[test]
fn two_fronts_seed_while_a_render_node_is_killed_and_every_tile_is_answered_once() {
    let lab = Lab::new(&["f1", "f2", "r1", "r2"], 40_000);
    let _f1 = lab.front("f1", "");
    let _f2 = lab.front("f2", "");
    let mut r1 = lab.node("r1", &lab.style);
    let r2 = lab.node("r2", &lab.style);
    // Both fronts ask for the same world, so every job is merged across
    // them; each front's client must still get each tile once.
    let tiles = world(0..=5);
    let seed = |host: &str| {
        let mut client = lab.client(host);
        let id = client
            .request_tiles(tiles.clone(), &options(Priority::Bulk))
            .unwrap();
        (client, id)
    };
    let ((mut c1, id1), (mut c2, id2)) = (seed("f1"), seed("f2"));
    std::thread::scope(|scope| {
        let second = scope.spawn(|| answers(&mut c2, id2, |_| {}));
        // Killed while it holds a job: it logs the claim before drawing.
        r1.wait_for_log("claimed", 2);
        r1.child.kill().unwrap();
        let first = answers(&mut c1, id1, |_| {});
        let second = second.join().unwrap();
        for answers in [&first, &second] {
            answers.assert_each_once(&tiles);
            assert!(
                answers.failed.is_empty() && answers.cancelled.is_empty(),
                "{answers:?}"
            );
        }
    });
    assert_quiet(&mut c1, Duration::from_millis(1500));
    assert_quiet(&mut c2, Duration::from_millis(10));
    assert_stored(&lab, &tiles);
    // The killed node's job went back to the queue when its lease ran out,
    // and the other node drew it.
    assert!(lab.redis_number(&["GET", "tessera:tessera:stat:requeued"]) >= 1);
    r2.wait_for_log("reported", 1);
    assert_eq!(lab.queued(), 0);
}

#[test]
fn a_viewport_sent_behind_a_bulk_backlog_is_served_first_across_nodes() {
    let lab = Lab::new(&["f1", "f2", "r1", "r2"], 20_000);
    let _fronts = (lab.front("f1", ""), lab.front("f2", ""));
    let _nodes = (lab.node("r1", &lab.style), lab.node("r2", &lab.style));
    // A backlog that outlasts the screen by far: 88 metatiles.
    let (mut seeder, bulk, bulk_tiles) = lab.seeding("f1", 0..=6, Priority::Bulk);
    std::thread::scope(|scope| {
        // When each bulk tile was answered.
        let bulk_side = scope.spawn(move || {
            let mut times = Vec::new();
            let answers = answers(&mut seeder, bulk, |_| times.push(Instant::now()));
            (answers, times)
        });
        // Some bulk work done, most of it still queued.
        std::thread::sleep(Duration::from_millis(1500));
        let mut viewer = lab.client("f2");
        let bbox = LngLatBbox::new(21.0, 56.0, 29.0, 64.0);
        viewer.set_viewport(8, bbox).unwrap();
        let screen: Vec<TileCoord> = tile_math::tiles_covering(bbox, 8..=8).unwrap().collect();
        let sent = Instant::now();
        let id = viewer
            .request_tiles(screen.clone(), &options(Priority::Viewport))
            .unwrap();
        let on_screen = answers(&mut viewer, id, |_| {});
        let drawn = Instant::now();
        on_screen.assert_each_once(&screen);
        assert_eq!(on_screen.done.len(), screen.len());
        let (bulk_answers, times) = bulk_side.join().unwrap();
        bulk_answers.assert_each_once(&bulk_tiles);
        assert!(
            times.last().is_some_and(|t| *t > drawn),
            "the bulk seed ended before the screen was drawn"
        );
        // While the screen was drawn, the nodes finished at most the bulk
        // jobs they held (one each), and what a node may have claimed
        // between our send and the publication (one, two on a loaded
        // machine). Without priorities across nodes it is most of them.
        let during: HashSet<Metatile> = bulk_answers
            .done
            .iter()
            .zip(&times)
            .filter(|(_, t)| **t > sent && **t < drawn)
            .map(|(tile, _)| Metatile::containing(*tile, 8).unwrap())
            .collect();
        assert!(
            during.len() <= 4,
            "{} bulk metatiles were finished while the screen waited {:?}",
            during.len(),
            drawn - sent
        );
    });
}

#[test]
fn a_cancel_on_one_front_removes_its_work_from_every_node_and_spares_the_other_fronts() {
    let lab = Lab::new(&["f1", "f2", "r1", "r2"], 20_000);
    let _fronts = (lab.front("f1", ""), lab.front("f2", ""));
    let (r1, r2) = (lab.node("r1", &lab.style), lab.node("r2", &lab.style));
    let tiles = world(0..=5);
    let mut c1 = lab.client("f1");
    let id1 = c1
        .request_tiles(tiles.clone(), &options(Priority::Bulk))
        .unwrap();
    // The other front wants a few of the same metatiles (zoom 5's first
    // column of metatiles).
    let shared: Vec<TileCoord> = tiles
        .iter()
        .copied()
        .filter(|t| t.z() == 5 && t.x() < 8)
        .collect();
    let mut c2 = lab.client("f2");
    let id2 = c2
        .request_tiles(shared.clone(), &options(Priority::Bulk))
        .unwrap();
    r1.wait_for_log("claimed", 2);
    let completed_before = lab.redis_number(&["GET", "tessera:tessera:stat:completed"]);
    c1.cancel(vec![id1]).unwrap();
    let first = answers(&mut c1, id1, |_| {});
    first.assert_each_once(&tiles);
    assert!(!first.cancelled.is_empty(), "nothing was left to cancel");
    // At once, only what f2 also wants (4 metatiles) is left in the queue.
    eventually(
        Duration::from_secs(1),
        || lab.queued() <= 4,
        || {
            format!(
                "{} jobs still queued a second after the cancel",
                lab.queued()
            )
        },
    );
    // The front's dispatcher withdrew them (its counters say so).
    let stats: HashMap<String, u64> = c1.stats().unwrap().into_iter().collect();
    assert!(stats["cluster_jobs_withdrawn"] >= 1, "{stats:?}");
    assert!(stats["cluster_jobs_published"] >= stats["cluster_jobs_withdrawn"]);
    // What f2 still wants is drawn and answered.
    let second = answers(&mut c2, id2, |_| {});
    second.assert_each_once(&shared);
    assert_eq!(second.done.len(), shared.len(), "{second:?}");
    // Nothing of f1's is left for any node: the queue empties, running
    // jobs stop at their next renewal, and no more jobs are finished.
    lab.assert_engine_empties("after the cancel");
    let completed = lab.redis_number(&["GET", "tessera:tessera:stat:completed"]);
    // Since the cancel, only what f2 wants (4 metatiles) and what the nodes
    // held or took before the cancel landed (2 + 2) was finished.
    assert!(
        completed - completed_before <= 8,
        "{} jobs were finished after the cancel",
        completed - completed_before
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        lab.redis_number(&["GET", "tessera:tessera:stat:completed"]),
        completed
    );
    let all_metatiles: HashSet<Metatile> = tiles
        .iter()
        .map(|t| Metatile::containing(*t, 8).unwrap())
        .collect();
    assert!(
        (completed as usize) < all_metatiles.len(),
        "every job was drawn anyway ({completed})"
    );
    drop((r1, r2));
}

#[test]
fn the_engine_restarts_mid_seed_and_nothing_is_lost_or_answered_twice() {
    let mut lab = Lab::new(&["f1", "r1", "r2"], 20_000);
    let _f1 = lab.front("f1", "");
    let r1 = lab.node("r1", &lab.style);
    let _r2 = lab.node("r2", &lab.style);
    let (mut client, id, tiles) = lab.seeding("f1", 0..=5, Priority::Bulk);
    r1.wait_for_log("reported", 2);
    // Killed, not shut down, and without persistence: the restarted engine
    // knows nothing of the queue, the leases or the completion streams.
    lab.kill_engine();
    std::thread::sleep(Duration::from_millis(500));
    lab.start_engine();
    let answers = answers(&mut client, id, |_| {});
    answers.assert_each_once(&tiles);
    assert_eq!(answers.done.len(), tiles.len(), "{:?}", answers.failed);
    assert_quiet(&mut client, Duration::from_millis(1500));
    assert_stored(&lab, &tiles);
}

#[test]
fn a_render_node_with_another_style_version_refuses_the_jobs_and_says_so() {
    let lab = Lab::new(&["f1", "r1", "r2"], 0);
    let _f1 = lab.front("f1", "");
    // The same style with another colour, in another folder.
    let other = lab.path("other");
    std::fs::create_dir(&other).unwrap();
    let other_style = write_small_style(&other);
    let text = std::fs::read_to_string(&other_style)
        .unwrap()
        .replace("#f2efe9", "#ff0000");
    std::fs::write(&other_style, text).unwrap();
    let r1 = lab.node("r1", &other_style);
    let (mut client, id, tiles) = lab.seeding("f1", 0..=3, Priority::Explicit);
    let log = r1.wait_for_log("refusing the jobs of map `m`", 1);
    assert!(log.contains("style version"), "{log}");
    // Its jobs wait for a node that has the fronts' style.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(lab.queued(), 4, "zooms 0-3 are 4 metatiles");
    let _r2 = lab.node("r2", &lab.style);
    let answers = answers(&mut client, id, |_| {});
    answers.assert_each_once(&tiles);
    assert_eq!(answers.done.len(), tiles.len());
    let log = r1.stop().stderr;
    assert!(
        !log.contains("claimed"),
        "the node with the other style took a job:\n{log}"
    );
}

#[test]
fn a_front_cut_off_from_the_engine_answers_busy_and_never_hangs() {
    let lab = Lab::new(&["f1", "r1"], 20_000);
    let _f1 = lab.front("f1", "engine_timeout_ms = 1500");
    let r1 = lab.node("r1", &lab.style);
    let (mut client, id, tiles) = lab.seeding("f1", 0..=5, Priority::Bulk);
    r1.wait_for_log("reported", 1);
    lab.link("f1", false);
    let cut = Instant::now();
    let answers = answers(&mut client, id, |_| {});
    let waited = cut.elapsed();
    answers.assert_each_once(&tiles);
    assert!(
        answers
            .failed
            .iter()
            .all(|(_, kind, message)| *kind == FailureKind::Busy && message.contains("engine")),
        "{:?}",
        answers.failed.first()
    );
    assert!(!answers.failed.is_empty(), "nothing waited on the engine");
    // The read timeout (2 s) finds the engine gone, the engine timeout
    // (1.5 s) answers its work: well under the client's patience.
    assert!(waited < Duration::from_secs(15), "answers took {waited:?}");
    // New work while cut off is answered Busy at once.
    let started = Instant::now();
    let more = vec![TileCoord::new(7, 0, 0).unwrap()];
    let id = client
        .request_tiles(more.clone(), &options(Priority::Explicit))
        .unwrap();
    let refused = self::answers(&mut client, id, |_| {});
    assert_eq!(refused.failed.len(), 1, "{refused:?}");
    assert_eq!(refused.failed[0].1, FailureKind::Busy);
    assert!(started.elapsed() < Duration::from_secs(3));
    // Back on the network: work flows again.
    lab.link("f1", true);
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let id = client
            .request_tiles(more.clone(), &options(Priority::Explicit))
            .unwrap();
        let again = self::answers(&mut client, id, |_| {});
        if again.done.len() == 1 {
            break;
        }
        assert!(
            Instant::now() < until,
            "the front did not recover: {again:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let stats: HashMap<String, u64> = client.stats().unwrap().into_iter().collect();
    assert_eq!(stats.get("cluster_engine_up"), Some(&1), "{stats:?}");
    assert!(stats["cluster_engine_outages"] >= 1, "{stats:?}");
    assert!(stats["cluster_jobs_busy"] >= 1, "{stats:?}");
    assert!(stats["cluster_jobs_completed"] >= 1, "{stats:?}");
    // The work it answered Busy was withdrawn when the engine came back:
    // nobody draws it for a client that was told to retry.
    eventually(
        Duration::from_secs(3),
        || lab.queued() == 0,
        || format!("{} jobs answered Busy are still queued", lab.queued()),
    );
}

#[test]
fn a_role_without_an_engine_and_an_engine_not_chosen_are_refused_with_the_reason() {
    use crate::support::{run_to_end, server_command};
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let refused = |args: &[&str]| {
        let ended = run_to_end(server_command().arg("--style").arg(&style).args(args));
        assert_eq!(ended.status.code(), Some(2), "{}", ended.stderr);
        ended.stderr
    };
    let said = refused(&["--role", "render"]);
    assert!(
        said.contains("--role") && said.contains("--queue redis://"),
        "{said}"
    );
    let said = refused(&["--role", "front", "--queue", "nats://127.0.0.1:4222"]);
    assert!(
        said.contains("--queue") && said.contains("docs/architecture.md"),
        "{said}"
    );
    let said = refused(&["--role", "boss"]);
    assert!(said.contains("`front`"), "{said}");
}

#[test]
fn a_front_stopped_mid_seed_answers_every_tile_once_and_withdraws_its_jobs() {
    let lab = Lab::new(&["f1", "r1"], 20_000);
    let f1 = lab.front("f1", "");
    let r1 = lab.node("r1", &lab.style);
    let (mut client, id, tiles) = lab.seeding("f1", 0..=5, Priority::Bulk);
    r1.wait_for_log("reported", 1);
    let stopper = std::thread::spawn(move || f1.stop());
    let answers = answers(&mut client, id, |_| {});
    answers.assert_each_once(&tiles);
    assert!(
        !answers.cancelled.is_empty(),
        "the stop came too late to test"
    );
    let ended = stopper.join().unwrap();
    assert_eq!(ended.status.code(), Some(0), "{}", ended.stderr);
    // Nothing of the front's is left for the node.
    lab.assert_engine_empties("after the front stopped");
    assert_eq!(
        lab.redis(&["KEYS", "tessera:tessera:done:*"]),
        "",
        "its stream is left"
    );
}

#[test]
fn a_render_node_stopped_mid_seed_finishes_its_job_and_the_other_carries_on() {
    let lab = Lab::new(&["f1", "r1", "r2"], 20_000);
    let _f1 = lab.front("f1", "");
    let r1 = lab.node("r1", &lab.style);
    let _r2 = lab.node("r2", &lab.style);
    let (mut client, id, tiles) = lab.seeding("f1", 0..=5, Priority::Bulk);
    r1.wait_for_log("claimed", 2);
    let ended = r1.stop();
    assert_eq!(ended.status.code(), Some(0), "{}", ended.stderr);
    // It reported what it held: nothing waited for its lease to run out.
    let claimed = ended.stderr.matches("claimed").count();
    let reported = ended.stderr.matches("reported").count();
    assert_eq!(claimed, reported, "{}", ended.stderr);
    assert_eq!(
        lab.redis_number(&["GET", "tessera:tessera:stat:requeued"]),
        0
    );
    let answers = answers(&mut client, id, |_| {});
    answers.assert_each_once(&tiles);
    assert_eq!(answers.done.len(), tiles.len());
}

#[test]
fn role_both_with_an_engine_is_a_front_and_a_render_node_in_one_process() {
    let lab = Lab::new(&["b1"], 0);
    let config = lab.config("b1.toml", &lab.style, "");
    let socket = lab.path("b1.sock");
    let both = ServerProcess::start(
        lab.command("b1", env!("CARGO_BIN_EXE_tile-server"))
            .arg("--config")
            .arg(&config)
            .args(["--role", "both"])
            .arg("--listen")
            .arg(format!("unix:{}", socket.display()))
            .env("RUST_LOG", "info,render_service::cluster=debug"),
    );
    let (mut client, id, tiles) = lab.seeding("b1", 0..=4, Priority::Explicit);
    let answers = answers(&mut client, id, |_| {});
    answers.assert_each_once(&tiles);
    assert_eq!(answers.done.len(), tiles.len());
    // Through the engine, not around it.
    let log = both.stop().stderr;
    assert!(
        log.contains("cluster front") && log.contains("render node"),
        "{log}"
    );
    assert!(lab.redis_number(&["GET", "tessera:tessera:stat:completed"]) >= 5);
    assert_stored(&lab, &tiles);
}
