//! The one pickle we read: the pickle of a `str`.
//!
//! Python's `Connection.send(obj)` pickles `obj`, and `recv()` unpickles
//! whatever arrives. Unpickling is *running a tiny program*: opcodes like
//! `GLOBAL`/`STACK_GLOBAL` + `REDUCE` import any function and call it, so
//! `pickle.loads` on a peer's bytes lets that peer run `os.system("...")`
//! in your process. A peer you have not authenticated must never get that
//! far, and even an authenticated one only gets what we need.
//!
//! So this module does not unpickle. It recognises exactly the byte
//! patterns Python produces for `pickle.dumps(some_str)` (protocols 2 to 5)
//! and refuses everything else with an error naming the first opcode it
//! did not accept:
//!
//! ```text
//! PROTO n | [FRAME len] | SHORT_BINUNICODE / BINUNICODE / BINUNICODE8 text
//!         | [MEMOIZE / BINPUT / LONG_BINPUT] | STOP
//! ```

use std::fmt;

/// Why a message was not accepted as the pickle of a `str`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Offset of the offending byte.
    pub offset: usize,
    /// What was wrong, in words.
    pub reason: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refused to unpickle: only the pickle of a str is accepted \
             ({} at byte {})",
            self.reason, self.offset
        )
    }
}

impl std::error::Error for Refused {}

const PROTO: u8 = 0x80;
const FRAME: u8 = 0x95;
const SHORT_BINUNICODE: u8 = 0x8c;
const BINUNICODE: u8 = b'X';
const BINUNICODE8: u8 = 0x8d;
const MEMOIZE: u8 = 0x94;
const BINPUT: u8 = b'q';
const LONG_BINPUT: u8 = b'r';
const STOP: u8 = b'.';

/// A name for an opcode we refuse, so the error says what the peer tried.
fn opcode_name(op: u8) -> &'static str {
    match op {
        b'c' | 0x93 => "GLOBAL/STACK_GLOBAL (imports a callable: code execution)",
        b'R' => "REDUCE (calls a callable: code execution)",
        b'i' | b'o' | 0x81 | 0x92 => "INST/OBJ/NEWOBJ (builds an object)",
        b'}' => "EMPTY_DICT (a dict)",
        b']' => "EMPTY_LIST (a list)",
        b')' | 0x85..=0x87 => "a tuple",
        b'K' | b'M' | b'J' | 0x8a | 0x8b => "an int",
        b'G' => "a float",
        b'C' | b'B' | 0x8e | 0x96 | 0x97 | 0x98 => "bytes",
        b'N' => "None",
        0x88 | 0x89 => "a bool",
        _ => "an opcode that is not part of a str pickle",
    }
}

/// Decodes the pickle of a `str`, refusing anything else.
pub fn decode_str(data: &[u8]) -> Result<String, Refused> {
    let refuse = |offset: usize, reason: String| Refused { offset, reason };
    let byte = |at: usize| {
        data.get(at)
            .copied()
            .ok_or_else(|| refuse(at, "the pickle ends early".into()))
    };
    let le = |at: usize, n: usize| -> Result<u64, Refused> {
        let bytes = data
            .get(at..at + n)
            .ok_or_else(|| refuse(at, "the pickle ends early".into()))?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    };

    if byte(0)? != PROTO {
        return Err(refuse(
            0,
            "not a binary pickle (protocol 2 or later)".into(),
        ));
    }
    let proto = byte(1)?;
    if !(2..=5).contains(&proto) {
        return Err(refuse(1, format!("unsupported pickle protocol {proto}")));
    }
    let mut at = 2;
    if byte(at)? == FRAME {
        at += 9; // FRAME + u64 length of the frame; the frame is just a hint.
    }
    let op = byte(at)?;
    let (len_bytes, len) = match op {
        SHORT_BINUNICODE => (1, le(at + 1, 1)?),
        BINUNICODE => (4, le(at + 1, 4)?),
        BINUNICODE8 => (8, le(at + 1, 8)?),
        other => {
            return Err(refuse(
                at,
                format!("opcode 0x{other:02x}: {}", opcode_name(other)),
            ))
        }
    };
    let start = at + 1 + len_bytes;
    let end = usize::try_from(len)
        .ok()
        .and_then(|len| start.checked_add(len))
        .filter(|&end| end <= data.len())
        .ok_or_else(|| refuse(at, "the string is longer than the message".into()))?;
    let text = std::str::from_utf8(&data[start..end])
        .map_err(|_| refuse(start, "the string is not valid UTF-8".into()))?
        .to_owned();
    at = end;
    at += match byte(at)? {
        MEMOIZE => 1,
        BINPUT => 2,
        LONG_BINPUT => 5,
        _ => 0,
    };
    match byte(at)? {
        STOP if at + 1 == data.len() => Ok(text),
        STOP => Err(refuse(at + 1, "bytes after STOP".into())),
        other => Err(refuse(
            at,
            format!(
                "opcode 0x{other:02x} after the string: {}",
                opcode_name(other)
            ),
        )),
    }
}

