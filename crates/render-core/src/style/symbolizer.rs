//! The symbolizers tessera draws, as plain data with Mapnik's defaults.
//!
//! Every `Default` impl gives exactly what Mapnik 3.x uses when the attribute
//! is absent from the XML, so a renderer never needs to know Mapnik's
//! defaults itself. Opacity attributes multiply the colour's own alpha.

use super::color::Color;
use super::composite::CompOp;
use super::text::{ShieldSymbolizer, TextSymbolizer};

/// One way of drawing a feature. A rule holds a list of them, drawn in order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Symbolizer {
    /// `<PolygonSymbolizer>`: fill polygon interiors.
    Polygon(PolygonSymbolizer),
    /// `<LineSymbolizer>`: stroke lines and polygon outlines.
    Line(LineSymbolizer),
    /// `<MarkersSymbolizer>`: an image or ellipse at points, along lines
    /// or inside polygons.
    Markers(MarkersSymbolizer),
    /// `<PointSymbolizer>`: an image centred on each feature.
    Point(PointSymbolizer),
    /// `<LinePatternSymbolizer>`: lines drawn with an image.
    LinePattern(LinePatternSymbolizer),
    /// `<PolygonPatternSymbolizer>`: polygons filled with an image.
    PolygonPattern(PolygonPatternSymbolizer),
    /// `<RasterSymbolizer>`: draw a raster layer.
    Raster(RasterSymbolizer),
    /// `<TextSymbolizer>`: a text label, placed by the label engine.
    Text(TextSymbolizer),
    /// `<ShieldSymbolizer>`: an image (PNG or SVG) with a label.
    Shield(ShieldSymbolizer),
}

/// `<PolygonSymbolizer>`.
#[derive(Debug, Clone, PartialEq)]
pub struct PolygonSymbolizer {
    /// `fill`, default `#808080` (Mapnik's gray).
    pub fill: Color,
    /// `fill-opacity`, default 1.
    pub fill_opacity: f64,
    /// `gamma`, default 1: how each edge pixel's coverage is adjusted
    /// before it is painted (see [`GammaMethod`]). Below 1 (with `power`)
    /// edges are painted more solidly, so that adjacent polygons leave no
    /// hairline seam between them.
    pub gamma: f64,
    /// `gamma-method`, default power.
    pub gamma_method: GammaMethod,
    /// `comp-op`, default src-over: how the fill is composited.
    pub comp_op: CompOp,
}

impl Default for PolygonSymbolizer {
    fn default() -> Self {
        PolygonSymbolizer {
            fill: Color::GRAY,
            fill_opacity: 1.0,
            gamma: 1.0,
            gamma_method: GammaMethod::Power,
            comp_op: CompOp::SrcOver,
        }
    }
}

/// `gamma-method` (and `stroke-gamma-method`): the function AGG's
/// rasteriser maps each pixel's coverage `x` (0 to 1) through, with the
/// symbolizer's `gamma` as its parameter `g` (Mapnik's `set_gamma_method`,
/// AGG's `agg_gamma_functions.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GammaMethod {
    /// `power` (default): `x^g` (0 stays 0).
    #[default]
    Power,
    /// `linear`: `x / g`, 0 below 0 and 1 above `g` (0 when `g <= 0`).
    Linear,
    /// `none`: `x`; `gamma` is not used.
    None,
    /// `threshold`: 0 below `g`, else 1 (no antialiasing).
    Threshold,
    /// `multiply`: `min(x·g, 1)`.
    Multiply,
}

impl GammaMethod {
    /// Parses Mapnik's keyword.
    pub fn from_keyword(s: &str) -> Option<Self> {
        match s {
            "power" => Some(GammaMethod::Power),
            "linear" => Some(GammaMethod::Linear),
            "none" => Some(GammaMethod::None),
            "threshold" => Some(GammaMethod::Threshold),
            "multiply" => Some(GammaMethod::Multiply),
            _ => None,
        }
    }

