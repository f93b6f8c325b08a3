//! `tile-client expire` (issue #12, point 3) as an operator runs it: the real
//! binary reads an expire list and drives a real server (in this process,
//! on a Unix socket) whose store was seeded; the test then looks at the
//! files and asks the server for tiles.

// Test helpers may unwrap: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use ipc_proto::{Delivery, Message, RejectReason};
use tile_client::{Event, ExpireAnswer, ExpireOptions, RequestOptions, TileClient};
use tile_math::TileCoord;

fn tile_client(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tile-client"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        // A command refused before it reads its input closes the pipe.
        let _ = pipe.write_all(bytes);
    }
    child.wait_with_output().unwrap()
}

fn t(z: u8, x: u32, y: u32) -> TileCoord {
    TileCoord::new(z, x, y).unwrap()
}

/// The one-polygon style of the other tests (sea, and a land square over
/// 20-30°E, 55-65°N), and a slow one: the same with 40,000 small squares
/// over the world (quick to load, slow to draw).
fn write_styles(dir: &Path) {
    let square = r#"{"type":"Feature","properties":{},"geometry":{"type":"Polygon","coordinates":[[[20,55],[30,55],[30,65],[20,65],[20,55]]]}}"#;
    std::fs::write(
        dir.join("square.geojson"),
        format!(r#"{{"type":"FeatureCollection","features":[{square}]}}"#),
    )
    .unwrap();
    let side = 200;
    let mut many = Vec::new();
    for i in 0..side * side {
        let (col, row) = (f64::from(i % side), f64::from(i / side));
        let (w, s) = (
            -170.0 + 340.0 * col / f64::from(side),
            -80.0 + 160.0 * row / f64::from(side),
        );
        many.push(format!(
            r#"{{"type":"Feature","properties":{{}},"geometry":{{"type":"Polygon","coordinates":[[[{w},{s}],[{e},{s}],[{e},{n}],[{w},{n}],[{w},{s}]]]}}}}"#,
            e = w + 0.1,
            n = s + 0.1
        ));
    }
    std::fs::write(
        dir.join("many.geojson"),
        format!(
            r#"{{"type":"FeatureCollection","features":[{}]}}"#,
            many.join(",")
        ),
    )
    .unwrap();
    let layer = |name: &str, file: &str, style: &str| {
        format!(
            r#"<Layer name="{name}" srs="epsg:4326"><StyleName>{style}</StyleName><Datasource><Parameter name="type">ogr</Parameter><Parameter name="file">{file}</Parameter><Parameter name="layer_by_index">0</Parameter></Datasource></Layer>"#
        )
    };
    let small = format!(
        r##"<Map srs="epsg:3857" background-color="#aad3df"><Style name="s"><Rule><PolygonSymbolizer fill="#f2efe9"/></Rule></Style>{}</Map>"##,
        layer("l", "square.geojson", "s")
    );
    std::fs::write(dir.join("small.xml"), &small).unwrap();
    let slow = small.replace(
        "</Map>",
        &format!(
            r##"<Style name="many"><Rule><PolygonSymbolizer fill="#203040"/><LineSymbolizer stroke="#102030" stroke-width="0.5" stroke-dasharray="1,1"/></Rule></Style>{}</Map>"##,
            layer("many", "many.geojson", "many")
        ),
    );
    std::fs::write(dir.join("slow.xml"), slow).unwrap();
}

/// A server in this process with the maps `small` and `slow`, one render
/// thread, tiles in `dir/tiles/<map>/z/x/y.png`.
fn server(dir: &Path) -> (render_service::Server, String) {
    write_styles(dir);
    let socket = dir.join("s.sock");
    let toml = format!(
        "[server]\nlisten = [\"unix:{}\"]\n[render]\nthreads = 1\n[store]\ndir = \"{}\"\n\
         [[map]]\nname = \"small\"\nstyle = \"{}\"\n[[map]]\nname = \"slow\"\nstyle = \"{}\"\n",
        socket.display(),
        dir.join("tiles").display(),
        dir.join("small.xml").display(),
        dir.join("slow.xml").display()
    );
    let config = render_service::ServiceConfig::from_toml(&toml, "test")
        .unwrap()
        .validate("test")
        .unwrap();
    let server = render_service::Server::start(&config).unwrap();
    (server, format!("unix:{}", socket.display()))
}

fn connect(addr: &str) -> TileClient {
    let client = TileClient::connect(&addr.parse().unwrap(), None, "expire test").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    client
}

fn stat(server: &render_service::Server, name: &str) -> u64 {
    server.handle().stats().unwrap().get(name).unwrap_or(0)
}

/// Requests tiles and waits for the request's end; `cached` of each tile.
fn render(client: &mut TileClient, map: &str, tiles: Vec<TileCoord>) -> BTreeMap<TileCoord, bool> {
    let options = RequestOptions {
        map: map.into(),
        delivery: Delivery::StorePath,
        ..RequestOptions::default()
    };
    let id = client.request_tiles(tiles, &options).unwrap();
    let mut cached = BTreeMap::new();
    loop {
        match client.next_event().unwrap().expect("server closed") {
            Event::Done(d) => {
                cached.insert(d.tile, d.cached);
            }
            Event::BatchDone(b) if b.request_id == id => return cached,
            other => panic!("unexpected answer {other:?}"),
        }
    }
}

/// Every stored tile of a map (`dir/tiles/<map>/z/x/y.png`), with its
/// modification time.
fn stored(dir: &Path, map: &str) -> BTreeMap<TileCoord, SystemTime> {
    let mut found = BTreeMap::new();
    let root = dir.join("tiles").join(map);
    let Ok(zooms) = std::fs::read_dir(&root) else {
        return found;
    };
    for z in zooms {
        let z = z.unwrap();
        let Ok(zoom) = z.file_name().to_string_lossy().parse::<u8>() else {
            continue; // @2x, .shared
        };
        for x in std::fs::read_dir(z.path()).unwrap() {
            let x = x.unwrap();
            let column: u32 = x.file_name().to_string_lossy().parse().unwrap();
            for y in std::fs::read_dir(x.path()).unwrap() {
                let y = y.unwrap();
                let name = y.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue; // a tile being written by a render now
                }
                let row: u32 = name
                    .strip_suffix(".png")
                    .unwrap_or_else(|| panic!("a file that is not a tile: {name}"))
                    .parse()
                    .unwrap();
                let modified = y.metadata().unwrap().modified().unwrap();
                found.insert(t(zoom, column, row), modified);
            }
        }
    }
    found
}

