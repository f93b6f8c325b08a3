//! renderd's socket protocol through the real binary (issue #12, point 5),
//! driven with the raw bytes of mod_tile's `struct protocol`: answers that
//! echo the request once its `.meta` file is written, several requests in
//! flight on one connection, dirty work, requests that outlive their
//! connection, bad requests and bad bytes, shutdown, socket modes and the
//! configurations that are refused.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ipc_proto::{
    Delivery, Endpoint, RenderdCommand, RenderdDecoder, RenderdMessage, RenderdVersion, TilePayload,
};
use tile_client::{Event, RequestOptions, TileClient};
use tile_math::TileCoord;

use crate::support::{run_to_end, server_command, t, ServerProcess};

/// tile-server serving the demo map (`demo`) in the mod_tile layout, with
/// renderd's protocol on `dir/renderd.sock` and the framed protocol on
/// `dir/tessera.sock`.
pub fn serve_mod_tile(dir: &Path, extra: &[&str]) -> ServerProcess {
    let socket = |name: &str| format!("unix:{}", dir.join(name).display());
    ServerProcess::start(
        server_command()
            .args(["--tile-dir".as_ref(), dir.join("tiles").as_os_str()])
            .args(["--tile-layout", "mod_tile", "--threads", "2"])
            .args(["--renderd-listen", &socket("renderd.sock")])
            .args(["--listen", &socket("tessera.sock")])
            .args(extra),
    )
}

/// A renderd-protocol connection, as mod_tile and render_list open one.
pub struct RenderdClient {
    stream: UnixStream,
    decoder: RenderdDecoder,
}

impl RenderdClient {
    pub fn connect(path: &Path) -> RenderdClient {
        let stream = UnixStream::connect(path).unwrap();
        // A hung test fails instead of waiting forever.
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        RenderdClient {
            stream,
            decoder: RenderdDecoder::new(),
        }
    }

    pub fn send(&mut self, message: &RenderdMessage) {
        self.stream.write_all(&message.encode()).unwrap();
    }

    /// The next answer, or `None` when the server closed the connection.
    pub fn answer(&mut self) -> Option<RenderdMessage> {
        let mut buf = [0u8; 256];
        loop {
            if let Some(answer) = self.decoder.take_message().unwrap() {
                return Some(answer);
            }
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    assert_eq!(self.decoder.buffered(), 0, "closed inside an answer");
                    return None;
                }
                Ok(n) => self.decoder.feed(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("reading an answer: {e}"),
            }
        }
    }
}

pub fn request(
    version: RenderdVersion,
    command: RenderdCommand,
    tile: TileCoord,
    map: &str,
) -> RenderdMessage {
    RenderdMessage::new(
        version,
        command,
        (tile.z() as i32, tile.x() as i32, tile.y() as i32),
        map,
    )
    .unwrap()
}

/// Where mod_tile keeps `tile` of `map` under `tile_dir`, computed here
/// from mod_tile's rule (`xyzo_to_meta`), not with tessera's code.
pub fn meta_path(tile_dir: &Path, map: &str, tile: TileCoord) -> PathBuf {
    let (mut x, mut y) = (tile.x() & !7, tile.y() & !7);
    let mut hash = [0u32; 5];
    for h in &mut hash {
        *h = ((x & 0xf) << 4) | (y & 0xf);
        x >>= 4;
        y >>= 4;
    }
    tile_dir.join(format!(
        "{map}/{}/{}/{}/{}/{}/{}.meta",
        tile.z(),
        hash[4],
        hash[3],
        hash[2],
        hash[1],
        hash[0]
    ))
}

