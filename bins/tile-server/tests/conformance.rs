//! The server against `docs/protocol.md` §7, driven with raw bytes: every
//! error class gets exactly the `Goodbye { reason }` the table there lists,
//! and then the connection closes. Expected reasons are written out as
//! text where the spec gives them literally, and otherwise taken from
//! decoding the same bytes with ipc-proto, so the server is held to the
//! codec's own words.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use ipc_proto::{Connection, Message, DEFAULT_MAX_FRAME};
use tile_math::LngLatBbox;

use crate::support::{start, write_small_style};

/// A connection that has done the handshake by hand (no secret).
fn handshaken(addr: &str) -> Connection<TcpStream> {
    let mut conn = raw(addr);
    assert_eq!(conn.read_message().unwrap(), Some(Message::AuthNone));
    send_raw(&mut conn, &hello_bytes());
    let Some(Message::Welcome(welcome)) = conn.read_message().unwrap() else {
        panic!("no Welcome")
    };
    assert_eq!(welcome.max_frame as usize, DEFAULT_MAX_FRAME);
    conn
}

fn raw(addr: &str) -> Connection<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    Connection::new(stream)
}

fn hello_bytes() -> Vec<u8> {
    Message::Hello(ipc_proto::Hello {
        versions: vec![1],
        client_name: "conformance".into(),
        capabilities: ipc_proto::Capabilities::NONE,
    })
    .to_bytes()
    .unwrap()
}

fn send_raw(conn: &mut Connection<TcpStream>, bytes: &[u8]) {
    conn.get_mut().write_all(bytes).unwrap();
}

/// A frame with any length, version, kind and payload.
fn frame(length: u32, version: u8, kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = length.to_be_bytes().to_vec();
    out.push(version);
    out.push(kind);
    out.extend_from_slice(payload);
    out
}

/// Reads until the server's `Goodbye` (skipping answers to earlier valid
/// requests), returns its reason, and checks that the server then closes.
fn goodbye_then_close(conn: &mut Connection<TcpStream>) -> String {
    loop {
        match conn.read_message() {
            Ok(Some(Message::Goodbye { reason })) => {
                // Nothing follows a Goodbye: the next read is EOF.
                assert!(
                    matches!(conn.read_message(), Ok(None)),
                    "the server sent more after Goodbye or reset the connection"
                );
                return reason;
            }
            Ok(Some(_answer)) => {}
            other => panic!("expected Goodbye, got {other:?}"),
        }
    }
}

/// What ipc-proto says of these bytes (they must not decode).
fn codec_error(bytes: &[u8]) -> String {
    Message::from_bytes(bytes, DEFAULT_MAX_FRAME)
        .expect_err("the test's bytes were meant to be invalid")
        .to_string()
}

/// A valid RenderRequest for one tile, as bytes, with `edit` applied to
/// its encoding (so a single field can be broken).
fn render_request_bytes(request_id: u64) -> Vec<u8> {
    Message::RenderRequest(ipc_proto::RenderRequest {
        request_id,
        map: String::new(),
        priority: ipc_proto::Priority::Explicit,
        delivery: ipc_proto::Delivery::StorePath,
        force: false,
        deadline_ms: None,
        tiles: ipc_proto::TileSet::One(tile_math::TileCoord::new(1, 0, 0).unwrap()),
    })
    .to_bytes()
    .unwrap()
}

// Offsets in the frame above: 4 length, 1 version, 1 kind, 8 request_id,
// 2+0 map, then priority, delivery, force, deadline tag, tiles tag, tile.
const PRIORITY_AT: usize = 16;
const FORCE_AT: usize = 18;
const TILE_X_AT: usize = 22;

