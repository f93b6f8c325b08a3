//! The terminal chat client: joins our server or a Python `Listener`.
//!
//! By default it talks like seed 004's client: no nickname step, and every
//! line goes out as `NAME: line` (`:end` alone). With `--nicknames` it
//! sends the name first and lines as they are, for a server started with
//! `--nicknames`.
//!
//! Two things happen at once: lines typed on stdin go to the server, and
//! lines from the server are printed as they arrive. So there are two
//! threads (stdin reader and socket reader) and the main thread waits for
//! whichever has something: a typed line to send, or the news that the
//! server ended the session.

use std::io::{self, BufRead, Write};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use crossbeam_channel::{bounded, select};
use ipc_proto::{Stream, Transport};

use crate::cli::ClientArgs;
use crate::mpconn;
use crate::server::{END_CODE, MAX_MESSAGE};
use crate::text::{self, Style};

/// How long to wait for the server's `:end` after we said `:end`.
const GOODBYE_WAIT: Duration = Duration::from_secs(5);

/// Runs `chat-demo client`.
pub fn run(args: &ClientArgs) -> Result<()> {
    let key = args.secret.key()?;
    let mut stream = args.addr.connect()?;
    if let Some(key) = &key {
        mpconn::client_handshake(&mut stream, key).context("joining the chat")?;
    }
    let style = if args.pickle {
        Style::Pickle
    } else {
        Style::Bytes
    };
    if args.nicknames {
        send(&mut stream, &args.nick, style)?;
    }
    // Seed 004's client says who it is in every line.
    let outgoing = |line: &str| -> String {
        if args.nicknames || line == END_CODE {
            line.to_owned()
        } else {
            format!("{}: {line}", args.nick)
        }
    };

    // Thread 1: the server's lines to stdout, until `:end` or EOF.
    let (done_tx, done_rx) = bounded::<Result<()>>(1);
    let mut reader = stream.try_clone()?;
    thread::spawn(move || {
        let _ = done_tx.send(print_incoming(&mut reader));
    });
    // Thread 2: stdin lines into a channel; the channel closes at EOF.
    let (line_tx, line_rx) = bounded::<io::Result<String>>(16);
    thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });

    loop {
        select! {
            recv(line_rx) -> line => match line {
                Ok(line) => {
                    let line = line.context("reading stdin")?;
                    send(&mut stream, &outgoing(&line), style)?;
                    if line == END_CODE {
                        break;
                    }
                }
                // Ctrl-D / end of the script: leave politely.
                Err(_) => {
                    send(&mut stream, END_CODE, style)?;
                    break;
                }
            },
            // The server ended the session (its `:end`, or it closed).
            recv(done_rx) -> result => return result.unwrap_or(Ok(())),
        }
    }
    // We said `:end`; the server answers `:end` and closes.
    done_rx.recv_timeout(GOODBYE_WAIT).unwrap_or(Ok(()))
}

fn send(stream: &mut Stream, line: &str, style: Style) -> Result<()> {
    mpconn::send_bytes(stream, &text::encode(line, style)).context("sending to the server")
}

/// Prints every line from the server until its `:end` or EOF.
fn print_incoming(stream: &mut Stream) -> Result<()> {
    let mut out = io::stdout();
    loop {
        let Some(message) = mpconn::recv_bytes(stream, MAX_MESSAGE)? else {
            writeln!(out, "* the server closed the connection")?;
            return Ok(());
        };
        match text::decode(&message) {
            Ok((line, _)) if line == END_CODE => return Ok(()),
            Ok((line, _)) => writeln!(out, "{line}")?,
            Err(e) => eprintln!("* a message from the server was refused: {e}"),
        }
        out.flush()?;
    }
}
