//! Clients that hold resources without using them: 300 connections that
//! trickle their handshake a byte a second while a real client renders,
//! and a client that asks for a lot and never reads, whose cost to the
//! server stays bounded until it is dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipc_proto::{Delivery, Message, Priority, RenderRequest, TileSet};
use tile_client::{Event, RequestOptions, TileClient};
use tile_math::LngLatBbox;

use crate::support::{spawn_binary, start, t, write_small_style};

const SLOW_CONNECTIONS: usize = 300;

#[test]
fn three_hundred_connections_at_one_byte_a_second_do_not_lock_out_a_real_client() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    // The defaults: 64 connections in their handshake, 10 s to finish it,
    // and room for 256 sessions.
    let server = start(dir.path(), &style, |_| {});
    let addr = server.endpoints()[0].to_string();
    let addr = addr.trim_start_matches("tcp:").to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let closed_by_server = Arc::new(AtomicUsize::new(0));
    let mut slow = Vec::new();
    for _ in 0..SLOW_CONNECTIONS {
        let (addr, stop, closed) = (
            addr.clone(),
            Arc::clone(&stop),
            Arc::clone(&closed_by_server),
        );
        slow.push(std::thread::spawn(move || {
            let mut stream = TcpStream::connect(&addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_millis(1000)))
                .unwrap();
            // A Hello that never ends: one byte a second.
            let mut sink = [0u8; 256];
            while !stop.load(Ordering::SeqCst) {
                if stream.write_all(&[0]).is_err() {
                    closed.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                // Reading doubles as the one-second pause; EOF or a reset
                // means the server closed us.
                match stream.read(&mut sink) {
                    Ok(0) => {
                        closed.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        closed.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
            }
        }));
    }
    // Let them all connect and start trickling.
    std::thread::sleep(Duration::from_secs(2));
    let mut client = TileClient::connect(&server.endpoints()[0], None, "real").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let tiles = vec![t(5, 17, 9), t(5, 18, 9), t(4, 8, 4)];
    let id = client
        .request_tiles(tiles.clone(), &RequestOptions::default())
        .unwrap();
    let mut done = 0;
    loop {
        match client.next_event().unwrap().expect("closed") {
            Event::Done(d) => {
                assert_eq!(d.request_id, id);
                done += 1;
            }
            Event::BatchDone(b) => {
                assert_eq!((b.done, b.failed, b.cancelled), (3, 0, 0));
                break;
            }
            other => panic!("the real client got {other:?}"),
        }
    }
    assert_eq!(done, tiles.len());
    // Every slow connection is closed by the handshake deadline (10 s) at
    // the latest; wait a little past it.
    let until = Instant::now() + Duration::from_secs(15);
    while closed_by_server.load(Ordering::SeqCst) < SLOW_CONNECTIONS && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::SeqCst);
    for thread in slow {
        thread.join().unwrap();
    }
    let closed = closed_by_server.load(Ordering::SeqCst);
    let stats = server.handle().stats().unwrap();
    println!(
        "slow connections closed by the server: {closed}/{SLOW_CONNECTIONS}; evicted to make \
         room: {:?}",
        stats.get("handshakes_evicted")
    );
    assert_eq!(closed, SLOW_CONNECTIONS, "slow connections still open");
    assert!(stats.get("handshakes_evicted").unwrap() > 0);
    server.shutdown();
}

/// The server's resident memory in KiB, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn stat(client: &mut TileClient, key: &str) -> u64 {
    client
        .stats()
        .unwrap()
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| *v)
        .unwrap()
}

/// What the never-reading client may cost the server beyond its memory
/// after a warm-up render: the answers queued for it are bounded at 256 KiB
/// here (`max_queued_bytes_per_client`), the writer's buffer at 256 KiB
/// plus one frame, the socket buffers by the kernel (a few MiB). Before the
/// bound, 87,000 inline tiles pinned ~105 MB.
const RSS_GROWTH_BOUND_MIB: u64 = 24;

