//! Chapter 6 over real sockets: `serve --reply callback` answers each
//! message on a new connection to the client's port + offset, and
//! `client --reply callback` receives the answers there.
//!
//! No fixed ports: the server binds port 0, and the test then tries to
//! take port + offset. When that one is busy, the test starts over with a
//! new server (a fresh port 0), a few times.
//!
//! `ss` (iproute2) comes from `scripts/install-deps.sh`; without it the
//! TIME_WAIT test fails and says so.
// Test code: a failing unwrap is a failing test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{wait_for_log, Server, BIN};

const ATTEMPTS: usize = 20;

/// A callback server on port P (OS-chosen) together with a listener we hold
/// on P + `offset`, and the server's log.
fn server_with_callback_port(
    extra: &[&str],
    offset: u16,
) -> (Server, TcpListener, mpsc::Receiver<String>) {
    let off = offset.to_string();
    for _ in 0..ATTEMPTS {
        let mut args = vec![
            "serve",
            "--addr",
            "tcp:127.0.0.1:0",
            "--reply",
            "callback",
            "--callback-offset",
            &off,
        ];
        args.extend_from_slice(extra);
        let (server, log) = Server::start_logged(&args);
        let Some(port) = server.port().checked_add(offset) else {
            continue;
        };
        if let Ok(listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            return (server, listener, log);
        }
        // P + offset is taken: drop this server and try another port.
    }
    panic!("no free port pair (P, P+{offset}) in {ATTEMPTS} attempts");
}

/// Accepts `n` callback connections on a thread and returns, in order of
/// arrival, what each carried up to EOF.
fn collect_callbacks(listener: TcpListener, n: usize) -> Vec<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for conn in listener.incoming().take(n) {
            let mut c = conn.unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut bytes = Vec::new();
            c.read_to_end(&mut bytes).unwrap();
            drop(c); // our side closes after the server's: no TIME_WAIT here
            if tx.send(bytes).is_err() {
                return;
            }
        }
    });
    (0..n)
        .map(|i| {
            rx.recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("callback #{} never came", i + 1))
        })
        .collect()
}

#[test]
fn callback_server_answers_each_message_on_a_new_connection_to_port_plus_offset() {
    for (mode, offset) in [("threaded", 1), ("sequential", 1), ("threaded", 3)] {
        let (server, listener, _log) = server_with_callback_port(&["--mode", mode], offset);
        let mut request = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        // Two requests in one write: two replies, two callback connections.
        request.write_all(b"hello\nworld\n").unwrap();
        let got = collect_callbacks(listener, 2);
        assert_eq!(got, [b"hello\n".to_vec(), b"world\n".to_vec()], "{mode}");
        // Nothing ever comes back on the request's own connection.
        request
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 16];
        let err = request.read(&mut buf).unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{err}"
        );
    }
}

/// Runs `echo-demo client --reply callback` against a fresh callback
/// server, retrying while port + 1 is taken by someone else.
fn callback_round_trip(framing: &str, mode: &str, lines: &[&str]) -> Output {
    for _ in 0..ATTEMPTS {
        let server = Server::start(&[
            "serve",
            "--addr",
            "tcp:127.0.0.1:0",
            "--mode",
            mode,
            "--framing",
            framing,
            "--reply",
            "callback",
        ]);
        // Is P+1 free? (The client binds it itself a moment later; if
        // someone else takes it in between, the client says so and we
        // retry.)
        if TcpListener::bind(("127.0.0.1", server.port() + 1)).is_err() {
            continue;
        }
        let mut cmd = Command::new(BIN);
        cmd.args([
            "client",
            "--addr",
            &server.addr,
            "--framing",
            framing,
            "--reply",
            "callback",
            "--timeout",
            "10",
        ]);
        for l in lines {
            cmd.args(["--send", l]);
        }
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        if String::from_utf8_lossy(&out.stderr).contains("cannot listen for callbacks") {
            continue;
        }
        return out;
    }
    panic!("no free port pair (P, P+1) in {ATTEMPTS} attempts");
}

