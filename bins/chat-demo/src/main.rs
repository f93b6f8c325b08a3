//! `chat-demo`: the chat server and client of the socket lessons.
//!
//! This file only parses the command line and hands over to the library.
//! Exit status: 0 on success, 1 when the work failed, 2 for bad usage.
// A binary talks to its user on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use chat_demo::cli::Cli;
use clap::Parser;

fn main() -> ExitCode {
    match chat_demo::run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-demo: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
