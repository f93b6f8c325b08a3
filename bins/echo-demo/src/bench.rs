//! The benchmark peer: `echo-demo bench server` / `bench client` speak the
//! external-peer contract of `shared/bench/ipc/README.md`, so tessera's
//! numbers land in the same table as the C and Python peers.
//!
//! Wire format of the contract: a 4-byte big-endian length, then that many
//! payload bytes; the server echoes every frame unchanged.
//!
//! Where the speed comes from (the C peer does 3 syscalls per message per
//! side: read header, read payload, write):
//! - the server reads as much as the socket has (up to 256 KiB) and echoes
//!   every complete frame in that buffer with **one** `write`, straight from
//!   the read buffer, without copying;
//! - the pipelined client's sender writes frames in batches of about 16 KiB
//!   (one `write` per batch), and its receiver reads up to 1 MiB at a time.
//! - In rtt mode there is nothing to batch: one `write` and (usually) one
//!   `read` per round trip on each side, i.e. one syscall less than C.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ipc_proto::{Endpoint, ListenOptions, Listener, Stream};

use crate::cli::{BenchClientArgs, BenchMode, BenchServerArgs};

/// Frames up to this size must work (contract: 16 MiB).
const MAX_FRAME: usize = 16 * 1024 * 1024;
/// Bytes per write of the pipelined sender.
const BATCH_BYTES: usize = 16 * 1024;

/// Runs `echo-demo bench server` until SIGTERM, `--max-seconds` or
/// `--max-conns` connections.
pub fn server(args: &BenchServerArgs) -> Result<()> {
    let listener = Listener::bind(&args.addr, &ListenOptions::default())?;
    let local = listener.local_endpoint().clone();
    exit_on_sigterm_or_deadline(&local, Duration::from_secs_f64(args.max_seconds))?;
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "READY {local}")?;
    stdout.flush()?;
    drop(stdout);
    for _ in 0..args.max_conns {
        let stream = listener.accept()?;
        thread::spawn(move || {
            if let Err(e) = echo_frames(stream) {
                log(&format!("connection closed: {e}"));
            }
        });
    }
    Ok(())
}

/// The contract: exit on SIGTERM and after `max` by itself, removing the
/// Unix socket file. Both watchers are threads that sleep until then.
fn exit_on_sigterm_or_deadline(local: &Endpoint, max: Duration) -> Result<()> {
    let socket_file = match local {
        Endpoint::Unix(p) => Some(p.clone()),
        Endpoint::Tcp { .. } => None,
    };
    let cleanup_and_exit = move |code: i32| -> ! {
        if let Some(p) = &socket_file {
            let _ = std::fs::remove_file(p);
        }
        std::process::exit(code)
    };
    let on_deadline = cleanup_and_exit.clone();
    thread::spawn(move || {
        thread::sleep(max);
        log("--max-seconds reached: exiting");
        on_deadline(0)
    });
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])?;
    thread::spawn(move || {
        if signals.forever().next().is_some() {
            cleanup_and_exit(0)
        }
    });
    Ok(())
}

/// Echoes every complete frame of each read with one write.
fn echo_frames(mut stream: Stream) -> Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    // Unanswered bytes are buf[start..end]: an incomplete frame.
    let (mut start, mut end) = (0usize, 0usize);
    loop {
        let n = match stream.read(&mut buf[end..]) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        end += n;
        // Walk over the complete frames.
        let mut p = start;
        let mut need = 0;
        while end - p >= 4 {
            let len = u32::from_be_bytes([buf[p], buf[p + 1], buf[p + 2], buf[p + 3]]) as usize;
            if len > MAX_FRAME {
                bail!("frame of {len} bytes exceeds {MAX_FRAME}");
            }
            if end - p < 4 + len {
                need = 4 + len;
                break;
            }
            p += 4 + len;
        }
        if p > start {
            stream.write_all(&buf[start..p])?;
            start = p;
        }
        if start == end {
            (start, end) = (0, 0);
        } else if buf.len() - start < need.max(4) || end == buf.len() {
            // Make room for the rest of the incomplete frame.
            buf.copy_within(start..end, 0);
            (start, end) = (0, end - start);
            if buf.len() < need {
                buf.resize(need, 0);
            }
        }
    }
}

