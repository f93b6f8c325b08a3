//! Loading real vector files through GDAL: the tests write small
//! GeoPackages and Shapefiles with GDAL itself, then load them.

use std::path::Path;

use gdal::vector::{Geometry as GdalGeometry, LayerOptions, OGRFieldType};
use gdal::{DriverManager, Metadata};

use super::*;

/// Writes a layer with a `name` (string) and `rank` (integer) field, one
/// feature per WKT geometry.
fn write_layer(path: &Path, driver: &str, srs_epsg: u32, features: &[(&str, i64, &str)]) {
    let driver = DriverManager::get_driver_by_name(driver).unwrap();
    let mut dataset = driver.create_vector_only(path).unwrap();
    let srs = SpatialRef::from_epsg(srs_epsg).unwrap();
    let layer = dataset
        .create_layer(LayerOptions {
            name: "things",
            srs: Some(&srs),
            ..Default::default()
        })
        .unwrap();
    let name = gdal::vector::FieldDefn::new("name", OGRFieldType::OFTString).unwrap();
    name.add_to_layer(&layer).unwrap();
    let rank = gdal::vector::FieldDefn::new("rank", OGRFieldType::OFTInteger64).unwrap();
    rank.add_to_layer(&layer).unwrap();
    let defn = gdal::vector::Defn::from_layer(&layer);
    for (n, r, wkt) in features {
        let mut feature = gdal::vector::Feature::new(&defn).unwrap();
        feature
            .set_geometry(GdalGeometry::from_wkt(wkt).unwrap())
            .unwrap();
        feature.set_field_string(0, n).unwrap();
        feature.set_field_integer64(1, *r).unwrap();
        feature.create(&layer).unwrap();
    }
    let _ = driver.description();
}

fn ogr(path: &Path) -> Datasource {
    Datasource::Ogr {
        file: path.to_path_buf(),
        layer: OgrLayer::Name("things".into()),
    }
}

#[test]
fn geopackage_in_lnglat_is_reprojected_with_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("things.gpkg");
    write_layer(
        &path,
        "GPKG",
        4326,
        &[
            ("helsinki", 1, "POINT (24.94 60.17)"),
            ("street", 2, "LINESTRING (0 0, 10 0)"),
            ("square", 3, "POLYGON ((0 0, 1 0, 1 1, 0 1, 0 0))"),
        ],
    );
    let layer = VectorLayer::load(&ogr(&path), "epsg:4326").unwrap();
    assert_eq!(layer.fields(), ["name", "rank"]);
    let f = layer.features();
    assert_eq!(f.len(), 3);
    // Longitude first (traditional GIS order), projected to metres.
    let p = f[0].geometry.points[0];
    let expected = LngLat::new(24.94, 60.17).to_mercator(false).unwrap();
    assert!(
        (p[0] - expected.x).abs() < 1e-6 && (p[1] - expected.y).abs() < 1e-6,
        "{p:?}"
    );
    assert_eq!(f[0].kind, GeometryType::Point);
    assert_eq!(f[1].kind, GeometryType::LineString);
    assert_eq!(f[2].kind, GeometryType::Polygon);
    assert_eq!(
        f[1].values,
        vec![Value::String("street".into()), Value::Int(2)]
    );
    assert!((f[1].geometry.lines[0][1][0] - 1_113_194.9).abs() < 1.0);
}

#[test]
fn a_layer_srs_other_than_lnglat_goes_through_gdal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("utm.gpkg");
    // UTM zone 35N: Helsinki's railway station.
    write_layer(
        &path,
        "GPKG",
        32635,
        &[("station", 1, "POINT (385800 6672500)")],
    );
    let layer = VectorLayer::load(&ogr(&path), "epsg:32635").unwrap();
    let p = layer.features()[0].geometry.points[0];
    let back = tile_math::MercatorPoint::new(p[0], p[1])
        .to_lnglat(false)
        .unwrap();
    assert!(
        (back.lng - 24.94).abs() < 0.01 && (back.lat - 60.17).abs() < 0.01,
        "{back:?}"
    );
}