    /// The adjusted coverage of coverage `x` (both 0 to 1) with parameter
    /// `gamma`, as AGG computes it in `double`.
    pub fn apply(self, gamma: f64, x: f64) -> f64 {
        match self {
            GammaMethod::Power => {
                if x == 0.0 {
                    0.0
                } else {
                    x.powf(gamma)
                }
            }
            GammaMethod::Linear => {
                // agg::gamma_linear(0, gamma), with Mapnik's guard against
                // a zero-width ramp (mapnik issue 761).
                if x < 0.0 {
                    0.0
                } else if x > gamma {
                    1.0
                } else if gamma <= 0.0 {
                    0.0
                } else {
                    x / gamma
                }
            }
            GammaMethod::None => x,
            GammaMethod::Threshold => {
                if x < gamma {
                    0.0
                } else {
                    1.0
                }
            }
            GammaMethod::Multiply => (x * gamma).min(1.0),
        }
    }
}

/// `stroke-linecap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LineCap {
    /// `butt` (Mapnik's default).
    #[default]
    Butt,
    /// `round`.
    Round,
    /// `square`.
    Square,
}

impl LineCap {
    /// Parses Mapnik's keyword.
    pub fn from_keyword(s: &str) -> Option<Self> {
        match s {
            "butt" => Some(LineCap::Butt),
            "round" => Some(LineCap::Round),
            "square" => Some(LineCap::Square),
            _ => None,
        }
    }
}

/// `stroke-linejoin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LineJoin {
    /// `miter` (Mapnik's default): a miter longer than the limit is clipped
    /// at the limit (AGG's `miter_join`).
    #[default]
    Miter,
    /// `miter-revert`: a miter longer than the limit becomes a bevel.
    MiterRevert,
    /// `round`.
    Round,
    /// `bevel`.
    Bevel,
}

impl LineJoin {
    /// Parses Mapnik's keyword.
    pub fn from_keyword(s: &str) -> Option<Self> {
        match s {
            "miter" => Some(LineJoin::Miter),
            "miter-revert" => Some(LineJoin::MiterRevert),
            "round" => Some(LineJoin::Round),
            "bevel" => Some(LineJoin::Bevel),
            _ => None,
        }
    }
}

/// `<LineSymbolizer>`.
#[derive(Debug, Clone, PartialEq)]
pub struct LineSymbolizer {
    /// `stroke`, default black.
    pub stroke: Color,
    /// `stroke-width` in pixels (before the scale factor), default 1.
    pub stroke_width: f64,
    /// `stroke-opacity`, default 1.
    pub stroke_opacity: f64,
    /// `stroke-linecap`, default butt.
    pub stroke_linecap: LineCap,
    /// `stroke-linejoin`, default miter.
    pub stroke_linejoin: LineJoin,
    /// `stroke-miterlimit`, default 4.
    pub stroke_miterlimit: f64,
    /// `stroke-dasharray` as (dash, gap) pairs in pixels; empty means a solid
    /// line. An odd list is repeated to make it even and pairs that are both
    /// zero are dropped, as in Mapnik.
    pub stroke_dasharray: Vec<(f64, f64)>,
    /// `stroke-dashoffset`, default 0.
    pub stroke_dashoffset: f64,
    /// `offset`: a parallel offset in pixels (positive = left of the line
    /// direction, as in Mapnik), default 0.
    pub offset: f64,
    /// `clip`, default false (as in Mapnik): dashes run from each line's
    /// own start; with `true` the line is cut to the buffered image first
    /// and its dashes start at the cut.
    pub clip: bool,
    /// `stroke-gamma`, default 1: the outline's coverage adjustment, as
    /// [`PolygonSymbolizer::gamma`].
    pub stroke_gamma: f64,
    /// `stroke-gamma-method`, default power.
    pub stroke_gamma_method: GammaMethod,
    /// `comp-op`, default src-over: how the stroke is composited.
    pub comp_op: CompOp,
}

impl Default for LineSymbolizer {
    fn default() -> Self {
        LineSymbolizer {
            stroke: Color::BLACK,
            stroke_width: 1.0,
            stroke_opacity: 1.0,
            stroke_linecap: LineCap::Butt,
            stroke_linejoin: LineJoin::Miter,
            stroke_miterlimit: 4.0,
            stroke_dasharray: Vec::new(),
            stroke_dashoffset: 0.0,
            offset: 0.0,
            clip: false,
            stroke_gamma: 1.0,
            stroke_gamma_method: GammaMethod::Power,
            comp_op: CompOp::SrcOver,
        }
    }
}

