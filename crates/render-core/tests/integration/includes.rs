//! Styles split over several files: DOCTYPE entities (internal, external,
//! parameter) and XInclude, as the classic OSM style `osm.xml` with its
//! `inc/*.xml.inc` uses them. A three-level split renders the same tiles as
//! the same map in one file; bad inputs fail with errors that name the file
//! and line at fault.
// Test helpers too: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use render_core::{Map, MapSource, Renderer, TileFormat};
use tile_math::Metatile;

use crate::golden::{base_tile, check, feat, options, render_tile, write_gpkg, Px};

/// Writes `files` (path relative to `dir`, content) into `dir`.
fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// The error of a style file that must not load.
fn load_file_err(path: &Path) -> String {
    match Map::load(path) {
        Ok(_) => panic!("{} loaded but should not have", path.display()),
        Err(e) => e.to_string(),
    }
}

/// The error of a style string (base folder `base`) that must not load.
fn load_str_err(xml: &str, base: &Path) -> String {
    match Map::from_str(xml, base) {
        Ok(_) => panic!("style loaded but should not have:\n{xml}"),
        Err(e) => e.to_string(),
    }
}

// ---------------------------------------------------------------------------
// The split style of the golden test

/// The top-level file: a parameter entity pulls in the declarations, as in
/// osm.xml.
const MAIN: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE Map [
<!ENTITY % entities SYSTEM "inc/entities.xml.inc">
%entities;
]>
<Map srs="&srs;" background-color="&land;" buffer-size="32">
  &layer-data;
</Map>
"#;

/// Second level: more declarations from a file next to it (relative to
/// `inc/`, the declaring file's folder), an external general entity, and
/// entities whose values hold markup or other entities.
const ENTITIES: &str = r#"<!-- Like osm.xml's inc/entities.xml.inc. -->
<!ENTITY % settings SYSTEM "settings.xml.inc">
%settings;
<!ENTITY layer-data SYSTEM "layer-data.xml.inc">
<!ENTITY srs "&srs3857;">
<!ENTITY maxscale_zoom9 "<MaxScaleDenominator>1500000</MaxScaleDenominator>">
<!ENTITY maxscale_zoom11 "<MaxScaleDenominator>400000</MaxScaleDenominator>">
"#;

/// Third level: plain values (the second `land` loses: first declaration
/// wins).
const SETTINGS: &str = r##"<!ENTITY srs3857 "epsg:3857">
<!ENTITY land "#f4f1ea">
<!ENTITY water "#2e5e8c">
<!ENTITY road-casing '#8a6d3b'>
<!ENTITY road "rgb(250, 210, 120)">
<!ENTITY land "#000000">
"##;

/// Third level: the styles and the layer, using entities of the other
/// files. The rule under `&maxscale_zoom11;` is not active at zoom 10.
const LAYER_DATA: &str = r#"<Style name="water">
  <Rule>
    &maxscale_zoom9;
    <Filter>[kind] = 'water'</Filter>
    <PolygonSymbolizer fill="&water;"/>
  </Rule>
</Style>
<Style name="roads">
  <Rule>
    <Filter>[kind] = 'road'</Filter>
    <LineSymbolizer stroke="&road-casing;" stroke-width="9" stroke-linecap="round"/>
    <LineSymbolizer stroke="&road;" stroke-width="6" stroke-linecap="round"/>
  </Rule>
  <Rule>
    &maxscale_zoom11;
    <LineSymbolizer stroke="red" stroke-width="20"/>
  </Rule>
</Style>
<Layer name="data" srs="&srs;">
  <StyleName>water</StyleName>
  <StyleName>roads</StyleName>
  <Datasource>
    <Parameter name="type">ogr</Parameter>
    <Parameter name="file">data.gpkg</Parameter>
    <Parameter name="layer">data</Parameter>
  </Datasource>
</Layer>
"#;

/// The same map written out in one file.
const ONE_FILE: &str = r##"<?xml version="1.0" encoding="utf-8"?>
<Map srs="epsg:3857" background-color="#f4f1ea" buffer-size="32">
<Style name="water">
  <Rule>
    <MaxScaleDenominator>1500000</MaxScaleDenominator>
    <Filter>[kind] = 'water'</Filter>
    <PolygonSymbolizer fill="#2e5e8c"/>
  </Rule>
</Style>
<Style name="roads">
  <Rule>
    <Filter>[kind] = 'road'</Filter>
    <LineSymbolizer stroke="#8a6d3b" stroke-width="9" stroke-linecap="round"/>
    <LineSymbolizer stroke="rgb(250, 210, 120)" stroke-width="6" stroke-linecap="round"/>
  </Rule>
  <Rule>
    <MaxScaleDenominator>400000</MaxScaleDenominator>
    <LineSymbolizer stroke="red" stroke-width="20"/>
  </Rule>
