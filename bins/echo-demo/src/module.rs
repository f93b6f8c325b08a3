//! Lesson 8 (chapter 10): a server that pushes events to its one client
//! while it takes line commands, modelled on the "module mode" of the
//! Julius speech recogniser (seed 001).
//!
//! # The protocol
//!
//! Client to server: one command per line; a command that needs arguments
//! takes them **on the following lines**. Only `ADDWORD` has arguments here:
//! a grammar name, then one word per line, then the terminator `DICEND`.
//!
//! ```text
//! STATUS                     <REPLY cmd="STATUS" state="ACTIVE" words="3" events="7"/>
//! PAUSE                      <REPLY cmd="PAUSE" state="PAUSED"/>   (events stop)
//! RESUME                     <REPLY cmd="RESUME" state="ACTIVE"/>  (events go on)
//! ADDWORD                    <REPLY cmd="ADDWORD" grammar="greet" added="2" words="5"/>
//! greet
//! konnichiwa
//! sayonara
//! DICEND
//! DIE                        <REPLY cmd="DIE"/>, then the server exits
//! anything else              <ERROR cmd="..." reason="unknown command"/>
//! ```
//!
//! Server to client, whenever the "recogniser" has something (one event
//! per `--interval-ms`, while not paused):
//!
//! ```text
//! <EVENT seq="1" type="STARTREC"/>
//! <EVENT seq="2" type="RECOGOUT" grammar="default" word="tessera"/>
//! <EVENT seq="3" type="ENDREC"/>
//! ```
//!
//! Every server message is one line. (Real Julius sends multi-line XML-ish
//! blocks, each ended by a line holding a single `.`; one line per message
//! keeps the demo's framing the one of chapter 1.)
//!
//! # Why two threads
//!
//! The connection carries two independent flows: commands in, and events
//! out on a timer. Here one thread **reads**: it turns lines into whole
//! commands (a command whose argument lines are still on their way is not
//! finished, so nobody waits for it). The other thread **owns everything
//! else**: the recogniser's state and the write half of the socket. It
//! waits on a channel for the next command, with a timeout that ends at the
//! next event's due time; whichever comes first is handled, so an event is
//! never late because of a half-sent command, and a command is answered at
//! once however many events are due. As only that thread writes, a reply
//! and an event can never be mixed up on the wire, and the state needs no
//! lock.
//!
//! A readiness loop (chapter 3, `mio`) would do the same in one thread,
//! with the timer as `poll`'s timeout; it would also need non-blocking
//! writes and an output buffer. With exactly one client (Julius serves one
//! at a time), two threads are simpler to read, and cost nothing.
//!
//! tile-server does the same with finished tiles: `TileDone` notifications
//! are pushed on the connection that carries the client's requests.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use ipc_proto::{Listener, Stream, Transport};

use crate::framing::Framing;

/// The line that ends `ADDWORD`'s word list (Julius's dictionary terminator).
pub const DICEND: &str = "DICEND";
/// Most words one `ADDWORD` may add.
const MAX_WORDS_PER_ADD: usize = 1000;
/// Most words in the vocabulary.
const MAX_VOCABULARY: usize = 10_000;
/// A client that reads nothing for this long (its socket buffer full) is
/// dropped, so it cannot stall the server forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A whole command, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Report the state.
    Status,
    /// Stop pushing events.
    Pause,
    /// Push events again.
    Resume,
    /// Add words to the vocabulary under a grammar name.
    AddWord {
        /// The first argument line.
        grammar: String,
        /// The lines up to `DICEND`.
        words: Vec<String>,
    },
    /// Reply, close, and stop the server.
    Die,
}

/// A command that cannot be carried out; the server answers `<ERROR .../>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    /// The command line (or the part of it worth showing).
    pub cmd: String,
    /// Why.
    pub reason: String,
}

/// Turns lines into commands. It remembers where it is inside a multi-line
/// command, so lines can arrive one by one, at any pace.
#[derive(Debug, Default)]
pub struct CommandParser {
    state: ParseState,
}

#[derive(Debug, Default)]
enum ParseState {
    /// The next line is a command.
    #[default]
    Idle,
    /// After `ADDWORD`: the next line is the grammar name.
    AddWordGrammar,
    /// Reading words until `DICEND`. `error` remembers the first bad
    /// argument: the remaining lines up to `DICEND` are still consumed, so
    /// the stream stays in step, and the reply is an error.
    AddWordWords {
        grammar: String,
        words: Vec<String>,
        error: Option<String>,
    },
}

