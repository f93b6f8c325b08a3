//! Map data, read through GDAL and kept as plain Rust values in Web
//! Mercator metres.
//!
//! - [`geometry`]: our geometry type, simplification, and the antimeridian
//!   fix for rings that jump from +180° to -180°.
//! - [`vector`]: OGR sources (Shapefile, GeoPackage, GeoJSON, PostGIS, ...)
//!   loaded once, reprojected, indexed with an R-tree.
//! - [`file_tiles`]: vector files too large to hold, read per metatile
//!   through OGR's spatial filter.
//! - [`postgis`]: PostGIS layers queried per metatile (Mapnik's tokens,
//!   one connection per worker, reconnection after failures).
//! - [`query_ahead`]: a worker's PostGIS queries run on a thread of their
//!   own, ahead of the drawing, so the database and the drawing overlap.
//! - [`raster`]: GDAL rasters (`type=gdal`): a [`RasterSource`] checked once
//!   and shared, and a [`RasterLayer`] per worker that warps the raster into
//!   each metatile with `GDALWarp`.

mod ewkb;
pub mod file_tiles;
pub mod geometry;
pub mod postgis;
pub mod query_ahead;
pub mod raster;
pub mod vector;

pub use file_tiles::{FileLayer, FileReaders};
pub use geometry::{Geometry, Point};
pub use postgis::{PostgisConnections, PostgisLayer, QueryArea};
pub use query_ahead::{LayerQuery, PostgisCounts, QueryAhead};
pub use raster::{gdal_resampling, RasterLayer, RasterSource};
pub use vector::{Feature, Found, SourceError, VectorLayer};
