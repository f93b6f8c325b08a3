//! Golden images, compared pixel for pixel (tiny-skia's way).
//!
//! Each case renders tiles through the public API (`MapSource` →
//! `Renderer::render_metatile` → PNG), decodes them to straight RGBA, lays
//! them out as they sit in their metatile and compares the result with
//! `tests/images/<case>.png` exactly.
//!
//! - `BLESS=1 cargo test -p render-core --test integration golden` rewrites
//!   the references. Look at every image you bless. When `CI` is set nothing
//!   is ever written to `tests/images/`.
//! - A missing reference fails the test (with the hint to bless it).
//! - On a mismatch the test reports how many pixels differ and the largest
//!   channel difference, and writes the actual image to
//!   `$TMPDIR/render-core-golden/<case>.actual.png`.
//!
//! The data is made by the tests: geometry is written as WKT into a
//! GeoPackage by GDAL in a temp dir, in EPSG:3857 metres (binary doubles, no
//! reprojection through PROJ), so a GDAL or PROJ upgrade cannot shift
//! pixels. The `mapnik_style_*` cases render a copy of the benchmark style
//! over a small extract shipped in `tests/data/mapnik-3857/`.
// Test helpers too: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use gdal::spatial_ref::SpatialRef;
use gdal::vector::{Defn, Feature, FieldDefn, Geometry, LayerOptions, OGRFieldType};
use gdal::DriverManager;
use render_core::{Compression, Map, MapSource, RenderOptions, Renderer, TileFormat};
use tile_math::{LngLat, Metatile, PixelTransform, TileCoord};

// ---------------------------------------------------------------------------
// Images and the comparison

/// Straight (not premultiplied) RGBA pixels.
pub(crate) struct Image {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) rgba: Vec<u8>,
}

impl Image {
    fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        let i = ((y * self.width + x) * 4) as usize;
        [
            self.rgba[i],
            self.rgba[i + 1],
            self.rgba[i + 2],
            self.rgba[i + 3],
        ]
    }
}

fn decode(png_bytes: &[u8]) -> Image {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::ALPHA);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    assert_eq!(
        (info.color_type, info.bit_depth),
        (png::ColorType::Rgba, png::BitDepth::Eight),
        "decoded to RGBA8"
    );
    Image {
        width: info.width,
        height: info.height,
        rgba: buf,
    }
}

fn encode(image: &Image) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, image.width, image.height);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::High);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&image.rgba).unwrap();
    }
    out
}

fn reference_path(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/images")
        .join(format!("{case}.png"))
}

/// `BLESS=1` and not on CI.
fn blessing() -> bool {
    std::env::var_os("CI").is_none() && std::env::var("BLESS").is_ok_and(|v| v == "1")
}

/// Compares `actual` with the reference image of `case`, exactly.
pub(crate) fn check(case: &str, actual: &Image) {
    let path = reference_path(case);
    if blessing() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, encode(actual)).unwrap();
        return;
    }
    let Ok(bytes) = std::fs::read(&path) else {
        panic!(
            "golden `{case}`: no reference image {}; run `BLESS=1 cargo test -p render-core \
             --test integration golden` (not on CI), look at it and commit it",
            path.display()
        );
    };
    let expected = decode(&bytes);
    let same_size = (expected.width, expected.height) == (actual.width, actual.height);
    let (differing, max_diff) = if same_size {
        expected
            .rgba
            .chunks_exact(4)
            .zip(actual.rgba.chunks_exact(4))
            .filter(|(e, a)| e != a)
            .fold((0usize, 0u8), |(n, max), (e, a)| {
                let d = e.iter().zip(a).map(|(x, y)| x.abs_diff(*y)).max();
                (n + 1, max.max(d.unwrap_or(0)))
            })
    } else {
        (usize::MAX, u8::MAX)
    };
    if same_size && differing == 0 {
        return;
    }
    let dir = std::env::temp_dir().join("render-core-golden");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{case}.actual.png"));
    std::fs::write(&out, encode(actual)).unwrap();
    if same_size {
        panic!(
            "golden `{case}`: {differing} of {} pixels differ (max channel difference \
             {max_diff}); actual image: {}; reference: {}; if the change is intended, \
             re-bless with BLESS=1",
            actual.width * actual.height,
            out.display(),
            path.display()
        );
    }
    panic!(
        "golden `{case}`: size {}x{} but the reference is {}x{}; actual image: {}",
        actual.width,
        actual.height,
        expected.width,
        expected.height,
        out.display()
    );
}

// ---------------------------------------------------------------------------
// Rendering

pub(crate) fn options(format: TileFormat) -> RenderOptions {
    RenderOptions {
        format,
        compression: Compression::Fast,
        ..RenderOptions::default()
    }
}

pub(crate) fn source(xml: &str, base: &Path) -> MapSource {
    let loaded = match Map::from_str(xml, base) {
        Ok(l) => l,
        Err(e) => panic!("style did not load: {e}\n{xml}"),
    };
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    MapSource::from_loaded(loaded, None).unwrap()
}

/// Renders a metatile and lays its decoded tiles out as one image.
pub(crate) fn render(source: &MapSource, meta: Metatile, options: RenderOptions) -> Image {
    let size = options.tile_size;
    let mut renderer = Renderer::new(source.clone(), options);
    let tiles = renderer.render_metatile(&meta).unwrap();
    let (width, height) = (meta.columns() * size, meta.rows() * size);
    let mut rgba = vec![0u8; (width * height * 4) as usize];
    assert_eq!(tiles.len() as u32, meta.columns() * meta.rows());
    for t in &tiles {
        let tile = decode(&t.png);
        assert_eq!((tile.width, tile.height), (size, size));
        let (dx, dy) = meta.offset_of(t.tile).unwrap();
        let row = (size * 4) as usize;
        for y in 0..size as usize {
            let dst = ((dy * size) as usize + y) * (width as usize * 4) + (dx * size) as usize * 4;
            rgba[dst..dst + row].copy_from_slice(&tile.rgba[y * row..(y + 1) * row]);
        }
    }
    Image {
        width,
        height,
        rgba,
    }
}

pub(crate) fn render_tile(source: &MapSource, tile: TileCoord, options: RenderOptions) -> Image {
    render(source, Metatile::containing(tile, 1).unwrap(), options)
}

// ---------------------------------------------------------------------------
// Test data: WKT written into a GeoPackage by GDAL

/// A feature: geometry as WKT and two attributes for filters.
pub(crate) struct Feat {
    wkt: String,
    kind: &'static str,
    n: i64,
}

pub(crate) fn feat(kind: &'static str, n: i64, wkt: String) -> Feat {
    Feat { wkt, kind, n }
}

