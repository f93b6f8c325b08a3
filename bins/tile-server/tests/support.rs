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
