//! What the echo server does with the bytes of one connection, whatever the
//! server mode. Every mode (single, sequential, threaded, poll) feeds a
//! [`Session`] the bytes it reads and writes back what the session puts in
//! `out`; only *how* the sockets are waited on differs between modes.

use anyhow::Result;

use crate::framing::Framing;
use crate::reply::ReplyPath;

/// What the server should do after some bytes or the end of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep the connection open and keep reading.
    Continue,
    /// The client sent the stop word: close, and stop the whole server.
    StopServer,
}

/// Settings shared by all connections of a server.
#[derive(Debug, Clone)]
pub struct EchoConfig {
    /// How messages are delimited.
    pub framing: Framing,
    /// Read to EOF, then answer upper-cased (the Unix-socket lesson).
    pub upper: bool,
    /// The message that stops the server.
    pub stop_word: Option<Vec<u8>>,
    /// Log every message to stderr.
    pub verbose: bool,
    /// Where replies go: the same connection, or a callback (chapter 6).
    pub reply: ReplyPath,
    /// With [`ReplyPath::Callback`]: call back on our port + this.
    pub callback_offset: u16,
}

/// The echo logic of one connection.
#[derive(Debug)]
pub struct Session {
    /// The server's settings.
    config: EchoConfig,
    /// Received bytes that do not form a whole message yet (with `--upper`:
    /// everything received so far).
    pending: Vec<u8>,
    /// Who is talking, for the log.
    peer: String,
}

impl Session {
    /// A session for a new connection from `peer`.
    pub fn new(config: &EchoConfig, peer: String) -> Self {
        Self {
            config: config.clone(),
            pending: Vec::new(),
            peer,
        }
    }

    /// Takes `data` just read and appends the replies to `out`.
    ///
    /// All whole messages found are answered at once, so the caller writes
    /// them back with one `write` call (pipelined clients get batches).
    pub fn on_bytes(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<Verdict> {
        self.pending.extend_from_slice(data);
        if self.config.upper {
            // The upper-casing server answers only at EOF: it cannot know
            // earlier that the client has finished.
            return Ok(Verdict::Continue);
        }
        let framing = self.config.framing;
        let mut consumed = 0;
        let mut verdict = Verdict::Continue;
        while let Some((used, payload)) = framing.split(&self.pending[consumed..])? {
            let message = &self.pending[consumed..consumed + used];
            let text = &message[payload];
            if self.config.verbose {
                eprintln_log(&self.peer, text);
            }
            if self.is_stop_word(text) {
                verdict = Verdict::StopServer;
                consumed += used;
                break;
            }
            // The echo: the message goes back exactly as it came.
            out.extend_from_slice(message);
            consumed += used;
        }
        self.pending.drain(..consumed);
        Ok(verdict)
    }

    /// The client half-closed or closed: with `--upper` this is the moment
    /// to answer. A partial message left over in other framings is dropped.
    pub fn on_eof(&mut self, out: &mut Vec<u8>) {
        if self.config.upper {
            if self.config.verbose {
                eprintln_log(&self.peer, &self.pending);
            }
            out.extend(self.pending.iter().map(u8::to_ascii_uppercase));
        }
        self.pending.clear();
    }

    fn is_stop_word(&self, text: &[u8]) -> bool {
        let Some(word) = &self.config.stop_word else {
            return false;
        };
        // Raw reads may carry the Enter key's newline; ignore surrounding
        // whitespace there. In framed modes the message must match exactly.
        match self.config.framing {
            Framing::Raw => text.trim_ascii() == word.as_slice(),
            _ => text == word.as_slice(),
        }
    }
}

// Logging a received message is part of what the demo shows its user.
#[allow(clippy::print_stderr)]
fn eprintln_log(peer: &str, text: &[u8]) {
    eprintln!("[{peer}] received {:?}", String::from_utf8_lossy(text));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(framing: Framing, upper: bool) -> EchoConfig {
        EchoConfig {
            framing,
            upper,
            stop_word: Some(b"balse".to_vec()),
            verbose: false,
            reply: ReplyPath::Same,
            callback_offset: 1,
        }
    }

    #[test]
    fn lines_echo_whole_lines_across_reads() {
        let mut s = Session::new(&config(Framing::Lines, false), "t".into());
        let mut out = Vec::new();
        assert_eq!(s.on_bytes(b"hel", &mut out).unwrap(), Verdict::Continue);
        assert!(out.is_empty());
        s.on_bytes(b"lo\nwor", &mut out).unwrap();
        assert_eq!(out, b"hello\n");
        s.on_bytes(b"ld\n", &mut out).unwrap();
        assert_eq!(out, b"hello\nworld\n");
    }

    #[test]
    fn stop_word_stops_and_is_not_echoed() {
        let mut s = Session::new(&config(Framing::Lines, false), "t".into());
        let mut out = Vec::new();
        let v = s.on_bytes(b"a\nbalse\nb\n", &mut out).unwrap();
        assert_eq!((v, out.as_slice()), (Verdict::StopServer, &b"a\n"[..]));
    }

    #[test]
    fn upper_answers_only_at_eof() {
        let mut s = Session::new(&config(Framing::Raw, true), "t".into());
        let mut out = Vec::new();
        s.on_bytes(b"hoge", &mut out).unwrap();
        s.on_bytes(b"hoge", &mut out).unwrap();
        assert!(out.is_empty());
        s.on_eof(&mut out);
        assert_eq!(out, b"HOGEHOGE");
    }
}