/// Pickles `text` exactly as Python 3.8-3.13's `pickle.dumps(text)`
/// (protocol 4) does, so Python's `recv()` gives back a `str`.
pub fn encode_str(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut body = Vec::with_capacity(bytes.len() + 16);
    if bytes.len() < 256 {
        body.push(SHORT_BINUNICODE);
        body.push(bytes.len() as u8);
    } else if let Ok(n) = u32::try_from(bytes.len()) {
        body.push(BINUNICODE);
        body.extend_from_slice(&n.to_le_bytes());
    } else {
        body.push(BINUNICODE8);
        body.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    }
    body.extend_from_slice(bytes);
    body.push(MEMOIZE);
    body.push(STOP);
    let mut out = Vec::with_capacity(body.len() + 11);
    out.extend_from_slice(&[PROTO, 4, FRAME]);
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each vector is the output of CPython 3.11's pickle.dumps.
    #[test]
    fn python_vectors_decode() {
        let cases: [(&[u8], &str); 5] = [
            (
                b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00\x8c\x01a\x94.",
                "a",
            ),
            (
                b"\x80\x04\x95\n\x00\x00\x00\x00\x00\x00\x00\x8c\x06h\xc3\xa9llo\x94.",
                "h\u{e9}llo",
            ),
            (b"\x80\x02X\x00\x00\x00\x00q\x00.", ""),
            (b"\x80\x03X\x02\x00\x00\x00abq\x00.", "ab"),
            (
                b"\x80\x05\x95\x07\x00\x00\x00\x00\x00\x00\x00\x8c\x03abc\x94.",
                "abc",
            ),
        ];
        for (bytes, text) in cases {
            assert_eq!(decode_str(bytes).unwrap(), text);
        }
    }

    #[test]
    fn encode_matches_python_byte_for_byte() {
        assert_eq!(
            encode_str("a"),
            b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00\x8c\x01a\x94."
        );
        let long = "x".repeat(300);
        assert_eq!(decode_str(&encode_str(&long)).unwrap(), long);
    }

    #[test]
    fn everything_else_is_refused_with_a_reason() {
        // pickle.dumps({'a': 1})
        let dict = b"\x80\x04\x95\n\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94K\x01s.";
        let e = decode_str(dict).unwrap_err();
        assert!(e.to_string().contains("dict"), "{e}");
        // The classic exploit: cos\nsystem\n(S'id'\ntR.
        let evil = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.";
        let e = decode_str(evil).unwrap_err();
        assert!(e.to_string().contains("code execution"), "{e}");
        // A str followed by more opcodes (a str inside something bigger).
        assert!(decode_str(b"\x80\x04\x8c\x01a\x94\x85.").is_err());
        assert!(decode_str(b"\x80\x04\x8c\x05a").is_err());
        assert!(decode_str(b"").is_err());
        assert!(decode_str(b"\x80\x04\x8c\x01a\x94.junk").is_err());
    }
}
