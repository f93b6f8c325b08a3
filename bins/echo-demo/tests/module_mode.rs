//! Chapter 10 over real sockets: `module-server` pushes events while it
//! takes line commands whose arguments come on the following lines.
//!
//! The tests are scripted clients. They never sleep to wait for the
//! server: they read lines (with a read timeout as a safety net) and act
//! on what they have seen, e.g. "send the rest of ADDWORD once three more
//! events have arrived".
// Test code: a failing unwrap is a failing test. A missing tool (tmux, from
// scripts/install-deps.sh) fails the test that needs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{has_session, tmux, wait_for_pane, KillSession, Server, BIN};

/// Events every 20 ms: fast tests, and plenty of events around commands.
fn module_server() -> Server {
    Server::start(&[
        "module-server",
        "--addr",
        "tcp:127.0.0.1:0",
        "--interval-ms",
        "20",
    ])
}

/// A scripted client: writes raw bytes, reads lines, and sorts them into
/// the two streams, checking the events' order as they come.
struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    /// Sequence number of the last event seen.
    last_seq: u64,
    /// RECOGOUT words seen.
    words: Vec<String>,
}

#[derive(Debug)]
enum Line {
    /// An `<EVENT .../>` (its order and words are checked in `next`).
    Event,
    /// A `<REPLY .../>` or `<ERROR .../>`.
    Reply(String),
}

impl Client {
    fn connect(server: &Server) -> Client {
        let s = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client {
            writer: s.try_clone().unwrap(),
            reader: BufReader::new(s),
            last_seq: 0,
            words: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &str) {
        self.writer.write_all(bytes.as_bytes()).unwrap();
    }

    /// The next line; `None` at EOF. Events must come in sequence.
    fn next(&mut self) -> Option<Line> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).unwrap() == 0 {
            return None;
        }
        let line = line.strip_suffix('\n').expect("whole lines").to_owned();
        if line.starts_with("<EVENT ") {
            let seq: u64 = attr(&line, "seq").parse().unwrap();
            assert_eq!(seq, self.last_seq + 1, "events out of order: {line}");
            self.last_seq = seq;
            if line.contains(r#"type="RECOGOUT""#) {
                self.words.push(attr(&line, "word").to_owned());
            }
            return Some(Line::Event);
        }
        assert!(
            line.starts_with("<REPLY ") || line.starts_with("<ERROR "),
            "neither event nor reply: {line:?}"
        );
        Some(Line::Reply(line))
    }

    /// Reads until `n` more events have arrived; returns the replies seen
    /// on the way.
    fn events(&mut self, n: usize) -> Vec<String> {
        let mut replies = Vec::new();
        let mut seen = 0;
        while seen < n {
            match self.next().expect("EOF while waiting for events") {
                Line::Event => seen += 1,
                Line::Reply(r) => replies.push(r),
            }
        }
        replies
    }

    /// Reads until `n` replies have arrived (events are checked and
    /// counted on the way); returns the replies and the events seen.
    fn replies(&mut self, n: usize) -> (Vec<String>, usize) {
        let mut replies = Vec::new();
        let mut events = 0;
        while replies.len() < n {
            match self.next().expect("EOF while waiting for replies") {
                Line::Event => events += 1,
                Line::Reply(r) => replies.push(r),
            }
        }
        (replies, events)
    }
}

/// The value of `name="..."` in a line.
fn attr<'a>(line: &'a str, name: &str) -> &'a str {
    let start = line
        .find(&format!(" {name}=\""))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        + name.len()
        + 3;
    let len = line[start..].find('"').unwrap();
    &line[start..start + len]
}

