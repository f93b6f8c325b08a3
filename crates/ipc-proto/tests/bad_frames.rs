use std::io::{self, Read, Write};

use ipc_proto::frame::{self, FRAME_VERSION};
use ipc_proto::message::kind;
use ipc_proto::*;

use crate::support::Chunked;

/// A reader that fails the test if more than `limit` bytes are requested in
/// one read: proves an oversized frame is refused before a buffer is grown.
struct Stingy {
    data: Vec<u8>,
    pos: usize,
    largest_buf: usize,
}

impl Read for Stingy {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.largest_buf = self.largest_buf.max(buf.len());
        let n = buf.len().min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Stingy {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn oversized_frame_is_refused_before_allocating() {
    // Announces 4 GiB - 1, then sends a little.
    let mut data = vec![0xff, 0xff, 0xff, 0xff, FRAME_VERSION, kind::PING];
    data.extend_from_slice(&[0; 100]);
    let mut conn = Connection::new(Stingy {
        data,
        pos: 0,
        largest_buf: 0,
    });
    match conn.read_message() {
        Err(Error::FrameTooLarge { len, max }) => {
            assert_eq!(len, u64::from(u32::MAX));
            assert_eq!(max, DEFAULT_MAX_FRAME);
        }
        other => panic!("{other:?}"),
    }
    // The read buffer never grew beyond its initial size.
    assert!(conn.get_ref().largest_buf <= 8192);
}

#[test]
fn configurable_maximum() {
    let bytes = Message::Goodbye {
        reason: "x".repeat(100),
    }
    .to_bytes()
    .unwrap();
    let mut conn = Connection::new(Chunked::new(bytes.clone(), vec![4]));
    conn.set_max_frame(50);
    assert!(matches!(
        conn.read_message(),
        Err(Error::FrameTooLarge { len: 104, max: 50 })
    ));
    let mut conn = Connection::new(Chunked::new(bytes, vec![4]));
    conn.set_max_frame(104);
    assert!(conn.read_message().unwrap().is_some());
}

#[test]
fn bad_version() {
    let mut conn = Connection::new(Chunked::new(vec![0, 0, 0, 2, 9, kind::PING], vec![64]));
    assert!(matches!(
        conn.read_message(),
        Err(Error::UnsupportedVersion {
            version: 9,
            supported: 1
        })
    ));
}

#[test]
fn unknown_kind_leaves_stream_in_sync() {
    let mut bytes = Frame::new(0x7e, vec![1, 2, 3]).to_bytes().unwrap();
    bytes.extend(Message::Ping { token: 1 }.to_bytes().unwrap());
    let mut conn = Connection::new(Chunked::new(bytes, vec![5]));
    assert!(matches!(
        conn.read_message(),
        Err(Error::UnknownKind { kind: 0x7e })
    ));
    assert_eq!(
        conn.read_message().unwrap(),
        Some(Message::Ping { token: 1 })
    );
}

#[test]
fn truncated_payloads_name_the_field() {
    let full = Message::BatchDone(BatchDone {
        request_id: 1,
        done: 2,
        failed: 3,
        cancelled: 4,
    });
    let payload = full.to_bytes().unwrap()[6..].to_vec();
    let fields = [
        (0, "request_id"),
        (7, "request_id"),
        (8, "done"),
        (12, "failed"),
        (16, "cancelled"),
        (19, "cancelled"),
    ];
    for (cut, field_name) in fields {
        let f = Frame::new(kind::BATCH_DONE, payload[..cut].to_vec());
        match Message::decode(f.as_ref()) {
            Err(Error::Malformed { message, field, .. }) => {
                assert_eq!(message, "BatchDone");
                assert_eq!(field, field_name, "cut {cut}");
            }
            other => panic!("cut {cut}: {other:?}"),
        }
    }
    let mut longer = payload.clone();
    longer.push(0);
    let f = Frame::new(kind::BATCH_DONE, longer);
    assert!(matches!(
        Message::decode(f.as_ref()),
        Err(Error::TrailingBytes { extra: 1, .. })
    ));
}

#[test]
fn malformed_fields() {
    fn field_of(kind: u8, payload: Vec<u8>) -> String {
        match Message::decode(Frame::new(kind, payload).as_ref()) {
            Err(Error::Malformed { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }
    // Goodbye with invalid UTF-8.
    assert_eq!(field_of(kind::GOODBYE, vec![0, 2, 0xff, 0xfe]), "reason");
    // Cancelled with zoom 31.
    let mut p = 1u64.to_be_bytes().to_vec();
    p.extend([31, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(field_of(kind::CANCELLED, p), "tile");
    // TileDone with cached = 2.
    let mut p = 1u64.to_be_bytes().to_vec();
    p.extend([0; 9]);
    p.extend(5u32.to_be_bytes());
    p.push(2);
    assert_eq!(field_of(kind::TILE_DONE, p), "cached");
    // StatsReply claiming a million entries in 3 bytes.
    let mut p = 1_000_000u32.to_be_bytes().to_vec();
    p.extend([0, 0, 0]);
    assert_eq!(field_of(kind::STATS_REPLY, p), "entries");
    // TileDone with a PNG blob longer than the frame.
    let mut p = 1u64.to_be_bytes().to_vec();
    p.extend([0; 9]);
    p.extend(5u32.to_be_bytes());
    p.push(0);
    p.push(1);
    p.extend(1000u32.to_be_bytes());
    assert_eq!(field_of(kind::TILE_DONE, p), "payload.png");
    // Viewport with a NaN bbox.
    let mut p = vec![3, 0];
    for v in [f64::NAN, 0.0, 1.0, 1.0] {
        p.extend(v.to_bits().to_be_bytes());
    }
    assert_eq!(field_of(kind::VIEWPORT, p), "area.bbox");
}

#[test]
fn frame_check_is_incremental() {
    // A bad version is caught with 5 bytes, before the frame is complete.
    assert!(frame::check(&[0, 0, 0, 100, 2], DEFAULT_MAX_FRAME).is_err());
    assert_eq!(
        frame::check(&[0, 0, 0, 100, 1], DEFAULT_MAX_FRAME).unwrap(),
        None
    );
}