/// Writes `features` into `dir/<name>.gpkg`, layer `<name>`, with fields
/// `kind` (string) and `n` (integer).
pub(crate) fn write_gpkg(dir: &Path, name: &str, epsg: u32, features: &[Feat]) -> PathBuf {
    let path = dir.join(format!("{name}.gpkg"));
    let driver = DriverManager::get_driver_by_name("GPKG").unwrap();
    let mut dataset = driver.create_vector_only(&path).unwrap();
    let srs = SpatialRef::from_epsg(epsg).unwrap();
    let layer = dataset
        .create_layer(LayerOptions {
            name,
            srs: Some(&srs),
            ..Default::default()
        })
        .unwrap();
    FieldDefn::new("kind", OGRFieldType::OFTString)
        .unwrap()
        .add_to_layer(&layer)
        .unwrap();
    FieldDefn::new("n", OGRFieldType::OFTInteger64)
        .unwrap()
        .add_to_layer(&layer)
        .unwrap();
    let defn = Defn::from_layer(&layer);
    for f in features {
        let mut feature = Feature::new(&defn).unwrap();
        let geometry = match Geometry::from_wkt(&f.wkt) {
            Ok(g) => g,
            Err(e) => panic!("bad WKT {}: {e}", f.wkt),
        };
        feature.set_geometry(geometry).unwrap();
        feature.set_field_string(0, f.kind).unwrap();
        feature.set_field_integer64(1, f.n).unwrap();
        feature.create(&layer).unwrap();
    }
    path
}

/// Pixel coordinates of one 256 px tile, turned into EPSG:3857 WKT.
pub(crate) struct Px(pub(crate) PixelTransform);

impl Px {
    pub(crate) fn new(tile: TileCoord) -> Px {
        Px(PixelTransform::for_tile(tile, 256, 0).unwrap())
    }

