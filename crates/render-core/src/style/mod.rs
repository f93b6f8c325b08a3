//! The style layer: a documented subset of Mapnik XML loaded into plain Rust
//! types (see `docs/styles.md` for the element-by-element list).
//!
//! - [`Map`], [`Style`], [`Rule`], [`Layer`] and [`Datasource`] (this file):
//!   the loaded map, tessera's own types rather than Mapnik's.
//! - [`mapnik_xml`]: the loader ([`Map::load`], [`Map::from_str`]).
//! - [`filter`]: the filter expression language.
//! - [`symbolizer`]: the symbolizers and Mapnik's defaults.
//! - [`text`]: text labels, shields, fontsets and the text expression
//!   language.
//! - [`color`]: CSS colours.
//! - [`composite`]: `comp-op`, Mapnik's compositing modes.
//! - [`rule_gate`]: a style's rules gated by one attribute, so a feature is
//!   tested only against the rules it can match.
//!
//! # Scale denominators
//! Rules and layers are chosen by scale denominator, computed in Mapnik's
//! convention by [`tile_math::scale_denominator`] (559 082 264.028 at zoom 0
//! for 256 px tiles). A rule is active when
//! `scale >= min - 1e-6 && scale < max + 1e-6` and it has at least one
//! symbolizer (Mapnik's `rule::active`); a layer is visible under the same
//! test on its own bounds and `status`.
#![forbid(unsafe_code)]

pub mod color;
pub mod composite;
pub mod filter;
pub mod image_filter;
pub mod mapnik_xml;
pub mod rule_gate;
pub mod symbolizer;
pub mod text;
mod transform;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Location, Result};
use color::Color;
use filter::{Expr, FeatureView};
use symbolizer::Symbolizer;
use text::FontSet;

/// Mapnik's tolerance when comparing scale denominators with rule and layer
/// bounds.
pub const SCALE_EPSILON: f64 = 1e-6;

/// Mapnik 3's default `srs` for a map without one.
pub const DEFAULT_SRS: &str = "+proj=longlat +ellps=WGS84 +datum=WGS84 +no_defs";

/// A loaded map: what to draw, in which order, from which data.
#[derive(Debug, Clone, PartialEq)]
pub struct Map {
    /// `background-color`; `None` leaves the image transparent.
    pub background_color: Option<Color>,
    /// `srs` of the map (the output projection), as written in the XML.
    pub srs: String,
    /// `buffer-size` in pixels: how far beyond the image edge features are
    /// drawn (for metatile and label continuity). Default 0.
    pub buffer_size: u32,
    /// The styles, by name.
    pub styles: BTreeMap<String, Style>,
    /// The layers, in drawing order (first is drawn first, at the bottom).
    pub layers: Vec<Layer>,
    /// The folder that relative paths were resolved against.
    pub base_dir: PathBuf,
    /// `font-directory`, resolved against the style's folder as Mapnik
    /// does: fonts in it are registered before the styles are drawn.
    pub font_directory: Option<PathBuf>,
    /// The `<FontSet>`s, in document order.
    pub fontsets: Vec<FontSet>,
    /// Each distinct list of faces the text symbolizers ask for, with where
    /// it is first used (to name it when a face is missing).
    pub text_faces: Vec<(Vec<String>, Location)>,
    /// Every file the style was read from: the style file, the files it
    /// includes (entities, XInclude) and the image files it names as
    /// constants. A server compares them to decide whether its tiles are
    /// still current.
    pub input_files: Vec<PathBuf>,
    /// `<Parameters>`: the map's metadata (`attribution`, `bounds`,
    /// `center`, `minzoom`, `maxzoom`, `name`, ...), as written; not drawn.
    pub parameters: BTreeMap<String, String>,
}

/// What [`Map::load`] returns: the map and everything that was ignored on the
/// way.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedMap {
    /// The map.
    pub map: Map,
    /// Things that were ignored because they do not change the picture (or
    /// are no-ops), each naming its element and line. They were also logged
    /// with `tracing::warn!`.
    pub warnings: Vec<StyleWarning>,
}

/// Something in the style that tessera ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StyleWarning {
    /// Where it is.
    pub location: Location,
    /// The element it belongs to, e.g. `Map` or `LineSymbolizer`.
    pub element: String,
    /// What was ignored and why that is safe.
    pub message: String,
}

