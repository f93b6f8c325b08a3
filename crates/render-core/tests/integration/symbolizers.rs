use render_core::{
    Color, LineCap, LineJoin, LineSymbolizer, MarkerMultiPolicy, MarkerPlacement,
    MarkersSymbolizer, PolygonSymbolizer, RasterSymbolizer, ScalingMethod, Symbolizer,
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
            stroke-dasharray="4 2" stroke-dashoffset="1" offset="-3" stroke-gamma="1"/>"#,
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
            stroke_gamma: 1.0,
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
            gamma: 1.0
        })
    );
}

#[test]
fn markers_sizes_follow_build_ellipse() {
    let Symbolizer::Markers(m) = only(r#"<MarkersSymbolizer width="6"/>"#) else {
        panic!()
    };
    assert_eq!((m.width, m.height), (6.0, 6.0));
    let Symbolizer::Markers(m) = only(r#"<MarkersSymbolizer height="4"/>"#) else {
        panic!()
    };
    assert_eq!((m.width, m.height), (4.0, 4.0));
    let s = only(
        r##"<MarkersSymbolizer file="shape://ellipse" width="8" height="3" fill="#f00" fill-opacity="0.5"
            stroke="white" stroke-width="1" stroke-opacity="0.8" opacity="0.9" placement="line"
            multi-policy="largest" spacing="50" allow-overlap="true" ignore-placement="yes"/>"##,
    );
    assert_eq!(
        s,
        Symbolizer::Markers(MarkersSymbolizer {
            fill: Color::rgb(255, 0, 0),
            fill_opacity: 0.5,
            stroke: Color::WHITE,
            stroke_width: 1.0,
            stroke_opacity: 0.8,
            width: 8.0,
            height: 3.0,
            opacity: 0.9,
            placement: MarkerPlacement::Line,
            multi_policy: MarkerMultiPolicy::Largest,
            spacing: 50.0,
            allow_overlap: true,
            ignore_placement: true,
        })
    );
    let Symbolizer::Markers(_) = only(r#"<MarkersSymbolizer marker-type="ellipse"/>"#) else {
        panic!()
    };
}

#[test]
fn raster_attributes() {
    let s = only(r#"<RasterSymbolizer opacity="0.5" scaling="bilinear"/>"#);
    assert_eq!(
        s,
        Symbolizer::Raster(RasterSymbolizer {
            opacity: 0.5,
            scaling: ScalingMethod::Bilinear
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