    pub(crate) fn coords(&self, points: &[(f64, f64)]) -> String {
        points
            .iter()
            .map(|&(x, y)| {
                let m = self.0.to_metres(x, y);
                format!("{} {}", m.x, m.y)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(crate) fn point(&self, x: f64, y: f64) -> String {
        format!("POINT ({})", self.coords(&[(x, y)]))
    }

    pub(crate) fn line(&self, points: &[(f64, f64)]) -> String {
        format!("LINESTRING ({})", self.coords(points))
    }

    /// Rings are closed here.
    pub(crate) fn polygon(&self, rings: &[&[(f64, f64)]]) -> String {
        let rings: Vec<String> = rings
            .iter()
            .map(|r| {
                let mut r = r.to_vec();
                r.push(r[0]);
                format!("({})", self.coords(&r))
            })
            .collect();
        format!("POLYGON ({})", rings.join(", "))
    }
}

pub(crate) fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> [(f64, f64); 4] {
    [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
}

/// A regular polygon (`n` corners) around a centre.
pub(crate) fn ngon(cx: f64, cy: f64, r: f64, n: usize) -> Vec<(f64, f64)> {
    (0..n)
        .map(|i| {
            let a = std::f64::consts::TAU * i as f64 / n as f64;
            (cx + r * a.cos(), cy + r * a.sin())
        })
        .collect()
}

/// The tile most synthetic cases are drawn on (northern Europe, z10).
pub(crate) fn base_tile() -> TileCoord {
    TileCoord::new(10, 582, 296).unwrap()
}

/// A map over one GeoPackage layer `data` with the given styles (each
/// `<Style>` element, whose names are listed in `style_names`).
pub(crate) fn map_xml(styles: &str, style_names: &[&str], layer_srs: &str) -> String {
    let names: String = style_names
        .iter()
        .map(|n| format!("<StyleName>{n}</StyleName>"))
        .collect();
    format!(
        r##"<Map srs="epsg:3857" background-color="#f4f1ea" buffer-size="32">
{styles}
<Layer name="data" srs="{layer_srs}">
{names}
<Datasource>
<Parameter name="type">ogr</Parameter>
<Parameter name="file">data.gpkg</Parameter>
<Parameter name="layer">data</Parameter>
</Datasource>
</Layer>
</Map>"##
    )
}

/// Writes `features` (EPSG:3857) and loads a map over them with `styles`.
pub(crate) fn scene(
    dir: &Path,
    features: &[Feat],
    styles: &str,
    style_names: &[&str],
) -> MapSource {
    write_gpkg(dir, "data", 3857, features);
    source(&map_xml(styles, style_names, "epsg:3857"), dir)
}

/// One style named `s` with one rule holding `symbolizers`.
pub(crate) fn style(symbolizers: &str) -> String {
    format!(r#"<Style name="s"><Rule>{symbolizers}</Rule></Style>"#)
}

// ---------------------------------------------------------------------------
// Cases

#[test]
fn polygon_fill_with_a_hole() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    let features = [
        // A square with a square hole (the hole wound the same way: filled
        // even-odd it is a hole anyway).
        feat(
            "a",
            1,
            px.polygon(&[
                &rect(30.0, 30.0, 226.0, 226.0),
                &rect(80.0, 80.0, 176.0, 176.0),
            ]),
        ),
        // A triangle across the hole, half transparent.
        feat(
            "b",
            2,
            px.polygon(&[&[(128.0, 50.0), (200.0, 200.0), (56.0, 200.0)]]),
        ),
        // A polygon reaching far past the tile, clipped by the renderer.
        feat(
            "c",
            3,
            px.polygon(&[&[(-4000.0, 240.0), (4000.0, 236.3), (4000.0, 6000.0)]]),
        ),
    ];
    let styles = r##"<Style name="s">
<Rule><Filter>[kind] = 'a'</Filter><PolygonSymbolizer fill="#3a7d44"/></Rule>
<Rule><Filter>[kind] = 'b'</Filter><PolygonSymbolizer fill="#c0392b" fill-opacity="0.5"/></Rule>
<Rule><Filter>[kind] = 'c'</Filter><PolygonSymbolizer fill="#2e5e8c"/></Rule>
</Style>"##;
    let map = scene(dir.path(), &features, styles, &["s"]);
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    // The hole shows the background; the ring is filled.
    assert_eq!(image.pixel(100, 100), [0xf4, 0xf1, 0xea, 255]);
    assert_eq!(image.pixel(50, 128), [0x3a, 0x7d, 0x44, 255]);
    check("polygon_fill_with_a_hole", &image);
}

#[test]
fn thin_stroke_of_0_8_px() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    let mut features = vec![
        // On a pixel row's centre, on a pixel boundary, and diagonal.
        feat("l", 0, px.line(&[(10.0, 20.5), (246.0, 20.5)])),
        feat("l", 0, px.line(&[(10.0, 40.0), (246.0, 40.0)])),
        feat("l", 0, px.line(&[(10.0, 60.0), (246.0, 230.0)])),
        // Nearly horizontal: the coverage drifts across rows.
        feat("l", 0, px.line(&[(10.0, 70.0), (246.0, 76.0)])),
        // A polygon outline (a ring is stroked closed).
        feat(
            "p",
            0,
            px.polygon(&[
                &ngon(180.0, 150.0, 50.0, 7),
                &rect(165.0, 140.0, 190.0, 160.0),
            ]),
        ),
    ];
    // A fan of short lines at many angles.
    for i in 0..12 {
        let a = std::f64::consts::PI * f64::from(i) / 12.0;
        features.push(feat(
            "l",
            0,
            px.line(&[
                (60.0, 170.0),
                (60.0 + 50.0 * a.cos(), 170.0 - 50.0 * a.sin()),
            ]),
        ));
    }
    let map = scene(
        dir.path(),
        &features,
        &style(r##"<LineSymbolizer stroke="#333333" stroke-width="0.8"/>"##),
        &["s"],
    );
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    // Not a faint hairline. (0.8 px centred on a row covers 80% of it; AGG
    // draws about 0x5a here, tiny-skia's 4 sub-scanlines per pixel all fall
    // inside the stroke, so it draws the full 0x33.)
    let [r, ..] = image.pixel(128, 20);
    assert!(r < 0xa0, "row under the 0.8 px line: {r}");
    check("thin_stroke_of_0_8_px", &image);
}

#[test]
fn wide_stroke_with_round_caps_and_joins() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    let zigzag = [
        (30.0, 60.0),
        (80.0, 20.0),
        (130.0, 80.0),
        (180.0, 25.0),
        (226.0, 70.0),
    ];
    let features = [
        feat("round", 0, px.line(&zigzag)),
        // A self-crossing loop: translucent, the overlap must not darken.
        feat(
            "round",
            0,
            px.line(&[
                (40.0, 200.0),
                (200.0, 120.0),
                (210.0, 210.0),
                (120.0, 110.0),
            ]),
        ),
        feat("butt", 0, px.line(&[(40.0, 235.0), (120.0, 235.0)])),
        feat("square", 0, px.line(&[(150.0, 235.0), (220.0, 235.0)])),
    ];
    let styles = r##"<Style name="s">
<Rule><Filter>[kind] = 'round'</Filter>
<LineSymbolizer stroke="#1f6fb2" stroke-width="14" stroke-opacity="0.7" stroke-linecap="round" stroke-linejoin="round"/>
<LineSymbolizer stroke="#ffffff" stroke-width="1"/>
</Rule>
<Rule><Filter>[kind] = 'butt'</Filter><LineSymbolizer stroke="#8e44ad" stroke-width="12"/></Rule>
<Rule><Filter>[kind] = 'square'</Filter><LineSymbolizer stroke="#8e44ad" stroke-width="12" stroke-linecap="square"/></Rule>
</Style>"##;
    let map = scene(dir.path(), &features, styles, &["s"]);
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    check("wide_stroke_with_round_caps_and_joins", &image);
}

#[test]
fn miter_joins_clip_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    // A sharp turn (~14°): its miter is ~8 half-widths long, past the
    // default limit of 4, so AGG/Mapnik clip it; a right angle is kept.
    let sharp = [(20.0, 40.0), (150.0, 60.0), (20.0, 76.0)];
    let right = [(170.0, 20.0), (230.0, 20.0), (230.0, 80.0)];
    let shift = |pts: &[(f64, f64)], dy: f64| -> Vec<(f64, f64)> {
        pts.iter().map(|&(x, y)| (x, y + dy)).collect()
    };
    let features = [
        feat("miter", 0, px.line(&sharp)),
        feat("miter", 0, px.line(&right)),
        feat("revert", 0, px.line(&shift(&sharp, 90.0))),
        feat("revert", 0, px.line(&shift(&right, 90.0))),
        feat("bevel", 0, px.line(&shift(&sharp, 170.0))),
        feat("miter10", 0, px.line(&shift(&right, 170.0))),
    ];
    let styles = r##"<Style name="s">
<Rule><Filter>[kind] = 'miter'</Filter><LineSymbolizer stroke="#222222" stroke-width="10"/></Rule>
<Rule><Filter>[kind] = 'revert'</Filter><LineSymbolizer stroke="#a04000" stroke-width="10" stroke-linejoin="miter-revert"/></Rule>
<Rule><Filter>[kind] = 'bevel'</Filter><LineSymbolizer stroke="#006060" stroke-width="10" stroke-linejoin="bevel"/></Rule>
<Rule><Filter>[kind] = 'miter10'</Filter><LineSymbolizer stroke="#222222" stroke-width="10" stroke-miterlimit="10"/></Rule>
</Style>"##;
    let map = scene(dir.path(), &features, styles, &["s"]);
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    // The clipped miter ends 4 half-widths (20 px) past the vertex: well
    // before the full miter's tip (~40 px past it).
    assert_eq!(image.pixel(185, 59), [0xf4, 0xf1, 0xea, 255]);
    assert_ne!(image.pixel(160, 59), [0xf4, 0xf1, 0xea, 255]);
    check("miter_joins_clip_at_the_limit", &image);
}

#[test]
fn dashed_lines() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    let features = [
        feat("a", 0, px.line(&[(20.0, 30.0), (236.0, 30.0)])),
        feat(
            "b",
            0,
            px.line(&[(20.0, 70.0), (120.0, 70.0), (120.0, 130.0), (236.0, 90.0)]),
        ),
        feat("c", 0, px.line(&[(20.0, 160.0), (236.0, 175.0)])),
        feat("d", 0, px.polygon(&[&rect(40.0, 195.0, 216.0, 240.0)])),
    ];
    let styles = r##"<Style name="s">
<Rule><Filter>[kind] = 'a'</Filter><LineSymbolizer stroke="#000000" stroke-width="3" stroke-dasharray="12,6"/></Rule>
<Rule><Filter>[kind] = 'b'</Filter><LineSymbolizer stroke="#b03060" stroke-width="2" stroke-dasharray="6 3 1 3" stroke-dashoffset="4"/></Rule>
<Rule><Filter>[kind] = 'c'</Filter><LineSymbolizer stroke="#2060b0" stroke-width="6" stroke-dasharray="10,8" stroke-linecap="round"/></Rule>
<Rule><Filter>[kind] = 'd'</Filter><PolygonSymbolizer fill="#d8e8c8"/><LineSymbolizer stroke="#406020" stroke-width="1.5" stroke-dasharray="8,4"/></Rule>
</Style>"##;
    let map = scene(dir.path(), &features, styles, &["s"]);
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    // Dash then gap along the first line (dash 20..32, gap 32..38).
    assert_eq!(image.pixel(26, 30)[..3], [0, 0, 0]);
    assert_eq!(image.pixel(35, 30), [0xf4, 0xf1, 0xea, 255]);
    check("dashed_lines", &image);
}

#[test]
fn markers() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    let features = [
        feat("dot", 0, px.point(40.0, 40.0)),
        feat("dot", 0, px.point(100.5, 40.5)),
        feat("oval", 0, px.point(180.0, 45.0)),
        feat("faint", 0, px.point(60.0, 120.0)),
        feat("faint", 0, px.point(70.0, 126.0)),
        // A line gets its marker half way along its length, a polygon at
        // its centroid (Mapnik's point placement).
        feat(
            "dot",
            0,
            px.line(&[(130.0, 100.0), (170.0, 140.0), (230.0, 100.0)]),
        ),
        feat(
            "dot",
            0,
            px.polygon(&[&[(40.0, 180.0), (140.0, 170.0), (110.0, 240.0)]]),
        ),
    ];
    let styles = r##"<Style name="s">
<Rule><Filter>[kind] = 'dot'</Filter>
<LineSymbolizer stroke="#999999" stroke-width="1"/>
<MarkersSymbolizer allow-overlap="true"/>
</Rule>
<Rule><Filter>[kind] = 'oval'</Filter><MarkersSymbolizer width="40" height="16" fill="#e67e22" stroke="#7f3f00" stroke-width="2" allow-overlap="true"/></Rule>
<Rule><Filter>[kind] = 'faint'</Filter><MarkersSymbolizer width="24" fill="#27ae60" opacity="0.5" allow-overlap="true"/></Rule>
</Style>"##;
    let map = scene(dir.path(), &features, styles, &["s"]);
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    // The default marker: a 10 px blue ellipse.
    assert_eq!(image.pixel(40, 40), [0, 0, 255, 255]);
    check("markers", &image);
}

