//! The HTTP front against a real service, over real sockets, with a plain
//! HTTP/1.1 client written here (so what is on the wire is what is
//! tested): tiles from the store with ETag/304, on demand, merged and
//! cancelled; TileJSON, metrics, viewports; bad paths, bad requests,
//! oversized heads and slow clients.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use http_front::HttpServer;
use render_service::{Server, ServiceConfig};

/// A response as read off the socket.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// Sends `request` (a whole HTTP/1.1 request) and reads the answer until
/// the server closes (the request says `Connection: close`).
fn exchange(address: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    parse(&raw)
}

fn parse(raw: &[u8]) -> Reply {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

fn get(address: SocketAddr, path: &str, extra: &[(&str, &str)]) -> Reply {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in extra {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    exchange(address, request.as_bytes())
}

/// A style with a background and a polygon over Helsinki.
fn write_style(dir: &Path, background: &str) -> PathBuf {
    std::fs::write(
        dir.join("square.geojson"),
        r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},
           "geometry":{"type":"Polygon","coordinates":[[[20,55],[30,55],[30,65],[20,65],[20,55]]]}}]}"#,
    )
    .unwrap();
    let path = dir.join("small.xml");
    std::fs::write(
        &path,
        format!(
            r##"<Map srs="epsg:3857" background-color="{background}"><Parameters><Parameter name="attribution">Test data</Parameter></Parameters><Style name="s"><Rule><PolygonSymbolizer fill="#f2efe9"/><LineSymbolizer stroke="#000000" stroke-width="2"/></Rule></Style>
<Layer name="l" srs="epsg:4326"><StyleName>s</StyleName><Datasource><Parameter name="type">ogr</Parameter>
<Parameter name="file">square.geojson</Parameter><Parameter name="layer_by_index">0</Parameter></Datasource></Layer></Map>"##
        ),
    )
    .unwrap();
    path
}

/// A service and its HTTP front on a free loopback port.
struct Running {
    server: Option<Server>,
    http: Option<HttpServer>,
    address: SocketAddr,
}

/// Adds to the style a layer of 40,000 small squares over the world:
/// metatiles that take a while to draw (GDAL reads them at load in C).
fn make_slow(style: &Path) {
    let dir = style.parent().unwrap();
    let squares: Vec<String> = (0..40_000)
        .map(|i| {
            let (w, s) = (-170.0 + f64::from(i % 200) * 1.7, -80.0 + f64::from(i / 200) * 0.8);
            format!(
                r#"{{"type":"Feature","properties":{{}},"geometry":{{"type":"Polygon","coordinates":[[[{w},{s}],[{},{s}],[{},{}],[{w},{}],[{w},{s}]]]}}}}"#,
                w + 0.1, w + 0.1, s + 0.1, s + 0.1
            )
        })
        .collect();
    std::fs::write(
        dir.join("many.geojson"),
        format!(
            r#"{{"type":"FeatureCollection","features":[{}]}}"#,
            squares.join(",")
        ),
    )
    .unwrap();
    let text = std::fs::read_to_string(style).unwrap().replace(
        "</Map>",
        r##"<Style name="many"><Rule><PolygonSymbolizer fill="#203040"/><LineSymbolizer stroke="#102030" stroke-width="0.5" stroke-dasharray="1,1"/></Rule></Style>
<Layer name="many" srs="epsg:4326"><StyleName>many</StyleName><Datasource><Parameter name="type">ogr</Parameter>
<Parameter name="file">many.geojson</Parameter><Parameter name="layer_by_index">0</Parameter></Datasource></Layer></Map>"##,
    );
    std::fs::write(style, text).unwrap();
}

impl Running {
    fn start(dir: &Path, extra_toml: &str) -> Running {
        Self::start_with(dir, extra_toml, false)
    }

    fn start_with(dir: &Path, extra_toml: &str, slow: bool) -> Running {
        let style = write_style(dir, "#aad3df");
        if slow {
            make_slow(&style);
        }
        let toml = format!(
            "[server]\nlisten = [\"unix:{}\"]\n[render]\nthreads = 2\nmetatile = 2\n[store]\ndir = \"{}\"\n\
             [http]\nlisten = [\"127.0.0.1:0\"]\n{extra_toml}\n[[map]]\nname = \"small\"\nstyle = \"{}\"\nmax_zoom = 18\n",
            dir.join("s.sock").display(),
            dir.join("tiles").display(),
            style.display()
        );
        let config = ServiceConfig::from_toml(&toml, "test")
            .unwrap()
            .validate("test")
            .unwrap();
        let server = Server::start(&config).unwrap();
        let http = HttpServer::start(&config, server.handle().clone()).unwrap();
        let address = http.addresses()[0];
        Running {
            server: Some(server),
            http: Some(http),
            address,
        }
    }

