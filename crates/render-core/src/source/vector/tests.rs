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

/// Runs the loader's geometry walk on WKT (no file needed).
fn walk(wkt: &str) -> (Geometry, GeometryType) {
    let g = GdalGeometry::from_wkt(wkt).unwrap();
    let mut out = Geometry::default();
    let kind = collect_geometry(&g, &mut out);
    (out, kind)
}

#[test]
fn z_and_m_are_dropped() {
    let (g, kind) = walk("POINT Z (1 2 3)");
    assert_eq!((g.points, kind), (vec![[1.0, 2.0]], GeometryType::Point));
    let (g, kind) = walk("LINESTRING ZM (0 0 5 7, 1 1 6 8)");
    assert_eq!(
        (g.lines, kind),
        (vec![vec![[0.0, 0.0], [1.0, 1.0]]], GeometryType::LineString)
    );
    let (g, kind) = walk("MULTIPOLYGON M (((0 0 1, 1 0 1, 1 1 1, 0 0 1)))");
    assert_eq!(kind, GeometryType::Polygon);
    assert_eq!(g.polygons[0][0][2], [1.0, 1.0]);
}

#[test]
fn curves_are_approximated_by_segments() {
    // A half circle of radius 1 around (1, 0).
    let (g, kind) = walk("CIRCULARSTRING (0 0, 1 1, 2 0)");
    assert_eq!(kind, GeometryType::LineString);
    let line = &g.lines[0];
    assert!(line.len() > 10, "{line:?}");
    assert!(line
        .iter()
        .all(|p| ((p[0] - 1.0).hypot(p[1]) - 1.0).abs() < 1e-9));
    assert_eq!((line[0], line[line.len() - 1]), ([0.0, 0.0], [2.0, 0.0]));
    let (g, kind) = walk("COMPOUNDCURVE ((-1 0, 0 0), CIRCULARSTRING (0 0, 1 1, 2 0))");
    assert_eq!(kind, GeometryType::LineString);
    assert_eq!(g.lines.len(), 1);
    assert_eq!(g.lines[0][0], [-1.0, 0.0]);
    let (g, kind) = walk(
        "CURVEPOLYGON (CIRCULARSTRING (0 0, 2 0, 0 0), (0.5 -0.1, 0.6 -0.1, 0.6 0.1, 0.5 -0.1))",
    );
    assert_eq!(kind, GeometryType::Polygon);
    assert_eq!(g.polygons[0].len(), 2, "exterior and hole");
    assert!(g.polygons[0][0].len() > 10);
    let (g, kind) = walk("MULTICURVE ((0 0, 1 0), CIRCULARSTRING (0 0, 1 1, 2 0))");
    assert_eq!((g.lines.len(), kind), (2, GeometryType::LineString));
    let (g, kind) = walk(
        "MULTISURFACE (CURVEPOLYGON (CIRCULARSTRING (0 0, 2 0, 0 0)), ((5 5, 6 5, 6 6, 5 5)))",
    );
    assert_eq!((g.polygons.len(), kind), (2, GeometryType::Polygon));
    let (g, kind) = walk("GEOMETRYCOLLECTION (POINT (0 0), CIRCULARSTRING (0 0, 1 1, 2 0))");
    assert_eq!(kind, GeometryType::Collection);
    assert_eq!((g.points.len(), g.lines.len()), (1, 1));
}

#[test]
fn triangles_tins_and_polyhedral_surfaces_are_polygons() {
    let (g, kind) = walk("TRIANGLE ((0 0, 1 0, 0 1, 0 0))");
    assert_eq!((g.polygons.len(), kind), (1, GeometryType::Polygon));
    let (g, kind) = walk("TIN Z (((0 0 0, 1 0 0, 0 1 0, 0 0 0)), ((1 0 0, 1 1 0, 0 1 0, 1 0 0)))");
    assert_eq!((g.polygons.len(), kind), (2, GeometryType::Polygon));
    let (g, kind) = walk("POLYHEDRALSURFACE (((0 0, 1 0, 1 1, 0 0)))");
    assert_eq!((g.polygons.len(), kind), (1, GeometryType::Polygon));
}