#[test]
fn antimeridian_ring_paints_no_band() {
    let dir = tempfile::tempdir().unwrap();
    // Stored in longitude/latitude as a ring that jumps from 170°E to
    // 170°W (the short way across the antimeridian), like world-atlas's
    // Fiji and Chukotka; and a plain polygon for comparison.
    let features = [
        feat(
            "jump",
            0,
            "POLYGON ((170 50, -170 50, -160 20, -170 -10, 170 -10, 160 20, 170 50))".into(),
        ),
        feat(
            "plain",
            0,
            "POLYGON ((-20 10, 20 10, 20 -30, -20 -30, -20 10))".into(),
        ),
    ];
    write_gpkg(dir.path(), "data", 4326, &features);
    let xml = map_xml(
        &style(
            r##"<PolygonSymbolizer fill="#c06030"/><LineSymbolizer stroke="#402010" stroke-width="1"/>"##,
        ),
        &["s"],
        "epsg:4326",
    );
    let map = source(&xml, dir.path());
    // The whole world at zoom 1 (a metatile clipped to 2x2 tiles).
    let meta = Metatile::containing(TileCoord::new(1, 0, 0).unwrap(), 8).unwrap();
    let image = render(&map, meta, options(TileFormat::Png32));
    assert_eq!((image.width, image.height), (512, 512));
    let bg = [0xf4, 0xf1, 0xea, 255];
    let y = (LngLat::new(0.0, 40.0).to_mercator(false).unwrap().y / 20_037_508.342_789_244)
        .mul_add(-256.0, 256.0) as u32;
    // Painted at both edges of the world, at 40°N ...
    assert_ne!(image.pixel(3, y), bg);
    assert_ne!(image.pixel(508, y), bg);
    // ... and nowhere in between (a band would cover these).
    for x in [100, 200, 400] {
        assert_eq!(image.pixel(x, y), bg, "band at x={x}, y={y}");
    }
    check("antimeridian_ring_paints_no_band", &image);
}

#[test]
fn filters_and_else_filter() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    let mut features = Vec::new();
    let kinds = ["a", "b", "c", "d"];
    for (row, kind) in kinds.iter().enumerate() {
        for n in 0..4i64 {
            let (x, y) = (20.0 + 58.0 * n as f64, 20.0 + 58.0 * row as f64);
            features.push(feat(
                kind,
                n * 3,
                px.polygon(&[&rect(x, y, x + 44.0, y + 44.0)]),
            ));
        }
    }
    features.push(feat(
        "d",
        0,
        px.line(&[(10.0, 128.0), (128.0, 250.0), (246.0, 128.0)]),
    ));
    let styles = r##"<Style name="s">
<Rule><Filter>[kind] = 'a'</Filter><PolygonSymbolizer fill="#c0392b"/></Rule>
<Rule><Filter>[n] &gt;= 5 and not ([kind] = 'a')</Filter><PolygonSymbolizer fill="#2e86c1"/></Rule>
<Rule><Filter>[kind] = 'c' or [kind] = 'd'</Filter><LineSymbolizer stroke="#000000" stroke-width="2"/></Rule>
<Rule><Filter>[mapnik::geometry_type] = linestring</Filter><LineSymbolizer stroke="#f1c40f" stroke-width="5"/></Rule>
<Rule><ElseFilter/><PolygonSymbolizer fill="#95a5a6"/></Rule>
</Style>"##;
    let map = scene(dir.path(), &features, styles, &["s"]);
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    // b with n = 0: no ordinary rule matched, so ElseFilter (grey).
    assert_eq!(image.pixel(40, 100), [0x95, 0xa5, 0xa6, 255]);
    // b with n = 9: blue.
    assert_eq!(image.pixel(40 + 174, 100), [0x2e, 0x86, 0xc1, 255]);
    check("filters_and_else_filter", &image);
}

#[test]
fn min_and_max_scale_rules() {
    let dir = tempfile::tempdir().unwrap();
    let tile = base_tile();
    let px = Px::new(tile);
    // Around the centre of the z10 tile, so the z12 tile below sees it too.
    let features = [
        feat("p", 0, px.polygon(&[&ngon(128.0, 128.0, 100.0, 12)])),
        feat("l", 0, px.line(&[(20.0, 140.0), (236.0, 116.0)])),
    ];
    // z10 is 545,979 and z12 136,495: the first two rules only show at
    // z10, the third only at z12, the last at both.
    let styles = r##"<Style name="s">
<Rule><MinScaleDenominator>200000</MinScaleDenominator><Filter>[kind] = 'p'</Filter><PolygonSymbolizer fill="#5dade2"/></Rule>
<Rule><MinScaleDenominator>200000</MinScaleDenominator><Filter>[kind] = 'l'</Filter><LineSymbolizer stroke="#1b4f72" stroke-width="2"/></Rule>
<Rule><MaxScaleDenominator>200000</MaxScaleDenominator><Filter>[kind] = 'p'</Filter><PolygonSymbolizer fill="#f5b041"/><LineSymbolizer stroke="#7e5109" stroke-width="3"/></Rule>
<Rule><MinScaleDenominator>100000</MinScaleDenominator><MaxScaleDenominator>1000000</MaxScaleDenominator><Filter>[kind] = 'l'</Filter><LineSymbolizer stroke="#c0392b" stroke-width="1" stroke-dasharray="4,4"/></Rule>
</Style>"##;
    let map = scene(dir.path(), &features, styles, &["s"]);
    let z10 = render_tile(&map, tile, options(TileFormat::Png32));
    assert_eq!(z10.pixel(128, 60), [0x5d, 0xad, 0xe2, 255]);
    check("min_and_max_scale_rules_z10", &z10);
    // The z12 tile holding the polygon's western edge (pixel ~28, 128 of
    // the z10 tile).
    let z12 = TileCoord::new(12, tile.x() * 4, tile.y() * 4 + 2).unwrap();
    let image = render_tile(&map, z12, options(TileFormat::Png32));
    assert_eq!(image.pixel(250, 128), [0xf5, 0xb0, 0x41, 255]);
    check("min_and_max_scale_rules_z12", &image);
}

