//! Helpers shared by `reply_paths.rs` and `module_mode.rs`: start an
//! `echo-demo` server on port 0 and learn its address from its first line.
// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_echo-demo");

/// A server process, killed when dropped.
pub struct Server {
    pub child: Child,
    /// `tcp:127.0.0.1:PORT` or `unix:PATH`, from the first stdout line.
    pub addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `echo-demo <args>` and reads `listening on ADDR ...`.
    pub fn start(args: &[&str]) -> Server {
        Self::spawn(args, Stdio::null())
    }

    /// Like [`Server::start`], and also returns the server's stderr log,
    /// line by line, as a channel (to wait for "reply lost" and the like).
    pub fn start_logged(args: &[&str]) -> (Server, mpsc::Receiver<String>) {
        let mut server = Self::spawn(args, Stdio::piped());
        let stderr = server.child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        (server, rx)
    }

    fn spawn(args: &[&str], stderr: Stdio) -> Server {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start echo-demo");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned();
        Server { child, addr }
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Waits (at most 10 s) for the server to exit by itself.
    pub fn wait_exit(&mut self) -> ExitStatus {
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

/// Waits (at most 10 s) for a log line containing `needle`.
pub fn wait_for_log(log: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match log.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(_) => panic!("the server never logged {needle:?}"),
        }
    }
}

/// Runs `tmux` with `args`; `None` if tmux is missing.
pub fn tmux(args: &[&str]) -> Option<String> {
    let out = Command::new("tmux").args(args).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits until the tmux pane shows `needle`, returning the pane.
pub fn wait_for_pane(target: &str, needle: &str) -> String {
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

/// Kills a tmux session when dropped, whatever happened.
pub struct KillSession(pub String);

impl Drop for KillSession {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}

/// Whether the tmux session still exists.
pub fn has_session(name: &str) -> bool {
    Command::new("tmux")
        .args(["has-session", "-t", name])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
