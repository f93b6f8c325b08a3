//! The legacy protocol end to end, doing what the C# test program in
//! `../shared/seeds/000_*.txt` does: open a callback listener on port + 1,
//! send the tile lines and `stop`, close, then read each callback
//! connection to EOF until `done`.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use render_service::{Server, ServiceConfig};
use tile_client::{Event, RequestOptions, TileClient};

use crate::support::{config, render, t, write_small_style};

/// A server whose legacy port P has P + 1 free for our callback listener.
fn start_with_callback(dir: &std::path::Path) -> (Server, u16, TcpListener) {
    start_with_callback_and(dir, |_| {})
}

/// [`start_with_callback`] with more configuration.
fn start_with_callback_and(
    dir: &std::path::Path,
    edit: impl Fn(&mut ServiceConfig),
) -> (Server, u16, TcpListener) {
    let style = write_small_style(dir);
    for _ in 0..50 {
        // Ask the OS for a free port for the callback, then try to put the
        // legacy listener just below it.
        let callback = TcpListener::bind("127.0.0.1:0").unwrap();
        let callback_port = callback.local_addr().unwrap().port();
        let legacy_port = callback_port - 1;
        let cfg = config(dir, &style, |c| {
            c.server.listen = vec![];
            c.server.legacy_listen = Some(format!("tcp:127.0.0.1:{legacy_port}"));
            edit(c);
        });
        if let Ok(server) = Server::start(&cfg) {
            return (server, legacy_port, callback);
        }
    }
    panic!("no pair of free adjacent ports found");
}

/// Reads callback connections until `done`, each one to EOF, as the C#
/// listener thread does. Fails (instead of hanging) if `done` has not come
/// within 60 s.
fn callbacks_until_done(listener: &TcpListener) -> Vec<String> {
    let until = Instant::now() + Duration::from_secs(60);
    listener.set_nonblocking(true).unwrap();
    let mut messages = Vec::new();
    loop {
        let mut conn = loop {
            match listener.accept() {
                Ok((conn, _)) => break conn,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    assert!(
                        Instant::now() < until,
                        "no `done` within 60 s; got {messages:?}"
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut text = String::new();
        conn.read_to_string(&mut text).unwrap();
        let done = text == "done";
        messages.push(text);
        if done {
            return messages;
        }
    }
}

#[test]
fn the_csharp_client_gets_each_tile_then_done_through_the_callback() {
    let dir = tempfile::tempdir().unwrap();
    let (server, port, callback) = start_with_callback(dir.path());
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(b"5_17_9\n5_18_9\nstop\n").unwrap();
    // The C# program closes right after `stop`.
    drop(conn);
    let mut messages = callbacks_until_done(&callback);
    assert_eq!(messages.pop().as_deref(), Some("done"));
    messages.sort();
    assert_eq!(messages, ["5_17_9", "5_18_9"]);
    // The tiles are in the store.
    assert!(dir.path().join("tiles/test/5/17/9.png").is_file());
    server.shutdown();
}

#[test]
fn one_request_per_connection_without_a_newline_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let (server, port, callback) = start_with_callback(dir.path());
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(b"6_35_18").unwrap();
    drop(conn);
    assert_eq!(callbacks_until_done(&callback), ["6_35_18", "done"]);
    server.shutdown();
}

#[test]
fn bad_lines_are_skipped_and_the_rest_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let (server, port, callback) = start_with_callback(dir.path());
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let long = "9".repeat(500);
    conn.write_all(format!("garbage\n99_0_0\n{long}\n3_1_1\r\nstop\n").as_bytes())
        .unwrap();
    drop(conn);
    assert_eq!(callbacks_until_done(&callback), ["3_1_1", "done"]);
    server.shutdown();
}

#[test]
fn the_empty_line_variant_answers_on_the_same_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (server, port, _callback) = start_with_callback(dir.path());
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn.write_all(b"4_8_4\n4_9_4\n\n").unwrap();
    let mut reply = [0u8; 1];
    conn.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"\n");
    assert!(dir.path().join("tiles/test/4/8/4.png").is_file());
    assert!(dir.path().join("tiles/test/4/9/4.png").is_file());
    // A second batch on the same connection.
    conn.write_all(b"4_10_4\n\n").unwrap();
    conn.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"\n");
    server.shutdown();
}