</Style>
<Layer name="data" srs="epsg:3857">
  <StyleName>water</StyleName>
  <StyleName>roads</StyleName>
  <Datasource>
    <Parameter name="type">ogr</Parameter>
    <Parameter name="file">data.gpkg</Parameter>
    <Parameter name="layer">data</Parameter>
  </Datasource>
</Layer>
</Map>
"##;

/// The same map again, through XInclude: the included document has its own
/// DOCTYPE that reuses the entity files.
const XINCLUDE_MAIN: &str = r##"<?xml version="1.0" encoding="utf-8"?>
<Map srs="epsg:3857" background-color="#f4f1ea" buffer-size="32"
     xmlns:xi="http://www.w3.org/2001/XInclude">
  <xi:include href="inc/data.xml"/>
</Map>
"##;

const XINCLUDE_DATA: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE Include [
<!ENTITY % entities SYSTEM "entities.xml.inc">
%entities;
]>
<Include>
&layer-data;
</Include>
"#;

/// Writes the data and every file of the three variants into `dir`.
fn write_split_style(dir: &Path) {
    let px = Px::new(base_tile());
    write_gpkg(
        dir,
        "data",
        3857,
        &[
            feat(
                "water",
                0,
                px.polygon(&[&[
                    (20.0, 30.0),
                    (150.0, 10.0),
                    (230.0, 120.0),
                    (120.0, 200.0),
                    (30.0, 150.0),
                ]]),
            ),
            feat(
                "road",
                0,
                px.line(&[(-20.0, 230.0), (90.0, 120.0), (180.0, 150.0), (280.0, 40.0)]),
            ),
        ],
    );
    write_files(
        dir,
        &[
            ("style.xml", MAIN),
            ("inc/entities.xml.inc", ENTITIES),
            ("inc/settings.xml.inc", SETTINGS),
            ("inc/layer-data.xml.inc", LAYER_DATA),
            ("one-file.xml", ONE_FILE),
            ("xinclude.xml", XINCLUDE_MAIN),
            ("inc/data.xml", XINCLUDE_DATA),
        ],
    );
}

/// The PNG bytes of the base tile (png32, one-tile metatile).
fn tile_png(source: &MapSource) -> Vec<u8> {
    let mut renderer = Renderer::new(source.clone(), options(TileFormat::Png32));
    let tiles = renderer
        .render_metatile(&Metatile::containing(base_tile(), 1).unwrap())
        .unwrap();
    assert_eq!(tiles.len(), 1);
    tiles[0].png.to_vec()
}

#[test]
fn a_style_split_over_three_files_renders_like_one_file() {
    let dir = tempfile::tempdir().unwrap();
    write_split_style(dir.path());

    let loaded = Map::load(dir.path().join("style.xml")).unwrap();
    // The only warning: the second `land`, in the file that declares it.
    let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    let settings = dir.path().join("inc/settings.xml.inc");
    assert_eq!(
        warnings,
        [format!(
            "{}:6:1: <!ENTITY>: entity `land` is declared again; the first declaration \
             ({}:2:1) is used, as XML says",
            settings.display(),
            settings.display()
        )]
    );
    // Positions inside included files name them.
    let layer_file = dir.path().join("inc/layer-data.xml.inc");
    let map = &loaded.map;
    assert_eq!(map.layers[0].line, 19);
    assert_eq!(map.styles["roads"].line, 8);
    assert_eq!(map.styles["roads"].rules[1].max_scale_denominator, 400000.0);
    assert!(layer_file.exists());
    let split = MapSource::from_loaded(loaded, None).unwrap();

    let image = render_tile(&split, base_tile(), options(TileFormat::Png32));
    // Water, road and background are all there; the red rule of zoom 11+
    // is not.
    let at = |x: usize, y: usize| {
        let i = (y * image.width as usize + x) * 4;
        [image.rgba[i], image.rgba[i + 1], image.rgba[i + 2]]
    };
    assert_eq!(at(120, 60), [0x2e, 0x5e, 0x8c], "water");
    assert_eq!(at(90, 120), [250, 210, 120], "road");
    assert_eq!(at(250, 250), [0xf4, 0xf1, 0xea], "land");
    assert!(!image.rgba.chunks_exact(4).any(|p| p[..3] == [255, 0, 0]));
    check("includes_split_style", &image);

    let one_file = MapSource::load(dir.path().join("one-file.xml")).unwrap();
    let loaded = Map::load(dir.path().join("xinclude.xml")).unwrap();
    // The same one warning, from the entity files the included document
    // reads: nothing about `xmlns:xi` or the replaced element.
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(loaded.warnings[0]
        .to_string()
        .starts_with(&format!("{}:6:1: <!ENTITY>", settings.display())));
    let xinclude = MapSource::from_loaded(loaded, None).unwrap();
    let png = tile_png(&split);
    assert!(
        png == tile_png(&one_file),
        "split style and one file differ"
    );
    assert!(
        png == tile_png(&xinclude),
        "XInclude variant and split style differ"
    );
}

