//! End-to-end tests of `chat-demo`: seed 004's own chat client (two of
//! them in one room) against our server; Python `multiprocessing.connection`
//! clients and our terminal client in a `--nicknames` room; our client
//! joining a Python `Listener`; both authkey handshake generations against
//! Python's own `hmac`; authentication failures, refused pickles, the slow
//! client that is dropped, and the client in a real terminal (tmux).
//!
//! The tools come from `scripts/install-deps.sh` (python3, tmux); a test
//! whose tool is missing fails and says so, it never passes silently.
//!
//! Python 3.12 changed the handshake (`{sha256}` HMAC instead of bare
//! HMAC-MD5), and Debian 12's python3 is 3.11. So the handshake is tested
//! twice: with `tests/py/mpconn_handshake.py`, which speaks either
//! generation with Python's `hmac` on any python3, and with every real
//! interpreter found (python3, plus any CPython >= 3.12 on PATH or under
//! pyenv).
// Test helpers outside #[test] functions: a failing unwrap is a failing
// test, and the tests say on stderr which Pythons they used.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use chat_demo::{mpconn, text};
use ipc_proto::{Endpoint, Transport};

const BIN: &str = env!("CARGO_BIN_EXE_chat-demo");
/// Seed 004's client, twice, in one room.
const SEED_CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/seed004_clients.py");
/// Both handshake generations, written out with Python's hmac.
const HANDSHAKE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/mpconn_handshake.py");

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