#[test]
fn the_callback_echoes_each_tile_as_the_client_wrote_it() {
    let dir = tempfile::tempdir().unwrap();
    let (server, port, callback) = start_with_callback(dir.path());
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(b"01_0_0\n1_0_0\n005_017_009\r\n  6_035_18  \nstop\n")
        .unwrap();
    drop(conn);
    let mut messages = callbacks_until_done(&callback);
    assert_eq!(messages.pop().as_deref(), Some("done"));
    messages.sort();
    // Not `1_0_0` twice, `5_17_9`, `6_35_18`: the C# client matches
    // callbacks to its request text (spaces around it are not part of it).
    assert_eq!(messages, ["005_017_009", "01_0_0", "1_0_0", "6_035_18"]);
    assert!(dir.path().join("tiles/test/5/17/9.png").is_file());
    server.shutdown();
}

#[test]
fn every_batch_the_client_ends_gets_done_even_without_a_valid_line() {
    let dir = tempfile::tempdir().unwrap();
    let (server, port, callback) = start_with_callback(dir.path());
    // Ended by EOF: invalid lines only; an unterminated garbage line only.
    for batch in [&b"garbage\n99_0_0\n"[..], b"xyz"] {
        let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
        conn.write_all(batch).unwrap();
        drop(conn);
        assert_eq!(
            callbacks_until_done(&callback),
            ["done"],
            "{:?}",
            String::from_utf8_lossy(batch)
        );
    }
    // Ended by `stop`.
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(b"garbage\nstop\n").unwrap();
    assert_eq!(callbacks_until_done(&callback), ["done"]);
    drop(conn);
    // Ended by an empty line: the `\n` on the same connection.
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn.write_all(b"garbage\n99_0_0\n\n").unwrap();
    let mut reply = [0u8; 1];
    conn.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"\n");
    server.shutdown();
}

#[test]
fn a_64_byte_line_is_served_and_a_65_byte_one_is_not_even_if_trimmed_it_is_short() {
    let dir = tempfile::tempdir().unwrap();
    let (server, port, callback) = start_with_callback(dir.path());
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // 58 spaces + `5_17_9` = 64 bytes; 59 + `5_18_9` = 65 bytes.
    let ok = format!("{}5_17_9", " ".repeat(58));
    let long = format!("{}5_18_9", " ".repeat(59));
    assert_eq!((ok.len(), long.len()), (64, 65));
    conn.write_all(format!("{ok}\r\n{long}\nstop\n").as_bytes())
        .unwrap();
    drop(conn);
    assert_eq!(callbacks_until_done(&callback), ["5_17_9", "done"]);
    server.shutdown();
}