impl CommandParser {
    /// Takes one line (without its `\n`). Returns `None` while a command
    /// still waits for argument lines (and for an empty line between
    /// commands), else the command or why it is refused.
    pub fn feed(&mut self, line: &str) -> Option<Result<Command, CommandError>> {
        match std::mem::take(&mut self.state) {
            ParseState::Idle => match line {
                "" => None, // a stray Enter
                "STATUS" => Some(Ok(Command::Status)),
                "PAUSE" => Some(Ok(Command::Pause)),
                "RESUME" => Some(Ok(Command::Resume)),
                "DIE" => Some(Ok(Command::Die)),
                "ADDWORD" => {
                    self.state = ParseState::AddWordGrammar;
                    None
                }
                other => Some(Err(CommandError {
                    cmd: other.to_owned(),
                    reason: "unknown command".into(),
                })),
            },
            ParseState::AddWordGrammar => {
                // A DICEND right away: ADDWORD without any argument.
                if line == DICEND {
                    return Some(Err(addword_error("no grammar name before DICEND")));
                }
                let error = check_word(line)
                    .err()
                    .map(|why| format!("bad grammar name {line:?}: {why}"));
                self.state = ParseState::AddWordWords {
                    grammar: line.to_owned(),
                    words: Vec::new(),
                    error,
                };
                None
            }
            ParseState::AddWordWords {
                grammar,
                mut words,
                mut error,
            } => {
                if line == DICEND {
                    return Some(match error {
                        Some(why) => Err(addword_error(&why)),
                        None if words.is_empty() => Err(addword_error("no words before DICEND")),
                        None => Ok(Command::AddWord { grammar, words }),
                    });
                }
                if error.is_none() {
                    if let Err(why) = check_word(line) {
                        error = Some(format!("bad word {line:?}: {why}"));
                    } else if words.len() == MAX_WORDS_PER_ADD {
                        error = Some(format!("more than {MAX_WORDS_PER_ADD} words"));
                    } else {
                        words.push(line.to_owned());
                    }
                }
                self.state = ParseState::AddWordWords {
                    grammar,
                    words,
                    error,
                };
                None
            }
        }
    }
}

fn addword_error(reason: &str) -> CommandError {
    CommandError {
        cmd: "ADDWORD".into(),
        reason: reason.into(),
    }
}

/// A word or grammar name: 1 to 64 letters, digits, `-` or `_`, so that it
/// needs no quoting in the replies. (`DICEND` passes too, but can never be
/// added: inside `ADDWORD` it ends the list.)
pub fn check_word(word: &str) -> Result<(), &'static str> {
    if word.is_empty() {
        return Err("empty");
    }
    if word.chars().count() > 64 {
        return Err("longer than 64 characters");
    }
    if !word
        .chars()
        .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    {
        return Err("only letters, digits, '-' and '_' are allowed");
    }
    Ok(())
}

/// The fake recogniser: the state that commands change and events report.
#[derive(Debug)]
pub struct Recognizer {
    active: bool,
    /// Sequence number of the last event sent.
    seq: u64,
    /// Which event of the cycle STARTREC, RECOGOUT, ENDREC comes next.
    phase: usize,
    /// (grammar, word), in the order added.
    vocabulary: Vec<(String, String)>,
    /// Index of the word the next RECOGOUT "recognises".
    next_word: usize,
}

impl Recognizer {
    /// A recogniser that knows `words` (grammar `default`).
    pub fn new(words: &[String]) -> Self {
        Self {
            active: true,
            seq: 0,
            phase: 0,
            vocabulary: words
                .iter()
                .map(|w| ("default".to_owned(), w.clone()))
                .collect(),
            next_word: 0,
        }
    }

