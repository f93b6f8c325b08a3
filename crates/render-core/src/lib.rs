//! render-core: Mapnik-style maps over GDAL data, drawn with tiny-skia as
//! metatiles and encoded as PNG.
//!
//! A `Renderer` is created per worker thread and owns its GDAL datasets
//! (GDAL datasets may move between threads but must not be shared). GDAL and
//! tiny-skia types never appear in this crate's public API.
//!
//! # Layout
//! - [`style`]: the supported subset of Mapnik XML (`docs/styles.md`),
//!   loaded into plain types: [`Map`], [`Style`], [`Rule`], [`Layer`],
//!   [`Datasource`], the [`Symbolizer`]s and [`Color`].
//!   - [`style::mapnik_xml`]: the loader, with errors and warnings that name
//!     the file, line and element.
//!   - [`style::filter`]: Mapnik's filter expressions ([`Expr`]), evaluated
//!     over any [`FeatureView`].
//!   - [`style::symbolizer`]: symbolizers with Mapnik's defaults.
//!   - [`style::color`]: CSS colours as Mapnik parses them.
//!   - [`style::composite`]: `comp-op` ([`CompOp`]), Mapnik's compositing
//!     modes that tiny-skia draws alike.
//! - [`source`]: map data read through GDAL.
//!   - [`source::vector`]: vector data reprojected to EPSG:3857 once,
//!     indexed and simplified per zoom: [`VectorLayer`].
//!   - [`source::raster`]: rasters (`type=gdal`), checked once as a
//!     [`RasterSource`]; each worker opens its own [`RasterLayer`], which
//!     warps the raster into each metatile with `GDALWarp` (premultiplied
//!     RGBA, transparent where there is no data).
//! - `draw` (private): antialiased drawing of a metatile with tiny-skia.
//! - [`encode`]: PNG, 32-bit RGBA and 8-bit palette ([`TileFormat`]), and
//!   [`TileEncoder`], which encodes each single-colour tile once.
//! - [`renderer`]: [`MapSource`] (a style and its data, loaded once, shared
//!   by workers) and [`Renderer`] (one per worker: opens its own rasters,
//!   draws a metatile, cuts it, encodes the tiles). [`RenderOptions`] also
//!   sets the size of GDAL's block cache.
//! - [`place`]: the placement engine of a metatile ([`place::Collisions`]):
//!   which labels may go where, given what was placed before.
//! - [`image`]: PNG and SVG files (icons, markers, pattern tiles,
//!   shields) decoded once per worker, and their rasters cached per size,
//!   paint and opacity. SVG through usvg, painted with tiny-skia.
//! - `markers` (private): `MarkersSymbolizer` and `PointSymbolizer`
//!   anchors, placed through the placement engine, drawn from cached
//!   rasters or (turned with a line) from the vector.
//! - `patterns` (private): polygon patterns and line patterns (warp and
//!   repeat).
//! - [`text`]: fonts found by Mapnik's face names ([`FontBook`]), fallback
//!   chains, shaping with rustybuzz and glyph outlines, with per-worker
//!   caches. Knows nothing of Mapnik XML.
//! - [`error`]: [`Error`], [`FilterError`], [`ColorError`].
#![warn(missing_docs)]

mod draw;
pub mod encode;
pub mod error;
pub mod image;
mod labels;
mod markers;
mod patterns;
pub mod place;
pub mod renderer;
pub mod source;
pub mod style;
pub mod text;

pub use encode::{Compression, EncodeError, TileEncoder, TileFormat};
pub use renderer::{
    postgis_connections_for, LoadOptions, MapSource, MetatileImage, RenderOptions, RenderedTile,
    Renderer,
};
pub use source::{RasterLayer, RasterSource, SourceError, VectorLayer};
pub use text::{FontBook, FontChain, TextCaches};

pub use error::{ColorError, Error, FilterError, Location, Result};
pub use style::color::Color;
pub use style::composite::CompOp;
pub use style::filter::{CompareOp, Expr, FeatureView, GeometryType, Value};
pub use style::symbolizer::{
    Affine, GammaMethod, LineCap, LineJoin, LinePatternKind, LinePatternSymbolizer, LineSymbolizer,
    MarkerMultiPolicy, MarkerPlacement, MarkersSymbolizer, PaintOverride, PatternAlignment,
    PointPlacement, PointSymbolizer, PolygonPatternSymbolizer, PolygonSymbolizer, RasterSymbolizer,
    ScalingMethod, Symbolizer,
};
pub use style::text::{
    FontSet, HorizontalAlignment, JustifyAlignment, PathExpr, PlacementPosition, ShieldSymbolizer,
    TextExpr, TextPart, TextPlacement, TextSymbolizer, TextTransform, Upright, VerticalAlignment,
};
pub use style::{
    ActiveRules, Datasource, FilterMode, Layer, LoadedMap, Map, OgrLayer, Rule, RuleKind, Style,
    StyleWarning,
};
