use std::os::unix::fs::PermissionsExt;

use ipc_proto::{Delivery, FailureKind, Priority, RejectReason, Secret, TilePayload, TileSet};
use tile_client::{ClientError, Event, RequestOptions, TileClient};
use tile_math::LngLatBbox;

use crate::support::{
    assert_golden, collect, connect, golden_name, render, start, t, write_small_style,
};

fn done_tiles(events: &[Event]) -> Vec<&ipc_proto::TileDone> {
    events
        .iter()
        .filter_map(|e| {
            if let Event::Done(d) = e {
                Some(d)
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn renders_over_tcp_then_serves_from_the_store_over_unix() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let server = start(dir.path(), &style, |_| {});
    let socket = dir.path().join("tessera.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "unix socket mode");

    let tiles = vec![t(5, 17, 9), t(5, 18, 9), t(5, 17, 10)];
    let mut tcp = connect(&server, 0);
    let events = render(&mut tcp, tiles.clone(), &RequestOptions::default());
    let done = done_tiles(&events);
    assert_eq!(done.len(), 3, "{events:?}");
    for d in &done {
        assert!(!d.cached);
        let TilePayload::Path(path) = &d.payload else {
            panic!("expected a path")
        };
        assert!(
            path.ends_with(&format!(
                "test/{}/{}/{}.png",
                d.tile.z(),
                d.tile.x(),
                d.tile.y()
            )),
            "{path}"
        );
        assert_golden(&golden_name("small", d.tile), &std::fs::read(path).unwrap());
    }
    let Some(Event::BatchDone(batch)) = events.last() else {
        panic!("no BatchDone: {events:?}")
    };
    assert_eq!((batch.done, batch.failed, batch.cancelled), (3, 0, 0));

    // The same tiles again, over the Unix socket: straight from the store.
    let mut unix = connect(&server, 1);
    let events = render(&mut unix, tiles, &RequestOptions::default());
    assert_eq!(done_tiles(&events).len(), 3, "{events:?}");
    for d in done_tiles(&events) {
        assert!(d.cached, "{events:?}");
        let TilePayload::Path(path) = &d.payload else {
            panic!("expected a path")
        };
        assert_golden(&golden_name("small", d.tile), &std::fs::read(path).unwrap());
    }
    // A forced render renders again.
    let forced = RequestOptions {
        force: true,
        ..RequestOptions::default()
    };
    let events = render(&mut unix, vec![t(5, 17, 9)], &forced);
    let d = done_tiles(&events)[0];
    assert!(!d.cached);
    let TilePayload::Path(path) = &d.payload else {
        panic!("expected a path")
    };
    // Rendered again, to the same pixels.
    assert_golden(
        &golden_name("small", t(5, 17, 9)),
        &std::fs::read(path).unwrap(),
    );
    server.shutdown();
    assert!(!socket.exists(), "the socket file is removed at shutdown");
}

#[test]
fn inline_png_and_bbox_requests() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let server = start(dir.path(), &style, |_| {});
    let mut client = connect(&server, 0);
    let inline = RequestOptions {
        delivery: Delivery::InlinePng,
        ..RequestOptions::default()
    };
    let events = render(&mut client, vec![t(3, 4, 2)], &inline);
    let TilePayload::Png(bytes) = &done_tiles(&events)[0].payload else {
        panic!("expected bytes")
    };
    assert_golden(&golden_name("small", t(3, 4, 2)), bytes);

    let bbox = LngLatBbox::new(20.0, 55.0, 30.0, 65.0);
    let id = client
        .request_bbox(bbox, 4..=6, &RequestOptions::default())
        .unwrap();
    let events = collect(&mut client, id);
    let expected = tile_math::tiles_covering(bbox, 4..=6).unwrap().total();
    assert_eq!(done_tiles(&events).len() as u64, expected);
    server.shutdown();
}

#[test]
fn bad_requests_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let server = start(dir.path(), &style, |c| c.server.max_tiles_per_request = 10);
    let mut client = connect(&server, 0);
    let unknown = RequestOptions {
        map: "nope".into(),
        ..RequestOptions::default()
    };
    let events = render(&mut client, vec![t(1, 0, 0)], &unknown);
    let [Event::Rejected(r)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(r.reason, RejectReason::UnknownMap);
    assert!(
        r.message.contains("test"),
        "names the maps there are: {}",
        r.message
    );

    let id = client
        .request(
            TileSet::Bbox {
                bbox: LngLatBbox::new(-180.0, -85.0, 180.0, 85.0),
                min_zoom: 0,
                max_zoom: 3,
            },
            &RequestOptions::default(),
        )
        .unwrap();
    let events = collect(&mut client, id);
    let [Event::Rejected(r)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(r.reason, RejectReason::TooManyTiles);
    // The connection is still good.
    client.ping(7).unwrap();
    server.shutdown();
}

#[test]
fn a_full_queue_answers_busy_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let server = start(dir.path(), &style, |c| {
        c.server.max_queued_tiles = 4;
        c.render.threads = 1;
    });
    let mut client = connect(&server, 0);
    // 40 tiles in 40 different metatiles.
    let tiles: Vec<_> = (0..40).map(|i| t(10, i * 8, 300)).collect();
    let bulk = RequestOptions {
        priority: Priority::Bulk,
        ..RequestOptions::default()
    };
    let events = render(&mut client, tiles, &bulk);
    let busy = events
        .iter()
        .filter(|e| matches!(e, Event::Failed(f) if f.kind == FailureKind::Busy))
        .count();
    let done = done_tiles(&events).len();
    assert!(busy > 0, "some tiles were refused: {events:?}");
    assert_eq!(busy + done, 40, "every tile answered once");
    let Some(Event::BatchDone(b)) = events.last() else {
        panic!()
    };
    assert_eq!((b.done as usize, b.failed as usize), (done, busy));
    server.shutdown();
}

#[test]
fn stats_count_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let server = start(dir.path(), &style, |_| {});
    let mut client = connect(&server, 0);
    render(&mut client, vec![t(2, 1, 1)], &RequestOptions::default());
    render(&mut client, vec![t(2, 1, 1)], &RequestOptions::default());
    assert_eq!(client.list_maps().unwrap(), vec!["test".to_owned()]);
    let stats: std::collections::HashMap<_, _> = client.stats().unwrap().into_iter().collect();
    assert!(stats["tiles_rendered"] >= 16, "{stats:?}");
    assert_eq!(stats["tiles_from_store"], 1);
    assert_eq!(stats["queued_viewport"], 0);
    assert!(stats.contains_key("render_ms_p99"));
    server.shutdown();
}

#[test]
fn a_secret_is_required_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "correct horse battery staple\n").unwrap();
    let server = start(dir.path(), &style, |c| {
        c.server.secret_file = Some(secret_file.clone())
    });
    let endpoint = server.endpoints()[0].clone();
    let err = TileClient::connect(&endpoint, None, "no secret").unwrap_err();
    assert!(matches!(err, ClientError::Protocol(_)), "{err}");
    let wrong = Secret::new(b"wrong".to_vec()).unwrap();
    assert!(TileClient::connect(&endpoint, Some(&wrong), "wrong secret").is_err());
    let right = Secret::from_file(&secret_file).unwrap();
    let mut client = TileClient::connect(&endpoint, Some(&right), "right secret").unwrap();
    client.ping(1).unwrap();
    server.shutdown();
}

