//! render-core's one integration-test binary.

// The benchmark style (`tests/data/mapnik_style.xml`, a copy of
// ../shared/bench/mapnik/mapnik_style.xml), parsed values checked.
mod bench_style;
// Which rules and layers apply at which scale, ElseFilter/AlsoFilter and
// filter-mode, checked against tile-math's scale denominators.
mod rules;
// Datasource types, parameters, templates and relative path resolution.
mod datasources;
// Errors and warnings: each names the element and its line.
mod diagnostics;
// Symbolizer attributes and Mapnik's defaults through the XML loader.
mod symbolizers;
// Golden images compared pixel for pixel (tests/images/<case>.png): fills,
// strokes, joins, dashes, markers, the antimeridian, filters, scales,
// opacity, png8/png32, HiDPI, and the benchmark style over a shipped
// extract. `BLESS=1` rewrites the references (never when `CI` is set).
mod golden;
// Image symbols pixel for pixel: SVG markers (paint override, along a
// line), a PNG point icon, line patterns, a seamless polygon pattern; and
// the load errors of bad image files.
mod golden_images;
// Style image filters (scale-hsla) and layer group-by, in numbers.
mod layer_order;
// More goldens, each also checked in numbers: polygon gamma 0.3 against
// 1 (the seam between adjacent polygons), line offsets around corners, and
// comp-op on a symbolizer and on a style.
mod golden_compositing;
// The text engine alone: a Latin and a Japanese line with halos, drawn
// through render_core::text::draw_line and compared with goldens.
mod text;
// Raster layers (type=gdal, RasterSymbolizer): GeoTIFFs written with GDAL,
// warped into tiles, exact pixels for colour, nodata, opacity and order.
mod raster;
// OGR sources read with real GDAL through a style: TopoJSON (arcs, a ring
// across the antimeridian), OSM XML and PBF (tests/data/osm/), and PostGIS
// on a throwaway cluster the test starts (pg_cluster.rs).
mod ogr_sources;
// The throwaway PostgreSQL + PostGIS cluster of the PostGIS tests.
mod pg_cluster;
// PostGIS per metatile: tokens, query counts, an SQL error, a restart.
mod postgis_per_metatile;
// Styles split over files: DOCTYPE entities (external, parameter) and
// XInclude render like one file; loops, entity bombs, paths outside the
// style folder, URLs and missing files are errors naming file and line.
mod includes;

use std::path::Path;

use render_core::{LoadedMap, Map};

/// Loads a style from a string with `/styles` as its base directory.
pub fn load(xml: &str) -> LoadedMap {
    match Map::from_str(xml, Path::new("/styles")) {
        Ok(m) => m,
        Err(e) => panic!("style did not load: {e}"),
    }
}

/// The error message of a style that must not load.
pub fn load_err(xml: &str) -> String {
    match Map::from_str(xml, Path::new("/styles")) {
        Ok(_) => panic!("style loaded but should not have:\n{xml}"),
        Err(e) => e.to_string(),
    }
}

/// A map with one style holding one rule with `rule_body`.
pub fn one_rule(rule_body: &str) -> String {
    format!(
        r#"<Map>
<Style name="s">
<Rule>
{rule_body}
</Rule>
</Style>
</Map>"#
    )
}
