//! PostGIS layers queried per metatile, against a throwaway cluster
//! (`pg_cluster.rs`): Mapnik's tokens substituted, one query per layer and
//! metatile (counted), none for a layer with nothing to draw at the scale,
//! a table without `!bbox!`, an SQL error failing the tile with the layer's
//! name, a database restart in the middle of a seed and between two
//! metatiles, and queries run ahead on two connections.
#![allow(clippy::unwrap_used)]

use render_core::{Map, MapSource, RenderOptions, Renderer};
use tile_math::{Metatile, TileCoord};

use crate::golden::Px;
use crate::pg_cluster::PgCluster;

fn exec(conninfo: &str, sql: &str) {
    let db = gdal::Dataset::open_ex(
        format!("PG:{conninfo}"),
        gdal::DatasetOptions {
            open_flags: gdal::GdalOpenFlags::GDAL_OF_VECTOR | gdal::GdalOpenFlags::GDAL_OF_UPDATE,
            ..Default::default()
        },
    )
    .unwrap();
    let result = db.execute_sql(sql, None, gdal::vector::sql::Dialect::DEFAULT);
    if let Err(e) = result {
        panic!("{sql}: {e}");
    }
}

/// `<Parameter>`s for the cluster's conninfo (`key=value` pairs).
fn parameters(conninfo: &str) -> String {
    conninfo
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| format!(r#"<Parameter name="{k}">{v}</Parameter>"#))
        .collect()
}

/// Two tiles of z14 with one road each.
fn tiles() -> (TileCoord, TileCoord) {
    (
        TileCoord::new(14, 9326, 4741).unwrap(),
        TileCoord::new(14, 9330, 4745).unwrap(),
    )
}

fn style(conninfo: &str, table: &str, layer: &str) -> MapSource {
    style_with_extent(
        conninfo,
        table,
        layer,
        "-20037508,-20037508,20037508,20037508",
    )
}

fn style_with_extent(conninfo: &str, table: &str, layer: &str, extent: &str) -> MapSource {
    let xml = format!(
        r##"<Map srs="epsg:3857" background-color="#ffffff">
<Style name="roads">
<Rule>
<MaxScaleDenominator>100000</MaxScaleDenominator>
<Filter>[pw] &gt; 9.55 and [pw] &lt; 9.56 and [ph] = [pw] and [sd] &gt; 34123 and [sd] &lt; 34124</Filter>
<LineSymbolizer stroke="#ff0000" stroke-width="8"/>
</Rule>
<Rule>
<MaxScaleDenominator>100000</MaxScaleDenominator>
<ElseFilter/>
<LineSymbolizer stroke="#0000ff" stroke-width="8"/>
</Rule>
</Style>
<Layer name="{layer}" srs="epsg:3857">
<StyleName>roads</StyleName>
<Datasource>
<Parameter name="type">postgis</Parameter>
{params}
<Parameter name="table">{table}</Parameter>
<Parameter name="extent">{extent}</Parameter>
<Parameter name="estimate_extent">false</Parameter>
<Parameter name="key_field">osm_id</Parameter>
</Datasource>
</Layer>
</Map>"##,
        params = parameters(conninfo),
        table = table
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    );
    let loaded = Map::from_str(&xml, std::path::Path::new("/tmp")).unwrap();
    MapSource::from_loaded(loaded, None).unwrap()
}

/// The straight RGB of a pixel of a rendered tile.
fn rgb(renderer: &mut Renderer, tile: TileCoord, x: u32, y: u32) -> [u8; 3] {
    let image = renderer
        .draw_metatile(&Metatile::containing(tile, 1).unwrap())
        .unwrap();
    let i = ((y * image.width + x) * 4) as usize;
    let p = &image.premultiplied_rgba[i..i + 4];
    [p[0], p[1], p[2]]
}

const RED: [u8; 3] = [255, 0, 0];
const WHITE: [u8; 3] = [255, 255, 255];

#[test]
fn postgis_is_queried_per_metatile_with_mapnik_s_tokens() {
    let cluster = PgCluster::start();
    let db = &cluster.conninfo;
    let (a, b) = tiles();
    let (pa, pb) = (Px::new(a), Px::new(b));
    exec(db, "DROP TABLE IF EXISTS roads");
    exec(
        db,
        "CREATE TABLE roads (osm_id bigint, geom geometry(LineString, 3857))",
    );
    for (id, px) in [(1, &pa), (2, &pb)] {
        let wkt = px.line(&[(0.0, 128.0), (256.0, 128.0)]);
        exec(
            db,
            &format!("INSERT INTO roads VALUES ({id}, ST_GeomFromText('{wkt}', 3857))"),
        );
    }
    let table = "(SELECT geom, osm_id, !scale_denominator! AS sd, !pixel_width! AS pw, \
                 !pixel_height! AS ph FROM roads WHERE geom && !bbox!) AS data";
    let map = style(db, table, "roads");
    let one_connection = RenderOptions {
        postgis_connections: 1,
        ..RenderOptions::default()
    };
    let mut renderer = Renderer::new(map, one_connection);
    // The tokens made the red rule match; the road is drawn.
    assert_eq!(rgb(&mut renderer, a, 128, 128), RED);
    assert_eq!(rgb(&mut renderer, a, 128, 100), WHITE);
    assert_eq!(rgb(&mut renderer, b, 30, 128), RED);
    // One query per metatile, on one connection, from one statement
    // prepared once.
    assert_eq!(
        (
            renderer.postgis().queries,
            renderer.postgis().connects,
            renderer.postgis().prepares
        ),
        (3, 1, 1)
    );
    // At z10 no rule applies: the layer is not queried at all.
    let z10 = TileCoord::new(10, 582, 296).unwrap();
    assert_eq!(rgb(&mut renderer, z10, 128, 128), WHITE);
    assert_eq!(renderer.postgis().queries, 3);

    // A layer `extent` that misses a metatile: no query for it.
    let bounds = pa.0.area();
    let extent = format!(
        "{},{},{},{}",
        bounds.left, bounds.bottom, bounds.right, bounds.top
    );
    let mut bounded = Renderer::new(
        style_with_extent(db, table, "roads", &extent),
        RenderOptions::default(),
    );
    assert_eq!(rgb(&mut bounded, b, 30, 128), WHITE);
    assert_eq!(bounded.postgis().queries, 0);
    assert_eq!(rgb(&mut bounded, a, 128, 128), RED);
    assert_eq!(bounded.postgis().queries, 1);

    // A plain table name: filtered on its geometry column, found by itself.
    let mut plain = Renderer::new(style(db, "roads", "plain"), RenderOptions::default());
    assert_eq!(rgb(&mut plain, a, 128, 128), [0, 0, 255]);
}

#[test]
fn an_sql_error_fails_the_tile_naming_the_layer_and_the_error() {
    let cluster = PgCluster::start();
    let db = &cluster.conninfo;
    exec(db, "DROP TABLE IF EXISTS roads");
    exec(
        db,
        "CREATE TABLE roads (osm_id bigint, geom geometry(LineString, 3857))",
    );
    let table = "(SELECT geom, no_such_column FROM roads WHERE geom && !bbox!) AS data";
    let mut renderer = Renderer::new(style(db, table, "broken-roads"), RenderOptions::default());
    let (a, _) = tiles();
    let e = renderer
        .draw_metatile(&Metatile::containing(a, 1).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("layer `broken-roads`"), "{e}");
    assert!(e.contains("no_such_column"), "{e}");
    // The same worker renders a good layer next.
    let good = "(SELECT geom FROM roads WHERE geom && !bbox!) AS data";
    let mut renderer = Renderer::new(style(db, good, "roads"), RenderOptions::default());
    assert_eq!(rgb(&mut renderer, a, 128, 128), WHITE);
}

#[test]
fn a_database_restart_fails_the_tiles_in_between_and_rendering_resumes() {
    let cluster = PgCluster::start();
    let db = &cluster.conninfo;
    let (a, _) = tiles();
    one_road(db, a);
    let table = "(SELECT geom, !scale_denominator! AS sd, !pixel_width! AS pw, \
                 !pixel_height! AS ph FROM roads WHERE geom && !bbox!) AS data";
    let mut renderer = Renderer::new(style(db, table, "roads"), RenderOptions::default());
    assert_eq!(rgb(&mut renderer, a, 128, 128), RED);
    cluster.stop();
    let meta = Metatile::containing(a, 1).unwrap();
    let started = std::time::Instant::now();
    let e = renderer.draw_metatile(&meta).unwrap_err().to_string();
    assert!(e.contains("layer `roads`") && e.contains("PostGIS"), "{e}");
    // While it is down: connecting fails too (quickly, never a hang).
    let e = renderer.draw_metatile(&meta).unwrap_err().to_string();
    assert!(e.contains("connecting to PostGIS"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    cluster.start_again();
    assert_eq!(rgb(&mut renderer, a, 128, 128), RED);
    assert!(renderer.postgis().connects >= 2, "{:?}", renderer.postgis());
}

#[test]
fn a_map_loads_while_its_database_is_down_and_renders_once_it_is_up() {
    let cluster = PgCluster::start();
    let db = &cluster.conninfo;
    let (a, _) = tiles();
    one_road(db, a);
    cluster.stop();
    let table = "(SELECT geom FROM roads WHERE geom && !bbox!) AS data";
    let map = style(db, table, "roads");
    let said: Vec<String> = map.warnings().iter().map(|w| w.to_string()).collect();
    assert!(
        said.iter()
            .any(|w| w.contains("layer `roads` cannot be reached now")),
        "{said:?}"
    );
    let mut renderer = Renderer::new(map, RenderOptions::default());
    let meta = Metatile::containing(a, 1).unwrap();
    let e = renderer.draw_metatile(&meta).unwrap_err().to_string();
    assert!(
        e.contains("layer `roads`") && e.contains("connecting to PostGIS"),
        "{e}"
    );
    cluster.start_again();
    assert_eq!(rgb(&mut renderer, a, 128, 128), [0, 0, 255]);
}

/// Four layers over one road, each drawing it in its own colour (the last
/// one drawn is on top), each query sleeping a little so that the query
/// threads overlap.
fn four_layer_style(conninfo: &str) -> MapSource {
    let colours = ["#ff0000", "#00ff00", "#0000ff", "#ff00ff"];
    let styles: String = colours
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                r##"<Style name="s{i}"><Rule><LineSymbolizer stroke="{c}" stroke-width="8"/></Rule></Style>"##
            )
        })
        .collect();
    let layers: String = (0..colours.len())
        .map(|i| {
            format!(
                r##"<Layer name="l{i}" srs="epsg:3857"><StyleName>s{i}</StyleName><Datasource>
<Parameter name="type">postgis</Parameter>{params}
<Parameter name="table">(SELECT geom, pg_sleep(0.2) AS slept FROM roads WHERE geom &amp;&amp; !bbox!) AS data</Parameter>
</Datasource></Layer>"##,
                params = parameters(conninfo)
            )
        })
        .collect();
    let xml =
        format!(r##"<Map srs="epsg:3857" background-color="#ffffff">{styles}{layers}</Map>"##);
    let loaded = Map::from_str(&xml, std::path::Path::new("/tmp")).unwrap();
    MapSource::from_loaded(loaded, None).unwrap()
}

/// A `roads` table with one road across the middle of `tile`.
fn one_road(db: &str, tile: TileCoord) {
    exec(db, "DROP TABLE IF EXISTS roads");
    exec(
        db,
        "CREATE TABLE roads (osm_id bigint, geom geometry(LineString, 3857))",
    );
    let wkt = Px::new(tile).line(&[(0.0, 128.0), (256.0, 128.0)]);
    exec(
        db,
        &format!("INSERT INTO roads VALUES (1, ST_GeomFromText('{wkt}', 3857))"),
    );
}

#[test]
fn queries_run_ahead_on_two_connections_and_layers_still_draw_in_order() {
    let cluster = PgCluster::start();
    let db = &cluster.conninfo;
    let (a, _) = tiles();
    one_road(db, a);
    let options = RenderOptions {
        postgis_connections: 2,
        ..RenderOptions::default()
    };
    let mut renderer = Renderer::new(four_layer_style(db), options);
    // The last layer's colour is on top, whichever connection answered it.
    assert_eq!(rgb(&mut renderer, a, 128, 128), [255, 0, 255]);
    let counts = renderer.postgis();
    assert_eq!(counts.queries, 4, "one query per layer");
    // While one connection sleeps in its query, the next query went to the
    // other: both connected.
    assert_eq!(counts.connects, 2, "{counts:?}");
    // One connection: the same picture, one connection.
    let options = RenderOptions {
        postgis_connections: 1,
        ..RenderOptions::default()
    };
    let mut single = Renderer::new(four_layer_style(db), options);
    assert_eq!(rgb(&mut single, a, 128, 128), [255, 0, 255]);
    assert_eq!(
        (single.postgis().queries, single.postgis().connects),
        (4, 1)
    );
}

#[test]
fn a_database_restart_between_two_metatiles_fails_no_tile() {
    let cluster = PgCluster::start();
    let db = &cluster.conninfo;
    let (a, _) = tiles();
    one_road(db, a);
    let table = "(SELECT geom, !scale_denominator! AS sd, !pixel_width! AS pw, \
                 !pixel_height! AS ph FROM roads WHERE geom && !bbox!) AS data";
    let options = RenderOptions {
        postgis_connections: 1,
        ..RenderOptions::default()
    };
    let mut renderer = Renderer::new(style(db, table, "roads"), options);
    assert_eq!(rgb(&mut renderer, a, 128, 128), RED);
    assert_eq!(renderer.postgis().connects, 1);
    cluster.stop();
    cluster.start_again();
    // The old connection is broken: found so on its next query, replaced,
    // and the query asked again.
    assert_eq!(rgb(&mut renderer, a, 128, 128), RED);
    assert_eq!(renderer.postgis().connects, 2);
}
