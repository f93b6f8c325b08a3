use std::path::{Path, PathBuf};

use render_core::{Datasource, Map, OgrLayer};

use crate::{load, load_err};

fn ds(params: &str) -> Datasource {
    let xml = format!(
        r#"<Map><Style name="s"><Rule><PolygonSymbolizer/></Rule></Style>
        <Layer name="l"><StyleName>s</StyleName><Datasource>{params}</Datasource></Layer></Map>"#
    );
    load(&xml).map.layers[0]
        .datasource
        .clone()
        .expect("the layer has a datasource")
}

fn p(name: &str, value: &str) -> String {
    format!(r#"<Parameter name="{name}">{value}</Parameter>"#)
}

#[test]
fn shape_paths_resolve_like_mapnik() {
    let d = ds(&(p("type", "shape") + &p("file", "data/coast")));
    assert_eq!(
        d,
        Datasource::Shape {
            file: PathBuf::from("/styles/data/coast.shp"),
            encoding: None
        }
    );
    let d = ds(&(p("type", "shape") + &p("file", "/abs/coast.SHP") + &p("encoding", "latin1")));
    assert_eq!(
        d,
        Datasource::Shape {
            file: PathBuf::from("/abs/coast.shp"),
            encoding: Some("latin1".into())
        }
    );
    // The `base` parameter is prepended (and resolved itself).
    let d = ds(&(p("type", "shape") + &p("base", "shapes") + &p("file", "coast.shp")));
    assert_eq!(
        d,
        Datasource::Shape {
            file: PathBuf::from("/styles/shapes/coast.shp"),
            encoding: None
        }
    );
}

#[test]
fn paths_from_xml_false_keeps_paths_as_written() {
    let xml = format!(
        r#"<Map paths-from-xml="false"><Style name="s"><Rule><PolygonSymbolizer/></Rule></Style>
        <Layer name="l"><StyleName>s</StyleName><Datasource>{}{}</Datasource></Layer></Map>"#,
        p("type", "shape"),
        p("file", "rel/coast.shp")
    );
    let map = load(&xml).map;
    assert_eq!(
        map.layers[0].datasource,
        Some(Datasource::Shape {
            file: PathBuf::from("rel/coast.shp"),
            encoding: None
        })
    );
}

#[test]
fn map_base_attribute_applies_to_files_not_strings() {
    let dir = tempfile::tempdir().unwrap();
    let xml = format!(
        r#"<Map base="data"><Style name="s"><Rule><PolygonSymbolizer/></Rule></Style>
        <Layer name="l"><StyleName>s</StyleName><Datasource>{}{}</Datasource></Layer></Map>"#,
        p("type", "shape"),
        p("file", "coast.shp")
    );
    let path = dir.path().join("style.xml");
    std::fs::write(&path, &xml).unwrap();
    let loaded = Map::load(&path).unwrap();
    assert_eq!(
        loaded.map.layers[0].datasource,
        Some(Datasource::Shape {
            file: dir.path().join("data/coast.shp"),
            encoding: None
        })
    );
    // From a string the caller's base directory wins, with a warning.
    let loaded = Map::from_str(&xml, Path::new("/given")).unwrap();
    assert_eq!(
        loaded.map.layers[0].datasource,
        Some(Datasource::Shape {
            file: PathBuf::from("/given/coast.shp"),
            encoding: None
        })
    );
    assert!(loaded
        .warnings
        .iter()
        .any(|w| w.message.contains("`base` ignored")));
}

#[test]
fn ogr_layers() {
    let d = ds(&(p("type", "ogr") + &p("file", "x.gpkg") + &p("layer", "roads")));
    assert_eq!(
        d,
        Datasource::Ogr {
            file: "/styles/x.gpkg".into(),
            layer: OgrLayer::Name("roads".into())
        }
    );
    let d = ds(&(p("type", "ogr") + &p("file", "x.geojson") + &p("layer_by_index", "2")));
    assert_eq!(
        d,
        Datasource::Ogr {
            file: "/styles/x.geojson".into(),
            layer: OgrLayer::Index(2)
        }
    );
    let d = ds(&(p("type", "ogr") + &p("file", "x.gpkg") + &p("layer_by_sql", "SELECT * FROM a")));
    assert_eq!(
        d,
        Datasource::Ogr {
            file: "/styles/x.gpkg".into(),
            layer: OgrLayer::Sql("SELECT * FROM a".into())
        }
    );
    // geojson is read through OGR.
    let d = ds(&(p("type", "geojson") + &p("file", "pts.geojson")));
    assert_eq!(
        d,
        Datasource::Ogr {
            file: "/styles/pts.geojson".into(),
            layer: OgrLayer::Index(0)
        }
    );
    let err = load_err(&format!(
        r#"<Map><Layer name="l"><Datasource>{}{}</Datasource></Layer></Map>"#,
        p("type", "ogr"),
        p("file", "x.gpkg")
    ));
    assert!(err.contains("layer_by_index"), "{err}");
}

#[test]
fn gdal_and_postgis() {
    let d =
        ds(&(p("type", "gdal") + &p("file", "dem.tif") + &p("band", "1") + &p("nodata", "-9999")));
    assert_eq!(
        d,
        Datasource::Gdal {
            file: "/styles/dem.tif".into(),
            band: Some(1),
            nodata: Some(-9999.0)
        }
    );
    let d = ds(&(p("type", "gdal") + &p("file", "rgb.tif") + &p("band", "-1")));
    assert_eq!(
        d,
        Datasource::Gdal {
            file: "/styles/rgb.tif".into(),
            band: None,
            nodata: None
        }
    );
    let d = ds(&(p("type", "postgis")
        + &p("host", "localhost")
        + &p("port", "5432")
        + &p("dbname", "gis")
        + &p("user", "osm")
        + &p("password", "se cret")
        + &p("table", "(SELECT way FROM planet_osm_line) AS roads")
        + &p("geometry_field", "way")
        + &p("srid", "3857")
        + &p("extent", "-20037508,-19929239,20037508,19929239")
        + &p("estimate_extent", "false")
        + &p("key_field", "osm_id")
        + &p("max_size", "4")
        + &p("cursor_size", "1000")
        + &p("simplify_geometries", "true")));
    assert_eq!(
        d,
        Datasource::PostGis {
            connection: "PG:dbname=gis host=localhost port=5432 user=osm password='se cret'".into(),
            table: "(SELECT way FROM planet_osm_line) AS roads".into(),
            geometry_field: Some("way".into()),
            srid: Some(3857),
            extent: Some([-20037508.0, -19929239.0, 20037508.0, 19929239.0]),
        }
    );
}

#[test]
fn datasource_templates() {
    let xml = format!(
        r#"<Map>
        <Datasource name="db">{}{}{}</Datasource>
        <Style name="s"><Rule><LineSymbolizer/></Rule></Style>
        <Layer name="roads"><StyleName>s</StyleName>
          <Datasource base="db">{}</Datasource>
        </Layer>
        </Map>"#,
        p("type", "postgis"),
        p("dbname", "gis"),
        p("table", "base_table"),
        p("table", "roads")
    );
    let map = load(&xml).map;
    assert_eq!(
        map.layers[0].datasource,
        Some(Datasource::PostGis {
            connection: "PG:dbname=gis".into(),
            table: "roads".into(),
            geometry_field: None,
            srid: None,
            extent: None,
        })
    );
    let err = load_err(r#"<Map><Layer name="l"><Datasource base="nope"/></Layer></Map>"#);
    assert!(err.contains("template `nope`"), "{err}");
}

#[test]
fn unsupported_datasources_are_errors_with_lines() {
    let xml = "<Map>\n<Layer name=\"l\">\n<Datasource>\n<Parameter name=\"type\">csv</Parameter>\n</Datasource>\n</Layer>\n</Map>";
    let err = load_err(xml);
    assert!(err.starts_with("<string>:4:"), "{err}");
    assert!(err.contains("`csv` is not supported"), "{err}");
    let err = load_err(
        "<Map><Layer><Datasource><Parameter name=\"file\">x</Parameter></Datasource></Layer></Map>",
    );
    assert!(err.contains("no `type`"), "{err}");
    let err = load_err(&format!(
        "<Map><Layer><Datasource>{}</Datasource></Layer></Map>",
        p("type", "shape")
    ));
    assert!(err.contains("needs a `file`"), "{err}");
    let err = load_err(&format!(
        "<Map><Layer><Datasource>{}{}{}</Datasource></Layer></Map>",
        p("type", "shape"),
        p("file", "a"),
        p("row_limit", "10")
    ));
    assert!(err.contains("row_limit"), "{err}");
}

#[test]
fn unknown_parameters_are_warnings() {
    let xml = format!(
        "<Map><Style name=\"s\"><Rule><LineSymbolizer/></Rule></Style><Layer><StyleName>s</StyleName><Datasource>{}{}\n{}</Datasource></Layer></Map>",
        p("type", "shape"),
        p("file", "a"),
        p("indexed", "true")
    );
    let loaded = load(&xml);
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let w = &loaded.warnings[0];
    assert_eq!(w.location.line, 2);
    assert!(w.message.contains("`indexed` ignored"), "{w}");
}
