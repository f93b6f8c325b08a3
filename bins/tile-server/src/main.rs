//! `tile-server`: the warm tile render server (a thin `main` over
//! render-service). The server itself is built in the render-service issue;
//! until then this binary only says so.
// A binary talks to its user on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

fn main() -> anyhow::Result<()> {
    anyhow::bail!(
        "tile-server is not built yet: the render server comes with the render-service issue. \
         Try `tile-client tiles --bbox W,S,E,N --zoom A-B` meanwhile."
    )
}
