use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use ipc_proto::legacy::*;
use tile_math::TileCoord;

use crate::support::tile;

fn t(z: u8, x: u32, y: u32) -> LegacyEvent {
    let tile = tile(z, x, y);
    LegacyEvent::Tile {
        tile,
        text: format_tile(tile),
    }
}

/// A tile event whose request was written as `text`.
fn written(z: u8, x: u32, y: u32, text: &str) -> LegacyEvent {
    LegacyEvent::Tile {
        tile: tile(z, x, y),
        text: text.into(),
    }
}

fn decode_in_chunks(input: &[u8], chunk: usize, max_line: usize) -> Vec<LegacyEvent> {
    let mut d = LegacyDecoder::with_max_line(max_line);
    let mut out = Vec::new();
    for c in input.chunks(chunk) {
        d.feed(c, &mut out);
    }
    d.finish(&mut out);
    out
}

/// Every chunking of the input gives the same events.
fn decode(input: &[u8]) -> Vec<LegacyEvent> {
    let whole = decode_in_chunks(input, input.len().max(1), DEFAULT_MAX_LINE);
    for chunk in 1..input.len().max(1) {
        assert_eq!(
            decode_in_chunks(input, chunk, DEFAULT_MAX_LINE),
            whole,
            "chunk size {chunk}"
        );
    }
    whole
}

fn is_invalid(e: &LegacyEvent, line: u64) -> bool {
    matches!(e, LegacyEvent::Invalid { line_no, .. } if *line_no == line)
}

#[test]
fn stop_mid_stream_ends_the_batch_not_the_decoder() {
    let ev = decode(b"1_0_0\nstop\n1_1_1\nSTOP\n");
    assert_eq!(
        ev,
        [t(1, 0, 0), LegacyEvent::Stop, t(1, 1, 1), LegacyEvent::Stop]
    );
}

#[test]
fn crlf_line_endings() {
    let ev = decode(b"16_58001_25480\r\n16_58001_25481\r\nstop\r\n");
    assert_eq!(
        ev,
        [t(16, 58001, 25480), t(16, 58001, 25481), LegacyEvent::Stop]
    );
}

#[test]
fn unterminated_last_line_at_eof() {
    // The final C# version: one request per connection, no newline, close.
    assert_eq!(decode(b"16_58001_25480"), [t(16, 58001, 25480)]);
    assert_eq!(decode(b"1_0_0\nstop"), [t(1, 0, 0), LegacyEvent::Stop]);
    assert_eq!(decode(b""), []);
}

#[test]
fn empty_line_ends_a_batch_second_variant() {
    let ev = decode(b"2_1_1\n2_3_3\n\n2_0_0\r\n\r\n");
    assert_eq!(
        ev,
        [
            t(2, 1, 1),
            t(2, 3, 3),
            LegacyEvent::EndOfBatch,
            t(2, 0, 0),
            LegacyEvent::EndOfBatch
        ]
    );
}

#[test]
fn overlong_line_is_one_invalid_and_skipped() {
    let mut input = b"1_0_0\n".to_vec();
    input.extend([b'7'; 10_000]);
    input.extend(b"\n1_1_0\n");
    let ev = decode(&input);
    assert_eq!(ev.len(), 3, "{ev:?}");
    assert_eq!(ev[0], t(1, 0, 0));
    assert!(matches!(
        &ev[1],
        LegacyEvent::Invalid {
            line_no: 2,
            reason: LineError::TooLong { max: 64 }
        }
    ));
    assert_eq!(ev[2], t(1, 1, 0));
}

#[test]
fn overlong_unterminated_line_at_eof() {
    let mut input = b"1_0_0\n".to_vec();
    input.extend([b'x'; 100]);
    let ev = decode(&input);
    assert_eq!(ev.len(), 2);
    assert!(is_invalid(&ev[1], 2));
}

#[test]
fn line_of_exactly_the_maximum_is_fine() {
    // max 8: "3_7_7" padded with leading zeros to 8 bytes.
    let ev = decode_in_chunks(b"003_07_7\r\n0003_7_7\n", 3, 8);
    assert_eq!(
        ev,
        [written(3, 7, 7, "003_07_7"), written(3, 7, 7, "0003_7_7")]
    );
    let ev = decode_in_chunks(b"0003_07_7\n3_7_7\n", 3, 8);
    assert!(is_invalid(&ev[0], 1));
    assert_eq!(ev[1], t(3, 7, 7));
}

/// `n` bytes: spaces, then `1_0_0`.
fn padded_line(n: usize) -> Vec<u8> {
    let mut line = vec![b' '; n - 5];
    line.extend(b"1_0_0");
    line
}

