//! Fresh tiles and reloads with the real binary (issue #12, points 1 and 2):
//! a style or data change made while the server runs is never served as
//! fresh after a restart or a reload; SIGHUP reloads without dropping a
//! client; a style that fails to load keeps the old one serving; maps are
//! added and removed by a reload of the configuration file.

use std::path::Path;
use std::time::Duration;

use ipc_proto::{Delivery, MapReloadStatus, Priority, RejectReason, TilePayload};
use render_service::{Reloader, ServiceConfig};
use tile_client::{Event, RequestOptions, TileClient};
use tile_math::{tiles_covering, LngLatBbox, TileCoord};

use crate::support::{
    decode_rgba, server_command, t, write_slow_style, write_small_style, ServerProcess,
};

/// The small style's colours (see `write_small_style`).
const SEA: [u8; 3] = [0xaa, 0xd3, 0xdf];
const LAND: [u8; 3] = [0xf2, 0xef, 0xe9];
const RED: [u8; 3] = [0xff, 0, 0];

/// A tile of open sea, and one whose centre is inside the style's square.
fn sea_tile() -> TileCoord {
    t(3, 0, 0)
}
fn square_tile() -> TileCoord {
    t(5, 18, 9)
}

fn client(endpoint: &ipc_proto::Endpoint) -> TileClient {
    let client = TileClient::connect(endpoint, None, "freshness test").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    client
}

