//! Viewports: the tiles a user is looking at now, the ring of tiles around
//! them, and how far any tile is from the centre of the screen. The render
//! scheduler ranks queued work with these.

use std::cmp::Ordering;

use crate::bbox::LL_EPSILON;
use crate::mercator::{check_zoom, unit_to_index, unit_xy};
use crate::{LngLat, LngLatBbox, Result, TileCoord, TileMathError};

/// A rectangle of tiles at one zoom. Columns may wrap across the
/// antimeridian: the range starts at column `x_start` and runs east for
/// `x_count` columns, modulo `2^z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileRange {
    z: u8,
    x_start: u32,
    x_count: u64,
    y_min: u32,
    y_max: u32,
}

impl TileRange {
    /// The range from `nw` east and south to `se`, both at the same zoom. If
    /// `se` is west of `nw`, the range wraps across the antimeridian.
    pub fn new(nw: TileCoord, se: TileCoord) -> Result<Self> {
        if nw.z() != se.z() {
            return Err(TileMathError::InvalidRelativeZoom {
                tile_zoom: nw.z(),
                zoom: se.z(),
            });
        }
        if nw.y() > se.y() {
            return Err(TileMathError::InvertedBbox {
                south: f64::from(se.y()),
                north: f64::from(nw.y()),
            });
        }
        let across = nw.tiles_across();
        let x_count = (u64::from(se.x()) + across - u64::from(nw.x())) % across + 1;
        Ok(Self {
            z: nw.z(),
            x_start: nw.x(),
            x_count,
            y_min: nw.y(),
            y_max: se.y(),
        })
    }

    /// Zoom level.
    pub const fn z(&self) -> u8 {
        self.z
    }

    /// Columns in the range.
    pub const fn columns(&self) -> u64 {
        self.x_count
    }

    /// Rows in the range.
    pub const fn rows(&self) -> u32 {
        self.y_max - self.y_min + 1
    }

    /// Number of tiles.
    pub fn len(&self) -> u64 {
        self.x_count * u64::from(self.rows())
    }

    /// A range always holds at least one tile.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The range grown by `ring` tiles on every side, clipped at the poles
    /// and wrapped (never doubled) across the antimeridian.
    pub fn expanded(&self, ring: u32) -> TileRange {
        let across = 1u64 << self.z;
        let last_row = (across - 1) as u32;
        let x_count = (self.x_count + 2 * u64::from(ring)).min(across);
        let x_start = if x_count == across {
            0
        } else {
            ((u64::from(self.x_start) + across - u64::from(ring) % across) % across) as u32
        };
        TileRange {
            z: self.z,
            x_start,
            x_count,
            y_min: self.y_min.saturating_sub(ring),
            y_max: self.y_max.saturating_add(ring).min(last_row),
        }
    }

    /// Whether the tile is inside the range.
    pub fn contains(&self, tile: TileCoord) -> bool {
        self.ring_of(tile) == Some(0)
    }

    /// 0 for a tile inside the range, 1 for the ring of tiles just around it,
    /// and so on (Chebyshev distance in tiles, wrapping at the antimeridian);
    /// `None` for a tile at another zoom.
    pub fn ring_of(&self, tile: TileCoord) -> Option<u32> {
        if tile.z() != self.z {
            return None;
        }
        let across = 1u64 << self.z;
        // Columns east of the range's start, modulo the world.
        let east_of_start = (u64::from(tile.x()) + across - u64::from(self.x_start)) % across;
        let dx = if east_of_start < self.x_count {
            0
        } else {
            let past_end = east_of_start - (self.x_count - 1);
            let before_start = across - east_of_start;
            past_end.min(before_start)
        };
        let dy = if tile.y() < self.y_min {
            self.y_min - tile.y()
        } else {
            tile.y().saturating_sub(self.y_max)
        };
        Some((dx as u32).max(dy))
    }

    /// The tiles of the range, column by column from the west (wrapping at the
    /// antimeridian), each column north to south.
    pub fn tiles(&self) -> impl Iterator<Item = TileCoord> + '_ {
        let across = 1u64 << self.z;
        let (z, x_start, y_min, y_max) = (self.z, self.x_start, self.y_min, self.y_max);
        (0..self.x_count).flat_map(move |i| {
            let x = ((u64::from(x_start) + i) % across) as u32;
            (y_min..=y_max).filter_map(move |y| TileCoord::new(z, x, y).ok())
        })
    }
}

