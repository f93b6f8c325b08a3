//! OGR sources beyond GeoPackage/Shapefile/GeoJSON, read with real GDAL
//! through a style: TopoJSON (written by the test), OpenStreetMap XML and
//! PBF (tiny files shipped in `tests/data/osm/`), and PostGIS (a throwaway
//! cluster started by the test, see `pg_cluster.rs`, or `TESSERA_TEST_PG`).
// Test helpers too: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use render_core::{
    Datasource, Expr, GeometryType, MapSource, OgrLayer, RenderOptions, Renderer, Value,
    VectorLayer,
};
use tile_math::{LngLat, MercatorBbox, Metatile, TileCoord, EARTH_CIRCUMFERENCE, MAX_MERCATOR};

// ---------------------------------------------------------------------------
// Helpers

/// A map with a background, one polygon+line style `s` and the given layers
/// (each a `<Layer>` element).
fn map_xml(layers: &str) -> String {
    format!(
        r##"<Map srs="epsg:3857" background-color="#ffffff">
<Style name="s"><Rule><PolygonSymbolizer fill="#204080"/><LineSymbolizer stroke="#000000" stroke-width="1"/></Rule></Style>
{layers}
</Map>"##
    )
}

/// A `<Layer>` named `name` drawing style `s` over `params`.
fn layer_xml(name: &str, srs: &str, params: &[(&str, &str)]) -> String {
    let params: String = params
        .iter()
        .map(|(k, v)| format!(r#"<Parameter name="{k}"><![CDATA[{v}]]></Parameter>"#))
        .collect();
    format!(
        r#"<Layer name="{name}" srs="{srs}"><StyleName>s</StyleName><Datasource>{params}</Datasource></Layer>"#
    )
}

fn source(xml: &str, base: &Path) -> MapSource {
    let loaded = match render_core::Map::from_str(xml, base) {
        Ok(l) => l,
        Err(e) => panic!("style did not load: {e}\n{xml}"),
    };
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    match MapSource::from_loaded(loaded, None) {
        Ok(s) => s,
        Err(e) => panic!("data did not load: {e}\n{xml}"),
    }
}

/// Attribute `name` of feature `i`.
fn attr(layer: &VectorLayer, i: usize, name: &str) -> Value {
    let Some(k) = layer.fields().iter().position(|f| f == name) else {
        panic!("no field {name} in {:?}", layer.fields());
    };
    layer.features()[i].values[k].clone()
}

fn string(s: &str) -> Value {
    Value::String(s.into())
}

/// Whether `filter` (Mapnik syntax) matches feature `i`.
fn matches(layer: &VectorLayer, i: usize, filter: &str) -> bool {
    let everywhere = MercatorBbox::new(-MAX_MERCATOR, -MAX_MERCATOR, MAX_MERCATOR, MAX_MERCATOR);
    let found = layer.query(&everywhere, 1.0);
    let f = found.iter().find(|f| f.position == i && f.x_shift == 0.0);
    Expr::parse(filter).unwrap().eval(f.unwrap())
}

fn mercator(lng: f64, lat: f64) -> [f64; 2] {
    let m = LngLat::new(lng, lat).to_mercator(false).unwrap();
    [m.x, m.y]
}

fn close(a: [f64; 2], b: [f64; 2]) -> bool {
    (a[0] - b[0]).abs() < 1e-3 && (a[1] - b[1]).abs() < 1e-3
}

/// Straight RGBA of pixel (x, y) of an opaque image.
fn pixel(image: &render_core::MetatileImage, x: u32, y: u32) -> [u8; 4] {
    let i = ((y * image.width + x) * 4) as usize;
    image.premultiplied_rgba[i..i + 4].try_into().unwrap()
}

// ---------------------------------------------------------------------------
// TopoJSON

/// Quantized (scale 0.5° × 0.25°, from -180°, -90°), delta-encoded arcs:
/// - `islands` (a GeometryCollection, so a layer of its own):
///   - "Fiji", a ring stored the spherical way: it jumps from 170°E to 170°W
///     and back, as world-atlas stores Fiji and Chukotka;
///   - "West" and "East", two boxes sharing arc 1 (East walks it backwards,
///     `~1` = -2); West has no `pop2`, East has a null one.
/// - `places`: a point (absolute quantized coordinates) and a line.
const TOPOJSON: &str = r#"{"type":"Topology",
 "transform":{"scale":[0.5,0.25],"translate":[-180,-90]},
 "objects":{
  "islands":{"type":"GeometryCollection","geometries":[
    {"type":"Polygon","id":"FJ","properties":{"name":"Fiji","pop":900000,"area":18.3},"arcs":[[0]]},
    {"type":"Polygon","properties":{"name":"West","pop":1},"arcs":[[1,2]]},
    {"type":"Polygon","properties":{"name":"East","pop":2,"area":null},"arcs":[[-2,3]]}
  ]},
  "places":{"type":"GeometryCollection","geometries":[
    {"type":"Point","properties":{"name":"Suva"},"coordinates":[716,288]},
    {"type":"LineString","properties":{"name":"Road"},"arcs":[4]}
  ]}
 },
 "arcs":[
  [[700,320],[-680,0],[0,-80],[680,0],[0,80]],
  [[360,400],[0,-160]],
  [[360,240],[-40,0],[0,160],[40,0]],
  [[360,400],[40,0],[0,-160],[-40,0]],
  [[0,0],[10,10]]
 ]}"#;

#[test]
fn topojson_layers_attributes_and_shared_arcs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.topojson"), TOPOJSON).unwrap();
    let ogr = |layer: &str| {
        layer_xml(
            layer,
            "epsg:4326",
            &[("type", "ogr"), ("file", "tiny.topojson"), ("layer", layer)],
        )
    };
    let xml = map_xml(
        &(ogr("islands")
            + &ogr("places")
            + &layer_xml(
                "geojson",
                "epsg:4326",
                &[("type", "geojson"), ("file", "tiny.topojson")],
            )),
    );
    let map = source(&xml, dir.path());
    let islands = map.layer_data(0).unwrap();
    // GDAL 3.6's TopoJSON driver: one layer per GeometryCollection object,
    // named after it; its fields are `id` plus the union of properties.
    assert_eq!(islands.fields(), ["id", "name", "pop", "area"]);
    assert_eq!(islands.features().len(), 3);
    assert_eq!(attr(islands, 0, "id"), string("FJ"));
    assert_eq!(attr(islands, 0, "name"), string("Fiji"));
    assert_eq!(attr(islands, 0, "pop"), Value::Int(900_000));
    assert_eq!(attr(islands, 0, "area"), Value::Float(18.3));
    // Missing (unset) and null properties are both null, as in Mapnik.
    assert_eq!(attr(islands, 1, "id"), Value::Null);
    assert_eq!(attr(islands, 1, "area"), Value::Null);
    assert_eq!(attr(islands, 2, "area"), Value::Null);
    assert!(matches(islands, 1, "[area] = null and [pop] = 1"));
    assert!(islands
        .features()
        .iter()
        .all(|f| f.kind == GeometryType::Polygon));
    // Arcs decoded (quantized, delta-encoded, one walked backwards).
    let west = &islands.features()[1].geometry.polygons[0][0];
    let expected_west = [(0.0, 10.0), (0.0, -30.0), (-20.0, -30.0), (-20.0, 10.0)];
    for (p, (lng, lat)) in west.iter().zip(expected_west) {
        assert!(close(*p, mercator(lng, lat)), "{west:?}");
    }
    let east = &islands.features()[2].geometry.polygons[0][0];
    assert!(close(east[0], mercator(0.0, -30.0)), "{east:?}");
    assert!(close(east[1], mercator(0.0, 10.0)), "{east:?}");
    assert!(close(east[2], mercator(20.0, 10.0)), "{east:?}");
    // The ring that jumps the antimeridian is made continuous: it runs
    // from 170°E on past +180° (to 190°) instead of across the world.
    let fiji = &islands.features()[0].geometry.polygons[0][0];
    assert_eq!(fiji.len(), 5, "not closed along a pole: {fiji:?}");
    assert!(close(fiji[0], mercator(170.0, -10.0)));
    assert!(
        close(
            fiji[1],
            [mercator(-170.0, -10.0)[0] + EARTH_CIRCUMFERENCE, fiji[0][1]]
        ),
        "{fiji:?}"
    );

    let places = map.layer_data(1).unwrap();
    assert_eq!(places.fields(), ["id", "name"]);
    assert_eq!(places.features()[0].kind, GeometryType::Point);
    assert!(close(
        places.features()[0].geometry.points[0],
        mercator(178.0, -18.0)
    ));
    assert_eq!(places.features()[1].kind, GeometryType::LineString);
    assert_eq!(attr(places, 1, "name"), string("Road"));

    // type=geojson reads OGR layer 0: the first object.
    let geojson = map.layer_data(2).unwrap();
    assert_eq!(geojson.fields(), islands.fields());
    assert_eq!(geojson.features().len(), 3);
}