/// One tile, inline: whether it came from the store, and its centre pixel.
fn fetch(client: &mut TileClient, tile: TileCoord) -> (bool, [u8; 3]) {
    let options = RequestOptions {
        delivery: Delivery::InlinePng,
        ..RequestOptions::default()
    };
    let id = client.request_tiles(vec![tile], &options).unwrap();
    let mut answer = None;
    loop {
        match client.next_event().unwrap().expect("server closed") {
            Event::Done(done) => {
                let TilePayload::Png(png) = done.payload else {
                    panic!("asked for the PNG inline")
                };
                let rgba = decode_rgba(&png);
                let i = ((rgba.height / 2 * rgba.width + rgba.width / 2) * 4) as usize;
                answer = Some((
                    done.cached,
                    [rgba.pixels[i], rgba.pixels[i + 1], rgba.pixels[i + 2]],
                ));
            }
            Event::BatchDone(b) if b.request_id == id => break,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    answer.expect("no tile in the answer")
}

fn serve(style: &Path, tiles: &Path) -> ServerProcess {
    ServerProcess::start(
        server_command()
            .args(["--style".as_ref(), style.as_os_str()])
            .args(["--tile-dir".as_ref(), tiles.as_os_str()])
            .args([
                "--listen",
                "tcp:127.0.0.1:0",
                "--threads",
                "2",
                "--metatile",
                "2",
            ]),
    )
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

/// The style edited while the server runs: tiles it renders afterwards
/// still come from the copy it loaded (and say so), and after a restart
/// none of them is served from the store: the old behaviour served the
/// tiles written after the edit as fresh, with the old look, for ever.
#[test]
fn a_style_edited_while_running_is_not_served_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let tiles = dir.path().join("tiles");
    let server = serve(&style, &tiles);
    let mut c = client(&server.endpoint);
    assert_eq!(fetch(&mut c, sea_tile()), (false, SEA));
    assert_eq!(
        fetch(&mut c, sea_tile()),
        (true, SEA),
        "the store serves it"
    );
    edit(&style, "#aad3df", "#ff0000");
    // Drawn after the edit with the style that was loaded.
    assert_eq!(fetch(&mut c, square_tile()), (false, LAND));
    let sea_after_edit = t(3, 7, 0);
    assert_eq!(fetch(&mut c, sea_after_edit), (false, SEA));
    drop(c);
    assert!(server.stop().status.success());

    let server = serve(&style, &tiles);
    let mut c = client(&server.endpoint);
    assert_eq!(fetch(&mut c, sea_tile()), (false, RED));
    assert_eq!(
        fetch(&mut c, sea_after_edit),
        (false, RED),
        "written after the edit, still stale"
    );
    assert_eq!(fetch(&mut c, square_tile()), (false, LAND));
    assert_eq!(fetch(&mut c, sea_tile()), (true, RED));
    drop(c);
    // An unchanged restart keeps the new tiles fresh.
    assert!(server.stop().status.success());
    let server = serve(&style, &tiles);
    let mut c = client(&server.endpoint);
    assert_eq!(fetch(&mut c, sea_tile()), (true, RED));
    drop(c);
    assert!(server.stop().status.success());
}

/// The data edited (the square moved away) while the server runs: after a
/// restart the tile that showed it is drawn again, without it.
#[test]
fn a_data_change_while_running_is_not_served_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let data = dir.path().join("square.geojson");
    let tiles = dir.path().join("tiles");
    let server = serve(&style, &tiles);
    let mut c = client(&server.endpoint);
    assert_eq!(fetch(&mut c, square_tile()), (false, LAND));
    edit(
        &data,
        "[[[20,55],[30,55],[30,65],[20,65],[20,55]]]",
        "[[[-60,-40],[-50,-40],[-50,-30],[-60,-30],[-60,-40]]]",
    );
    // Still the loaded data until a restart or a reload.
    assert_eq!(fetch(&mut c, square_tile()), (true, LAND));
    drop(c);
    assert!(server.stop().status.success());

    let server = serve(&style, &tiles);
    let mut c = client(&server.endpoint);
    assert_eq!(
        fetch(&mut c, square_tile()),
        (false, SEA),
        "the square is gone"
    );
    drop(c);
    assert!(server.stop().status.success());
}

/// SIGHUP reloads: a changed style swaps in and its older tiles are stale;
/// nothing changed, nothing stale; the server keeps running (it used to
/// exit 129 and leave its socket file).
#[test]
fn sighup_reloads_a_changed_style_and_keeps_unchanged_tiles() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let tiles = dir.path().join("tiles");
    let mut server = serve(&style, &tiles);
    let mut c = client(&server.endpoint);
    assert_eq!(fetch(&mut c, sea_tile()), (false, SEA));

    server.signal("HUP");
    server.wait_for_log("unchanged", 1);
    assert_eq!(
        fetch(&mut c, sea_tile()),
        (true, SEA),
        "nothing changed, still fresh"
    );

    edit(&style, "#aad3df", "#ff0000");
    server.signal("HUP");
    server.wait_for_log("reloaded", 1);
    assert_eq!(
        fetch(&mut c, sea_tile()),
        (false, RED),
        "the old tile is stale"
    );
    assert_eq!(fetch(&mut c, sea_tile()), (true, RED));
    assert!(server.is_running());
    drop(c);
    let ended = server.stop();
    assert!(ended.status.success(), "{}", ended.stderr);
}

/// SIGHUP under load (acceptance 2): a seed runs on one connection while
/// the style changes and the server reloads five times; every tile gets
/// its one answer, none fails, and the connection stays.
#[test]
fn sighup_under_load_drops_no_client_and_answers_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let tiles = dir.path().join("tiles");
    let server = serve(&style, &tiles);
    let mut c = client(&server.endpoint);
    let wanted: Vec<TileCoord> = tiles_covering(LngLatBbox::new(15.0, 50.0, 35.0, 68.0), 0..=9)
        .unwrap()
        .collect();
    let options = RequestOptions {
        priority: Priority::Bulk,
        ..RequestOptions::default()
    };
    let id = c.request_tiles(wanted.clone(), &options).unwrap();
    let colours = ["#ff0000", "#aad3df"];
    for round in 0..5 {
        let (from, to) = (colours[(round + 1) % 2], colours[round % 2]);
        edit(&style, from, to);
        server.signal("HUP");
        server.wait_for_log("reloaded", round + 1);
    }
    let (mut done, mut other) = (0, Vec::new());
    loop {
        match c
            .next_event()
            .unwrap()
            .expect("the server dropped the client")
        {
            Event::Done(_) => done += 1,
            Event::BatchDone(b) if b.request_id == id => {
                assert_eq!((b.done, b.failed, b.cancelled), (wanted.len() as u32, 0, 0));
                break;
            }
            event => other.push(event),
        }
    }
    assert_eq!(done, wanted.len());
    assert!(other.is_empty(), "{other:?}");
    // The connection still serves, with the last style.
    assert_eq!(fetch(&mut c, t(1, 0, 0)), (false, RED));
    drop(c);
    let ended = server.stop();
    assert!(ended.status.success(), "{}", ended.stderr);
    assert_eq!(
        ended.stderr.matches("reloaded").count(),
        5,
        "{}",
        ended.stderr
    );
}

