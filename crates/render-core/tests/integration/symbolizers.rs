// Test helpers: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use render_core::{
    Affine, Color, CompOp, FontSet, GammaMethod, HorizontalAlignment, JustifyAlignment, LineCap,
    LineJoin, LinePatternKind, LineSymbolizer, MarkerMultiPolicy, MarkerPlacement,
    MarkersSymbolizer, PaintOverride, PatternAlignment, PlacementPosition, PointPlacement,
    PointSymbolizer, PolygonPatternSymbolizer, PolygonSymbolizer, RasterSymbolizer, ScalingMethod,
    Symbolizer, TextExpr, TextPart, TextPlacement, TextSymbolizer, TextTransform, Upright,
    VerticalAlignment,
};

use crate::{load, one_rule};

fn symbolizers(body: &str) -> Vec<Symbolizer> {
    let map = load(&one_rule(body)).map;
    map.styles["s"].rules[0].symbolizers.clone()
}

fn only(body: &str) -> Symbolizer {
    let mut s = symbolizers(body);
    assert_eq!(s.len(), 1);
    s.remove(0)
}

#[test]
fn defaults_when_nothing_is_given() {
    let s =
        symbolizers("<PolygonSymbolizer/><LineSymbolizer/><MarkersSymbolizer/><RasterSymbolizer/>");
    assert_eq!(
        s,
        vec![
            Symbolizer::Polygon(PolygonSymbolizer::default()),
            Symbolizer::Line(LineSymbolizer::default()),
            Symbolizer::Markers(MarkersSymbolizer::default()),
            Symbolizer::Raster(RasterSymbolizer::default()),
        ]
    );
    let Symbolizer::Polygon(p) = &s[0] else {
        panic!()
    };
    assert_eq!(p.fill, Color::rgb(128, 128, 128));
    let Symbolizer::Line(l) = &s[1] else { panic!() };
    assert_eq!(
        (l.stroke, l.stroke_width, l.stroke_miterlimit),
        (Color::BLACK, 1.0, 4.0)
    );
    assert_eq!(
        (l.stroke_linecap, l.stroke_linejoin),
        (LineCap::Butt, LineJoin::Miter)
    );
}

#[test]
fn line_attributes() {
    let s = only(
        r#"<LineSymbolizer stroke="rgba(255,0,0,0.5)" stroke-width="2.5" stroke-opacity="0.7"
            stroke-linecap="square" stroke-linejoin="bevel" stroke-miterlimit="10"
            stroke-dasharray="4 2" stroke-dashoffset="1" offset="-3" stroke-gamma="0.7"
            stroke-gamma-method="linear" comp-op="multiply" clip="true"/>"#,
    );
    assert_eq!(
        s,
        Symbolizer::Line(LineSymbolizer {
            stroke: Color::new(255, 0, 0, 128),
            stroke_width: 2.5,
            stroke_opacity: 0.7,
            stroke_linecap: LineCap::Square,
            stroke_linejoin: LineJoin::Bevel,
            stroke_miterlimit: 10.0,
            stroke_dasharray: vec![(4.0, 2.0)],
            stroke_dashoffset: 1.0,
            offset: -3.0,
            clip: true,
            stroke_gamma: 0.7,
            stroke_gamma_method: GammaMethod::Linear,
            comp_op: CompOp::Multiply,
        })
    );
}

