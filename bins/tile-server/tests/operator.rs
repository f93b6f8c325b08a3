//! What an operator sees, with the real binary (issue #12): exit statuses,
//! the log (failed tiles, "ready", no colour, each error once),
//! `--check-config`, the legacy application's layout, forced re-renders
//! that leave no temporary files, and a copied binary that still serves
//! its demo map.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use ipc_proto::{Delivery, Endpoint, FailureKind, Priority, TilePayload};
use render_service::ServiceConfig;
use tile_client::{Event, RequestOptions, TileClient};
use tile_math::{tiles_covering, LngLatBbox};

use crate::support::{
    decode_rgba, files_under, run_to_end, server_command, t, write_small_style, ServerProcess,
};

fn client(endpoint: &Endpoint) -> TileClient {
    let client = TileClient::connect(endpoint, None, "operator test").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    client
}

/// Every event of one request, its `BatchDone` last.
fn answers(client: &mut TileClient, id: u64) -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        let event = client.next_event().unwrap().expect("closed early");
        let last = event.ends_request() && event.request_id() == id;
        events.push(event);
        if last {
            return events;
        }
    }
}

/// A server on `style` with its tiles in `tiles`, on a free TCP port.
fn serve_style(style: &Path, tiles: &Path, extra: &[&str]) -> ServerProcess {
    ServerProcess::start(
        server_command()
            .args(["--style".as_ref(), style.as_os_str()])
            .args(["--tile-dir".as_ref(), tiles.as_os_str()])
            .args(["--listen", "tcp:127.0.0.1:0", "--threads", "2"])
            .args(extra),
    )
}

/// Issue #12, point 4: forcing the re-render of single-colour tiles (hard
/// links to one shared file) three times leaves no `.tmp` file.
#[test]
fn three_forced_seeds_leave_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let tiles = dir.path().join("tiles");
    let server = serve_style(&style, &tiles, &["--metatile", "2"]);
    let mut client = client(&server.endpoint);
    // Finland's square and a lot of sea around it: most tiles are one
    // colour.
    let bbox = LngLatBbox::new(0.0, 45.0, 45.0, 70.0);
    let wanted: Vec<_> = tiles_covering(bbox, 0..=6).unwrap().collect();
    let forced = RequestOptions {
        priority: Priority::Bulk,
        force: true,
        ..RequestOptions::default()
    };
    for _ in 0..3 {
        let id = client.request_tiles(wanted.clone(), &forced).unwrap();
        let events = answers(&mut client, id);
        let done = events
            .iter()
            .filter(|e| matches!(e, Event::Done(d) if !d.cached))
            .count();
        assert_eq!(done, wanted.len(), "every tile rendered again");
    }
    server.stop();
    let files = files_under(&tiles);
    let temporary: Vec<_> = files
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(
        temporary.is_empty(),
        "{} temporary files left behind, e.g. {:?}",
        temporary.len(),
        temporary.first()
    );
    // The shared path was taken: some tiles are links to one file.
    use std::os::unix::fs::MetadataExt;
    let linked = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .filter(|p| std::fs::metadata(p).unwrap().nlink() > 2)
        .count();
    assert!(linked > 10, "only {linked} tiles share a file");
}

/// Issue #12, point 6: one map and the legacy layout put the tile where
/// the legacy application looks, `tile_dir/16_58001_25480.png`, asked for
/// over the legacy line protocol.
#[test]
fn the_legacy_layout_writes_straight_into_the_tile_dir() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let tiles = dir.path().join("tiles");
    let server = serve_style(
        &style,
        &tiles,
        &[
            "--tile-layout",
            "{z}_{x}_{y}.png",
            "--legacy-listen",
            "tcp:127.0.0.1:0",
        ],
    );
    let Some(Endpoint::Tcp { port, .. }) = server.legacy.clone() else {
        panic!("no legacy endpoint announced");
    };
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    // A batch ended by an empty line is answered on the same connection.
    conn.write_all(b"16_58001_25480\n\n").unwrap();
    let mut reply = [0u8; 1];
    conn.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"\n");
    server.stop();
    let tile = tiles.join("16_58001_25480.png");
    assert!(tile.is_file(), "{}", tile.display());
    decode_rgba(&std::fs::read(&tile).unwrap());
    let folders: Vec<_> = std::fs::read_dir(&tiles)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(folders, [".shared"], "no map folder");
}