#[test]
fn topojson_objects_that_are_not_collections_share_a_layer_named_topojson() {
    let dir = tempfile::tempdir().unwrap();
    let topo = r#"{"type":"Topology","transform":{"scale":[0.5,0.25],"translate":[-180,-90]},
     "objects":{"fiji":{"type":"Polygon","properties":{"name":"Fiji"},"arcs":[[0]]},
                "suva":{"type":"Point","properties":{"name":"Suva"},"coordinates":[716,288]}},
     "arcs":[[[700,320],[-680,0],[0,-80],[680,0],[0,80]]]}"#;
    let path = dir.path().join("single.json");
    std::fs::write(&path, topo).unwrap();
    let ds = Datasource::Ogr {
        file: path,
        layer: OgrLayer::Name("TopoJSON".into()),
    };
    let layer = VectorLayer::load(&ds, "epsg:4326").unwrap();
    assert_eq!(layer.features().len(), 2);
    // `id` holds the object's name.
    assert_eq!(attr(&layer, 0, "id"), string("fiji"));
    assert_eq!(attr(&layer, 1, "id"), string("suva"));
    assert_eq!(layer.features()[1].kind, GeometryType::Point);
}

#[test]
fn topojson_antimeridian_ring_paints_no_band_at_z1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.topojson"), TOPOJSON).unwrap();
    let xml = map_xml(&layer_xml(
        "islands",
        "epsg:4326",
        &[
            ("type", "ogr"),
            ("file", "tiny.topojson"),
            ("layer", "islands"),
        ],
    ));
    let map = source(&xml, dir.path());
    let mut renderer = Renderer::new(map, RenderOptions::default());
    // The whole world at zoom 1: 512 × 512 pixels.
    let meta = Metatile::containing(TileCoord::new(1, 0, 0).unwrap(), 8).unwrap();
    let image = renderer.draw_metatile(&meta).unwrap();
    assert_eq!((image.width, image.height), (512, 512));
    let white = [255, 255, 255, 255];
    let fill = [0x20, 0x40, 0x80, 255];
    // Fiji spans 170°E..170°W, 10°S..30°S: at 20°S it is painted at both
    // edges of the world ...
    let y = (256.0 - mercator(0.0, -20.0)[1] / MAX_MERCATOR * 256.0) as u32;
    assert_eq!(pixel(&image, 3, y), fill);
    assert_eq!(pixel(&image, 508, y), fill);
    // ... and nowhere in between, where a band would be (West and East
    // cover 20°W..20°E, pixels 228..284).
    for x in [40, 100, 200, 300, 400, 470] {
        assert_eq!(pixel(&image, x, y), white, "band at x={x}, y={y}");
    }
    assert_eq!(pixel(&image, 240, y), fill, "West is drawn");
    assert_eq!(pixel(&image, 270, y), fill, "East is drawn");
}

