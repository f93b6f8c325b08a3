//! [`TileCoord`], one XYZ tile, and how tiles relate to each other.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use crate::mercator::{EARTH_CIRCUMFERENCE, MAX_MERCATOR};
use crate::{LngLat, LngLatBbox, MercatorBbox, Result, TileMathError};

/// The deepest zoom level tile-math accepts. At zoom 30 a tile is about
/// 3.7 cm wide at the equator, and `x`, `y` still fit in a `u32`.
pub const MAX_ZOOM: u8 = 30;

/// One tile of the XYZ scheme: zoom `z`, column `x` (east), row `y` (south).
///
/// The fields are private and checked when the tile is built, so a
/// `TileCoord` always exists: `z <= 30` and `x, y < 2^z`.
///
/// Tiles order by zoom, then `x`, then `y`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileCoord {
    z: u8,
    x: u32,
    y: u32,
}

/// The order mercantile lists a tile's four children in: top-left,
/// top-right, bottom-right, bottom-left (clockwise from the north-west).
const CLOCKWISE: [(u32, u32); 4] = [(0, 0), (1, 0), (1, 1), (0, 1)];

impl TileCoord {
    /// The tile `z/x/y`, or an error if `z > 30` or `x`, `y` are not below `2^z`.
    pub fn new(z: u8, x: u32, y: u32) -> Result<Self> {
        if z > MAX_ZOOM {
            return Err(TileMathError::ZoomOutOfRange { zoom: u32::from(z) });
        }
        let n = 1u64 << z;
        if u64::from(x) >= n || u64::from(y) >= n {
            return Err(TileMathError::TileOutOfRange { z, x, y });
        }
        Ok(Self { z, x, y })
    }

    /// The whole world, `0/0/0`.
    pub const WORLD: TileCoord = TileCoord { z: 0, x: 0, y: 0 };

    /// Zoom level.
    pub const fn z(self) -> u8 {
        self.z
    }

    /// Column, counted east from the antimeridian.
    pub const fn x(self) -> u32 {
        self.x
    }

    /// Row, counted south from the north edge.
    pub const fn y(self) -> u32 {
        self.y
    }

    /// How many tiles there are across the world at this tile's zoom.
    pub const fn tiles_across(self) -> u64 {
        1u64 << self.z
    }

    /// The tile that contains this one, one zoom up; `None` for `0/0/0`.
    pub fn parent(self) -> Option<TileCoord> {
        (self.z > 0).then(|| TileCoord {
            z: self.z - 1,
            x: self.x >> 1,
            y: self.y >> 1,
        })
    }

    /// The tile at `zoom` (not deeper than this tile) that contains this one,
    /// like mercantile's `parent(tile, zoom=...)`. `ancestor(self.z())` is the
    /// tile itself.
    pub fn ancestor(self, zoom: u8) -> Result<TileCoord> {
        if zoom > self.z {
            return Err(TileMathError::InvalidRelativeZoom {
                tile_zoom: self.z,
                zoom,
            });
        }
        let shift = self.z - zoom;
        Ok(TileCoord {
            z: zoom,
            x: self.x >> shift,
            y: self.y >> shift,
        })
    }

    /// The four tiles one zoom down, in mercantile's order (top-left,
    /// top-right, bottom-right, bottom-left); an error at zoom 30.
    pub fn children(self) -> Result<[TileCoord; 4]> {
        if self.z >= MAX_ZOOM {
            return Err(TileMathError::ZoomOutOfRange {
                zoom: u32::from(self.z) + 1,
            });
        }
        Ok(CLOCKWISE.map(|(dx, dy)| TileCoord {
            z: self.z + 1,
            x: self.x * 2 + dx,
            y: self.y * 2 + dy,
        }))
    }

    /// All tiles at `zoom` inside this one, lazily, in mercantile's order for
    /// `children(tile, zoom=...)` (each level clockwise, depth first).
    /// `descendants(self.z())` yields the tile itself.
    pub fn descendants(self, zoom: u8) -> Result<Descendants> {
        if zoom > MAX_ZOOM {
            return Err(TileMathError::ZoomOutOfRange {
                zoom: u32::from(zoom),
            });
        }
        if zoom < self.z {
            return Err(TileMathError::InvalidRelativeZoom {
                tile_zoom: self.z,
                zoom,
            });
        }
        let depth = u32::from(zoom - self.z);
        Ok(Descendants {
            root: self,
            depth,
            next: 0,
            end: 1u64 << (2 * depth),
        })
    }