    /// The next event, if not paused.
    pub fn tick(&mut self) -> Option<String> {
        if !self.active {
            return None;
        }
        self.seq += 1;
        let seq = self.seq;
        let event = match self.phase {
            0 => format!(r#"<EVENT seq="{seq}" type="STARTREC"/>"#),
            1 => match self
                .vocabulary
                .get(self.next_word % self.vocabulary.len().max(1))
            {
                Some((grammar, word)) => {
                    self.next_word = (self.next_word + 1) % self.vocabulary.len();
                    format!(
                        r#"<EVENT seq="{seq}" type="RECOGOUT" grammar="{grammar}" word="{word}"/>"#
                    )
                }
                None => {
                    format!(r#"<EVENT seq="{seq}" type="REJECTED" reason="empty vocabulary"/>"#)
                }
            },
            _ => format!(r#"<EVENT seq="{seq}" type="ENDREC"/>"#),
        };
        self.phase = (self.phase + 1) % 3;
        Some(event)
    }

    /// Carries out a command and returns the reply line.
    pub fn handle(&mut self, command: &Command) -> String {
        match command {
            Command::Status => format!(
                r#"<REPLY cmd="STATUS" state="{}" words="{}" events="{}"/>"#,
                self.state(),
                self.vocabulary.len(),
                self.seq
            ),
            Command::Pause | Command::Resume => {
                self.active = *command == Command::Resume;
                let cmd = if self.active { "RESUME" } else { "PAUSE" };
                format!(r#"<REPLY cmd="{cmd}" state="{}"/>"#, self.state())
            }
            Command::AddWord { grammar, words } => {
                let mut added = 0;
                for w in words {
                    let entry = (grammar.clone(), w.clone());
                    if self.vocabulary.len() < MAX_VOCABULARY && !self.vocabulary.contains(&entry) {
                        self.vocabulary.push(entry);
                        added += 1;
                    }
                }
                format!(
                    r#"<REPLY cmd="ADDWORD" grammar="{grammar}" added="{added}" words="{}"/>"#,
                    self.vocabulary.len()
                )
            }
            Command::Die => r#"<REPLY cmd="DIE"/>"#.to_owned(),
        }
    }

    fn state(&self) -> &'static str {
        if self.active {
            "ACTIVE"
        } else {
            "PAUSED"
        }
    }
}

/// The reply to a refused command. The client's text is quoted safely.
pub fn error_line(e: &CommandError) -> String {
    let cmd: String = e.cmd.chars().take(64).collect();
    format!(
        r#"<ERROR cmd="{}" reason="{}"/>"#,
        xml_attr(&cmd),
        xml_attr(&e.reason)
    )
}

fn xml_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c if c.is_control() => {
                let _ = write!(out, "&#{};", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Settings of `echo-demo module-server`.
#[derive(Debug, Clone)]
pub struct ModuleConfig {
    /// Time between two events.
    pub interval: Duration,
    /// The vocabulary each new client starts with.
    pub words: Vec<String>,
}

/// What the reader thread tells the main thread.
enum Input {
    Command(Command),
    Refused(CommandError),
    /// EOF, or the connection failed: the client is gone.
    Closed,
}

/// Serves one client at a time, like Julius: while one is connected, the
/// next waits in the listen backlog. Returns after `DIE`.
pub fn serve(listener: &Listener, config: &ModuleConfig) -> Result<()> {
    loop {
        let stream = listener.accept()?;
        let peer = stream.peer_description();
        log(&format!("[{peer}] connected: recognition starts"));
        match serve_client(stream, config) {
            Ok(Outcome::Die) => {
                log(&format!("[{peer}] sent DIE: stopping"));
                return Ok(());
            }
            Ok(Outcome::Left) => log(&format!("[{peer}] left: waiting for the next client")),
            Err(e) => log(&format!("[{peer}] dropped: {e:#}")),
        }
    }
}

enum Outcome {
    Left,
    Die,
}

/// The two threads of one client (see the module documentation).
fn serve_client(stream: Stream, config: &ModuleConfig) -> Result<Outcome> {
    let (tx, inputs) = mpsc::channel();
    let reader = stream.try_clone()?;
    let reader_thread = thread::spawn(move || read_commands(reader, &tx));
    let mut writer = stream;
    writer.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let outcome = push_and_reply(&mut writer, &inputs, config);
    // Wake the reader thread if it is still blocked in `read`, then wait
    // for it, so no thread outlives its client.
    let _ = writer.shutdown(Shutdown::Both);
    let _ = reader_thread.join();
    outcome
}

/// Thread 1: read lines, turn them into commands, hand them over. A
/// command whose argument lines are still coming is simply not handed over
/// yet: nobody waits for it.
fn read_commands(mut stream: Stream, tx: &Sender<Input>) {
    let mut parser = CommandParser::default();
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // Every whole line received so far.
        loop {
            let (used, payload) = match Framing::Lines.split(&pending) {
                Ok(Some(found)) => found,
                Ok(None) => break,
                Err(e) => {
                    // A line longer than MAX_LINE: this stream cannot be
                    // trusted any more; close it.
                    log(&format!("closing: {e}"));
                    let _ = tx.send(Input::Closed);
                    return;
                }
            };
            let line = String::from_utf8_lossy(&pending[payload]).into_owned();
            pending.drain(..used);
            let input = match parser.feed(&line) {
                None => continue,
                Some(Ok(c)) => Input::Command(c),
                Some(Err(e)) => Input::Refused(e),
            };
            if tx.send(input).is_err() {
                return; // the main thread is done with this client
            }
        }
        match stream.read(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(0) | Err(_) => {
                let _ = tx.send(Input::Closed);
                return;
            }
            Ok(n) => pending.extend_from_slice(&buf[..n]),
        }
    }
}

/// Thread 2 (the caller's): owns the recogniser and the write half. Waits
/// for a command until the next event is due, then does whichever came.
fn push_and_reply(
    writer: &mut Stream,
    inputs: &mpsc::Receiver<Input>,
    config: &ModuleConfig,
) -> Result<Outcome> {
    let mut recognizer = Recognizer::new(&config.words);
    let mut next_event = Instant::now() + config.interval;
    loop {
        let wait = next_event.saturating_duration_since(Instant::now());
        let line = match inputs.recv_timeout(wait) {
            Ok(Input::Command(c)) => {
                let reply = recognizer.handle(&c);
                send_line(writer, &reply)?;
                if c == Command::Die {
                    return Ok(Outcome::Die);
                }
                continue;
            }
            Ok(Input::Refused(e)) => error_line(&e),
            Ok(Input::Closed) | Err(RecvTimeoutError::Disconnected) => return Ok(Outcome::Left),
            Err(RecvTimeoutError::Timeout) => {
                // The event is due. If we fell behind (a slow client), skip
                // ahead instead of sending a burst of stale events.
                next_event = (next_event + config.interval).max(Instant::now());
                match recognizer.tick() {
                    Some(event) => event,
                    None => continue, // paused
                }
            }
        };
        send_line(writer, &line)?;
    }
}

/// One message, one `write`: a line is never split between two writes, so
/// the client never sees half an event.
fn send_line(writer: &mut Stream, line: &str) -> Result<()> {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    match writer.write_all(&bytes) {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            bail!("the client read nothing for {WRITE_TIMEOUT:?}")
        }
        Err(e) => Err(e.into()),
    }
}

// The server tells its operator what happens, on stderr.
#[allow(clippy::print_stderr)]
fn log(msg: &str) {
    eprintln!("echo-demo module-server: {msg}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(p: &mut CommandParser, lines: &[&str]) -> Vec<Result<Command, CommandError>> {
        lines.iter().filter_map(|l| p.feed(l)).collect()
    }

    #[test]
    fn addword_takes_its_arguments_from_the_following_lines() {
        let mut p = CommandParser::default();
        assert_eq!(p.feed("ADDWORD"), None);
        assert_eq!(p.feed("greet"), None);
        assert_eq!(p.feed("konnichiwa"), None);
        assert_eq!(p.feed("STATUS"), None, "inside ADDWORD, STATUS is a word");
        assert_eq!(
            p.feed(DICEND),
            Some(Ok(Command::AddWord {
                grammar: "greet".into(),
                words: vec!["konnichiwa".into(), "STATUS".into()],
            }))
        );
        assert_eq!(p.feed("STATUS"), Some(Ok(Command::Status)));
    }

    #[test]
    fn bad_arguments_are_consumed_up_to_dicend_then_refused() {
        let mut p = CommandParser::default();
        let got = feed_all(
            &mut p,
            &["ADDWORD", "greet", "two words", "fine", DICEND, "PAUSE"],
        );
        assert_eq!(got.len(), 2);
        let err = got[0].clone().unwrap_err();
        assert!(err.reason.contains("two words"), "{err:?}");
        assert_eq!(got[1], Ok(Command::Pause));

        let got = feed_all(
            &mut p,
            &["ADDWORD", DICEND, "ADDWORD", "g", DICEND, "BOGUS"],
        );
        assert_eq!(got.len(), 3);
        assert!(got[0].clone().unwrap_err().reason.contains("no grammar"));
        assert!(got[1].clone().unwrap_err().reason.contains("no words"));
        assert_eq!(got[2].clone().unwrap_err().reason, "unknown command");
    }

    #[test]
    fn events_cycle_and_stop_while_paused() {
        let mut r = Recognizer::new(&["a".into(), "b".into()]);
        let first: Vec<String> = (0..3).filter_map(|_| r.tick()).collect();
        assert_eq!(
            first,
            [
                r#"<EVENT seq="1" type="STARTREC"/>"#,
                r#"<EVENT seq="2" type="RECOGOUT" grammar="default" word="a"/>"#,
                r#"<EVENT seq="3" type="ENDREC"/>"#,
            ]
        );
        r.handle(&Command::Pause);
        assert_eq!(r.tick(), None);
        r.handle(&Command::Resume);
        assert_eq!(r.tick().unwrap(), r#"<EVENT seq="4" type="STARTREC"/>"#);
        let reply = r.handle(&Command::AddWord {
            grammar: "g".into(),
            words: vec!["a".into(), "c".into(), "c".into()],
        });
        assert_eq!(
            reply,
            r#"<REPLY cmd="ADDWORD" grammar="g" added="2" words="4"/>"#
        );
    }

    #[test]
    fn error_replies_quote_the_clients_text() {
        let e = CommandError {
            cmd: r#"<x a="1">&"#.into(),
            reason: "unknown command".into(),
        };
        assert_eq!(
            error_line(&e),
            r#"<ERROR cmd="&lt;x a=&quot;1&quot;&gt;&amp;" reason="unknown command"/>"#
        );
    }
}