/// Parses Mapnik's `stroke-dasharray`: numbers separated by commas and/or
/// whitespace, or `none`. Returns the (dash, gap) pairs, or `None` when the
/// text is not a list of non-negative numbers.
pub fn parse_dasharray(s: &str) -> Option<Vec<(f64, f64)>> {
    let s = s.trim();
    if s.is_empty() || s == "none" {
        return Some(Vec::new());
    }
    let mut values = Vec::new();
    for part in s.split(|c: char| c == ',' || c.is_whitespace()) {
        if part.is_empty() {
            continue;
        }
        let v: f64 = part.parse().ok()?;
        if !v.is_finite() || v < 0.0 {
            return None;
        }
        values.push(v);
    }
    if values.is_empty() {
        return None;
    }
    if values.len() % 2 == 1 {
        values.extend_from_within(..);
    }
    Some(
        values
            .chunks_exact(2)
            .map(|p| (p[0], p[1]))
            .filter(|&(dash, gap)| dash > 0.0 || gap > 0.0)
            .collect(),
    )
}

/// `placement` of `<MarkersSymbolizer>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MarkerPlacement {
    /// `point` (default): one marker per geometry, at a point or the
    /// centroid.
    #[default]
    Point,
    /// `interior`: one marker inside polygons.
    Interior,
    /// `line`: markers every `spacing` pixels along lines and outlines.
    Line,
    /// `vertex-first`: at the first vertex.
    VertexFirst,
    /// `vertex-last`: at the last vertex.
    VertexLast,
}

impl MarkerPlacement {
    /// Parses Mapnik's keyword.
    pub fn from_keyword(s: &str) -> Option<Self> {
        match s {
            "point" => Some(MarkerPlacement::Point),
            "interior" => Some(MarkerPlacement::Interior),
            "line" => Some(MarkerPlacement::Line),
            "vertex-first" => Some(MarkerPlacement::VertexFirst),
            "vertex-last" => Some(MarkerPlacement::VertexLast),
            _ => None,
        }
    }
}

/// `multi-policy` of `<MarkersSymbolizer>`: what a multi-geometry gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MarkerMultiPolicy {
    /// `each` (default): every part gets markers.
    #[default]
    Each,
    /// `whole`: one marker at the centroid of the whole geometry.
    Whole,
    /// `largest`: only the part with the largest bounding box.
    Largest,
}

impl MarkerMultiPolicy {
    /// Parses Mapnik's keyword.
    pub fn from_keyword(s: &str) -> Option<Self> {
        match s {
            "each" => Some(MarkerMultiPolicy::Each),
            "whole" => Some(MarkerMultiPolicy::Whole),
            "largest" => Some(MarkerMultiPolicy::Largest),
            _ => None,
        }
    }
}

/// Paint that a symbolizer puts over an SVG's own (Mapnik's
/// `push_explicit_style`): each value given replaces the file's, path by
/// path, on the paths that have that paint at all (a path with
/// `fill="none"` stays unfilled).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PaintOverride {
    /// `fill`.
    pub fill: Option<Color>,
    /// `fill-opacity`.
    pub fill_opacity: Option<f64>,
    /// `stroke`.
    pub stroke: Option<Color>,
    /// `stroke-width`, in the SVG's own units.
    pub stroke_width: Option<f64>,
    /// `stroke-opacity`.
    pub stroke_opacity: Option<f64>,
}

impl PaintOverride {
    /// True when nothing is overridden.
    pub fn is_empty(&self) -> bool {
        *self == PaintOverride::default()
    }

    /// A hashable fingerprint (for caches keyed by paint).
    pub fn key(&self) -> [u64; 5] {
        let colour = |c: Option<Color>| {
            c.map_or(u64::MAX, |c| {
                u64::from(u32::from_be_bytes([c.r, c.g, c.b, c.a]))
            })
        };
        let number = |v: Option<f64>| v.map_or(u64::MAX, f64::to_bits);
        [
            colour(self.fill),
            number(self.fill_opacity),
            colour(self.stroke),
            number(self.stroke_width),
            number(self.stroke_opacity),
        ]
    }
}