/// The 8x8 metatile (its north-west tile's x and y) a tile is in.
fn metatile(tile: TileCoord) -> (u8, u32, u32) {
    (tile.z(), tile.x() / 8 * 8, tile.y() / 8 * 8)
}

/// The expire list of the test: a 400 x 250 block of zoom-17 tiles over the
/// land square's western edge (100,000 lines), in osm2pgsql's format.
fn expire_list() -> (Vec<TileCoord>, String) {
    let (x0, y0) = (72_704, 37_888);
    let mut tiles = Vec::with_capacity(100_000);
    let mut text = String::with_capacity(100_000 * 18);
    for x in x0..x0 + 400 {
        for y in y0..y0 + 250 {
            tiles.push(t(17, x, y));
            text.push_str(&format!("17/{x}/{y}\n"));
        }
    }
    (tiles, text)
}

/// Acceptance (3) of issue #12: an expire list of 100,000 zoom-17 tiles,
/// expanded to zooms 6-12 with `--touch-from 10 --delete-from 12`, against
/// a store seeded around part of it: the stored metatiles it touches at
/// zoom 12 are deleted, at 10-11 marked stale (the server renders them
/// again instead of serving them), at 6-9 marked stale and re-rendered at
/// dirty priority, after `tile-client` has exited; metatiles not in the
/// store are counted and left alone, and every other tile is untouched.
#[test]
fn an_expire_list_of_100000_tiles_deletes_marks_and_rerenders_the_right_metatiles() {
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = server(dir.path());
    let mut client = connect(&addr);

    // Seed zooms 7-12 over the zoom-12 tiles x 2264-2279, y 1184-1191: two
    // metatiles at zoom 12 (one west of the list's), their ancestors above
    // (two at zooms 10 and 11, one at 7-9). Zoom 6 is left unseeded.
    let mut seed = Vec::new();
    for z in 7..=12u8 {
        let shift = 12 - z;
        for x in (2264 >> shift)..=(2279 >> shift) {
            for y in (1184 >> shift)..=(1191 >> shift) {
                seed.push(t(z, x, y));
            }
        }
    }
    let rendered = render(&mut client, "small", seed);
    assert!(rendered.values().all(|cached| !cached));
    // A high-DPI tile in a zoom-10 metatile the list touches.
    let hidpi_tile = t(10, 568, 296);
    render(&mut client, "small@2x", vec![hidpi_tile]);
    let hidpi_file = dir.path().join("tiles/small/@2x/10/568/296.png");
    assert!(hidpi_file.is_file());
    let before = stored(dir.path(), "small");

    // What the list means, worked out here independently: per zoom, the
    // 8x8 metatiles of the tiles' ancestors.
    let (list, text) = expire_list();
    let mut expired: BTreeSet<(u8, u32, u32)> = BTreeSet::new();
    for tile in &list {
        for z in 6..=12u8 {
            let shift = 17 - z;
            expired.insert(metatile(t(z, tile.x() >> shift, tile.y() >> shift)));
        }
    }
    let seeded: BTreeSet<(u8, u32, u32)> = before.keys().map(|t| metatile(*t)).collect();
    let hit = |zooms: std::ops::RangeInclusive<u8>| {
        expired
            .iter()
            .filter(|m| zooms.contains(&m.0) && seeded.contains(m))
            .count()
    };
    let (deleted, touched, queued) = (hit(12..=12), hit(10..=11), hit(6..=9));
    let absent = expired.len() - deleted - touched - queued;
    // The set-up is as intended: some of each.
    assert_eq!((deleted, touched, queued, absent), (1, 2, 3, 2));

    // A client that holds the only render thread with slow work of
    // another map (explicit, so it outranks dirty work), until the
    // expiry's client has gone.
    let mut blocker = connect(&addr);
    let slow: Vec<TileCoord> = (0..32)
        .flat_map(|x| (0..32).map(move |y| t(5, x, y)))
        .collect();
    let blocker_id = blocker
        .request_tiles(
            slow,
            &RequestOptions {
                map: "slow".into(),
                ..RequestOptions::default()
            },
        )
        .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    while stat(&server, "running_jobs") == 0 {
        assert!(Instant::now() < until, "the slow render never started");
        std::thread::sleep(Duration::from_millis(5));
    }

    let list_file = dir.path().join("expire.list");
    std::fs::write(&list_file, &text).unwrap();
    let started = SystemTime::now();
    let out = tile_client(
        &[
            "--server",
            &addr,
            "expire",
            "--map",
            "small",
            "--min-zoom",
            "6",
            "--max-zoom",
            "12",
            "--touch-from",
            "10",
            "--delete-from",
            "12",
            list_file.to_str().unwrap(),
        ],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("read 100000 tiles (0 bad lines skipped) from "),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("\ndeleted: {deleted} metatiles\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("\nmarked stale: {touched} metatiles\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "\nqueued for re-render (and marked stale): {queued} metatiles\n"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("\nnot in the store: {absent} metatiles\n")),
        "{stdout}"
    );
    assert!(stdout.contains("\nfailed: 0 metatiles\n"), "{stdout}");

    // tile-client has exited; the re-renders are queued, owned by the
    // server (client 0), behind the slow work that still runs.
    let stats = server.handle().stats().unwrap();
    assert!(
        stats.get("running_jobs") == Some(1) && stats.get("queued_explicit") > Some(0),
        "the slow work ended before the check: make it slower ({:?})",
        stats.entries
    );
    assert_eq!(
        stats.get("queued_dirty"),
        Some(queued as u64),
        "{:?}",
        stats.entries
    );
    assert_eq!(stats.get("client_0_queued"), Some(queued as u64));

    // The files, before any re-render: zoom 12's expired metatile gone,
    // the other one as it was; zooms 10-11 of the expired metatiles dated
    // back 20 years, the others as they were.
    let after = stored(dir.path(), "small");
    let twenty_years_ago = started - Duration::from_secs(19 * 365 * 86_400);
    for (tile, modified) in &before {
        let was_expired = expired.contains(&metatile(*tile));
        match (tile.z(), was_expired) {
            (12, true) => assert!(!after.contains_key(tile), "{tile} deleted"),
            (10 | 11, true) => assert!(after[tile] < twenty_years_ago, "{tile} marked stale"),
            (7..=9, true) => assert!(
                after[tile] < twenty_years_ago || after[tile] >= started,
                "{tile} marked stale (or already re-rendered)"
            ),
            _ => assert_eq!(after.get(tile), Some(modified), "{tile} untouched"),
        }
    }
    assert!(
        after.keys().all(|tile| before.contains_key(tile)),
        "nothing new"
    );
    let hidpi_modified = std::fs::metadata(&hidpi_file).unwrap().modified().unwrap();
    assert!(
        hidpi_modified < twenty_years_ago,
        "the @2x tile is marked stale too"
    );

    // Let the slow work go: the dirty re-renders run although nobody
    // waits for them. A re-rendered tile is fresh again: dated by its
    // render (which began after the expiry), or, a single-colour tile,
    // linked to the shared file of its colour (dated by the first tile of
    // the server's run that made it).
    blocker.cancel(vec![blocker_id]).unwrap();
    drop(blocker);
    let rerendered: Vec<TileCoord> = before
        .keys()
        .filter(|t| (7..=9).contains(&t.z()) && expired.contains(&metatile(**t)))
        .copied()
        .collect();
    assert_eq!(rerendered.len(), 3 * 64);
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let now = stored(dir.path(), "small");
        let renewed = |t: &TileCoord| {
            let file = dir
                .path()
                .join(format!("tiles/small/{}/{}/{}.png", t.z(), t.x(), t.y()));
            now[t] >= started || std::fs::metadata(file).unwrap().nlink() > 1
        };
        if rerendered.iter().all(renewed) {
            break;
        }
        assert!(
            Instant::now() < until,
            "the dirty re-renders never happened: {:?}",
            rerendered
                .iter()
                .filter(|t| !renewed(t))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        rerendered
            .iter()
            .any(|t| stored(dir.path(), "small")[t] >= started),
        "some tiles are not single-coloured"
    );
    for tile in &rerendered {
        let path = dir.path().join(format!(
            "tiles/small/{}/{}/{}.png",
            tile.z(),
            tile.x(),
            tile.y()
        ));
        let png = std::fs::read(&path).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{tile} is a PNG again");
    }

    // Marked stale means rendered again when asked for; the tiles around
    // them still come from the store.
    let stale_z10 = *before
        .keys()
        .find(|t| t.z() == 10 && expired.contains(&metatile(**t)))
        .unwrap();
    let fresh_z10 = *before
        .keys()
        .find(|t| t.z() == 10 && !expired.contains(&metatile(**t)))
        .unwrap();
    let answers = render(&mut client, "small", vec![stale_z10, fresh_z10]);
    assert!(!answers[&stale_z10], "stale: rendered again");
    assert!(answers[&fresh_z10], "untouched: from the store");
    let answers = render(&mut client, "small@2x", vec![hidpi_tile]);
    assert!(!answers[&hidpi_tile], "the @2x tile too");
    drop(client);
    server.shutdown();
}

