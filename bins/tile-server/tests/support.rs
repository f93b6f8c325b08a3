use std::path::{Path, PathBuf};
use std::time::Duration;

use render_service::{Server, ServiceConfig, ValidConfig};
use tile_client::{Event, RequestOptions, TileClient};
use tile_math::TileCoord;

/// A style with a background and one polygon (a square over Helsinki),
/// its data written by GDAL's command-line-free API... here as GeoJSON text,
/// which GDAL reads: no binary fixture needed.
pub fn write_small_style(dir: &Path) -> PathBuf {
    let geojson = r#"{"type":"FeatureCollection","features":[
      {"type":"Feature","properties":{"name":"square"},"geometry":{"type":"Polygon",
       "coordinates":[[[20,55],[30,55],[30,65],[20,65],[20,55]]]}}]}"#;
    std::fs::write(dir.join("square.geojson"), geojson).unwrap();
    let style = r##"<Map srs="epsg:3857" background-color="#aad3df" buffer-size="16">
  <Style name="s"><Rule>
    <PolygonSymbolizer fill="#f2efe9"/>
    <LineSymbolizer stroke="#888888" stroke-width="1"/>
  </Rule></Style>
  <Layer name="square" srs="epsg:4326">
    <StyleName>s</StyleName>
    <Datasource>
      <Parameter name="type">ogr</Parameter>
      <Parameter name="file">square.geojson</Parameter>
      <Parameter name="layer_by_index">0</Parameter>
    </Datasource>
  </Layer>
</Map>"##;
    let path = dir.join("small.xml");
    std::fs::write(&path, style).unwrap();
    path
}

/// The small style with a layer of `squares` small squares over the whole
/// world: slow to draw, quick to load (GDAL reads it in C; drawing them is
/// ours).
pub fn write_slow_style(dir: &Path, squares: usize) -> std::path::PathBuf {
    let mut features = Vec::with_capacity(squares);
    let side = (squares as f64).sqrt().ceil() as usize;
    for i in 0..squares {
        let (col, row) = ((i % side) as f64, (i / side) as f64);
        let w = -170.0 + 340.0 * col / side as f64;
        let s = -80.0 + 160.0 * row / side as f64;
        features.push(format!(
            r#"{{"type":"Feature","properties":{{}},"geometry":{{"type":"Polygon","coordinates":[[[{w},{s}],[{},{s}],[{},{}],[{w},{}],[{w},{s}]]]}}}}"#,
            w + 0.1,
            w + 0.1,
            s + 0.1,
            s + 0.1
        ));
    }
    std::fs::write(
        dir.join("many.geojson"),
        format!(
            r#"{{"type":"FeatureCollection","features":[{}]}}"#,
            features.join(",")
        ),
    )
    .unwrap();
    let style = write_small_style(dir);
    let text = std::fs::read_to_string(&style).unwrap().replace(
        "</Map>",
        r##"  <Style name="many"><Rule>
    <PolygonSymbolizer fill="#203040"/>
    <LineSymbolizer stroke="#102030" stroke-width="0.5" stroke-dasharray="1,1"/>
  </Rule></Style>
  <Layer name="many" srs="epsg:4326">
    <StyleName>many</StyleName>
    <Datasource>
      <Parameter name="type">ogr</Parameter>
      <Parameter name="file">many.geojson</Parameter>
      <Parameter name="layer_by_index">0</Parameter>
    </Datasource>
  </Layer>
</Map>"##,
    );
    std::fs::write(&style, text).unwrap();
    style
}

/// A configuration serving `style` on TCP port 0 and a Unix socket, with
/// tiles in `dir`.
pub fn config(dir: &Path, style: &Path, edit: impl FnOnce(&mut ServiceConfig)) -> ValidConfig {
    let mut config = ServiceConfig::from_toml(
        &format!(
            "[server]\nlisten = [\"tcp:127.0.0.1:0\", \"unix:{}\"]\n[render]\nthreads = 2\n[store]\ndir = \"{}\"\n[[map]]\nname = \"test\"\nstyle = \"{}\"\n",
            dir.join("tessera.sock").display(),
            dir.join("tiles").display(),
            style.display()
        ),
        "test",
    )
    .unwrap();
    edit(&mut config);
    config.validate("test").unwrap()
}

pub fn start(dir: &Path, style: &Path, edit: impl FnOnce(&mut ServiceConfig)) -> Server {
    Server::start(&config(dir, style, edit)).unwrap()
}

pub fn connect(server: &Server, which: usize) -> TileClient {
    let client = TileClient::connect(&server.endpoints()[which], None, "test").unwrap();
    // A hung test fails instead of waiting forever.
    client
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    client
}

