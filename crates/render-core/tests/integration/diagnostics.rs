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
            "<TextSymbolizer>[name]</TextSymbolizer>",
            4,
            "<TextSymbolizer>: a <TextSymbolizer> needs a `face-name` or a `fontset-name`",
        ),
        (
            "<TextSymbolizer face-name=\"DejaVu Sans Book\"\n placement=\"diagonal\">[name]</TextSymbolizer>",
            5,
            "`placement` must be one of `point`, `line`, `vertex`, `interior`, found `diagonal`",
        ),
        (
            "<TextSymbolizer face-name=\"DejaVu Sans Book\" placement-type=\"simple\"\n  placements=\"N,up\">[name]</TextSymbolizer>",
            5,
            "`placements` must be positions",
        ),
        (
            "<TextSymbolizer face-name=\"DejaVu Sans Book\" size=\"[size]\">[name]</TextSymbolizer>",
            4,
            "expressions in symbolizer properties",
        ),
        (
            "<TextSymbolizer face-name=\"DejaVu Sans Book\" fontset-name=\"book\">[name]</TextSymbolizer>",
            4,
            "cannot both be given",
        ),
        (
            "<TextSymbolizer\n   fontset-name=\"nope\" >[name]</TextSymbolizer>",
            5,
            "fontset `nope` is not defined",
        ),
        (
            "<TextSymbolizer face-name=\"DejaVu Sans Book\" margin=\"2\" minimum-distance=\"3\">[name]</TextSymbolizer>",
            4,
            "`minimum-distance` cannot be used together with `margin`",
        ),
        (
            "<TextSymbolizer face-name=\"DejaVu Sans Book\" placement-type=\"list\">[name]</TextSymbolizer>",
            4,
            "placement-type=\"list\"",
        ),
        (
            "<TextSymbolizer face-name=\"DejaVu Sans Book\">[name]<Format size=\"12\">[ref]</Format></TextSymbolizer>",
            4,
            "<Format> inside <TextSymbolizer> is not supported",
        ),
        (
            "<ShieldSymbolizer file=\"a.png\" face-name=\"DejaVu Sans Book\">[ref]</ShieldSymbolizer>",
            4,
            "<ShieldSymbolizer>: shield image /styles/a.png: cannot read it",
        ),
        (
            "<ShieldSymbolizer file=\"shields/ref.svg\" face-name=\"DejaVu Sans Book\">[ref]</ShieldSymbolizer>",
            4,
            "<ShieldSymbolizer>: shield image /styles/shields/ref.svg: cannot read it",
        ),
        (
            "<ShieldSymbolizer face-name=\"DejaVu Sans Book\">[ref]</ShieldSymbolizer>",
            4,
            "needs a `file`",
        ),
        (
            "<PointSymbolizer file=\"icons/pub.png\"/>",
            4,
            "<PointSymbolizer>: image /styles/icons/pub.png: cannot read it",
        ),
        (
            "<BuildingSymbolizer/>",
            4,
            "<BuildingSymbolizer> is not supported",
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
            "<PolygonSymbolizer\n comp-op=\"minus\"/>",
            5,
            "<PolygonSymbolizer>: `comp-op`: `minus` is not supported (tiny-skia has no such blend mode); \
             supported: clear, src, dst, src-over, dst-over, src-in, dst-in, src-out, dst-out, \
             src-atop, dst-atop, xor, plus, multiply, screen, overlay, darken, lighten, hard-light, \
             difference, exclusion",
        ),
        (
            "<LineSymbolizer comp-op=\"color-dodge\"/>",
            4,
            "`comp-op`: `color-dodge` is not supported (tiny-skia's color-dodge follows the newer W3C formula",
        ),
        (
            "<MarkersSymbolizer comp-op=\"grain-merge\"/>",
            4,
            "`grain-merge` is not supported",
        ),
        (
            "<RasterSymbolizer comp-op=\"hue\"/>",
            4,
            "`hue` is not supported",
        ),
        (
            "<PolygonSymbolizer comp-op=\"darker\"/>",
            4,
            "`darker` is not a compositing mode; supported: clear, src,",
        ),
        (
            "<PolygonSymbolizer comp-op=\"[op]\"/>",
            4,
            "expressions in symbolizer properties",
        ),
        (
            "<PolygonSymbolizer gamma-method=\"srgb\"/>",
            4,
            "`gamma-method` must be one of `power`, `linear`, `none`, `threshold`, `multiply`, found `srgb`",
        ),
        (
            "<LineSymbolizer stroke-gamma-method=\"cubic\"/>",
            4,
            "`stroke-gamma-method` must be one of `power`",
        ),
        ("<PolygonSymbolizer gamma=\"dark\"/>", 4, "`gamma` must be a number"),
        (
            "<TextSymbolizer face-name=\"DejaVu Sans Book\" halo-comp-op=\"contrast\">[name]</TextSymbolizer>",
            4,
            "<TextSymbolizer>: `halo-comp-op`: `contrast` is not supported",
        ),
        (
            "<ShieldSymbolizer file=\"a.png\" face-name=\"DejaVu Sans Book\" comp-op=\"value\">[ref]</ShieldSymbolizer>",
            4,
            "<ShieldSymbolizer>: `comp-op`: `value` is not supported",
        ),
        (
            "<PolygonSymbolizer geometry-transform=\"translate(1,1)\"/>",
            4,
            "geometry-transform",
        ),
        (
            "<MarkersSymbolizer file=\"pin.svg\"/>",
            4,
            "<MarkersSymbolizer>: image /styles/pin.svg: cannot read it",
        ),
        (
            "<MarkersSymbolizer file=\"shape://arrow\"/>",
            4,
            "`shape://ellipse` only",
        ),
        (
            "<LinePatternSymbolizer file=\"http://example.com/a.png\"/>",
            4,
            "only local files",
        ),
        (
            "<PolygonPatternSymbolizer/>",
            4,
            "needs a `file`",
        ),
        (
            "<MarkersSymbolizer marker-type=\"arrow\"/>",
            4,
            "marker-type",
        ),
        (
            "<MarkersSymbolizer transform=\"spin(2)\"/>",
            4,
            "an SVG transform list",
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
            "image filter `blur` is not supported",
        ),
        ("<Map background-image=\"paper.png\"/>", "background-image"),
        ("<Map buffer-size=\"-1\"/>", "non-negative integer"),
        ("<Map><Layer opacity=\"0.5\"/></Map>", "opacity"),
        (
            "<Map><Layer comp-op=\"multiply\"/></Map>",
            "<Layer>: `comp-op=\"multiply\"` is not supported on <Layer> (only src-over)",
        ),
        (
            "<Map><Layer comp-op=\"divide\"/></Map>",
            "`divide` is not supported",
        ),
        (
            "<Map><Style name=\"s\" comp-op=\"soft-light\"/></Map>",
            "<Style>: `comp-op`: `soft-light` is not supported (AGG uses the SVG 1.2 draft formula",
        ),
        ("<Map><Layer><Layer/></Layer></Map>", "nested layers"),
        (
            "<Map><Layer><Datasource><Parameter>x</Parameter></Datasource></Layer></Map>",
            "needs a `name`",
        ),
        (
            "<Map xmlns:xi=\"http://www.w3.org/2001/XInclude\"><xi:fallback/></Map>",
            "only <xi:include> is supported from the XInclude namespace",
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
fn text_errors_point_into_the_expression() {
    // In the element's text: the exact column of the culprit on its line.
    let open = "<TextSymbolizer face-name=\"DejaVu Sans Book\">";
    let xml = one_rule(&format!(
        "{open}[name] + [ref].replace('a','b')</TextSymbolizer>"
    ));
    let err = error(&xml);
    let Error::Style {
        location,
        element,
        message,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(element, "TextSymbolizer");
    assert_eq!(location.line, 4);
    // `.` is the 15th character of the text.
    assert_eq!(location.column as usize, open.chars().count() + 15);
    assert!(message.contains("column 15"), "{message}");
    assert!(message.contains("regular expressions"), "{message}");
    assert!(
        message.contains("`[name] + [ref].replace('a','b')`"),
        "{message}"
    );

    // On a later line of a multi-line text.
    let xml = one_rule(&format!("{open}\n  [name] +\n  'x' * 2</TextSymbolizer>"));
    let Error::Style { location, .. } = error(&xml) else {
        panic!()
    };
    assert_eq!((location.line, location.column), (6, 7));

    // In Mapnik 2's `name` attribute.
    let xml = one_rule("<TextSymbolizer face-name=\"DejaVu Sans Book\" name=\"[name] + 3\"/>");
    let Error::Style {
        location, message, ..
    } = error(&xml)
    else {
        panic!()
    };
    assert_eq!(location.line, 4);
    // `name="` ends at column 51; the `3` is the 10th character of the value.
    assert_eq!(location.column, 51 + 10);
    assert!(message.contains("numbers"), "{message}");

    // Shield files with a broken field.
    let msg = load_err(&one_rule(
        "<ShieldSymbolizer face-name=\"DejaVu Sans Book\" file=\"a_[width.svg\">[ref]</ShieldSymbolizer>",
    ));
    assert!(msg.starts_with("<string>:4:"), "{msg}");
    assert!(msg.contains("closing `]`"), "{msg}");
}

#[test]
fn xml_errors_have_positions() {
    let err = error("<Map>\n<Style name=\"s\">\n</Map>");
    let Error::Xml { location, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(location.line, 3);
    // External entities are read (tests/integration/includes.rs): a missing
    // one is an error at the reference.
    let err = error("<!DOCTYPE Map [<!ENTITY layers SYSTEM \"layers.xml\">]>\n<Map>&layers;</Map>");
    assert!(
        err.to_string()
            .starts_with("<string>:2:6: XML error: entity `&layers;`")
            && err.to_string().contains("cannot read `/styles/layers.xml`"),
        "{err}"
    );
}

#[test]
fn file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.xml");
    std::fs::write(&path, one_rule("<TextSymbolizer>[name]</TextSymbolizer>")).unwrap();
    let msg = Map::load(&path).unwrap_err().to_string();
    assert!(
        msg.starts_with(&format!("{}:4:1: <TextSymbolizer>", path.display()))
            && msg.contains("face-name"),
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
      <TextSymbolizer face-name="DejaVu Sans Book" halo-rasterizer="fast">[name]</TextSymbolizer>
      <TextSymbolizer fontset-name="book" name="[ref]" ignore-placement="true"/>
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
        (3, "Map", "unknown attribute `frobnicate`"),
        (8, "PolygonSymbolizer", "simplify"),
        (8, "PolygonSymbolizer", "smooth"),
        (9, "LineSymbolizer", "rasterizer"),
        (10, "TextSymbolizer", "without text"),
        (11, "TextSymbolizer", "`halo-rasterizer=\"fast\"` ignored"),
        (12, "TextSymbolizer", "`name` is Mapnik 2 syntax"),
        (12, "TextSymbolizer", "`ignore-placement` ignored"),
        (14, "Filter", "`and` and `or` are mixed"),
        (15, "Rule", "no symbolizers"),
        (17, "Style", "second style named `s`"),
        (18, "Layer", "`queryable` ignored"),
        (18, "Layer", "has no <Datasource>"),
        (22, "Unknown", "unknown element <Unknown>"),
        (18, "Layer", "style `missing`, which is not defined"),
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
    assert_eq!(loaded.map.styles["s"].rules[0].symbolizers.len(), 4);
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

#[test]
fn parameters_are_kept_for_servers() {
    // osm-carto's <Parameters>: a server's TileJSON takes them.
    let xml = r#"<Map srs="epsg:3857">
  <Parameters>
    <Parameter name="attribution"><![CDATA[&copy; OpenStreetMap contributors]]></Parameter>
    <Parameter name="center">24.94,60.17,12</Parameter>
    <Parameter name="maxzoom">19</Parameter>
  </Parameters>
</Map>"#;
    let loaded = Map::from_str(xml, "/styles").unwrap();
    let p = &loaded.map.parameters;
    assert_eq!(p["attribution"], "&copy; OpenStreetMap contributors");
    assert_eq!(p["center"], "24.94,60.17,12");
    assert_eq!(p["maxzoom"], "19");
    assert_eq!(p.len(), 3);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}