#[test]
fn curves_and_3d_geometry_read_from_a_geopackage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("things.gpkg");
    write_layer(
        &path,
        "GPKG",
        3857,
        &[
            ("arc", 1, "CIRCULARSTRING (0 0, 100 100, 200 0)"),
            ("disc", 2, "CURVEPOLYGON (CIRCULARSTRING (0 0, 200 0, 0 0))"),
            ("tall", 3, "POINT Z (10 20 30)"),
        ],
    );
    let layer = VectorLayer::load(&ogr(&path), "epsg:3857").unwrap();
    let f = layer.features();
    assert_eq!(f.len(), 3, "curves are not dropped");
    assert_eq!(f[0].kind, GeometryType::LineString);
    assert!(f[0].geometry.lines[0].len() > 10);
    assert_eq!(f[1].kind, GeometryType::Polygon);
    assert!(f[1].geometry.polygons[0][0].len() > 10);
    assert_eq!(f[2].geometry.points, vec![[10.0, 20.0]]);
}

#[test]
fn empty_and_missing_geometries_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("things.gpkg");
    write_layer(
        &path,
        "GPKG",
        4326,
        &[
            ("empty point", 1, "POINT EMPTY"),
            ("empty polygon", 2, "POLYGON EMPTY"),
            ("empty multi", 3, "MULTILINESTRING EMPTY"),
            ("kept", 4, "POINT (1 1)"),
        ],
    );
    // A feature without any geometry, written through GDAL.
    {
        let dataset = Dataset::open_ex(
            &path,
            gdal::DatasetOptions {
                open_flags: gdal::GdalOpenFlags::GDAL_OF_UPDATE
                    | gdal::GdalOpenFlags::GDAL_OF_VECTOR,
                ..Default::default()
            },
        )
        .unwrap();
        let layer = dataset.layer_by_name("things").unwrap();
        let defn = gdal::vector::Defn::from_layer(&layer);
        let mut feature = gdal::vector::Feature::new(&defn).unwrap();
        feature.set_field_string(0, "no geometry").unwrap();
        feature.create(&layer).unwrap();
    }
    let layer = VectorLayer::load(&ogr(&path), "epsg:4326").unwrap();
    let names: Vec<&Value> = layer.features().iter().map(|f| &f.values[0]).collect();
    assert_eq!(names, [&Value::String("kept".into())]);
}

#[test]
fn a_missing_layer_names_the_layers_the_file_has() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("things.gpkg");
    write_layer(&path, "GPKG", 4326, &[("a", 1, "POINT (1 1)")]);
    let by_name = Datasource::Ogr {
        file: path.clone(),
        layer: OgrLayer::Name("roads".into()),
    };
    let err = VectorLayer::load(&by_name, "epsg:4326").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} has no layer `roads`; its layers are: things",
            path.display()
        )
    );
    let by_index = Datasource::Ogr {
        file: path.clone(),
        layer: OgrLayer::Index(3),
    };
    let err = VectorLayer::load(&by_index, "epsg:4326").unwrap_err();
    assert!(
        err.to_string()
            .ends_with("has no layer number 3 (counting from 0); its layers are: things"),
        "{err}"
    );
    // Read per metatile (a large file), the same answer.
    let large = super::super::file_tiles::FileLayer::new(&by_name, "epsg:4326").unwrap();
    let area = MercatorBbox {
        left: 0.0,
        bottom: 0.0,
        right: 1000.0,
        top: 1000.0,
    };
    let err = super::super::file_tiles::FileReaders::default()
        .read(&large, &area)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no layer `roads`; its layers are: things"),
        "{err}"
    );
}

#[test]
fn sql_layers_of_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("things.gpkg");
    write_layer(
        &path,
        "GPKG",
        4326,
        &[
            ("a", 1, "POINT (1 1)"),
            ("b", 2, "POINT (2 2)"),
            ("c", 3, "LINESTRING (0 0, 1 1)"),
        ],
    );
    let sql = |sql: &str| Datasource::Ogr {
        file: path.clone(),
        layer: OgrLayer::Sql(sql.into()),
    };
    let layer = VectorLayer::load(
        &sql(
            "SELECT rank * 10 AS score, name, geom FROM things WHERE rank >= 2 ORDER BY rank DESC",
        ),
        "epsg:4326",
    )
    .unwrap();
    assert_eq!(layer.fields(), ["score", "name"]);
    let f = layer.features();
    assert_eq!(f.len(), 2);
    assert_eq!(f[0].values, vec![Value::Int(30), Value::String("c".into())]);
    assert_eq!(f[0].kind, GeometryType::LineString);
    assert_eq!(f[1].kind, GeometryType::Point);
    let err = VectorLayer::load(&sql("SELECT nonsense FROM nowhere"), "epsg:4326").unwrap_err();
    assert!(err.to_string().contains("nowhere"), "{err}");
}

