//! Chat messages are text. A peer may send it two ways, and we answer each
//! peer the way it talks:
//!
//! - [`Style::Bytes`]: UTF-8 in a `send_bytes` message (our client; a
//!   Python client using `send_bytes`/`recv_bytes`);
//! - [`Style::Pickle`]: the pickle of a `str` (a Python client using
//!   `send(str)`/`recv()`).
//!
//! They cannot be confused: a binary pickle starts with byte `0x80`, which
//! never starts a UTF-8 string.

use crate::pickle;

/// How a peer encodes its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Raw UTF-8 (`send_bytes`).
    Bytes,
    /// The pickle of a `str` (`send(str)`).
    Pickle,
}

/// Decodes one message into text and the style it was sent in.
pub fn decode(message: &[u8]) -> Result<(String, Style), String> {
    if message.first() == Some(&0x80) {
        return pickle::decode_str(message)
            .map(|t| (t, Style::Pickle))
            .map_err(|e| e.to_string());
    }
    match std::str::from_utf8(message) {
        Ok(t) => Ok((t.to_owned(), Style::Bytes)),
        Err(_) => Err("the message is neither UTF-8 text nor the pickle of a str".into()),
    }
}

/// Encodes text in `style`.
pub fn encode(text: &str, style: Style) -> Vec<u8> {
    match style {
        Style::Bytes => text.as_bytes().to_vec(),
        Style::Pickle => pickle::encode_str(text),
    }
}
