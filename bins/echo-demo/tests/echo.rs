//! End-to-end tests of `echo-demo` over real sockets: every server mode and
//! framing, the stop word, half-close with `--upper`, the benchmark peer,
//! Python clients from the lessons, usage errors, and the interactive
//! client in a real terminal (tmux).
//!
//! Servers bind port 0 or a Unix socket in a temporary directory and say
//! where on their first stdout line; nothing waits with a sleep for a
//! server to start.
//!
//! The tools come from `scripts/install-deps.sh` (python3, tmux): a test
//! whose tool is missing fails and says so; none passes by skipping.
// Test helpers outside #[test] functions: a failing unwrap is a failing
// test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ipc_proto::{Endpoint, Transport};

const BIN: &str = env!("CARGO_BIN_EXE_echo-demo");

/// A server process, killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `echo-demo <args>` and reads the address from its first line
    /// (`listening on ADDR ...` or `READY ADDR`).
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start echo-demo");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .strip_prefix("listening on ")
            .or_else(|| line.strip_prefix("READY "))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned();
        Server { child, addr }
    }

    fn endpoint(&self) -> Endpoint {
        self.addr.parse().unwrap()
    }

    /// Waits (at most 10 s) for the server to exit by itself.
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn client(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("client")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run client")
}

fn stdout_of(out: &Output) -> String {
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// `python3` (>= 3.8), which `scripts/install-deps.sh` installs: without
/// it the test fails with a message saying so.
fn python3() -> &'static str {
    let ok = Command::new("python3")
        .arg("-c")
        .arg("import sys; assert sys.version_info >= (3, 8)")
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "this test needs python3 >= 3.8: run scripts/install-deps.sh"
    );
    "python3"
}

fn addr_args(transport: &str, dir: &Path, name: &str) -> String {
    match transport {
        "tcp" => "tcp:127.0.0.1:0".to_owned(),
        _ => format!("unix:{}", dir.join(name).display()),
    }
}

#[test]
fn every_mode_and_framing_echoes_over_tcp_and_unix() {
    let dir = tempfile::tempdir().unwrap();
    for transport in ["tcp", "unix"] {
        for mode in ["single", "sequential", "threaded", "poll"] {
            for framing in ["raw", "lines", "frames", "length"] {
                let addr = addr_args(transport, dir.path(), &format!("{mode}-{framing}.sock"));
                let mut server = Server::start(&[
                    "serve",
                    "--addr",
                    &addr,
                    "--mode",
                    mode,
                    "--framing",
                    framing,
                ]);
                let out = client(&[
                    "--addr",
                    &server.addr,
                    "--framing",
                    framing,
                    "--send",
                    "hello",
                    "--send",
                    "world",
                    "--timeout",
                    "10",
                ]);
                assert_eq!(
                    stdout_of(&out),
                    "hello\nworld\n",
                    "{transport} {mode} {framing}"
                );
                if mode == "single" {
                    // Lesson 1: the server is gone with its one client.
                    assert!(server.wait_exit().success());
                } else {
                    // The next client is served too.
                    let out = client(&[
                        "--addr",
                        &server.addr,
                        "--framing",
                        framing,
                        "--send",
                        "again",
                    ]);
                    assert_eq!(stdout_of(&out), "again\n", "{transport} {mode} {framing}");
                }
            }
        }
    }
}

#[test]
fn messages_split_and_glued_on_the_wire_are_framed_correctly() {
    for mode in ["threaded", "poll"] {
        // Lines: one line in two writes, then two lines in one write.
        let server = Server::start(&["serve", "--addr", "tcp:127.0.0.1:0", "--mode", mode]);
        let mut s = server.endpoint().connect().unwrap();
        s.write_all(b"hel").unwrap();
        s.write_all(b"lo\nab\ncd\n").unwrap();
        let mut got = vec![0u8; 12];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, b"hello\nab\ncd\n");

        // ipc-proto frames, fed one byte at a time.
        let server = Server::start(&[
            "serve",
            "--addr",
            "tcp:127.0.0.1:0",
            "--mode",
            mode,
            "--framing",
            "frames",
        ]);
        let frame = ipc_proto::Frame::new(0x7E, b"tile".to_vec())
            .to_bytes()
            .unwrap();
        let mut s = server.endpoint().connect().unwrap();
        for b in &frame {
            s.write_all(&[*b]).unwrap();
        }
        let mut got = vec![0u8; frame.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, frame);
    }
}

