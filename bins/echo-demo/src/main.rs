//! `echo-demo`: the echo server and client of the socket lessons.
//!
//! This file only parses the command line and hands over to the library
//! (`src/lib.rs` and its modules), where the lessons live.
//!
//! Exit status: 0 on success, 1 when the work failed, 2 for bad usage.
// A binary talks to its user on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use echo_demo::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Combinations clap cannot check by itself (e.g. `--upper` with frames)
    // are usage errors too: exit 2 with clap's usual message.
    if let Err(msg) = cli.validate() {
        Cli::command()
            .error(clap::error::ErrorKind::ArgumentConflict, msg)
            .exit();
    }
    match echo_demo::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo-demo: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