#[test]
fn every_error_class_of_section_7_gets_its_exact_goodbye() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let server = start(dir.path(), &style, |_| {});
    let addr = server.endpoints()[0].to_string();
    let addr = addr.trim_start_matches("tcp:").to_owned();

    let mut cases: Vec<(&str, Vec<u8>, String)> = Vec::new();
    let too_long = frame(DEFAULT_MAX_FRAME as u32 + 1, 1, 0x04, &[]);
    cases.push((
        "frame above max_frame",
        too_long,
        format!(
            "frame of {} bytes exceeds the maximum frame size of {DEFAULT_MAX_FRAME} bytes",
            DEFAULT_MAX_FRAME + 1
        ),
    ));
    cases.push((
        "length below 2",
        frame(1, 1, 0x04, &[]),
        "frame length 1 is too short: every frame holds at least a version and a kind byte".into(),
    ));
    cases.push((
        "frame version 2",
        frame(10, 2, 0x04, &[0; 8]),
        "unsupported frame version 2 (this implementation speaks version 1)".into(),
    ));
    cases.push((
        "unknown kind",
        frame(2, 1, 0x7f, &[]),
        "unknown message kind 127 (0x7f)".into(),
    ));
    let mut ping_plus_one = Message::Ping { token: 1 }.to_bytes().unwrap();
    ping_plus_one[3] += 1;
    ping_plus_one.push(0);
    cases.push((
        "trailing bytes",
        ping_plus_one.clone(),
        "Ping message has 1 unexpected trailing bytes".into(),
    ));
    let mut bad_tile = render_request_bytes(1);
    bad_tile[TILE_X_AT..TILE_X_AT + 4].copy_from_slice(&2u32.to_be_bytes());
    cases.push((
        "tile out of range",
        bad_tile.clone(),
        codec_error(&bad_tile),
    ));
    let mut bool_two = render_request_bytes(1);
    bool_two[FORCE_AT] = 2;
    cases.push(("bool = 2", bool_two.clone(), codec_error(&bool_two)));
    let mut bad_priority = render_request_bytes(1);
    bad_priority[PRIORITY_AT] = 9;
    cases.push((
        "unknown priority",
        bad_priority.clone(),
        "malformed RenderRequest message, field `priority`: unknown priority 9".into(),
    ));
    // A bbox whose south is above its north, written field by field (the
    // encoder would never make one).
    let mut inverted = Vec::new();
    inverted.extend_from_slice(&1u64.to_be_bytes());
    inverted.extend_from_slice(&[0, 0, 2, 0, 0, 0, 2]);
    for v in [20.0f64, 65.0, 30.0, 55.0] {
        inverted.extend_from_slice(&v.to_bits().to_be_bytes());
    }
    inverted.extend_from_slice(&[0, 5]);
    let inverted = frame(2 + inverted.len() as u32, 1, 0x10, &inverted);
    cases.push(("inverted bbox", inverted.clone(), codec_error(&inverted)));
    // Well formed, but a zero-height box on a tile boundary covers no tile.
    let flat = ipc_proto::ViewportUpdate {
        zoom: 1,
        area: ipc_proto::ViewArea::Bbox(LngLatBbox::new(10.0, 0.0, 11.0, 0.0)),
    };
    let flat_error = flat
        .to_viewport()
        .expect_err("the test's viewport was meant to cover no tile")
        .to_string();
    cases.push((
        "inconsistent Viewport",
        Message::Viewport(flat).to_bytes().unwrap(),
        flat_error,
    ));
    cases.push((
        "a server-only message",
        Message::BatchDone(ipc_proto::BatchDone {
            request_id: 1,
            done: 0,
            failed: 0,
            cancelled: 0,
        })
        .to_bytes()
        .unwrap(),
        "protocol violation: BatchDone is not a client request".into(),
    ));

    for (name, bytes, expected) in &cases {
        let mut conn = handshaken(&addr);
        send_raw(&mut conn, bytes);
        let reason = goodbye_then_close(&mut conn);
        assert_eq!(&reason, expected, "case: {name}");
    }
    println!("{} error classes answered exactly", cases.len());
    assert!(cases.iter().all(|(_, _, e)| !e.is_empty()));
    server.shutdown();
}

