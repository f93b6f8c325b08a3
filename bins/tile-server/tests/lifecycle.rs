use ipc_proto::Priority;
use tile_client::{Event, RequestOptions, TileClient};

use crate::support::{
    assert_golden, connect, decode_png, golden_name, spawn_binary, start, t, write_small_style,
};

#[test]
fn shutdown_answers_everything_queued_and_finishes_what_runs() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let server = start(dir.path(), &style, |c| {
        c.render.threads = 1;
        c.render.metatile = 2;
    });
    let mut client = connect(&server, 0);
    // 300 metatiles: far more than renders before the shutdown.
    let tiles: Vec<_> = (0..300)
        .map(|i| t(12, (i % 30) * 8, (i / 30) * 8 + 1200))
        .collect();
    let bulk = RequestOptions {
        priority: Priority::Bulk,
        ..RequestOptions::default()
    };
    let id = client.request_tiles(tiles, &bulk).unwrap();
    // Wait for the first tile, then shut down while the rest is queued.
    let first = client.next_event().unwrap().unwrap();
    assert!(matches!(first, Event::Done(_)), "{first:?}");
    std::thread::spawn(move || server.shutdown());
    let (mut done, mut cancelled) = (1, 0);
    loop {
        match client
            .next_event()
            .unwrap()
            .expect("closed before BatchDone")
        {
            Event::Done(_) => done += 1,
            Event::Cancelled { .. } => cancelled += 1,
            Event::BatchDone(b) => {
                assert_eq!(b.request_id, id);
                assert_eq!((b.done, b.cancelled), (done, cancelled));
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(done + cancelled, 300);
    assert!(cancelled > 0, "the queue was cancelled, not rendered");
}

#[test]
fn kill_9_never_leaves_a_partial_png() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let tiles_dir = dir.path().join("tiles");
    let (mut child, endpoint) = spawn_binary([
        "--style",
        style.to_str().unwrap(),
        "--tile-dir",
        tiles_dir.to_str().unwrap(),
        "--listen",
        "tcp:127.0.0.1:0",
        "--threads",
        "2",
        "--metatile",
        "2",
    ]);
    let mut client = TileClient::connect(&endpoint, None, "kill test").unwrap();
    let tiles: Vec<_> = (0..200)
        .map(|i| t(12, (i % 20) * 8, (i / 20) * 8 + 1200))
        .collect();
    client
        .request_tiles(tiles, &RequestOptions::default())
        .unwrap();
    let mut seen = 0;
    while seen < 20 {
        if let Event::Done(_) = client.next_event().unwrap().unwrap() {
            seen += 1;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let mut checked = 0;
    let mut stack = vec![tiles_dir];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "png") {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                assert!(
                    !name.starts_with('.'),
                    "a temporary file looks like a tile: {}",
                    path.display()
                );
                let bytes = std::fs::read(&path).unwrap();
                decode_png(&bytes);
                // Every tile asked for (and its metatile) lies at 180°W to
                // 166°W, 56°N to 60°N, far from the style's only feature
                // (the square over Finland): all are the same sea-blue tile,
                // named after the first.
                assert_golden(&golden_name("small_sea", t(12, 0, 1200)), &bytes);
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "only {checked} tiles were written");
}