/// Bad lines are named with their number and content and skipped, the good
/// ones are still expired, and the exit status says something was wrong;
/// bad options are refused before anything is read.
#[test]
fn bad_lines_and_bad_options_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = server(dir.path());
    let mut client = connect(&addr);
    render(&mut client, "small", vec![t(3, 4, 2)]);
    let expire = |args: &[&str], stdin: &[u8]| {
        let mut all = vec!["--server", addr.as_str(), "expire"];
        all.extend_from_slice(args);
        tile_client(&all, Some(stdin))
    };
    let list = b"3/4/2\nnot a tile\n\n3/9/0\n31/0/0\n3/4/2/1\n\xff/1/1\n";
    let out = expire(
        &[
            "--map",
            "small",
            "--min-zoom",
            "3",
            "--max-zoom",
            "3",
            "--touch-from",
            "3",
        ],
        list,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    for expected in [
        "line 2: \"not a tile\": not a tile: expected z/x/y",
        "line 4: \"3/9/0\": tile 3/9/0 is outside zoom 3",
        "line 5: \"31/0/0\": zoom 31 is out of range",
        "line 6: \"3/4/2/1\": not a tile",
        "line 7: \"\u{fffd}/1/1\": not UTF-8",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in {stderr}");
    }
    assert!(
        stdout.starts_with("read 1 tiles (5 bad lines skipped) from standard input"),
        "{stdout}"
    );
    assert!(stdout.contains("\nmarked stale: 1 metatiles\n"), "{stdout}");
    let answers = render(&mut client, "small", vec![t(3, 4, 2)]);
    assert!(!answers[&t(3, 4, 2)], "the good line was expired");

    // An unknown map: refused by the server, even for an empty list.
    let out = expire(&["--map", "nope"], b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("UnknownMap")
            && stderr.contains("no map named \"nope\"; this server has small, slow"),
        "{stderr}"
    );

    // Bad options: exit status 2, before connecting or reading.
    for (args, message) in [
        (&["--max-zoom", "31"][..], "out of range"),
        (
            &["--min-zoom", "13", "--max-zoom", "12"],
            "--min-zoom 13 is above --max-zoom 12",
        ),
        (
            &["--touch-from", "15", "--delete-from", "12"],
            "--touch-from 15 is above --delete-from 12",
        ),
        (&["--touch-from", "x"], "not a zoom level"),
        (
            &["/no/such/list"],
            "cannot read the expire list /no/such/list",
        ),
    ] {
        let out = expire(args, b"3/4/2\n");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    drop(client);
    server.shutdown();
}

/// A tile the store cannot act on is counted as failed, named in the
/// message, and makes the exit status 1; the rest is still expired.
#[test]
fn a_metatile_that_cannot_be_deleted_fails_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = server(dir.path());
    let mut client = connect(&addr);
    render(&mut client, "small", vec![t(4, 0, 0), t(4, 8, 8)]);
    // A directory in the place of a tile of the first metatile (as root,
    // permissions cannot make deleting fail).
    let blocker = dir.path().join("tiles/small/4/1/1.png");
    std::fs::remove_file(&blocker).unwrap();
    std::fs::create_dir_all(blocker.join("in-the-way")).unwrap();
    let out = tile_client(
        &[
            "--server",
            &addr,
            "expire",
            "--map",
            "small",
            "--min-zoom",
            "4",
            "--max-zoom",
            "4",
            "--delete-from",
            "4",
            "-",
        ],
        Some(b"4/0/0\n4/8/8\n"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("could not expire a metatile: deleting ") && stderr.contains("4/1/1.png"),
        "{stderr}"
    );
    assert!(
        stdout.contains("\nfailed: 1 metatiles\n") && stdout.contains("\ndeleted: 1 metatiles\n"),
        "{stdout}"
    );
    assert!(!dir.path().join("tiles/small/4/8/8.png").exists());
    drop(client);
    server.shutdown();
}

/// Through a pipe (cron, systemd), progress comes as whole lines as the
/// list is read; with `--progress-interval 0`, one per line of the list.
#[test]
fn expire_reports_progress_through_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = server(dir.path());
    let list: String = (0..50).map(|i| format!("10/{i}/0\n")).collect();
    let out = tile_client(
        &[
            "--server",
            &addr,
            "expire",
            "--max-zoom",
            "10",
            "--progress-interval",
            "0",
        ],
        Some(list.as_bytes()),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stderr.contains('\r'),
        "redrawn in place off a terminal: {stderr:?}"
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("[expire] "))
        .collect();
    assert_eq!(lines.len(), 50, "{stderr}");
    assert!(
        lines[49].starts_with("[expire] 50 tiles read, "),
        "{}",
        lines[49]
    );
    assert!(lines[49].contains("not in the store"), "{}", lines[49]);
    server.shutdown();
}

