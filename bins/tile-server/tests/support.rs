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