#[test]
fn a_bad_frame_closes_only_that_connection() {
    for mode in ["threaded", "poll"] {
        let server = Server::start(&[
            "serve",
            "--addr",
            "tcp:127.0.0.1:0",
            "--mode",
            mode,
            "--framing",
            "frames",
        ]);
        let mut bad = server.endpoint().connect().unwrap();
        bad.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 1]).unwrap();
        let mut rest = Vec::new();
        // The server closes it: EOF (or a reset), never an echo.
        let _ = bad.read_to_end(&mut rest);
        assert!(rest.is_empty());
        let out = client(&[
            "--addr",
            &server.addr,
            "--framing",
            "frames",
            "--send",
            "fine",
        ]);
        assert_eq!(stdout_of(&out), "fine\n");
    }
}

#[test]
fn sequential_mode_makes_the_second_client_wait_threaded_and_poll_do_not() {
    for (mode, second_waits) in [("sequential", true), ("threaded", false), ("poll", false)] {
        let server = Server::start(&["serve", "--addr", "tcp:127.0.0.1:0", "--mode", mode]);
        let mut first = server.endpoint().connect().unwrap();
        first.write_all(b"one\n").unwrap();
        let mut got = [0u8; 4];
        first.read_exact(&mut got).unwrap();
        let mut second = server.endpoint().connect().unwrap();
        second.write_all(b"two\n").unwrap();
        second
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let answered = second.read_exact(&mut got).is_ok();
        assert_eq!(answered, !second_waits, "{mode}");
        if second_waits {
            // As soon as the first client leaves, the second is served.
            drop(first);
            second
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            second.read_exact(&mut got).unwrap();
        }
        assert_eq!(&got, b"two\n");
    }
}

#[test]
fn the_stop_word_stops_every_mode() {
    for mode in ["single", "sequential", "threaded", "poll"] {
        for framing in ["raw", "lines", "length"] {
            let mut server = Server::start(&[
                "serve",
                "--addr",
                "tcp:127.0.0.1:0",
                "--mode",
                mode,
                "--framing",
                framing,
                "--stop-word",
                "balse",
            ]);
            // In the concurrent modes another client is still connected:
            // the server stops anyway. (In single and sequential mode it
            // would be served first, and the stop word would wait for it.)
            let _other =
                matches!(mode, "threaded" | "poll").then(|| server.endpoint().connect().unwrap());
            let out = client(&[
                "--addr",
                &server.addr,
                "--framing",
                framing,
                "--send",
                "balse",
            ]);
            assert!(out.status.success());
            assert!(server.wait_exit().success(), "{mode} {framing}");
        }
    }
}

#[test]
fn upper_answers_after_half_close_and_waits_without_it() {
    let dir = tempfile::tempdir().unwrap();
    for mode in ["threaded", "poll"] {
        let sock = dir.path().join(format!("upper-{mode}.sock"));
        let addr = format!("unix:{}", sock.display());
        let server = Server::start(&[
            "serve",
            "--addr",
            &addr,
            "--mode",
            mode,
            "--framing",
            "raw",
            "--upper",
        ]);
        // With the half-close: the answer.
        let out = client(&["--addr", &server.addr, "--eof", "--send", "hogehoge"]);
        assert_eq!(stdout_of(&out), "HOGEHOGE\n");
        // Without it the server keeps waiting for EOF: no answer in time.
        let out = client(&[
            "--addr",
            &server.addr,
            "--framing",
            "raw",
            "--send",
            "hogehoge",
            "--timeout",
            "0.3",
        ]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("no reply"));
        // The same by hand: shutdown(Write) is what makes the difference.
        let mut s = server.endpoint().connect().unwrap();
        s.write_all(b"abc").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert_eq!(answer, "ABC");
    }
}