/// The protocol's own checks, with the library: one answer per `Expire`,
/// refusals that do nothing, and an id of an open render request refused
/// as a protocol error.
#[test]
fn expire_messages_are_checked_by_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = server(dir.path());
    let mut client = connect(&addr);
    render(&mut client, "small", vec![t(2, 1, 1)]);
    let options = |touch_from, delete_from| ExpireOptions {
        map: "small".into(),
        touch_from,
        delete_from,
        block_size: 8,
    };
    let refused = |client: &mut TileClient, tiles, options: &ExpireOptions| {
        client.send_expire(tiles, options).unwrap();
        match client.next_expire_answer().unwrap() {
            ExpireAnswer::Rejected(r) => (r.reason, r.message),
            other => panic!("{other:?}"),
        }
    };
    let (reason, message) = refused(&mut client, vec![t(2, 1, 1)], &options(Some(5), Some(4)));
    assert_eq!(reason, RejectReason::InvalidRequest);
    assert!(
        message.contains("touch_from 5 is above delete_from 4"),
        "{message}"
    );
    let (reason, _) = refused(
        &mut client,
        vec![t(2, 1, 1); ipc_proto::MAX_EXPIRE_TILES + 1],
        &options(None, None),
    );
    assert_eq!(reason, RejectReason::TooManyTiles);
    assert!(
        dir.path().join("tiles/small/2/1/1.png").is_file(),
        "refusals do nothing"
    );

    // Blocks of another size than the server's metatile: a block of one
    // tile acts on its metatile.
    client
        .send_expire(
            vec![t(2, 3, 3)],
            &ExpireOptions {
                block_size: 1,
                ..options(None, Some(0))
            },
        )
        .unwrap();
    match client.next_expire_answer().unwrap() {
        ExpireAnswer::Done(d) => assert_eq!((d.deleted, d.absent), (1, 0), "{d:?}"),
        other => panic!("{other:?}"),
    }
    assert!(!dir.path().join("tiles/small/2/1/1.png").exists());

    // The id of a request still open: Goodbye, as for a render request.
    let slow = RequestOptions {
        map: "slow".into(),
        ..RequestOptions::default()
    };
    let open = client.request_tiles(vec![t(4, 0, 0)], &slow).unwrap();
    client
        .queue(&Message::Expire(ipc_proto::Expire {
            request_id: open,
            map: "small".into(),
            touch_from: None,
            delete_from: None,
            block_size: 8,
            tiles: vec![],
        }))
        .unwrap();
    client.flush().unwrap();
    let closed = loop {
        match client.next_event() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("closed without a Goodbye"),
            Err(e) => break e.to_string(),
        }
    };
    assert!(closed.contains("is still open"), "{closed}");
    // The file layout stays clean: no temporary file anywhere.
    let leftovers: Vec<PathBuf> = walk(&dir.path().join("tiles"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    server.shutdown();
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn a_marked_single_colour_tile_no_longer_shares_its_file() {
    // Sea tiles are hard links to one shared file; marking one stale must
    // not mark the others (nor the shared file later tiles link to).
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = server(dir.path());
    let mut client = connect(&addr);
    // Zoom 6 around the date line is open sea: two metatiles.
    render(&mut client, "small", vec![t(6, 0, 30), t(6, 8, 30)]);
    let sea = dir.path().join("tiles/small/6/0/30.png");
    let other = dir.path().join("tiles/small/6/8/30.png");
    assert!(
        std::fs::metadata(&sea).unwrap().nlink() > 2,
        "sea tiles share a file"
    );
    let out = tile_client(
        &[
            "--server",
            &addr,
            "expire",
            "--min-zoom",
            "6",
            "--max-zoom",
            "6",
            "--touch-from",
            "6",
        ],
        Some(b"6/0/30\n"),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::metadata(&sea).unwrap().nlink(), 1);
    let answers = render(&mut client, "small", vec![t(6, 0, 30), t(6, 8, 30)]);
    assert!(!answers[&t(6, 0, 30)], "marked stale");
    assert!(
        answers[&t(6, 8, 30)],
        "its link partner in another metatile is not"
    );
    assert!(other.is_file());
    server.shutdown();
}