pub fn t(z: u8, x: u32, y: u32) -> TileCoord {
    TileCoord::new(z, x, y).unwrap()
}

/// Every event up to and including the end of request `id`.
pub fn collect(client: &mut TileClient, id: u64) -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        let event = client
            .next_event()
            .unwrap()
            .expect("server closed the connection");
        let last = event.ends_request() && event.request_id() == id;
        events.push(event);
        if last {
            return events;
        }
    }
}

pub fn render(
    client: &mut TileClient,
    tiles: Vec<TileCoord>,
    options: &RequestOptions,
) -> Vec<Event> {
    let id = client.request_tiles(tiles, options).unwrap();
    collect(client, id)
}

/// Decodes a PNG file fully, or panics with the reason.
pub fn decode_png(bytes: &[u8]) -> (u32, u32) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    (info.width, info.height)
}

/// Straight RGBA8 pixels of a decoded PNG.
pub struct Rgba {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

/// Decodes a PNG fully to straight RGBA8, whatever its colour type
/// (palette and png8 output, grey, RGB, with or without alpha), or panics.
pub fn decode_rgba(bytes: &[u8]) -> Rgba {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "expanded to 8 bits");
    let pixels = match info.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::Rgb => buf
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        png::ColorType::GrayscaleAlpha => buf
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0], p[1]])
            .collect(),
        png::ColorType::Grayscale => buf.iter().flat_map(|&g| [g, g, g, 255]).collect(),
        png::ColorType::Indexed => panic!("EXPAND left a palette image"),
    };
    Rgba {
        width: info.width,
        height: info.height,
        pixels,
    }
}

fn encode_rgba(image: &Rgba) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, image.width, image.height);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::High);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&image.pixels).unwrap();
    }
    out
}

/// The name of a tile's golden image: `<prefix>_<z>_<x>_<y>`.
pub fn golden_name(prefix: &str, tile: TileCoord) -> String {
    format!("{prefix}_{}_{}_{}", tile.z(), tile.x(), tile.y())
}

/// Compares the pixels of `png_bytes` (decoded to RGBA8) exactly with those
/// of `tests/goldens/<name>.png`, the convention of render-core's golden
/// tests:
///
/// - `BLESS=1 cargo test -p tile-server --test tests` (re)writes the golden
///   instead, as RGBA8; look at every image you bless. When `CI` is set
///   nothing is ever written.
/// - A missing golden fails (with the hint to bless it).
/// - On a mismatch the panic names the first differing pixel and how many
///   differ, and the actual image is written to
///   `$TMPDIR/tile-server-golden/<name>.actual.png`.
pub fn assert_golden(name: &str, png_bytes: &[u8]) {
    let actual = decode_rgba(png_bytes);
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/goldens")
        .join(format!("{name}.png"));
    let blessing =
        std::env::var_os("CI").is_none() && std::env::var("BLESS").is_ok_and(|v| v == "1");
    if blessing {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, encode_rgba(&actual)).unwrap();
        return;
    }
    let Ok(bytes) = std::fs::read(&path) else {
        panic!(
            "golden `{name}`: no golden image {}; run `BLESS=1 cargo test -p tile-server \
             --test tests` (not on CI), look at it and commit it",
            path.display()
        );
    };
    let expected = decode_rgba(&bytes);
    let same_size = (expected.width, expected.height) == (actual.width, actual.height);
    if same_size && expected.pixels == actual.pixels {
        return;
    }
    let dir = std::env::temp_dir().join("tile-server-golden");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{name}.actual.png"));
    std::fs::write(&out, encode_rgba(&actual)).unwrap();
    if !same_size {
        panic!(
            "golden `{name}`: size {}x{} but the golden is {}x{}; actual image: {}; golden: {}",
            actual.width,
            actual.height,
            expected.width,
            expected.height,
            out.display(),
            path.display()
        );
    }
    let mut differing = expected
        .pixels
        .chunks_exact(4)
        .zip(actual.pixels.chunks_exact(4))
        .enumerate()
        .filter(|(_, (e, a))| e != a);
    let (first, (e, a)) = differing.next().unwrap();
    let count = 1 + differing.count();
    let (x, y) = (first as u32 % actual.width, first as u32 / actual.width);
    panic!(
        "golden `{name}`: {count} of {} pixels differ; the first at ({x}, {y}) is {a:?}, \
         the golden has {e:?} (RGBA); actual image: {}; golden: {}; if the change is \
         intended, re-bless with BLESS=1",
        actual.width * actual.height,
        out.display(),
        path.display()
    );
}

/// The tile-server binary started with `args`, and the first framed
/// endpoint it says it listens on. Its stdout is read to the end in the
/// background, so it never blocks on a full pipe.
pub fn spawn_binary<I, S>(args: I) -> (std::process::Child, ipc_proto::Endpoint)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tile-server"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let endpoint = loop {
        let line = lines.next().expect("server exited").unwrap();
        if let Some(addr) = line.strip_prefix("tile-server: listening on ") {
            break addr.parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, endpoint)
}