impl fmt::Display for StyleWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: <{}>: {}", self.location, self.element, self.message)
    }
}

impl Map {
    /// Loads a Mapnik XML file. Relative paths in it resolve against the
    /// file's folder, as Mapnik's `load_map` does.
    pub fn load(path: impl AsRef<Path>) -> Result<LoadedMap> {
        mapnik_xml::load_file(path.as_ref())
    }

    /// Loads Mapnik XML from a string; relative paths resolve against
    /// `base_dir` (Mapnik's `load_map_string(map, xml, strict, base_path)`).
    pub fn from_str(xml: &str, base_dir: impl AsRef<Path>) -> Result<LoadedMap> {
        mapnik_xml::load_str(xml, base_dir.as_ref(), None)
    }

    /// The style called `name`.
    pub fn style(&self, name: &str) -> Option<&Style> {
        self.styles.get(name)
    }

    /// The rules of style `style` that are active at `scale_denominator`,
    /// or `None` when there is no such style.
    pub fn active_rules(&self, style: &str, scale_denominator: f64) -> Option<ActiveRules<'_>> {
        self.style(style).map(|s| s.active_rules(scale_denominator))
    }

    /// The layers visible at `scale_denominator`, in drawing order.
    pub fn visible_layers(&self, scale_denominator: f64) -> impl Iterator<Item = &Layer> {
        self.layers
            .iter()
            .filter(move |l| l.visible(scale_denominator))
    }
}

/// `filter-mode` of a style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FilterMode {
    /// `all` (default): every matching rule draws.
    #[default]
    All,
    /// `first`: only the first matching rule draws (and no `AlsoFilter`
    /// rules).
    First,
}

/// A `<Style>`: rules applied to every feature of the layers that name it.
#[derive(Debug, Clone, PartialEq)]
pub struct Style {
    /// `name`.
    pub name: String,
    /// `filter-mode`, default all.
    pub filter_mode: FilterMode,
    /// `opacity` of the whole style, applied when its layer image is
    /// composited; default 1.
    pub opacity: f64,
    /// `comp-op` of the whole style, default src-over: with any other mode
    /// (or an opacity below 1) the style is drawn apart on a transparent
    /// image, then composited with this mode and its opacity (Mapnik's
    /// style-level compositing).
    pub comp_op: composite::CompOp,
    /// The rules, in document order.
    pub rules: Vec<Rule>,
    /// `image-filters`, run over the style's own image before it is
    /// composited; empty by default.
    pub image_filters: Vec<image_filter::ImageFilter>,
    /// Line of the `<Style>` element, in the file that holds it (an
    /// included file for a style split over files).
    pub line: u32,
    /// The rules gated by one attribute ([`rule_gate`]), made on first use.
    pub(crate) gate: GateCell,
}

/// A style's [`rule_gate::RuleGate`], made once on first use. Derived from
/// the rules, so it takes no part in comparing styles.
#[derive(Debug, Clone, Default)]
pub(crate) struct GateCell(std::sync::OnceLock<Option<rule_gate::RuleGate>>);

impl PartialEq for GateCell {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Style {
    /// The style's rule gate, if its rules have one.
    fn gate(&self) -> Option<&rule_gate::RuleGate> {
        self.gate
            .0
            .get_or_init(|| rule_gate::RuleGate::build(&self.rules))
            .as_ref()
    }

    /// The rules active at `scale_denominator`, sorted the way Mapnik's
    /// `rule_cache` sorts them.
    pub fn active_rules(&self, scale_denominator: f64) -> ActiveRules<'_> {
        let mut active = ActiveRules {
            filter_mode: self.filter_mode,
            if_rules: Vec::new(),
            else_rules: Vec::new(),
            also_rules: Vec::new(),
            gate: None,
        };
        let mut position = vec![None; self.rules.len()];
        for (index, rule) in self.rules.iter().enumerate() {
            if !rule.active(scale_denominator) {
                continue;
            }
            match rule.kind {
                RuleKind::Filter => {
                    position[index] = u32::try_from(active.if_rules.len()).ok();
                    active.if_rules.push(rule);
                }
                RuleKind::Else => active.else_rules.push(rule),
                RuleKind::Also => active.also_rules.push(rule),
            }
        }
        if active.if_rules.len() >= 2 {
            active.gate = self.gate().map(|gate| (gate, position));
        }
        active
    }
}