/// What a user's map window shows: a zoom, the tiles on screen, and the
/// centre of the screen as a fraction of the world.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Viewport {
    range: TileRange,
    /// Centre, `(0, 0)` = north-west corner of the world, `(1, 1)` = south-east.
    centre: (f64, f64),
}

impl Viewport {
    /// The viewport showing `bbox` at `zoom`. A bbox with `west > east`
    /// crosses the antimeridian.
    pub fn from_bbox(bbox: LngLatBbox, zoom: u8) -> Result<Self> {
        check_zoom(zoom)?;
        bbox.validate()?;
        let z2 = 2f64.powi(i32::from(zoom));
        let (x0, y0) = unit_xy(LngLat::new(bbox.west, bbox.north));
        let (x1, y1) = unit_xy(LngLat::new(bbox.east - LL_EPSILON, bbox.south + LL_EPSILON));
        let nw = TileCoord::new(zoom, unit_to_index(x0, z2), unit_to_index(y0, z2))?;
        let se = TileCoord::new(zoom, unit_to_index(x1, z2), unit_to_index(y1, z2))?;
        let range = if bbox.crosses_antimeridian() || nw.x() <= se.x() {
            TileRange::new(nw, se)?
        } else {
            // A box narrower than a tile whose east edge rounds west of its
            // west edge: it is the one column.
            TileRange::new(nw, TileCoord::new(zoom, nw.x(), se.y())?)?
        };
        let (x0, x1) = (x0.clamp(0.0, 1.0), x1.clamp(0.0, 1.0));
        let width = if bbox.crosses_antimeridian() {
            x1 + 1.0 - x0
        } else {
            x1 - x0
        };
        let centre_x = (x0 + width / 2.0).rem_euclid(1.0);
        let centre = (centre_x, (y0.clamp(0.0, 1.0) + y1.clamp(0.0, 1.0)) / 2.0);
        Ok(Self { range, centre })
    }

    /// The viewport showing exactly a range of tiles.
    pub fn from_tile_range(range: TileRange) -> Self {
        let z2 = 2f64.powi(i32::from(range.z));
        let cx = (f64::from(range.x_start) + range.x_count as f64 / 2.0) / z2;
        let cy = (f64::from(range.y_min) + f64::from(range.rows()) / 2.0) / z2;
        Self {
            range,
            centre: (cx.rem_euclid(1.0), cy),
        }
    }

    /// Zoom level.
    pub fn zoom(&self) -> u8 {
        self.range.z
    }

    /// The tiles on screen.
    pub fn range(&self) -> TileRange {
        self.range
    }

    /// The screen's centre as a fraction of the world.
    pub fn centre(&self) -> (f64, f64) {
        self.centre
    }

    /// 0 for a tile on screen, 1 for the ring around it, ...; `None` at
    /// another zoom. See [`TileRange::ring_of`].
    pub fn ring_of(&self, tile: TileCoord) -> Option<u32> {
        self.range.ring_of(tile)
    }

    /// Distance from the screen's centre to the tile's centre, in tiles of
    /// the viewport's zoom, the short way round the world. Defined for tiles
    /// of any zoom, so work at other zooms can be ranked too.
    pub fn distance_from_centre(&self, tile: TileCoord) -> f64 {
        let (tx, ty) = tile.unit_centre();
        let dx = (tx - self.centre.0).abs();
        let dx = dx.min(1.0 - dx);
        let dy = ty - self.centre.1;
        let z2 = 2f64.powi(i32::from(self.range.z));
        (dx * dx + dy * dy).sqrt() * z2
    }

    /// The tiles on screen plus `ring` rings of neighbours, column by column.
    pub fn tiles(&self, ring: u32) -> Vec<TileCoord> {
        self.range.expanded(ring).tiles().collect()
    }

