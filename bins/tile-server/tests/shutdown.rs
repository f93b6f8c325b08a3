//! Shutdown of the real binary under load: SIGTERM with a queue of more
//! than 300,000 tiles answers every tile and every request before the
//! process exits, then says `Goodbye`; a deleted Unix socket file does not
//! make it hang; a second signal exits at once.

use std::collections::{HashMap, HashSet};
use std::net::Shutdown;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipc_proto::{
    Connection, Delivery, Endpoint, Hello, Message, Priority, RejectReason, RenderRequest, Stream,
    TileSet, Transport,
};
use tile_math::TileCoord;

use crate::support::{spawn_binary, write_small_style};

/// The server binary on `listen`, with its framed endpoint.
fn spawn_server(dir: &std::path::Path, listen: &str, extra: &[&str]) -> (Child, Endpoint) {
    let style = write_small_style(dir);
    let mut args = vec![
        "--style".to_owned(),
        style.display().to_string(),
        "--tile-dir".to_owned(),
        dir.join("tiles").display().to_string(),
        "--listen".to_owned(),
        listen.to_owned(),
        "--threads".to_owned(),
        "2".to_owned(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let (child, endpoint) = spawn_binary(args);
    (child, endpoint)
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the process to exit; a hang fails the test instead of
/// blocking it for ever.
fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let until = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("the server did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn client(endpoint: &Endpoint, name: &str) -> Connection<Stream> {
    let mut conn = Connection::new(endpoint.connect().unwrap());
    conn.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    conn.client_handshake(
        None,
        &Hello {
            versions: vec![1],
            client_name: name.into(),
            capabilities: ipc_proto::Capabilities::NONE,
        },
    )
    .unwrap();
    conn
}

fn request(id: u64, priority: Priority, tiles: Vec<TileCoord>) -> Message {
    Message::RenderRequest(RenderRequest {
        request_id: id,
        map: String::new(),
        priority,
        delivery: Delivery::StorePath,
        force: false,
        deadline_ms: None,
        tiles: TileSet::List(tiles),
    })
}

/// What one client heard, per request.
#[derive(Default, Debug)]
struct Heard {
    /// Final answers per tile, per request.
    tiles: HashMap<u64, Vec<TileCoord>>,
    /// `BatchDone` (done + failed + cancelled) or `Rejected` per request.
    ends: HashMap<u64, Vec<Ending>>,
    shutting_down_rejections: usize,
    goodbye: Option<String>,
    /// An answer arrived after the request's end, or after Goodbye.
    out_of_order: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ending {
    Batch(u64),
    Rejected,
}

/// Reads until EOF, recording every answer.
fn listen(mut reader: ipc_proto::ConnectionReader<Stream>) -> Heard {
    let mut heard = Heard::default();
    loop {
        let message = match reader.read_message() {
            Ok(Some(m)) => m,
            Ok(None) => return heard,
            Err(e) => panic!("read failed: {e}"),
        };
        if heard.goodbye.is_some() {
            heard
                .out_of_order
                .push(format!("after Goodbye: {}", message.name()));
        }
        let tile_answer = |id: u64, tile: TileCoord, heard: &mut Heard| {
            if heard.ends.contains_key(&id) {
                heard
                    .out_of_order
                    .push(format!("tile {tile} of request {id} after its end"));
            }
            heard.tiles.entry(id).or_default().push(tile);
        };
        match message {
            Message::TileDone(d) => tile_answer(d.request_id, d.tile, &mut heard),
            Message::TileFailed(f) => tile_answer(f.request_id, f.tile, &mut heard),
            Message::Cancelled { request_id, tile } => tile_answer(request_id, tile, &mut heard),
            Message::BatchDone(b) => {
                let total = u64::from(b.done) + u64::from(b.failed) + u64::from(b.cancelled);
                heard
                    .ends
                    .entry(b.request_id)
                    .or_default()
                    .push(Ending::Batch(total));
            }
            Message::Rejected(r) => {
                if r.reason == RejectReason::ShuttingDown {
                    heard.shutting_down_rejections += 1;
                }
                heard
                    .ends
                    .entry(r.request_id)
                    .or_default()
                    .push(Ending::Rejected);
            }
            Message::Goodbye { reason } => heard.goodbye = Some(reason),
            other => heard
                .out_of_order
                .push(format!("unexpected {}", other.name())),
        }
    }
}

/// A tiny deterministic generator for the random parts.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

const CLIENTS: usize = 100;
const TILES_PER_CLIENT: u32 = 8_000;

#[test]
fn sigterm_with_300k_queued_answers_every_tile_and_request_of_100_churning_clients() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, endpoint) = spawn_server(dir.path(), "tcp:127.0.0.1:0", &[]);
    // Every client has sent its request: the disconnects may begin.
    let ready = Arc::new(AtomicUsize::new(0));
    let go = Arc::new(AtomicBool::new(false));
    let stop_spamming = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for i in 0..CLIENTS {
        let (endpoint, ready, go, stop_spamming) = (
            endpoint.clone(),
            Arc::clone(&ready),
            Arc::clone(&go),
            Arc::clone(&stop_spamming),
        );
        let wait_go = move || {
            ready.fetch_add(1, Ordering::SeqCst);
            while !go.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        threads.push(std::thread::spawn(move || {
            let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (i as u64 + 1);
            let conn = client(&endpoint, &format!("churn-{i}"));
            let (reader, mut writer) = conn.split().unwrap();
            // Distinct tiles per client at z16, far from the style's data:
            // cheap to render, so the queue is what is tested.
            let x0 = i as u32 * 200;
            let tiles: Vec<TileCoord> = (0..TILES_PER_CLIENT)
                .map(|k| TileCoord::new(16, x0 + k % 200, k / 200).unwrap())
                .collect();
            let mut sent: HashMap<u64, HashSet<TileCoord>> = HashMap::new();
            sent.insert(1, tiles.iter().copied().collect());
            writer.send(&request(1, Priority::Bulk, tiles)).unwrap();
            let leaves = i % 3 == 0;
            if leaves {
                // A third vanish at a random moment, without a word.
                wait_go();
                std::thread::sleep(Duration::from_millis(next_random(&mut rng) % 300));
                drop(writer);
                drop(reader);
                return None;
            }
            let listener = std::thread::spawn(move || listen(reader));
            wait_go();
            // One client in ten keeps sending one-tile requests through the
            // shutdown, as a busy desktop client would.
            if i % 10 == 1 {
                let mut id = 2;
                while !stop_spamming.load(Ordering::SeqCst) {
                    let tile = TileCoord::new(16, x0 + (id as u32 % 200), 5_000).unwrap();
                    if writer
                        .send(&request(id, Priority::Explicit, vec![tile]))
                        .is_err()
                    {
                        break;
                    }
                    sent.insert(id, HashSet::from([tile]));
                    id += 1;
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            let heard = listener.join().unwrap();
            let _ = writer.shutdown_write();
            Some((i, sent, heard))
        }));
    }
    let until = Instant::now() + Duration::from_secs(120);
    while ready.load(Ordering::SeqCst) < CLIENTS {
        assert!(
            Instant::now() < until,
            "clients did not all connect and send"
        );
        assert!(
            threads.iter().all(|t| !t.is_finished()),
            "a client thread failed before sending its request"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    go.store(true, Ordering::SeqCst);
    // SIGTERM once the queue holds more than 300,000 tiles.
    let mut monitor = client(&endpoint, "monitor");
    let queued = loop {
        monitor.send(&Message::StatsRequest).unwrap();
        let Some(Message::StatsReply { entries }) = monitor.read_message().unwrap() else {
            panic!("no stats")
        };
        let queued = entries
            .iter()
            .find(|(k, _)| k == "queued_tiles")
            .map(|(_, v)| *v)
            .unwrap();
        if queued > 300_000 {
            break queued;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    signal(&child, "TERM");
    std::thread::sleep(Duration::from_millis(300));
    stop_spamming.store(true, Ordering::SeqCst);
    let mut staying = 0;
    let (mut tiles_answered, mut requests_ended, mut rejected_shutting_down) = (0, 0, 0);
    let mut unanswered_late = 0;
    for thread in threads {
        let Some((i, sent, heard)) = thread.join().unwrap() else {
            continue;
        };
        staying += 1;
        assert!(
            heard.out_of_order.is_empty(),
            "client {i}: {:?}",
            heard.out_of_order
        );
        assert_eq!(
            heard.goodbye.as_deref(),
            Some("the server is shutting down"),
            "client {i}"
        );
        rejected_shutting_down += heard.shutting_down_rejections;
        let mut ids: Vec<u64> = sent.keys().copied().collect();
        ids.sort_unstable();
        let mut answered_all_before = true;
        for id in ids {
            let ends = heard.ends.get(&id);
            let Some(ends) = ends else {
                // Only requests sent after the server stopped reading
                // (it said Goodbye) may go unheard, and only after every
                // request that was heard.
                answered_all_before = false;
                unanswered_late += 1;
                assert!(!heard.tiles.contains_key(&id), "client {i} request {id}");
                continue;
            };
            assert!(
                answered_all_before,
                "client {i}: request {id} answered after an unheard one"
            );
            assert_eq!(ends.len(), 1, "client {i} request {id}: {ends:?}");
            let answered = heard.tiles.get(&id).cloned().unwrap_or_default();
            match ends[0] {
                Ending::Rejected => assert!(answered.is_empty(), "client {i} request {id}"),
                Ending::Batch(total) => {
                    let distinct: HashSet<TileCoord> = answered.iter().copied().collect();
                    assert_eq!(distinct.len(), answered.len(), "a tile answered twice");
                    assert_eq!(distinct, sent[&id], "client {i} request {id}");
                    assert_eq!(total, answered.len() as u64);
                    tiles_answered += answered.len();
                }
            }
            requests_ended += 1;
        }
    }
    let status = wait_exit(&mut child, Duration::from_secs(120));
    println!(
        "queued at SIGTERM: {queued}; clients staying: {staying}/{CLIENTS}; tiles answered: \
         {tiles_answered}; requests ended: {requests_ended}; rejected ShuttingDown: \
         {rejected_shutting_down}; sent after Goodbye, unheard: {unanswered_late}"
    );
    assert!(status.success(), "exit status {status}");
    assert_eq!(staying, CLIENTS - CLIENTS.div_ceil(3));
    assert!(tiles_answered >= staying * TILES_PER_CLIENT as usize);
    assert!(
        rejected_shutting_down > 0,
        "no request arriving during shutdown was rejected ShuttingDown"
    );
}

#[test]
fn sigterm_exits_even_when_the_unix_socket_file_was_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("s.sock");
    let (mut child, endpoint) =
        spawn_server(dir.path(), &format!("unix:{}", socket.display()), &[]);
    // A connected client, to see the Goodbye.
    let mut conn = client(&endpoint, "deleted socket");
    std::fs::remove_file(&socket).unwrap();
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(30));
    assert!(status.success(), "exit status {status}");
    assert_eq!(
        conn.read_message().unwrap(),
        Some(Message::Goodbye {
            reason: "the server is shutting down".into()
        })
    );
    assert!(!socket.exists(), "nobody recreated the socket file");
}

#[test]
fn a_second_signal_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, endpoint) = spawn_server(dir.path(), "tcp:127.0.0.1:0", &[]);
    // A client that asks for the whole world to z9 (349,525 tiles) and
    // never reads: their ~8 MB of answers do not fit the socket buffers,
    // so graceful shutdown waits the write timeout (30 s) for it.
    let mut conn = client(&endpoint, "never reads");
    conn.send(&Message::RenderRequest(RenderRequest {
        request_id: 1,
        map: String::new(),
        priority: Priority::Bulk,
        delivery: Delivery::StorePath,
        force: false,
        deadline_ms: None,
        tiles: TileSet::Bbox {
            bbox: tile_math::LngLatBbox::new(-180.0, -85.0, 180.0, 85.0),
            min_zoom: 0,
            max_zoom: 9,
        },
    }))
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, "TERM");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first signal should wait for the client"
    );
    let asked = Instant::now();
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(20));
    assert_eq!(status.code(), Some(128 + 15), "exit status {status}");
    assert!(asked.elapsed() < Duration::from_secs(20));
    let _ = conn.get_ref().shutdown(Shutdown::Both);
}