#[test]
fn a_client_that_never_reads_is_paused_then_dropped_and_server_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = [\"tcp:127.0.0.1:0\", \"unix:{}\"]\nwrite_timeout_ms = 8000\nmax_queued_bytes_per_client = 262144\n\
             [render]\nthreads = 2\nformat = \"png\"\n[store]\ndir = \"{}\"\n\
             [[map]]\nname = \"test\"\nstyle = \"{}\"\n",
            dir.path().join("greedy.sock").display(),
            dir.path().join("tiles").display(),
            style.display()
        ),
    )
    .unwrap();
    let (mut child, endpoint) =
        spawn_binary([std::ffi::OsStr::new("--config"), config.as_os_str()]);
    let mut monitor = TileClient::connect(&endpoint, None, "monitor").unwrap();
    monitor
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // Warm both workers first (each keeps a metatile-sized canvas), so
    // that what is measured is the client's cost, not the first render's.
    let warm: Vec<_> = (0..6).map(|i| t(12, 2300 + i * 8, 1180)).collect();
    let options = RequestOptions {
        force: true,
        ..RequestOptions::default()
    };
    let id = monitor.request_tiles(warm, &options).unwrap();
    loop {
        let event = monitor.next_event().unwrap().expect("closed");
        if event.ends_request() && event.request_id() == id {
            break;
        }
    }
    let at_rest = rss_kib(child.id());

    // Every tile of the style's square over Finland from z6 to z12, inline
    // PNGs (32-bit, so each answer carries real bytes), never read.
    // Over the Unix socket, whose buffers do not grow the way TCP's
    // autotuning does: the backlog builds up after a few hundred tiles, so
    // the test does not depend on how fast this machine renders.
    let unix: ipc_proto::Endpoint = format!("unix:{}", dir.path().join("greedy.sock").display())
        .parse()
        .unwrap();
    let mut greedy = ipc_proto::Connection::new(unix.connect().unwrap());
    greedy
        .client_handshake(
            None,
            &ipc_proto::Hello {
                versions: vec![1],
                client_name: "never reads".into(),
                capabilities: ipc_proto::Capabilities::NONE,
            },
        )
        .unwrap();
    greedy
        .send(&Message::RenderRequest(RenderRequest {
            request_id: 1,
            map: String::new(),
            priority: Priority::Explicit,
            delivery: Delivery::InlinePng,
            force: true,
            deadline_ms: None,
            tiles: TileSet::Bbox {
                bbox: LngLatBbox::new(15.0, 50.0, 35.0, 70.0),
                min_zoom: 6,
                max_zoom: 12,
            },
        }))
        .unwrap();

    // The server pauses its work once its answers back up...
    let until = Instant::now() + Duration::from_secs(120);
    while stat(&mut monitor, "paused_clients") == 0 {
        assert!(Instant::now() < until, "the client was never paused");
        std::thread::sleep(Duration::from_millis(100));
    }
    let rendered_at_pause = stat(&mut monitor, "tiles_rendered");
    // ...and drops the client after the write timeout. Memory is sampled
    // all along.
    let mut peak = rss_kib(child.id());
    let until = Instant::now() + Duration::from_secs(60);
    while stat(&mut monitor, "clients_dropped_not_reading") == 0 {
        assert!(Instant::now() < until, "the client was never dropped");
        peak = peak.max(rss_kib(child.id()));
        std::thread::sleep(Duration::from_millis(100));
    }
    let rendered_at_drop = stat(&mut monitor, "tiles_rendered");
    let queued_after = stat(&mut monitor, "queued_tiles");
    let growth_mib = peak.saturating_sub(at_rest) / 1024;
    println!(
        "server RSS at rest {} MiB, peak {} MiB (+{growth_mib} MiB, bound \
         {RSS_GROWTH_BOUND_MIB} MiB); tiles rendered at pause {rendered_at_pause}, at drop \
         {rendered_at_drop}",
        at_rest / 1024,
        peak / 1024
    );
    assert!(growth_mib < RSS_GROWTH_BOUND_MIB);
    // While paused, at most the metatiles already running were finished
    // (2 workers x 64 tiles, and a round of the other worker's).
    assert!(rendered_at_drop - rendered_at_pause <= 4 * 64);
    // The dropped client's queue is gone.
    assert_eq!(queued_after, 0);
    assert_eq!(stat(&mut monitor, "paused_clients"), 0);
    drop(greedy);
    let _ = child.kill();
    let _ = child.wait();
}
