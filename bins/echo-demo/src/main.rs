//! `echo-demo`: the echo server and client of the socket lessons. The
//! lessons are built in the teaching issue; until then this binary only says so.
// A binary talks to its user on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

fn main() -> anyhow::Result<()> {
    anyhow::bail!(
        "echo-demo is not built yet: it comes with the teaching issue (echo and chat demos)"
    )
}