    fn stat(&self, name: &str) -> u64 {
        let server = self.server.as_ref().unwrap();
        let stats = server.handle().stats().unwrap();
        stats.entries.iter().find(|(k, _)| k == name).unwrap().1
    }

    fn stop(mut self) {
        let http = self.http.take().unwrap();
        http.stop_accepting();
        self.server.take().unwrap().shutdown();
        http.shutdown();
    }
}

const TILE: &str = "/small/5/18/9.png";

#[test]
fn a_stored_tile_has_validators_and_a_client_that_has_it_gets_304() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(dir.path(), "cache_control = \"public, max-age=60\"");
    let first = get(running.address, TILE, &[]);
    assert_eq!(first.status, 200);
    assert_eq!(first.header("content-type"), Some("image/png"));
    assert!(first.body.starts_with(b"\x89PNG"));
    let etag = first.header("etag").unwrap().to_owned();
    let modified = first.header("last-modified").unwrap().to_owned();
    assert_eq!(first.header("cache-control"), Some("public, max-age=60"));
    assert_eq!(first.header("access-control-allow-origin"), Some("*"));

    let again = get(running.address, TILE, &[]);
    assert_eq!(
        (again.status, again.body.clone()),
        (200, first.body.clone())
    );
    assert_eq!(
        again.header("etag"),
        Some(etag.as_str()),
        "the stored tile is the same version"
    );
    let by_tag = get(running.address, TILE, &[("If-None-Match", &etag)]);
    assert_eq!(by_tag.status, 304);
    assert!(by_tag.body.is_empty());
    assert_eq!(by_tag.header("etag"), Some(etag.as_str()));
    let by_date = get(running.address, TILE, &[("If-Modified-Since", &modified)]);
    assert_eq!(by_date.status, 304);
    let other_tag = get(running.address, TILE, &[("If-None-Match", "\"0-0\"")]);
    assert_eq!(other_tag.status, 200);
    // If-None-Match wins over a date that would match.
    let both = get(
        running.address,
        TILE,
        &[
            ("If-None-Match", "\"0-0\""),
            ("If-Modified-Since", &modified),
        ],
    );
    assert_eq!(both.status, 200);
    assert_eq!(
        running.stat("tiles_rendered"),
        4,
        "one metatile of 2x2, rendered once"
    );
    running.stop();
}

#[test]
fn a_2x_tile_is_twice_the_size_drawn_at_twice_the_scale_and_stored_apart() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(dir.path(), "");
    let one = get(running.address, TILE, &[]);
    let two = get(running.address, "/small/5/18/9@2x.png", &[]);
    assert_eq!((one.status, two.status), (200, 200));
    let size = |png: &[u8]| {
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let reader = decoder.read_info().unwrap();
        (reader.info().width, reader.info().height)
    };
    assert_eq!(size(&one.body), (256, 256));
    assert_eq!(size(&two.body), (512, 512));
    // The square's east edge (a 2 px black line) crosses every row: twice
    // the ink at twice the scale (a bigger tile alone would keep the line
    // 2 px wide). Ink: how much darker than the darkest background (the
    // sea's red, 0xaa) the row is, summed.
    let ink_in_middle_row = |png: &[u8]| {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        let channels = info.color_type.samples();
        let row = info.height as usize / 2 * info.line_size;
        buf[row..row + info.line_size]
            .chunks(channels)
            .map(|p| f64::from(0xaau8.saturating_sub(p[0])))
            .sum::<f64>()
    };
    let (thin, thick) = (ink_in_middle_row(&one.body), ink_in_middle_row(&two.body));
    assert!(thin > 170.0, "the line is there: {thin}");
    let ratio = thick / thin;
    assert!(
        (1.7..2.3).contains(&ratio),
        "{thin} vs {thick}: ratio {ratio}"
    );
    assert!(dir.path().join("tiles/small/5/18/9.png").is_file());
    assert!(dir.path().join("tiles/small/@2x/5/18/9.png").is_file());
    // Its own metatile, its own counters.
    let metrics = String::from_utf8(get(running.address, "/metrics", &[]).body).unwrap();
    assert!(
        metrics.contains("tessera_metatiles_rendered_by_zoom{map=\"small@2x\",zoom=\"5\"} 1\n"),
        "{metrics}"
    );
    // And from the store the second time.
    let again = get(running.address, "/small/5/18/9@2x.png", &[]);
    assert_eq!(again.body, two.body);
    assert_eq!(running.stat("metatiles_rendered"), 2);
    running.stop();
}

