//! Map data, read through GDAL and kept as plain Rust values in Web
//! Mercator metres.
//!
//! - [`geometry`]: our geometry type, simplification, and the antimeridian
//!   fix for rings that jump from +180° to -180°.
//! - [`vector`]: OGR sources (Shapefile, GeoPackage, GeoJSON, PostGIS, ...)
//!   loaded once, reprojected, indexed with an R-tree.

pub mod geometry;
pub mod vector;

pub use geometry::{Geometry, Point};
pub use vector::{Feature, Found, SourceError, VectorLayer};