// ---------------------------------------------------------------------------
// OpenStreetMap (GDAL's OSM driver)

fn osm_data(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/osm")
        .join(file)
}

/// Loads the `points`, `lines` and `multipolygons` layers of a shipped OSM
/// file through a style and checks what GDAL's OSM driver (default
/// `osmconf.ini`) makes of it.
fn check_osm(file: &str) {
    let path = osm_data(file);
    let osm = |layer: &str| {
        layer_xml(
            layer,
            "epsg:4326",
            &[
                ("type", "ogr"),
                ("file", path.to_str().unwrap()),
                ("layer", layer),
            ],
        )
    };
    let xml = map_xml(&(osm("points") + &osm("lines") + &osm("multipolygons")));
    let map = source(&xml, Path::new("/"));

    let points = map.layer_data(0).unwrap();
    assert_eq!(points.features().len(), 1, "only tagged nodes");
    assert_eq!(attr(points, 0, "osm_id"), string("20"));
    assert_eq!(attr(points, 0, "name"), string("Kahvila"));
    assert_eq!(
        attr(points, 0, "other_tags"),
        string(r#""amenity"=>"cafe""#)
    );
    assert!(close(
        points.features()[0].geometry.points[0],
        mercator(24.941, 60.1705)
    ));

    let lines = map.layer_data(1).unwrap();
    assert_eq!(lines.features().len(), 1, "closed ways are areas");
    assert_eq!(attr(lines, 0, "osm_id"), string("100"));
    assert_eq!(attr(lines, 0, "highway"), string("residential"));
    assert_eq!(attr(lines, 0, "name"), string("Testikatu"));
    assert_eq!(attr(lines, 0, "z_order"), Value::Int(3));
    assert_eq!(attr(lines, 0, "other_tags"), string(r#""maxspeed"=>"30""#));
    // Tags the way does not have are null, not "".
    assert_eq!(attr(lines, 0, "waterway"), Value::Null);
    assert!(matches(
        lines,
        0,
        "[highway] = 'residential' and [railway] = null"
    ));
    assert_eq!(lines.features()[0].kind, GeometryType::LineString);
    let line = &lines.features()[0].geometry.lines[0];
    let expected = [(24.94, 60.17), (24.942, 60.171), (24.944, 60.172)];
    assert_eq!(line.len(), 3);
    for (p, (lng, lat)) in line.iter().zip(expected) {
        assert!(close(*p, mercator(lng, lat)), "{line:?}");
    }

    let areas = map.layer_data(2).unwrap();
    assert_eq!(areas.features().len(), 2);
    // GDAL emits the relation first, then the closed way.
    let park = (0..2)
        .find(|&i| attr(areas, i, "osm_id") == string("400"))
        .unwrap();
    let building = 1 - park;
    assert_eq!(attr(areas, park, "leisure"), string("park"));
    assert_eq!(attr(areas, park, "name"), string("Puisto"));
    assert_eq!(attr(areas, park, "type"), string("multipolygon"));
    assert_eq!(attr(areas, park, "osm_way_id"), Value::Null);
    let rings = &areas.features()[park].geometry.polygons;
    assert_eq!(rings.len(), 1);
    assert_eq!(rings[0].len(), 2, "outer and inner ring");
    assert!(close(rings[0][1][0], mercator(24.931, 60.1735)));

    assert_eq!(attr(areas, building, "osm_way_id"), string("200"));
    assert_eq!(attr(areas, building, "osm_id"), Value::Null);
    assert_eq!(attr(areas, building, "building"), string("yes"));
    assert_eq!(
        attr(areas, building, "other_tags"),
        string(r#""building:levels"=>"3""#)
    );
    assert!(matches(
        areas,
        building,
        "[building] = 'yes' and [leisure] = null"
    ));
    assert!(matches(
        areas,
        building,
        "[mapnik::geometry_type] = polygon"
    ));
    let ring = &areas.features()[building].geometry.polygons[0][0];
    assert_eq!(ring.len(), 5);
    assert!(close(ring[2], mercator(24.946, 60.1695)));
}

#[test]
fn osm_xml_points_lines_and_multipolygons() {
    check_osm("tiny.osm");
}

#[test]
fn osm_pbf_points_lines_and_multipolygons() {
    check_osm("tiny.osm.pbf");
}

#[test]
fn osm_pbf_and_xml_hold_the_same_features() {
    for layer in ["points", "lines", "multipolygons"] {
        let load = |file: &str| {
            let ds = Datasource::Ogr {
                file: osm_data(file),
                layer: OgrLayer::Name(layer.into()),
            };
            VectorLayer::load(&ds, "epsg:4326").unwrap()
        };
        let (xml, pbf) = (load("tiny.osm"), load("tiny.osm.pbf"));
        assert_eq!(xml.fields(), pbf.fields(), "{layer}");
        assert_eq!(xml.features().len(), pbf.features().len(), "{layer}");
        for (a, b) in xml.features().iter().zip(pbf.features()) {
            assert_eq!(a.values, b.values, "{layer}: regenerate tiny.osm.pbf?");
            // PBF stores 1e-7° integers: equal to well under a millimetre.
            let coords = |g: &render_core::source::Geometry| -> Vec<[f64; 2]> {
                let mut all = g.points.clone();
                all.extend(g.lines.iter().flatten());
                all.extend(g.polygons.iter().flatten().flatten());
                all
            };
            let (ca, cb) = (coords(&a.geometry), coords(&b.geometry));
            assert_eq!(ca.len(), cb.len(), "{layer}");
            assert_eq!(a.geometry.polygons.len(), b.geometry.polygons.len());
            assert!(ca.iter().zip(&cb).all(|(p, q)| close(*p, *q)), "{layer}");
        }
    }
}

// ---------------------------------------------------------------------------
// PostGIS (only with TESSERA_TEST_PG)

/// The libpq conninfo in `TESSERA_TEST_PG` as `key=value` pairs; values
/// may be single-quoted.
fn conninfo_pairs(conninfo: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut chars = conninfo.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let key: String =
            std::iter::from_fn(|| chars.next_if(|&c| c != '=' && !c.is_whitespace())).collect();
        if key.is_empty() {
            break;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        assert_eq!(chars.next(), Some('='), "bad conninfo {conninfo:?}");
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())));
        }
        pairs.push((key, value));
    }
    pairs
}