/// A configuration that serves `maps` (name, style) from `dir`.
fn write_config(path: &Path, dir: &Path, threads: usize, maps: &[(&str, &Path)]) {
    let mut toml = format!(
        "[server]\nlisten = [\"unix:{}\"]\n[render]\nthreads = {threads}\nmetatile = 2\n[store]\ndir = \"{}\"\n",
        dir.join("s.sock").display(),
        dir.join("tiles").display()
    );
    for (name, style) in maps {
        toml.push_str(&format!(
            "[[map]]\nname = \"{name}\"\nstyle = \"{}\"\n",
            style.display()
        ));
    }
    std::fs::write(path, toml).unwrap();
}

/// A server in this process that reloads from a configuration file, as
/// tile-server does.
fn reloadable_server(config_file: &Path) -> render_service::Server {
    let read = |path: &Path| {
        ServiceConfig::from_file(path)
            .map_err(|e| e.to_string())?
            .validate("test")
            .map_err(|e| e.to_string())
    };
    let config = read(config_file).unwrap();
    let server = render_service::Server::start(&config).unwrap();
    let path = config_file.to_path_buf();
    assert!(server
        .handle()
        .set_reloader(Reloader::new(config, Box::new(move || read(&path)))));
    server
}

/// A style that fails to load at a reload keeps the old one serving (its
/// tiles stay fresh), and the answer says why; a configuration that does
/// not parse changes nothing; other changed settings are named as needing
/// a restart.
#[test]
fn a_failed_reload_keeps_the_old_style_serving() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let config_file = dir.path().join("tessera.toml");
    write_config(&config_file, dir.path(), 2, &[("small", &style)]);
    let server = reloadable_server(&config_file);
    let mut c = client(&server.endpoints()[0]);
    assert_eq!(fetch(&mut c, sea_tile()), (false, SEA));

    std::fs::write(&style, "<Map><Layer name=").unwrap();
    let answer = c.reload().unwrap();
    assert_eq!(answer.error, "");
    assert_eq!(answer.maps.len(), 1);
    assert_eq!(answer.maps[0].status, MapReloadStatus::Failed);
    assert!(
        answer.maps[0].detail.contains("small.xml"),
        "{:?}",
        answer.maps[0]
    );
    assert_eq!(
        fetch(&mut c, sea_tile()),
        (true, SEA),
        "the old style's tiles are still fresh"
    );
    assert_eq!(
        fetch(&mut c, t(3, 7, 0)),
        (false, SEA),
        "and it still renders"
    );

    std::fs::write(&config_file, "[server\n").unwrap();
    let answer = c.reload().unwrap();
    assert!(answer.error.contains("nothing was reloaded"), "{answer:?}");
    assert!(answer.maps.is_empty());

    write_small_style(dir.path());
    write_config(&config_file, dir.path(), 1, &[("small", &style)]);
    let answer = c.reload().unwrap();
    assert_eq!(answer.error, "");
    assert_eq!(answer.restart_needed, ["render.threads"]);
    // Written again (a new file time): loaded again, as a change.
    assert_eq!(answer.maps[0].status, MapReloadStatus::Reloaded);
    drop(c);
    server.shutdown();
}