#[test]
fn style_opacity_blends_the_whole_pass() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    // Left: two overlapping squares in a style with opacity 0.5 (the
    // overlap is no darker). Right: the same with fill-opacity 0.5 (it is).
    let features = [
        feat("left", 0, px.polygon(&[&rect(20.0, 40.0, 90.0, 160.0)])),
        feat("left", 0, px.polygon(&[&rect(60.0, 90.0, 120.0, 220.0)])),
        feat("right", 0, px.polygon(&[&rect(140.0, 40.0, 210.0, 160.0)])),
        feat("right", 0, px.polygon(&[&rect(180.0, 90.0, 240.0, 220.0)])),
    ];
    let styles = r##"<Style name="whole" opacity="0.5">
<Rule><Filter>[kind] = 'left'</Filter><PolygonSymbolizer fill="#1a5276"/><LineSymbolizer stroke="#000000" stroke-width="4"/></Rule>
</Style>
<Style name="each">
<Rule><Filter>[kind] = 'right'</Filter><PolygonSymbolizer fill="#1a5276" fill-opacity="0.5"/><LineSymbolizer stroke="#000000" stroke-width="4" stroke-opacity="0.5"/></Rule>
</Style>"##;
    let map = scene(dir.path(), &features, styles, &["whole", "each"]);
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    assert_eq!(
        image.pixel(40, 60),
        image.pixel(75, 120),
        "no darker overlap"
    );
    assert_ne!(
        image.pixel(160, 60),
        image.pixel(195, 120),
        "darker overlap"
    );
    check("style_opacity_blends_the_whole_pass", &image);
}

/// Translucent overlapping discs in many colours: far more than 256
/// colours, so png8 quantizes.
fn colourful_scene(dir: &Path) -> MapSource {
    let px = Px::new(base_tile());
    let mut features = Vec::new();
    for i in 0..6i64 {
        for j in 0..6i64 {
            let (x, y) = (24.0 + 42.0 * i as f64, 24.0 + 42.0 * j as f64);
            features.push(feat(
                "disc",
                i * 6 + j,
                px.polygon(&[&ngon(x, y, 30.0, 24)]),
            ));
        }
    }
    let rules: String = (0..36)
        .map(|n| {
            let (r, g, b) = (40 + n * 6, 220 - n * 5, 60 + (n * 37) % 190);
            format!(
                r##"<Rule><Filter>[n] = {n}</Filter><PolygonSymbolizer fill="rgb({r},{g},{b})" fill-opacity="0.45"/></Rule>"##
            )
        })
        .collect();
    scene(
        dir,
        &features,
        &format!(r#"<Style name="s">{rules}</Style>"#),
        &["s"],
    )
}

#[test]
fn png8_and_png32_encodings() {
    let dir = tempfile::tempdir().unwrap();
    let map = colourful_scene(dir.path());
    let tile = base_tile();
    let meta = Metatile::containing(tile, 1).unwrap();
    let png32 = Renderer::new(map.clone(), options(TileFormat::Png32))
        .render_metatile(&meta)
        .unwrap();
    let png8 = Renderer::new(map.clone(), options(TileFormat::Png8 { colours: 256 }))
        .render_metatile(&meta)
        .unwrap();
    let info = |bytes: &[u8]| {
        let reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap();
        (reader.info().color_type, reader.info().bit_depth)
    };
    assert_eq!(
        info(&png32[0].png),
        (png::ColorType::Rgba, png::BitDepth::Eight)
    );
    assert_eq!(
        info(&png8[0].png),
        (png::ColorType::Indexed, png::BitDepth::Eight)
    );
    assert!(png8[0].png.len() < png32[0].png.len());
    let full = decode(&png32[0].png);
    let colours: std::collections::HashSet<&[u8]> = full.rgba.chunks_exact(4).collect();
    assert!(colours.len() > 256, "the scene must need quantizing");
    check("encoding_png32", &full);
    check("encoding_png8", &decode(&png8[0].png));
}

#[test]
fn png8_is_lossless_up_to_256_colours() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    // Flat fills with hard, pixel-aligned edges: 4 colours.
    let features = [
        feat("a", 0, px.polygon(&[&rect(0.0, 0.0, 128.0, 256.0)])),
        feat("b", 0, px.polygon(&[&rect(128.0, 64.0, 256.0, 192.0)])),
    ];
    let styles = r##"<Style name="s">
<Rule><Filter>[kind] = 'a'</Filter><PolygonSymbolizer fill="#336699"/></Rule>
<Rule><Filter>[kind] = 'b'</Filter><PolygonSymbolizer fill="rgba(200,30,30,0.5)"/></Rule>
</Style>"##;
    let map = scene(dir.path(), &features, styles, &["s"]);
    let png8 = render_tile(
        &map,
        base_tile(),
        options(TileFormat::Png8 { colours: 256 }),
    );
    let png32 = render_tile(&map, base_tile(), options(TileFormat::Png32));
    assert!(png8.rgba == png32.rgba, "png8 with few colours is exact");
    check("encoding_png8_few_colours", &png8);
}

/// The scene of the HiDPI case, in pixels of a 256 px tile.
fn hidpi_features(px: &Px) -> Vec<Feat> {
    vec![
        feat(
            "area",
            0,
            px.polygon(&[&ngon(90.0, 90.0, 60.0, 9), &ngon(90.0, 90.0, 20.0, 5)]),
        ),
        feat(
            "road",
            0,
            px.line(&[(10.0, 200.0), (90.0, 170.0), (160.0, 220.0), (246.0, 150.0)]),
        ),
        feat("thin", 0, px.line(&[(160.0, 20.0), (240.0, 110.0)])),
        feat("poi", 0, px.point(200.0, 60.0)),
    ]
}

const HIDPI_STYLE: &str = r##"<Style name="s">
<Rule><Filter>[kind] = 'area'</Filter><PolygonSymbolizer fill="#a9cce3"/><LineSymbolizer stroke="#21618c" stroke-width="1.5"/></Rule>
<Rule><Filter>[kind] = 'road'</Filter>
<LineSymbolizer stroke="#999999" stroke-width="6" stroke-linecap="round" stroke-linejoin="round"/>
<LineSymbolizer stroke="#ffffff" stroke-width="4" stroke-linecap="round" stroke-linejoin="round"/>
</Rule>
<Rule><Filter>[kind] = 'thin'</Filter><LineSymbolizer stroke="#000000" stroke-width="0.8" stroke-dasharray="5,3"/></Rule>
<Rule><Filter>[kind] = 'poi'</Filter><MarkersSymbolizer width="12" fill="#c0392b" stroke="#ffffff" stroke-width="1.5" allow-overlap="true" ignore-placement="true"/></Rule>
<Rule><MaxScaleDenominator>300000</MaxScaleDenominator><Filter>[kind] = 'area'</Filter><PolygonSymbolizer fill="#ff0000"/></Rule>
</Style>"##;

