//! The legacy protocol end to end, doing what the C# test program in
//! `../shared/seeds/000_*.txt` does: open a callback listener on port + 1,
//! send the tile lines and `stop`, close, then read each callback
//! connection to EOF until `done`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use render_service::Server;

use crate::support::{config, write_small_style};

/// A server whose legacy port P has P + 1 free for our callback listener.
fn start_with_callback(dir: &std::path::Path) -> (Server, u16, TcpListener) {
    let style = write_small_style(dir);
    for _ in 0..50 {
        // Ask the OS for a free port for the callback, then try to put the
        // legacy listener just below it.
        let callback = TcpListener::bind("127.0.0.1:0").unwrap();
        let callback_port = callback.local_addr().unwrap().port();
        let legacy_port = callback_port - 1;
        let cfg = config(dir, &style, |c| {
            c.server.listen = vec![];
            c.server.legacy_listen = Some(format!("tcp:127.0.0.1:{legacy_port}"));
        });
        if let Ok(server) = Server::start(&cfg) {
            return (server, legacy_port, callback);
        }
    }
    panic!("no pair of free adjacent ports found");
}

/// Reads callback connections until `done`, each one to EOF, as the C#
/// listener thread does.
fn callbacks_until_done(listener: &TcpListener) -> Vec<String> {
    let mut messages = Vec::new();
    loop {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut text = String::new();
        conn.read_to_string(&mut text).unwrap();
        let done = text == "done";
        messages.push(text);
        if done {
            return messages;
        }
    }
}

#[test]
fn the_csharp_client_gets_each_tile_then_done_through_the_callback() {
    let dir = tempfile::tempdir().unwrap();
    let (server, port, callback) = start_with_callback(dir.path());
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(b"5_17_9\n5_18_9\nstop\n").unwrap();
    // The C# program closes right after `stop`.
    drop(conn);
    let mut messages = callbacks_until_done(&callback);
    assert_eq!(messages.pop().as_deref(), Some("done"));
    messages.sort();
    assert_eq!(messages, ["5_17_9", "5_18_9"]);
    // The tiles are in the store.
    assert!(dir.path().join("tiles/test/5/17/9.png").is_file());
    server.shutdown();
}

#[test]
fn one_request_per_connection_without_a_newline_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let (server, port, callback) = start_with_callback(dir.path());
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(b"6_35_18").unwrap();
    drop(conn);
    assert_eq!(callbacks_until_done(&callback), ["6_35_18", "done"]);
    server.shutdown();
}

#[test]
fn bad_lines_are_skipped_and_the_rest_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let (server, port, callback) = start_with_callback(dir.path());
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let long = "9".repeat(500);
    conn.write_all(format!("garbage\n99_0_0\n{long}\n3_1_1\r\nstop\n").as_bytes())
        .unwrap();
    drop(conn);
    assert_eq!(callbacks_until_done(&callback), ["3_1_1", "done"]);
    server.shutdown();
}

#[test]
fn the_empty_line_variant_answers_on_the_same_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (server, port, _callback) = start_with_callback(dir.path());
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn.write_all(b"4_8_4\n4_9_4\n\n").unwrap();
    let mut reply = [0u8; 1];
    conn.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"\n");
    assert!(dir.path().join("tiles/test/4/8/4.png").is_file());
    assert!(dir.path().join("tiles/test/4/9/4.png").is_file());
    // A second batch on the same connection.
    conn.write_all(b"4_10_4\n\n").unwrap();
    conn.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"\n");
    server.shutdown();
}