#[test]
fn bad_paths_unknown_maps_and_zooms_and_methods() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(dir.path(), "");
    let status = |path: &str| get(running.address, path, &[]).status;
    assert_eq!(status("/nomap/1/0/0.png"), 404);
    assert_eq!(status("/small/19/0/0.png"), 404, "beyond max_zoom 18");
    assert_eq!(status("/small/1/2/0.png"), 400, "x beyond zoom 1");
    assert_eq!(status("/small/1/0/0.jpg"), 400);
    assert_eq!(status("/small/a/0/0.png"), 400);
    assert_eq!(status("/small/1/0/0.png?session=a/b"), 400);
    assert_eq!(status("/../../etc/passwd"), 404);
    assert_eq!(status("/viewer/../Cargo.toml"), 404);
    assert_eq!(status("/health"), 200);
    let delete = exchange(
        running.address,
        b"DELETE /small/1/0/0.png HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(delete.status, 405);
    assert!(
        !dir.path().join("tiles/small/1").exists(),
        "nothing was rendered"
    );
    running.stop();
}

#[test]
fn malformed_oversized_and_slow_requests_are_refused_without_hurting_others() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(
        dir.path(),
        "header_timeout_ms = 500\nmax_header_bytes = 2048",
    );
    let garbage = exchange(running.address, b"\x16\x03\x01 not http at all\r\n\r\n");
    assert_eq!(garbage.status, 400);
    let big = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(20_000)
    );
    let mut stream = TcpStream::connect(running.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = stream.write_all(big.as_bytes());
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let status = String::from_utf8_lossy(&raw);
    assert!(status.starts_with("HTTP/1.1 431"), "{status}");

    // Slowloris: a head that never ends is closed after the timeout,
    // while another client is served meanwhile.
    let mut slow = TcpStream::connect(running.address).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(get(running.address, "/health", &[]).status, 200);
    let started = Instant::now();
    let mut raw = Vec::new();
    let _ = slow.read_to_end(&mut raw);
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the slow client was closed by the header timeout, not by ours"
    );
    assert!(String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 408") || raw.is_empty());
    running.stop();
}

#[test]
fn a_thousand_requests_for_one_missing_tile_make_one_render() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(dir.path(), "");
    let address = running.address;
    let clients: Vec<_> = (0..1000)
        .map(|_| std::thread::spawn(move || get(address, "/small/8/145/74.png", &[])))
        .collect();
    let replies: Vec<Reply> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert!(replies.iter().all(|r| r.status == 200));
    let first = &replies[0].body;
    assert!(replies.iter().all(|r| &r.body == first));
    assert_eq!(running.stat("metatiles_rendered"), 1);
    running.stop();
}