    /// The up to eight tiles around this one at the same zoom, like
    /// mercantile's `neighbors`: column by column from the west, north to
    /// south, leaving out tiles beyond the edges of the world (no wrapping
    /// at the antimeridian; see [`crate::Viewport`] for that).
    pub fn neighbors(self) -> Vec<TileCoord> {
        let last = (self.tiles_across() - 1) as i64;
        let mut out = Vec::with_capacity(8);
        for dx in -1i64..=1 {
            for dy in -1i64..=1 {
                let (x, y) = (i64::from(self.x) + dx, i64::from(self.y) + dy);
                if (dx, dy) == (0, 0) || x < 0 || y < 0 || x > last || y > last {
                    continue;
                }
                out.push(TileCoord {
                    z: self.z,
                    x: x as u32,
                    y: y as u32,
                });
            }
        }
        out
    }

    /// The Bing Maps quadkey: one digit `0`-`3` per zoom level, empty at zoom 0.
    pub fn quadkey(self) -> String {
        (1..=self.z)
            .rev()
            .map(|level| {
                let mask = 1u32 << (level - 1);
                let digit = u8::from(self.x & mask != 0) + 2 * u8::from(self.y & mask != 0);
                char::from(b'0' + digit)
            })
            .collect()
    }

    /// The tile of a quadkey; the empty quadkey is `0/0/0`.
    pub fn from_quadkey(quadkey: &str) -> Result<TileCoord> {
        let invalid = || TileMathError::InvalidQuadkey {
            quadkey: quadkey.to_owned(),
        };
        if quadkey.len() > usize::from(MAX_ZOOM) {
            return Err(invalid());
        }
        let (mut x, mut y) = (0u32, 0u32);
        for byte in quadkey.bytes() {
            let digit = match byte {
                b'0'..=b'3' => u32::from(byte - b'0'),
                _ => return Err(invalid()),
            };
            x = (x << 1) | (digit & 1);
            y = (y << 1) | (digit >> 1);
        }
        // The length was checked, so this is a valid zoom and x, y fit.
        TileCoord::new(quadkey.len() as u8, x, y)
    }

    /// Converts between XYZ and TMS rows (TMS counts rows from the south).
    /// The flip is its own inverse.
    pub fn flip_y(self) -> TileCoord {
        let last = (self.tiles_across() - 1) as u32;
        TileCoord {
            z: self.z,
            x: self.x,
            y: last - self.y,
        }
    }

    /// The north-west corner in degrees, like mercantile's `ul`.
    pub fn ul(self) -> LngLat {
        let z2 = 2f64.powi(i32::from(self.z));
        LngLat {
            lng: lng_of_column(f64::from(self.x), z2),
            lat: lat_of_row(f64::from(self.y), z2),
        }
    }

    /// The tile's extent in degrees, like mercantile's `bounds`.
    pub fn bounds(self) -> LngLatBbox {
        let z2 = 2f64.powi(i32::from(self.z));
        let (x, y) = (f64::from(self.x), f64::from(self.y));
        LngLatBbox {
            west: lng_of_column(x, z2),
            south: lat_of_row(y + 1.0, z2),
            east: lng_of_column(x + 1.0, z2),
            north: lat_of_row(y, z2),
        }
    }

    /// The tile's extent in Web Mercator metres, like mercantile's `xy_bounds`.
    pub fn xy_bounds(self) -> MercatorBbox {
        let tile_size = EARTH_CIRCUMFERENCE / 2f64.powi(i32::from(self.z));
        let left = f64::from(self.x) * tile_size - MAX_MERCATOR;
        let top = MAX_MERCATOR - f64::from(self.y) * tile_size;
        MercatorBbox {
            left,
            bottom: top - tile_size,
            right: left + tile_size,
            top,
        }
    }