/// One tile's PNG out of a `.meta` file, read as mod_tile's
/// `file_tile_read` does (independently of tessera's reader).
pub fn tile_from_meta(path: &Path, tile: TileCoord) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let int = |at: usize| i32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(&bytes[..4], b"META", "{}", path.display());
    assert_eq!(int(4), 64);
    assert_eq!(
        (int(8), int(12), int(16)),
        (
            (tile.x() & !7) as i32,
            (tile.y() & !7) as i32,
            i32::from(tile.z())
        )
    );
    let entry = 20 + (((tile.x() & 7) * 8 + (tile.y() & 7)) as usize) * 8;
    let (offset, size) = (int(entry) as usize, int(entry + 4) as usize);
    assert!(size > 0, "no tile {tile} in {}", path.display());
    bytes[offset..offset + size].to_vec()
}

fn framed_client(dir: &Path) -> TileClient {
    let endpoint = Endpoint::Unix(dir.join("tessera.sock"));
    let client = TileClient::connect(&endpoint, None, "renderd test").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    client
}

/// The tiles' PNGs as tessera's framed protocol gives them (inline, from
/// the store when fresh), with whether each came from the store.
pub fn tessera_tiles(dir: &Path, tiles: Vec<TileCoord>) -> HashMap<TileCoord, (Vec<u8>, bool)> {
    tessera_tiles_delivered(dir, tiles, Delivery::InlinePng)
}

fn tessera_tiles_delivered(
    dir: &Path,
    tiles: Vec<TileCoord>,
    delivery: Delivery,
) -> HashMap<TileCoord, (Vec<u8>, bool)> {
    let mut client = framed_client(dir);
    let options = RequestOptions {
        delivery,
        ..RequestOptions::default()
    };
    let id = client.request_tiles(tiles, &options).unwrap();
    let mut found = HashMap::new();
    loop {
        let event = client.next_event().unwrap().expect("closed early");
        match &event {
            Event::Done(done) => {
                let TilePayload::Png(png) = &done.payload else {
                    panic!("a .meta store answered with a path: {done:?}");
                };
                found.insert(done.tile, (png.clone(), done.cached));
            }
            Event::BatchDone(_) => {}
            other => panic!("not done: {other:?}"),
        }
        if event.ends_request() && event.request_id() == id {
            return found;
        }
    }
}

