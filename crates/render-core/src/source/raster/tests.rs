//! Warping real GeoTIFFs through GDAL: the tests write small rasters with
//! GDAL itself, then check the warped pixels exactly.

use std::path::Path;

use gdal::raster::Buffer;
use gdal::DriverManager;

use super::*;

/// Writes a Byte GeoTIFF: `bands` hold `w * h` samples each, row by row.
fn write_tif(
    path: &Path,
    epsg: Option<u32>,
    geo: [f64; 6],
    (w, h): (usize, usize),
    bands: &[Vec<u8>],
    nodata: Option<f64>,
) {
    let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
    let mut ds = driver
        .create_with_band_type::<u8, _>(path, w, h, bands.len())
        .unwrap();
    ds.set_geo_transform(&geo).unwrap();
    if let Some(epsg) = epsg {
        ds.set_spatial_ref(&SpatialRef::from_epsg(epsg).unwrap())
            .unwrap();
    }
    for (i, data) in bands.iter().enumerate() {
        let mut band = ds.rasterband(i + 1).unwrap();
        band.set_no_data_value(nodata).unwrap();
        let mut buffer = Buffer::new((w, h), data.clone());
        band.write((0, 0), (w, h), &mut buffer).unwrap();
    }
}

fn gdal_ds(path: &Path, band: Option<u32>, nodata: Option<f64>) -> Datasource {
    Datasource::Gdal {
        file: path.to_path_buf(),
        band,
        nodata,
    }
}

/// 1000 m pixels in EPSG:3857, north-up, top-left corner at (0, 4000).
const GEO_3857: [f64; 6] = [0.0, 1000.0, 0.0, 4000.0, 0.0, -1000.0];

/// The raster's own 4×4 grid.
fn own_grid() -> MercatorBbox {
    MercatorBbox {
        left: 0.0,
        bottom: 0.0,
        right: 4000.0,
        top: 4000.0,
    }
}

fn pixel(rgba: &[u8], w: usize, x: usize, y: usize) -> [u8; 4] {
    let i = (y * w + x) * 4;
    [rgba[i], rgba[i + 1], rgba[i + 2], rgba[i + 3]]
}

#[test]
fn mapnik_scaling_maps_to_gdal_resampling() {
    assert_eq!(gdal_resampling(ScalingMethod::Near), "near");
    assert_eq!(gdal_resampling(ScalingMethod::Bilinear), "bilinear");
    assert_eq!(gdal_resampling(ScalingMethod::Bicubic), "cubic");
    assert_eq!(gdal_resampling(ScalingMethod::Lanczos), "lanczos");
    assert_eq!(gdal_resampling(ScalingMethod::Catrom), "cubic");
    assert_eq!(gdal_resampling(ScalingMethod::Gaussian), "cubicspline");
    assert_eq!(gdal_resampling(ScalingMethod::Hanning), "bilinear");
    assert_eq!(gdal_resampling(ScalingMethod::Sinc), "lanczos");
}

#[test]
fn premultiply_rounds_like_tiny_skia() {
    assert_eq!(premultiply(255, 255), 255);
    assert_eq!(premultiply(200, 0), 0);
    assert_eq!(premultiply(200, 128), 100); // 200 * 128 / 255 = 100.39
    assert_eq!(premultiply(255, 128), 128);
    assert_eq!(premultiply(1, 127), 0); // 0.498
    assert_eq!(premultiply(1, 128), 1); // 0.502
}

#[test]
fn rgba_on_its_own_grid_comes_back_premultiplied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rgba.tif");
    // Row 0: opaque red; row 1: half-transparent white; rows 2-3:
    // transparent (whatever the colour says).
    let colour = |i: usize| match i / 4 {
        0 => [255, 0, 0, 255],
        1 => [255, 255, 255, 128],
        _ => [9, 9, 9, 0],
    };
    let bands: Vec<Vec<u8>> = (0..4)
        .map(|band| (0..16).map(|i| colour(i)[band]).collect())
        .collect();
    write_tif(&path, Some(3857), GEO_3857, (4, 4), &bands, None);
    let source = RasterSource::load(&gdal_ds(&path, None, None), DEFAULT_SRS).unwrap();
    assert!(
        !source.uses_layer_srs(),
        "the file's 3857 wins over the default"
    );
    let layer = source.open().unwrap();
    let rgba = layer
        .warp(&own_grid(), 4, 4, ScalingMethod::Near)
        .unwrap()
        .unwrap();
    for x in 0..4 {
        assert_eq!(pixel(&rgba, 4, x, 0), [255, 0, 0, 255]);
        assert_eq!(pixel(&rgba, 4, x, 1), [128, 128, 128, 128]);
        assert_eq!(pixel(&rgba, 4, x, 2), [0, 0, 0, 0]);
        assert_eq!(pixel(&rgba, 4, x, 3), [0, 0, 0, 0]);
    }
}