/// The rules of one style at one scale, ready to be matched against
/// features.
#[derive(Debug, Clone)]
pub struct ActiveRules<'a> {
    filter_mode: FilterMode,
    /// Ordinary rules (with or without a `<Filter>`).
    pub if_rules: Vec<&'a Rule>,
    /// `<ElseFilter/>` rules: drawn when no ordinary rule matched.
    pub else_rules: Vec<&'a Rule>,
    /// `<AlsoFilter/>` rules: drawn when some ordinary rule matched (and the
    /// filter mode is `all`).
    pub also_rules: Vec<&'a Rule>,
    /// The style's rule gate, with each style rule's place in `if_rules`
    /// (`None`: not an active ordinary rule).
    gate: Option<(&'a rule_gate::RuleGate, Vec<Option<u32>>)>,
}

impl<'a> ActiveRules<'a> {
    /// True when no rule is active: the style can be skipped at this scale.
    pub fn is_empty(&self) -> bool {
        self.if_rules.is_empty() && self.else_rules.is_empty() && self.also_rules.is_empty()
    }

    /// The rules that draw `feature`, in drawing order, appended to `out`
    /// (cleared first). This is Mapnik's `render_style` loop:
    /// the matching ordinary rules (only the first with `filter-mode="first"`),
    /// else the `ElseFilter` rules when none matched, then the `AlsoFilter`
    /// rules when one matched in `all` mode.
    pub fn matching<F: FeatureView + ?Sized>(&self, feature: &F, out: &mut Vec<&'a Rule>) {
        // With a gate and a string value of its key, only the rules that
        // can match are tested (the same ones match, in the same order).
        if let Some((gate, position)) = &self.gate {
            if let Some(value) = feature.attribute_of(gate.key()) {
                if let filter::Value::String(value) = &*value {
                    let rules = gate.candidates(value).filter_map(|index| {
                        let at = position.get(index as usize).copied().flatten()?;
                        self.if_rules.get(at as usize).copied()
                    });
                    self.match_in(rules, feature, out);
                    return;
                }
            }
        }
        self.match_in(self.if_rules.iter().copied(), feature, out);
    }

    fn match_in<F: FeatureView + ?Sized>(
        &self,
        if_rules: impl Iterator<Item = &'a Rule>,
        feature: &F,
        out: &mut Vec<&'a Rule>,
    ) {
        out.clear();
        let mut matched = false;
        let mut do_also = false;
        for rule in if_rules {
            if rule.matches(feature) {
                matched = true;
                do_also = true;
                out.push(rule);
                if self.filter_mode == FilterMode::First {
                    do_also = false;
                    break;
                }
            }
        }
        if !matched {
            out.extend(self.else_rules.iter().copied());
        }
        if do_also {
            out.extend(self.also_rules.iter().copied());
        }
    }
}

/// What kind of rule a `<Rule>` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RuleKind {
    /// An ordinary rule: its `<Filter>` (or none, which matches everything)
    /// decides.
    #[default]
    Filter,
    /// `<ElseFilter/>`: applies to features that no ordinary rule of the
    /// style matched.
    Else,
    /// `<AlsoFilter/>`: applies to features that some ordinary rule matched.
    Also,
}

/// A `<Rule>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// `name`, if any.
    pub name: Option<String>,
    /// `<Filter>`; `None` matches every feature (Mapnik's default filter is
    /// `true`). Ignored for else and also rules, as in Mapnik.
    pub filter: Option<Expr>,
    /// Ordinary, else or also.
    pub kind: RuleKind,
    /// `<MinScaleDenominator>`, default 0.
    pub min_scale_denominator: f64,
    /// `<MaxScaleDenominator>`, default infinity.
    pub max_scale_denominator: f64,
    /// The symbolizers, drawn in this order for each matching feature.
    pub symbolizers: Vec<Symbolizer>,
    /// Line of the `<Rule>` element, in the file that holds it (an
    /// included file for a style split over files).
    pub line: u32,
}

