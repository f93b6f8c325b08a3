use std::os::unix::fs::PermissionsExt;
use std::thread;

use ipc_proto::*;
use tile_math::TileCoord;

/// A tiny server: handshake, then answer Ping with Pong and a one-tile
/// RenderRequest with TileDone + BatchDone, until the client closes.
fn serve_one(listener: Listener) -> thread::JoinHandle<usize> {
    thread::spawn(move || {
        let mut conn = listener.accept_connection().unwrap();
        conn.server_handshake(listener.secret(), "test", Capabilities::NONE)
            .unwrap();
        let mut answered = 0;
        while let Some(msg) = conn.read_message().unwrap() {
            match msg {
                Message::Ping { token } => conn.queue(&Message::Pong { token }).unwrap(),
                Message::RenderRequest(r) => {
                    let TileSet::One(tile) = r.tiles else {
                        panic!("test sends one tile")
                    };
                    conn.queue(&Message::TileDone(TileDone {
                        request_id: r.request_id,
                        tile,
                        render_ms: 1,
                        cached: false,
                        payload: TilePayload::Path(format!("/tiles/{tile}.png")),
                    }))
                    .unwrap();
                    conn.queue(&Message::BatchDone(BatchDone {
                        request_id: r.request_id,
                        done: 1,
                        failed: 0,
                        cancelled: 0,
                    }))
                    .unwrap();
                }
                other => panic!("unexpected {other:?}"),
            }
            answered += 1;
            conn.flush().unwrap();
        }
        answered
    })
}

fn hello() -> Hello {
    Hello {
        versions: vec![PROTOCOL_VERSION],
        client_name: "t".into(),
        capabilities: Capabilities::NONE,
    }
}

fn exercise(endpoint: &Endpoint, secret: Option<&Secret>) {
    let mut conn = endpoint.connect_connection().unwrap();
    conn.client_handshake(secret, &hello()).unwrap();
    // Request/response.
    conn.send(&Message::Ping { token: 7 }).unwrap();
    assert_eq!(
        conn.read_message().unwrap(),
        Some(Message::Pong { token: 7 })
    );
    // A render request gets exactly one final answer and a BatchDone.
    let tile = TileCoord::new(16, 58001, 25480).unwrap();
    conn.send(&Message::RenderRequest(RenderRequest {
        request_id: 1,
        map: "osm".into(),
        priority: Priority::Viewport,
        delivery: Delivery::StorePath,
        force: false,
        deadline_ms: None,
        tiles: TileSet::One(tile),
    }))
    .unwrap();
    assert!(matches!(
        conn.read_message().unwrap(),
        Some(Message::TileDone(TileDone { request_id: 1, .. }))
    ));
    assert!(matches!(
        conn.read_message().unwrap(),
        Some(Message::BatchDone(BatchDone { done: 1, .. }))
    ));
    // Pipelining: 500 pings in one write, 500 pongs back.
    for token in 0..500 {
        conn.queue(&Message::Ping { token }).unwrap();
    }
    conn.flush().unwrap();
    for token in 0..500 {
        assert_eq!(conn.read_message().unwrap(), Some(Message::Pong { token }));
    }
    // Half-close: the server sees EOF, we see its EOF back.
    conn.shutdown_write().unwrap();
    assert_eq!(conn.read_message().unwrap(), None);
}

#[test]
fn tcp_loopback_end_to_end() {
    let listener = Listener::bind(
        &"tcp:127.0.0.1:0".parse().unwrap(),
        &ListenOptions::default(),
    )
    .unwrap();
    let endpoint = listener.local_endpoint().clone();
    assert!(matches!(&endpoint, Endpoint::Tcp { port, .. } if *port != 0));
    let server = serve_one(listener);
    exercise(&endpoint, None);
    assert_eq!(server.join().unwrap(), 502);
}

#[test]
fn tcp_localhost_with_secret() {
    let secret = Secret::new("s3cret").unwrap();
    let opts = ListenOptions {
        secret: Some(secret.clone()),
        ..ListenOptions::default()
    };
    let listener = Listener::bind(&"localhost:0".parse().unwrap(), &opts).unwrap();
    let endpoint = listener.local_endpoint().clone();
    let server = serve_one(listener);
    exercise(&endpoint, Some(&secret));
    assert_eq!(server.join().unwrap(), 502);
}