/// Maps added to and removed from the configuration file: the new one
/// serves at once, the removed one is refused, the other keeps its tiles.
#[test]
fn a_reload_adds_and_removes_maps() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let red = dir.path().join("red.xml");
    std::fs::write(
        &red,
        std::fs::read_to_string(&style)
            .unwrap()
            .replace("#aad3df", "#ff0000"),
    )
    .unwrap();
    let config_file = dir.path().join("tessera.toml");
    write_config(&config_file, dir.path(), 2, &[("small", &style)]);
    let server = reloadable_server(&config_file);
    let mut c = client(&server.endpoints()[0]);
    assert_eq!(fetch(&mut c, sea_tile()), (false, SEA));

    write_config(
        &config_file,
        dir.path(),
        2,
        &[("red", &red), ("small", &style)],
    );
    let answer = c.reload().unwrap();
    let statuses: Vec<_> = answer
        .maps
        .iter()
        .map(|m| (m.map.as_str(), m.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("red", MapReloadStatus::Added),
            ("small", MapReloadStatus::Unchanged)
        ]
    );
    assert_eq!(
        c.list_maps().unwrap(),
        ["red", "small"],
        "the first is the default"
    );
    assert_eq!(
        fetch(&mut c, sea_tile()),
        (false, RED),
        "the default is now `red`"
    );
    let small = RequestOptions {
        map: "small".into(),
        delivery: Delivery::InlinePng,
        ..RequestOptions::default()
    };
    let id = c.request_tiles(vec![sea_tile()], &small).unwrap();
    match c.next_event().unwrap().unwrap() {
        Event::Done(done) => assert!(done.cached, "`small` kept its tiles"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(c.next_event().unwrap().unwrap(), Event::BatchDone(b) if b.request_id == id));

    write_config(&config_file, dir.path(), 2, &[("red", &red)]);
    let answer = c.reload().unwrap();
    let statuses: Vec<_> = answer
        .maps
        .iter()
        .map(|m| (m.map.as_str(), m.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("red", MapReloadStatus::Unchanged),
            ("small", MapReloadStatus::Removed)
        ]
    );
    c.request_tiles(vec![sea_tile()], &small).unwrap();
    match c.next_event().unwrap().unwrap() {
        Event::Rejected(r) => assert_eq!(r.reason, RejectReason::UnknownMap),
        other => panic!("{other:?}"),
    }
    drop(c);
    server.shutdown();
}

/// A server started without a configuration to reload from (embedded)
/// answers `Reload` with an error, and keeps serving.
#[test]
fn reload_without_a_source_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let server = crate::support::start(dir.path(), &style, |_| {});
    let mut c = crate::support::connect(&server, 0);
    let answer = c.reload().unwrap();
    assert_eq!(
        answer.error,
        "this server has no configuration to reload from"
    );
    c.ping(7).unwrap();
    drop(c);
    server.shutdown();
}