#[test]
fn garbage_on_one_connection_does_not_disturb_the_others() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let server = start(dir.path(), &style, |_| {});
    let ipc_proto::Endpoint::Tcp { host, port } = server.endpoints()[0].clone() else {
        panic!()
    };
    let mut raw = std::net::TcpStream::connect((host.as_str(), port)).unwrap();
    raw.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    // A length of 4 GiB: refused before anything is allocated.
    raw.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 1]).unwrap();
    let mut rest = Vec::new();
    let _ = raw.read_to_end(&mut rest);
    // The server closed that connection; a well-behaved client still works.
    let mut client = connect(&server, 0);
    let events = render(&mut client, vec![t(1, 1, 0)], &RequestOptions::default());
    assert_eq!(done_tiles(&events).len(), 1);
    server.shutdown();
}

#[test]
fn connections_beyond_the_limit_are_told_why() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_small_style(dir.path());
    let server = start(dir.path(), &style, |c| c.server.max_connections = 1);
    let mut first = connect(&server, 0);
    first.ping(1).unwrap();
    let err = TileClient::connect(&server.endpoints()[0], None, "second").unwrap_err();
    assert!(err.to_string().contains("too many connections"), "{err}");
    // The first client is unaffected; once it leaves, there is room again.
    first.ping(2).unwrap();
    first.close().unwrap();
    let mut third = None;
    for _ in 0..100 {
        // The session ends asynchronously after the close.
        match TileClient::connect(&server.endpoints()[0], None, "third") {
            Ok(client) => {
                third = Some(client);
                break;
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    third
        .expect("room again after the first client left")
        .ping(3)
        .unwrap();
    server.shutdown();
}

#[test]
fn a_failing_render_is_answered_and_the_worker_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let small = write_small_style(dir.path());
    // A raster map whose data disappears after the server has started: a
    // tiny ESRI ASCII grid (GDAL reads it as it is).
    let grid = dir.path().join("grid.asc");
    std::fs::write(
        &grid,
        "ncols 2\nnrows 2\nxllcorner 0\nyllcorner 0\ncellsize 10\nNODATA_value -1\n10 20\n30 40\n",
    )
    .unwrap();
    let raster_style = dir.path().join("raster.xml");
    std::fs::write(
        &raster_style,
        r#"<Map srs="epsg:3857"><Style name="r"><Rule><RasterSymbolizer/></Rule></Style>
<Layer name="grid" srs="epsg:4326"><StyleName>r</StyleName><Datasource>
<Parameter name="type">gdal</Parameter><Parameter name="file">grid.asc</Parameter></Datasource></Layer></Map>"#,
    )
    .unwrap();
    let server = start(dir.path(), &small, |c| {
        c.maps.push(render_service::config::MapSection::new(
            "raster",
            raster_style.clone(),
        ));
    });
    std::fs::remove_file(&grid).unwrap();
    let mut client = connect(&server, 0);
    let raster = RequestOptions {
        map: "raster".into(),
        ..RequestOptions::default()
    };
    let events = render(&mut client, vec![t(4, 8, 7)], &raster);
    let failed: Vec<_> = events
        .iter()
        .filter_map(|e| {
            if let Event::Failed(f) = e {
                Some(f)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(failed.len(), 1, "{events:?}");
    assert!(
        failed[0].message.contains("grid.asc"),
        "{}",
        failed[0].message
    );
    let Some(Event::BatchDone(b)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!((b.done, b.failed), (0, 1));
    // The workers carry on with the other map.
    let events = render(&mut client, vec![t(4, 8, 7)], &RequestOptions::default());
    assert_eq!(done_tiles(&events).len(), 1, "{events:?}");
    server.shutdown();
}
