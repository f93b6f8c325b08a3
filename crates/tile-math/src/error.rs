//! The one error type of tile-math.
//!
//! tile-math has no dependencies, so `Display` and `Error` are written out by
//! hand instead of derived with `thiserror`.

use std::fmt;

/// Everything that can be wrong with the input of a tile-math function.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TileMathError {
    /// A zoom level above [`crate::MAX_ZOOM`].
    ZoomOutOfRange {
        /// The zoom that was asked for.
        zoom: u32,
    },
    /// A tile column or row outside `0..2^z`.
    TileOutOfRange {
        /// Zoom of the tile.
        z: u8,
        /// Column asked for.
        x: u32,
        /// Row asked for.
        y: u32,
    },
    /// A coordinate that is NaN or infinite.
    NotFinite {
        /// Which coordinate, e.g. `"longitude"`.
        what: &'static str,
    },
    /// A longitude outside ±180° or a latitude outside ±90° when truncation
    /// was not asked for.
    OutOfWorld {
        /// Which coordinate.
        what: &'static str,
        /// Its value.
        value: f64,
    },
    /// A bounding box whose south edge is north of its north edge.
    InvertedBbox {
        /// South edge (degrees or metres).
        south: f64,
        /// North edge.
        north: f64,
    },
    /// A zoom range whose first zoom is above its last.
    InvertedZoomRange {
        /// First zoom.
        min: u8,
        /// Last zoom.
        max: u8,
    },
    /// A relation asked for a zoom on the wrong side of the tile's own zoom
    /// (a parent at a deeper zoom, children at a shallower one).
    InvalidRelativeZoom {
        /// The tile's zoom.
        tile_zoom: u8,
        /// The zoom that was asked for.
        zoom: u8,
    },
    /// A quadkey with a character other than `0`-`3`, or longer than
    /// [`crate::MAX_ZOOM`].
    InvalidQuadkey {
        /// The offending quadkey.
        quadkey: String,
    },
    /// A metatile size of 0.
    InvalidMetatileSize,
    /// A pixel size of 0, or a buffer that makes an image too large.
    InvalidPixelSize {
        /// Tile size in pixels.
        tile_size: u32,
    },
}

impl fmt::Display for TileMathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZoomOutOfRange { zoom } => {
                write!(f, "zoom {zoom} is out of range (0..={})", crate::MAX_ZOOM)
            }
            Self::TileOutOfRange { z, x, y } => {
                let last = (1u64 << z) - 1;
                write!(
                    f,
                    "tile {z}/{x}/{y} is outside zoom {z} (x and y must be 0..={last})"
                )
            }
            Self::NotFinite { what } => write!(f, "{what} is not a finite number"),
            Self::OutOfWorld { what, value } => {
                let limit = if *what == "latitude" { 90 } else { 180 };
                write!(
                    f,
                    "{what} {value} is outside ±{limit}° (ask for truncation to clamp it)"
                )
            }
            Self::InvertedBbox { south, north } => {
                write!(
                    f,
                    "bbox south edge {south} is north of its north edge {north}"
                )
            }
            Self::InvertedZoomRange { min, max } => {
                write!(f, "zoom range {min}-{max} is inverted")
            }
            Self::InvalidRelativeZoom { tile_zoom, zoom } => {
                write!(
                    f,
                    "zoom {zoom} is on the wrong side of the tile's zoom {tile_zoom}"
                )
            }
            Self::InvalidQuadkey { quadkey } => write!(
                f,
                "invalid quadkey {quadkey:?}: only digits 0-3, at most {} of them",
                crate::MAX_ZOOM
            ),
            Self::InvalidMetatileSize => write!(f, "a metatile must be at least 1×1 tiles"),
            Self::InvalidPixelSize { tile_size } => {
                write!(
                    f,
                    "tile size {tile_size} px is not usable (1..=65536, with the buffer)"
                )
            }
        }
    }
}

impl std::error::Error for TileMathError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync_and_static() {
        fn assert_bounds<T: std::error::Error + Send + Sync + 'static>() {}
        assert_bounds::<TileMathError>();
    }

    #[test]
    fn messages_name_the_problem() {
        let e = TileMathError::TileOutOfRange { z: 2, x: 4, y: 0 };
        assert_eq!(
            e.to_string(),
            "tile 2/4/0 is outside zoom 2 (x and y must be 0..=3)"
        );
        let e = TileMathError::OutOfWorld {
            what: "latitude",
            value: 91.0,
        };
        assert!(e.to_string().contains("±90°"));
    }
}
