//! The tiles that cover a bbox over a range of zooms, lazily.

use std::ops::RangeInclusive;

use crate::bbox::LL_EPSILON;
use crate::mercator::{check_zoom, unit_to_index, unit_xy};
use crate::{LngLat, LngLatBbox, Result, TileCoord, TileMathError};

/// mercantile clamps cover bboxes to this latitude (a rounded
/// [`crate::MAX_LATITUDE`]); using the same number keeps the edge rows equal.
const COVER_MAX_LATITUDE: f64 = 85.051129;

/// The tiles covering `bbox` at every zoom in `zooms`, like mercantile's
/// `tiles`, and in the same order:
///
/// 1. a box across the antimeridian (`west > east`) is split into a western
///    part (-180° to `east`) and an eastern part (`west` to 180°), western
///    part first;
/// 2. within a part, zoom by zoom;
/// 3. within a zoom, column by column from the west, each column north to south.
///
/// Edges are clamped to the projected world. One deliberate difference from
/// mercantile: where the two halves of an antimeridian box share columns (at
/// zoom 0 both are `0/0/0`), those tiles are yielded once, not twice.
///
/// The iterator computes each tile
/// as it goes and never holds the list, so a cover of millions of tiles costs
/// no memory.
pub fn tiles_covering(bbox: LngLatBbox, zooms: RangeInclusive<u8>) -> Result<TileCover> {
    let (min_zoom, max_zoom) = (*zooms.start(), *zooms.end());
    check_zoom(max_zoom)?;
    if min_zoom > max_zoom {
        return Err(TileMathError::InvertedZoomRange {
            min: min_zoom,
            max: max_zoom,
        });
    }
    for (value, what) in [
        (bbox.west, "west"),
        (bbox.south, "south"),
        (bbox.east, "east"),
        (bbox.north, "north"),
    ] {
        crate::mercator::check_finite(value, what)?;
    }
    if bbox.south > bbox.north {
        return Err(TileMathError::InvertedBbox {
            south: bbox.south,
            north: bbox.north,
        });
    }
    let parts = if bbox.crosses_antimeridian() {
        vec![
            LngLatBbox {
                west: -180.0,
                ..bbox
            },
            LngLatBbox {
                east: 180.0,
                ..bbox
            },
        ]
    } else {
        vec![bbox]
    };
    let parts = parts
        .into_iter()
        .map(|p| LngLatBbox {
            west: p.west.max(-180.0),
            south: p.south.max(-COVER_MAX_LATITUDE),
            east: p.east.min(180.0),
            north: p.north.min(COVER_MAX_LATITUDE),
        })
        .collect();
    let mut cover = TileCover {
        parts,
        part: 0,
        min_zoom,
        max_zoom,
        zoom: min_zoom,
        block: None,
    };
    cover.block = cover.block_for(0, min_zoom);
    Ok(cover)
}

/// Iterator returned by [`tiles_covering`].
#[derive(Debug, Clone)]
pub struct TileCover {
    parts: Vec<LngLatBbox>,
    part: usize,
    min_zoom: u8,
    max_zoom: u8,
    zoom: u8,
    /// The block of tiles of the current part and zoom, and the next tile in it.
    block: Option<Block>,
}

#[derive(Debug, Clone, Copy)]
struct Block {
    x_first: u32,
    x_last: u32,
    y_first: u32,
    y_last: u32,
    x: u32,
    y: u32,
}

impl TileCover {
    fn block_for(&self, part: usize, zoom: u8) -> Option<Block> {
        let p = self.parts.get(part)?;
        let z2 = 2f64.powi(i32::from(zoom));
        let (x0, y0) = unit_xy(LngLat::new(p.west, p.north));
        let (x1, y1) = unit_xy(LngLat::new(p.east - LL_EPSILON, p.south + LL_EPSILON));
        let (x_first, y_first) = (unit_to_index(x0, z2), unit_to_index(y0, z2));
        let (x_last, y_last) = (unit_to_index(x1, z2), unit_to_index(y1, z2));
        // At low zooms the two halves of an antimeridian box can share
        // columns (at zoom 0 both are tile 0/0/0). mercantile yields those
        // tiles twice; we skip the columns the western half already gave.
        let x_first = match part {
            1 => self
                .block_for(0, zoom)
                .map_or(x_first, |west| x_first.max(west.x_last + 1)),
            _ => x_first,
        };
        Some(Block {
            x_first,
            x_last,
            y_first,
            y_last,
            x: x_first,
            y: y_first,
        })
    }