/// An affine transform (`transform="..."` of markers, points and
/// patterns), as SVG writes it: `matrix(a b c d e f)` maps (x, y) to
/// (a·x + c·y + e, b·x + d·y + f).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine(pub [f64; 6]);

impl Default for Affine {
    fn default() -> Self {
        Affine::IDENTITY
    }
}

impl Affine {
    /// The identity.
    pub const IDENTITY: Affine = Affine([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);

    /// `self` after `first`: the transform that applies `first`, then
    /// `self`.
    pub fn after(&self, first: &Affine) -> Affine {
        let [a, b, c, d, e, f] = self.0;
        let [a2, b2, c2, d2, e2, f2] = first.0;
        Affine([
            a * a2 + c * b2,
            b * a2 + d * b2,
            a * c2 + c * d2,
            b * c2 + d * d2,
            a * e2 + c * f2 + e,
            b * e2 + d * f2 + f,
        ])
    }

    /// Where `(x, y)` goes.
    pub fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        let [a, b, c, d, e, f] = self.0;
        (a * x + c * y + e, b * x + d * y + f)
    }

    /// The box around a rectangle `[x0, y0, x1, y1]` once transformed.
    pub fn bounds(&self, [x0, y0, x1, y1]: [f64; 4]) -> [f64; 4] {
        let corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)].map(|(x, y)| self.apply(x, y));
        let (mut min, mut max) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
        for (x, y) in corners {
            min = [min[0].min(x), min[1].min(y)];
            max = [max[0].max(x), max[1].max(y)];
        }
        [min[0], min[1], max[0], max[1]]
    }

    /// Parses an SVG transform list (`matrix`, `translate`, `scale`,
    /// `rotate` with an optional centre, `skewX`, `skewY`), as Mapnik
    /// accepts them; `None` when the text is not such a list.
    pub fn parse(text: &str) -> Option<Affine> {
        super::transform::parse(text)
    }
}

/// `<MarkersSymbolizer>`: an SVG or PNG image (`file`), or Mapnik's
/// built-in ellipse, at points, along lines or inside polygons.
///
/// The ellipse is Mapnik's stock `shape://ellipse`: 10×10 px, fill
/// `#0000ff`, stroke black 0.5 px, changed by the same paint attributes
/// that override an SVG's. When only one of `width` and `height` is given,
/// it is a circle of that size (Mapnik's `build_ellipse`); an image is
/// scaled to it keeping its proportions.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkersSymbolizer {
    /// `file`, resolved against the style's folder; `None` (or
    /// `shape://ellipse`) is the built-in ellipse.
    pub file: Option<std::path::PathBuf>,
    /// `fill`, `fill-opacity`, `stroke`, `stroke-width`, `stroke-opacity`
    /// as given.
    pub paint: PaintOverride,
    /// `width` in pixels, if given.
    pub width: Option<f64>,
    /// `height` in pixels, if given.
    pub height: Option<f64>,
    /// `opacity` of the whole marker, default 1.
    pub opacity: f64,
    /// `placement`, default point.
    pub placement: MarkerPlacement,
    /// `multi-policy`, default each.
    pub multi_policy: MarkerMultiPolicy,
    /// `spacing` between markers for line placement, default 100 px
    /// (Mapnik uses 100 for anything under 1).
    pub spacing: f64,
    /// `max-error`: how far (as a fraction of `spacing`) a line marker may
    /// move to find room, default 0.2.
    pub max_error: f64,
    /// `offset`: line markers follow a parallel line this many pixels to
    /// the left, default 0.
    pub offset: f64,
    /// `avoid-edges`, default false: when true a marker must lie wholly
    /// inside the metatile's image (without its buffer).
    pub avoid_edges: bool,
    /// `allow-overlap`, default **false**: like Mapnik, a marker that would
    /// overlap one already placed is skipped.
    pub allow_overlap: bool,
    /// `ignore-placement`, default false: when true the marker does not
    /// block later markers.
    pub ignore_placement: bool,
    /// `transform`, default identity.
    pub transform: Affine,
    /// `clip`, default false (as in Mapnik): when true, lines and polygons
    /// are cut to the buffered image before markers are placed on them
    /// (line markers then start from the cut).
    pub clip: bool,
    /// `comp-op`, default src-over: how the marker is composited.
    pub comp_op: CompOp,
}