/// The contract's payload: sequence number, then `(i*7 + 3) & 0xFF`.
fn frame_bytes(size: usize, seq: u64) -> Vec<u8> {
    let mut f = Vec::with_capacity(4 + size);
    f.extend_from_slice(&(size as u32).to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend((8..size).map(|i| ((i * 7 + 3) & 0xFF) as u8));
    f
}

/// Runs one measurement of `echo-demo bench client` and prints its line.
pub fn client(args: &BenchClientArgs) -> Result<()> {
    let max = Duration::from_secs_f64(args.max_seconds);
    // A hard stop even if a read blocks forever (the contract's deadline).
    thread::spawn(move || {
        thread::sleep(max + Duration::from_secs(5));
        log("--max-seconds exceeded: aborting");
        std::process::exit(3)
    });
    let stream = args.addr.connect()?; // TCP_NODELAY is set by ipc-proto
    let deadline = Instant::now() + max;
    let size = args.size as usize;
    let (seconds, mut lat) = match args.mode {
        BenchMode::Rtt => rtt(stream, size, args.count, args.warmup, deadline)?,
        BenchMode::Pipelined => pipelined(stream, size, args.count, deadline)?,
    };
    let batch = match args.mode {
        BenchMode::Rtt => 1,
        BenchMode::Pipelined => pipeline_batch(size),
    };
    lat.sort_unstable();
    // Nearest rank: sorted[ceil(q * n) - 1].
    let pct = |q: f64| -> f64 {
        let k = ((q * lat.len() as f64).ceil() as usize).clamp(1, lat.len().max(1)) - 1;
        lat.get(k).map_or(0.0, |&ns| ns as f64 / 1000.0)
    };
    let msgs_per_s = args.count as f64 / seconds;
    let line = serde_json::json!({
        "peer": args.peer,
        "transport": match args.addr { Endpoint::Tcp { .. } => "tcp", Endpoint::Unix(_) => "unix" },
        "msg_bytes": args.size,
        "mode": match args.mode { BenchMode::Rtt => "rtt", BenchMode::Pipelined => "pipelined" },
        "count": args.count,
        "seconds": seconds,
        "msgs_per_s": round(msgs_per_s, 1),
        "p50_us": round(pct(0.50), 2),
        "p99_us": round(pct(0.99), 2),
        "mb_per_s": round(msgs_per_s * f64::from(args.size) / 1e6, 2),
        "batch_msgs": batch,
    });
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    Ok(())
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// rtt: send one frame, read its whole echo, repeat.
fn rtt(
    mut stream: Stream,
    size: usize,
    count: u64,
    warmup: u64,
    deadline: Instant,
) -> Result<(f64, Vec<u64>)> {
    let frame = frame_bytes(size, 0);
    let mut echo = vec![0u8; frame.len()];
    for _ in 0..warmup {
        stream.write_all(&frame)?;
        stream.read_exact(&mut echo).context("reading an echo")?;
    }
    let mut lat_ns = Vec::with_capacity(count as usize);
    let start = Instant::now();
    for _ in 0..count {
        let t0 = Instant::now();
        stream.write_all(&frame)?;
        stream.read_exact(&mut echo).context("reading an echo")?;
        let t1 = Instant::now();
        lat_ns.push((t1 - t0).as_nanos() as u64);
        if echo != frame {
            bail!("echo mismatch");
        }
        if t1 > deadline {
            bail!("--max-seconds exceeded");
        }
    }
    Ok((start.elapsed().as_secs_f64(), lat_ns))
}

/// pipelined: a sender thread writes `count` frames in batches while this
/// thread reads the echoes and checks their order.
/// Frames per write of the pipelined sender.
fn pipeline_batch(size: usize) -> usize {
    (BATCH_BYTES / (4 + size)).max(1)
}

fn pipelined(
    stream: Stream,
    size: usize,
    count: u64,
    deadline: Instant,
) -> Result<(f64, Vec<u64>)> {
    use ipc_proto::Transport;
    let frame_len = 4 + size;
    let batch = pipeline_batch(size);
    let base = Instant::now();
    // Send time of each message, in ns since `base`, written by the sender
    // before the write and read by the receiver after the echo arrived.
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..count).map(|_| AtomicU64::new(0)).collect());
    let mut writer = stream.try_clone()?;
    let mut reader = stream;
    let start = Instant::now();
    let sender = {
        let sent = sent.clone();
        thread::spawn(move || -> io::Result<()> {
            let template = frame_bytes(size, 0);
            let mut out = Vec::with_capacity(batch * frame_len);
            let mut seq = 0u64;
            while seq < count {
                let n = (count - seq).min(batch as u64);
                out.clear();
                let now = base.elapsed().as_nanos() as u64;
                for s in seq..seq + n {
                    let at = out.len();
                    out.extend_from_slice(&template);
                    out[at + 4..at + 12].copy_from_slice(&s.to_be_bytes());
                    sent[s as usize].store(now, Ordering::Release);
                }
                writer.write_all(&out)?;
                seq += n;
            }
            Ok(())
        })
    };
    let mut lat_ns = Vec::with_capacity(count as usize);
    let mut buf = vec![0u8; (1 << 20).max(2 * frame_len)];
    let (mut start_at, mut end) = (0usize, 0usize);
    let mut expected = 0u64;
    while expected < count {
        if buf.len() - end < frame_len {
            buf.copy_within(start_at..end, 0);
            (start_at, end) = (0, end - start_at);
        }
        let n = match reader.read(&mut buf[end..]) {
            Ok(0) => bail!("server closed after {expected} of {count} echoes"),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading echoes"),
        };
        end += n;
        let now = base.elapsed().as_nanos() as u64;
        while end - start_at >= frame_len {
            let f = &buf[start_at..start_at + frame_len];
            let len = u32::from_be_bytes([f[0], f[1], f[2], f[3]]) as usize;
            let seq = u64::from_be_bytes([f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11]]);
            if len != size || seq != expected {
                bail!("out-of-order or malformed echo: expected #{expected} of {size} bytes, got #{seq} of {len}");
            }
            lat_ns.push(now.saturating_sub(sent[seq as usize].load(Ordering::Acquire)));
            expected += 1;
            start_at += frame_len;
        }
        if start_at == end {
            (start_at, end) = (0, 0);
        }
        if Instant::now() > deadline {
            bail!("--max-seconds exceeded");
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    match sender.join() {
        Ok(r) => r.context("sending")?,
        Err(_) => bail!("the sender thread panicked"),
    }
    Ok((seconds, lat_ns))
}

// The benchmark's diagnostics go to stderr; stdout carries only READY / JSON.
#[allow(clippy::print_stderr)]
fn log(msg: &str) {
    eprintln!("echo-demo bench: {msg}");
}