/// Two maps and a layout without `{map}` would write the same files: the
/// configuration is refused, naming the key and the fix.
#[test]
fn two_maps_without_map_in_the_layout_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let config = dir.path().join("tessera.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nlayout = \"{{z}}_{{x}}_{{y}}.png\"\n[[map]]\nname = \"a\"\nstyle = \"{0}\"\n[[map]]\nname = \"b\"\nstyle = \"{0}\"\n",
            style.display()
        ),
    )
    .unwrap();
    let ended = run_to_end(server_command().arg("--config").arg(&config));
    assert_eq!(ended.status.code(), Some(2), "{}", ended.stderr);
    assert!(
        ended.stderr.contains("`store.layout`")
            && ended.stderr.contains("\"{map}/{z}_{x}_{y}.png\""),
        "{}",
        ended.stderr
    );
}

/// Issue #12, point 7: a tile that cannot be stored is answered to the
/// client and logged at WARN with its map, tile and reason.
#[test]
fn a_failed_tile_is_in_the_server_log() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let tiles = dir.path().join("tiles");
    let server = serve_style(&style, &tiles, &[]);
    // The zoom's folder cannot be made: a file is in its place. (Tests may
    // run as root, whom permissions do not stop.)
    std::fs::write(tiles.join("default/12"), b"in the way").unwrap();
    let mut client = client(&server.endpoint);
    let id = client
        .request_tiles(vec![t(12, 2300, 1100)], &RequestOptions::default())
        .unwrap();
    let events = answers(&mut client, id);
    let Event::Failed(failed) = &events[0] else {
        panic!("{events:?}");
    };
    assert_eq!(failed.kind, FailureKind::Storage);
    let ended = server.stop();
    let line = ended
        .stderr
        .lines()
        .find(|l| l.contains("tile=12/2300/1100"))
        .unwrap_or_else(|| panic!("no log line for the tile:\n{}", ended.stderr));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("map=default"), "{line}");
    assert!(line.contains("tile failed"), "{line}");
    assert!(
        line.contains("default/12"),
        "the reason names the path: {line}"
    );
}

/// Issue #12, point 7: "ready" comes once the map has loaded and the
/// listener is bound, renders are logged at debug with their time, and a
/// log that is not a terminal has no colour codes. A style warning is
/// said once.
#[test]
fn the_log_says_ready_once_everything_is_up_without_colour() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let text = std::fs::read_to_string(&style).unwrap();
    std::fs::write(
        &style,
        text.replace("<PolygonSymbolizer ", "<PolygonSymbolizer bogus=\"1\" "),
    )
    .unwrap();
    let server = ServerProcess::start(
        server_command()
            .env("RUST_LOG", "info,render_service::service=debug")
            .env_remove("NO_COLOR")
            .args(["--style".as_ref(), style.as_os_str()])
            .args(["--tile-dir".as_ref(), dir.path().join("tiles").as_os_str()])
            .args(["--listen", "tcp:127.0.0.1:0"]),
    );
    let mut client = client(&server.endpoint);
    let id = client
        .request_tiles(vec![t(3, 4, 2)], &RequestOptions::default())
        .unwrap();
    answers(&mut client, id);
    let ended = server.stop();
    assert_eq!(ended.status.code(), Some(0), "{}", ended.stderr);
    let log = ended.stderr;
    assert!(!log.contains('\x1b'), "colour codes in a log file:\n{log}");
    let position = |what: &str| {
        log.find(what)
            .unwrap_or_else(|| panic!("no {what:?} in:\n{log}"))
    };
    assert!(position("unknown attribute `bogus`") < position(" ready "));
    assert!(position("listening") < position(" ready "));
    assert_eq!(log.matches("unknown attribute `bogus`").count(), 1, "{log}");
    let rendered = log
        .lines()
        .find(|l| l.contains("metatile rendered"))
        .unwrap_or_else(|| panic!("no render at debug:\n{log}"));
    assert!(
        rendered.contains("DEBUG") && rendered.contains("map=default") && rendered.contains("ms="),
        "{rendered}"
    );
}

