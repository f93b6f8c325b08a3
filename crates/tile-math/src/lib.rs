//! Web Mercator (EPSG:3857) XYZ tile math: the Rust answer to Python's
//! [mercantile](https://github.com/mapbox/mercantile), plus what a tile
//! *renderer* needs on top (metatiles, pixel transforms, Mapnik scale
//! denominators, viewports).
//!
//! The crate has no dependencies and no `unsafe`. Every value that can be
//! invalid is checked when it is built: a [`TileCoord`] always lies inside its
//! zoom level, and NaN or infinite coordinates give a [`TileMathError`] instead
//! of a nonsense tile.
//!
//! # Layout
//! - [`mercator`] — constants, [`LngLat`], [`MercatorPoint`] and the projection
//!   between them; the tile that holds a point ([`tile_for_lnglat`]).
//! - [`tile`] — [`TileCoord`] and its relations: parent, children, neighbours,
//!   quadkeys, the TMS flip, bounds and [`simplify`].
//! - [`bbox`] — [`LngLatBbox`], [`MercatorBbox`] and [`bounding_tile`].
//! - [`cover`] — [`tiles_covering`], a lazy iterator over the tiles of a bbox
//!   over a zoom range, split at the antimeridian, in mercantile's order.
//! - [`metatile`] — [`Metatile`], N×N blocks of tiles rendered in one go.
//! - [`render`] — [`PixelTransform`] (metres ↔ pixels for a tile or metatile,
//!   with a buffer) and [`scale_denominator`] in Mapnik's convention.
//! - [`viewport`] — [`Viewport`], the tiles a user is looking at, the ring of
//!   neighbours around them and their distance from the centre, for the
//!   render scheduler.
//! - [`error`] — the one error type, [`TileMathError`].
//!
//! # Conventions
//! - Tiles are XYZ ("slippy map"): `x` grows east, `y` grows south, tile
//!   `0/0/0` is the whole world. [`TileCoord::flip_y`] converts to and from TMS.
//! - Latitudes are clamped to ±[`MAX_LATITUDE`] before they are projected, so
//!   a point at lat 89° or 90° is on row 0, never on a mirrored row.
//! - Functions that mirror a mercantile function say so, and the tests compare
//!   them with tables produced by mercantile 1.2.1.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bbox;
pub mod cover;
pub mod error;
pub mod mercator;
pub mod metatile;
pub mod render;
pub mod tile;
pub mod viewport;

pub use bbox::{bounding_tile, LngLatBbox, MercatorBbox};
pub use cover::{tiles_covering, TileCover};
pub use error::TileMathError;
pub use mercator::{
    tile_for_lnglat, LngLat, MercatorPoint, EARTH_CIRCUMFERENCE, EARTH_RADIUS, MAX_LATITUDE,
    MAX_MERCATOR,
};
pub use metatile::{Metatile, DEFAULT_METATILE_SIZE};
pub use render::{scale_denominator, PixelTransform, MAPNIK_PIXEL_SIZE_M};
pub use tile::{simplify, TileCoord, MAX_ZOOM};
pub use viewport::{TileRange, Viewport};

/// A `Result` whose error is [`TileMathError`].
pub type Result<T, E = TileMathError> = std::result::Result<T, E>;
