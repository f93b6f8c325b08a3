//! End-to-end tests of `chat-demo`: Python `multiprocessing.connection`
//! clients and our terminal client in one room, our client joining a Python
//! `Listener`, authentication failures, refused pickles, the slow client
//! that is dropped, and the client in a real terminal (tmux).
//!
//! Tests that need python3 skip with a message when it is absent; each
//! Python found (python3 on PATH, /usr/bin/python3, pyenv's 3.12/3.13) is
//! tried, which covers both handshake generations (HMAC-MD5 up to 3.11,
//! `{sha256}` from 3.12).
// Test helpers outside #[test] functions: a failing unwrap is a failing
// test, and a skipped test says why on stderr.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chat_demo::{mpconn, text};
use ipc_proto::{Endpoint, Transport};

const BIN: &str = env!("CARGO_BIN_EXE_chat-demo");

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
    fn start(extra: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(["server", "--addr", "tcp:127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{line:?}"))
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned();
        Server { child, addr }
    }
    fn port(&self) -> &str {
        self.addr.rsplit(':').next().unwrap()
    }
}

/// Every Python 3 interpreter we can find (deduplicated by version).
fn pythons() -> Vec<String> {
    let mut candidates = vec!["python3".to_owned(), "/usr/bin/python3".to_owned()];
    if let Ok(home) = std::env::var("HOME") {
        for v in ["3.12.1", "3.13.0"] {
            candidates.push(format!("{home}/.pyenv/versions/{v}/bin/python3"));
        }
    }
    let mut seen = Vec::new();
    let mut found = Vec::new();
    for py in candidates {
        let Ok(out) = Command::new(&py)
            .args(["-c", "import sys; print(sys.version.split()[0])"])
            .output()
        else {
            continue;
        };
        let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !seen.contains(&version) {
            seen.push(version);
            found.push(py);
        }
    }
    if found.is_empty() {
        eprintln!("SKIPPED: no python3 found");
    }
    found
}

/// Python: one client using send(str)/recv(), one using
/// send_bytes/recv_bytes, chatting with our terminal client ("rusty").
const PY_CHAT: &str = r#"
import sys, subprocess, multiprocessing.connection as mc
port, binary = int(sys.argv[1]), sys.argv[2]
addr = ("127.0.0.1", port)
def expect(got, want):
    if got != want:
        raise SystemExit(f"expected {want!r}, got {got!r}")
a = mc.Client(addr, authkey=b"secret")
a.send("alice")
expect(a.recv(), "* alice joined")
b = mc.Client(addr, authkey=b"secret")
b.send_bytes(b"bob")
expect(b.recv_bytes(), b"* bob joined")
expect(a.recv(), "* bob joined")
# Our terminal client joins, says one line and leaves.
rusty = subprocess.run([binary, "client", "--addr", f"tcp:127.0.0.1:{port}", "--nick", "rusty",
                        "--secret", "secret"], input="hello from rust\n:end\n", capture_output=True,
                       text=True, timeout=20)
assert rusty.returncode == 0, rusty.stderr
for conn, recv in ((a, a.recv), (b, lambda: b.recv_bytes().decode())):
    expect(recv(), "* rusty joined")
    expect(recv(), "rusty: hello from rust")
    expect(recv(), "* rusty left")
assert "rusty: hello from rust" in rusty.stdout, rusty.stdout
a.send("hi from alice")
expect(a.recv(), "alice: hi from alice")
expect(b.recv_bytes(), b"alice: hi from alice")
# Anything but a str pickle is refused, never unpickled.
a.send({"not": "a str"})
reply = a.recv()
assert reply.startswith("* error: refused to unpickle") and "dict" in reply, reply
a.send_bytes(b"\x80\x02cos\nsystem\n(S'echo pwned'\ntR.")
reply = a.recv()
assert "code execution" in reply, reply
# The end code.
b.send_bytes(b":end")
expect(b.recv_bytes(), b":end")
expect(a.recv(), "* bob left")
# A wrong authkey is refused.
try:
    mc.Client(addr, authkey=b"wrong")
    raise SystemExit("a wrong key was accepted")