/// The asyncio client of the lessons (seed 002), with its `write_eof()` fix.
const ASYNCIO_CLIENT: &str = r#"
import asyncio, sys
async def client(path, message):
    reader, writer = await asyncio.open_unix_connection(path=path)
    writer.write(message.encode())
    writer.write_eof()
    await writer.drain()
    res = await reader.read(-1)
    print(res.decode())
    writer.close()
    await writer.wait_closed()
asyncio.run(asyncio.wait_for(client(sys.argv[1], "hogehoge"), 10))
"#;

#[test]
fn the_lessons_asyncio_unix_client_works_against_upper() {
    let py = python3();
    let dir = tempfile::tempdir().unwrap();
    for mode in ["sequential", "threaded", "poll"] {
        let sock = dir.path().join(format!("sock-{mode}"));
        let server = Server::start(&[
            "serve",
            "--addr",
            &format!("unix:{}", sock.display()),
            "--mode",
            mode,
            "--framing",
            "raw",
            "--upper",
        ]);
        let out = Command::new(py)
            .args(["-c", ASYNCIO_CLIENT, sock.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "HOGEHOGE\n", "{mode}");
        drop(server);
    }
}

/// A plain Python socket client like the lessons' `client1.py`.
const PLAIN_SOCKET_CLIENT: &str = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
for word in ["hello", "tessera"]:
    s.sendall(word.encode())
    got = b""
    while len(got) < len(word):
        chunk = s.recv(1024)
        if not chunk:
            raise SystemExit("closed")
        got += chunk
    print("Received ->", got.decode())
s.close()
"#;

#[test]
fn a_plain_python_socket_client_works_against_the_raw_echo() {
    let py = python3();
    for mode in ["single", "sequential", "threaded", "poll"] {
        let server = Server::start(&[
            "serve",
            "--addr",
            "tcp:127.0.0.1:0",
            "--mode",
            mode,
            "--framing",
            "raw",
        ]);
        let port = server.addr.rsplit(':').next().unwrap().to_owned();
        let out = Command::new(py)
            .args(["-c", PLAIN_SOCKET_CLIENT, &port])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "Received -> hello\nReceived -> tessera\n",
            "{mode}"
        );
    }
}

#[test]
fn bench_peer_speaks_the_contract() {
    // The contract wants /tmp/ paths, whatever TMPDIR says.
    let dir = tempfile::Builder::new()
        .prefix("echo-demo-bench")
        .tempdir_in("/tmp")
        .unwrap();
    let sock = dir.path().join("ext.sock");
    for addr in [
        "tcp:127.0.0.1:0".to_owned(),
        format!("unix:{}", sock.display()),
    ] {
        let server = Server::start(&["bench", "server", "--addr", &addr, "--max-seconds", "60"]);
        for (mode, size, count) in [
            ("rtt", "64", "300"),
            ("pipelined", "64", "5000"),
            ("pipelined", "4096", "500"),
        ] {
            let out = Command::new(BIN)
                .args([
                    "bench",
                    "client",
                    "--addr",
                    &server.addr,
                    "--mode",
                    mode,
                    "--size",
                    size,
                    "--count",
                    count,
                    "--warmup",
                    "10",
                    "--max-seconds",
                    "60",
                ])
                .output()
                .unwrap();
            let text = stdout_of(&out);
            assert_eq!(text.lines().count(), 1, "{text}");
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["mode"], mode);
            assert_eq!(
                v["transport"],
                if addr.starts_with("tcp") {
                    "tcp"
                } else {
                    "unix"
                }
            );
            assert_eq!(v["msg_bytes"].to_string(), size);
            assert_eq!(v["count"].to_string(), count);
            for field in ["seconds", "msgs_per_s", "p50_us", "p99_us", "mb_per_s"] {
                assert!(
                    v[field].as_f64().is_some_and(|x| x >= 0.0),
                    "{field}: {text}"
                );
            }
        }
        // Frames of several MiB are echoed too.
        let mut s = server.endpoint().connect().unwrap();
        let big = vec![7u8; 3 << 20];
        let mut frame = (big.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&big);
        let writer = {
            let mut w = s.try_clone().unwrap();
            let frame = frame.clone();
            std::thread::spawn(move || w.write_all(&frame).unwrap())
        };
        let mut echo = vec![0u8; frame.len()];
        s.read_exact(&mut echo).unwrap();
        writer.join().unwrap();
        assert!(echo == frame);
    }
}