// ---------------------------------------------------------------------------
// Errors

#[test]
fn an_entity_loop_is_refused() {
    let xml = "<!DOCTYPE Map [\n<!ENTITY a \"x&b;\">\n<!ENTITY b \"y&a;\">\n]>\n<Map>&a;</Map>";
    assert_eq!(
        load_str_err(xml, Path::new("/styles")),
        // At the `&a;` inside b's value.
        "<string>:3:14: XML error: entity loop: `&a;` → `&b;` → `&a;`"
    );
}

#[test]
fn billion_laughs_is_refused_at_once() {
    let mut xml = String::from("<!DOCTYPE Map [\n<!ENTITY lol0 \"lol\">\n");
    for level in 1..10 {
        let refs = format!("&lol{};", level - 1).repeat(10);
        xml.push_str(&format!("<!ENTITY lol{level} \"{refs}\">\n"));
    }
    xml.push_str("]>\n<Map background-color=\"&lol9;\">&lol9;</Map>\n");
    let start = Instant::now();
    let msg = load_str_err(&xml, Path::new("/styles"));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    // Refused at the first reference (in `background-color`), before
    // anything is expanded: 10^9 copies of "lol" plus the references' own
    // text.
    assert_eq!(
        msg,
        "<string>:13:24: XML error: entity `&lol9;` expands to 9666666660 bytes, over the \
         limit of 67108864 bytes (64 MiB) for all text from entities and includes"
    );
}

#[test]
fn a_system_entity_outside_the_style_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[(
            "styles/style.xml",
            "<!DOCTYPE Map [\n<!ENTITY passwd SYSTEM \"../../etc/passwd\">\n]>\n<Map>&passwd;</Map>",
        )],
    );
    let path = dir.path().join("styles/style.xml");
    let p = path.display();
    let folder = dir.path().join("styles");
    assert_eq!(
        load_file_err(&path),
        format!(
            "{p}:4:6: XML error: entity `&passwd;` (declared at {p}:2:1): `../../etc/passwd` \
             leads outside the style's folder `{}`; relative paths must stay inside it \
             (absolute paths are allowed)",
            folder.display()
        )
    );
}

#[test]
fn a_url_is_refused() {
    let xml = "<!DOCTYPE Map [\n<!ENTITY layers SYSTEM \"https://example.com/layers.xml\">\n]>\n<Map>\n&layers;</Map>";
    assert_eq!(
        load_str_err(xml, Path::new("/styles")),
        "<string>:5:1: XML error: entity `&layers;` (declared at <string>:2:1): \
         `https://example.com/layers.xml` is a URL; only local files are read (write a path)"
    );
    let xml = "<!DOCTYPE Map [\n<!ENTITY % e SYSTEM \"file:///etc/passwd\">\n%e;\n]>\n<Map/>";
    assert_eq!(
        load_str_err(xml, Path::new("/styles")),
        "<string>:3:1: XML error: entity `%e;` (declared at <string>:2:1): \
         `file:///etc/passwd` is a URL; only local files are read (write a path)"
    );
}

#[test]
fn a_missing_included_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            ("style.xml", MAIN),
            (
                "inc/entities.xml.inc",
                "<!ENTITY srs \"epsg:3857\">\n<!ENTITY land \"white\">\n<!ENTITY layer-data SYSTEM \"layers/missing.xml.inc\">\n",
            ),
        ],
    );
    let d = dir.path().display();
    assert_eq!(
        load_file_err(&dir.path().join("style.xml")),
        // At the reference, in the top-level file.
        format!(
            "{d}/style.xml:7:3: XML error: entity `&layer-data;` (declared at \
             {d}/inc/entities.xml.inc:3:1): cannot read `{d}/inc/layers/missing.xml.inc`: \
             No such file or directory (os error 2)"
        )
    );
}

#[test]
fn an_error_inside_an_included_file_names_that_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write_split_style(dir.path());
    let bad = LAYER_DATA.replace("stroke-width=\"6\"", "stroke-width=\"wide\"");
    write_files(dir.path(), &[("inc/layer-data.xml.inc", &bad)]);
    let d = dir.path().display();
    assert_eq!(
        load_file_err(&dir.path().join("style.xml")),
        format!(
            "{d}/inc/layer-data.xml.inc:12:37: <LineSymbolizer>: `stroke-width` must be a \
             number, found `wide`"
        )
    );
    // Not well-formed XML in an included file.
    let bad = LAYER_DATA.replace("</Rule>\n</Style>\n<Layer", "</Style>\n<Layer");
    write_files(dir.path(), &[("inc/layer-data.xml.inc", &bad)]);
    let expected =
        format!("{d}/inc/layer-data.xml.inc:17:3: XML error: expected 'Rule' tag, not 'Style'");
    assert_eq!(load_file_err(&dir.path().join("style.xml")), expected);
    // The same file reached through XInclude (and an entity of the included
    // document).
    assert_eq!(load_file_err(&dir.path().join("xinclude.xml")), expected);
}