    /// The tile's centre as a fraction of the world (`0..1` east, `0..1` south).
    pub fn unit_centre(self) -> (f64, f64) {
        let z2 = 2f64.powi(i32::from(self.z));
        (
            (f64::from(self.x) + 0.5) / z2,
            (f64::from(self.y) + 0.5) / z2,
        )
    }
}

fn lng_of_column(x: f64, z2: f64) -> f64 {
    x / z2 * 360.0 - 180.0
}

fn lat_of_row(y: f64, z2: f64) -> f64 {
    (std::f64::consts::PI * (1.0 - 2.0 * y / z2))
        .sinh()
        .atan()
        .to_degrees()
}

impl fmt::Display for TileCoord {
    /// `z/x/y`, the form URLs and tile-client use.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.z, self.x, self.y)
    }
}

impl fmt::Debug for TileCoord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TileCoord({}/{}/{})", self.z, self.x, self.y)
    }
}

/// Parses `z/x/y` (also `z_x_y`, the legacy protocol's form, and `z,x,y`).
impl FromStr for TileCoord {
    type Err = ParseTileError;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let sep = ['/', '_', ','].into_iter().find(|c| s.contains(*c));
        let parts: Vec<&str> = match sep {
            Some(c) => s.split(c).collect(),
            None => vec![s],
        };
        let [z, x, y] = parts[..] else {
            return Err(ParseTileError::Syntax(s.to_owned()));
        };
        let num = |part: &str| part.trim().parse::<u32>();
        match (num(z), num(x), num(y)) {
            (Ok(z), Ok(x), Ok(y)) => {
                let z = u8::try_from(z).map_err(|_| {
                    ParseTileError::Range(TileMathError::ZoomOutOfRange { zoom: z })
                })?;
                TileCoord::new(z, x, y).map_err(ParseTileError::Range)
            }
            _ => Err(ParseTileError::Syntax(s.to_owned())),
        }
    }
}

/// Why a `z/x/y` string is not a tile.
#[derive(Debug, Clone, PartialEq)]
pub enum ParseTileError {
    /// Not three whole numbers separated by `/`, `_` or `,`.
    Syntax(String),
    /// Three numbers, but not a tile that exists.
    Range(TileMathError),
}