/// Issue #12, point 7: a style that does not load exits 2, as documented,
/// before anything says it listens; a missing GeoPackage layer names the
/// layers there are.
#[test]
fn a_bad_style_exits_2_before_listening_and_names_the_layers() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/demo/helsinki.gpkg");
    let style = dir.path().join("bad.xml");
    std::fs::write(
        &style,
        format!(
            r#"<Map srs="epsg:3857"><Style name="s"><Rule><LineSymbolizer stroke="black"/></Rule></Style>
<Layer name="streets" srs="epsg:4326"><StyleName>s</StyleName><Datasource>
<Parameter name="type">ogr</Parameter><Parameter name="file">{}</Parameter>
<Parameter name="layer">streets</Parameter></Datasource></Layer></Map>"#,
            demo.display()
        ),
    )
    .unwrap();
    let ended = run_to_end(
        server_command()
            .args(["--style".as_ref(), style.as_os_str()])
            .args(["--tile-dir".as_ref(), dir.path().join("tiles").as_os_str()])
            .args(["--listen", "tcp:127.0.0.1:0"]),
    );
    assert_eq!(ended.status.code(), Some(2), "{}", ended.stderr);
    assert!(ended.stdout.is_empty(), "{}", ended.stdout);
    assert!(!ended.stderr.contains("listening"), "{}", ended.stderr);
    assert!(
        ended
            .stderr
            .contains("has no layer `streets`; its layers are: roads, buildings"),
        "{}",
        ended.stderr
    );
    assert!(!ended.stderr.contains("NULL pointer"), "{}", ended.stderr);
    assert_eq!(
        ended.stderr.matches("has no layer").count(),
        1,
        "{}",
        ended.stderr
    );
}

/// Issue #12, point 7: each error said once and in the user's terms.
#[test]
fn errors_are_said_once_and_blame_what_the_user_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let tiles = dir.path().join("tiles");
    // A port in use: exit 1, "Address already in use" once.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let ended = run_to_end(
        server_command()
            .args(["--style".as_ref(), style.as_os_str()])
            .args(["--tile-dir".as_ref(), tiles.as_os_str()])
            .args(["--listen", &format!("tcp:127.0.0.1:{port}")]),
    );
    assert_eq!(ended.status.code(), Some(1), "{}", ended.stderr);
    assert_eq!(
        ended.stderr.trim_end(),
        format!(
            "tile-server: cannot listen on tcp:127.0.0.1:{port}: Address already in use (os error 98)"
        )
    );
    // A URL where an endpoint belongs: the flag is blamed, HTTP named.
    // (No --style: the built-in demo is unpacked, into this test's cache.)
    let cache = dir.path().join("cache");
    let ended = run_to_end(
        server_command()
            .env("XDG_CACHE_HOME", &cache)
            .args(["--listen", "http://localhost:7420"]),
    );
    assert_eq!(ended.status.code(), Some(2), "{}", ended.stderr);
    let said = ended.stderr.trim_end();
    assert!(
        said.starts_with("tile-server: command line: `--listen`: "),
        "{said}"
    );
    assert!(
        said.contains("not HTTP") && said.contains("tcp:HOST:PORT"),
        "{said}"
    );
    assert!(
        !said.contains("brackets") && !said.contains("built-in"),
        "{said}"
    );
    // A flag's bad value is the flag's, not the built-in configuration's.
    let ended = run_to_end(
        server_command()
            .env("XDG_CACHE_HOME", &cache)
            .args(["--metatile", "99"]),
    );
    assert_eq!(ended.status.code(), Some(2), "{}", ended.stderr);
    assert_eq!(
        ended.stderr.trim_end(),
        "tile-server: command line: `--metatile`: must be 1 to 64"
    );
}