/// The tile-server binary as an operator runs it: started from a
/// [`std::process::Command`], waited for until it says it is ready, its
/// stdout and stderr kept whole for the test to read.
pub struct ServerProcess {
    pub child: std::process::Child,
    /// The first framed endpoint it listens on.
    pub endpoint: ipc_proto::Endpoint,
    /// The legacy endpoint, if it serves one.
    pub legacy: Option<ipc_proto::Endpoint>,
    /// The renderd-protocol endpoints it serves.
    pub renderd: Vec<ipc_proto::Endpoint>,
    /// The first HTTP address (`http://HOST:PORT`), if it serves HTTP.
    pub http: Option<String>,
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// What a process said and how it ended.
pub struct Ended {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// A command for the tile-server binary under test.
pub fn server_command() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_tile-server"))
}

/// Runs a command to its end (one that is expected to exit by itself,
/// such as `--check-config` or a refused configuration).
pub fn run_to_end(command: &mut std::process::Command) -> Ended {
    let out = command.stdin(std::process::Stdio::null()).output().unwrap();
    Ended {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Drop for ServerProcess {
    /// A test that fails before `stop` leaves no server behind (it would
    /// hold its ports and the cargo lock it inherited).
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl ServerProcess {
    /// Starts `command` and waits for `tile-server: ready` on its stdout;
    /// panics with what it said if it exits first.
    pub fn start(command: &mut std::process::Command) -> ServerProcess {
        use std::io::{BufRead, Read};
        use std::sync::{Arc, Mutex};
        let mut child = command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let kept = Arc::clone(&stdout);
        let out_reader = std::thread::spawn(move || {
            let mut line = String::new();
            while out.read_line(&mut line).unwrap_or(0) > 0 {
                kept.lock().unwrap().push_str(&line);
                let _ = lines_tx.send(line.trim_end().to_owned());
                line.clear();
            }
        });
        let mut err = child.stderr.take().unwrap();
        let kept = Arc::clone(&stderr);
        let err_reader = std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut chunk) {
                kept.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        let (mut endpoint, mut legacy, mut renderd, mut http) = (None, None, Vec::new(), None);
        loop {
            let Ok(line) = lines.recv_timeout(Duration::from_secs(120)) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the server exited or hung before it was ready; stdout:\n{}\nstderr:\n{}",
                    stdout.lock().unwrap(),
                    stderr.lock().unwrap()
                );
            };
            if let Some(addr) = line.strip_prefix("tile-server: listening on ") {
                endpoint.get_or_insert(addr.parse().unwrap());
            }
            if let Some(addr) = line.strip_prefix("tile-server: legacy line protocol on ") {
                legacy = Some(addr.parse().unwrap());
            }
            if let Some(addr) = line.strip_prefix("tile-server: renderd protocol on ") {
                renderd.push(addr.parse().unwrap());
            }
            if let Some(rest) = line.strip_prefix("tile-server: http on ") {
                let url = rest.split('/').take(3).collect::<Vec<_>>().join("/");
                http.get_or_insert(url);
            }
            if line == "tile-server: ready" {
                break;
            }
        }
        ServerProcess {
            child,
            // A render node serves no clients: nothing to connect to.
            endpoint: endpoint.unwrap_or_else(|| {
                assert!(
                    stdout.lock().unwrap().contains("tile-server: render node "),
                    "ready without a framed endpoint"
                );
                ipc_proto::Endpoint::Unix(PathBuf::new())
            }),
            legacy,
            renderd,
            http,
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
        }
    }

    /// Sends a signal by name (`HUP`, `TERM`, ...).
    pub fn signal(&self, name: &str) {
        let sent = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{name} failed");
    }

    /// Waits (at most a minute) until the log (stderr) has `count`
    /// lines containing `needle`; returns the log.
    pub fn wait_for_log(&self, needle: &str, count: usize) -> String {
        let until = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let log = self.stderr.lock().unwrap().clone();
            if log.lines().filter(|l| l.contains(needle)).count() >= count {
                return log;
            }
            assert!(
                std::time::Instant::now() < until,
                "no {count} log lines with {needle:?} within a minute; log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGTERM, then waits (at most a minute) for it to exit.
    pub fn stop(mut self) -> Ended {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let until = std::time::Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > until {
                let _ = self.child.kill();
                panic!("the server did not exit within a minute of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        Ended {
            status,
            stdout: self.stdout.lock().unwrap().clone(),
            stderr: self.stderr.lock().unwrap().clone(),
        }
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
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