/// The version of the Python at `py`, if it runs.
fn python_version(py: &str) -> Option<(u32, u32, String)> {
    let out = Command::new(py)
        .args([
            "-c",
            "import sys; v = sys.version_info; print(v[0], v[1], sys.version.split()[0])",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    let major = words.next()?.parse().ok()?;
    let minor = words.next()?.parse().ok()?;
    Some((major, minor, words.next()?.to_owned()))
}

/// `python3`, which `scripts/install-deps.sh` installs: without it the
/// test fails with a message saying so.
fn python3() -> &'static str {
    match python_version("python3") {
        Some((3, minor, _)) if minor >= 8 => "python3",
        found => {
            panic!("this test needs python3 >= 3.8 (found {found:?}): run scripts/install-deps.sh")
        }
    }
}

/// `python3` and every CPython >= 3.12 found on PATH (`python3.12`, ...)
/// or under pyenv, one per minor version. python3 is always there (see
/// [`python3`]); the newer ones are a bonus where they exist, since
/// `tests/py/mpconn_handshake.py` covers the 3.12 handshake everywhere.
fn pythons() -> Vec<String> {
    let mut candidates = vec![python3().to_owned()];
    candidates.extend((12..=20).map(|minor| format!("python3.{minor}")));
    let pyenv_root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")));
    if let Some(Ok(versions)) = pyenv_root.map(|root| std::fs::read_dir(root.join("versions"))) {
        let mut dirs: Vec<PathBuf> = versions.filter_map(|e| Some(e.ok()?.path())).collect();
        dirs.sort();
        candidates.extend(
            dirs.iter()
                .map(|d| d.join("bin/python3").display().to_string()),
        );
    }
    let mut seen = Vec::new();
    let mut found = Vec::new();
    for (i, py) in candidates.into_iter().enumerate() {
        let Some((major, minor, version)) = python_version(&py) else {
            continue;
        };
        // Besides python3 itself, only the {sha256} generation.
        if (i > 0 && (major, minor) < (3, 12)) || seen.contains(&(major, minor)) {
            continue;
        }
        seen.push((major, minor));
        eprintln!("using {py} (Python {version})");
        found.push(py);
    }
    found
}

/// Runs a Python script with UTF-8 output whatever the locale.
fn run_python(py: &str, args: &[&str]) -> Output {
    Command::new(py)
        .args(args)
        .env("PYTHONIOENCODING", "utf-8")
        .output()
        .unwrap()
}

fn success_stdout(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// What seed 004's server says when `address` connects and disconnects.
fn arrival(address: &str) -> String {
    format!("{address} が接続したよ!")
}
fn departure(address: &str) -> String {
    format!("{address} が切断したよ!")
}

#[test]
fn the_seed_004_client_chats_through_our_server_unchanged() {
    for py in pythons() {
        let server = Server::start(&["--secret", "secret password"]);
        let out = run_python(&py, &[SEED_CLIENTS, server.port()]);
        let stdout = success_stdout(&py, &out);
        // "name address", the lines it received, "--".
        let mut transcripts = Vec::new();
        let mut lines = stdout.lines();
        while let Some(head) = lines.next() {
            let (name, address) = head.split_once(' ').unwrap();
            let received: Vec<&str> = lines.by_ref().take_while(|l| *l != "--").collect();
            transcripts.push((name, address, received));
        }
        let [(_, alice, alice_got), (_, bob, bob_got)] = &transcripts[..] else {
            panic!("{py}: {stdout}");
        };
        assert!(alice.starts_with("('127.0.0.1', "), "{alice}");
        // Alice hears both arrivals, both lines, bob's departure, then the
        // answer to her own `:end`.
        assert_eq!(
            alice_got,
            &[
                arrival(alice).as_str(),
                &arrival(bob),
                "alice: hello bob",
                "bob: hi alice",
                &departure(bob),
                ":end",
            ],
            "{py}"
        );
        // Bob arrives after alice; the one who leaves gets `:end`, not his
        // own departure.
        assert_eq!(
            bob_got,
            &[
                arrival(bob).as_str(),
                "alice: hello bob",
                "bob: hi alice",
                ":end",
            ],
            "{py}"
        );
    }
}

#[test]
fn our_client_speaks_the_seed_protocol_by_default() {
    let server = Server::start(&[]);
    let mut watcher = server.addr.parse::<Endpoint>().unwrap().connect().unwrap();
    watcher
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let watcher_address = python_address(&watcher);
    let mut next = move || {
        let m = mpconn::recv_bytes(&mut watcher, 1 << 16).unwrap().unwrap();
        // The seed's server answers with pickled strs, as Python's send(str).
        assert_eq!(m[0], 0x80, "not a pickle: {m:?}");
        text::decode(&m).unwrap().0
    };
    assert_eq!(next(), arrival(&watcher_address));
    let out = Command::new(BIN)
        .args(["client", "--addr", &server.addr, "--nick", "rusty"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(
                b"hello
:end
",
            )?;
            c.wait_with_output()
        })
        .unwrap();
    let stdout = success_stdout("client", &out);
    let joined = next();
    let rusty = joined.strip_suffix(" が接続したよ!").unwrap();
    assert!(rusty.starts_with("('127.0.0.1', "), "{joined}");
    assert_eq!(next(), "rusty: hello");
    assert_eq!(next(), departure(rusty));
    assert_eq!(stdout, format!("{joined}\nrusty: hello\n"));
}

/// `('127.0.0.1', PORT)`: how the seed's server names the client at the
/// other end of `stream`.
fn python_address(stream: &ipc_proto::Stream) -> String {
    let local = stream.as_tcp().unwrap().local_addr().unwrap();
    format!("('{}', {})", local.ip(), local.port())
}

/// Python, in a `--nicknames` room: one client using send(str)/recv(), one
/// using send_bytes/recv_bytes, chatting with our terminal client
/// ("rusty").
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
                        "--nicknames", "--secret", "secret"], input="hello from rust\n:end\n", capture_output=True,
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
fn python_mpconn_clients_and_our_client_chat_through_a_nicknames_server() {
    for py in pythons() {
        let server = Server::start(&["--secret", "secret", "--nicknames"]);
        let out = run_python(&py, &["-c", PY_CHAT, server.port(), BIN]);
        assert_eq!(success_stdout(&py, &out), "ok\n");
    }
}

/// A Python `Listener` in the manner of seed 004's server (`recv()` and
/// `send(str)`): greets the client, sends every line back, answers `:end`.
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
    conn.send("{} が接続したよ!".format(listener.last_accepted))
    while True:
        line = conn.recv()
        if line == ":end":
            conn.send(":end")
            break
        conn.send(line)
    print("done", flush=True)
"#;

#[test]
fn our_client_joins_a_python_listener() {
    for py in pythons() {
        for (client_key, ok) in [("k3y", true), ("wrong", false)] {
            let mut listener = Command::new(&py)
                .args(["-c", PY_LISTENER, "k3y"])
                .env("PYTHONIOENCODING", "utf-8")
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
                    "--pickle",
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
                let (greeting, rest) = stdout.split_once('\n').unwrap();
                assert!(
                    greeting.starts_with("('127.0.0.1', ") && greeting.ends_with(" が接続したよ!"),
                    "{py}: {greeting}"
                );
                assert_eq!(rest, "rusty: one\nrusty: two\n", "{py}");
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

/// Our server against `mpconn_handshake.py client GENERATION`: what the
/// script printed, and the address it connected from.
fn handshake_client(generation: &str, key: &str) -> (String, String) {
    let server = Server::start(&["--secret", "k3y"]);
    let out = run_python(
        python3(),
        &[HANDSHAKE, "client", generation, server.port(), key],
    );
    let stdout = success_stdout(generation, &out);
    let (first, rest) = stdout.split_once('\n').unwrap();
    let address = first.strip_prefix("address ").unwrap().to_owned();
    (address, rest.to_owned())
}

#[test]
fn our_server_does_the_3_12_sha256_handshake_with_python_hmac() {
    let (address, out) = handshake_client("3.12", "k3y");
    // We challenge with {sha256}; our answer to the script's {sha256}
    // challenge is exactly b"{sha256}" + HMAC-SHA256 as Python computes it.
    assert_eq!(
        out,
        format!(
            "challenge {{sha256}} 40 random bytes\nour answer welcomed\npeer answer ok\n\
             got {}\ngot py: hello\ngot :end\n",
            arrival(&address)
        )
    );
    let (_, out) = handshake_client("3.12", "wrong");
    assert_eq!(
        out,
        "challenge {sha256} 40 random bytes\nour answer rejected\n"
    );
}

#[test]
fn our_server_does_the_3_11_md5_handshake_with_python_hmac() {
    // A 3.11 client answers our {sha256} challenge with a bare HMAC-MD5 of
    // it, and challenges with 20 bytes and no prefix: we answer bare MD5.
    let (address, out) = handshake_client("3.11", "k3y");
    assert_eq!(
        out,
        format!(
            "challenge {{sha256}} 40 random bytes\nour answer welcomed\npeer answer ok\n\
             got {}\ngot py: hello\ngot :end\n",
            arrival(&address)
        )
    );
    let (_, out) = handshake_client("3.11", "wrong");
    assert_eq!(
        out,
        "challenge {sha256} 40 random bytes\nour answer rejected\n"
    );
}

/// Our client against `mpconn_handshake.py listener GENERATION`: the
/// client's output and the listener's.
fn handshake_listener(generation: &str, client_key: &str) -> (Output, String) {
    let mut listener = Command::new(python3())
        .args([HANDSHAKE, "listener", generation, "k3y"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(listener.stdout.take().unwrap());
    let mut port = String::new();
    stdout.read_line(&mut port).unwrap();
    let client = Command::new(BIN)
        .args([
            "client",
            "--addr",
            &format!("tcp:127.0.0.1:{}", port.trim()),
            "--nick",
            "rusty",
            "--pickle",
            "--secret",
            client_key,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            // A client refused at the handshake may exit before it reads
            // its input: a broken pipe here is its answer, not an error.
            if let Err(e) = c.stdin.take().unwrap().write_all(b"one\n:end\n") {
                assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
            }
            c.wait_with_output()
        })
        .unwrap();
    let mut said = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut said).unwrap();
    assert!(listener.wait().unwrap().success(), "{said}");
    (client, said)
}

#[test]
fn our_client_does_both_handshake_generations_with_python_hmac() {
    for generation in ["3.12", "3.11"] {
        let (client, said) = handshake_listener(generation, "k3y");
        assert_eq!(success_stdout(generation, &client), "welcome\nrusty: one\n");
        // Our answer is exactly the one Python's hmac computes for this
        // generation; our challenge is always {sha256}.
        assert_eq!(
            said,
            "peer answer ok\nchallenge {sha256} 40 random bytes\nour answer welcomed\n\
             got rusty: one\ngot :end\n",
            "{generation}"
        );

        let (client, said) = handshake_listener(generation, "wrong");
        assert_eq!(client.status.code(), Some(1), "{generation}");
        let stderr = String::from_utf8_lossy(&client.stderr);
        assert!(stderr.contains("keys differ"), "{generation}: {stderr}");
        assert!(
            said.starts_with("peer answer wrong"),
            "{generation}: {said}"
        );
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

/// A connection to a `--nicknames` server, from the test itself.
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
    let connect = || server.addr.parse::<Endpoint>().unwrap().connect().unwrap();
    // "slow" joins and never reads.
    let slow = connect();
    let slow_address = python_address(&slow);
    let mut fast = connect();
    fast.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // "fast" talks, and reads its own line back before saying the next, so
    // its outbox never fills; "slow"'s socket buffers and outbox do.
    let big = format!("fast: {}", "x".repeat(60_000));
    let dropped_notice = format!("* {slow_address} was dropped: too slow (8 messages waiting)");
    let start = Instant::now();
    let mut dropped = false;
    'talk: for _ in 0..5000 {
        mpconn::send_bytes(&mut fast, big.as_bytes()).unwrap();
        loop {
            let m = mpconn::recv_bytes(&mut fast, 1 << 20).unwrap().unwrap();
            let (line, _) = text::decode(&m).unwrap();
            if line == dropped_notice {
                dropped = true;
                break 'talk;
            }
            if line == big {
                break;
            }
        }
    }
    assert!(dropped, "the slow client was never dropped");
    assert!(start.elapsed() < Duration::from_secs(60));
    // The room still works for the others.
    let mut late = connect();
    late.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let m = mpconn::recv_bytes(&mut late, 1 << 20).unwrap().unwrap();
    assert_eq!(text::decode(&m).unwrap().0, arrival(&python_address(&late)));
    drop(slow);
}

#[test]
fn bad_nicknames_and_usage() {
    let server = Server::start(&["--nicknames"]);
    let mut a = join(&server.addr, "dup");
    // Wait until the server has taken "dup" (its first message to a is the
    // arrival of a itself), or the second join may be handled first.
    let first = mpconn::recv_bytes(&mut a, 1024).unwrap().unwrap();
    assert!(text::decode(&first).unwrap().0.contains("dup"));
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
    assert!(
        tmux(&["-V"]).is_some(),
        "this test needs tmux: run scripts/install-deps.sh"
    );
    let server = Server::start(&["--secret", "s", "--nicknames"]);
    let session = format!("chat-demo-test-{}", std::process::id());
    let command = format!(
        "{BIN} client --addr {} --nick tty --nicknames --secret s",
        server.addr
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