/// Waits for the server to close `conn`, sending `trickle` one byte every
/// `every` meanwhile (none when empty); returns how long it took, or
/// `None` if it had not closed after `give_up`.
fn closed_after(
    conn: &mut TcpStream,
    trickle: &[u8],
    every: Duration,
    give_up: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    conn.set_read_timeout(Some(every)).unwrap();
    let mut bytes = trickle.iter().cycle();
    let mut buf = [0u8; 64];
    while start.elapsed() < give_up {
        if !trickle.is_empty() {
            let byte = bytes.next().copied().unwrap_or(b'9');
            if conn.write_all(&[byte]).is_err() {
                return Some(start.elapsed());
            }
        }
        match conn.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(n) => panic!("the server wrote {:?}", &buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

#[test]
fn a_silent_legacy_connection_is_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (server, port, _callback) = start_with_callback_and(dir.path(), |c| {
        c.server.legacy_idle_timeout_ms = 400;
        c.server.legacy_batch_timeout_ms = 0;
    });
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let took = closed_after(
        &mut conn,
        b"",
        Duration::from_millis(50),
        Duration::from_secs(20),
    )
    .expect("a silent connection was not closed within 20 s");
    assert!(took >= Duration::from_millis(350), "closed after {took:?}");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    server.shutdown();
}

#[test]
fn a_trickling_legacy_connection_is_closed_at_the_batch_deadline_and_its_tiles_still_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (server, port, callback) = start_with_callback_and(dir.path(), |c| {
        c.server.legacy_idle_timeout_ms = 400;
        c.server.legacy_batch_timeout_ms = 1500;
    });
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // One byte every 100 ms, well inside the idle timeout: a request, then
    // a line that never ends (it grows past 64 bytes and is skipped).
    let mut trickle = b"5_17_9\n".to_vec();
    trickle.extend([b'9'; 10_000]);
    let took = closed_after(
        &mut conn,
        &trickle,
        Duration::from_millis(100),
        Duration::from_secs(20),
    )
    .expect("a trickling connection was not closed within 20 s");
    assert!(took >= Duration::from_millis(1400), "closed after {took:?}");
    assert!(took < Duration::from_secs(8), "closed after {took:?}");
    // The batch under way is ended as at EOF: its tile gets its callback,
    // then `done`; the unfinished line is no request.
    assert_eq!(callbacks_until_done(&callback), ["5_17_9", "done"]);
    server.shutdown();
}

#[test]
fn full_legacy_slots_do_not_lock_framed_clients_out() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let cfg = config(dir.path(), &style, |c| {
        c.server.legacy_listen = Some("tcp:127.0.0.1:0".into());
        c.server.max_connections = 2;
        c.server.legacy_max_connections = 3;
    });
    let server = Server::start(&cfg).unwrap();
    let ipc_proto::Endpoint::Tcp { port, .. } = server.legacy_endpoint().unwrap().clone() else {
        panic!("legacy endpoint is TCP")
    };
    // A legacy round trip of the empty-line variant on `conn`.
    let round_trip = |conn: &mut TcpStream| {
        conn.write_all(b"4_8_4\n\n").unwrap();
        let mut reply = [0u8; 1];
        conn.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"\n");
    };
    // Fill every legacy slot, more than the framed limit.
    let mut legacy: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            round_trip(&mut conn);
            conn
        })
        .collect();
    // One more legacy connection is closed at once.
    let mut extra = TcpStream::connect(("127.0.0.1", port)).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 1];
    match extra.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("a fourth legacy connection was not closed: {other:?}"),
    }
    // Every framed slot is still free: two framed clients connect and render.
    let mut framed: Vec<TileClient> = (0..2)
        .map(|_| {
            let client = TileClient::connect(&server.endpoints()[0], None, "test")
                .expect("a framed client was refused while the legacy slots were full");
            client
                .set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            client
        })
        .collect();
    for client in &mut framed {
        let events = render(client, vec![t(5, 17, 9)], &RequestOptions::default());
        assert!(
            events.iter().any(|e| matches!(e, Event::Done(_))),
            "{events:?}"
        );
    }
    // The legacy connections are still served.
    for conn in &mut legacy {
        round_trip(conn);
    }
    server.shutdown();
}

#[test]
fn a_secret_does_not_allow_legacy_beyond_loopback_and_the_refusal_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "s3cret\n").unwrap();
    for with_secret in [true, false] {
        let cfg = config(dir.path(), &style, |c| {
            c.server.listen = vec!["tcp:127.0.0.1:0".into()];
            c.server.legacy_listen = Some("tcp:0.0.0.0:0".into());
            c.server.secret_file = with_secret.then(|| secret.clone());
        });
        let err = Server::start(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("refusing to serve the legacy line protocol on non-loopback address"),
            "{err}"
        );
        assert!(!err.contains("configure a secret"), "{err}");
        let why = if with_secret {
            "the configured shared secret does not protect it"
        } else {
            "a shared secret cannot protect it"
        };
        assert!(err.contains(why), "{err}");
        assert!(err.contains("allow_insecure_remote"), "{err}");
    }
}

#[test]
fn the_idle_timeout_does_not_run_while_a_batch_waits_for_its_reply() {
    let dir = tempfile::tempdir().unwrap();
    let idle = Duration::from_millis(50);
    let (server, port, _callback) = start_with_callback_and(dir.path(), |c| {
        c.server.legacy_idle_timeout_ms = 50;
    });
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    // Twenty metatiles over the square: far longer to render than the
    // idle timeout, during which the client is silent, waiting.
    let mut batch = String::new();
    for x in (568..600).step_by(8) {
        for y in (280..320).step_by(8) {
            batch.push_str(&format!("10_{x}_{y}\n"));
        }
    }
    batch.push('\n');
    let sent = Instant::now();
    conn.write_all(batch.as_bytes()).unwrap();
    let mut reply = [0u8; 1];
    conn.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"\n");
    let waited = sent.elapsed();
    assert!(
        waited > idle * 2,
        "the batch took {waited:?}, too short to test the idle timeout"
    );
    // The connection is still open for the next batch.
    conn.write_all(b"4_8_4\n\n").unwrap();
    conn.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"\n");
    server.shutdown();
}
