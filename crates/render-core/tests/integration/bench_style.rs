use std::path::{Path, PathBuf};

use render_core::{Color, Datasource, LineCap, LineJoin, Map, Symbolizer};
use tile_math::scale_denominator;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn line(map: &Map, style: &str) -> render_core::LineSymbolizer {
    let rules = &map.styles[style].rules;
    assert_eq!(rules.len(), 1, "{style}");
    match &rules[0].symbolizers[..] {
        [Symbolizer::Line(l)] => l.clone(),
        other => panic!("{style}: {other:?}"),
    }
}

#[test]
fn copy_loads_with_the_expected_values() {
    let path = data_dir().join("mapnik_style.xml");
    let loaded = Map::load(&path).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let map = loaded.map;

    assert_eq!(map.background_color, Some(Color::rgb(0xaa, 0xd3, 0xdf)));
    assert_eq!(map.srs, "epsg:3857");
    assert_eq!(map.buffer_size, 128);
    assert_eq!(map.base_dir, data_dir());
    assert_eq!(map.styles.len(), 4);

    match &map.styles["countries-fill"].rules[0].symbolizers[..] {
        [Symbolizer::Polygon(p)] => {
            assert_eq!(p.fill, Color::rgb(0xf2, 0xef, 0xe9));
            assert_eq!(p.fill_opacity, 1.0);
        }
        other => panic!("{other:?}"),
    }
    let border = line(&map, "countries-border");
    assert_eq!(border.stroke, Color::rgb(0x88, 0x88, 0x88));
    assert_eq!(border.stroke_width, 0.8);
    assert_eq!(border.stroke_linecap, LineCap::Butt);
    assert_eq!(border.stroke_linejoin, LineJoin::Miter);
    assert_eq!(border.stroke_miterlimit, 4.0);
    let casing = line(&map, "roads-casing");
    assert_eq!(casing.stroke, Color::rgb(0x99, 0x99, 0x99));
    assert_eq!(casing.stroke_width, 2.5);
    assert_eq!(
        (casing.stroke_linecap, casing.stroke_linejoin),
        (LineCap::Round, LineJoin::Round)
    );
    let fill = line(&map, "roads-fill");
    assert_eq!(fill.stroke, Color::WHITE);
    assert_eq!(fill.stroke_width, 1.5);
    assert_eq!(
        (fill.stroke_linecap, fill.stroke_linejoin),
        (LineCap::Round, LineJoin::Round)
    );

    assert_eq!(map.layers.len(), 2);
    let countries = &map.layers[0];
    assert_eq!(countries.name, "countries");
    assert_eq!(countries.srs, "epsg:3857");
    assert_eq!(countries.styles, ["countries-fill", "countries-border"]);
    assert_eq!(
        countries.datasource,
        Some(Datasource::Shape {
            file: data_dir().join("../../data/mapnik-3857/countries-50m.shp"),
            encoding: None,
        })
    );
    let roads = &map.layers[1];
    assert_eq!(roads.name, "roads");
    assert_eq!(roads.max_scale_denominator, 1_000_000.0);
    assert_eq!(roads.min_scale_denominator, 0.0);
    assert_eq!(roads.styles, ["roads-casing", "roads-fill"]);

    // The comment in the file: roads from z10 on, not at z9.
    assert!(!roads.visible(scale_denominator(9, 256, 1.0)));
    assert!(roads.visible(scale_denominator(10, 256, 1.0)));
    assert!(countries.visible(scale_denominator(0, 256, 1.0)));
    let names: Vec<_> = map
        .visible_layers(scale_denominator(12, 256, 1.0))
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names, ["countries", "roads"]);
}

/// The benchmark's original style, beside the checkout (absent on a fresh
/// clone, so the tests that read it are `#[ignore]`d: run them with
/// `cargo test -p render-core --test integration bench_style -- --ignored`).
fn shared_original() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bench/mapnik/mapnik_style.xml")
}

#[test]
#[ignore = "needs ../shared benchmark data"]
fn copy_matches_the_shared_original() {
    let original = shared_original();
    let original_text = std::fs::read_to_string(&original).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (../shared must sit beside the checkout)",
            original.display()
        )
    });
    let copy = std::fs::read_to_string(data_dir().join("mapnik_style.xml")).unwrap();
    let without_note: String = copy
        .lines()
        .filter(|l| {
            !l.contains("COPY of ../shared") && !l.contains("without ../shared); keep it identical")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        without_note.trim_end(),
        original_text.trim_end(),
        "the copy drifted from the original"
    );
}

#[test]
#[ignore = "needs ../shared benchmark data"]
fn shared_original_loads_unchanged() {
    let original = shared_original();
    assert!(
        original.exists(),
        "{} is absent (../shared must sit beside the checkout)",
        original.display()
    );
    let loaded = Map::load(&original).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let map = loaded.map;
    assert_eq!(map.layers.len(), 2);
    // Relative paths resolve against the XML's folder, as load_map() does.
    let Some(Datasource::Shape { file, .. }) = &map.layers[1].datasource else {
        panic!("{:?}", map.layers[1].datasource);
    };
    assert_eq!(
        file,
        &original
            .parent()
            .unwrap()
            .join("../../data/mapnik-3857/osm-helsinki-roads.shp")
    );
    assert!(
        file.exists(),
        "{} should exist next to the shared style",
        file.display()
    );
}