impl fmt::Display for ParseTileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax(s) => write!(f, "{s:?} is not a tile: expected Z/X/Y, e.g. 12/3638/1612"),
            Self::Range(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ParseTileError {}

/// The tiles at one zoom inside a tile, from [`TileCoord::descendants`].
/// Computes each tile from its index, so it never holds the whole list.
#[derive(Debug, Clone)]
pub struct Descendants {
    root: TileCoord,
    depth: u32,
    next: u64,
    end: u64,
}

impl Iterator for Descendants {
    type Item = TileCoord;

    fn next(&mut self) -> Option<TileCoord> {
        if self.next >= self.end {
            return None;
        }
        let index = self.next;
        self.next += 1;
        // Read the index as base-4 digits, most significant first: each digit
        // picks one child, clockwise, one level further down.
        let (mut x, mut y) = (self.root.x, self.root.y);
        for level in (0..self.depth).rev() {
            let (dx, dy) = CLOCKWISE[((index >> (2 * level)) & 3) as usize];
            x = x * 2 + dx;
            y = y * 2 + dy;
        }
        Some(TileCoord {
            z: self.root.z + self.depth as u8,
            x,
            y,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.end - self.next).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

/// Reduces a set of tiles to the fewest tiles that cover the same area, like
/// mercantile's `simplify`: a tile whose ancestor is in the set is dropped,
/// and four siblings are replaced by their parent, repeatedly.
///
/// The result is sorted (by zoom, then x, then y); mercantile returns a set.
pub fn simplify(tiles: impl IntoIterator<Item = TileCoord>) -> Vec<TileCoord> {
    let mut by_zoom: BTreeSet<TileCoord> = tiles.into_iter().collect();
    // Drop tiles already covered by an ancestor in the set. The set iterates
    // by zoom, so ancestors are kept before their descendants are looked at.
    let mut kept: BTreeSet<TileCoord> = BTreeSet::new();
    for tile in std::mem::take(&mut by_zoom) {
        let covered = (0..tile.z).any(|z| tile.ancestor(z).is_ok_and(|a| kept.contains(&a)));
        if !covered {
            kept.insert(tile);
        }
    }
    // Merge complete sets of four siblings, deepest zoom first, so that a
    // merge can complete a set one level up.
    for z in (1..=MAX_ZOOM).rev() {
        let mut siblings: BTreeMap<TileCoord, u8> = BTreeMap::new();
        for tile in kept.iter().filter(|t| t.z == z) {
            if let Some(parent) = tile.parent() {
                *siblings.entry(parent).or_default() += 1;
            }
        }
        for (parent, count) in siblings {
            if count == 4 {
                if let Ok(children) = parent.children() {
                    for child in children {
                        kept.remove(&child);
                    }
                }
                kept.insert(parent);
            }
        }
    }
    kept.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(z: u8, x: u32, y: u32) -> TileCoord {
        TileCoord::new(z, x, y).unwrap()
    }

    #[test]
    fn constructor_checks_range() {
        assert!(TileCoord::new(0, 0, 0).is_ok());
        assert_eq!(
            TileCoord::new(0, 1, 0),
            Err(TileMathError::TileOutOfRange { z: 0, x: 1, y: 0 })
        );
        assert!(TileCoord::new(30, (1 << 30) - 1, (1 << 30) - 1).is_ok());
        assert!(TileCoord::new(30, 1 << 30, 0).is_err());
        assert_eq!(
            TileCoord::new(31, 0, 0),
            Err(TileMathError::ZoomOutOfRange { zoom: 31 })
        );
    }

    #[test]
    fn z0_has_no_parent_and_z30_no_children() {
        assert_eq!(TileCoord::WORLD.parent(), None);
        assert!(t(30, 5, 5).children().is_err());
        assert!(t(30, 5, 5).descendants(30).is_ok());
        assert_eq!(
            t(30, 5, 5).descendants(30).unwrap().collect::<Vec<_>>(),
            vec![t(30, 5, 5)]
        );
    }

    #[test]
    fn flip_y_is_its_own_inverse() {
        assert_eq!(t(3, 1, 0).flip_y(), t(3, 1, 7));
        assert_eq!(t(3, 1, 0).flip_y().flip_y(), t(3, 1, 0));
        assert_eq!(TileCoord::WORLD.flip_y(), TileCoord::WORLD);
    }

    #[test]
    fn parses_every_tile_spelling_and_refuses_the_rest() {
        assert_eq!("12/3638/1612".parse::<TileCoord>(), Ok(t(12, 3638, 1612)));
        assert_eq!(
            "16_58001_25480".parse::<TileCoord>(),
            Ok(t(16, 58001, 25480))
        );
        assert_eq!("1,1,0".parse::<TileCoord>(), Ok(t(1, 1, 0)));
        assert!(matches!(
            "1/2/0".parse::<TileCoord>(),
            Err(ParseTileError::Range(_))
        ));
        assert!(matches!(
            "300/0/0".parse::<TileCoord>(),
            Err(ParseTileError::Range(_))
        ));
        for bad in ["", "1/2", "a/b/c", "1/2/3/4", "-1/0/0", "1//0"] {
            assert!(
                matches!(bad.parse::<TileCoord>(), Err(ParseTileError::Syntax(_))),
                "{bad}"
            );
        }
        assert_eq!(t(12, 3638, 1612).to_string(), "12/3638/1612");
    }

    #[test]
    fn quadkey_rejects_bad_digits_and_lengths() {
        assert!(TileCoord::from_quadkey("0124").is_err());
        assert!(TileCoord::from_quadkey(&"0".repeat(31)).is_err());
        assert_eq!(
            TileCoord::from_quadkey(&"3".repeat(30)).unwrap(),
            t(30, (1 << 30) - 1, (1 << 30) - 1)
        );
        assert_eq!(TileCoord::from_quadkey("").unwrap(), TileCoord::WORLD);
    }

    #[test]
    fn descendants_size_is_exact() {
        let d = t(3, 1, 1).descendants(6).unwrap();
        assert_eq!(d.size_hint(), (64, Some(64)));
        assert_eq!(d.count(), 64);
    }
}
