//! The wire protocol of Python's `multiprocessing.connection` on sockets
//! (CPython `Lib/multiprocessing/connection.py`), so a Python
//! `Client(address, authkey=...)` can join our server and our client can
//! join a Python `Listener`.
//!
//! # Framing
//! Every message is a 4-byte big-endian *signed* length, then the bytes.
//! A length of -1 means an 8-byte big-endian length follows (messages over
//! 2 GiB); we read that form but refuse anything over our maximum before
//! reading its body.
//!
//! # The authkey handshake
//! Mutual: the server challenges the client, then the client challenges
//! the server (`Listener.accept` runs `deliver_challenge` then
//! `answer_challenge`; `Client` the opposite).
//!
//! `deliver_challenge`: send `#CHALLENGE#` + message, receive the
//! response, answer `#WELCOME#` if it is the right HMAC of the message
//! under the authkey, else `#FAILURE#` and close.
//!
//! Two generations exist, and we speak both:
//! - Python <= 3.11: the message is 20 random bytes and the response is the
//!   bare 16-byte HMAC-MD5 of it.
//! - Python >= 3.12: the message is `{sha256}` + 40 random bytes and the
//!   response is `{sha256}` + HMAC-SHA256 of the whole message (prefix
//!   included). A response without a prefix (16 bytes) is still taken as
//!   HMAC-MD5, which is how an old client answers a new server.
//!
//! We challenge like 3.12 (`{sha256}`), accept an MD5 answer from an old
//! client, and answer each server in the digest it asked for. Note that
//! accepting MD5 answers is what lets Python 3.11 in; HMAC-MD5 is not broken
//! as a MAC the way MD5 is as a hash, but SHA-256 is preferred when the
//! peer can do it.

use std::io::{self, Read, Write};

use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::Sha256;
use subtle::ConstantTimeEq;

const CHALLENGE: &[u8] = b"#CHALLENGE#";
const WELCOME: &[u8] = b"#WELCOME#";
const FAILURE: &[u8] = b"#FAILURE#";
/// Random bytes in our challenge (Python 3.12's `MESSAGE_LENGTH`).
const MESSAGE_LENGTH: usize = 40;
/// Length of a legacy (<= 3.11) challenge message.
const LEGACY_MESSAGE_LENGTH: usize = 20;
/// Length of a bare HMAC-MD5 response.
const MD5_LEN: usize = 16;
/// Handshake messages are small; Python reads them with `recv_bytes(256)`.
const HANDSHAKE_MAX: usize = 256;

/// Errors of this protocol.
#[derive(Debug)]
pub enum MpError {
    /// The socket failed.
    Io(io::Error),
    /// A message longer than we accept.
    TooLong {
        /// Announced length.
        len: u64,
        /// Our maximum.
        max: usize,
    },
    /// The handshake failed.
    Auth(String),
}

impl std::fmt::Display for MpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MpError::Io(e) => write!(f, "I/O error: {e}"),
            MpError::TooLong { len, max } => {
                write!(
                    f,
                    "message of {len} bytes is longer than the maximum of {max}"
                )
            }
            MpError::Auth(why) => write!(f, "authentication failed: {why}"),
        }
    }
}

impl std::error::Error for MpError {}

impl From<io::Error> for MpError {
    fn from(e: io::Error) -> Self {
        MpError::Io(e)
    }
}