#[test]
fn bench_server_exits_on_sigterm_and_removes_its_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("term.sock");
    let mut server = Server::start(&[
        "bench",
        "server",
        "--addr",
        &format!("unix:{}", sock.display()),
        "--max-seconds",
        "60",
    ]);
    assert!(sock.exists());
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert!(server.wait_exit().success());
    assert!(!sock.exists());
}

#[test]
fn bad_usage_exits_2_with_a_message() {
    for args in [
        &["serve", "--upper", "--framing", "lines"][..],
        &["serve", "--mode", "forking"],
        &["serve", "--addr", "nonsense"],
        &["serve", "--addr", "tcp:127.0.0.1:0", "--transport", "unix"],
        &[
            "bench",
            "client",
            "--addr",
            "tcp:10.0.0.1:1",
            "--mode",
            "rtt",
        ],
        &[
            "bench",
            "client",
            "--addr",
            "tcp:127.0.0.1:1",
            "--mode",
            "rtt",
            "--size",
            "4",
        ],
        &["client", "--timeout", "-1"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}

/// Runs `tmux` with `args`; `None` if tmux is missing.
fn tmux(args: &[&str]) -> Option<String> {
    let out = Command::new("tmux").args(args).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits until the tmux pane shows `needle`, returning the pane.
fn wait_for_pane(target: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let pane = tmux(&["capture-pane", "-p", "-t", target]).unwrap_or_default();
        if pane.contains(needle) {
            return pane;
        }
        assert!(
            Instant::now() < deadline,
            "pane never showed {needle:?}:\n{pane}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_interactive_client_works_in_a_real_terminal() {
    assert!(
        tmux(&["-V"]).is_some(),
        "this test needs tmux: run scripts/install-deps.sh"
    );
    let server = Server::start(&["serve", "--addr", "tcp:127.0.0.1:0", "--mode", "poll"]);
    let session = format!("echo-demo-test-{}", std::process::id());
    // The pane's shell writes down how the client ended.
    let dir = tempfile::tempdir().unwrap();
    let status_file = dir.path().join("status");
    let command = format!(
        "{BIN} client --addr {}; echo \"exit status $?\" > {}",
        server.addr,
        status_file.display()
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "120",
        "-y",
        "20",
        &command,
    ])
    .unwrap();
    // Kill the session whatever happens below.
    let _guard = KillSession(session.clone());
    // (capture-pane trims the prompt's trailing space.)
    wait_for_pane(&session, "Ctrl-D to quit\n>");
    tmux(&["send-keys", "-t", &session, "hello terminal", "Enter"]);
    let pane = wait_for_pane(&session, "< hello terminal");
    assert!(pane.contains("> hello terminal"), "{pane}");
    // Ctrl-D ends the client, and with it the tmux session.
    tmux(&["send-keys", "-t", &session, "C-d"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Command::new("tmux")
        .args(["has-session", "-t", &session])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(
            Instant::now() < deadline,
            "the client did not exit on Ctrl-D"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // It ended by itself, successfully.
    assert_eq!(
        std::fs::read_to_string(&status_file).unwrap(),
        "exit status 0\n"
    );
}

/// Kills a tmux session when dropped, whatever happened.
struct KillSession(String);
impl Drop for KillSession {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}