/// Waits (at most a minute) for a file to appear.
pub fn wait_for_file(path: &Path) {
    let until = Instant::now() + Duration::from_secs(60);
    while !path.is_file() {
        assert!(
            Instant::now() < until,
            "{} did not appear within a minute",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn render_requests_are_answered_done_with_the_request_echoed_once_the_meta_file_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_mod_tile(dir.path(), &[]);
    assert_eq!(
        server.renderd,
        [Endpoint::Unix(dir.path().join("renderd.sock"))],
        "said on stdout"
    );
    let tiles = dir.path().join("tiles");
    let mut renderd = RenderdClient::connect(&dir.path().join("renderd.sock"));
    for (version, command, tile) in [
        // render_list and render_expired speak version 2, mod_tile 3.
        (RenderdVersion::V2, RenderdCommand::Render, t(3, 4, 2)),
        (RenderdVersion::V3, RenderdCommand::RenderPrio, t(4, 9, 5)),
        (RenderdVersion::V3, RenderdCommand::RenderLow, t(5, 17, 9)),
        (RenderdVersion::V2, RenderdCommand::RenderBulk, t(6, 36, 18)),
    ] {
        let asked = request(version, command, tile, "demo");
        renderd.send(&asked);
        let answer = renderd.answer().expect("an answer");
        assert_eq!(
            answer.encode(),
            asked.answer(RenderdCommand::Done).encode(),
            "{asked}: the request echoed, cmdDone"
        );
        // Done means the metatile is stored: its file is there already,
        // and tessera's own lookups read the same tile out of it.
        let meta = meta_path(&tiles, "demo", tile);
        let png = tile_from_meta(&meta, tile);
        assert!(png.starts_with(b"\x89PNG"));
        let from_tessera = tessera_tiles(dir.path(), vec![tile]);
        assert_eq!(from_tessera[&tile], (png, true), "{tile}");
    }
    // mod_tile's planet-import-complete says from when tiles count.
    assert!(tiles.join("demo/planet-import-complete").is_file());
    let ended = server.stop();
    assert!(ended.status.success(), "{}", ended.stderr);
}

#[test]
fn many_requests_in_flight_on_one_connection_each_get_one_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_mod_tile(dir.path(), &[]);
    let mut renderd = RenderdClient::connect(&dir.path().join("renderd.sock"));
    // Eight metatiles of zoom 5, one of them asked for three times (two of
    // those for the same tile), sent before any answer is read.
    let mut sent = Vec::new();
    for x in [0, 8, 16, 24] {
        for y in [8, 16] {
            sent.push(request(
                RenderdVersion::V2,
                RenderdCommand::RenderBulk,
                t(5, x, y),
                "demo",
            ));
        }
    }
    sent.push(sent[0].clone());
    sent.push(request(
        RenderdVersion::V3,
        RenderdCommand::RenderPrio,
        t(5, 3, 12),
        "demo",
    ));
    for message in &sent {
        renderd.send(message);
    }
    let mut expected: Vec<Vec<u8>> = sent
        .iter()
        .map(|m| m.answer(RenderdCommand::Done).encode())
        .collect();
    for _ in 0..sent.len() {
        let answer = renderd.answer().expect("an answer").encode();
        let at = expected
            .iter()
            .position(|e| *e == answer)
            .unwrap_or_else(|| panic!("an answer no request is owed: {answer:?}"));
        expected.remove(at);
    }
    assert!(expected.is_empty());
    for message in &sent {
        let tile = t(message.z as u8, message.x as u32, message.y as u32);
        assert!(meta_path(&dir.path().join("tiles"), "demo", tile).is_file());
    }
    server.stop();
}

#[test]
fn dirty_is_answered_not_done_at_once_and_rendered_after_the_client_left() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_mod_tile(dir.path(), &[]);
    let tile = t(6, 37, 18);
    let meta = meta_path(&dir.path().join("tiles"), "demo", tile);
    {
        let mut renderd = RenderdClient::connect(&dir.path().join("renderd.sock"));
        let dirty = request(RenderdVersion::V3, RenderdCommand::Dirty, tile, "demo");
        renderd.send(&dirty);
        assert_eq!(
            renderd.answer().unwrap().encode(),
            dirty.answer(RenderdCommand::NotDone).encode(),
            "renderd answers a queued dirty request NotDone"
        );
        // mod_tile sends dirty requests and hangs up.
    }
    wait_for_file(&meta);
    tile_from_meta(&meta, tile);
    server.stop();
}

#[test]
fn requests_of_a_connection_that_closed_are_still_rendered() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_mod_tile(dir.path(), &[]);
    let tiles = [t(7, 72, 37), t(7, 80, 37), t(7, 72, 45)];
    {
        let mut renderd = RenderdClient::connect(&dir.path().join("renderd.sock"));
        for tile in tiles {
            renderd.send(&request(
                RenderdVersion::V3,
                RenderdCommand::RenderPrio,
                tile,
                "demo",
            ));
        }
        // As mod_tile does after its timeout: gone without an answer.
    }
    for tile in tiles {
        let meta = meta_path(&dir.path().join("tiles"), "demo", tile);
        wait_for_file(&meta);
        tile_from_meta(&meta, tile);
    }
    server.stop();
}