impl Default for MarkersSymbolizer {
    fn default() -> Self {
        MarkersSymbolizer {
            file: None,
            paint: PaintOverride::default(),
            width: None,
            height: None,
            opacity: 1.0,
            placement: MarkerPlacement::Point,
            multi_policy: MarkerMultiPolicy::Each,
            spacing: 100.0,
            max_error: 0.2,
            offset: 0.0,
            avoid_edges: false,
            allow_overlap: false,
            ignore_placement: false,
            transform: Affine::IDENTITY,
            clip: false,
            comp_op: CompOp::SrcOver,
        }
    }
}

impl MarkersSymbolizer {
    /// The built-in ellipse's size in pixels (before the scale factor):
    /// 10×10, or `width`×`height`, or a circle of the one given.
    pub fn ellipse_size(&self) -> (f64, f64) {
        match (self.width, self.height) {
            (Some(w), Some(h)) => (w, h),
            (Some(d), None) | (None, Some(d)) => (d, d),
            (None, None) => (10.0, 10.0),
        }
    }

    /// The built-in ellipse's paint: the stock one, overridden.
    pub fn ellipse_paint(&self) -> PaintOverride {
        PaintOverride {
            fill: Some(self.paint.fill.unwrap_or(Color::BLUE)),
            fill_opacity: Some(self.paint.fill_opacity.unwrap_or(1.0)),
            stroke: Some(self.paint.stroke.unwrap_or(Color::BLACK)),
            stroke_width: Some(self.paint.stroke_width.unwrap_or(0.5)),
            stroke_opacity: Some(self.paint.stroke_opacity.unwrap_or(1.0)),
        }
    }
}

/// `placement` of `<PointSymbolizer>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PointPlacement {
    /// `centroid` (default): the centroid of the geometry.
    #[default]
    Centroid,
    /// `interior`: a point inside polygons.
    Interior,
}

/// `<PointSymbolizer>`: an image centred on each feature.
#[derive(Debug, Clone, PartialEq)]
pub struct PointSymbolizer {
    /// `file` (PNG or SVG), resolved against the style's folder; `None`
    /// draws Mapnik's default, a 4×4 black square.
    pub file: Option<std::path::PathBuf>,
    /// `opacity`, default 1.
    pub opacity: f64,
    /// `allow-overlap`, default false.
    pub allow_overlap: bool,
    /// `ignore-placement`, default false.
    pub ignore_placement: bool,
    /// `placement`, default centroid.
    pub placement: PointPlacement,
    /// `transform`, default identity.
    pub transform: Affine,
    /// `comp-op`, default src-over.
    pub comp_op: CompOp,
}

impl Default for PointSymbolizer {
    fn default() -> Self {
        PointSymbolizer {
            file: None,
            opacity: 1.0,
            allow_overlap: false,
            ignore_placement: false,
            placement: PointPlacement::Centroid,
            transform: Affine::IDENTITY,
            comp_op: CompOp::SrcOver,
        }
    }
}

/// `alignment` of pattern symbolizers: where the pattern's tiles start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PatternAlignment {
    /// `global` (default): at the map's origin, so patterns continue
    /// seamlessly across tiles and neighbouring features.
    #[default]
    Global,
    /// `local`: at the feature's first vertex.
    Local,
}

/// `<PolygonPatternSymbolizer>`: polygons filled with a repeated image.
#[derive(Debug, Clone, PartialEq)]
pub struct PolygonPatternSymbolizer {
    /// `file` (PNG or SVG), resolved against the style's folder.
    pub file: std::path::PathBuf,
    /// `alignment`, default global.
    pub alignment: PatternAlignment,
    /// `opacity`, default 1.
    pub opacity: f64,
    /// `gamma`, default 1 (as [`PolygonSymbolizer::gamma`]).
    pub gamma: f64,
    /// `gamma-method`, default power.
    pub gamma_method: GammaMethod,
    /// `transform` of the image, default identity.
    pub transform: Affine,
    /// `comp-op`, default src-over.
    pub comp_op: CompOp,
}

