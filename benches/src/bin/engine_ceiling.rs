//! The cluster engine's ceiling, for `benches/scripts/cluster_scale.sh`:
//! `--clients` threads each run whole metatile-job lifecycles against a
//! running Redis through render-service's own engine client and Lua
//! scripts, as a front and a render node do: publish, claim, complete, and
//! the front's read of its completion stream (a renewal every
//! `--renew-every` jobs, as a render longer than a third of the lease
//! would add). After `--seconds`, one JSON line: jobs/s, and the share of
//! a core the Redis process used (from `/proc/<pid>/stat`), so the ceiling
//! is jobs/s ÷ share.

// A benchmark tool reports on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use render_service::cluster::engine::Engine;
use render_service::cluster::{queue_name, JobName};
use tile_math::{Metatile, TileCoord};

#[derive(Debug, Parser)]
#[command(about = "Whole job lifecycles against the cluster engine, as fast as it takes them")]
struct Cli {
    /// The engine, redis://HOST:PORT.
    #[arg(long)]
    queue: String,
    /// The Redis server's process id (its CPU time is read from /proc).
    #[arg(long)]
    redis_pid: u32,
    /// Concurrent lifecycles (threads).
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// How long to run.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// One renewal every this many jobs (0: none).
    #[arg(long, default_value_t = 0)]
    renew_every: u64,
    /// Record a run on a dirty tree instead of refusing (also ALLOW_DIRTY=1).
    #[arg(long)]
    allow_dirty: bool,
}

/// Redis's CPU seconds so far (user + system).
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("no process {pid}"))?;
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th of the whole line.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    // /proc counts in USER_HZ, which Linux fixes at 100 for user space.
    Ok(ticks / 100.0)
}

/// One client: lifecycles until `stop`; returns how many.
fn lifecycles(cli: &Cli, index: usize, stop: &AtomicBool, jobs: &AtomicU64) -> anyhow::Result<()> {
    let prefix = "tessera:ceiling:";
    let mut front = Engine::new(&cli.queue, prefix)?;
    let mut node = Engine::new(&cli.queue, prefix)?;
    let mut reader = Engine::new(&cli.queue, prefix)?;
    let front_id = format!("front-{index}");
    let node_id = format!("node-{index}");
    // Each client its own queue, as each map version has one: a claim
    // takes this client's job, not another's.
    let queue = queue_name(&format!("m{index}"), "000000000000");
    let queues = [queue.clone()];
    let mut after = "0".to_owned();
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let z = 14;
        let (x, y) = ((n % 2048) as u32 * 8, (n / 2048 % 2048) as u32 * 8);
        let metatile = Metatile::containing(TileCoord::new(z, x, y)?, 8)?;
        let job = JobName::new(queue.clone(), &metatile);
        front.publish(&front_id, &job, (n as f64) + 3e13, false)?;
        let Some((name, _)) = node.claim(&node_id, &queues, Duration::from_secs(10))? else {
            bail!("published {job} but the claim found nothing");
        };
        if name != job.to_string() {
            bail!("claimed {name}, published {job}");
        }
        if cli.renew_every > 0 && n % cli.renew_every == 0 {
            node.renew(&node_id, &name, Duration::from_secs(10))?;
        }
        node.complete(&node_id, &job, "done", "", 1)?;
        loop {
            let completions = reader.completions(&front_id, &after, Duration::from_millis(1000))?;
            let Some(last) = completions.last() else {
                bail!("no completion for {job}");
            };
            after.clone_from(&last.id);
            if completions.iter().any(|c| c.job == name) {
                break;
            }
        }
        n += 1;
        jobs.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let meta = tessera_benches::run_meta(cli.allow_dirty)?;
    let stop = Arc::new(AtomicBool::new(false));
    let jobs = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_seconds(cli.redis_pid)?;
    let started = Instant::now();
    let result = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..cli.clients)
            .map(|i| {
                let (stop, jobs, cli) = (&stop, &jobs, &cli);
                scope.spawn(move || lifecycles(cli, i, stop, jobs))
            })
            .collect();
        std::thread::sleep(Duration::from_secs_f64(cli.seconds));
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("a client panicked")))
            .collect::<anyhow::Result<Vec<()>>>()
    });
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(cli.redis_pid)? - cpu0;
    result?;
    let done = jobs.load(Ordering::Relaxed) as f64;
    let share = cpu / wall;
    let line = format!(
        "{{\"kind\":\"engine_ceiling\",\"clients\":{},\"renew_every\":{},\"wall_s\":{wall:.3},\
         \"jobs\":{done},\"jobs_per_s\":{:.1},\"redis_cpu_s\":{cpu:.3},\"redis_share\":{share:.3},\
         \"redis_cpu_us_per_job\":{:.1},\"ceiling_jobs_per_s\":{:.0}}}",
        cli.clients,
        cli.renew_every,
        done / wall,
        cpu * 1e6 / done.max(1.0),
        done / wall / share.max(1e-9),
    );
    println!("{}", tessera_benches::stamp(&line, &meta));
    Ok(())
}