#[test]
fn conninfo_is_split_into_style_parameters() {
    assert_eq!(
        conninfo_pairs("dbname=gis host=/tmp/x  port = 5432 password='a b\\'c'"),
        [
            ("dbname".into(), "gis".into()),
            ("host".into(), "/tmp/x".into()),
            ("port".into(), "5432".into()),
            ("password".into(), "a b'c".into()),
        ]
    );
}

/// Runs SQL on the test database through GDAL's PG driver.
fn pg_exec(dataset: &gdal::Dataset, sql: &str) {
    if let Err(e) = dataset.execute_sql(sql, None, gdal::vector::sql::Dialect::DEFAULT) {
        panic!("{sql}: {e}");
    }
}

#[test]
fn postgis_tables_and_subqueries() {
    // A throwaway cluster (or TESSERA_TEST_PG's database), stopped at the end.
    let cluster = crate::pg_cluster::PgCluster::start();
    let conninfo = cluster.conninfo.clone();
    let db = gdal::Dataset::open_ex(
        format!("PG:{conninfo}"),
        gdal::DatasetOptions {
            open_flags: gdal::GdalOpenFlags::GDAL_OF_VECTOR | gdal::GdalOpenFlags::GDAL_OF_UPDATE,
            ..Default::default()
        },
    )
    .unwrap();
    let table = format!("tessera_test_{}", std::process::id());
    pg_exec(&db, &format!("DROP TABLE IF EXISTS {table}"));
    pg_exec(
        &db,
        &format!(
            "CREATE TABLE {table} (id serial PRIMARY KEY, name text, rank integer, \
             height double precision, tags text[], \
             geom geometry(Geometry, 4326), centre geometry(Point, 3857))"
        ),
    );
    pg_exec(
        &db,
        &format!(
            "INSERT INTO {table} (name, rank, height, tags, geom, centre) VALUES \
             ('helsinki', 1, 26.5, '{{a,b}}', 'SRID=4326;POINT(24.94 60.17)', 'SRID=3857;POINT(100 200)'), \
             ('street', 2, NULL, NULL, 'SRID=4326;LINESTRING(0 0, 10 0)', NULL), \
             (NULL, 3, 1.0, NULL, 'SRID=4326;POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))', 'SRID=3857;POINT(300 400)'), \
             ('arc', 4, NULL, NULL, 'SRID=4326;CIRCULARSTRING(0 0, 1 1, 2 0)', NULL), \
             ('nowhere', 5, NULL, NULL, NULL, NULL)"
        ),
    );
    let mut params: Vec<(String, String)> = conninfo_pairs(&conninfo)
        .into_iter()
        .filter(|(k, _)| ["host", "port", "dbname", "user", "password"].contains(&k.as_str()))
        .collect();
    params.insert(0, ("type".into(), "postgis".into()));
    let layer = |name: &str, srs: &str, extra: &[(&str, &str)]| {
        let mut all: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        all.extend_from_slice(extra);
        layer_xml(name, srs, &all)
    };
    let by_bbox = format!(
        "(SELECT id, name, rank, geom FROM {table} WHERE geom && !bbox! AND rank >= 2) AS t"
    );
    let by_intersects = format!(
        "(SELECT id, name, geom FROM {table} WHERE ST_Intersects(geom, !bbox!) \
         AND !scale_denominator! >= 0 AND ST_Area(geom) > !pixel_width! * !pixel_height!) AS t"
    );
    let xml = map_xml(
        &(layer(
            "table",
            "epsg:4326",
            &[("table", &table), ("geometry_field", "geom")],
        ) + &layer("subquery", "epsg:4326", &[("table", &by_bbox)])
            + &layer(
                "intersects",
                "+proj=longlat +datum=WGS84 +no_defs",
                &[("table", &by_intersects)],
            )
            + &layer(
                "centre",
                "epsg:3857",
                &[("table", &table), ("geometry_field", "centre")],
            )
            + &layer(
                "schema",
                "epsg:4326",
                &[
                    ("table", &format!("public.{table}")),
                    ("geometry_field", "geom"),
                    ("srid", "4326"),
                ],
            )),
    );
    let loaded = source(&xml, Path::new("/"));
    // PostGIS layers are read per metatile: here one query covering the
    // whole world, with tiny pixels.
    let world_query = |i: usize| {
        let pg = loaded.postgis_layer(i).unwrap();
        let area = render_core::source::QueryArea {
            bbox: tile_math::MercatorBbox::new(
                -tile_math::MAX_MERCATOR,
                -tile_math::MAX_MERCATOR,
                tile_math::MAX_MERCATOR,
                tile_math::MAX_MERCATOR,
            ),
            scale_denominator: 1000.0,
            pixel_size: (1e-6, 1e-6),
        };
        render_core::source::PostgisConnections::default()
            .query(pg, &area)
            .unwrap()
    };
    let result = std::panic::catch_unwind(|| {
        // A plain table: every row with a geometry, attributes typed.
        let t = &world_query(0);
        // The row without geometry is skipped, and so is the circular
        // string: per metatile, PostGIS geometry is read as EWKB, and
        // curves are not drawn (Mapnik's WKB reader has no curves either).
        assert_eq!(t.features().len(), 3);
        assert_eq!(attr(t, 0, "name"), string("helsinki"));
        assert_eq!(attr(t, 0, "rank"), Value::Int(1));
        assert_eq!(attr(t, 0, "height"), Value::Float(26.5));
        assert_eq!(
            attr(t, 0, "tags"),
            Value::Null,
            "arrays are null, as in Mapnik"
        );
        assert_eq!(attr(t, 1, "height"), Value::Null);
        assert_eq!(attr(t, 2, "name"), Value::Null);
        assert!(close(
            t.features()[0].geometry.points[0],
            mercator(24.94, 60.17)
        ));
        assert_eq!(t.features()[1].kind, GeometryType::LineString);
        assert_eq!(t.features()[2].kind, GeometryType::Polygon);
        // A subquery with `geom && !bbox!`.
        let sub = &world_query(1);
        assert_eq!(sub.fields(), ["id", "name", "rank"]);
        let names: Vec<Value> = (0..sub.features().len())
            .map(|i| attr(sub, i, "name"))
            .collect();
        assert_eq!(names, [string("street"), Value::Null]);
        // ST_Intersects needs `!bbox!` in the table's SRID (here from the
        // layer's PROJ srs), and the other tokens are filled in.
        let inter = &world_query(2);
        assert_eq!(inter.features().len(), 1, "only the polygon has an area");
        assert_eq!(inter.features()[0].kind, GeometryType::Polygon);
        // `geometry_field` picks the second geometry column.
        let centre = &world_query(3);
        assert_eq!(centre.features().len(), 2);
        assert_eq!(centre.features()[0].geometry.points[0], [100.0, 200.0]);
        assert_eq!(centre.features()[1].geometry.points[0], [300.0, 400.0]);
        // A schema-qualified table name.
        assert_eq!(world_query(4).features().len(), 3);
        // A query that fails when its rows are read is an error, not an
        // empty layer.
        let postgis = |table: String, geometry_field: Option<&str>| Datasource::PostGis {
            connection: format!("PG:{conninfo}"),
            table,
            geometry_field: geometry_field.map(str::to_owned),
            srid: None,
            extent: None,
        };
        let bad = postgis(
            format!(
                "(SELECT geom FROM {table} WHERE ST_Intersects(geom, \
                 ST_MakeEnvelope(0, 0, 1, 1, 3857))) AS t"
            ),
            None,
        );
        let err = VectorLayer::load(&bad, "epsg:4326")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mixed SRID"), "{err}");
        let err = VectorLayer::load(&postgis(table.clone(), Some("nope")), "epsg:4326")
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope") && err.contains("centre"), "{err}");
    });
    pg_exec(&db, &format!("DROP TABLE {table}"));
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
