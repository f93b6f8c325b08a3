use render_core::{Error, Map};

use crate::{load, load_err, one_rule};

fn error(xml: &str) -> Error {
    match Map::from_str(xml, "/styles") {
        Ok(_) => panic!("should not load:\n{xml}"),
        Err(e) => e,
    }
}

#[test]
fn picture_changing_things_are_errors_naming_line_and_element() {
    // (rule body, line of the culprit inside `one_rule`, text expected in the message)
    let cases: &[(&str, u32, &str)] = &[
        (
            "<TextSymbolizer face-name=\"DejaVu Sans Book\">[name]</TextSymbolizer>",
            4,
            "<TextSymbolizer>: text labels",
        ),
        (
            "<ShieldSymbolizer file=\"a.png\">[ref]</ShieldSymbolizer>",
            4,
            "<ShieldSymbolizer>",
        ),
        (
            "<PointSymbolizer/>",
            4,
            "<PointSymbolizer> is not supported",
        ),
        ("<FancySymbolizer/>", 4, "unknown element <FancySymbolizer>"),
        (
            "<LineSymbolizer\n stroke-width=\"[width]\"/>",
            5,
            "expressions in symbolizer properties",
        ),
        (
            "<LineSymbolizer stroke=\"#12345\"/>",
            4,
            "invalid colour `#12345`",
        ),
        (
            "<LineSymbolizer stroke-linecap=\"rounded\"/>",
            4,
            "one of `butt`, `round`, `square`",
        ),
        (
            "<LineSymbolizer stroke-dasharray=\"4,a\"/>",
            4,
            "stroke-dasharray",
        ),
        ("<LineSymbolizer smooth=\"0.5\"/>", 4, "smooth"),
        (
            "<PolygonSymbolizer comp-op=\"multiply\"/>",
            4,
            "comp-op=\"multiply\"",
        ),
        (
            "<PolygonSymbolizer geometry-transform=\"translate(1,1)\"/>",
            4,
            "geometry-transform",
        ),
        (
            "<MarkersSymbolizer file=\"pin.svg\"/>",
            4,
            "only the built-in ellipse",
        ),
        (
            "<MarkersSymbolizer marker-type=\"arrow\"/>",
            4,
            "marker-type",
        ),
        (
            "<MarkersSymbolizer transform=\"scale(2)\"/>",
            4,
            "transform",
        ),
        ("<RasterSymbolizer scaling=\"superb\"/>", 4, "scaling"),
        (
            "<RasterSymbolizer>\n<RasterColorizer/>\n</RasterSymbolizer>",
            5,
            "colorizers",
        ),
        ("<RasterSymbolizer mode=\"multiply\"/>", 4, "mode"),
        (
            "<MinScaleDenominator>lots</MinScaleDenominator>",
            4,
            "non-negative number",
        ),
    ];
    for &(body, line, needle) in cases {
        let msg = load_err(&one_rule(body));
        assert!(
            msg.starts_with(&format!("<string>:{line}:")),
            "{body}: {msg}"
        );
        assert!(msg.contains(needle), "{body}: {msg}");
    }
}

#[test]
fn other_errors() {
    let cases: &[(&str, &str)] = &[
        ("<Style/>", "not a Mapnik map file"),
        ("<Map><Style><Rule/></Style></Map>", "needs a `name`"),
        (
            "<Map><Style name=\"s\" filter-mode=\"some\"/></Map>",
            "`all`, `first`",
        ),
        (
            "<Map><Style name=\"s\" image-filters=\"blur\"/></Map>",
            "image-filters",
        ),
        ("<Map background-image=\"paper.png\"/>", "background-image"),
        ("<Map buffer-size=\"-1\"/>", "non-negative integer"),
        ("<Map><Layer group-by=\"layer\"/></Map>", "group-by"),
        ("<Map><Layer opacity=\"0.5\"/></Map>", "opacity"),
        ("<Map><Layer><Layer/></Layer></Map>", "nested layers"),
        (
            "<Map><Layer><Datasource><Parameter>x</Parameter></Datasource></Layer></Map>",
            "needs a `name`",
        ),
        (
            "<Map xmlns:xi=\"http://www.w3.org/2001/XInclude\"><xi:include href=\"a.xml\"/></Map>",
            "XInclude",
        ),
    ];
    for &(xml, needle) in cases {
        let msg = load_err(xml);
        assert!(msg.contains(needle), "{xml}: {msg}");
    }
}