#[test]
fn a_request_id_still_open_is_a_protocol_error_and_never_a_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    // One thread and a big first request keep request 7 open.
    let server = start(dir.path(), &style, |c| c.render.threads = 1);
    let addr = server.endpoints()[0].to_string();
    let addr = addr.trim_start_matches("tcp:").to_owned();
    let mut conn = handshaken(&addr);
    let big = Message::RenderRequest(ipc_proto::RenderRequest {
        request_id: 7,
        map: String::new(),
        priority: ipc_proto::Priority::Bulk,
        delivery: ipc_proto::Delivery::StorePath,
        force: true,
        deadline_ms: None,
        tiles: ipc_proto::TileSet::Bbox {
            bbox: LngLatBbox::new(-180.0, -85.0, 180.0, 85.0),
            min_zoom: 0,
            max_zoom: 8,
        },
    });
    conn.queue(&big).unwrap();
    conn.queue(&Message::Ping { token: 1 }).unwrap();
    conn.flush().unwrap();
    // The Pong proves the first request was read and accepted.
    loop {
        match conn.read_message().unwrap() {
            Some(Message::Pong { token: 1 }) => break,
            Some(Message::Rejected(r)) => panic!("first request rejected: {r:?}"),
            Some(_) => {}
            None => panic!("closed before Pong"),
        }
    }
    send_raw(&mut conn, &render_request_bytes(7));
    let mut rejected = 0;
    let reason = loop {
        match conn.read_message().unwrap() {
            Some(Message::Goodbye { reason }) => break reason,
            Some(Message::Rejected(_)) => rejected += 1,
            Some(_) => {}
            None => panic!("closed without Goodbye"),
        }
    };
    assert_eq!(rejected, 0, "a Rejected under an open id");
    assert_eq!(
        reason,
        "protocol violation: request id 7 is still open; ids must be unique among a \
         connection's open requests"
    );
    assert!(matches!(conn.read_message(), Ok(None)));
    server.shutdown();
}

#[test]
fn anything_but_hello_after_auth_gets_goodbye() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let server = start(dir.path(), &style, |_| {});
    let addr = server.endpoints()[0].to_string();
    let mut conn = raw(addr.trim_start_matches("tcp:"));
    assert_eq!(conn.read_message().unwrap(), Some(Message::AuthNone));
    send_raw(&mut conn, &Message::Ping { token: 3 }.to_bytes().unwrap());
    assert_eq!(goodbye_then_close(&mut conn), "expected Hello, got Ping");
    server.shutdown();
}

#[test]
fn the_handshake_and_idle_timeouts_say_goodbye() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let server = start(dir.path(), &style, |c| {
        c.server.handshake_timeout_ms = 500;
        c.server.idle_timeout_ms = 500;
    });
    let addr = server.endpoints()[0].to_string();
    let addr = addr.trim_start_matches("tcp:").to_owned();

    // Silent after connecting.
    let mut silent = raw(&addr);
    assert_eq!(silent.read_message().unwrap(), Some(Message::AuthNone));
    assert_eq!(
        goodbye_then_close(&mut silent),
        "the handshake did not finish within 500 ms"
    );

    // Half a Hello, a byte at a time, slower than the deadline allows in
    // total but faster than any per-read timeout would notice.
    let mut trickle = raw(&addr);
    assert_eq!(trickle.read_message().unwrap(), Some(Message::AuthNone));
    for byte in hello_bytes().iter().take(6) {
        send_raw(&mut trickle, &[*byte]);
        std::thread::sleep(Duration::from_millis(120));
    }
    assert_eq!(
        goodbye_then_close(&mut trickle),
        "the handshake did not finish within 500 ms"
    );

    // Idle after the handshake, a partial frame pending: closed.
    let mut idle = handshaken(&addr);
    send_raw(&mut idle, &[0, 0, 0]);
    assert_eq!(
        goodbye_then_close(&mut idle),
        "idle: no request for 0.5 s; send Ping to keep a connection open"
    );

    // Pings keep a connection open past the idle timeout.
    let mut pinging = handshaken(&addr);
    for token in 0..8 {
        send_raw(&mut pinging, &Message::Ping { token }.to_bytes().unwrap());
        assert_eq!(
            pinging.read_message().unwrap(),
            Some(Message::Pong { token })
        );
        std::thread::sleep(Duration::from_millis(150));
    }
    let stats = server.handle().stats().unwrap();
    assert_eq!(stats.get("idle_connections_closed"), Some(1));
    server.shutdown();
}
