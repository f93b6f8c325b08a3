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
//! - [`reply`]: reply paths: the same connection, or a callback connection
//!   to the client's port+1 (`--reply callback`).
//! - [`module`]: the Julius-style module server: line commands with
//!   arguments on the following lines, and pushed events.
//! - [`module_client`]: its client, printing replies and events as they
//!   arrive.
//! - [`bench`]: the benchmark peer of `shared/bench/ipc`.
// This library is the body of a binary: it talks to its user on stdout and
// stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod bench;
pub mod cli;
pub mod client;
pub mod framing;
pub mod module;
pub mod module_client;
pub mod reply;
pub mod server;
pub mod session;

use std::io::Write;

use anyhow::Result;
use cli::{BenchCommand, Cli, Command, ModuleServerArgs, ServeArgs};
use ipc_proto::{ListenOptions, Listener};
use session::EchoConfig;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Client(args) => client::run(&args),
        Command::Bench(BenchCommand::Server(args)) => bench::server(&args),
        Command::Bench(BenchCommand::Client(args)) => bench::client(&args),
        Command::ModuleServer(args) => module_server(&args),
        Command::ModuleClient(args) => module_client::run(&args),
    }
}

/// `echo-demo module-server`: bind, say where, serve one client at a time.
fn module_server(args: &ModuleServerArgs) -> Result<()> {
    let listener = Listener::bind(&args.addr, &ListenOptions::default())?;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "listening on {} (module mode: one client at a time, an event every {} ms)",
        listener.local_endpoint(),
        args.interval_ms
    )?;
    stdout.flush()?;
    drop(stdout);
    let config = module::ModuleConfig {
        interval: std::time::Duration::from_millis(args.interval_ms),
        words: args.words.clone(),
    };
    module::serve(&listener, &config)
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
        "listening on {} (mode {:?}, framing {:?}{}{}{})",
        listener.local_endpoint(),
        args.mode,
        args.framing,
        if args.upper { ", upper" } else { "" },
        match args.reply {
            reply::ReplyPath::Same => String::new(),
            reply::ReplyPath::Callback =>
                format!(", replies call back on port+{}", args.callback_offset),
        },
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
        reply: args.reply,
        callback_offset: args.callback_offset,
    };
    server::serve(&listener, &config, args.mode)
}
