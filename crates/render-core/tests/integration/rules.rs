use std::collections::HashMap;

use render_core::{FeatureView, FilterMode, GeometryType, Map, Rule, RuleKind, Value};
use tile_math::scale_denominator;

use crate::load;

struct F(HashMap<&'static str, Value>, GeometryType);

impl FeatureView for F {
    fn attribute(&self, name: &str) -> Option<Value> {
        self.0.get(name).cloned()
    }
    fn geometry_type(&self) -> GeometryType {
        self.1
    }
}

fn feature(highway: &str) -> F {
    F(
        HashMap::from([("highway", Value::from(highway))]),
        GeometryType::LineString,
    )
}

fn names<'a>(rules: &[&'a Rule]) -> Vec<&'a str> {
    rules
        .iter()
        .map(|r| r.name.as_deref().unwrap_or("?"))
        .collect()
}

const STYLE: &str = r#"<Map>
<Style name="roads" filter-mode="FILTER_MODE">
  <Rule name="motorway">
    <Filter>[highway] = 'motorway'</Filter>
    <LineSymbolizer stroke="red"/>
  </Rule>
  <Rule name="major">
    <Filter>[highway] = 'motorway' or [highway] = 'primary'</Filter>
    <MaxScaleDenominator>1000000</MaxScaleDenominator>
    <LineSymbolizer stroke="orange"/>
  </Rule>
  <Rule name="other">
    <ElseFilter/>
    <MinScaleDenominator>5000</MinScaleDenominator>
    <LineSymbolizer stroke="gray"/>
  </Rule>
  <Rule name="also">
    <AlsoFilter/>
    <LineSymbolizer stroke="black"/>
  </Rule>
  <Rule name="empty">
    <Filter>[highway] = 'track'</Filter>
  </Rule>
</Style>
</Map>"#;

fn map(mode: &str) -> Map {
    load(&STYLE.replace("FILTER_MODE", mode)).map
}

#[test]
fn rule_kinds_and_scales() {
    let map = map("all");
    let style = &map.styles["roads"];
    assert_eq!(style.filter_mode, FilterMode::All);
    let kinds: Vec<_> = style.rules.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            RuleKind::Filter,
            RuleKind::Filter,
            RuleKind::Else,
            RuleKind::Also,
            RuleKind::Filter
        ]
    );
    assert_eq!(style.rules[1].max_scale_denominator, 1_000_000.0);
    assert_eq!(style.rules[0].max_scale_denominator, f64::INFINITY);
    assert_eq!(style.rules[2].min_scale_denominator, 5000.0);
    // A rule without symbolizers is never active (Mapnik's rule::active).
    assert!(!style.rules[4].active(1.0));
}

#[test]
fn filter_mode_all() {
    let map = map("all");
    let z12 = scale_denominator(12, 256, 1.0);
    let active = map.active_rules("roads", z12).unwrap();
    assert_eq!(names(&active.if_rules), ["motorway", "major"]);
    let mut out = Vec::new();
    active.matching(&feature("motorway"), &mut out);
    assert_eq!(names(&out), ["motorway", "major", "also"]);
    active.matching(&feature("primary"), &mut out);
    assert_eq!(names(&out), ["major", "also"]);
    active.matching(&feature("track"), &mut out);
    assert_eq!(names(&out), ["other"]);
    // A feature without the attribute: null matches nothing, so else.
    active.matching(&F(HashMap::new(), GeometryType::Point), &mut out);
    assert_eq!(names(&out), ["other"]);

    // At z5 the `major` rule is out of range, so primary roads get else.
    let z5 = scale_denominator(5, 256, 1.0);
    let active = map.active_rules("roads", z5).unwrap();
    active.matching(&feature("primary"), &mut out);
    assert_eq!(names(&out), ["other"]);
    // Beyond z17 (scale < 5000) the else rule is out of range.
    let z18 = scale_denominator(18, 256, 1.0);
    let active = map.active_rules("roads", z18).unwrap();
    active.matching(&feature("track"), &mut out);
    assert!(out.is_empty());
    assert!(map.active_rules("nope", z18).is_none());
}

#[test]
fn filter_mode_first() {
    let map = map("first");
    let active = map
        .active_rules("roads", scale_denominator(12, 256, 1.0))
        .unwrap();
    let mut out = Vec::new();
    active.matching(&feature("motorway"), &mut out);
    // Only the first match, and no AlsoFilter rules (Mapnik's do_also=false).
    assert_eq!(names(&out), ["motorway"]);
    active.matching(&feature("track"), &mut out);
    assert_eq!(names(&out), ["other"]);
}

#[test]
fn scale_bounds_follow_mapnik() {
    // Rule bounds with tile-math's Mapnik scale denominators: z0 = 559082264.028.
    let z0 = scale_denominator(0, 256, 1.0);
    assert!((z0 - 559_082_264.028).abs() < 1e-3);
    let z10 = scale_denominator(10, 256, 1.0);
    let xml = format!(
        r#"<Map><Style name="s">
        <Rule name="upto-z10"><MinScaleDenominator>{z10}</MinScaleDenominator><PolygonSymbolizer/></Rule>
        <Rule name="from-z10"><MaxScaleDenominator>{z10}</MaxScaleDenominator><PolygonSymbolizer/></Rule>
        </Style></Map>"#
    );
    let map = load(&xml).map;
    let rules = &map.styles["s"].rules;
    // min is inclusive, max exclusive, both with Mapnik's 1e-6 tolerance.
    assert!(rules[0].active(z10));
    assert!(rules[0].active(z10 - 0.5e-6));
    assert!(!rules[0].active(z10 - 2e-6));
    assert!(!rules[1].active(z10 + 2e-6));
    assert!(rules[1].active(z10 + 0.5e-6));
    assert!(rules[1].active(z10));
    // 512 px tiles (or scale factor 2) halve the scale denominator.
    assert_eq!(
        scale_denominator(10, 512, 1.0),
        scale_denominator(11, 256, 1.0)
    );
}

#[test]
fn layer_status_and_bounds() {
    let map = load(
        r#"<Map srs="epsg:3857">
        <Layer name="off" status="off"><StyleName>s</StyleName></Layer>
        <Layer name="mid" minimum-scale-denominator="1000" maximum-scale-denominator="50000"><StyleName>s</StyleName></Layer>
        <Layer name="inherit"><StyleName>s</StyleName></Layer>
        <Style name="s"><Rule><PolygonSymbolizer/></Rule></Style>
        </Map>"#,
    )
    .map;
    assert!(!map.layers[0].visible(1.0));
    assert!(map.layers[1].visible(1000.0));
    assert!(!map.layers[1].visible(999.0));
    assert!(!map.layers[1].visible(50_000.1));
    assert_eq!(map.layers[1].min_scale_denominator, 1000.0);
    // A layer without srs takes the map's.
    assert_eq!(map.layers[2].srs, "epsg:3857");
    assert_eq!(map.layers[2].max_scale_denominator, f64::MAX);
}
