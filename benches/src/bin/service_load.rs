//! Load generator for `benches/scripts/service_vs_renderd.sh`: talks to a
//! running `tile-server` through the `tile-client` library.
//!
//! - `overhead`: request → `TileDone` for a tile already in the store, N
//!   sequential requests on one connection, against `Ping`/`Pong` round
//!   trips on the same connection (the IPC floor). One JSON line.
//! - `queue`: queues at least N bulk tiles (z14 bbox strips, each request
//!   within `max_tiles_per_request`), waits until the server's stats show
//!   them all queued, then reads the server's VmRSS. One JSON line.
//! - `soak`: a bounded loop of connections doing render, viewport, cancel,
//!   cancel-outside-viewport and abrupt disconnects, sampling the server's
//!   VmRSS. One JSON line with the samples.
//!
//! Every wait is bounded (read timeouts, `--max-seconds`). Every JSON line carries the run's
//! `"runmeta"` object (commit, dirty flag, machine, load average; see
//! `benches/scripts/runmeta.py`); a dirty tree is refused without
//! `--allow-dirty` or `ALLOW_DIRTY=1`.

// A benchmark tool reports on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use ipc_proto::{Endpoint, Priority, TileSet};
use tile_client::{Event, RequestOptions, TileClient};
use tile_math::{LngLatBbox, TileCoord};