#[test]
fn unset_null_and_list_fields_are_null() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("things.geojson");
    std::fs::write(
        &path,
        r#"{"type":"FeatureCollection","features":[
        {"type":"Feature","properties":{"name":"full","n":5,"x":1.5,"list":[1,2],"day":"2024-05-06"},"geometry":{"type":"Point","coordinates":[1,1]}},
        {"type":"Feature","properties":{"name":null},"geometry":{"type":"Point","coordinates":[2,2]}},
        {"type":"Feature","properties":{},"geometry":null}
        ]}"#,
    )
    .unwrap();
    let layer = VectorLayer::load(
        &Datasource::Ogr {
            file: path,
            layer: OgrLayer::Index(0),
        },
        "epsg:4326",
    )
    .unwrap();
    assert_eq!(layer.fields(), ["name", "n", "x", "list", "day"]);
    let f = layer.features();
    assert_eq!(f.len(), 2, "the feature without geometry is skipped");
    assert_eq!(
        f[0].values,
        vec![
            Value::String("full".into()),
            Value::Int(5),
            Value::Float(1.5),
            // Lists have no Mapnik value (Mapnik's OGR plugin skips them).
            Value::Null,
            Value::String("2024-05-06".into()),
        ]
    );
    // Absent properties are "unset" in OGR, not null: both read as null
    // (the gdal crate alone would give 0, 0.0 and "").
    assert_eq!(f[1].values, vec![Value::Null; 5]);
}

#[test]
fn postgis_tokens_cover_the_world_in_the_data_srid() {
    let t =
        "(SELECT * FROM roads WHERE way && !bbox! AND z(!scale_denominator!) > !pixel_width!) AS r";
    let m = MAX_MERCATOR;
    assert_eq!(
        expand_postgis_tokens(t, None),
        format!(
            "(SELECT * FROM roads WHERE way && ST_MakeEnvelope({}, {}, {m}, {m}, 3857) AND z(0) > 0) AS r",
            -m, -m
        )
    );
    assert!(
        expand_postgis_tokens(t, Some(4326)).contains("ST_MakeEnvelope(-180, -90, 180, 90, 4326)")
    );
    assert!(expand_postgis_tokens(t, Some(32635))
        .contains("ST_MakeEnvelope(-1e15, -1e15, 1e15, 1e15, 32635)"));
    assert!(expand_postgis_tokens(t, Some(900_913)).contains(", 900913)"));
    assert_eq!(srs_epsg("epsg:4326"), Some(4326));
    assert_eq!(srs_epsg("+init=epsg:3857"), Some(3857));
    assert_eq!(srs_epsg(crate::style::DEFAULT_SRS), Some(4326));
    assert_eq!(
        srs_epsg("+proj=merc +a=6378137 +b=6378137 +lat_ts=0 +lon_0=0 +x_0=0 +y_0=0 +k=1 +units=m +nadgrids=@null +wktext +no_defs"),
        Some(3857)
    );
    // GDAL does not name every PROJ string (a UTM zone, for one): such
    // styles need Mapnik's `srid` parameter for `!bbox!`.
    assert_eq!(srs_epsg("epsg:32635"), Some(32635));
    assert_eq!(srs_epsg("+proj=nonsense"), None);
}

#[test]
fn vector_sources_open_with_vector_drivers_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.tif");
    let driver = DriverManager::get_driver_by_name("GTiff").unwrap();
    driver
        .create_with_band_type::<u8, _>(&path, 4, 4, 1)
        .unwrap();
    let err = VectorLayer::load(
        &Datasource::Ogr {
            file: path,
            layer: OgrLayer::Index(0),
        },
        "epsg:4326",
    )
    .unwrap_err();
    assert!(err.to_string().contains("r.tif"), "{err}");
}