#[test]
fn connections_from_crate_have_nodelay() {
    let listener =
        Listener::bind(&Endpoint::tcp("127.0.0.1", 0), &ListenOptions::default()).unwrap();
    let client = listener.local_endpoint().connect().unwrap();
    let server = listener.accept().unwrap();
    assert!(client.as_tcp().unwrap().nodelay().unwrap());
    assert!(server.as_tcp().unwrap().nodelay().unwrap());
}

#[test]
fn unix_socket_end_to_end_and_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.sock");
    let endpoint = Endpoint::unix(&path);
    let listener = Listener::bind(&endpoint, &ListenOptions::default()).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1);
    let server = serve_one(listener);
    exercise(&endpoint, None);
    assert_eq!(server.join().unwrap(), 502);
    // The listener was dropped by the server thread: the file is gone.
    assert!(!path.exists());
}

#[test]
fn unix_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let listener = Listener::bind(&Endpoint::unix(&path), &ListenOptions::default()).unwrap();
    let _client = Endpoint::unix(&path).connect().unwrap();
    let _server = listener.accept().unwrap();
}

#[test]
fn unix_socket_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.sock");
    let first = Listener::bind(&Endpoint::unix(&path), &ListenOptions::default()).unwrap();
    match Listener::bind(&Endpoint::unix(&path), &ListenOptions::default()) {
        Err(Error::SocketInUse { path: p }) => assert_eq!(p, path),
        other => panic!("{other:?}"),
    }
    // The first listener still works.
    let _c = Endpoint::unix(&path).connect().unwrap();
    let _s = first.accept().unwrap();
}

#[test]
fn unix_path_that_is_not_a_socket_is_never_touched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("precious.txt");
    std::fs::write(&path, "data").unwrap();
    assert!(matches!(
        Listener::bind(&Endpoint::unix(&path), &ListenOptions::default()),
        Err(Error::NotASocket { .. })
    ));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
}

#[test]
fn half_close_peer_still_gets_its_answer() {
    // The client writes its requests, half-closes, and only then reads. The
    // server reads to EOF before answering (like the original C# client,
    // whose server never saw EOF without a half-close).
    let listener =
        Listener::bind(&Endpoint::tcp("127.0.0.1", 0), &ListenOptions::default()).unwrap();
    let endpoint = listener.local_endpoint().clone();
    let server = thread::spawn(move || {
        let mut conn = Connection::new(listener.accept().unwrap());
        let mut tokens = Vec::new();
        while let Some(Message::Ping { token }) = conn.read_message().unwrap() {
            tokens.push(token);
        }
        conn.send(&Message::StatsReply {
            entries: vec![("pings".into(), tokens.len() as u64)],
        })
        .unwrap();
    });
    let mut conn = Connection::from_transport(endpoint.connect().unwrap()).unwrap();
    for token in 0..10 {
        conn.queue(&Message::Ping { token }).unwrap();
    }
    conn.shutdown_write().unwrap();
    assert_eq!(
        conn.read_message().unwrap(),
        Some(Message::StatsReply {
            entries: vec![("pings".into(), 10)]
        })
    );
    assert_eq!(conn.read_message().unwrap(), None);
    server.join().unwrap();
}

#[test]
fn split_full_duplex_from_two_threads() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = Endpoint::unix(dir.path().join("duplex.sock"));
    let listener = Listener::bind(&endpoint, &ListenOptions::default()).unwrap();
    const N: u64 = 5000;
    // Echo server, itself split: one thread reads, one writes.
    let server = thread::spawn(move || {
        let conn = listener.accept_connection().unwrap();
        let (mut r, mut w) = conn.split().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<u64>();
        let writer = thread::spawn(move || {
            for token in rx {
                w.send(&Message::Pong { token }).unwrap();
            }
            w.shutdown_write().unwrap();
        });
        while let Some(Message::Ping { token }) = r.read_message().unwrap() {
            tx.send(token).unwrap();
        }
        drop(tx);
        writer.join().unwrap();
    });
    let conn = endpoint.connect_connection().unwrap();
    let (mut r, mut w) = conn.split().unwrap();
    // Writing all pings before reading would deadlock once socket buffers
    // fill; reading concurrently proves full duplex.
    let writer = thread::spawn(move || {
        for token in 0..N {
            w.queue(&Message::Ping { token }).unwrap();
            if token % 64 == 63 {
                w.flush().unwrap();
            }
        }
        w.shutdown_write().unwrap();
    });
    for token in 0..N {
        assert_eq!(r.read_message().unwrap(), Some(Message::Pong { token }));
    }
    assert_eq!(r.read_message().unwrap(), None);
    writer.join().unwrap();
    server.join().unwrap();
}

