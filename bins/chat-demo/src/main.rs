//! `chat-demo`: the chat server and client of the socket lessons. The
//! lessons are built in the teaching issue; until then this binary only says so.

fn main() -> anyhow::Result<()> {
    anyhow::bail!(
        "chat-demo is not built yet: it comes with the teaching issue (echo and chat demos)"
    )
}