#[test]
fn bad_requests_get_not_done_and_bad_bytes_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_mod_tile(dir.path(), &[]);
    let socket = dir.path().join("renderd.sock");
    let mut good = RenderdClient::connect(&socket);
    let mut not_a_command = request(
        RenderdVersion::V2,
        RenderdCommand::Render,
        t(3, 4, 2),
        "demo",
    );
    not_a_command.command = RenderdCommand::Done as i32;
    for (asked, logged) in [
        (
            request(
                RenderdVersion::V2,
                RenderdCommand::Render,
                t(3, 4, 2),
                "nosuchmap",
            ),
            "no map of that name; this server has demo",
        ),
        (
            request(
                RenderdVersion::V3,
                RenderdCommand::Render,
                t(3, 4, 2),
                "demo@2x",
            ),
            "high-DPI variants (@2x) are not kept in mod_tile's layout",
        ),
        (
            // Version 1 names no map: renderd's `default`, not served here.
            request(RenderdVersion::V1, RenderdCommand::Render, t(3, 4, 2), ""),
            "\"default\" 3/4/2 (v1): no map of that name",
        ),
        (
            RenderdMessage::new(
                RenderdVersion::V3,
                RenderdCommand::RenderPrio,
                (3, 8, 0),
                "demo",
            )
            .unwrap(),
            "not a tile of the world",
        ),
        (not_a_command, "not a request renderd serves"),
    ] {
        good.send(&asked);
        assert_eq!(
            good.answer().unwrap().encode(),
            asked.answer(RenderdCommand::NotDone).encode(),
            "{asked}"
        );
        server.wait_for_log(logged, 1);
    }
    // A version renderd does not know: that connection is closed, with a
    // log line; nothing is answered on it.
    let mut broken = RenderdClient::connect(&socket);
    let mut bytes = request(
        RenderdVersion::V2,
        RenderdCommand::Render,
        t(3, 4, 2),
        "demo",
    )
    .encode();
    bytes[..4].copy_from_slice(&7i32.to_ne_bytes());
    broken.stream.write_all(&bytes).unwrap();
    assert!(broken.answer().is_none(), "closed without an answer");
    server.wait_for_log("protocol version 7 is not one of renderd's", 1);
    // A message cut short by the end of the connection is logged too.
    let whole = request(
        RenderdVersion::V2,
        RenderdCommand::Render,
        t(3, 4, 2),
        "demo",
    )
    .encode();
    let mut short = UnixStream::connect(&socket).unwrap();
    short.write_all(&whole[..30]).unwrap();
    short.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    short.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    server.wait_for_log("the connection ended 30 bytes into a message of 64", 1);
    // The first connection was not disturbed.
    let asked = request(
        RenderdVersion::V2,
        RenderdCommand::Render,
        t(3, 4, 2),
        "demo",
    );
    good.send(&asked);
    assert_eq!(
        good.answer().unwrap().encode(),
        asked.answer(RenderdCommand::Done).encode()
    );
    let ended = server.stop();
    assert!(ended.status.success(), "{}", ended.stderr);
}

