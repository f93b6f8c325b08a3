//! Metatiles: N×N blocks of tiles that a renderer draws in one pass and then
//! cuts up, as renderd and Tirex do. Drawing 64 tiles at once costs little
//! more than drawing one, and labels and strokes join up across tile edges.

use std::fmt;

use crate::{MercatorBbox, Result, TileCoord, TileMathError};

/// The metatile size renderd, mod_tile and Tirex use: 8×8 tiles.
pub const DEFAULT_METATILE_SIZE: u32 = 8;

/// An N×N block of tiles at one zoom, aligned on multiples of N.
///
/// At low zooms, where the world has fewer than N tiles across, the block is
/// clipped to the world: at zoom 1 an 8×8 metatile holds 2×2 tiles.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Metatile {
    z: u8,
    /// Column of the north-west tile, a multiple of `size`.
    x: u32,
    /// Row of the north-west tile, a multiple of `size`.
    y: u32,
    size: u32,
}

impl Metatile {
    /// The `size`×`size` metatile that holds `tile`. `size` must be at least 1.
    pub fn containing(tile: TileCoord, size: u32) -> Result<Metatile> {
        if size == 0 {
            return Err(TileMathError::InvalidMetatileSize);
        }
        Ok(Metatile {
            z: tile.z(),
            x: tile.x() - tile.x() % size,
            y: tile.y() - tile.y() % size,
            size,
        })
    }

    /// Zoom level.
    pub const fn z(&self) -> u8 {
        self.z
    }

    /// Column of the north-west tile.
    pub const fn x(&self) -> u32 {
        self.x
    }

    /// Row of the north-west tile.
    pub const fn y(&self) -> u32 {
        self.y
    }

    /// N, the nominal width and height in tiles.
    pub const fn size(&self) -> u32 {
        self.size
    }

    /// The north-west tile.
    pub fn first_tile(&self) -> TileCoord {
        // x and y come from a valid tile, rounded down, so they are valid too.
        TileCoord::new(self.z, self.x, self.y).unwrap_or(TileCoord::WORLD)
    }

    /// Tiles across, after clipping to the world.
    pub fn columns(&self) -> u32 {
        let across = 1u64 << self.z;
        (across - u64::from(self.x)).min(u64::from(self.size)) as u32
    }

    /// Tiles down, after clipping to the world.
    pub fn rows(&self) -> u32 {
        let across = 1u64 << self.z;
        (across - u64::from(self.y)).min(u64::from(self.size)) as u32
    }

    /// Whether `tile` is one of this metatile's tiles.
    pub fn contains(&self, tile: TileCoord) -> bool {
        tile.z() == self.z
            && (self.x..self.x + self.columns()).contains(&tile.x())
            && (self.y..self.y + self.rows()).contains(&tile.y())
    }

    /// The position of `tile` inside the block as (column, row), or `None`
    /// if it is not inside.
    pub fn offset_of(&self, tile: TileCoord) -> Option<(u32, u32)> {
        self.contains(tile)
            .then(|| (tile.x() - self.x, tile.y() - self.y))
    }

    /// The tiles of the block (clipped to the world), column by column from
    /// the west, each column north to south.
    pub fn tiles(&self) -> impl Iterator<Item = TileCoord> + '_ {
        let (z, x0, y0, rows) = (self.z, self.x, self.y, self.rows());
        (0..self.columns()).flat_map(move |dx| {
            (0..rows).filter_map(move |dy| TileCoord::new(z, x0 + dx, y0 + dy).ok())
        })
    }

    /// How many tiles the block holds after clipping.
    pub fn tile_count(&self) -> u32 {
        self.columns() * self.rows()
    }

    /// The block's extent in Web Mercator metres (clipped to the world).
    pub fn xy_bounds(&self) -> MercatorBbox {
        let nw = self.first_tile().xy_bounds();
        let (w, h) = (nw.width(), nw.height());
        MercatorBbox {
            left: nw.left,
            top: nw.top,
            right: nw.left + w * f64::from(self.columns()),
            bottom: nw.top - h * f64::from(self.rows()),
        }
    }
}

impl fmt::Display for Metatile {
    /// `z/x/y` of the north-west tile, then `@N`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}@{}", self.z, self.x, self.y, self.size)
    }
}

impl fmt::Debug for Metatile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Metatile({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(z: u8, x: u32, y: u32) -> TileCoord {
        TileCoord::new(z, x, y).unwrap()
    }

    #[test]
    fn aligned_like_renderd() {
        let m = Metatile::containing(t(12, 3645, 1612), 8).unwrap();
        assert_eq!((m.x(), m.y()), (3640, 1608));
        assert_eq!(m.tile_count(), 64);
        assert!(m.contains(t(12, 3647, 1615)));
        assert!(!m.contains(t(12, 3648, 1615)));
        assert_eq!(m.offset_of(t(12, 3645, 1612)), Some((5, 4)));
    }

    #[test]
    fn clipped_at_low_zoom() {
        let m = Metatile::containing(t(1, 1, 0), 8).unwrap();
        assert_eq!((m.columns(), m.rows()), (2, 2));
        assert_eq!(
            m.tiles().collect::<Vec<_>>(),
            [t(1, 0, 0), t(1, 0, 1), t(1, 1, 0), t(1, 1, 1)]
        );
        assert_eq!(m.xy_bounds(), TileCoord::WORLD.xy_bounds());
        let z0 = Metatile::containing(TileCoord::WORLD, 8).unwrap();
        assert_eq!(z0.tiles().collect::<Vec<_>>(), [TileCoord::WORLD]);
    }

    #[test]
    fn any_size_works_and_zero_does_not() {
        let m = Metatile::containing(t(4, 7, 14), 3).unwrap();
        assert_eq!((m.x(), m.y(), m.columns(), m.rows()), (6, 12, 3, 3));
        let edge = Metatile::containing(t(4, 15, 15), 3).unwrap();
        assert_eq!((edge.x(), edge.columns(), edge.rows()), (15, 1, 1));
        assert_eq!(
            Metatile::containing(t(4, 7, 14), 0),
            Err(TileMathError::InvalidMetatileSize)
        );
    }

    #[test]
    fn z30_metatile() {
        let last = (1u32 << 30) - 1;
        let m = Metatile::containing(t(30, last, last), 8).unwrap();
        assert_eq!(m.tile_count(), 64);
        assert!(m.contains(t(30, last, last)));
    }
}