/// A render that began with the old style and ends after a reload is
/// delivered to its client as it was drawn (the old look), but stored as
/// stale: the next request draws it with the new style. The old render is
/// made slow (many features) and the new style quick to load, so the
/// reload lands while it runs (checked: the job is still running when the
/// reload returns).
#[test]
fn a_render_that_spans_a_reload_is_stored_stale() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_slow_style(dir.path(), 40_000);
    let config_file = dir.path().join("tessera.toml");
    write_config(&config_file, dir.path(), 1, &[("small", &style)]);
    let server = reloadable_server(&config_file);
    let handle = server.handle().clone();
    let running = || {
        handle
            .stats()
            .unwrap()
            .entries
            .iter()
            .find(|(k, _)| k == "running_jobs")
            .map(|(_, v)| *v)
            .unwrap()
    };
    let mut c = client(&server.endpoints()[0]);
    let options = RequestOptions {
        delivery: Delivery::InlinePng,
        ..RequestOptions::default()
    };
    let id = c.request_tiles(vec![sea_tile()], &options).unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while running() == 0 {
        assert!(
            std::time::Instant::now() < until,
            "the render never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The new style: red, without the slow layer.
    write_small_style(dir.path());
    edit(&style, "#aad3df", "#ff0000");
    let answer = handle.reload().unwrap();
    assert_eq!(answer.maps[0].status, MapReloadStatus::Reloaded);
    assert_eq!(running(), 1, "the old render still runs after the reload");

    match c.next_event().unwrap().unwrap() {
        Event::Done(done) => {
            let TilePayload::Png(png) = done.payload else {
                panic!("inline")
            };
            let rgba = decode_rgba(&png);
            assert_eq!(
                &rgba.pixels[..3],
                &SEA,
                "drawn with the style it began with"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(c.next_event().unwrap().unwrap(), Event::BatchDone(b) if b.request_id == id));
    assert_eq!(
        fetch(&mut c, sea_tile()),
        (false, RED),
        "stored as stale, drawn again"
    );
    drop(c);
    server.shutdown();
}

/// `server.watch_interval_ms`: a style edit reloads by itself; a broken
/// style is tried once (not every interval) and the old one keeps serving;
/// the fix reloads again.
#[test]
fn a_watched_style_reloads_by_itself_and_a_broken_one_is_tried_once() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let config_file = dir.path().join("tessera.toml");
    std::fs::write(
        &config_file,
        format!(
            "[server]\nlisten = [\"tcp:127.0.0.1:0\"]\nwatch_interval_ms = 50\n[render]\nthreads = 2\nmetatile = 2\n\
             [store]\ndir = \"{}\"\n[[map]]\nname = \"small\"\nstyle = \"{}\"\n",
            dir.path().join("tiles").display(),
            style.display()
        ),
    )
    .unwrap();
    let server =
        ServerProcess::start(server_command().args(["--config".as_ref(), config_file.as_os_str()]));
    let mut c = client(&server.endpoint);
    assert_eq!(fetch(&mut c, sea_tile()), (false, SEA));

    edit(&style, "#aad3df", "#ff0000");
    server.wait_for_log("reloaded map=small", 1);
    assert_eq!(fetch(&mut c, sea_tile()), (false, RED));

    let good = std::fs::read_to_string(&style).unwrap();
    // Saved as an editor saves (a new file renamed over the old): a test
    // that truncates and writes could be caught halfway by a loaded machine.
    let save = |text: &str| {
        let temp = style.with_extension("xml.new");
        std::fs::write(&temp, text).unwrap();
        std::fs::rename(&temp, &style).unwrap();
    };
    save("<Map><Layer");
    server.wait_for_log("reload failed", 1);
    // Many intervals later, still one attempt, and the old style serves.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(fetch(&mut c, sea_tile()), (true, RED));
    save(&good.replace("#ff0000", "#aad3df"));
    server.wait_for_log("reloaded map=small", 2);
    assert_eq!(fetch(&mut c, sea_tile()), (false, SEA));
    drop(c);
    let ended = server.stop();
    assert!(ended.status.success(), "{}", ended.stderr);
    assert_eq!(
        ended.stderr.matches("reload failed").count(),
        1,
        "{}",
        ended.stderr
    );
}

/// A request that reaches the scheduler after another render of its
/// metatile finished (it checked the store just before) is answered from
/// the store, not drawn again: the scheduler's merging has a window the
/// store check closes.
#[test]
fn a_job_whose_tiles_were_just_rendered_is_answered_from_the_store() {
    use render_service::{PriorityClass, TileOutcome, TileRequest};
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let server = crate::support::start(dir.path(), &style, |_| {});
    let handle = server.handle().clone();
    let (client, events) = handle.register();
    let ask = |request_id, force| {
        assert!(handle.submit(TileRequest {
            client,
            request_id,
            map: 0,
            tiles: vec![sea_tile()],
            class: PriorityClass::Explicit,
            deadline: None,
            force,
        }));
        let event = events.recv_timeout(Duration::from_secs(60)).unwrap();
        match event.outcome {
            TileOutcome::Done { cached, .. } => cached,
            other => panic!("{other:?}"),
        }
    };
    assert!(!ask(1, false), "the first request draws it");
    assert!(
        ask(2, false),
        "the second, past the store check, is answered from the store"
    );
    assert!(!ask(3, true), "unless it forces a render");
    let stats = handle.stats().unwrap();
    assert_eq!(stats.get("metatiles_rendered"), Some(2));
    drop(events);
    server.shutdown();
}