#[test]
fn grey_with_nodata_and_the_area_around_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grey.tif");
    // Columns 0-1: 60, column 2: 0 (nodata), column 3: 240.
    let data: Vec<u8> = (0..16).map(|i| [60, 60, 0, 240][i % 4]).collect();
    write_tif(&path, Some(3857), GEO_3857, (4, 4), &[data], Some(0.0));
    let source = RasterSource::load(&gdal_ds(&path, None, None), DEFAULT_SRS).unwrap();
    let layer = source.open().unwrap();
    // Twice the raster's area, 1000 m pixels: the raster is the top-left
    // quarter... of an 8×8 image whose rest is outside the data.
    let area = MercatorBbox {
        left: 0.0,
        bottom: -4000.0,
        right: 8000.0,
        top: 4000.0,
    };
    let rgba = layer
        .warp(&area, 8, 8, ScalingMethod::Near)
        .unwrap()
        .unwrap();
    for y in 0..4 {
        assert_eq!(pixel(&rgba, 8, 0, y), [60, 60, 60, 255]);
        assert_eq!(pixel(&rgba, 8, 1, y), [60, 60, 60, 255]);
        assert_eq!(pixel(&rgba, 8, 2, y), [0, 0, 0, 0], "nodata");
        assert_eq!(pixel(&rgba, 8, 3, y), [240, 240, 240, 255]);
        for x in 4..8 {
            assert_eq!(pixel(&rgba, 8, x, y), [0, 0, 0, 0], "outside, east");
        }
    }
    for y in 4..8 {
        for x in 0..8 {
            assert_eq!(pixel(&rgba, 8, x, y), [0, 0, 0, 0], "outside, south");
        }
    }
    // Entirely elsewhere: nothing, without warping.
    let far = MercatorBbox {
        left: 1e6,
        bottom: 1e6,
        right: 1.1e6,
        top: 1.1e6,
    };
    assert_eq!(layer.warp(&far, 8, 8, ScalingMethod::Near).unwrap(), None);
}

#[test]
fn nodata_parameter_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grey.tif");
    let data: Vec<u8> = (0..16).map(|i| [60, 60, 0, 240][i % 4]).collect();
    write_tif(&path, Some(3857), GEO_3857, (4, 4), &[data], None);
    let source = RasterSource::load(&gdal_ds(&path, None, Some(60.0)), DEFAULT_SRS).unwrap();
    let rgba = source
        .open()
        .unwrap()
        .warp(&own_grid(), 4, 4, ScalingMethod::Near)
        .unwrap()
        .unwrap();
    assert_eq!(pixel(&rgba, 4, 0, 0), [0, 0, 0, 0]);
    assert_eq!(pixel(&rgba, 4, 2, 0), [0, 0, 0, 255], "0 is data now");
    assert_eq!(pixel(&rgba, 4, 3, 0), [240, 240, 240, 255]);
}

#[test]
fn band_parameter_draws_one_band_as_grey() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rgb.tif");
    let bands = vec![vec![10u8; 16], vec![20u8; 16], vec![30u8; 16]];
    write_tif(&path, Some(3857), GEO_3857, (4, 4), &bands, None);
    let rgb = RasterSource::load(&gdal_ds(&path, None, None), DEFAULT_SRS).unwrap();
    let image = rgb
        .open()
        .unwrap()
        .warp(&own_grid(), 4, 4, ScalingMethod::Near)
        .unwrap()
        .unwrap();
    assert_eq!(pixel(&image, 4, 1, 1), [10, 20, 30, 255]);
    let green = RasterSource::load(&gdal_ds(&path, Some(2), None), DEFAULT_SRS).unwrap();
    let image = green
        .open()
        .unwrap()
        .warp(&own_grid(), 4, 4, ScalingMethod::Near)
        .unwrap()
        .unwrap();
    assert_eq!(pixel(&image, 4, 1, 1), [20, 20, 20, 255]);
}

