//! Raster layers (`type=gdal` + `RasterSymbolizer`) drawn end to end: small
//! GeoTIFFs written with GDAL in a tempdir, a tiny style, exact pixels.
//!
//! Most tests draw the single z0 tile (256 px, a 1×1 metatile). Pixel
//! columns there are `lon = (x + 0.5) / 256 * 360 - 180`; rows are
//! Mercator latitude (row 100 ≈ 36°N, row 128 ≈ 0.7°S, row 164 ≈ 45.6°S).

use std::path::{Path, PathBuf};

use gdal::raster::Buffer;
use gdal::spatial_ref::SpatialRef;
use gdal::DriverManager;
use render_core::{MapSource, MetatileImage, RenderOptions, Renderer};
use tile_math::{Metatile, TileCoord};

const BLUE: [u8; 4] = [0, 0, 255, 255];
/// Half the Web Mercator world's width, in metres.
const HALF_WORLD: f64 = 20_037_508.342_789_244;

/// Writes a Byte GeoTIFF: `bands` hold `w * h` samples each, row by row.
fn write_tif(
    path: &Path,
    epsg: u32,
    geo: [f64; 6],
    (w, h): (usize, usize),
    bands: &[Vec<u8>],
    nodata: Option<f64>,
) {
    let driver = DriverManager::get_driver_by_name("GTiff").expect("GTiff driver");
    let mut ds = driver
        .create_with_band_type::<u8, _>(path, w, h, bands.len())
        .expect("create the GeoTIFF");
    ds.set_geo_transform(&geo).expect("set the geotransform");
    let srs = SpatialRef::from_epsg(epsg).expect("a known EPSG code");
    ds.set_spatial_ref(&srs).expect("set the SRS");
    for (i, data) in bands.iter().enumerate() {
        let mut band = ds.rasterband(i + 1).expect("the band exists");
        band.set_no_data_value(nodata).expect("set nodata");
        let mut buffer = Buffer::new((w, h), data.clone());
        band.write((0, 0), (w, h), &mut buffer)
            .expect("write the band");
    }
}

/// EPSG:4326, lon -180..0 and lat -60..60 in 1° pixels: 50 west of 90°W,
/// 200 east of it, and nodata (0) south of 30°S.
fn grey_4326(dir: &Path) -> PathBuf {
    let path = dir.join("grey.tif");
    let (w, h) = (180, 120);
    let mut data = vec![0u8; w * h];
    for row in 0..h {
        for col in 0..w {
            let lat = 60.0 - row as f64 - 0.5;
            let lon = -180.0 + col as f64 + 0.5;
            data[row * w + col] = if lat < -30.0 {
                0
            } else if lon < -90.0 {
                50
            } else {
                200
            };
        }
    }
    let geo = [-180.0, 1.0, 0.0, 60.0, 0.0, -1.0];
    write_tif(&path, 4326, geo, (w, h), &[data], Some(0.0));
    path
}

/// EPSG:3857, lon 0..90° and from the equator up to y = a quarter world
/// (≈66.5°N), 4×4 pixels: the western half `west`, the eastern half `east`
/// (RGB, or RGBA when the colours have 4 values).
fn quad_3857(dir: &Path, name: &str, west: &[u8], east: &[u8]) -> PathBuf {
    let path = dir.join(name);
    let px = HALF_WORLD / 2.0 / 4.0;
    let mut bands = vec![vec![0u8; 16]; west.len()];
    for i in 0..16 {
        let colour = if i % 4 < 2 { west } else { east };
        for (band, v) in bands.iter_mut().zip(colour) {
            band[i] = *v;
        }
    }
    let geo = [0.0, px, 0.0, HALF_WORLD / 2.0, 0.0, -px];
    write_tif(&path, 3857, geo, (4, 4), &bands, None);
    path
}