#[test]
fn commands_with_argument_lines_are_answered_while_events_keep_coming() {
    let server = module_server();
    let mut c = Client::connect(&server);
    // Events arrive without any command.
    assert!(c.events(2).is_empty());

    // A command split across two writes in the middle of its line.
    c.send("STA");
    c.send("TUS\n");
    // Half of an ADDWORD: the command and its first argument line only.
    c.send("ADDWORD\ngreet\n");
    // While the server waits for the rest, events keep coming, and the
    // only reply is STATUS's: ADDWORD is not answered before DICEND.
    let replies = c.events(4);
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert!(
        replies[0].starts_with(r#"<REPLY cmd="STATUS" state="ACTIVE" words="3""#),
        "{replies:?}"
    );

    // The rest of ADDWORD, then a bad command, an ADDWORD with a bad
    // argument (CRLF line ends, too), and STATUS: all in one write.
    c.send(
        "konnichiwa\nsayonara\nDICEND\nBOGUS\n\
         ADDWORD\r\ng\r\nbad word\r\nfine\r\nDICEND\r\nSTATUS\n",
    );
    let (replies, _) = c.replies(4);
    assert_eq!(
        replies[0],
        r#"<REPLY cmd="ADDWORD" grammar="greet" added="2" words="5"/>"#
    );
    assert_eq!(
        replies[1],
        r#"<ERROR cmd="BOGUS" reason="unknown command"/>"#
    );
    assert!(
        replies[2].starts_with(r#"<ERROR cmd="ADDWORD" reason="bad word &quot;bad word&quot;"#),
        "{}",
        replies[2]
    );
    // The bad ADDWORD added nothing ("fine" included); the stream is in step.
    assert!(
        replies[3].starts_with(r#"<REPLY cmd="STATUS" state="ACTIVE" words="5""#),
        "{}",
        replies[3]
    );

    // The commands changed what the events say: the new words are
    // "recognised" within one round of the vocabulary (5 words, 3 events
    // per utterance).
    let deadline_events = 5 * 3 + 3;
    let mut n = 0;
    while !(c.words.iter().any(|w| w == "konnichiwa") && c.words.iter().any(|w| w == "sayonara")) {
        assert!(c.events(1).is_empty());
        n += 1;
        assert!(
            n <= deadline_events,
            "new words never recognised: {:?}",
            c.words
        );
    }
    assert!(!c.words.iter().any(|w| w == "fine"));
}

#[test]
fn pause_stops_the_events_and_resume_continues_the_sequence() {
    let server = module_server();
    let mut c = Client::connect(&server);
    c.events(1);
    c.send("PAUSE\n");
    let (replies, _) = c.replies(1);
    assert_eq!(replies, [r#"<REPLY cmd="PAUSE" state="PAUSED"/>"#]);
    // The reply and the events come from one writer, in order: after the
    // PAUSE reply no event may follow. Ten intervals of silence:
    c.writer
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut line = String::new();
    let err = c.reader.read_line(&mut line).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err}: {line:?}"
    );
    c.writer
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // Commands are still answered while paused.
    c.send("STATUS\nRESUME\n");
    let (replies, events) = c.replies(2);
    assert_eq!(events, 0);
    assert!(replies[0].starts_with(r#"<REPLY cmd="STATUS" state="PAUSED""#));
    assert_eq!(replies[1], r#"<REPLY cmd="RESUME" state="ACTIVE"/>"#);
    // The sequence goes on where it stopped (Client::next checks it).
    c.events(3);
}

#[test]
fn one_client_at_a_time_and_a_fresh_recogniser_for_the_next() {
    let server = module_server();
    let mut first = Client::connect(&server);
    first.send("ADDWORD\ng\nextra\nDICEND\n");
    first.replies(1);
    // A second client connects (the kernel accepts it into the backlog)
    // but hears nothing while the first one is served.
    let second = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut second = BufReader::new(second);
    let mut line = String::new();
    assert!(second.read_line(&mut line).is_err(), "{line:?}");
    // The first leaves: the second is served, from event 1, with the
    // initial vocabulary.
    drop(first);
    second
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    second.read_line(&mut line).unwrap();
    assert_eq!(line, "<EVENT seq=\"1\" type=\"STARTREC\"/>\n");
    second.get_mut().write_all(b"STATUS\n").unwrap();
    loop {
        line.clear();
        second.read_line(&mut line).unwrap();
        if line.starts_with("<REPLY") {
            assert!(line.contains(r#"words="3""#), "{line}");
            break;
        }
    }
}

#[test]
fn an_endless_line_drops_that_client_only() {
    let server = module_server();
    let mut bad = Client::connect(&server);
    // 100 KiB without a newline (the limit is 64 KiB).
    let long = "x".repeat(100 * 1024);
    let _ = bad.writer.write_all(long.as_bytes());
    // The server closes it: EOF (or a reset) after any events in flight.
    loop {
        let mut line = String::new();
        match bad.reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => assert!(line.starts_with("<EVENT"), "{line}"),
        }
    }
    let mut good = Client::connect(&server);
    good.send("STATUS\n");
    assert_eq!(good.replies(1).0.len(), 1);
}

#[test]
fn die_answers_then_stops_the_server() {
    let mut server = module_server();
    let mut c = Client::connect(&server);
    c.send("DIE\n");
    let (replies, _) = c.replies(1);
    assert_eq!(replies, [r#"<REPLY cmd="DIE"/>"#]);
    assert!(c.next().is_none(), "EOF after DIE");
    assert!(server.wait_exit().success());
}

#[test]
fn the_module_client_prints_replies_and_events_as_they_arrive() {
    let server = module_server();
    let out = Command::new(BIN)
        .args(["module-client", "--addr", &server.addr, "--timeout", "10"])
        .args(["--send", "STATUS", "--send", "ADDWORD", "--send", "greet"])
        .args(["--send", "konnichiwa", "--send", "DICEND", "--send", "NOPE"])
        .args(["--linger", "0.2"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let replies: Vec<&str> = text.lines().filter(|l| !l.starts_with("<EVENT")).collect();
    assert_eq!(replies.len(), 3, "{text}");
    assert!(replies[0].starts_with(r#"<REPLY cmd="STATUS""#), "{text}");
    assert_eq!(
        replies[1],
        r#"<REPLY cmd="ADDWORD" grammar="greet" added="1" words="4"/>"#
    );
    assert_eq!(
        replies[2],
        r#"<ERROR cmd="NOPE" reason="unknown command"/>"#
    );
    // --linger 0.2 with an event every 20 ms: events were printed too,
    // in order.
    let seqs: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("<EVENT"))
        .map(|l| attr(l, "seq").parse().unwrap())
        .collect();
    assert!(seqs.len() >= 3, "{text}");
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{text}");
}

#[test]
fn the_module_client_works_in_a_real_terminal() {
    assert!(
        tmux(&["-V"]).is_some(),
        "this test needs tmux: run scripts/install-deps.sh"
    );
    // Slow events, so the pane is readable and does not scroll away.
    let server = Server::start(&[
        "module-server",
        "--addr",
        "tcp:127.0.0.1:0",
        "--interval-ms",
        "300",
    ]);
    let session = format!("echo-demo-module-test-{}", std::process::id());
    let command = format!("{BIN} module-client --addr {}", server.addr);
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "150",
        "-y",
        "50",
        &command,
    ])
    .unwrap();
    let _guard = KillSession(session.clone());
    wait_for_pane(&session, "events arrive on their own");
    // Events arrive while the person has typed nothing.
    wait_for_pane(&session, r#"< <EVENT seq="2" type="RECOGOUT""#);
    // A command with argument lines, typed line by line.
    for line in ["ADDWORD", "greet", "konnichiwa", "DICEND"] {
        tmux(&["send-keys", "-t", &session, line, "Enter"]);
    }
    wait_for_pane(
        &session,
        r#"< <REPLY cmd="ADDWORD" grammar="greet" added="1" words="4"/>"#,
    );
    // DIE: the server answers and closes, and the client ends by itself.
    tmux(&["send-keys", "-t", &session, "DIE", "Enter"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while has_session(&session) {
        assert!(
            Instant::now() < deadline,
            "the client did not exit after DIE"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn module_usage_errors_exit_2() {
    for args in [
        &["module-server", "--interval-ms", "0"][..],
        &["module-server", "--words", "two words"],
        &["module-server", "--words", "a,,b"],
        &["module-server", "--addr", "nonsense"],
        &["module-client", "--linger", "-1"],
        &["module-client", "--timeout", "0"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}
