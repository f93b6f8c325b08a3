//! render-core: Mapnik-style maps over GDAL data, drawn with tiny-skia as
//! metatiles and encoded as PNG.
//!
//! A `Renderer` is created per worker thread and owns its GDAL datasets
//! (GDAL datasets may move between threads but must not be shared). GDAL and
//! tiny-skia types never appear in this crate's public API.
//!
//! # Layout (being built; see the render-core issue)
//! - `style`: the supported subset of Mapnik XML (`docs/styles.md`).
//! - `source`: vector and raster data read through GDAL, reprojected to
//!   EPSG:3857 once and indexed.
//! - `draw`: antialiased drawing of a metatile with tiny-skia.
//! - `encode`: PNG encoding, 32-bit RGBA and 8-bit palette.
//!
//! Nothing is public yet: the crate is a skeleton that compiles.
#![warn(missing_docs)]