/// `line-pattern` of `<LinePatternSymbolizer>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LinePatternKind {
    /// `warp` (default, the classic form): the image laid along the line,
    /// its height across it, repeated along its length.
    #[default]
    Warp,
    /// `repeat`: the line is stroked (`stroke-width`, caps, joins, dashes)
    /// and the stroke filled with the image repeated as a polygon pattern.
    Repeat,
}

/// `<LinePatternSymbolizer>`: lines drawn with an image.
#[derive(Debug, Clone, PartialEq)]
pub struct LinePatternSymbolizer {
    /// `file` (PNG or SVG), resolved against the style's folder.
    pub file: std::path::PathBuf,
    /// `line-pattern`, default warp.
    pub kind: LinePatternKind,
    /// `opacity`, default 1.
    pub opacity: f64,
    /// `offset`: a parallel offset in pixels, default 0.
    pub offset: f64,
    /// `transform` of the image, default identity.
    pub transform: Affine,
    /// The stroke of the `repeat` form (`stroke-width`, default 1, caps,
    /// joins, miter limit, dashes); its colour and opacity are unused.
    pub stroke: LineSymbolizer,
    /// `alignment` of the `repeat` form, default global.
    pub alignment: PatternAlignment,
    /// `comp-op`, default src-over.
    pub comp_op: CompOp,
}

/// `scaling` of `<RasterSymbolizer>`: the resampling filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[allow(missing_docs)] // The variants are Mapnik's (AGG's) filter names.
pub enum ScalingMethod {
    /// `near` (default; `fast` is a deprecated alias).
    #[default]
    Near,
    Bilinear,
    Bicubic,
    Spline16,
    Spline36,
    Hanning,
    Hamming,
    Hermite,
    Kaiser,
    Quadric,
    Catrom,
    Gaussian,
    Bessel,
    Mitchell,
    Sinc,
    Lanczos,
    Blackman,
}

impl ScalingMethod {
    /// Parses Mapnik's keyword.
    pub fn from_keyword(s: &str) -> Option<Self> {
        use ScalingMethod::*;
        Some(match s {
            "near" | "fast" => Near,
            "bilinear" => Bilinear,
            "bicubic" => Bicubic,
            "spline16" => Spline16,
            "spline36" => Spline36,
            "hanning" => Hanning,
            "hamming" => Hamming,
            "hermite" => Hermite,
            "kaiser" => Kaiser,
            "quadric" => Quadric,
            "catrom" => Catrom,
            "gaussian" => Gaussian,
            "bessel" => Bessel,
            "mitchell" => Mitchell,
            "sinc" => Sinc,
            "lanczos" => Lanczos,
            "blackman" => Blackman,
            _ => return None,
        })
    }
}

/// `<RasterSymbolizer>`.
#[derive(Debug, Clone, PartialEq)]
pub struct RasterSymbolizer {
    /// `opacity`, default 1.
    pub opacity: f64,
    /// `scaling`, default near.
    pub scaling: ScalingMethod,
    /// `comp-op`, default src-over: how the warped raster is composited.
    pub comp_op: CompOp,
}