#[test]
fn an_unterminated_doctype_is_refused() {
    let base = Path::new("/styles");
    let xml = "<?xml version=\"1.0\"?>\n<!DOCTYPE Map [\n<!ENTITY a \"b\">\n<Map>&a;</Map>\n";
    assert_eq!(
        load_str_err(xml, base),
        "<string>:4:1: XML error: the DOCTYPE is not closed: `]>` expected before `<Map` (the \
         internal subset opened at 2:15)"
    );
    let xml = "<!DOCTYPE Map [\n<!ENTITY a \"b\">\n";
    assert_eq!(
        load_str_err(xml, base),
        "<string>:1:15: XML error: the DOCTYPE is not closed: the internal subset opened here \
         never ends with `]>`"
    );
}

#[test]
fn positions_point_into_included_files_and_entity_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    write_files(
        dir.path(),
        &[
            (
                "style.xml",
                "<!DOCTYPE Map [\n<!ENTITY rules SYSTEM \"inc/rules.inc\">\n<!ENTITY bad-filter \"[a] = 1 and [b] + 2\">\n]>\n<Map>\n&rules;\n</Map>\n",
            ),
            (
                "inc/rules.inc",
                "<Style name=\"s\">\n  <Rule>\n    <Filter>[highway] = 'primary' and [ref] + 1 > 2</Filter>\n    <LineSymbolizer/>\n  </Rule>\n</Style>\n",
            ),
        ],
    );
    // The exact column of the culprit, in the included file.
    let err = Map::load(dir.path().join("style.xml")).unwrap_err();
    let render_core::Error::Filter { location, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(location.file, Some(dir.path().join("inc/rules.inc")));
    // `    <Filter>` is 12 characters, the `+` the 33rd of the expression.
    assert_eq!((location.line, location.column), (3, 12 + 33));

    // Text from an internal entity: located in its value in the DTD.
    write_files(
        dir.path(),
        &[(
            "inc/rules.inc",
            "<Style name=\"s\">\n  <Rule>\n    <Filter>&bad-filter;</Filter>\n    <LineSymbolizer/>\n  </Rule>\n</Style>\n",
        )],
    );
    let err = Map::load(dir.path().join("style.xml")).unwrap_err();
    let render_core::Error::Filter { location, .. } = &err else {
        panic!("{err:?}");
    };
    // `<!ENTITY bad-filter "` is 21 characters; the `+` is the 17th of the
    // value.
    assert_eq!(
        (location.file.clone(), location.line, location.column),
        (Some(dir.path().join("style.xml")), 3, 21 + 17)
    );

    // A warning about a layer in an included file names that file.
    write_files(
        dir.path(),
        &[(
            "inc/rules.inc",
            "\n\n<Layer name=\"l\"><StyleName>nope</StyleName></Layer>\n",
        )],
    );
    let loaded = Map::load(dir.path().join("style.xml")).unwrap();
    let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        warnings,
        [
            format!(
                "{d}/inc/rules.inc:3:1: <Layer>: layer `l` has no <Datasource> and draws nothing"
            ),
            format!(
                "{d}/inc/rules.inc:3:1: <Layer>: layer `l` names style `nope`, which is not \
                 defined; it draws nothing (as in Mapnik)"
            )
        ]
    );
}

#[test]
fn a_split_style_lists_every_file_it_was_made_from() {
    // A server decides from these files whether its tiles are current: an
    // edit of an included file must count like an edit of the style.
    let dir = tempfile::tempdir().unwrap();
    write_split_style(dir.path());
    let source = MapSource::load(dir.path().join("style.xml")).unwrap();
    let mut names: Vec<String> = source
        .input_files()
        .map(|p| {
            p.strip_prefix(dir.path())
                .unwrap_or(p)
                .display()
                .to_string()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "data.gpkg",
            "inc/entities.xml.inc",
            "inc/layer-data.xml.inc",
            "inc/settings.xml.inc",
            "style.xml"
        ]
    );

    let xinclude = MapSource::load(dir.path().join("xinclude.xml")).unwrap();
    let listed: Vec<_> = xinclude.input_files().collect();
    assert!(
        listed.contains(&dir.path().join("inc/data.xml").as_path()),
        "{listed:?}"
    );
    assert!(
        listed.contains(&dir.path().join("xinclude.xml").as_path()),
        "{listed:?}"
    );
}