#[test]
fn shutdown_answers_every_open_request_once_then_closes() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_mod_tile(dir.path(), &[]);
    let mut renderd = RenderdClient::connect(&dir.path().join("renderd.sock"));
    // 256 metatiles of zoom 10: far more than two threads render before
    // the signal.
    let mut owed: HashMap<(i32, i32), u32> = HashMap::new();
    for x in (0..128).step_by(8) {
        for y in (0..128).step_by(8) {
            renderd.send(&request(
                RenderdVersion::V2,
                RenderdCommand::RenderBulk,
                t(10, 512 + x, 256 + y),
                "demo",
            ));
            *owed.entry((512 + x as i32, 256 + y as i32)).or_default() += 1;
        }
    }
    let first = renderd.answer().expect("a first answer");
    server.signal("TERM");
    let (mut done, mut not_done) = (0, 0);
    let mut answers = vec![first];
    while let Some(answer) = renderd.answer() {
        answers.push(answer);
    }
    for answer in answers {
        let left = owed
            .get_mut(&(answer.x, answer.y))
            .unwrap_or_else(|| panic!("an answer no request is owed: {answer}"));
        assert_eq!(*left, 1, "answered twice: {answer}");
        *left = 0;
        match answer.command() {
            Some(RenderdCommand::Done) => done += 1,
            Some(RenderdCommand::NotDone) => not_done += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(
        owed.values().all(|left| *left == 0),
        "every request answered"
    );
    assert!(
        done >= 1 && not_done >= 1,
        "{done} done, {not_done} not done"
    );
    // It exits by itself after the one signal, cleanly.
    let mut server = server;
    let until = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < until,
            "still running a minute after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}

#[test]
fn renderd_sockets_are_private_unless_the_configuration_opens_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_mod_tile(dir.path(), &[]);
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("renderd.sock")), 0o600);
    server.stop();
    let config = dir.path().join("tessera.toml");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/demo/demo.xml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = []\nrenderd_listen = [\"unix:{}\"]\nrenderd_socket_mode = \"0666\"\n\
             [store]\ndir = \"{}\"\nlayout = \"mod_tile\"\n[[map]]\nname = \"demo\"\nstyle = \"{}\"\n",
            dir.path().join("open.sock").display(),
            dir.path().join("tiles").display(),
            demo.display()
        ),
    )
    .unwrap();
    let mut command = server_command();
    command.args(["--config".as_ref(), config.as_os_str()]);
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("tile-server: ready") {
        line.clear();
        assert!(
            std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0,
            "exited before it was ready"
        );
    }
    assert_eq!(mode(&dir.path().join("open.sock")), 0o666);
    let mut renderd = RenderdClient::connect(&dir.path().join("open.sock"));
    let asked = request(
        RenderdVersion::V3,
        RenderdCommand::RenderPrio,
        t(2, 2, 1),
        "demo",
    );
    renderd.send(&asked);
    assert_eq!(
        renderd.answer().unwrap().command(),
        Some(RenderdCommand::Done)
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_meta_store_answers_store_path_requests_with_the_png() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_mod_tile(dir.path(), &[]);
    let tiles = vec![t(4, 9, 4), t(4, 9, 5)];
    // Rendered now, then from the store: both times the bytes, since a
    // tile in a .meta file has no path of its own.
    let rendered = tessera_tiles_delivered(dir.path(), tiles.clone(), Delivery::StorePath);
    let stored = tessera_tiles_delivered(dir.path(), tiles.clone(), Delivery::StorePath);
    for tile in tiles {
        let meta = meta_path(&dir.path().join("tiles"), "demo", tile);
        let png = tile_from_meta(&meta, tile);
        assert_eq!(rendered[&tile], (png.clone(), false));
        assert_eq!(stored[&tile], (png, true));
    }
    server.stop();
}

#[test]
fn configurations_mod_tile_and_renderd_cannot_serve_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tiles = dir.path().join("tiles");
    for (args, says) in [
        (
            vec!["--tile-layout", "mod_tile", "--metatile", "4"],
            "command line: `--metatile`: 4 (metatiles of 4×4 tiles), but the mod_tile layout \
             stores mod_tile's 8×8 metatiles: use 8",
        ),
        (
            vec![
                "--tile-layout",
                "mod_tile",
                "--legacy-listen",
                "tcp:127.0.0.1:0",
            ],
            "the legacy application reads one PNG file per tile",
        ),
        (
            vec!["--renderd-listen", "tcp:0.0.0.0:0"],
            "refusing to serve renderd's protocol on non-loopback address 0.0.0.0:0: it has no \
             authentication",
        ),
        (
            vec!["--renderd-listen", "renderd.sock"],
            "`--renderd-listen`",
        ),
    ] {
        let ended = run_to_end(
            server_command()
                .args(["--tile-dir".as_ref(), tiles.as_os_str()])
                .args(["--listen", "tcp:127.0.0.1:0"])
                .args(&args),
        );
        assert_eq!(ended.status.code(), Some(2), "{args:?}: {}", ended.stderr);
        assert!(ended.stderr.contains(says), "{args:?}: {}", ended.stderr);
        assert!(!ended.stdout.contains("ready"), "{args:?}");
    }
}