/// Reads one message (`send_bytes` on the other side). `Ok(None)`: the peer
/// closed cleanly between messages.
pub fn recv_bytes<R: Read>(r: &mut R, max: usize) -> Result<Option<Vec<u8>>, MpError> {
    let mut head = [0u8; 4];
    // A clean EOF is only allowed before the first byte of a message.
    let mut got = 0;
    while got < 4 {
        match r.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = match i32::from_be_bytes(head) {
        -1 => {
            let mut long = [0u8; 8];
            r.read_exact(&mut long)?;
            u64::from_be_bytes(long)
        }
        n if n < 0 => return Err(MpError::TooLong { len: u64::MAX, max }),
        n => n as u64,
    };
    if len > max as u64 {
        return Err(MpError::TooLong { len, max });
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body)?;
    Ok(Some(body))
}

/// Appends one message to `out` (header and body together, so a whole
/// message goes out in one write).
pub fn encode(body: &[u8], out: &mut Vec<u8>) {
    match i32::try_from(body.len()) {
        Ok(n) => out.extend_from_slice(&n.to_be_bytes()),
        Err(_) => {
            out.extend_from_slice(&(-1i32).to_be_bytes());
            out.extend_from_slice(&(body.len() as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(body);
}

/// Writes one message with one `write_all`.
pub fn send_bytes<W: Write>(w: &mut W, body: &[u8]) -> io::Result<()> {
    let mut out = Vec::with_capacity(body.len() + 4);
    encode(body, &mut out);
    w.write_all(&out)
}

fn recv_handshake<R: Read>(r: &mut R, what: &str) -> Result<Vec<u8>, MpError> {
    recv_bytes(r, HANDSHAKE_MAX)?
        .ok_or_else(|| MpError::Auth(format!("the peer closed the connection instead of {what}")))
}

/// HMAC of `message` under `key` with the named digest.
fn mac(digest: &str, key: &[u8], message: &[u8]) -> Result<Vec<u8>, MpError> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length.
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        m.update(message);
        m.finalize().into_bytes().to_vec()
    }
    match digest {
        "md5" => Ok(run::<Hmac<Md5>>(key, message)),
        "sha256" => Ok(run::<Hmac<Sha256>>(key, message)),
        other => Err(MpError::Auth(format!(
            "the peer asked for HMAC-{other}; this implementation speaks md5 and sha256"
        ))),
    }
}

/// Splits `{digest}payload`; legacy 16/20-byte messages have no prefix and
/// mean MD5 (Python's `_get_digest_name_and_payload`).
fn digest_and_payload(message: &[u8]) -> Result<(Option<&str>, &[u8]), MpError> {
    if message.len() == LEGACY_MESSAGE_LENGTH || message.len() == MD5_LEN {
        return Ok((None, message));
    }
    if message.first() == Some(&b'{') {
        if let Some(close) = message.iter().take(12).position(|&b| b == b'}') {
            if let Ok(name) = std::str::from_utf8(&message[1..close]) {
                return Ok((Some(name), &message[close + 1..]));
            }
        }
    }
    Err(MpError::Auth(
        "unsupported message length, missing {digest} prefix, or unsupported digest".into(),
    ))
}

/// Our side challenges the peer (Python's `deliver_challenge`).
pub fn deliver_challenge<S: Read + Write>(s: &mut S, key: &[u8]) -> Result<(), MpError> {
    let mut random = [0u8; MESSAGE_LENGTH];
    getrandom::fill(&mut random).map_err(|e| MpError::Auth(format!("no randomness: {e}")))?;
    let mut message = b"{sha256}".to_vec();
    message.extend_from_slice(&random);
    let mut challenge = CHALLENGE.to_vec();
    challenge.extend_from_slice(&message);
    send_bytes(s, &challenge)?;
    let response = recv_handshake(s, "an answer to our challenge")?;
    let verdict = (|| {
        let (digest, answer) = digest_and_payload(&response)?;
        let expected = mac(digest.unwrap_or("md5"), key, &message)?;
        if bool::from(expected.ct_eq(answer)) {
            Ok(())
        } else {
            Err(MpError::Auth(
                "the peer's digest is wrong: its key differs from ours".into(),
            ))
        }
    })();
    send_bytes(s, if verdict.is_ok() { WELCOME } else { FAILURE })?;
    verdict
}

/// Our side proves it knows the key (Python's `answer_challenge`).
pub fn answer_challenge<S: Read + Write>(s: &mut S, key: &[u8]) -> Result<(), MpError> {
    let message = recv_handshake(s, "a challenge")?;
    let Some(message) = message.strip_prefix(CHALLENGE) else {
        return Err(MpError::Auth(
            "protocol error: expected #CHALLENGE# (does the peer use an authkey?)".into(),
        ));
    };
    if message.len() < LEGACY_MESSAGE_LENGTH {
        return Err(MpError::Auth("challenge too short".into()));
    }
    let response = match digest_and_payload(message)? {
        // A legacy peer: the bare HMAC-MD5 of the message.
        (None, _) => mac("md5", key, message)?,
        // A modern peer: `{digest}` + HMAC of the whole message.
        (Some(digest), _) => {
            let mut r = format!("{{{digest}}}").into_bytes();
            r.extend_from_slice(&mac(digest, key, message)?);
            r
        }
    };
    send_bytes(s, &response)?;
    match recv_handshake(s, "#WELCOME#")?.as_slice() {
        WELCOME => Ok(()),
        FAILURE => Err(MpError::Auth(
            "the peer rejected our digest: our keys differ".into(),
        )),
        _ => Err(MpError::Auth("protocol error: expected #WELCOME#".into())),
    }
}

/// The server side of the handshake (`Listener.accept`).
pub fn server_handshake<S: Read + Write>(s: &mut S, key: &[u8]) -> Result<(), MpError> {
    deliver_challenge(s, key)?;
    answer_challenge(s, key)
}

/// The client side of the handshake (`Client(...)`).
pub fn client_handshake<S: Read + Write>(s: &mut S, key: &[u8]) -> Result<(), MpError> {
    answer_challenge(s, key)?;
    deliver_challenge(s, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn framing_round_trip_and_limits() {
        let mut wire = Vec::new();
        encode(b"hello", &mut wire);
        assert_eq!(wire, b"\x00\x00\x00\x05hello");
        let mut r = io::Cursor::new(wire);
        assert_eq!(recv_bytes(&mut r, 10).unwrap().unwrap(), b"hello");
        assert!(recv_bytes(&mut r, 10).unwrap().is_none());
        let mut big = io::Cursor::new(b"\x00\x10\x00\x00".to_vec());
        assert!(matches!(
            recv_bytes(&mut big, 10),
            Err(MpError::TooLong { .. })
        ));
        let mut cut = io::Cursor::new(b"\x00\x00".to_vec());
        assert!(recv_bytes(&mut cut, 10).is_err());
    }

    #[test]
    fn handshake_both_ways_and_wrong_key() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || server_handshake(&mut a, b"k"));
        client_handshake(&mut b, b"k").unwrap();
        t.join().unwrap().unwrap();

        let (mut a, mut b) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || server_handshake(&mut a, b"k"));
        assert!(matches!(
            client_handshake(&mut b, b"other"),
            Err(MpError::Auth(_))
        ));
        assert!(t.join().unwrap().is_err());
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn hmac_matches_the_rfc_vectors() {
        // RFC 2202 test case 2 (HMAC-MD5) and RFC 4231 test case 2
        // (HMAC-SHA256): key "Jefe".
        let data = b"what do ya want for nothing?";
        assert_eq!(
            mac("md5", b"Jefe", data).unwrap(),
            hex("750c783e6ab0b503eaa86e310a5db738")
        );
        assert_eq!(
            mac("sha256", b"Jefe", data).unwrap(),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        assert!(matches!(mac("sha1", b"k", data), Err(MpError::Auth(_))));
    }

    /// A peer that has already said `input`; what we write is kept.
    struct Scripted {
        input: io::Cursor<Vec<u8>>,
        output: Vec<u8>,
    }

    impl Scripted {
        fn new(messages: &[&[u8]]) -> Scripted {
            let mut input = Vec::new();
            for m in messages {
                encode(m, &mut input);
            }
            Scripted {
                input: io::Cursor::new(input),
                output: Vec::new(),
            }
        }
    }

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(body, &mut out);
        out
    }

    #[test]
    fn legacy_md5_answer_is_the_bare_hmac() {
        // Python 3.11's server challenges with 20 bytes and no prefix; its
        // client answers hmac.new(b'k', bytes(range(20)), 'md5').digest().
        let message: Vec<u8> = (0..20).collect();
        assert_eq!(digest_and_payload(&message).unwrap().0, None);
        let expected = hex("b5b4bbed3ac433b774f3d4f6736f72fa");
        assert_eq!(mac("md5", b"k", &message).unwrap(), expected);

        let mut peer = Scripted::new(&[&[CHALLENGE, &message[..]].concat(), WELCOME]);
        answer_challenge(&mut peer, b"k").unwrap();
        assert_eq!(peer.output, framed(&expected));
    }

    #[test]
    fn sha256_answer_is_the_prefixed_hmac_of_the_whole_message() {
        // Python 3.12: b'{sha256}' + hmac.new(b'k', b'{sha256}' +
        // bytes(range(40)), 'sha256').digest(), prefix included in the MAC.
        let mut message = b"{sha256}".to_vec();
        message.extend(0..40u8);
        let digest = hex("e2d18d2266efaf3d644ed631dfa02c401ec26e092bef5993514fbbe8a5cd1f7e");

        let mut peer = Scripted::new(&[&[CHALLENGE, &message[..]].concat(), WELCOME]);
        answer_challenge(&mut peer, b"k").unwrap();
        assert_eq!(peer.output, framed(&[&b"{sha256}"[..], &digest].concat()));

        // The server that sent this challenge rejects us: we say so.
        let mut peer = Scripted::new(&[&[CHALLENGE, &message[..]].concat(), FAILURE]);
        let e = answer_challenge(&mut peer, b"k").unwrap_err();
        assert!(e.to_string().contains("keys differ"), "{e}");
    }
}