impl Default for RasterSymbolizer {
    fn default() -> Self {
        RasterSymbolizer {
            opacity: 1.0,
            scaling: ScalingMethod::Near,
            comp_op: CompOp::SrcOver,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapnik_defaults() {
        let p = PolygonSymbolizer::default();
        assert_eq!((p.fill, p.fill_opacity), (Color::rgb(128, 128, 128), 1.0));
        let l = LineSymbolizer::default();
        assert_eq!(l.stroke, Color::BLACK);
        assert_eq!(l.stroke_width, 1.0);
        assert_eq!(l.stroke_linecap, LineCap::Butt);
        assert_eq!(l.stroke_linejoin, LineJoin::Miter);
        assert_eq!(l.stroke_miterlimit, 4.0);
        assert!(l.stroke_dasharray.is_empty());
        let m = MarkersSymbolizer::default();
        assert_eq!(m.ellipse_size(), (10.0, 10.0));
        let ellipse = m.ellipse_paint();
        assert_eq!(ellipse.stroke_width, Some(0.5));
        assert_eq!(
            (ellipse.fill, ellipse.stroke),
            (Some(Color::BLUE), Some(Color::BLACK))
        );
        assert!(!m.allow_overlap);
        assert_eq!((m.spacing, m.max_error), (100.0, 0.2));
        let circle = MarkersSymbolizer {
            width: Some(6.0),
            ..MarkersSymbolizer::default()
        };
        assert_eq!(circle.ellipse_size(), (6.0, 6.0));
        let r = RasterSymbolizer::default();
        assert_eq!((r.opacity, r.scaling), (1.0, ScalingMethod::Near));
    }

    #[test]
    fn dasharray_forms() {
        assert_eq!(parse_dasharray("4,2"), Some(vec![(4.0, 2.0)]));
        assert_eq!(parse_dasharray("4 2"), Some(vec![(4.0, 2.0)]));
        assert_eq!(
            parse_dasharray(" 4, 2 ,1 3 "),
            Some(vec![(4.0, 2.0), (1.0, 3.0)])
        );
        assert_eq!(parse_dasharray("5"), Some(vec![(5.0, 5.0)]));
        assert_eq!(
            parse_dasharray("1,2,3"),
            Some(vec![(1.0, 2.0), (3.0, 1.0), (2.0, 3.0)])
        );
        assert_eq!(parse_dasharray("0,0,4,2"), Some(vec![(4.0, 2.0)]));
        assert_eq!(parse_dasharray("none"), Some(vec![]));
        assert_eq!(parse_dasharray("0"), Some(vec![]));
        assert_eq!(parse_dasharray("4,x"), None);
        assert_eq!(parse_dasharray("-1,2"), None);
        assert_eq!(parse_dasharray(","), None);
    }

    #[test]
    fn keywords() {
        assert_eq!(LineJoin::from_keyword("miter"), Some(LineJoin::Miter));
        assert_eq!(
            LineJoin::from_keyword("miter-revert"),
            Some(LineJoin::MiterRevert)
        );
        assert_eq!(LineJoin::from_keyword("Round"), None);
        assert_eq!(LineCap::from_keyword("square"), Some(LineCap::Square));
        assert_eq!(
            ScalingMethod::from_keyword("fast"),
            Some(ScalingMethod::Near)
        );
        assert_eq!(
            ScalingMethod::from_keyword("lanczos"),
            Some(ScalingMethod::Lanczos)
        );
        assert_eq!(
            MarkerPlacement::from_keyword("line"),
            Some(MarkerPlacement::Line)
        );
        assert_eq!(
            MarkerMultiPolicy::from_keyword("whole"),
            Some(MarkerMultiPolicy::Whole)
        );
        assert_eq!(
            GammaMethod::from_keyword("threshold"),
            Some(GammaMethod::Threshold)
        );
        assert_eq!(GammaMethod::from_keyword("Power"), None);
    }

    #[test]
    fn gamma_functions_are_aggs() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        // power: x^g, and 0 stays 0 even for g = 0.
        assert!(close(GammaMethod::Power.apply(0.5, 0.25), 0.5));
        assert_eq!(GammaMethod::Power.apply(0.0, 0.0), 0.0);
        assert_eq!(GammaMethod::Power.apply(0.0, 0.3), 1.0);
        // linear: a ramp from 0 to g.
        assert!(close(GammaMethod::Linear.apply(0.5, 0.25), 0.5));
        assert_eq!(GammaMethod::Linear.apply(0.5, 0.75), 1.0);
        assert_eq!(GammaMethod::Linear.apply(0.0, 0.0), 0.0);
        // none: unchanged whatever g is.
        assert_eq!(GammaMethod::None.apply(7.0, 0.3), 0.3);
        // threshold: a step at g.
        assert_eq!(GammaMethod::Threshold.apply(0.5, 0.49), 0.0);
        assert_eq!(GammaMethod::Threshold.apply(0.5, 0.5), 1.0);
        // multiply: x·g, at most 1.
        assert!(close(GammaMethod::Multiply.apply(2.0, 0.3), 0.6));
        assert_eq!(GammaMethod::Multiply.apply(2.0, 0.8), 1.0);
    }
}