#[test]
fn insecure_remote_is_refused_with_a_clear_error() {
    let err =
        Listener::bind(&"tcp:0.0.0.0:0".parse().unwrap(), &ListenOptions::default()).unwrap_err();
    assert!(err.to_string().contains("allow_insecure_remote"), "{err}");
    let ok = Listener::bind(
        &"tcp:0.0.0.0:0".parse().unwrap(),
        &ListenOptions {
            allow_insecure_remote: true,
            ..ListenOptions::default()
        },
    );
    assert!(ok.is_ok());
}

/// `dir/` followed by a name of `s`s padded so the whole path is `len`
/// bytes.
fn path_of_len(dir: &std::path::Path, len: usize) -> std::path::PathBuf {
    let base = dir.as_os_str().len() + 1;
    assert!(
        base + 8 < len,
        "temporary directory {} is too long for this test",
        dir.display()
    );
    let path = dir.join("s".repeat(len - base));
    assert_eq!(path.as_os_str().len(), len);
    path
}

#[test]
fn unix_path_of_107_bytes_works_and_108_is_an_error_naming_the_limit() {
    assert_eq!(endpoint::MAX_UNIX_PATH, 107);
    let dir = tempfile::tempdir().unwrap();

    let fits = path_of_len(dir.path(), 107);
    let endpoint: Endpoint = format!("unix:{}", fits.display()).parse().unwrap();
    let listener = Listener::bind(&endpoint, &ListenOptions::default()).unwrap();
    let _client = endpoint.connect().unwrap();
    let _server = listener.accept().unwrap();
    drop(listener);

    let long = path_of_len(dir.path(), 108);
    let names_the_limit = |e: &Error| {
        let text = e.to_string();
        assert!(matches!(e, Error::InvalidEndpoint { .. }), "{e:?}");
        assert!(
            text.contains("108 bytes") && text.contains("at most 107"),
            "{text}"
        );
        assert!(text.contains("sun_path"), "{text}");
    };
    // Parsing (what the configuration does).
    names_the_limit(
        &format!("unix:{}", long.display())
            .parse::<Endpoint>()
            .unwrap_err(),
    );
    // Binding an endpoint built in code: an error, and nothing is created
    // (it used to be linked into place and reported as listening).
    names_the_limit(
        &Listener::bind(&Endpoint::unix(&long), &ListenOptions::default()).unwrap_err(),
    );
    assert!(!long.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // Connecting.
    names_the_limit(&Endpoint::unix(&long).connect().unwrap_err());
}

#[test]
fn unix_path_that_fits_in_a_directory_too_long_for_the_temporary_name() {
    // The real path is 107 bytes, but its directory is so long that the
    // temporary name it is first bound under (`.tessera-<16 hex>.sock`)
    // would not fit sun_path.
    let dir = tempfile::tempdir().unwrap();
    let deep = path_of_len(dir.path(), 100);
    std::fs::create_dir(&deep).unwrap();
    let path = deep.join("s.sock");
    assert_eq!(path.as_os_str().len(), 107);
    let endpoint = Endpoint::unix(&path);
    let listener = Listener::bind(&endpoint, &ListenOptions::default()).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    let names: Vec<_> = std::fs::read_dir(&deep).unwrap().collect();
    assert_eq!(names.len(), 1, "{names:?}");
    let server = serve_one(listener);
    exercise(&endpoint, None);
    assert_eq!(server.join().unwrap(), 502);
    assert!(!path.exists());
}