#[test]
fn hidpi_512px_tile_with_scale_factor_2() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    let map = scene(dir.path(), &hidpi_features(&px), HIDPI_STYLE, &["s"]);
    let hidpi = RenderOptions {
        tile_size: 512,
        scale_factor: 2.0,
        ..options(TileFormat::Png32)
    };
    let image = render_tile(&map, base_tile(), hidpi);
    assert_eq!((image.width, image.height), (512, 512));
    // Scale rules see z10's scale (the red rule, for z11 and up, is off).
    assert_ne!(image.pixel(180, 100)[..3], [255, 0, 0]);
    // Everything is twice as wide: the 6 px road casing is 12 px.
    check("hidpi_512px_tile_with_scale_factor_2", &image);
    let normal = render_tile(&map, base_tile(), options(TileFormat::Png32));
    check("hidpi_reference_256px", &normal);
}

// ---------------------------------------------------------------------------
// The benchmark style over the shipped extract

fn benchmark_style() -> MapSource {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mapnik_style_extract.xml");
    let source = MapSource::load(&path).unwrap();
    assert!(source.warnings().is_empty(), "{:?}", source.warnings());
    source
}

fn helsinki(z: u8) -> TileCoord {
    tile_math::tile_for_lnglat(LngLat::new(24.944, 60.171), z, false).unwrap()
}

#[test]
fn mapnik_style_z5_tile() {
    let map = benchmark_style();
    // The Gulf of Finland, as one tile with the style's 128 px buffer (the
    // extract reaches past it).
    let tile = helsinki(5);
    assert_eq!((tile.x(), tile.y()), (18, 9));
    let png32 = render_tile(&map, tile, options(TileFormat::Png32));
    check("mapnik_style_z5", &png32);
    // Fewer than 256 colours: png8 is the same picture.
    let png8 = render_tile(&map, tile, options(TileFormat::Png8 { colours: 256 }));
    assert!(png8.rgba == png32.rgba);
}

#[test]
fn mapnik_style_z13_metatile() {
    let map = benchmark_style();
    let meta = Metatile::containing(helsinki(13), 8).unwrap();
    let image = render(&map, meta, options(TileFormat::Png32));
    assert_eq!((image.width, image.height), (2048, 2048));
    check("mapnik_style_z13_metatile", &image);
}

#[test]
fn mapnik_style_z15_metatile() {
    let map = benchmark_style();
    // A 2x2 metatile in the middle of the Helsinki extract: every road.
    let meta = Metatile::containing(helsinki(15), 2).unwrap();
    let image = render(&map, meta, options(TileFormat::Png8 { colours: 256 }));
    check("mapnik_style_z15_png8", &image);
}

// ---------------------------------------------------------------------------
// Labels (issue #15): the text of each feature is its `kind`.

/// A style with one `TextSymbolizer` whose text is `[kind]`, over a faint
/// drawing of the geometry (so a golden shows where the label was put).
fn label_style(attributes: &str) -> String {
    format!(
        r##"<Style name="s"><Rule>
<LineSymbolizer stroke="#9bb0c4" stroke-width="1"/>
<MarkersSymbolizer fill="#c0392b" width="4" height="4" stroke-width="0" allow-overlap="true" ignore-placement="true"/>
<TextSymbolizer face-name="DejaVu Sans Book" {attributes}>[kind]</TextSymbolizer>
</Rule></Style>"##
    )
}

fn label_scene(dir: &Path, features: &[Feat], attributes: &str) -> MapSource {
    scene(dir, features, &label_style(attributes), &["s"])
}

/// Pixels that are (nearly) the text's fill colour, black by default.
fn dark_pixels(image: &Image, x0: u32, x1: u32) -> usize {
    (0..image.height)
        .flat_map(|y| (x0..x1).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let p = image.pixel(x, y);
            p[0] < 60 && p[1] < 60 && p[2] < 60
        })
        .count()
}

#[test]
fn label_point_with_a_halo() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    let features = [feat("Helsinki", 0, px.point(128.0, 128.0))];
    let map = label_scene(
        dir.path(),
        &features,
        r##"size="16" halo-radius="2" halo-fill="#ffffff" fill="#222222""##,
    );
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    assert!(dark_pixels(&image, 0, 256) > 100, "no label drawn");
    // Centred on the point: as much ink left of it as right.
    let (left, right) = (dark_pixels(&image, 0, 128), dark_pixels(&image, 128, 256));
    assert!(left.abs_diff(right) * 4 < left + right, "{left} vs {right}");
    check("label_point_with_a_halo", &image);
}

#[test]
fn label_along_a_curve() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    let arc: Vec<(f64, f64)> = (0..=40)
        .map(|i| {
            let a = std::f64::consts::PI * (0.15 + 0.7 * f64::from(i) / 40.0);
            (128.0 - 110.0 * a.cos(), 200.0 - 110.0 * a.sin())
        })
        .collect();
    let features = [feat("Mannerheimintie", 0, px.line(&arc))];
    let map = label_scene(
        dir.path(),
        &features,
        r#"placement="line" size="13" halo-radius="1""#,
    );
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    assert!(dark_pixels(&image, 0, 256) > 100, "no label drawn");
    check("label_along_a_curve", &image);
}

#[test]
fn label_wrapped_at_wrap_width() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    let features = [feat(
        "Helsingin päärautatieasema",
        0,
        px.point(128.0, 128.0),
    )];
    // "Helsingin" alone passes 40 px, so the line breaks after it.
    let map = label_scene(dir.path(), &features, r#"size="12" wrap-width="40""#);
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    // Two lines: ink above and below the point.
    let rows_with_ink: Vec<u32> = (0..256)
        .filter(|&y| (0..256).any(|x| image.pixel(x, y)[0] < 60))
        .collect();
    let (top, bottom) = (rows_with_ink[0], rows_with_ink[rows_with_ink.len() - 1]);
    assert!(top < 120 && bottom > 132, "ink from row {top} to {bottom}");
    check("label_wrapped_at_wrap_width", &image);
}

#[test]
fn label_in_japanese_through_a_fontset() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    let features = [feat("東京都 Tokyo", 0, px.point(128.0, 128.0))];
    let styles = r##"<Style name="s"><Rule>
<TextSymbolizer fontset-name="jp" size="16" halo-radius="1.5">[kind]</TextSymbolizer>
</Rule></Style>"##;
    write_gpkg(dir.path(), "data", 3857, &features);
    let xml = map_xml(styles, &["s"], "epsg:3857").replace(
        "buffer-size=\"32\">",
        "buffer-size=\"32\">\n<FontSet name=\"jp\"><Font face-name=\"DejaVu Sans Book\"/>\
         <Font face-name=\"Noto Sans CJK JP Regular\"/></FontSet>",
    );
    let map = source(&xml, dir.path());
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    assert!(dark_pixels(&image, 0, 256) > 150, "no label drawn");
    check("label_in_japanese_through_a_fontset", &image);
}