    /// The tiles on screen plus `ring` rings of neighbours, nearest to the
    /// centre first (ties broken by column, then row, so the order is stable).
    pub fn tiles_by_distance(&self, ring: u32) -> Vec<TileCoord> {
        let mut tiles: Vec<(f64, TileCoord)> = self
            .range
            .expanded(ring)
            .tiles()
            .map(|t| (self.distance_from_centre(t), t))
            .collect();
        tiles.sort_by(|a, b| {
            a.0.partial_cmp(&b.0)
                .unwrap_or(Ordering::Equal)
                .then(a.1.cmp(&b.1))
        });
        tiles.into_iter().map(|(_, t)| t).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(z: u8, x: u32, y: u32) -> TileCoord {
        TileCoord::new(z, x, y).unwrap()
    }

    #[test]
    fn screen_and_ring() {
        let range = TileRange::new(t(4, 5, 5), t(4, 6, 6)).unwrap();
        let v = Viewport::from_tile_range(range);
        assert_eq!(v.tiles(0), [t(4, 5, 5), t(4, 5, 6), t(4, 6, 5), t(4, 6, 6)]);
        assert_eq!(v.tiles(1).len(), 16);
        assert_eq!(v.ring_of(t(4, 5, 5)), Some(0));
        assert_eq!(v.ring_of(t(4, 4, 7)), Some(1));
        assert_eq!(v.ring_of(t(4, 9, 5)), Some(3));
        assert_eq!(v.ring_of(t(5, 5, 5)), None);
    }

    #[test]
    fn nearest_first() {
        let range = TileRange::new(t(4, 4, 4), t(4, 6, 6)).unwrap();
        let v = Viewport::from_tile_range(range);
        let order = v.tiles_by_distance(1);
        assert_eq!(order[0], t(4, 5, 5));
        assert_eq!(order.len(), 25);
        // The four edge-adjacent tiles come next, before the corners.
        assert_eq!(
            &order[1..5],
            [t(4, 4, 5), t(4, 5, 4), t(4, 5, 6), t(4, 6, 5)]
        );
        let last = order[24];
        assert!(v.distance_from_centre(last) > v.distance_from_centre(order[9]));
    }

    #[test]
    fn wraps_at_the_antimeridian() {
        let v = Viewport::from_bbox(LngLatBbox::new(170.0, -10.0, -170.0, 10.0), 3).unwrap();
        let tiles = v.tiles(0);
        assert_eq!(tiles, [t(3, 7, 3), t(3, 7, 4), t(3, 0, 3), t(3, 0, 4)]);
        // The neighbour ring continues on the other side of the world.
        assert_eq!(v.ring_of(t(3, 1, 3)), Some(1));
        assert_eq!(v.ring_of(t(3, 6, 4)), Some(1));
        // Distance is measured the short way round.
        assert!(v.distance_from_centre(t(3, 0, 3)) < 1.0);
        assert!((v.centre().0 - 0.0).abs() < 1e-9 || (v.centre().0 - 1.0).abs() < 1e-9);
    }

    #[test]
    fn ring_never_doubles_the_world() {
        let range = TileRange::new(t(2, 1, 1), t(2, 2, 2)).unwrap();
        let grown = range.expanded(5);
        assert_eq!(grown.len(), 16);
        assert_eq!(
            grown
                .tiles()
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            16
        );
        assert_eq!(
            TileRange::new(TileCoord::WORLD, TileCoord::WORLD)
                .unwrap()
                .expanded(3)
                .len(),
            1
        );
    }

    #[test]
    fn other_zooms_are_ranked_by_distance_too() {
        let v = Viewport::from_bbox(LngLatBbox::new(24.9, 60.15, 25.0, 60.2), 12).unwrap();
        let helsinki_z10 = crate::tile_for_lnglat(LngLat::new(24.95, 60.17), 10, false).unwrap();
        let tokyo_z10 = crate::tile_for_lnglat(LngLat::new(139.7, 35.7), 10, false).unwrap();
        assert!(v.distance_from_centre(helsinki_z10) < v.distance_from_centre(tokyo_z10));
    }

    #[test]
    fn z0_and_z30() {
        let v = Viewport::from_bbox(LngLatBbox::new(-180.0, -90.0, 180.0, 90.0), 0).unwrap();
        assert_eq!(v.tiles(1), [TileCoord::WORLD]);
        let v =
            Viewport::from_bbox(LngLatBbox::new(24.95, 60.17, 24.950001, 60.170001), 30).unwrap();
        // 1e-6° spans 4 columns and 7 rows of 3.7 cm tiles at z30 and 60°N
        // (mercantile.tiles(24.95, 60.17, 24.950001, 60.170001, [30]) agrees).
        assert_eq!(
            (v.range().columns(), v.range().rows()),
            (4, 7),
            "{:?}",
            v.range()
        );
        assert!(Viewport::from_bbox(LngLatBbox::new(0.0, 0.0, 1.0, 1.0), 31).is_err());
    }
}
