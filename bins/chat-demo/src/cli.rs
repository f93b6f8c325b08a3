//! The command line.
//!
//! ```text
//! chat-demo server --addr ADDR [--secret S | --secret-file F] [--outbox N] [--nicknames]
//! chat-demo client --addr ADDR --nick NAME [--secret S | --secret-file F] [--pickle] [--nicknames]
//! ```
//!
//! Without `--nicknames`, both speak seed 004's protocol: every message is
//! a chat line, and the client writes `NAME: line` itself (so the seed's
//! own client and server work with ours). With `--nicknames` on both, the
//! client's first message is its nickname and the server prefixes lines
//! with it.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use ipc_proto::Endpoint;

/// Chat server and client; speaks Python's multiprocessing.connection.
#[derive(Debug, Parser)]
#[command(name = "chat-demo", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the chat server.
    Server(ServerArgs),
    /// Join a chat from the terminal (stdin lines are sent; `:end` leaves).
    Client(ClientArgs),
}

/// The shared secret (Python's `authkey`), given or read from a file.
#[derive(Debug, Args, Clone)]
pub struct SecretArgs {
    /// The shared secret (visible in `ps`; prefer --secret-file).
    #[arg(long, conflicts_with = "secret_file")]
    pub secret: Option<String>,
    /// A file holding the shared secret (one trailing newline is ignored).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
}

impl SecretArgs {
    /// The key bytes, if any. An empty secret is refused.
    pub fn key(&self) -> Result<Option<Vec<u8>>> {
        let key = match (&self.secret, &self.secret_file) {
            (Some(s), _) => s.as_bytes().to_vec(),
            (None, Some(path)) => read_key_file(path)
                .with_context(|| format!("reading --secret-file {}", path.display()))?,
            (None, None) => return Ok(None),
        };
        if key.is_empty() {
            bail!("the shared secret is empty");
        }
        Ok(Some(key))
    }
}

/// Reads a key file the way `ipc_proto::Secret::from_file` does (one
/// trailing `\n` or `\r\n` removed), keeping the bytes.
fn read_key_file(path: &std::path::Path) -> Result<Vec<u8>> {
    let mut bytes = std::fs::read(path)?;
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    Ok(bytes)
}

fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    s.parse::<Endpoint>().map_err(|e| e.to_string())
}

/// `chat-demo server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// `tcp:HOST:PORT` or `unix:PATH` (port 0: the OS picks one).
    #[arg(long, value_parser = parse_endpoint)]
    pub addr: Endpoint,
    /// Shared secret.
    #[command(flatten)]
    pub secret: SecretArgs,
    /// Messages queued for one client before it counts as too slow and is
    /// dropped.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub outbox: u32,
    /// Listen on a non-loopback address without a secret.
    #[arg(long)]
    pub insecure: bool,
    /// The first message of each client is its nickname, and lines are
    /// broadcast as `nick: line`. Without it the server speaks the
    /// protocol of seed 004's server: every message is a chat line,
    /// broadcast as it is.
    #[arg(long)]
    pub nicknames: bool,
}

/// `chat-demo client`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The server (ours, or a Python `Listener`).
    #[arg(long, value_parser = parse_endpoint)]
    pub addr: Endpoint,
    /// Your name: each line is sent as `NAME: line` (seed 004's client),
    /// or with --nicknames sent once, first.
    #[arg(long)]
    pub nick: String,
    /// The server runs with --nicknames: send the name as the first
    /// message and lines as they are.
    #[arg(long)]
    pub nicknames: bool,
    /// Shared secret.
    #[command(flatten)]
    pub secret: SecretArgs,
    /// Send the pickle of a str instead of UTF-8 bytes (what Python's
    /// `send(str)` does), for a Python peer that uses `recv()` (such as
    /// seed 004's server).
    #[arg(long)]
    pub pickle: bool,
}
