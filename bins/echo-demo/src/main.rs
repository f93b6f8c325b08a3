//! `echo-demo`: the echo server and client of the socket lessons. The
//! lessons are built in the teaching issue; until then this binary only says so.

fn main() -> anyhow::Result<()> {
    anyhow::bail!(
        "echo-demo is not built yet: it comes with the teaching issue (echo and chat demos)"
    )
}
