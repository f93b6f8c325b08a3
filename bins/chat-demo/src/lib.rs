//! chat-demo: the chat server and client of the socket lessons, speaking
//! the wire protocol of Python's `multiprocessing.connection` so that
//! Python and Rust chat together.
//!
//! The chat speaks **mpconn framing only** (4-byte big-endian length), not
//! ipc-proto frames: a Python `Client(address, authkey=...)` must be able
//! to join the very same room as our terminal client, and one framing per
//! server keeps the server (and the lesson) simple.
//!
//! # Layout
//! - [`cli`]: the command line.
//! - [`mpconn`]: `multiprocessing.connection`'s framing and its authkey
//!   handshake (HMAC-MD5 of Python <= 3.11, `{sha256}` of 3.12+).
//! - [`pickle`]: decodes the pickle of a `str` and refuses everything else;
//!   never unpickles.
//! - [`text`]: a message as text, sent as UTF-8 bytes or as a pickled str.
//! - [`server`]: the room, broadcast and the bounded per-client outbox.
//! - [`client`]: the terminal client.
// This library is the body of a binary: it talks to its user on stdout and
// stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod cli;
pub mod client;
pub mod mpconn;
pub mod pickle;
pub mod server;
pub mod text;

use std::io::Write;

use anyhow::Result;
use cli::{Cli, Command, ServerArgs};
use ipc_proto::{ListenOptions, Listener, Secret};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Server(args) => serve(&args),
        Command::Client(args) => client::run(&args),
    }
}

fn serve(args: &ServerArgs) -> Result<()> {
    let key = args.secret.key()?;
    // ipc-proto refuses a non-loopback address without a secret unless told.
    let options = ListenOptions {
        secret: key.clone().map(Secret::new).transpose()?,
        allow_insecure_remote: args.insecure,
    };
    let listener = Listener::bind(&args.addr, &options)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "listening on {} ({}; {})",
        listener.local_endpoint(),
        if key.is_some() {
            "clients must know the shared secret"
        } else {
            "no secret: anyone who can connect may chat"
        },
        if args.nicknames {
            "the first message of a client is its nickname"
        } else {
            "every message is a chat line"
        }
    )?;
    stdout.flush()?;
    drop(stdout);
    server::serve(
        &listener,
        &server::ServerConfig {
            key,
            outbox: args.outbox as usize,
            nicknames: args.nicknames,
        },
    )
}
