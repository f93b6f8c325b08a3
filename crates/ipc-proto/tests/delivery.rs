use ipc_proto::*;

use crate::support::{encode_all, samples, Chunked};

fn read_all(conn: &mut Connection<Chunked>) -> Vec<Message> {
    let mut got = Vec::new();
    while let Some(m) = conn.read_message().unwrap() {
        got.push(m);
    }
    got
}

#[test]
fn one_byte_at_a_time() {
    let msgs = samples();
    let mut conn = Connection::new(Chunked::new(encode_all(&msgs), vec![1]));
    assert_eq!(read_all(&mut conn), msgs);
}

#[test]
fn split_at_every_offset() {
    let msgs = samples();
    let bytes = encode_all(&msgs);
    for cut in 1..bytes.len() {
        let mut conn = Connection::new(Chunked::new(bytes.clone(), vec![cut, bytes.len()]));
        assert_eq!(read_all(&mut conn), msgs, "cut at {cut}");
    }
}

#[test]
fn odd_chunk_patterns() {
    let msgs = samples();
    let bytes = encode_all(&msgs);
    for pattern in [vec![3, 7, 1], vec![5], vec![13, 2], vec![4096]] {
        let mut conn = Connection::new(Chunked::new(bytes.clone(), pattern.clone()));
        assert_eq!(read_all(&mut conn), msgs, "{pattern:?}");
    }
}

#[test]
fn many_frames_in_one_read() {
    let msgs: Vec<Message> = (0..1000).map(|token| Message::Ping { token }).collect();
    let bytes = encode_all(&msgs);
    let mut conn = Connection::new(Chunked::new(bytes.clone(), vec![bytes.len()]));
    assert_eq!(read_all(&mut conn), msgs);
}

#[test]
fn large_frame_in_small_pieces() {
    let big = Message::TileDone(TileDone {
        request_id: 1,
        tile: tile_math::TileCoord::WORLD,
        render_ms: 1,
        cached: true,
        payload: TilePayload::Png((0..300_000u32).map(|i| i as u8).collect()),
    });
    let msgs = vec![Message::Ping { token: 1 }, big, Message::Pong { token: 2 }];
    let mut conn = Connection::new(Chunked::new(encode_all(&msgs), vec![1000, 1, 65536]));
    assert_eq!(read_all(&mut conn), msgs);
}

#[test]
fn queue_and_flush_write_once() {
    let mut conn = Connection::new(Chunked::new(Vec::new(), vec![1]));
    for token in 0..3 {
        conn.queue(&Message::Ping { token }).unwrap();
    }
    assert!(conn.get_ref().written.is_empty());
    assert_eq!(conn.pending_write(), 3 * 14);
    conn.flush().unwrap();
    assert_eq!(conn.pending_write(), 0);
    let written = conn.into_inner().written;
    assert_eq!(
        written,
        encode_all(
            &(0..3)
                .map(|token| Message::Ping { token })
                .collect::<Vec<_>>()
        )
    );
}

#[test]
fn clean_eof_vs_eof_mid_frame() {
    let bytes = Message::Ping { token: 5 }.to_bytes().unwrap();
    let mut conn = Connection::new(Chunked::new(bytes.clone(), vec![3]));
    assert!(conn.read_message().unwrap().is_some());
    assert!(conn.read_message().unwrap().is_none());

    for cut in 1..bytes.len() {
        let mut conn = Connection::new(Chunked::new(bytes[..cut].to_vec(), vec![2]));
        match conn.read_message() {
            Err(Error::ConnectionResetMidFrame { buffered }) => assert_eq!(buffered, cut),
            other => panic!("cut {cut}: {other:?}"),
        }
    }
}
