//! Bounding boxes in degrees and in metres, and the smallest tile around a bbox.

use std::fmt;
use std::str::FromStr;

use crate::mercator::{checked_lnglat, unit_to_index, unit_xy};
use crate::{LngLat, Result, TileCoord, TileMathError};

/// Nudge used by mercantile so that a bbox equal to a tile's bounds does not
/// spill into the next tile east or south (`LL_EPSILON`).
pub(crate) const LL_EPSILON: f64 = 1e-11;

/// A geographic bounding box in decimal degrees.
///
/// `west > east` means the box crosses the antimeridian (from `west` east to
/// 180°, then from -180° east to `east`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LngLatBbox {
    /// Western edge, degrees.
    pub west: f64,
    /// Southern edge, degrees.
    pub south: f64,
    /// Eastern edge, degrees.
    pub east: f64,
    /// Northern edge, degrees.
    pub north: f64,
}

/// A Web Mercator bounding box in metres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MercatorBbox {
    /// Smallest x.
    pub left: f64,
    /// Smallest y.
    pub bottom: f64,
    /// Largest x.
    pub right: f64,
    /// Largest y.
    pub top: f64,
}

impl LngLatBbox {
    /// A bbox from its four edges. Checked by the functions that use it
    /// (see [`LngLatBbox::validate`]).
    pub const fn new(west: f64, south: f64, east: f64, north: f64) -> Self {
        Self {
            west,
            south,
            east,
            north,
        }
    }

    /// Whether the box crosses the antimeridian (`west > east`).
    pub fn crosses_antimeridian(&self) -> bool {
        self.west > self.east
    }

    /// Checks that every edge is finite, inside ±180°/±90°, and that the
    /// south edge is not north of the north edge.
    pub fn validate(&self) -> Result<()> {
        checked_lnglat(LngLat::new(self.west, self.south), false, true)?;
        checked_lnglat(LngLat::new(self.east, self.north), false, true)?;
        if self.south > self.north {
            return Err(TileMathError::InvertedBbox {
                south: self.south,
                north: self.north,
            });
        }
        Ok(())
    }

    /// The same box in Web Mercator metres (latitudes clamped to the
    /// projected world). A box across the antimeridian gets `left > right`.
    pub fn to_mercator(&self) -> Result<MercatorBbox> {
        self.validate()?;
        let sw = LngLat::new(self.west, self.south).to_mercator(false)?;
        let ne = LngLat::new(self.east, self.north).to_mercator(false)?;
        Ok(MercatorBbox {
            left: sw.x,
            bottom: sw.y,
            right: ne.x,
            top: ne.y,
        })
    }
}

/// Parses `W,S,E,N` in degrees, the form `--bbox` takes.
impl FromStr for LngLatBbox {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let values: Vec<f64> = s
            .split(',')
            .map(|v| v.trim().parse::<f64>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| format!("{s:?} is not a bbox: expected W,S,E,N in degrees"))?;
        let [west, south, east, north] = values[..] else {
            return Err(format!(
                "{s:?} is not a bbox: expected 4 numbers W,S,E,N, got {}",
                values.len()
            ));
        };
        let bbox = LngLatBbox {
            west,
            south,
            east,
            north,
        };
        bbox.validate().map_err(|e| format!("bbox {s:?}: {e}"))?;
        Ok(bbox)
    }
}

impl fmt::Display for LngLatBbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{},{},{},{}",
            self.west, self.south, self.east, self.north
        )
    }
}

impl MercatorBbox {
    /// A bbox from its four edges in metres.
    pub const fn new(left: f64, bottom: f64, right: f64, top: f64) -> Self {
        Self {
            left,
            bottom,
            right,
            top,
        }
    }

    /// Width in metres.
    pub fn width(&self) -> f64 {
        self.right - self.left
    }

    /// Height in metres.
    pub fn height(&self) -> f64 {
        self.top - self.bottom
    }

    /// Whether the two boxes share any area or edge.
    pub fn intersects(&self, other: &MercatorBbox) -> bool {
        self.left <= other.right
            && other.left <= self.right
            && self.bottom <= other.top
            && other.bottom <= self.top
    }

    /// The box grown by `margin` metres on every side.
    pub fn expanded(&self, margin: f64) -> MercatorBbox {
        MercatorBbox {
            left: self.left - margin,
            bottom: self.bottom - margin,
            right: self.right + margin,
            top: self.top + margin,
        }
    }
}

/// The smallest tile that contains a bbox, like mercantile's `bounding_tile`.
/// A box that spans the equator or the prime meridian (or the antimeridian)
/// gives `0/0/0`; the deepest answer is zoom 28, as in mercantile.
///
/// Differences from mercantile: a latitude of ±90° is clamped to the
/// projected world instead of giving up with `0/0/0`, and with `truncate`
/// off, a coordinate outside the globe is an error.
pub fn bounding_tile(bbox: LngLatBbox, truncate: bool) -> Result<TileCoord> {
    const DEEPEST: u8 = 28;
    let nw = checked_lnglat(LngLat::new(bbox.west, bbox.north), truncate, true)?;
    let se = checked_lnglat(LngLat::new(bbox.east, bbox.south), truncate, true)?;
    // mercantile looks the corners up at zoom 32, one bit per level.
    let z2 = 2f64.powi(32);
    let (x0, y0) = unit_xy(nw);
    let (x1, y1) = unit_xy(LngLat::new(se.lng - LL_EPSILON, se.lat + LL_EPSILON));
    let cell = [
        unit_to_index(x0, z2),
        unit_to_index(y0, z2),
        unit_to_index(x1, z2),
        unit_to_index(y1, z2),
    ];
    let zoom = (0..DEEPEST)
        .find(|z| {
            let mask = 1u32 << (31 - z);
            (cell[0] & mask) != (cell[2] & mask) || (cell[1] & mask) != (cell[3] & mask)
        })
        .unwrap_or(DEEPEST);
    if zoom == 0 {
        return Ok(TileCoord::WORLD);
    }
    let shift = 32 - u32::from(zoom);
    TileCoord::new(zoom, cell[0] >> shift, cell[1] >> shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_w_s_e_n() {
        let b: LngLatBbox = "24.9,60.15,25.0,60.2".parse().unwrap();
        assert_eq!(b, LngLatBbox::new(24.9, 60.15, 25.0, 60.2));
        assert!("1,2,3"
            .parse::<LngLatBbox>()
            .unwrap_err()
            .contains("4 numbers"));
        assert!("a,2,3,4".parse::<LngLatBbox>().is_err());
        assert!("0,10,1,5"
            .parse::<LngLatBbox>()
            .unwrap_err()
            .contains("north"));
        assert!("0,0,1,95"
            .parse::<LngLatBbox>()
            .unwrap_err()
            .contains("±90"));
        assert!("NaN,0,1,5"
            .parse::<LngLatBbox>()
            .unwrap_err()
            .contains("finite"));
    }

    #[test]
    fn antimeridian_box_is_recognised() {
        let b = LngLatBbox::new(170.0, -10.0, -170.0, 10.0);
        assert!(b.crosses_antimeridian());
        let m = b.to_mercator().unwrap();
        assert!(m.left > m.right);
        assert_eq!(bounding_tile(b, false).unwrap(), TileCoord::WORLD);
    }

    #[test]
    fn polar_bbox_is_clamped_not_given_up() {
        let t = bounding_tile(LngLatBbox::new(10.0, 86.0, 20.0, 90.0), false).unwrap();
        assert!(t.z() > 0);
        assert_eq!(t.y(), 0);
    }
}