#[test]
fn a_client_that_disconnects_mid_render_gives_up_its_interest() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start_with(dir.path(), "", true);
    let address = running.address;
    let wait_for = |what: &str, ok: &dyn Fn(&Running) -> bool| {
        let until = Instant::now() + Duration::from_secs(60);
        while !ok(&running) {
            assert!(Instant::now() < until, "never: {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    // Both workers busy with slow metatiles...
    let busy: Vec<_> = [(0, 0), (2, 0)]
        .into_iter()
        .map(|(x, y)| {
            std::thread::spawn(move || get(address, &format!("/small/3/{x}/{y}.png"), &[]))
        })
        .collect();
    wait_for("both workers busy", &|r| r.stat("running_jobs") == 2);
    // ...so this request waits in the queue when its client goes away.
    let mut gone = TcpStream::connect(address).unwrap();
    gone.write_all(b"GET /small/3/4/4.png HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    wait_for("the request queued", &|r| r.stat("queued_jobs") == 1);
    drop(gone);
    wait_for("its interest given up", &|r| r.stat("queued_jobs") == 0);
    for b in busy {
        assert_eq!(b.join().unwrap().status, 200);
    }
    let metrics = String::from_utf8(get(address, "/metrics", &[]).body).unwrap();
    assert!(
        metrics.contains("tessera_http_requests_given_up_total 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("tessera_tiles_cancelled 1\n"), "{metrics}");
    assert_eq!(
        running.stat("metatiles_rendered"),
        2,
        "not rendered for nobody"
    );
    assert!(!dir.path().join("tiles/small/3/4/4.png").exists());
    running.stop();
}

#[test]
fn tilejson_metrics_and_viewports() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(dir.path(), "");
    let json = get(running.address, "/small.json", &[]);
    assert_eq!(json.status, 200);
    let value: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
    assert_eq!(value["tilejson"], "3.0.0");
    assert_eq!(value["maxzoom"], 18);
    assert_eq!(value["tiles"][0], "http://localhost/small/{z}/{x}/{y}.png");
    assert_eq!(
        value["attribution"], "Test data",
        "from the style's <Parameters>"
    );

    assert_eq!(get(running.address, TILE, &[]).status, 200);
    let metrics = String::from_utf8(get(running.address, "/metrics", &[]).body).unwrap();
    assert!(metrics.contains("tessera_tiles_rendered 4\n"), "{metrics}");
    assert!(
        metrics.contains("tessera_http_responses_total{status=\"200\"} 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE tessera_queued_tiles gauge\n"),
        "{metrics}"
    );

    let post = |body: &str| {
        exchange(
            running.address,
            format!(
                "POST /small/viewport?session=abc HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .status
    };
    assert_eq!(post(r#"{"zoom":12,"bbox":[24.9,60.1,25.0,60.2]}"#), 204);
    assert_eq!(post(r#"{"zoom":40,"bbox":[24.9,60.1,25.0,60.2]}"#), 400);
    assert_eq!(post(r#"{"zoom":12,"bbox":[24.9]}"#), 400);
    assert_eq!(post("not json"), 400);
    let page = get(running.address, "/", &[]);
    assert!(String::from_utf8_lossy(&page.body).contains(r#"const MAPS = ["small"];"#));
    assert_eq!(get(running.address, "/viewer/leaflet.js", &[]).status, 200);
    running.stop();
}

#[test]
fn a_public_address_needs_the_config_to_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let style = write_style(dir.path(), "#aad3df");
    let toml = |public: bool| {
        format!(
            "[http]\nlisten = [\"0.0.0.0:0\"]\npublic = {public}\n[[map]]\nname = \"m\"\nstyle = \"{}\"\n",
            style.display()
        )
    };
    let refused = ServiceConfig::from_toml(&toml(false), "t")
        .unwrap()
        .validate("t")
        .unwrap_err()
        .to_string();
    assert!(refused.contains("http.public = true"), "{refused}");
    assert!(ServiceConfig::from_toml(&toml(true), "t")
        .unwrap()
        .validate("t")
        .is_ok());
}

/// Sets a stored tile's stamp far in the past: stale, as expiry leaves it.
fn make_stale(path: &Path) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(315_532_800))
        .unwrap();
}

#[test]
fn past_the_render_timeout_the_stale_tile_is_served_and_then_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start_with(dir.path(), "render_timeout_ms = 1", true);
    // The first request times out (nothing stored: 503) but its render
    // goes on and stores the tile.
    assert_eq!(get(running.address, TILE, &[]).status, 503);
    let until = Instant::now() + Duration::from_secs(60);
    let first = loop {
        let reply = get(running.address, TILE, &[]);
        if reply.status == 200 {
            break reply;
        }
        assert!(
            Instant::now() < until,
            "the detached render never stored the tile"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    make_stale(&dir.path().join("tiles/small/5/18/9.png"));
    // The render takes longer than 1 ms: the stale tile now, not cached.
    let stale = get(running.address, TILE, &[]);
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, first.body);
    assert_eq!(stale.header("cache-control"), Some("no-cache"));
    assert_eq!(
        stale.header("last-modified"),
        Some("Tue, 01 Jan 1980 00:00:00 GMT")
    );
    // The render went on: soon the tile is fresh again.
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let again = get(running.address, TILE, &[]);
        if again.header("cache-control") == Some("public, max-age=3600") {
            assert_ne!(again.header("last-modified"), stale.header("last-modified"));
            break;
        }
        assert!(
            Instant::now() < until,
            "the render never replaced the stale tile"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let metrics = String::from_utf8(get(running.address, "/metrics", &[]).body).unwrap();
    assert!(
        metrics.contains("tessera_http_tiles_stale_served_total "),
        "{metrics}"
    );
    assert!(
        !metrics.contains("tessera_http_tiles_stale_served_total 0\n"),
        "{metrics}"
    );
    running.stop();
}

#[test]
fn past_the_render_timeout_without_a_stored_tile_is_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start_with(dir.path(), "render_timeout_ms = 1", true);
    let reply = get(running.address, "/small/4/9/4.png", &[]);
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("retry-after"), Some("1"));
    running.stop();
}

#[test]
fn a_request_waiting_at_shutdown_gets_its_answer() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start_with(dir.path(), "", true);
    let address = running.address;
    // Two slow renders occupy the workers; the third request waits.
    let waiting: Vec<_> = ["/small/3/0/0.png", "/small/3/2/0.png", "/small/3/4/4.png"]
        .into_iter()
        .map(|path| std::thread::spawn(move || get(address, path, &[])))
        .collect();
    let until = Instant::now() + Duration::from_secs(60);
    while running.stat("queued_jobs") < 1 {
        assert!(Instant::now() < until, "the third request never queued");
        std::thread::sleep(Duration::from_millis(5));
    }
    running.stop();
    let mut statuses: Vec<u16> = waiting
        .into_iter()
        .map(|w| w.join().unwrap().status)
        .collect();
    // Running renders finish; the queued one (whichever arrived last) is
    // cancelled by the shutdown.
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 503]);
}