#[test]
fn filter_errors_point_into_the_expression() {
    let xml = one_rule("<Filter>[highway] = 'primary' and [ref] + 1 > 2</Filter><LineSymbolizer/>");
    let err = error(&xml);
    let Error::Filter {
        location,
        expression,
        source,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(expression, "[highway] = 'primary' and [ref] + 1 > 2");
    assert_eq!(source.column, 33);
    assert_eq!(location.line, 4);
    // `<Filter>` is 8 characters: the `+` is at column 8 + 33 of line 4.
    assert_eq!(location.column, 41);
    assert!(err.to_string().contains("arithmetic"), "{err}");

    // With an entity in the text, the position falls back to the element.
    let xml = one_rule("<Filter>[a] &gt; 1 +</Filter><LineSymbolizer/>");
    let Error::Filter {
        location, source, ..
    } = error(&xml)
    else {
        panic!();
    };
    assert_eq!((location.line, location.column), (4, 1));
    assert_eq!(source.column, 9);
}

#[test]
fn xml_errors_have_positions() {
    let err = error("<Map>\n<Style name=\"s\">\n</Map>");
    let Error::Xml { location, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(location.line, 3);
    let err = error("<!DOCTYPE Map [<!ENTITY layers SYSTEM \"layers.xml\">]>\n<Map>&layers;</Map>");
    assert!(err.to_string().contains("external entities"), "{err}");
}

#[test]
fn file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.xml");
    std::fs::write(&path, one_rule("<TextSymbolizer>[name]</TextSymbolizer>")).unwrap();
    let msg = Map::load(&path).unwrap_err().to_string();
    assert!(
        msg.starts_with(&format!("{}:4:1: <TextSymbolizer>", path.display())),
        "{msg}"
    );
    let missing = dir.path().join("missing.xml");
    let msg = Map::load(&missing).unwrap_err().to_string();
    assert!(
        msg.contains("cannot read style file") && msg.contains("missing.xml"),
        "{msg}"
    );
}

#[test]
fn harmless_things_are_warnings_with_lines() {
    let xml = r#"<?xml version="1.0" encoding="utf-8"?>
<!-- comments are fine and silent -->
<Map srs="epsg:3857" maximum-extent="-20037508,-20037508,20037508,20037508" font-directory="fonts" frobnicate="1">
  <FontSet name="book"><Font face-name="DejaVu Sans Book"/></FontSet>
  <Parameters><Parameter name="bounds">-180,-85,180,85</Parameter></Parameters>
  <Style name="s" comp-op="src-over">
    <Rule>
      <PolygonSymbolizer fill="red" gamma="0.5" clip="false" simplify="0" smooth="0"/>
      <LineSymbolizer stroke-linejoin="miter-revert" rasterizer="fast"/>
      <TextSymbolizer/>
    </Rule>
    <Rule><Filter>[a] = 1 or [b] = 2 and [c] = 3</Filter><PolygonSymbolizer/></Rule>
    <Rule name="nothing"/>
  </Style>
  <Style name="s"><Rule><PolygonSymbolizer/></Rule></Style>
  <Layer name="l" queryable="true">
    <StyleName>s</StyleName>
    <StyleName>missing</StyleName>
  </Layer>
  <Unknown/>
</Map>"#;
    let loaded = load(xml);
    let got: Vec<(u32, &str, &str)> = loaded
        .warnings
        .iter()
        .map(|w| (w.location.line, w.element.as_str(), w.message.as_str()))
        .collect();
    let expect: &[(u32, &str, &str)] = &[
        (3, "Map", "`maximum-extent` ignored"),
        (3, "Map", "`font-directory` ignored"),
        (3, "Map", "unknown attribute `frobnicate`"),
        (4, "FontSet", "ignored"),
        (5, "Parameters", "ignored"),
        (6, "Style", "src-over"),
        (8, "PolygonSymbolizer", "gamma"),
        (8, "PolygonSymbolizer", "`clip` ignored"),
        (8, "PolygonSymbolizer", "simplify"),
        (8, "PolygonSymbolizer", "smooth"),
        (9, "LineSymbolizer", "rasterizer"),
        (10, "TextSymbolizer", "without text"),
        (12, "Filter", "`and` and `or` are mixed"),
        (13, "Rule", "no symbolizers"),
        (15, "Style", "second style named `s`"),
        (16, "Layer", "`queryable` ignored"),
        (16, "Layer", "has no <Datasource>"),
        (20, "Unknown", "unknown element <Unknown>"),
        (16, "Layer", "style `missing`, which is not defined"),
    ];
    assert_eq!(got.len(), expect.len(), "{got:#?}");
    for (g, e) in got.iter().zip(expect) {
        assert_eq!((g.0, g.1), (e.0, e.1), "{g:?}");
        assert!(g.2.contains(e.2), "{g:?} should contain {:?}", e.2);
    }
    // Display names file position and element.
    assert!(
        loaded.warnings[0].to_string().starts_with("<string>:3:"),
        "{}",
        loaded.warnings[0]
    );
    // The map itself still loaded.
    assert_eq!(loaded.map.styles["s"].rules.len(), 3);
}

#[test]
fn internal_entities_and_include_work() {
    let xml = r##"<?xml version="1.0"?>
<!DOCTYPE Map [
  <!ENTITY water "#aad3df">
  <!ENTITY srs "+proj=merc +a=6378137 +b=6378137 +lat_ts=0.0 +lon_0=0.0 +x_0=0.0 +y_0=0 +k=1.0 +units=m +nadgrids=@null +wktext +no_defs +over">
]>
<Map srs="&srs;" background-color="&water;">
  <Include>
    <Style name="s"><Rule><PolygonSymbolizer fill="&water;"/></Rule></Style>
  </Include>
</Map>"##;
    let loaded = load(xml);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(
        loaded.map.background_color,
        Some(render_core::Color::rgb(0xaa, 0xd3, 0xdf))
    );
    assert!(loaded.map.srs.starts_with("+proj=merc"));
    assert!(loaded.map.styles.contains_key("s"));
}