#[test]
fn attributes_are_found_by_name_in_short_and_long_field_lists() {
    for count in [3usize, 40] {
        let fields: Vec<String> = (0..count).map(|i| format!("f{i}")).collect();
        let values: Vec<Value> = (0..count as i64).map(Value::Int).collect();
        let feature = Feature {
            geometry: Geometry {
                points: vec![[0.0, 0.0]],
                ..Geometry::default()
            },
            kind: GeometryType::Point,
            values,
        };
        let layer = VectorLayer::from_features(fields, vec![feature]);
        let area = MercatorBbox::new(-1.0, -1.0, 1.0, 1.0);
        let found = layer.query(&area, 1.0);
        let view = &found[0] as &dyn FeatureView;
        let last = format!("f{}", count - 1);
        assert_eq!(view.attribute("f0"), Some(Value::Int(0)), "{count} fields");
        assert_eq!(view.attribute(&last), Some(Value::Int(count as i64 - 1)));
        assert_eq!(view.attribute("nope"), None);
    }
}

#[test]
fn filters_find_attributes_by_number_and_by_name_when_numbered_after_the_layer() {
    use crate::style::filter::Expr;
    // Numbered before the layer is built: found through the key table.
    let before = Expr::parse("[vt_before_a] = 'yes' and [vt_before_b] = 2").unwrap();
    let fields = vec![
        "vt_before_b".to_string(),
        "vt_before_a".into(),
        "vt_late".into(),
    ];
    let layer = VectorLayer::from_features(
        fields,
        vec![Feature {
            geometry: Geometry {
                points: vec![[0.0, 0.0]],
                ..Geometry::default()
            },
            kind: GeometryType::Point,
            values: vec![Value::Int(2), Value::from("yes"), Value::from("late")],
        }],
    );
    let area = MercatorBbox::new(-10.0, -10.0, 10.0, 10.0);
    let found = layer.query(&area, 1.0);
    assert_eq!(found.len(), 1);
    assert!(before.eval(&found[0]));
    let unknown = Expr::parse("[vt_before_missing] = null").unwrap();
    assert!(unknown.eval(&found[0]), "a field the layer lacks is null");
    // Numbered after the layer was built: found by name.
    let late = Expr::parse("[vt_late] = 'late'").unwrap();
    assert!(late.eval(&found[0]));
    let late_missing = Expr::parse("[vt_late_missing] != null").unwrap();
    assert!(!late_missing.eval(&found[0]));
}

#[test]
fn a_layer_read_for_one_query_finds_what_the_indexed_one_finds_in_the_same_order() {
    let w = EARTH_CIRCUMFERENCE / 2.0;
    let point = |x: f64, y: f64| Geometry {
        points: vec![[x, y]],
        ..Geometry::default()
    };
    let geometries = [
        point(100.0, 100.0),
        point(-5000.0, 0.0),
        // Crossing the antimeridian: found on both sides.
        Geometry {
            lines: vec![vec![[w - 1000.0, 0.0], [w + 1000.0, 0.0]]],
            ..Geometry::default()
        },
        point(50.0, 60.0),
        Geometry::default(),
    ];
    let features = || -> Vec<Feature> {
        geometries
            .iter()
            .map(|g| Feature {
                geometry: g.clone(),
                kind: GeometryType::Point,
                values: Vec::new(),
            })
            .collect()
    };
    let indexed = VectorLayer::from_features(Vec::new(), features());
    let once = VectorLayer::from_features_for_one_query(Vec::new(), features());
    let areas = [
        MercatorBbox::new(0.0, 0.0, 200.0, 200.0),
        MercatorBbox::new(-6000.0, -10.0, 200.0, 200.0),
        MercatorBbox::new(w - 500.0, -10.0, w, 10.0),
        MercatorBbox::new(-w, -10.0, -w + 500.0, 10.0),
        MercatorBbox::new(-w, -w, w, w),
    ];
    for area in &areas {
        let key = |found: Vec<Found<'_>>| -> Vec<(usize, i64)> {
            found
                .iter()
                .map(|f| (f.position, f.x_shift.round() as i64))
                .collect()
        };
        let a = key(indexed.query(area, 1.0));
        assert_eq!(a, key(once.query(area, 1.0)), "{area:?}");
        assert!(a.windows(2).all(|p| p[0] <= p[1]), "in source order: {a:?}");
    }
    // The whole world: everything but the empty geometry, the line twice.
    let all: Vec<usize> = once
        .query(&areas[4], 1.0)
        .iter()
        .map(|f| f.position)
        .collect();
    assert_eq!(all, vec![0, 1, 2, 2, 3]);
}