#[test]
fn polygon_attributes() {
    let s = only(r#"<PolygonSymbolizer fill="steelblue" fill-opacity="0.25"/>"#);
    assert_eq!(
        s,
        Symbolizer::Polygon(PolygonSymbolizer {
            fill: Color::rgb(70, 130, 180),
            fill_opacity: 0.25,
            gamma: 1.0,
            gamma_method: GammaMethod::Power,
            comp_op: CompOp::SrcOver,
        })
    );
    let s = only(
        r#"<PolygonSymbolizer fill="steelblue" gamma="0.3" gamma-method="threshold" comp-op="dst-out"/>"#,
    );
    assert_eq!(
        s,
        Symbolizer::Polygon(PolygonSymbolizer {
            fill: Color::rgb(70, 130, 180),
            fill_opacity: 1.0,
            gamma: 0.3,
            gamma_method: GammaMethod::Threshold,
            comp_op: CompOp::DstOut,
        })
    );
}

#[test]
fn every_gamma_method_and_drawn_comp_op_is_read() {
    for (keyword, method) in [
        ("power", GammaMethod::Power),
        ("linear", GammaMethod::Linear),
        ("none", GammaMethod::None),
        ("threshold", GammaMethod::Threshold),
        ("multiply", GammaMethod::Multiply),
    ] {
        let Symbolizer::Polygon(p) =
            only(&format!(r#"<PolygonSymbolizer gamma-method="{keyword}"/>"#))
        else {
            panic!()
        };
        assert_eq!(p.gamma_method, method);
        let Symbolizer::Line(l) = only(&format!(
            r#"<LineSymbolizer stroke-gamma-method="{keyword}"/>"#
        )) else {
            panic!()
        };
        assert_eq!(l.stroke_gamma_method, method);
    }
    let drawn = "clear src dst src-over dst-over src-in dst-in src-out dst-out src-atop dst-atop \
        xor plus multiply screen overlay darken lighten hard-light difference exclusion";
    for name in drawn.split_whitespace() {
        let s = symbolizers(&format!(
            r#"<PolygonSymbolizer comp-op="{name}"/><LineSymbolizer comp-op="{name}"/>
               <MarkersSymbolizer comp-op="{name}"/><RasterSymbolizer comp-op="{name}"/>"#
        ));
        let ops: Vec<CompOp> = s
            .iter()
            .map(|s| match s {
                Symbolizer::Polygon(p) => p.comp_op,
                Symbolizer::Line(l) => l.comp_op,
                Symbolizer::Markers(m) => m.comp_op,
                Symbolizer::Raster(r) => r.comp_op,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ops.len(), 4);
        assert!(ops.iter().all(|op| op.name() == name), "{name}: {ops:?}");
    }
}

#[test]
fn style_comp_op_is_read_and_defaults_to_src_over() {
    let map = load(
        r#"<Map>
<Style name="plain"><Rule><PolygonSymbolizer/></Rule></Style>
<Style name="lit" comp-op="screen" opacity="0.5"><Rule><PolygonSymbolizer/></Rule></Style>
<Style name="over" comp-op="src-over"><Rule><PolygonSymbolizer/></Rule></Style>
</Map>"#,
    );
    assert!(map.warnings.is_empty(), "{:?}", map.warnings);
    let styles = &map.map.styles;
    assert_eq!(styles["plain"].comp_op, CompOp::SrcOver);
    assert_eq!(
        (styles["lit"].comp_op, styles["lit"].opacity),
        (CompOp::Screen, 0.5)
    );
    assert_eq!(styles["over"].comp_op, CompOp::SrcOver);
}

#[test]
fn markers_sizes_follow_build_ellipse() {
    let Symbolizer::Markers(m) = only(r#"<MarkersSymbolizer width="6"/>"#) else {
        panic!()
    };
    assert_eq!((m.width, m.height), (Some(6.0), None));
    assert_eq!(m.ellipse_size(), (6.0, 6.0));
    let Symbolizer::Markers(m) = only(r#"<MarkersSymbolizer height="4"/>"#) else {
        panic!()
    };
    assert_eq!(m.ellipse_size(), (4.0, 4.0));
    let s = only(
        r##"<MarkersSymbolizer file="shape://ellipse" width="8" height="3" fill="#f00" fill-opacity="0.5"
            stroke="white" stroke-width="1" stroke-opacity="0.8" opacity="0.9" placement="line"
            multi-policy="largest" spacing="50" allow-overlap="true" ignore-placement="yes"
            max-error="0.5" offset="-2" avoid-edges="true" transform="rotate(90)" clip="true"/>"##,
    );
    assert_eq!(
        s,
        Symbolizer::Markers(MarkersSymbolizer {
            file: None,
            paint: PaintOverride {
                fill: Some(Color::rgb(255, 0, 0)),
                fill_opacity: Some(0.5),
                stroke: Some(Color::WHITE),
                stroke_width: Some(1.0),
                stroke_opacity: Some(0.8),
            },
            width: Some(8.0),
            height: Some(3.0),
            opacity: 0.9,
            placement: MarkerPlacement::Line,
            multi_policy: MarkerMultiPolicy::Largest,
            spacing: 50.0,
            max_error: 0.5,
            offset: -2.0,
            avoid_edges: true,
            allow_overlap: true,
            ignore_placement: true,
            transform: Affine::parse("rotate(90)").unwrap(),
            clip: true,
            comp_op: CompOp::SrcOver,
        })
    );
    let Symbolizer::Markers(_) = only(r#"<MarkersSymbolizer marker-type="ellipse"/>"#) else {
        panic!()
    };
}

#[test]
fn raster_attributes() {
    let s = only(r#"<RasterSymbolizer opacity="0.5" scaling="bilinear" comp-op="multiply"/>"#);
    assert_eq!(
        s,
        Symbolizer::Raster(RasterSymbolizer {
            opacity: 0.5,
            scaling: ScalingMethod::Bilinear,
            comp_op: CompOp::Multiply,
        })
    );
    let Symbolizer::Raster(r) = only(r#"<RasterSymbolizer scaling="fast"/>"#) else {
        panic!()
    };
    assert_eq!(r.scaling, ScalingMethod::Near);
}

#[test]
fn opacity_out_of_range_is_clamped_with_a_warning() {
    let loaded = load(&one_rule(r#"<PolygonSymbolizer fill-opacity="1.5"/>"#));
    let Symbolizer::Polygon(p) = &loaded.map.styles["s"].rules[0].symbolizers[0] else {
        panic!()
    };
    assert_eq!(p.fill_opacity, 1.0);
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0].message.contains("clamped"));
}

// ------------------------------------------------------------ text labels

fn text(body: &str) -> TextSymbolizer {
    match only(body) {
        Symbolizer::Text(t) => t,
        other => panic!("{other:?}"),
    }
}

#[test]
fn bare_text_symbolizer_has_mapnik_defaults() {
    let loaded = load(&one_rule(
        r#"<TextSymbolizer face-name="DejaVu Sans Book">[name]</TextSymbolizer>"#,
    ));
    let Symbolizer::Text(t) = &loaded.map.styles["s"].rules[0].symbolizers[0] else {
        panic!()
    };
    let expect = TextSymbolizer {
        text: TextExpr {
            parts: vec![TextPart::Field("name".into())],
        },
        face_names: vec!["DejaVu Sans Book".into()],
        ..TextSymbolizer::default()
    };
    assert_eq!(*t, expect);
    // The values, spelled out (from Mapnik 3.1's text_properties).
    assert_eq!(
        (t.size, t.fill, t.halo_fill),
        (10.0, Color::BLACK, Color::WHITE)
    );
    assert_eq!((t.halo_radius, t.halo_opacity, t.opacity), (0.0, 1.0, 1.0));
    assert_eq!(t.placement, TextPlacement::Point);
    assert_eq!(t.placements, vec![PlacementPosition::Exact]);
    assert!(t.placement_sizes.is_empty());
    assert_eq!(
        (t.dx, t.dy, t.wrap_width, t.wrap_character),
        (0.0, 0.0, 0.0, ' ')
    );
    assert_eq!(
        (
            t.horizontal_alignment,
            t.vertical_alignment,
            t.justify_alignment
        ),
        (
            HorizontalAlignment::Auto,
            VerticalAlignment::Auto,
            JustifyAlignment::Auto
        )
    );
    assert_eq!(
        (t.text_transform, t.upright),
        (TextTransform::None, Upright::Auto)
    );
    assert_eq!(
        (t.spacing, t.repeat_distance, t.minimum_distance, t.margin),
        (0.0, 0.0, 0.0, 0.0)
    );
    assert_eq!(t.max_char_angle_delta, 22.5);
    assert_eq!(t.label_position_tolerance, 0.0);
    assert!(!t.allow_overlap && !t.avoid_edges && t.largest_bbox_only);
    assert!(!t.ignore_placement && !t.clip && !t.wrap_before);
    // Nothing to warn about.
    let msgs: Vec<_> = loaded.warnings.iter().map(|w| w.message.as_str()).collect();
    assert!(msgs.is_empty(), "{msgs:?}");
}

#[test]
fn every_text_attribute_is_read() {
    let t = text(
        r##"<TextSymbolizer face-name="Noto Sans Bold" size="12.5" fill="#734a08" halo-fill="rgba(255,255,255,0.6)"
            halo-radius="1.5" halo-opacity="0.8" opacity="0.9" placement="line" dx="3" dy="-4"
            horizontal-alignment="left" vertical-alignment="top" justify-alignment="center"
            wrap-width="30" wrap-character=";" wrap-before="true"
            line-spacing="-1.5" character-spacing="0.5" text-transform="uppercase" spacing="750"
            repeat-distance="250" margin="3" minimum-padding="2" minimum-path-length="40"
            max-char-angle-delta="20" upright="left-only" label-position-tolerance="10"
            allow-overlap="true" avoid-edges="true" largest-bbox-only="false" clip="true"
            rotate-displacement="true" comp-op="multiply" halo-comp-op="screen"
            >[name] + '\n' + [ele]</TextSymbolizer>"##,
    );
    let expect = TextSymbolizer {
        text: TextExpr::parse(r"[name]+'\n'+[ele]").unwrap(),
        face_names: vec!["Noto Sans Bold".into()],
        fontset: None,
        size: 12.5,
        fill: Color::rgb(0x73, 0x4a, 0x08),
        halo_fill: Color::new(255, 255, 255, 153),
        halo_radius: 1.5,
        halo_opacity: 0.8,
        opacity: 0.9,
        comp_op: CompOp::Multiply,
        halo_comp_op: CompOp::Screen,
        placement: TextPlacement::Line,
        placements: vec![PlacementPosition::Exact],
        placement_sizes: vec![],
        dx: 3.0,
        dy: -4.0,
        horizontal_alignment: HorizontalAlignment::Left,
        vertical_alignment: VerticalAlignment::Top,
        justify_alignment: JustifyAlignment::Center,
        wrap_width: 30.0,
        wrap_character: ';',
        wrap_before: true,
        repeat_wrap_character: false,
        text_ratio: 0.0,
        line_spacing: -1.5,
        character_spacing: 0.5,
        text_transform: TextTransform::Uppercase,
        spacing: 750.0,
        repeat_distance: 250.0,
        minimum_distance: 0.0,
        minimum_padding: 2.0,
        minimum_path_length: 40.0,
        margin: 3.0,
        max_char_angle_delta: 20.0,
        upright: Upright::LeftOnly,
        label_position_tolerance: 10.0,
        allow_overlap: true,
        avoid_edges: true,
        largest_bbox_only: false,
        ignore_placement: false,
        clip: true,
        offset: 0.0,
        orientation: 0.0,
        rotate_displacement: true,
    };
    assert_eq!(t, expect);
    // Mapnik 2's spacing option, alone.
    let t = text(
        r#"<TextSymbolizer face-name="a" minimum-distance="20" text-transform="capitalize">[n]</TextSymbolizer>"#,
    );
    assert_eq!(t.minimum_distance, 20.0);
    assert_eq!(t.text_transform, TextTransform::Capitalize);
}

#[test]
fn text_in_cdata_entities_and_the_old_name_attribute() {
    // What carto writes.
    let t =
        text(r#"<TextSymbolizer face-name="a"><![CDATA[[name] + '\n' + [ref]]]></TextSymbolizer>"#);
    assert_eq!(t.text, TextExpr::parse(r"[name]+'\n'+[ref]").unwrap());
    let t = text(r#"<TextSymbolizer face-name="a">[name] + &apos; &amp; &apos;</TextSymbolizer>"#);
    assert_eq!(t.text, TextExpr::parse("[name]+' & '").unwrap());
    // Mapnik 2's attribute, when there is no content.
    let t = text(r#"<TextSymbolizer face-name="a" name="[ref]"/>"#);
    assert_eq!(t.text.fields().collect::<Vec<_>>(), ["ref"]);
    // The content wins over the attribute.
    let loaded = load(&one_rule(
        r#"<TextSymbolizer face-name="a" name="[ref]">[name]</TextSymbolizer>"#,
    ));
    let Symbolizer::Text(t) = &loaded.map.styles["s"].rules[0].symbolizers[0] else {
        panic!()
    };
    assert_eq!(t.text.fields().collect::<Vec<_>>(), ["name"]);
    assert!(loaded.warnings[0].message.contains("`name` ignored"));
}

#[test]
fn placement_lists() {
    let t = text(
        r#"<TextSymbolizer face-name="a" placement-type="simple" placements="S,SE,SW,E,NE,W,NW,N" dy="5">[n]</TextSymbolizer>"#,
    );
    use PlacementPosition::*;
    assert_eq!(t.placements, vec![S, SE, SW, E, NE, W, NW, N]);
    assert!(t.placement_sizes.is_empty());
    let t = text(
        r#"<TextSymbolizer face-name="a" placement-type="simple" placements="N, S,E,W,11,10">[n]</TextSymbolizer>"#,
    );
    assert_eq!(t.placements, vec![N, S, E, W]);
    assert_eq!(t.placement_sizes, vec![11.0, 10.0]);
    // `simple` without a list is Mapnik's "X": the exact position.
    let t = text(r#"<TextSymbolizer face-name="a" placement-type="simple">[n]</TextSymbolizer>"#);
    assert_eq!(t.placements, vec![Exact]);
    // `dummy` (and no placement-type) ignore the list, with a warning.
    for attrs in [r#"placement-type="dummy""#, ""] {
        let loaded = load(&one_rule(&format!(
            r#"<TextSymbolizer face-name="a" {attrs} placements="N,S">[n]</TextSymbolizer>"#
        )));
        let Symbolizer::Text(t) = &loaded.map.styles["s"].rules[0].symbolizers[0] else {
            panic!()
        };
        assert_eq!(t.placements, vec![Exact]);
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.message.contains("`placements` ignored")),
            "{:?}",
            loaded.warnings
        );
    }
}

#[test]
fn fontsets_and_font_directory() {
    let xml = r#"<Map font-directory="fonts">
  <FontSet name="book">
    <Font face-name="Noto Sans Regular"/>
    <Font face-name="Noto Sans CJK JP Regular"/>
  </FontSet>
  <FontSet name="bold"><Font face-name="Noto Sans Bold"/></FontSet>
  <Style name="s"><Rule>
    <TextSymbolizer fontset-name="book">[name]</TextSymbolizer>
    <TextSymbolizer face-name="DejaVu Sans Book">[name]</TextSymbolizer>
  </Rule></Style>
</Map>"#;
    let map = load(xml).map;
    assert_eq!(
        map.fontsets,
        vec![
            FontSet {
                name: "book".into(),
                faces: vec![
                    "Noto Sans Regular".into(),
                    "Noto Sans CJK JP Regular".into()
                ],
            },
            FontSet {
                name: "bold".into(),
                faces: vec!["Noto Sans Bold".into()],
            },
        ]
    );
    // Relative to the style's folder (`/styles` in these tests).
    assert_eq!(map.font_directory, Some(PathBuf::from("/styles/fonts")));
    let syms = &map.styles["s"].rules[0].symbolizers;
    let Symbolizer::Text(t) = &syms[0] else {
        panic!()
    };
    assert_eq!(
        t.face_names,
        ["Noto Sans Regular", "Noto Sans CJK JP Regular"]
    );
    assert_eq!(t.fontset.as_deref(), Some("book"));
    let Symbolizer::Text(t) = &syms[1] else {
        panic!()
    };
    assert_eq!(t.face_names, ["DejaVu Sans Book"]);
    assert_eq!(t.fontset, None);

    // Absolute stays; none is None.
    let map = load(r#"<Map font-directory="/usr/share/fonts"/>"#).map;
    assert_eq!(map.font_directory, Some(PathBuf::from("/usr/share/fonts")));
    assert_eq!(load("<Map/>").map.font_directory, None);
    // From a file: relative to the file's folder.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("style.xml");
    std::fs::write(&path, r#"<Map font-directory="../fonts"/>"#).unwrap();
    let map = render_core::Map::load(&path).unwrap().map;
    assert_eq!(map.font_directory, Some(dir.path().join("../fonts")));

    // A fontset defined after its use is unknown, as in Mapnik; the error
    // names it and the line of the attribute.
    let msg = crate::load_err(
        r#"<Map>
<Style name="s"><Rule>
<TextSymbolizer
  fontset-name="later">[name]</TextSymbolizer>
</Rule></Style>
<FontSet name="later"><Font face-name="a"/></FontSet>
</Map>"#,
    );
    assert!(msg.starts_with("<string>:4:3: <TextSymbolizer>"), "{msg}");
    assert!(msg.contains("fontset `later` is not defined"), "{msg}");
    // Broken fontsets.
    for (xml, needle) in [
        (
            r#"<Map><FontSet><Font face-name="a"/></FontSet></Map>"#,
            "needs a `name`",
        ),
        (r#"<Map><FontSet name="x"/></Map>"#, "has no <Font>"),
        (
            r#"<Map><FontSet name="x"><Font/></FontSet></Map>"#,
            "needs a `face-name`",
        ),
    ] {
        let msg = crate::load_err(xml);
        assert!(msg.contains(needle), "{xml}: {msg}");
    }
}

#[test]
fn text_attributes_not_drawn_yet_are_errors_naming_them() {
    for (attribute, named) in [
        (r#"orientation="45""#, "`orientation`"),
        (r#"text-ratio="2""#, "`text-ratio`"),
        (r#"offset="2""#, "`offset`"),
        (
            r#"wrap-character=";" repeat-wrap-character="true""#,
            "`repeat-wrap-character`",
        ),
    ] {
        let xml = crate::one_rule(&format!(
            r#"<TextSymbolizer face-name="DejaVu Sans Book" {attribute}>[name]</TextSymbolizer>"#
        ));
        let err = crate::load_err(&xml);
        assert!(
            err.contains(named) && err.contains("not drawn yet"),
            "{err}"
        );
        assert!(err.contains(":4:"), "names the line: {err}");
    }
}

/// A style in a temp dir with one tiny PNG and SVG, for the image
/// symbolizers (their files are read when the style loads).
fn with_images(body: &str) -> (tempfile::TempDir, Symbolizer) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("i.svg"),
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="8" height="6"><rect width="8" height="6"/></svg>"#,
    )
    .unwrap();
    let xml = one_rule(body);
    let map = render_core::Map::from_str(&xml, dir.path()).unwrap().map;
    let s = map.styles["s"].rules[0].symbolizers[0].clone();
    (dir, s)
}

#[test]
fn point_symbolizer_attributes() {
    let (dir, s) = with_images(
        r#"<PointSymbolizer file="i.svg" opacity="0.5" allow-overlap="true" ignore-placement="true"
            placement="interior" transform="scale(2)" comp-op="multiply"/>"#,
    );
    assert_eq!(
        s,
        Symbolizer::Point(PointSymbolizer {
            file: Some(dir.path().join("i.svg")),
            opacity: 0.5,
            allow_overlap: true,
            ignore_placement: true,
            placement: PointPlacement::Interior,
            transform: Affine([2.0, 0.0, 0.0, 2.0, 0.0, 0.0]),
            comp_op: CompOp::Multiply,
        })
    );
    let Symbolizer::Point(p) = only("<PointSymbolizer/>") else {
        panic!()
    };
    assert_eq!(p, PointSymbolizer::default());
}

#[test]
fn pattern_symbolizer_attributes() {
    let (dir, s) = with_images(
        r#"<PolygonPatternSymbolizer file="i.svg" alignment="local" opacity="0.4" gamma="0.5" gamma-method="linear" comp-op="screen"/>"#,
    );
    assert_eq!(
        s,
        Symbolizer::PolygonPattern(PolygonPatternSymbolizer {
            file: dir.path().join("i.svg"),
            alignment: PatternAlignment::Local,
            opacity: 0.4,
            gamma: 0.5,
            gamma_method: GammaMethod::Linear,
            transform: Affine::IDENTITY,
            comp_op: CompOp::Screen,
        })
    );
    let (dir, s) = with_images(
        r#"<LinePatternSymbolizer file="i.svg" line-pattern="repeat" stroke-width="6"
            stroke-linecap="round" stroke-linejoin="round" alignment="global" offset="2"/>"#,
    );
    let Symbolizer::LinePattern(l) = s else {
        panic!("{s:?}")
    };
    assert_eq!(l.file, dir.path().join("i.svg"));
    assert_eq!(l.kind, LinePatternKind::Repeat);
    assert_eq!(
        (
            l.stroke.stroke_width,
            l.stroke.stroke_linecap,
            l.stroke.stroke_linejoin
        ),
        (6.0, LineCap::Round, LineJoin::Round)
    );
    assert_eq!((l.offset, l.alignment), (2.0, PatternAlignment::Global));
    let (_dir, s) = with_images(r#"<LinePatternSymbolizer file="i.svg"/>"#);
    let Symbolizer::LinePattern(l) = s else {
        panic!()
    };
    assert_eq!(l.kind, LinePatternKind::Warp);
}

#[test]
fn marker_files_resolve_against_the_style_folder() {
    let (dir, s) = with_images(r##"<MarkersSymbolizer file="i.svg" width="16" fill="#00ff00"/>"##);
    let Symbolizer::Markers(m) = s else { panic!() };
    assert_eq!(m.file, Some(dir.path().join("i.svg")));
    assert_eq!(m.paint.fill, Some(Color::rgb(0, 255, 0)));
    assert_eq!((m.width, m.height), (Some(16.0), None));
}