impl Rule {
    /// Mapnik's `rule::active`: within the scale bounds (with a 1e-6
    /// tolerance) and with at least one symbolizer.
    pub fn active(&self, scale_denominator: f64) -> bool {
        scale_denominator >= self.min_scale_denominator - SCALE_EPSILON
            && scale_denominator < self.max_scale_denominator + SCALE_EPSILON
            && !self.symbolizers.is_empty()
    }

    /// Whether the rule's own filter accepts `feature` (true when there is no
    /// filter). Else/also logic is in [`ActiveRules::matching`].
    pub fn matches<F: FeatureView + ?Sized>(&self, feature: &F) -> bool {
        match &self.filter {
            Some(filter) => filter.eval(feature),
            None => true,
        }
    }
}

/// A `<Layer>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// `name` (Mapnik's default is `Unnamed`).
    pub name: String,
    /// `srs` of the data; defaults to the map's.
    pub srs: String,
    /// `status`: an inactive layer is never drawn. Default true.
    pub active: bool,
    /// `minimum-scale-denominator`, default 0.
    pub min_scale_denominator: f64,
    /// `maximum-scale-denominator`, default `f64::MAX` (Mapnik's
    /// `numeric_limits<double>::max()`).
    pub max_scale_denominator: f64,
    /// `buffer-size` overriding the map's, if set.
    pub buffer_size: Option<u32>,
    /// `<StyleName>`s, in drawing order: each style is a full pass over the
    /// layer's features.
    pub styles: Vec<String>,
    /// `group-by`: the field whose consecutive runs of equal values are
    /// drawn style by style, run by run (Mapnik's group rendering).
    pub group_by: Option<String>,
    /// `<Datasource>`; `None` for a layer without one (drawn as empty).
    pub datasource: Option<Datasource>,
    /// Line of the `<Layer>` element, in the file that holds it (an
    /// included file for a style split over files).
    pub line: u32,
}

impl Layer {
    /// Mapnik's `layer::visible`: active and within its scale bounds (with
    /// the 1e-6 tolerance).
    pub fn visible(&self, scale_denominator: f64) -> bool {
        self.active
            && scale_denominator >= self.min_scale_denominator - SCALE_EPSILON
            && scale_denominator < self.max_scale_denominator + SCALE_EPSILON
    }
}

/// Where a layer's data comes from. Everything is opened through GDAL later;
/// this is only the description.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Datasource {
    /// `type=shape`: an ESRI Shapefile. `file` always ends in `.shp` (Mapnik
    /// accepts it with or without the extension).
    Shape {
        /// The `.shp` file, resolved.
        file: PathBuf,
        /// `encoding` of the attribute table, if given (Mapnik's default is
        /// UTF-8).
        encoding: Option<String>,
    },
    /// `type=ogr` (and `type=geojson`, read as OGR layer 0): any OGR vector
    /// source.
    Ogr {
        /// The file (or OGR connection string), resolved when it is a path.
        file: PathBuf,
        /// Which layer of it.
        layer: OgrLayer,
    },
    /// `type=gdal`: a raster.
    Gdal {
        /// The raster file, resolved.
        file: PathBuf,
        /// `band` (1-based); `None` reads all bands as grey/RGB(A).
        band: Option<u32>,
        /// `nodata` override, if given.
        nodata: Option<f64>,
    },
    /// `type=postgis`, opened through GDAL's PostgreSQL driver.
    PostGis {
        /// A GDAL `PG:` connection string built from `host`, `port`,
        /// `dbname`, `user`, `password` and `connect_timeout`.
        connection: String,
        /// `table`: a table name or a `(SELECT ...) AS name` subquery, as
        /// written (Mapnik tokens such as `!bbox!` are left for the data
        /// layer).
        table: String,
        /// `geometry_field`, if given.
        geometry_field: Option<String>,
        /// `srid`, if given.
        srid: Option<i32>,
        /// `extent` (`minx,miny,maxx,maxy` in the data's SRID), if given:
        /// metatiles that do not meet it do not query the layer.
        extent: Option<[f64; 4]>,
    },
}

/// Which layer of an OGR source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OgrLayer {
    /// `layer`: by name.
    Name(String),
    /// `layer_by_index`: by 0-based index.
    Index(u32),
    /// `layer_by_sql`: the result of an SQL statement.
    Sql(String),
}