#[test]
fn label_collision_drops_the_second_label() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    let first = feat("Kamppi", 0, px.point(120.0, 128.0));
    let second = feat("Kaisaniemi", 1, px.point(136.0, 132.0));
    let both = label_scene(dir.path(), &[first, second], r#"size="14""#);
    let both = render_tile(&both, base_tile(), options(TileFormat::Png32));
    // The same scene without the second feature's label: identical but for
    // the second point's marker.
    let dir2 = tempfile::tempdir().unwrap();
    let only = label_scene(
        dir2.path(),
        &[
            feat("Kamppi", 0, px.point(120.0, 128.0)),
            feat("", 1, px.point(136.0, 132.0)),
        ],
        r#"size="14""#,
    );
    let only = render_tile(&only, base_tile(), options(TileFormat::Png32));
    assert!(both.rgba == only.rgba, "the second label was drawn");
    // With allow-overlap both are drawn.
    let dir3 = tempfile::tempdir().unwrap();
    let overlap = label_scene(
        dir3.path(),
        &[
            feat("Kamppi", 0, px.point(120.0, 128.0)),
            feat("Kaisaniemi", 1, px.point(136.0, 132.0)),
        ],
        r#"size="14" allow-overlap="true""#,
    );
    let overlap = render_tile(&overlap, base_tile(), options(TileFormat::Png32));
    assert!(dark_pixels(&overlap, 0, 256) > dark_pixels(&both, 0, 256));
    check("label_collision_drops_the_second_label", &both);
}

#[test]
fn label_across_a_tile_edge_is_whole_and_the_next_metatile_draws_labels_from_its_buffer() {
    let dir = tempfile::tempdir().unwrap();
    // A 2x2 metatile; the label sits on the edge between its two columns.
    let meta = Metatile::containing(TileCoord::new(10, 582, 296).unwrap(), 2).unwrap();
    let left = meta.tiles().next().unwrap();
    let px = Px::new(left);
    let features = [feat("Pasila–Böle", 0, px.point(256.0, 128.0))];
    let map = label_scene(dir.path(), &features, r#"size="14" halo-radius="1""#);
    let image = render(&map, meta, options(TileFormat::Png32));
    // Ink on both sides of the tile edge.
    assert!(dark_pixels(&image, 200, 256) > 20 && dark_pixels(&image, 256, 312) > 20);
    check("label_across_a_tile_edge", &image);
    // A metatile draws labels whose anchor lies in its buffer, just beyond
    // its edge (buffer-size 32): the metatile to the east draws a label
    // anchored 4 px west of it, cut at its edge as its neighbour would
    // continue it.
    let east = Metatile::containing(TileCoord::new(10, 584, 296).unwrap(), 2).unwrap();
    let px_east = Px::new(TileCoord::new(10, 584, 296).unwrap());
    let features = [feat("Pasila–Böle", 0, px_east.point(-4.0, 128.0))];
    let dir2 = tempfile::tempdir().unwrap();
    let map = label_scene(dir2.path(), &features, r#"size="14" halo-radius="1""#);
    let east_image = render(&map, east, options(TileFormat::Png32));
    assert!(
        dark_pixels(&east_image, 0, 60) > 10,
        "the buffer did not bring the label in"
    );
}

#[test]
fn label_with_an_unknown_font_warns_and_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    write_gpkg(
        dir.path(),
        "data",
        3857,
        &[feat("Töölö", 0, px.point(128.0, 128.0))],
    );
    let styles = r#"<Style name="s"><Rule>
<TextSymbolizer face-name="No Such Face Regular" size="14">[kind]</TextSymbolizer>
</Rule></Style>"#;
    let loaded = Map::from_str(&map_xml(styles, &["s"], "epsg:3857"), dir.path()).unwrap();
    let map = MapSource::from_loaded(loaded, None).unwrap();
    let messages: Vec<String> = map.warnings().iter().map(|w| w.to_string()).collect();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].ends_with(
            "<TextSymbolizer>: font face \"No Such Face Regular\" not found; using \"DejaVu Sans Book\""
        ),
        "{messages:?}"
    );
    // Line 3 of the style: where the symbolizer is.
    assert_eq!(map.warnings()[0].location.line, 3);
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    assert!(
        dark_pixels(&image, 0, 256) > 50,
        "the fallback face drew nothing"
    );
}

#[test]
fn label_of_a_missing_field_is_not_drawn_and_is_no_error() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    write_gpkg(
        dir.path(),
        "data",
        3857,
        &[feat("x", 0, px.point(128.0, 128.0))],
    );
    let styles = r#"<Style name="s"><Rule>
<TextSymbolizer face-name="DejaVu Sans Book">[no_such_field]</TextSymbolizer>
</Rule></Style>"#;
    let map = source(&map_xml(styles, &["s"], "epsg:3857"), dir.path());
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    assert!(image
        .rgba
        .chunks_exact(4)
        .all(|p| p == [0xf4, 0xf1, 0xea, 255]));
}

#[test]
fn labels_of_odd_text_are_placed_or_dropped_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    let long = "Pitkä nimi ".repeat(910);
    let texts = [
        long.as_str(),
        "שלום עולם",
        "مرحبا بالعالم",
        "e\u{301}\u{302}\u{303}\u{304}",
        "\u{200d}\u{200d}",
        "a\u{10ffff}b",
    ];
    let features: Vec<Feat> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let kind: &'static str = Box::leak(t.to_string().into_boxed_str());
            feat(
                kind,
                i as i64,
                px.point(40.0 + 30.0 * i as f64, 40.0 + 30.0 * i as f64),
            )
        })
        .collect();
    assert!(texts[0].chars().count() > 10_000);
    let map = label_scene(dir.path(), &features, r#"size="12" placement="point""#);
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    assert_eq!((image.width, image.height), (256, 256));
    // The same texts along lines.
    let lines: Vec<Feat> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let kind: &'static str = Box::leak(t.to_string().into_boxed_str());
            let y = 20.0 + 40.0 * i as f64;
            feat(
                kind,
                i as i64,
                px.line(&[(0.0, y), (128.0, y + 10.0), (256.0, y)]),
            )
        })
        .collect();
    let dir2 = tempfile::tempdir().unwrap();
    let map = label_scene(dir2.path(), &lines, r#"size="12" placement="line""#);
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    assert!(dark_pixels(&image, 0, 256) > 0);
}

#[test]
fn a_hundred_thousand_labels_in_one_metatile_are_mostly_refused() {
    // 100,000 points on one tile, each with a label: the placement engine
    // takes those that fit and refuses the rest, in a grid (no quadratic
    // search); the render finishes and draws only what fits.
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    let features: Vec<Feat> = (0..100_000)
        .map(|i| {
            let (x, y) = (f64::from(i % 316) * 0.81, f64::from(i / 316) * 0.81);
            feat("ab", 0, px.point(x, y))
        })
        .collect();
    write_gpkg(dir.path(), "data", 3857, &features);
    let styles = r#"<Style name="s"><Rule>
<TextSymbolizer face-name="DejaVu Sans Book" size="10">[kind]</TextSymbolizer>
</Rule></Style>"#;
    let map = source(&map_xml(styles, &["s"], "epsg:3857"), dir.path());
    let mut renderer = Renderer::new(map, options(TileFormat::Png32));
    let tiles = renderer
        .render_metatile(&Metatile::containing(base_tile(), 1).unwrap())
        .unwrap();
    assert_eq!(tiles.len(), 1);
    // Shaped once, reused for every label.
    let caches = renderer.text_caches();
    assert_eq!(caches.shapes.misses, 1);
    assert!(caches.shapes.hits >= 99_999);
}