#[test]
fn the_64_byte_limit_is_on_the_raw_line_not_the_trimmed_one() {
    for ending in [&b"\n"[..], b"\r\n"] {
        // 64 bytes as received (59 spaces + `1_0_0`): accepted; the line
        // ending, `\r` included, does not count.
        let mut input = padded_line(64);
        input.extend(ending);
        // 65 bytes: refused, although trimmed it is only 5.
        input.extend(padded_line(65));
        input.extend(ending);
        // Spaces after the request count too.
        input.extend(b"1_0_0");
        input.extend([b' '; 60]);
        input.extend(ending);
        let ev = decode(&input);
        assert_eq!(ev.len(), 3, "{ev:?}");
        assert_eq!(ev[0], t(1, 0, 0));
        for (i, e) in ev[1..].iter().enumerate() {
            assert!(
                matches!(
                    e,
                    LegacyEvent::Invalid {
                        reason: LineError::TooLong { max: 64 },
                        line_no,
                    } if *line_no == i as u64 + 2
                ),
                "{e:?}"
            );
        }
    }
    // The same at EOF without a line ending.
    assert_eq!(decode(&padded_line(64)), [t(1, 0, 0)]);
    let ev = decode(&padded_line(65));
    assert!(
        matches!(
            &ev[..],
            [LegacyEvent::Invalid {
                reason: LineError::TooLong { max: 64 },
                line_no: 1
            }]
        ),
        "{ev:?}"
    );
}

#[test]
fn a_tile_keeps_its_text_as_written() {
    let ev = decode(b"01_0_0\n 0016_058001_25480 \r\n1_0_0\n");
    assert_eq!(
        ev,
        [
            written(1, 0, 0, "01_0_0"),
            written(16, 58001, 25480, "0016_058001_25480"),
            written(1, 0, 0, "1_0_0"),
        ]
    );
}

#[test]
fn in_line_tells_whether_a_line_is_under_way() {
    let mut d = LegacyDecoder::new();
    let mut out = Vec::new();
    assert!(!d.in_line());
    d.feed(b"1_0", &mut out);
    assert!(d.in_line());
    d.feed(b"_0\n", &mut out);
    assert!(!d.in_line());
    d.feed(&[b'9'; 100], &mut out);
    assert!(d.in_line(), "inside a skipped overlong line");
    d.feed(b"\n", &mut out);
    assert!(!d.in_line());
    assert_eq!(out.len(), 2, "{out:?}");
}

#[test]
fn legacy_refusal_beyond_loopback_is_accurate_with_and_without_a_secret() {
    let endpoint = ipc_proto::Endpoint::tcp("0.0.0.0", 0);
    let without = bind_legacy(&endpoint, false, false).unwrap_err();
    let with = bind_legacy(&endpoint, false, true).unwrap_err();
    assert_eq!(
        without.to_string(),
        "refusing to serve the legacy line protocol on non-loopback address 0.0.0.0:0: \
         it has no authentication (a shared secret cannot protect it); listen on loopback, \
         or set allow_insecure_remote if the network is trusted"
    );
    assert_eq!(
        with.to_string(),
        "refusing to serve the legacy line protocol on non-loopback address 0.0.0.0:0: \
         it has no authentication, and the configured shared secret does not protect it \
         (only the framed protocol authenticates with it); listen on loopback, \
         or set allow_insecure_remote if the network is trusted"
    );
    for e in [&without, &with] {
        assert!(!e.to_string().contains("configure a secret"), "{e}");
    }
    // The override still works, and loopback needs none.
    assert!(bind_legacy(&endpoint, true, true).is_ok());
    assert!(bind_legacy(&ipc_proto::Endpoint::tcp("127.0.0.1", 0), false, false).is_ok());
}

#[test]
fn garbage_between_valid_lines() {
    let ev = decode(
        b"1_0_0\nhello\n1_0\n1_0_0_0\n-1_0_0\n1_2_0\n99_0_0\n\xff\xfe\n1__0\n 2_1_1 \n1_1_1\n",
    );
    assert_eq!(ev.len(), 11, "{ev:?}");
    assert_eq!(ev[0], t(1, 0, 0));
    for (i, e) in ev[1..9].iter().enumerate() {
        assert!(is_invalid(e, i as u64 + 2), "{e:?}");
    }
    assert!(matches!(
        &ev[5],
        LegacyEvent::Invalid {
            reason: LineError::OutOfRange { .. },
            ..
        }
    ));
    assert_eq!(ev[9], t(2, 1, 1));
    assert_eq!(ev[10], t(1, 1, 1));
}

#[test]
fn huge_numbers_do_not_overflow() {
    let ev = decode(b"1_99999999999_0\n1_4294967296_0\n");
    assert!(ev.iter().all(|e| matches!(e, LegacyEvent::Invalid { .. })));
}

/// Binds a "server" port P and the client's callback listener on P+1, as
/// the C# client expects. Ports come from the OS; if P+1 happens to be
/// taken, try again with another P.
fn bind_port_and_next() -> (TcpListener, TcpListener) {
    for _ in 0..50 {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = server.local_addr().unwrap().port();
        let Some(next) = p.checked_add(DEFAULT_CALLBACK_PORT_OFFSET) else {
            continue;
        };
        if let Ok(callback) = TcpListener::bind(("127.0.0.1", next)) {
            return (server, callback);
        }
    }
    panic!("no free port pair");
}