#[test]
fn the_callback_client_gets_its_replies_from_the_callback_server() {
    for mode in ["single", "sequential", "threaded"] {
        for framing in ["raw", "lines", "frames", "length"] {
            let out = callback_round_trip(framing, mode, &["16_58001_25480", "Thank you!"]);
            assert!(
                out.status.success(),
                "{mode} {framing}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "16_58001_25480\nThank you!\n",
                "{mode} {framing}"
            );
        }
    }
}

#[test]
fn a_reply_nobody_listens_for_is_lost_and_the_server_carries_on() {
    // Another program may take P+1 while nobody listens there; then the
    // whole scenario starts over on a fresh pair of ports.
    for _ in 0..ATTEMPTS {
        let (server, listener, log) = server_with_callback_port(&["--mode", "threaded"], 1);
        let callback_addr = listener.local_addr().unwrap();
        // Nobody listens on P+1 for the first request: its reply is lost,
        // and only the server's log knows.
        drop(listener);
        let mut request = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        request.write_all(b"lost\n").unwrap();
        wait_for_log(&log, r#"reply "lost\n" lost"#);
        // Listen again: the next request on the same connection is
        // answered as if nothing happened.
        let Ok(listener) = TcpListener::bind(callback_addr) else {
            continue;
        };
        request.write_all(b"found\n").unwrap();
        assert_eq!(collect_callbacks(listener, 1), [b"found\n".to_vec()]);
        return;
    }
    panic!("P+1 was taken by someone else in each of {ATTEMPTS} attempts");
}

/// Counts TIME_WAIT sockets whose peer port is `port`, with `ss`.
fn time_wait_to(port: u16) -> Option<usize> {
    let filter = format!("( dport = :{port} )");
    let out = Command::new("ss")
        .args(["-Htan", "state", "time-wait", &filter])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).lines().count())
}

#[test]
fn every_callback_leaves_a_time_wait_socket_the_same_connection_none() {
    assert!(
        time_wait_to(1).is_some(),
        "this test needs `ss` (iproute2): run scripts/install-deps.sh"
    );
    const N: usize = 30;
    let (server, listener, _log) = server_with_callback_port(&["--mode", "threaded"], 1);
    let callback_port = server.port() + 1;
    let before = time_wait_to(callback_port).unwrap();
    let mut request = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    let lines: String = (0..N).map(|i| format!("tile {i}\n")).collect();
    request.write_all(lines.as_bytes()).unwrap();
    assert_eq!(collect_callbacks(listener, N).len(), N);
    // The server closed each callback connection first, so each one now
    // waits out TIME_WAIT on the server's side. The kernel finishes the
    // close handshake on its own time: give it up to 5 s to show them.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut after = time_wait_to(callback_port).unwrap();
    while after < before + N && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
        after = time_wait_to(callback_port).unwrap();
    }
    assert!(after >= before + N, "TIME_WAIT {before} -> {after}");

    // The same N replies on the request's own connection: no new socket,
    // so nothing in TIME_WAIT while it stays open.
    let echo = Server::start(&["serve", "--addr", "tcp:127.0.0.1:0", "--mode", "threaded"]);
    let mut s = TcpStream::connect(("127.0.0.1", echo.port())).unwrap();
    s.write_all(lines.as_bytes()).unwrap();
    let mut back = vec![0u8; lines.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, lines.as_bytes());
    let filter = format!("( sport = :{port} or dport = :{port} )", port = echo.port());
    let out = Command::new("ss")
        .args(["-Htan", "state", "time-wait", &filter])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 0);
}

#[test]
fn reply_path_usage_errors_exit_2() {
    for args in [
        &["serve", "--reply", "callback", "--transport", "unix"][..],
        &["serve", "--reply", "callback", "--mode", "poll"],
        &["serve", "--reply", "carrier-pigeon"],
        &["serve", "--reply", "callback", "--callback-offset", "0"],
        &["client", "--reply", "callback", "--eof"],
        &["client", "--reply", "callback", "--connect-per-message"],
        &[
            "client",
            "--reply",
            "callback",
            "--addr",
            "unix:/tmp/x.sock",
        ],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}