/// A 24×14 PNG shield: a white rounded-ish box with a dark border.
fn write_shield_png(path: &Path) {
    let (w, h) = (24u32, 14u32);
    let mut rgba = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            let border = x == 0 || y == 0 || x == w - 1 || y == h - 1;
            let corner = (x == 0 || x == w - 1) && (y == 0 || y == h - 1);
            let p = if corner {
                [0, 0, 0, 0]
            } else if border {
                [0x55, 0x55, 0x55, 255]
            } else {
                [255, 255, 255, 255]
            };
            rgba.extend_from_slice(&p);
        }
    }
    let image = Image {
        width: w,
        height: h,
        rgba,
    };
    std::fs::write(path, encode(&image)).unwrap();
}

#[test]
fn shield_on_a_line() {
    let dir = tempfile::tempdir().unwrap();
    write_shield_png(&dir.path().join("shield.png"));
    let px = Px::new(base_tile());
    let features = [
        feat(
            "E12",
            0,
            px.line(&[(0.0, 200.0), (90.0, 120.0), (256.0, 90.0)]),
        ),
        // A crossing road with its own shield.
        feat("E18", 1, px.line(&[(100.0, 100.0), (140.0, 150.0)])),
    ];
    let styles = r##"<Style name="s"><Rule>
<LineSymbolizer stroke="#e8a33d" stroke-width="3"/>
<ShieldSymbolizer file="shield.png" face-name="DejaVu Sans Book" size="9" fill="#222"
    placement="line" spacing="120">[kind]</ShieldSymbolizer>
</Rule></Style>"##;
    let map = scene(dir.path(), &features, styles, &["s"]);
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    // Shields are white boxes: count their interior pixels.
    let white = image
        .rgba
        .chunks_exact(4)
        .filter(|p| *p == [255, 255, 255, 255])
        .count();
    assert!(
        white > 2 * 150,
        "fewer than two shields: {white} white pixels"
    );
    check("shield_on_a_line", &image);
}

#[test]
fn a_shield_whose_image_a_field_names_but_is_missing_draws_its_text_alone() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    write_gpkg(
        dir.path(),
        "data",
        3857,
        &[feat("Ring I", 0, px.point(128.0, 128.0))],
    );
    let styles = r#"<Style name="s"><Rule>
<ShieldSymbolizer file="shields/[kind].png" face-name="DejaVu Sans Book" size="12">[kind]</ShieldSymbolizer>
</Rule></Style>"#;
    let map = source(&map_xml(styles, &["s"], "epsg:3857"), dir.path());
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    assert!(dark_pixels(&image, 0, 256) > 30, "the text was not drawn");
}

#[test]
fn a_render_whose_stop_flag_is_set_stops_with_an_error_saying_so() {
    use std::sync::atomic::AtomicBool;
    let dir = tempfile::tempdir().unwrap();
    let map = colourful_scene(dir.path());
    let meta = Metatile::containing(base_tile(), 1).unwrap();
    let mut renderer = Renderer::new(map, options(TileFormat::Png32));
    let err = renderer
        .render_metatile_unless_stopped(&meta, &AtomicBool::new(true))
        .unwrap_err();
    assert!(matches!(err, render_core::Error::Stopped { .. }), "{err:?}");
    assert!(err.to_string().contains("was stopped"), "{err}");
    // Not set: the same renderer draws the metatile as usual.
    let tiles = renderer
        .render_metatile_unless_stopped(&meta, &AtomicBool::new(false))
        .unwrap();
    assert_eq!(tiles.len(), 1);
}

#[test]
fn a_style_without_buffer_size_takes_the_buffer_given_for_it_and_its_own_wins_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    // A 60 px marker centred 20 px left of the tile: its right half shows
    // in the tile when the point is read, i.e. when the buffer reaches it.
    write_gpkg(
        dir.path(),
        "data",
        3857,
        &[feat("dot", 0, px.point(-20.0, 128.0))],
    );
    let xml = |buffer_attr: &str| {
        format!(
            r##"<Map srs="epsg:3857" background-color="#ffffff"{buffer_attr}>
<Style name="s"><Rule><MarkersSymbolizer width="60" height="60" fill="#ff0000" stroke-width="0" allow-overlap="true"/></Rule></Style>
<Layer name="data" srs="epsg:3857"><StyleName>s</StyleName><Datasource>
<Parameter name="type">ogr</Parameter><Parameter name="file">data.gpkg</Parameter><Parameter name="layer">data</Parameter>
</Datasource></Layer></Map>"##
        )
    };
    let with = |buffer_if_unset| RenderOptions {
        buffer_if_unset,
        ..options(TileFormat::Png32)
    };
    let red = [255, 0, 0, 255];
    let white = [255, 255, 255, 255];
    let unset = source(&xml(""), dir.path());
    // Mapnik's default: no buffer, the point is not read.
    assert_eq!(
        render_tile(&unset, base_tile(), with(None)).pixel(2, 128),
        white
    );
    // renderd's rule, as tile-server applies it: half a tile.
    assert_eq!(
        render_tile(&unset, base_tile(), with(Some(128))).pixel(2, 128),
        red
    );
    // A style that sets its buffer keeps it (16 px does not reach the point).
    let own = source(&xml(r#" buffer-size="16""#), dir.path());
    assert_eq!(
        render_tile(&own, base_tile(), with(Some(128))).pixel(2, 128),
        white
    );
}

#[test]
fn a_missing_face_in_a_long_fontset_names_it_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    write_gpkg(
        dir.path(),
        "data",
        3857,
        &[feat("a", 0, px.point(128.0, 128.0))],
    );
    let faces = [
        "No Such Face Regular",
        "DejaVu Sans Book",
        "DejaVu Sans Bold",
        "DejaVu Serif Book",
        "DejaVu Sans Mono Book",
        "DejaVu Serif Bold",
    ];
    let fonts: String = faces
        .iter()
        .map(|f| format!(r#"<Font face-name="{f}"/>"#))
        .collect();
    let styles = format!(
        r#"<FontSet name="fs">{fonts}</FontSet><Style name="s"><Rule>
<TextSymbolizer fontset-name="fs" size="14">[kind]</TextSymbolizer>
</Rule></Style>"#
    );
    let loaded = Map::from_str(&map_xml(&styles, &["s"], "epsg:3857"), dir.path()).unwrap();
    let map = MapSource::from_loaded(loaded, None).unwrap();
    let messages: Vec<String> = map.warnings().iter().map(|w| w.to_string()).collect();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].ends_with(
            "font face \"No Such Face Regular\" not found; using the list's other 5 faces \
             (\"DejaVu Sans Book\", \"DejaVu Sans Bold\", \"DejaVu Serif Book\", ...)"
        ),
        "{messages:?}"
    );
}