/// A minimal legacy server: decode one connection's batch, "render" each
/// tile, call back per tile and then `done`.
fn legacy_server(listener: TcpListener, style: CallbackStyle) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let port = listener.local_addr().unwrap().port();
        let (mut conn, peer) = listener.accept().unwrap();
        let mut decoder = LegacyDecoder::new();
        let mut events = Vec::new();
        let mut buf = [0u8; 7]; // small on purpose: lines arrive in pieces
        loop {
            let n = conn.read(&mut buf).unwrap();
            if n == 0 {
                decoder.finish(&mut events);
                break;
            }
            decoder.feed(&buf[..n], &mut events);
            if events.contains(&LegacyEvent::Stop) {
                break;
            }
        }
        let addr = callback_addr(peer.ip(), port, DEFAULT_CALLBACK_PORT_OFFSET).unwrap();
        let mut sender = CallbackSender::new(addr, style, Duration::from_secs(5));
        for e in events {
            match e {
                LegacyEvent::Tile { text, .. } => sender.send(CallbackMessage::Tile(text)).unwrap(),
                LegacyEvent::Stop => break,
                _ => {}
            }
        }
        sender.send(CallbackMessage::Done).unwrap();
    })
}

fn read_to_eof(mut s: TcpStream) -> String {
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn end_to_end_callback_connection_per_message() {
    let (server_listener, callback) = bind_port_and_next();
    let server_addr = server_listener.local_addr().unwrap();
    let server = legacy_server(server_listener, CallbackStyle::ConnectionPerMessage);

    // The C# test client: send the batch, close.
    let mut client = TcpStream::connect(server_addr).unwrap();
    client
        .write_all(b"16_58001_25480\n16_58001_25481\nstop\n")
        .unwrap();
    drop(client);

    // The C# callback listener: one message per connection, read to EOF.
    let mut received = Vec::new();
    loop {
        let (s, _) = callback.accept().unwrap();
        let text = read_to_eof(s);
        let done = text == "done";
        received.push(text);
        if done {
            break;
        }
    }
    assert_eq!(received, ["16_58001_25480", "16_58001_25481", "done"]);
    server.join().unwrap();
}

#[test]
fn end_to_end_callback_echoes_the_tile_as_written() {
    let (server_listener, callback) = bind_port_and_next();
    let server_addr = server_listener.local_addr().unwrap();
    let server = legacy_server(server_listener, CallbackStyle::ConnectionPerMessage);
    let mut client = TcpStream::connect(server_addr).unwrap();
    client.write_all(b"01_0_0\n1_0_0\nstop\n").unwrap();
    drop(client);
    let mut received = Vec::new();
    loop {
        let (s, _) = callback.accept().unwrap();
        let text = read_to_eof(s);
        let done = text == "done";
        received.push(text);
        if done {
            break;
        }
    }
    assert_eq!(received, ["01_0_0", "1_0_0", "done"]);
    server.join().unwrap();
}

#[test]
fn end_to_end_callback_lines_and_unterminated_request() {
    let (server_listener, callback) = bind_port_and_next();
    let server_addr = server_listener.local_addr().unwrap();
    let server = legacy_server(server_listener, CallbackStyle::Lines);

    // The final C# version: one request, no newline, close.
    let mut client = TcpStream::connect(server_addr).unwrap();
    client.write_all(b"16_58001_25480").unwrap();
    client.shutdown(Shutdown::Write).unwrap();

    let (s, _) = callback.accept().unwrap();
    assert_eq!(read_to_eof(s), "16_58001_25480\ndone\n");
    server.join().unwrap();
}

#[test]
fn end_to_end_second_variant_same_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut decoder = LegacyDecoder::new();
        let mut buf = [0u8; 64];
        let mut batches = 0;
        let mut pending: Vec<TileCoord> = Vec::new();
        loop {
            let n = conn.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            let mut events = Vec::new();
            decoder.feed(&buf[..n], &mut events);
            for e in events {
                match e {
                    LegacyEvent::Tile { tile, .. } => pending.push(tile),
                    LegacyEvent::EndOfBatch => {
                        pending.clear(); // "rendered"
                        conn.write_all(BATCH_COMPLETE_REPLY).unwrap();
                        batches += 1;
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        batches
    });
    let mut client = TcpStream::connect(addr).unwrap();
    for batch in [&b"1_0_0\n1_1_1\n\n"[..], b"2_3_3\r\n\r\n"] {
        client.write_all(batch).unwrap();
        let mut reply = [0u8; 1];
        client.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"\n");
    }
    drop(client);
    assert_eq!(server.join().unwrap(), 2);
}
