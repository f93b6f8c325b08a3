//! The client of `module-server` (chapter 10): it sends command lines and
//! prints every line the server sends **as soon as it arrives**, replies and
//! events alike.
//!
//! Such a client cannot "send a command, then read its reply": the next
//! line may be an event that has nothing to do with the command (seed
//! 001's `rapiro.py` just loops on `recv`). So it, too, has two threads:
//! one prints what the server sends, one sends what the user types (or the
//! `--send` lines). On a terminal the two show up interleaved, which is the
//! point.
//!
//! At the end of the input (Ctrl-D, the last `--send` line plus
//! `--linger`), the client half-closes (chapter 5): the server answers what
//! it has received, sees EOF, and closes; the printer reads up to that EOF,
//! so no reply is lost.

use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::net::Shutdown;
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ipc_proto::Transport;

use crate::cli::ModuleClientArgs;
use crate::framing::Framing;

/// Runs `echo-demo module-client`.
pub fn run(args: &ModuleClientArgs) -> Result<()> {
    let stream = args.addr.connect()?;
    if let Some(secs) = args.timeout {
        stream.set_read_timeout(Some(Duration::from_secs_f64(secs)))?;
    }
    let interactive = args.send.is_empty() && io::stdin().is_terminal();
    if interactive {
        eprintln!(
            "connected to {}: type commands (arguments on the next lines), \
             Ctrl-D to quit; events arrive on their own",
            args.addr
        );
    }

    // Thread 1: print whatever the server sends, when it sends it.
    let reader = stream.try_clone()?;
    let printer = thread::spawn(move || print_server_lines(reader, interactive));

    // This thread: send the input lines, one `write` each.
    let input: Box<dyn Iterator<Item = io::Result<String>>> = if args.send.is_empty() {
        Box::new(io::stdin().lock().lines())
    } else {
        Box::new(args.send.clone().into_iter().map(Ok))
    };
    let mut writer = stream;
    let mut sent_all = true;
    for line in input {
        let mut wire = Vec::new();
        Framing::Lines.encode(line?.as_bytes(), &mut wire)?;
        if writer.write_all(&wire).is_err() {
            // The server is gone (after DIE, say); the printer says so.
            sent_all = false;
            break;
        }
    }
    if args.linger > 0.0 {
        // Not a synchronisation: the user asked to watch events for a while.
        thread::sleep(Duration::from_secs_f64(args.linger));
    }
    // Half-close: "no more commands". The server replies to everything it
    // got, then closes, and the printer sees EOF.
    let _ = writer.shutdown(Shutdown::Write);
    let printed = match printer.join() {
        Ok(r) => r?,
        Err(_) => bail!("the printer thread panicked"),
    };
    if !sent_all {
        bail!("the server closed the connection before all lines were sent ({printed} lines received)");
    }
    Ok(())
}

/// Prints each line from the server until EOF; returns how many.
fn print_server_lines(mut stream: ipc_proto::Stream, interactive: bool) -> Result<u64> {
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    let mut count = 0;
    loop {
        while let Some((used, payload)) = Framing::Lines.split(&pending)? {
            let line = String::from_utf8_lossy(&pending[payload]).into_owned();
            pending.drain(..used);
            let mut out = io::stdout().lock();
            writeln!(out, "{}{line}", if interactive { "< " } else { "" })?;
            out.flush()?;
            count += 1;
        }
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                bail!("the server sent nothing within the --timeout")
            }
            Err(e) => return Err(e).context("reading from the server"),
        };
        if n == 0 {
            if interactive {
                // The other thread is blocked reading the terminal, and a
                // blocking read of stdin cannot be interrupted: end here.
                eprintln!("(the server closed the connection)");
                std::process::exit(0);
            }
            return Ok(count);
        }
        pending.extend_from_slice(&buf[..n]);
    }
}