#[test]
fn layer_srs_is_trusted_unless_it_is_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.tif");
    // No SRS in the file: the layer's srs is all there is.
    write_tif(&path, None, GEO_3857, (4, 4), &[vec![99u8; 16]], None);
    let source = RasterSource::load(&gdal_ds(&path, None, None), "epsg:3857").unwrap();
    assert!(source.uses_layer_srs());
    let b = source.bounds().unwrap();
    assert!((b.left - 0.0).abs() < 1e-6 && (b.top - 4000.0).abs() < 1e-6);
    let rgba = source
        .open()
        .unwrap()
        .warp(&own_grid(), 4, 4, ScalingMethod::Near)
        .unwrap()
        .unwrap();
    assert_eq!(pixel(&rgba, 4, 3, 3), [99, 99, 99, 255]);
    // The default srs and no SRS in the file: the default is used.
    let source = RasterSource::load(&gdal_ds(&path, None, None), DEFAULT_SRS).unwrap();
    assert!(source.uses_layer_srs());
    // An explicit srs beats the file's own.
    let path = dir.path().join("with_srs.tif");
    write_tif(&path, Some(3857), GEO_3857, (4, 4), &[vec![99u8; 16]], None);
    let source = RasterSource::load(&gdal_ds(&path, None, None), "epsg:4326").unwrap();
    assert!(source.uses_layer_srs());
}

#[test]
fn lnglat_footprint_is_projected_and_clamped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("world.tif");
    // The whole world, poles included, in 10° pixels.
    let geo = [-180.0, 10.0, 0.0, 90.0, 0.0, -10.0];
    write_tif(
        &path,
        Some(4326),
        geo,
        (36, 18),
        &[vec![1u8; 36 * 18]],
        None,
    );
    let source = RasterSource::load(&gdal_ds(&path, None, None), DEFAULT_SRS).unwrap();
    let b = source.bounds().unwrap();
    for (got, want) in [
        (b.left, -MAX_MERCATOR),
        (b.right, MAX_MERCATOR),
        (b.bottom, -MAX_MERCATOR),
        (b.top, MAX_MERCATOR),
    ] {
        assert!((got - want).abs() < 1.0, "{b:?}");
    }
}

#[test]
fn load_errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.tif");
    let err = RasterSource::load(&gdal_ds(&missing, None, None), DEFAULT_SRS).unwrap_err();
    assert!(matches!(err, SourceError::MissingFile(ref f) if f == &missing));
    assert!(err.to_string().contains("missing.tif"), "{err}");

    let path = dir.path().join("one.tif");
    write_tif(&path, Some(3857), GEO_3857, (4, 4), &[vec![1u8; 16]], None);
    let err = RasterSource::load(&gdal_ds(&path, Some(2), None), DEFAULT_SRS).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("one.tif") && text.contains("band=2"),
        "{text}"
    );

    let path = dir.path().join("five.tif");
    write_tif(
        &path,
        Some(3857),
        GEO_3857,
        (4, 4),
        &vec![vec![1u8; 16]; 5],
        None,
    );
    let err = RasterSource::load(&gdal_ds(&path, None, None), DEFAULT_SRS).unwrap_err();
    assert!(err.to_string().contains("5 bands"), "{err}");
    assert!(RasterSource::load(&gdal_ds(&path, Some(5), None), DEFAULT_SRS).is_ok());

    let err = RasterSource::load(&gdal_ds(&path, Some(1), None), "+proj=nonsense").unwrap_err();
    assert!(matches!(err, SourceError::BadSrs { .. }), "{err}");

    let text_file = dir.path().join("not_a_raster.tif");
    std::fs::write(&text_file, "hello").unwrap();
    let err = RasterSource::load(&gdal_ds(&text_file, None, None), DEFAULT_SRS).unwrap_err();
    assert!(err.to_string().contains("not_a_raster.tif"), "{err}");
}

#[test]
fn warp_arguments() {
    let source = RasterSource {
        file: "x.tif".into(),
        band: None,
        nodata: Some(-9999.0),
        band_count: 1,
        source_srs: Some("WKT".into()),
        bounds: None,
    };
    let area = MercatorBbox {
        left: -1.5,
        bottom: 2.0,
        right: 3.25,
        top: 4.0,
    };
    let args = source.warp_args(&area, 512, 256, ScalingMethod::Bicubic);
    let joined = args.join(" ");
    for want in [
        "-of MEM",
        "-t_srs EPSG:3857",
        "-r cubic",
        "-dstalpha",
        "-nosrcalpha",
        "-te -1.5 2.0 3.25 4.0",
        "-ts 512 256",
        "-s_srs WKT",
        "-srcnodata -9999.0",
    ] {
        assert!(joined.contains(want), "{want} missing from {joined}");
    }
}

#[test]
fn raster_layer_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<RasterLayer>();
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RasterSource>();
}