#[derive(Debug, Parser)]
#[command(about = "Load generator for tile-server benchmarks")]
struct Cli {
    /// tcp:HOST:PORT or unix:PATH
    #[arg(long)]
    server: String,
    /// Record a run on a tree with uncommitted changes (`"dirty": true` in
    /// the JSON line's `"runmeta"`) instead of refusing (also `ALLOW_DIRTY=1`).
    #[arg(long)]
    allow_dirty: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// p50/p99 of request → TileDone for a stored tile, and of Ping/Pong.
    Overhead {
        /// The tile (rendered once first, then served from the store).
        #[arg(long, default_value = "5/28/12")]
        tile: String,
        /// Sequential requests (and pings).
        #[arg(long, default_value_t = 20_000)]
        n: usize,
        /// A label for the JSON line.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Queue at least `tiles` bulk tiles and report the server's RSS.
    Queue {
        /// The server's PID (for /proc/PID/status).
        #[arg(long)]
        pid: u32,
        /// Tiles to queue.
        #[arg(long, default_value_t = 1_000_000)]
        tiles: u64,
        /// Most tiles per request (the server's max_tiles_per_request).
        #[arg(long, default_value_t = 250_000)]
        per_request: u64,
        /// Zoom of the tiles.
        #[arg(long, default_value_t = 14)]
        zoom: u8,
        /// Give up after this long.
        #[arg(long, default_value_t = 120)]
        max_seconds: u64,
    },
    /// Request churn for a while, sampling the server's RSS.
    Soak {
        /// The server's PID.
        #[arg(long)]
        pid: u32,
        /// Stop after this long...
        #[arg(long, default_value_t = 120)]
        seconds: u64,
        /// ...or after this many connections.
        #[arg(long, default_value_t = 5000)]
        max_iterations: u64,
        /// Sample RSS this often.
        #[arg(long, default_value_t = 5)]
        sample_seconds: u64,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let endpoint: Endpoint = cli
        .server
        .parse()
        .with_context(|| format!("bad --server {}", cli.server))?;
    // Before any work: a dirty tree is refused here, not after the run.
    let meta = tessera_benches::run_meta(cli.allow_dirty)?;
    let line = match cli.command {
        Cmd::Overhead { tile, n, label } => overhead(&endpoint, &tile, n, &label),
        Cmd::Queue {
            pid,
            tiles,
            per_request,
            zoom,
            max_seconds,
        } => queue(&endpoint, pid, tiles, per_request, zoom, max_seconds),
        Cmd::Soak {
            pid,
            seconds,
            max_iterations,
            sample_seconds,
        } => soak(&endpoint, pid, seconds, max_iterations, sample_seconds),
    }?;
    println!("{}", tessera_benches::stamp(&line, &meta));
    Ok(())
}

fn connect(endpoint: &Endpoint, name: &str) -> anyhow::Result<TileClient> {
    let client = TileClient::connect(endpoint, None, name)?;
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    Ok(client)
}

fn next(client: &mut TileClient) -> anyhow::Result<Event> {
    client
        .next_event()?
        .context("the server closed the connection")
}

/// Waits for the end of request `id`; returns how many tiles were done.
fn wait_request(client: &mut TileClient, id: u64) -> anyhow::Result<u64> {
    let mut done = 0;
    loop {
        let event = next(client)?;
        if event.request_id() != id {
            continue;
        }
        match event {
            Event::Done(_) => done += 1,
            Event::Rejected(r) => bail!("request refused: {:?} {}", r.reason, r.message),
            Event::BatchDone(_) => return Ok(done),
            _ => {}
        }
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn summary(mut us: Vec<f64>) -> String {
    us.sort_by(f64::total_cmp);
    let mean = us.iter().sum::<f64>() / us.len().max(1) as f64;
    format!(
        "{{\"n\":{},\"p50_us\":{:.1},\"p99_us\":{:.1},\"mean_us\":{:.1},\"min_us\":{:.1}}}",
        us.len(),
        percentile(&us, 0.5),
        percentile(&us, 0.99),
        mean,
        us.first().copied().unwrap_or(f64::NAN)
    )
}

fn overhead(endpoint: &Endpoint, tile: &str, n: usize, label: &str) -> anyhow::Result<String> {
    let tile: TileCoord = tile.parse().map_err(|e| anyhow::anyhow!("tile: {e}"))?;
    let mut client = connect(endpoint, "service_load overhead")?;
    // Warm: render the tile once (force), so it is fresh in the store.
    let warm = RequestOptions {
        force: true,
        ..RequestOptions::default()
    };
    let id = client.request_tiles(vec![tile], &warm)?;
    if wait_request(&mut client, id)? != 1 {
        bail!("the warm-up render of {tile} did not succeed");
    }
    let options = RequestOptions::default();
    let mut request_us = Vec::with_capacity(n);
    let mut cached = 0u64;
    for _ in 0..n {
        let started = Instant::now();
        let id = client.request_tiles(vec![tile], &options)?;
        loop {
            match next(&mut client)? {
                Event::Done(d) if d.request_id == id => {
                    request_us.push(started.elapsed().as_secs_f64() * 1e6);
                    cached += u64::from(d.cached);
                }
                Event::BatchDone(b) if b.request_id == id => break,
                Event::Failed(f) => bail!("{} failed: {}", f.tile, f.message),
                Event::Rejected(r) => bail!("refused: {}", r.message),
                _ => {}
            }
        }
    }
    let mut ping_us = Vec::with_capacity(n);
    for token in 0..n as u64 {
        let started = Instant::now();
        client.ping(token)?;
        ping_us.push(started.elapsed().as_secs_f64() * 1e6);
    }
    client.close()?;
    Ok(format!(
        "{{\"kind\":\"overhead\",\"label\":\"{label}\",\"tile\":\"{tile}\",\"cached\":{cached},\"request\":{},\"ping\":{}}}",
        summary(request_us),
        summary(ping_us)
    ))
}

/// VmRSS of a process in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS line")
}

fn stat(entries: &[(String, u64)], name: &str) -> u64 {
    entries
        .iter()
        .find(|(k, _)| k == name)
        .map_or(0, |(_, v)| *v)
}

/// West/east longitude of tile column `x` at `zoom`.
fn lng_of(x: u32, zoom: u8) -> f64 {
    f64::from(x) / f64::from(1u32 << zoom) * 360.0 - 180.0
}

/// Latitude of the top edge of tile row `y` at `zoom`.
fn lat_of(y: u32, zoom: u8) -> f64 {
    let n = std::f64::consts::PI * (1.0 - 2.0 * f64::from(y) / f64::from(1u32 << zoom));
    n.sinh().atan().to_degrees()
}

fn queue(
    endpoint: &Endpoint,
    pid: u32,
    tiles: u64,
    per_request: u64,
    zoom: u8,
    max_seconds: u64,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(max_seconds);
    let rss_before = rss_kib(pid)?;
    let mut client = connect(endpoint, "service_load queue")?;
    // Strips of whole columns: `rows` rows from y0, `cols` columns per
    // request; a small inset keeps each bbox inside its tiles.
    let rows: u32 = 1000;
    let (y0, x_start) = (4000u32, 2000u32);
    let cols = (per_request / u64::from(rows)).max(1) as u32;
    let eps = 1e-7;
    let options = RequestOptions {
        priority: Priority::Bulk,
        ..RequestOptions::default()
    };
    let mut sent = 0u64;
    let mut ids = Vec::new();
    let mut x = x_start;
    let started = Instant::now();
    while sent < tiles {
        let n_cols = cols.min(((tiles - sent).div_ceil(u64::from(rows))) as u32);
        let bbox = LngLatBbox::new(
            lng_of(x, zoom) + eps,
            lat_of(y0 + rows, zoom) + eps,
            lng_of(x + n_cols, zoom) - eps,
            lat_of(y0, zoom) - eps,
        );
        let set = TileSet::Bbox {
            bbox,
            min_zoom: zoom,
            max_zoom: zoom,
        };
        ids.push(client.request(set, &options)?);
        sent += u64::from(n_cols) * u64::from(rows);
        x += n_cols;
    }
    // Wait until the scheduler holds them all: queued_bulk + rendered
    // reaches `sent`. The session reads our stats request only after it has
    // expanded and queued every request before it.
    client.set_read_timeout(Some(Duration::from_secs(max_seconds)))?;
    let (mut queued, mut entries);
    loop {
        entries = client.stats()?;
        queued = stat(&entries, "queued_bulk");
        let rendered = stat(&entries, "tiles_rendered");
        if queued + rendered >= sent || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let all_queued_s = started.elapsed().as_secs_f64();
    let rss_queued = rss_kib(pid)?;
    let rendered = stat(&entries, "tiles_rendered");
    let busy = stat(&entries, "tiles_busy");
    // Drop the connection: the queue is answered ClientGone and freed.
    drop(client);
    std::thread::sleep(Duration::from_secs(3));
    let rss_after = rss_kib(pid)?;
    Ok(format!(
        "{{\"kind\":\"queue\",\"requests\":{},\"tiles_sent\":{sent},\"zoom\":{zoom},\"queued_bulk\":{queued},\"rendered_meanwhile\":{rendered},\"busy\":{busy},\"seconds_to_queue\":{all_queued_s:.2},\"rss_before_kib\":{rss_before},\"rss_queued_kib\":{rss_queued},\"rss_after_disconnect_kib\":{rss_after}}}",
        ids.len()
    ))
}

/// A small deterministic PRNG (xorshift), so runs are repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n.max(1))) as u32
    }
}

fn soak(
    endpoint: &Endpoint,
    pid: u32,
    seconds: u64,
    max_iterations: u64,
    sample_seconds: u64,
) -> anyhow::Result<String> {
    let started = Instant::now();
    let stop = started + Duration::from_secs(seconds);
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut samples: Vec<(f64, u64)> = vec![(0.0, rss_kib(pid)?)];
    let mut next_sample = started + Duration::from_secs(sample_seconds);
    let (mut iterations, mut requests, mut answered) = (0u64, 0u64, 0u64);
    while Instant::now() < stop && iterations < max_iterations {
        iterations += 1;
        let mut client = connect(endpoint, "service_load soak")?;
        client.set_read_timeout(Some(Duration::from_secs(10)))?;
        // A screen somewhere at z10-13, its tiles as viewport work, a bulk
        // block elsewhere, and a few explicit tiles.
        let zoom = 10 + rng.below(4) as u8;
        let n = 1u32 << zoom;
        let (x, y) = (rng.below(n - 8), rng.below(n - 8));
        let bbox = LngLatBbox::new(
            lng_of(x, zoom) + 1e-7,
            lat_of(y + 3, zoom) + 1e-7,
            lng_of(x + 4, zoom) - 1e-7,
            lat_of(y, zoom) - 1e-7,
        );
        client.set_viewport(zoom, bbox)?;
        let screen: Vec<TileCoord> = (0..4)
            .flat_map(|dx| (0..3).map(move |dy| (dx, dy)))
            .filter_map(|(dx, dy)| TileCoord::new(zoom, x + dx, y + dy).ok())
            .collect();
        let force = rng.below(4) == 0;
        let viewport = RequestOptions {
            priority: Priority::Viewport,
            force,
            ..RequestOptions::default()
        };
        let bulk = RequestOptions {
            priority: Priority::Bulk,
            force: true,
            ..RequestOptions::default()
        };
        let first = client.request_tiles(screen, &viewport)?;
        let bx = rng.below(n - 64);
        let block: Vec<TileCoord> = (0..64)
            .filter_map(|i| TileCoord::new(zoom, bx + i % 16, (y + i / 16 + 100) % n).ok())
            .collect();
        let bulk_id = client.request_tiles(block, &bulk)?;
        requests += 2;
        match rng.below(4) {
            0 => {
                // Cancel the bulk work, wait for both requests.
                client.cancel(vec![bulk_id])?;
                answered += wait_all(&mut client, &[first, bulk_id])?;
            }
            1 => {
                // Move away and drop what is left behind.
                client.set_viewport(zoom, LngLatBbox::new(-10.0, -10.0, -9.0, -9.0))?;
                client.cancel_outside_viewport(0)?;
                answered += wait_all(&mut client, &[first, bulk_id])?;
            }
            _ => {
                // Vanish with everything queued (no Goodbye, no reading).
            }
        }
        drop(client);
        if Instant::now() >= next_sample {
            samples.push((started.elapsed().as_secs_f64(), rss_kib(pid)?));
            next_sample += Duration::from_secs(sample_seconds);
        }
    }
    // Let the server finish what the vanished clients left running.
    std::thread::sleep(Duration::from_secs(2));
    samples.push((started.elapsed().as_secs_f64(), rss_kib(pid)?));
    let list: Vec<String> = samples
        .iter()
        .map(|(t, kib)| format!("[{t:.1},{kib}]"))
        .collect();
    Ok(format!(
        "{{\"kind\":\"soak\",\"seconds\":{:.1},\"connections\":{iterations},\"requests\":{requests},\"requests_waited\":{answered},\"rss_samples_kib\":[{}]}}",
        started.elapsed().as_secs_f64(),
        list.join(",")
    ))
}

/// Waits until every request in `ids` has ended; returns how many ended.
fn wait_all(client: &mut TileClient, ids: &[u64]) -> anyhow::Result<u64> {
    let mut open: Vec<u64> = ids.to_vec();
    while !open.is_empty() {
        let event = next(client)?;
        if event.ends_request() {
            open.retain(|id| *id != event.request_id());
        }
    }
    Ok(ids.len() as u64)
}
