//! Arbitrary bytes through the frame codec and the message decoder, both as
//! one slice and through a `Connection` reading them in odd-sized pieces.
//!
//! Properties: nothing panics; a message that decodes re-encodes to the
//! exact frame bytes it came from (the encoding is canonical); the
//! streaming reader sees the same messages as the slice decoder.
#![no_main]

use std::io::{self, Read, Write};

use ipc_proto::frame;
use ipc_proto::{Connection, Error, Message};
use libfuzzer_sys::fuzz_target;

/// Small limit so the fuzzer also explores "too large".
const MAX: usize = 4096;

struct Pieces<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        self.step = self.step % 7 + 1;
        Ok(n)
    }
}

impl Write for Pieces<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    // 1. Slice decoding.
    let mut rest = data;
    let mut from_slices = Vec::new();
    loop {
        match frame::decode_ref(rest, MAX) {
            Ok(Some((f, used))) => {
                assert!(used >= frame::HEADER_LEN && used <= rest.len());
                let msg = Message::decode(f);
                if let Ok(m) = &msg {
                    let bytes = m.to_bytes().expect("a decoded message re-encodes");
                    assert_eq!(&bytes[..], &rest[..used], "encoding is canonical");
                }
                from_slices.push(msg.ok());
                rest = &rest[used..];
            }
            Ok(None) => break,
            Err(_) => break,
        }
    }

    // 2. The same bytes through a Connection, in pieces of 1..7 bytes.
    let step = data.first().map_or(1, |b| usize::from(*b % 7) + 1);
    let mut conn = Connection::new(Pieces { data, step });
    conn.set_max_frame(MAX);
    let mut from_stream = Vec::new();
    loop {
        match conn.read_message() {
            Ok(Some(m)) => from_stream.push(Some(m)),
            Ok(None) => break,
            // Message-level errors consume their frame; keep going.
            Err(
                Error::UnknownKind { .. } | Error::Malformed { .. } | Error::TrailingBytes { .. },
            ) => from_stream.push(None),
            Err(_) => break,
        }
    }
    assert_eq!(from_slices, from_stream);
});
