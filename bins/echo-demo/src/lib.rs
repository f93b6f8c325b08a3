//! echo-demo: the echo server and client of the socket lessons, as a
//! library that `main.rs` calls after parsing the command line.
//!
//! # Layout
//! - [`cli`]: the command line (clap), and the checks clap cannot do.
//! - [`framing`]: what a message is on a byte stream: raw reads, lines,
//!   ipc-proto frames, or a bare length prefix.
//! - [`session`]: the echo logic of one connection (stop word, `--upper`),
//!   shared by every server mode.
//! - [`server`]: the modes `single`, `sequential`, `threaded` and `poll`.
//! - [`client`]: the interactive and scripted client.
//! - [`bench`]: the benchmark peer of `shared/bench/ipc`.
// This library is the body of a binary: it talks to its user on stdout and
// stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod bench;
pub mod cli;
pub mod client;
pub mod framing;
pub mod server;
pub mod session;

use std::io::Write;

use anyhow::Result;
use cli::{BenchCommand, Cli, Command, ServeArgs};
use ipc_proto::{ListenOptions, Listener};
use session::EchoConfig;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Client(args) => client::run(&args),
        Command::Bench(BenchCommand::Server(args)) => bench::server(&args),
        Command::Bench(BenchCommand::Client(args)) => bench::client(&args),
    }
}

/// `echo-demo serve`: bind, say where, serve.
fn serve(args: &ServeArgs) -> Result<()> {
    let endpoint = args.addr.endpoint();
    let listener = Listener::bind(&endpoint, &ListenOptions::default())?;
    // The first line on stdout says where we listen (tests and scripts read
    // it to learn the port the OS picked for `:0`).
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "listening on {} (mode {:?}, framing {:?}{}{})",
        listener.local_endpoint(),
        args.mode,
        args.framing,
        if args.upper { ", upper" } else { "" },
        args.stop_word
            .as_ref()
            .map(|w| format!(", stop word {w:?}"))
            .unwrap_or_default(),
    )?;
    stdout.flush()?;
    drop(stdout);
    let config = EchoConfig {
        framing: args.framing,
        upper: args.upper,
        stop_word: args.stop_word.as_ref().map(|w| w.as_bytes().to_vec()),
        verbose: args.verbose,
    };
    server::serve(&listener, &config, args.mode)
}