/// A map with a blue background and one raster layer per
/// `(file, layer attributes, datasource extras, style rule body)`.
fn style(dir: &Path, layers: &[(&Path, &str, &str, &str)]) -> PathBuf {
    let mut xml = String::from(r##"<Map background-color="#0000ff" srs="+init=epsg:3857">"##);
    for (i, (_, _, _, rule)) in layers.iter().enumerate() {
        xml += &format!(r#"<Style name="s{i}"><Rule>{rule}</Rule></Style>"#);
    }
    for (i, (file, attrs, extra, _)) in layers.iter().enumerate() {
        // Relative to the style file, as Mapnik resolves them.
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a UTF-8 file name");
        xml += &format!(
            r#"<Layer name="l{i}" {attrs}><StyleName>s{i}</StyleName><Datasource>
            <Parameter name="type">gdal</Parameter><Parameter name="file">{name}</Parameter>{extra}
            </Datasource></Layer>"#
        );
    }
    xml += "</Map>";
    let path = dir.join("style.xml");
    std::fs::write(&path, xml).expect("write the style");
    path
}

fn draw(style: &Path, z: u8, x: u32, y: u32) -> MetatileImage {
    let source = MapSource::load(style).expect("the style loads");
    let mut renderer = Renderer::new(source, RenderOptions::default());
    let tile = TileCoord::new(z, x, y).expect("a valid tile");
    let meta = Metatile::containing(tile, 1).expect("its metatile");
    renderer.draw_metatile(&meta).expect("the metatile draws")
}

fn px(image: &MetatileImage, x: u32, y: u32) -> [u8; 4] {
    let i = ((y * image.width + x) * 4) as usize;
    let p = &image.premultiplied_rgba[i..i + 4];
    [p[0], p[1], p[2], p[3]]
}

const RASTER: &str = "<RasterSymbolizer/>";

#[test]
fn lnglat_grey_raster_with_nodata_over_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let grey = grey_4326(dir.path());
    // No layer srs: the map's is not the default longlat either, so the
    // layer gets +init=epsg:3857 — wrong for this file. Give it the truth.
    let xml = style(dir.path(), &[(&grey, r#"srs="epsg:4326""#, "", RASTER)]);
    let image = draw(&xml, 0, 0, 0);
    assert_eq!((image.width, image.height), (256, 256));
    assert_eq!(px(&image, 32, 100), [50, 50, 50, 255], "134°W 36°N");
    assert_eq!(px(&image, 96, 100), [200, 200, 200, 255], "44°W 36°N");
    assert_eq!(px(&image, 96, 128), [200, 200, 200, 255], "44°W 0.7°S");
    assert_eq!(px(&image, 32, 164), BLUE, "nodata south of 30°S");
    assert_eq!(px(&image, 200, 100), BLUE, "101°E: east of the raster");
    assert_eq!(px(&image, 96, 20), BLUE, "82°N: north of the raster");
}

#[test]
fn the_files_srs_wins_over_mapniks_default() {
    let dir = tempfile::tempdir().unwrap();
    let grey = grey_4326(dir.path());
    let rgb = quad_3857(dir.path(), "rgb.tif", &[255, 0, 0], &[0, 128, 0]);
    // A map without srs: its layers get Mapnik's default longlat, and each
    // file's own SRS (4326 and 3857) is used instead.
    let xml = format!(
        r##"<Map background-color="#0000ff">
        <Style name="s"><Rule><RasterSymbolizer/></Rule></Style>
        <Layer name="grey"><StyleName>s</StyleName><Datasource>
          <Parameter name="type">gdal</Parameter><Parameter name="file">{}</Parameter>
        </Datasource></Layer>
        <Layer name="rgb"><StyleName>s</StyleName><Datasource>
          <Parameter name="type">gdal</Parameter><Parameter name="file">{}</Parameter>
        </Datasource></Layer></Map>"##,
        grey.display(),
        rgb.display()
    );
    let path = dir.path().join("default_srs.xml");
    std::fs::write(&path, xml).unwrap();
    let image = draw(&path, 0, 0, 0);
    assert_eq!(px(&image, 32, 100), [50, 50, 50, 255]);
    assert_eq!(
        px(&image, 140, 100),
        [255, 0, 0, 255],
        "17°E 36°N: red half"
    );
    assert_eq!(
        px(&image, 180, 100),
        [0, 128, 0, 255],
        "73°E 36°N: green half"
    );
    assert_eq!(px(&image, 140, 50), BLUE, "north of the RGB raster");
    assert_eq!(px(&image, 140, 140), BLUE, "south of the equator");
}

#[test]
fn rgba_alpha_is_premultiplied_and_blended() {
    let dir = tempfile::tempdir().unwrap();
    let rgba = quad_3857(dir.path(), "rgba.tif", &[255, 0, 0, 128], &[0, 128, 0, 0]);
    let xml = style(dir.path(), &[(&rgba, "", "", RASTER)]);
    let image = draw(&xml, 0, 0, 0);
    // Red at alpha 128 over blue: (128, 0, 0, 128) + (0, 0, 255) * 127/255.
    assert_eq!(px(&image, 140, 100), [128, 0, 127, 255]);
    // Alpha 0: the background.
    assert_eq!(px(&image, 180, 100), BLUE);
}

#[test]
fn opacity_blends_the_raster() {
    let dir = tempfile::tempdir().unwrap();
    let grey = grey_4326(dir.path());
    let rule = r#"<RasterSymbolizer opacity="0.5"/>"#;
    let xml = style(dir.path(), &[(&grey, r#"srs="epsg:4326""#, "", rule)]);
    let image = draw(&xml, 0, 0, 0);
    // 200 at half opacity over blue: 100 grey + 255 * 0.5 blue (tiny-skia
    // rounds 227.5 up).
    assert_eq!(px(&image, 96, 100), [100, 100, 228, 255]);
    assert_eq!(px(&image, 32, 100), [25, 25, 152, 255]);
    assert_eq!(px(&image, 32, 164), BLUE, "nodata stays transparent");
}

#[test]
fn comp_op_composites_the_raster() {
    let dir = tempfile::tempdir().unwrap();
    let grey = grey_4326(dir.path());
    let rule = r#"<RasterSymbolizer comp-op="multiply"/>"#;
    let xml = style(dir.path(), &[(&grey, r#"srs="epsg:4326""#, "", rule)]);
    let image = draw(&xml, 0, 0, 0);
    // Grey multiplied onto blue: (0, 0, 255 · grey / 255).
    assert_eq!(px(&image, 96, 100), [0, 0, 200, 255]);
    assert_eq!(px(&image, 32, 100), [0, 0, 50, 255]);
    assert_eq!(px(&image, 32, 164), BLUE, "nodata stays transparent");
}

#[test]
fn band_and_nodata_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let rgb = quad_3857(dir.path(), "rgb.tif", &[255, 0, 0], &[0, 128, 0]);
    // Band 2 (green) as grey, with 0 as nodata: the west half (green 0)
    // disappears, the east half is grey 128.
    let extra = r#"<Parameter name="band">2</Parameter><Parameter name="nodata">0</Parameter>"#;
    let xml = style(dir.path(), &[(&rgb, "", extra, RASTER)]);
    let image = draw(&xml, 0, 0, 0);
    assert_eq!(px(&image, 140, 100), BLUE);
    assert_eq!(px(&image, 180, 100), [128, 128, 128, 255]);
}

#[test]
fn layers_draw_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let grey = grey_4326(dir.path());
    let rgb = quad_3857(dir.path(), "rgb.tif", &[255, 0, 0], &[0, 128, 0]);
    // A red world, EPSG:4326.
    let red = dir.path().join("red.tif");
    let geo = [-180.0, 10.0, 0.0, 90.0, 0.0, -10.0];
    let bands = [vec![255u8; 648], vec![0u8; 648], vec![0u8; 648]];
    write_tif(&red, 4326, geo, (36, 18), &bands, None);
    let ll = r#"srs="epsg:4326""#;
    // Red first, grey on top: grey where it has data, red elsewhere.
    let xml = style(
        dir.path(),
        &[(&red, ll, "", RASTER), (&grey, ll, "", RASTER)],
    );
    let image = draw(&xml, 0, 0, 0);
    assert_eq!(px(&image, 32, 100), [50, 50, 50, 255]);
    assert_eq!(
        px(&image, 32, 164),
        [255, 0, 0, 255],
        "grey nodata: red below"
    );
    assert_eq!(px(&image, 200, 100), [255, 0, 0, 255]);
    // Grey first, red on top: red everywhere.
    let xml = style(
        dir.path(),
        &[(&grey, ll, "", RASTER), (&red, ll, "", RASTER)],
    );
    let image = draw(&xml, 0, 0, 0);
    assert_eq!(px(&image, 32, 100), [255, 0, 0, 255]);
    // And the RGB raster's layer over the red one (3857 over 4326).
    let xml = style(
        dir.path(),
        &[(&red, ll, "", RASTER), (&rgb, "", "", RASTER)],
    );
    let image = draw(&xml, 0, 0, 0);
    assert_eq!(px(&image, 180, 100), [0, 128, 0, 255]);
    assert_eq!(px(&image, 140, 140), [255, 0, 0, 255]);
}

#[test]
fn scaling_bilinear_blends_across_an_edge_and_near_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let grey = grey_4326(dir.path());
    let ll = r#"srs="epsg:4326""#;
    let row = |scaling: &str| {
        let rule = format!(r#"<RasterSymbolizer scaling="{scaling}"/>"#);
        let xml = style(dir.path(), &[(&grey, ll, "", &rule)]);
        let image = draw(&xml, 0, 0, 0);
        (56..72).map(|x| px(&image, x, 100)[0]).collect::<Vec<u8>>()
    };
    let near = row("near");
    assert!(near.iter().all(|v| *v == 50 || *v == 200), "{near:?}");
    let bilinear = row("bilinear");
    assert!(bilinear.iter().any(|v| *v > 50 && *v < 200), "{bilinear:?}");
    assert_eq!(bilinear.first(), Some(&50));
    assert_eq!(bilinear.last(), Some(&200));
}

#[test]
fn raster_outside_the_tile_leaves_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let grey = grey_4326(dir.path());
    let rgb = quad_3857(dir.path(), "rgb.tif", &[255, 0, 0], &[0, 128, 0]);
    let xml = style(
        dir.path(),
        &[
            (&grey, r#"srs="epsg:4326""#, "", RASTER),
            (&rgb, "", "", RASTER),
        ],
    );
    // z2 x3 y0: 90°E–180°, 66.5°N–85°N. Neither raster reaches it.
    let image = draw(&xml, 2, 3, 0);
    assert!(
        image.premultiplied_rgba.chunks_exact(4).all(|p| p == BLUE),
        "only the background"
    );
}

#[test]
fn scale_bounds_and_missing_raster_symbolizer_draw_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let grey = grey_4326(dir.path());
    let all_blue =
        |image: &MetatileImage| image.premultiplied_rgba.chunks_exact(4).all(|p| p == BLUE);
    // z0 is at 1:559 million; this layer stops at 1:1000.
    let attrs = r#"srs="epsg:4326" maximum-scale-denominator="1000""#;
    let xml = style(dir.path(), &[(&grey, attrs, "", RASTER)]);
    assert!(all_blue(&draw(&xml, 0, 0, 0)));
    // A rule that is not for this scale.
    let rule = "<MaxScaleDenominator>1000</MaxScaleDenominator><RasterSymbolizer/>";
    let xml = style(dir.path(), &[(&grey, r#"srs="epsg:4326""#, "", rule)]);
    assert!(all_blue(&draw(&xml, 0, 0, 0)));
    // No RasterSymbolizer: Mapnik draws nothing for a raster.
    let rule = r##"<PolygonSymbolizer fill="#ff0000"/>"##;
    let xml = style(dir.path(), &[(&grey, r#"srs="epsg:4326""#, "", rule)]);
    assert!(all_blue(&draw(&xml, 0, 0, 0)));
}

#[test]
fn missing_raster_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.tif");
    let xml = style(dir.path(), &[(&missing, "", "", RASTER)]);
    let err = MapSource::load(&xml).unwrap_err().to_string();
    assert!(err.contains("nowhere.tif"), "{err}");
    assert!(err.contains("l0"), "names the layer: {err}");
}

#[test]
fn raster_file_counts_for_freshness() {
    let dir = tempfile::tempdir().unwrap();
    let grey = grey_4326(dir.path());
    let xml = style(dir.path(), &[(&grey, r#"srs="epsg:4326""#, "", RASTER)]);
    let source = MapSource::load(&xml).unwrap();
    assert!(source.raster_source(0).is_some());
    assert!(source.layer_data(0).is_none());
    let newest = std::fs::metadata(&grey).unwrap().modified().unwrap();
    assert!(source.modified().unwrap() >= newest);
}

#[test]
fn renderers_on_other_threads_open_their_own_datasets() {
    let dir = tempfile::tempdir().unwrap();
    let grey = grey_4326(dir.path());
    let xml = style(dir.path(), &[(&grey, r#"srs="epsg:4326""#, "", RASTER)]);
    let source = MapSource::load(&xml).unwrap();
    let options = RenderOptions {
        format: render_core::TileFormat::Png32,
        gdal_cache_mb: Some(32),
        ..RenderOptions::default()
    };
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let mut renderer = Renderer::new(source.clone(), options.clone());
            std::thread::spawn(move || {
                let meta = Metatile::containing(TileCoord::new(0, 0, 0).unwrap(), 1).unwrap();
                let image = renderer.draw_metatile(&meta).unwrap();
                let png = renderer
                    .render_tile(TileCoord::new(0, 0, 0).unwrap())
                    .unwrap();
                (px(&image, 96, 100), png.len())
            })
        })
        .collect();
    for worker in workers {
        let (pixel, png_len) = worker.join().unwrap();
        assert_eq!(pixel, [200, 200, 200, 255]);
        assert!(png_len > 0);
    }
    // SAFETY: a plain getter of a process-wide size.
    let cache = unsafe { gdal_sys::GDALGetCacheMax64() };
    assert_eq!(cache, 32 * 1024 * 1024);
}