/// Issue #12, point 8: `--check-config` loads the styles: 0 and the
/// effective configuration as TOML that reads back, or 2 for a broken
/// style.
#[test]
fn check_config_loads_the_styles_and_prints_toml() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let elsewhere = tempfile::tempdir().unwrap();
    let ended = run_to_end(
        server_command()
            .current_dir(elsewhere.path())
            .args([
                "--check-config",
                "--tile-dir",
                "relative/tiles",
                "--threads",
                "3",
            ])
            .args(["--style".as_ref(), style.as_os_str()]),
    );
    assert_eq!(ended.status.code(), Some(0), "{}", ended.stderr);
    let printed = ServiceConfig::from_toml(&ended.stdout, "printed").unwrap();
    assert_eq!(printed.maps.len(), 1);
    assert_eq!(printed.maps[0].name, "default");
    assert_eq!(printed.maps[0].style, style);
    assert_eq!(printed.render.threads, 3);
    assert_eq!(
        printed.store.dir,
        elsewhere.path().join("relative/tiles"),
        "the store as the server would use it"
    );
    assert!(
        !elsewhere.path().join("relative").exists(),
        "nothing written"
    );
    assert!(printed.clone().validate("printed").is_ok());

    // A style that does not parse: exit 2, said once.
    let broken = dir.path().join("broken.xml");
    std::fs::write(&broken, "<Map><Layer").unwrap();
    let ended = run_to_end(
        server_command()
            .arg("--check-config")
            .args(["--style".as_ref(), broken.as_os_str()]),
    );
    assert_eq!(ended.status.code(), Some(2), "{}", ended.stderr);
    assert!(ended.stderr.contains("map `default`: "), "{}", ended.stderr);
    assert!(ended.stderr.contains("broken.xml"), "{}", ended.stderr);
    assert!(
        !ended.stderr.contains("configuration OK"),
        "{}",
        ended.stderr
    );

    // A bad key in a file: exit 2, naming the key.
    let config = dir.path().join("tessera.toml");
    std::fs::write(&config, "[render]\nthreadz = 2\n").unwrap();
    let ended = run_to_end(
        server_command()
            .arg("--check-config")
            .arg("--config")
            .arg(&config),
    );
    assert_eq!(ended.status.code(), Some(2), "{}", ended.stderr);
    assert!(ended.stderr.contains("threadz"), "{}", ended.stderr);
}

/// Issue #12, point 9: the binary copied to another folder and run from
/// yet another serves the demo map, the same picture as the repository's
/// `data/demo/demo.xml`, from the copy it carries (unpacked into its
/// cache, or a temporary folder it removes when there is no cache).
#[test]
fn a_copied_binary_serves_the_demo_map() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let copied = bin.join("tile-server");
    std::fs::copy(env!("CARGO_BIN_EXE_tile-server"), &copied).unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let cache = dir.path().join("cache");
    // Central Helsinki: the demo's streets and buildings.
    let tile = t(15, 18654, 9485);
    let inline = RequestOptions {
        delivery: Delivery::InlinePng,
        ..RequestOptions::default()
    };
    let render = |server: &ServerProcess| {
        let mut client = client(&server.endpoint);
        let id = client.request_tiles(vec![tile], &inline).unwrap();
        match &answers(&mut client, id)[0] {
            Event::Done(done) => match &done.payload {
                TilePayload::Png(png) => decode_rgba(png).pixels,
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    };

    // With a cache folder.
    let server = ServerProcess::start(
        std::process::Command::new(&copied)
            .current_dir(&work)
            .env("XDG_CACHE_HOME", &cache)
            .args(["--listen", "tcp:127.0.0.1:0", "--threads", "1"]),
    );
    let served = render(&server);
    let ended = server.stop();
    assert!(
        ended
            .stdout
            .contains(&format!("({}", cache.join("tessera/demo-").display())),
        "the style is not the unpacked copy:\n{}",
        ended.stdout
    );
    assert!(work.join("tiles/demo/15/18654/9485.png").is_file());

    // Without a cache: a private temporary folder, gone afterwards.
    let temp = dir.path().join("tmp");
    std::fs::create_dir(&temp).unwrap();
    let server = ServerProcess::start(
        std::process::Command::new(&copied)
            .current_dir(&work)
            .env_remove("XDG_CACHE_HOME")
            .env_remove("HOME")
            .env("TMPDIR", &temp)
            .args(["--listen", "tcp:127.0.0.1:0", "--threads", "1"])
            .args(["--tile-dir", "tiles-2"]),
    );
    assert_eq!(
        std::fs::read_dir(&temp).unwrap().count(),
        1,
        "one demo folder"
    );
    let served_again = render(&server);
    let ended = server.stop();
    assert_eq!(ended.status.code(), Some(0), "{}", ended.stderr);
    assert_eq!(
        std::fs::read_dir(&temp).unwrap().count(),
        0,
        "removed at exit"
    );

    // The repository's demo, named explicitly, draws the same picture.
    let repo_demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/demo/demo.xml");
    let server = serve_style(&repo_demo, &dir.path().join("repo-tiles"), &[]);
    let expected = render(&server);
    server.stop();
    assert!(served == expected, "the carried demo draws another picture");
    assert!(served_again == expected);
}
