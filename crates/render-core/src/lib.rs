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
//! - [`error`]: [`Error`], [`FilterError`], [`ColorError`].
//!
//! Still to come (see the render-core issue): `source` (vector and raster data
//! read through GDAL, reprojected to EPSG:3857 once and indexed), `draw`
//! (antialiased drawing of a metatile with tiny-skia) and `encode` (PNG,
//! 32-bit RGBA and 8-bit palette).
#![warn(missing_docs)]

pub mod error;
pub mod style;

pub use error::{ColorError, Error, FilterError, Location, Result};
pub use style::color::Color;
pub use style::filter::{CompareOp, Expr, FeatureView, GeometryType, Value};
pub use style::symbolizer::{
    LineCap, LineJoin, LineSymbolizer, MarkerMultiPolicy, MarkerPlacement, MarkersSymbolizer,
    PolygonSymbolizer, RasterSymbolizer, ScalingMethod, Symbolizer,
};
pub use style::{
    ActiveRules, Datasource, FilterMode, Layer, LoadedMap, Map, OgrLayer, Rule, RuleKind, Style,
    StyleWarning,
};