except mc.AuthenticationError:
    pass
a.send(":end")
expect(a.recv(), ":end")
print("ok")
"#;

#[test]
fn python_mpconn_clients_and_our_client_chat_through_our_server() {
    for py in pythons() {
        let server = Server::start(&["--secret", "secret"]);
        let out = Command::new(&py)
            .args(["-c", PY_CHAT, server.port(), BIN])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{py}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Python Listener: greets the client, echoes its lines, answers `:end`.
const PY_LISTENER: &str = r#"
import sys, multiprocessing.connection as mc
key = sys.argv[1].encode()
with mc.Listener(("127.0.0.1", 0), authkey=key) as listener:
    print(listener.address[1], flush=True)
    try:
        conn = listener.accept()
    except mc.AuthenticationError as e:
        print("auth failed:", e, flush=True)
        sys.exit(0)
    nick = conn.recv_bytes().decode()
    conn.send(f"welcome {nick}")          # a pickled str
    conn.send_bytes(b"plain bytes too")   # raw UTF-8
    while True:
        line = conn.recv_bytes().decode()
        if line == ":end":
            conn.send(":end")
            break
        conn.send_bytes(f"python heard: {line}".encode())
    print("done", flush=True)
"#;

#[test]
fn our_client_joins_a_python_listener() {
    for py in pythons() {
        for (client_key, ok) in [("k3y", true), ("wrong", false)] {
            let mut listener = Command::new(&py)
                .args(["-c", PY_LISTENER, "k3y"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut lines = BufReader::new(listener.stdout.take().unwrap()).lines();
            let port = lines.next().unwrap().unwrap();
            let mut client = Command::new(BIN)
                .args([
                    "client",
                    "--addr",
                    &format!("tcp:127.0.0.1:{port}"),
                    "--nick",
                    "rusty",
                    "--secret",
                    client_key,
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            client
                .stdin
                .take()
                .unwrap()
                .write_all(b"one\ntwo\n:end\n")
                .unwrap();
            let out = client.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            if ok {
                assert!(
                    out.status.success(),
                    "{py}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert_eq!(
                    stdout,
                    "welcome rusty\nplain bytes too\npython heard: one\npython heard: two\n",
                    "{py}"
                );
                assert_eq!(lines.next().unwrap().unwrap(), "done");
            } else {
                assert_eq!(out.status.code(), Some(1), "{py}");
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(stderr.contains("authentication failed"), "{py}: {stderr}");
                assert!(lines.next().unwrap().unwrap().starts_with("auth failed"));
            }
            let _ = listener.wait();
        }
    }
}

#[test]
fn wrong_or_missing_secret_is_refused_with_a_clear_error() {
    let server = Server::start(&["--secret", "right"]);
    let out = Command::new(BIN)
        .args([
            "client",
            "--addr",
            &server.addr,
            "--nick",
            "eve",
            "--secret",
            "wrong",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("authentication failed"), "{stderr}");
    assert!(stderr.contains("keys differ"), "{stderr}");

    // A client with a secret refuses a server without one (no downgrade).
    let open = Server::start(&[]);
    let out = Command::new(BIN)
        .args([
            "client", "--addr", &open.addr, "--nick", "eve", "--secret", "s",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));

    // Same with the library, speaking to the server directly.
    let mut s = server.addr.parse::<Endpoint>().unwrap().connect().unwrap();
    assert!(mpconn::client_handshake(&mut s, b"wrong").is_err());
}

/// A connection speaking the chat protocol from the test itself.
fn join(addr: &str, nick: &str) -> ipc_proto::Stream {
    join_with_key(addr, nick, None)
}

fn join_with_key(addr: &str, nick: &str, key: Option<&[u8]>) -> ipc_proto::Stream {
    let mut s = addr.parse::<Endpoint>().unwrap().connect().unwrap();
    if let Some(key) = key {
        mpconn::client_handshake(&mut s, key).unwrap();
    }
    mpconn::send_bytes(&mut s, nick.as_bytes()).unwrap();
    s
}

#[test]
fn a_slow_client_is_dropped_and_never_blocks_the_others() {
    let server = Server::start(&["--outbox", "8"]);
    // "slow" joins and never reads.
    let _slow = join(&server.addr, "slow");
    let mut fast = join(&server.addr, "fast");
    fast.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // "fast" talks, and reads its own line back before saying the next, so
    // its outbox never fills; "slow"'s socket buffers and outbox do.
    let big = "x".repeat(60_000);
    let start = Instant::now();
    let mut dropped = false;
    'talk: for _ in 0..5000 {
        mpconn::send_bytes(&mut fast, big.as_bytes()).unwrap();
        loop {
            let m = mpconn::recv_bytes(&mut fast, 1 << 20).unwrap().unwrap();
            let (line, _) = text::decode(&m).unwrap();
            if line.starts_with("* slow was dropped: too slow") {
                dropped = true;
                break 'talk;
            }
            if line.starts_with("fast: ") {
                break;
            }
        }
    }
    assert!(dropped, "the slow client was never dropped");
    assert!(start.elapsed() < Duration::from_secs(60));
    // The room still works for the others.
    let mut late = join(&server.addr, "late");
    late.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let m = mpconn::recv_bytes(&mut late, 1 << 20).unwrap().unwrap();
    assert_eq!(text::decode(&m).unwrap().0, "* late joined");
}

#[test]
fn bad_nicknames_and_usage() {
    let server = Server::start(&[]);
    let _a = join(&server.addr, "dup");
    let mut b = join(&server.addr, "dup");
    let m = mpconn::recv_bytes(&mut b, 1024).unwrap().unwrap();
    assert!(text::decode(&m).unwrap().0.contains("taken"));
    let mut c = join(&server.addr, "has space");
    let m = mpconn::recv_bytes(&mut c, 1024).unwrap().unwrap();
    assert!(text::decode(&m).unwrap().0.contains("spaces"));

    for args in [
        &["server"][..],
        &[
            "server",
            "--addr",
            "tcp:127.0.0.1:0",
            "--secret",
            "a",
            "--secret-file",
            "f",
        ],
        &["client", "--addr", "tcp:127.0.0.1:1"],
        &["server", "--addr", "bogus"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    // Listening on all interfaces without a secret is refused.
    let out = Command::new(BIN)
        .args(["server", "--addr", "tcp:0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("without a shared secret"));
}

fn tmux(args: &[&str]) -> Option<String> {
    let out = Command::new("tmux").args(args).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

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
fn the_chat_client_works_in_a_real_terminal() {
    if tmux(&["-V"]).is_none() {
        eprintln!("SKIPPED: tmux is not installed (apt-get install -y tmux)");
        return;
    }
    let server = Server::start(&["--secret", "s"]);
    let session = format!("chat-demo-test-{}", std::process::id());
    let command = format!("{BIN} client --addr {} --nick tty --secret s", server.addr);
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
    let _guard = KillSession(session.clone());
    wait_for_pane(&session, "* tty joined");
    // Someone else talks: it appears in the terminal while it waits for input.
    let mut other = join_with_key(&server.addr, "other", Some(b"s"));
    tmux(&["send-keys", "-t", &session, "hello room", "Enter"]);
    wait_for_pane(&session, "tty: hello room");
    mpconn::send_bytes(&mut other, b"hi tty").unwrap();
    wait_for_pane(&session, "other: hi tty");
    tmux(&["send-keys", "-t", &session, ":end", "Enter"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Command::new("tmux")
        .args(["has-session", "-t", &session])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(Instant::now() < deadline, "the client did not exit on :end");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct KillSession(String);
impl Drop for KillSession {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}