    /// How many tiles the whole cover has (not only those left).
    pub fn total(&self) -> u64 {
        let mut total = 0;
        for part in 0..self.parts.len() {
            for zoom in self.min_zoom..=self.max_zoom {
                let Some(b) = self.block_for(part, zoom) else {
                    continue;
                };
                if b.x_last >= b.x_first && b.y_last >= b.y_first {
                    let cols = u64::from(b.x_last - b.x_first) + 1;
                    let rows = u64::from(b.y_last - b.y_first) + 1;
                    total += cols * rows;
                }
            }
        }
        total
    }

    /// Moves to the next zoom, or to the next part after the last zoom.
    fn advance_block(&mut self) {
        if self.zoom < self.max_zoom {
            self.zoom += 1;
        } else {
            self.part += 1;
            self.zoom = self.min_zoom;
        }
        self.block = self.block_for(self.part, self.zoom);
    }
}

impl Iterator for TileCover {
    type Item = TileCoord;

    fn next(&mut self) -> Option<TileCoord> {
        loop {
            let block = self.block.as_mut()?;
            if block.x > block.x_last || block.y_first > block.y_last {
                self.advance_block();
                continue;
            }
            let (x, y) = (block.x, block.y);
            if block.y < block.y_last {
                block.y += 1;
            } else {
                block.y = block.y_first;
                block.x += 1;
            }
            // unit_to_index keeps x and y inside the zoom, so this succeeds.
            if let Ok(tile) = TileCoord::new(self.zoom, x, y) {
                return Some(tile);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cover(w: f64, s: f64, e: f64, n: f64, zooms: RangeInclusive<u8>) -> Vec<String> {
        tiles_covering(LngLatBbox::new(w, s, e, n), zooms)
            .unwrap()
            .map(|t| t.to_string())
            .collect()
    }

    #[test]
    fn the_world_at_z0_is_one_tile() {
        assert_eq!(cover(-180.0, -90.0, 180.0, 90.0, 0..=0), ["0/0/0"]);
    }

    #[test]
    fn column_major_order() {
        assert_eq!(
            cover(-180.0, -85.0, 180.0, 85.0, 1..=1),
            ["1/0/0", "1/0/1", "1/1/0", "1/1/1"]
        );
    }

    #[test]
    fn antimeridian_is_split_western_part_first() {
        assert_eq!(
            cover(170.0, -10.0, -170.0, 10.0, 2..=2),
            ["2/0/1", "2/0/2", "2/3/1", "2/3/2"]
        );
    }

    #[test]
    fn antimeridian_halves_never_repeat_a_tile() {
        // mercantile gives 0/0/0 twice and 1/0/1, 1/1/1 ... once per half.
        assert_eq!(
            cover(100.0, -10.0, -100.0, -5.0, 0..=1),
            ["0/0/0", "1/0/1", "1/1/1"]
        );
    }

    #[test]
    fn total_counts_without_iterating() {
        let c = tiles_covering(LngLatBbox::new(-180.0, -85.0, 180.0, 85.0), 0..=5).unwrap();
        assert_eq!(c.total(), 1 + 4 + 16 + 64 + 256 + 1024);
        assert_eq!(c.count(), 1365);
        let edge = crate::MAX_LATITUDE;
        let world = LngLatBbox::new(-180.0, -edge, 180.0, edge);
        assert_eq!(tiles_covering(world, 30..=30).unwrap().total(), 1u64 << 60);
    }

    #[test]
    #[allow(clippy::reversed_empty_ranges)] // an inverted range is the point
    fn bad_input_is_an_error() {
        let world = LngLatBbox::new(-180.0, -85.0, 180.0, 85.0);
        assert!(tiles_covering(world, 0..=31).is_err());
        assert!(matches!(
            tiles_covering(world, 5..=3),
            Err(TileMathError::InvertedZoomRange { min: 5, max: 3 })
        ));
        assert!(tiles_covering(LngLatBbox::new(f64::NAN, 0.0, 1.0, 1.0), 0..=1).is_err());
        assert!(tiles_covering(LngLatBbox::new(0.0, 2.0, 1.0, 1.0), 0..=1).is_err());
    }
}