#[test]
fn shapefiles_in_metres_are_read_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roads.shp");
    write_layer(
        &path,
        "ESRI Shapefile",
        3857,
        &[("a", 1, "LINESTRING (100 200, 300 400)")],
    );
    let layer = VectorLayer::load(
        &Datasource::Shape {
            file: path,
            encoding: None,
        },
        "epsg:3857",
    )
    .unwrap();
    assert_eq!(
        layer.features()[0].geometry.lines[0],
        vec![[100.0, 200.0], [300.0, 400.0]]
    );
}

#[test]
fn a_polygon_across_the_antimeridian_is_found_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fiji.gpkg");
    // Stored the spherical way: the ring jumps from 179 to -179.
    write_layer(
        &path,
        "GPKG",
        4326,
        &[(
            "fiji",
            1,
            "POLYGON ((179 -16, -179 -16, -179 -18, 179 -18, 179 -16))",
        )],
    );
    let layer = VectorLayer::load(&ogr(&path), "epsg:4326").unwrap();
    let ring = &layer.features()[0].geometry.polygons[0][0];
    assert!(
        ring.iter().all(|p| p[0] > 0.0),
        "made continuous past +180: {ring:?}"
    );
    let width = ring.iter().map(|p| p[0]).fold(f64::MIN, f64::max)
        - ring.iter().map(|p| p[0]).fold(f64::MAX, f64::min);
    assert!(
        width < 300_000.0,
        "2° wide, not a band around the world: {width}"
    );
    let mpp = 1.0;
    // A query just east of -180 finds the copy shifted one world west.
    let west = MercatorBbox::new(
        -MAX_MERCATOR,
        -2_100_000.0,
        -MAX_MERCATOR + 100_000.0,
        -1_700_000.0,
    );
    let found = layer.query(&west, mpp);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].x_shift, -EARTH_CIRCUMFERENCE);
    let east = MercatorBbox::new(
        MAX_MERCATOR - 100_000.0,
        -2_100_000.0,
        MAX_MERCATOR,
        -1_700_000.0,
    );
    assert_eq!(layer.query(&east, mpp)[0].x_shift, 0.0);
}

#[test]
fn missing_files_and_bad_srs_are_clear_errors() {
    let err = VectorLayer::load(&ogr(Path::new("/nonexistent/x.gpkg")), "epsg:4326").unwrap_err();
    assert!(err.to_string().contains("/nonexistent/x.gpkg"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.gpkg");
    write_layer(&path, "GPKG", 4326, &[("a", 1, "POINT (0 0)")]);
    let err = VectorLayer::load(&ogr(&path), "+proj=nonsense").unwrap_err();
    assert!(err.to_string().contains("nonsense"), "{err}");
    let wrong_layer = Datasource::Ogr {
        file: path,
        layer: OgrLayer::Name("nope".into()),
    };
    let err = VectorLayer::load(&wrong_layer, "epsg:4326").unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn low_zoom_queries_get_simplified_geometry() {
    let wiggly: String = (0..=1000)
        .map(|i| {
            format!(
                "{} {}",
                f64::from(i) * 0.01,
                (f64::from(i) * 0.7).sin() * 0.001
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.gpkg");
    write_layer(
        &path,
        "GPKG",
        4326,
        &[("w", 1, &format!("LINESTRING ({wiggly})"))],
    );
    let layer = VectorLayer::load(&ogr(&path), "epsg:4326").unwrap();
    let everywhere = MercatorBbox::new(-MAX_MERCATOR, -MAX_MERCATOR, MAX_MERCATOR, MAX_MERCATOR);
    let z2 = layer.query(&everywhere, EARTH_CIRCUMFERENCE / 1024.0);
    let z18 = layer.query(&everywhere, EARTH_CIRCUMFERENCE / (256.0 * 262_144.0));
    assert_eq!(z18[0].geometry.coordinate_count(), 1001);
    assert!(
        z2[0].geometry.coordinate_count() < 10,
        "{}",
        z2[0].geometry.coordinate_count()
    );
}
