//! What a renderer needs to draw a tile: the transform between Web Mercator
//! metres and image pixels, and the scale denominator Mapnik styles select
//! rules by.

use crate::mercator::EARTH_CIRCUMFERENCE;
use crate::{MercatorBbox, MercatorPoint, Metatile, Result, TileCoord, TileMathError};

/// The size of a "standardized rendering pixel" in metres (0.28 mm), from
/// the OGC SLD/SE specification. Mapnik divides metres per pixel by it to get
/// the scale denominator.
pub const MAPNIK_PIXEL_SIZE_M: f64 = 0.00028;

/// The Mapnik scale denominator for a zoom level.
///
/// `tile_size` is the tile's width in pixels and `scale_factor` the HiDPI
/// factor handed to the renderer (1 for ordinary 256 px tiles, 2 for 512 px
/// "retina" tiles). Mapnik computes `metres per pixel / 0.00028` and then
/// multiplies by the scale factor, so a 512 px tile at scale factor 2 picks
/// the same rules as a 256 px tile: zoom 0 at 256 px gives 559082264.028.
pub fn scale_denominator(zoom: u8, tile_size: u32, scale_factor: f64) -> f64 {
    let metres_per_pixel =
        EARTH_CIRCUMFERENCE / (f64::from(tile_size) * 2f64.powi(i32::from(zoom)));
    metres_per_pixel / MAPNIK_PIXEL_SIZE_M * scale_factor
}

/// The mapping between Web Mercator metres and the pixels of one rendered
/// image: a tile or a metatile, `tile_size` pixels per tile, plus `buffer`
/// pixels of margin on every side (so that strokes and markers that straddle
/// the edge are drawn, then cut away).
///
/// Pixel `(0, 0)` is the north-west corner of the buffered image; pixel
/// centres are at half-integers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelTransform {
    /// The unbuffered area, in metres.
    area: MercatorBbox,
    metres_per_pixel: f64,
    buffer: u32,
    /// Image size in pixels, buffer included.
    width: u32,
    height: u32,
}

impl PixelTransform {
    /// The transform for one tile.
    pub fn for_tile(tile: TileCoord, tile_size: u32, buffer: u32) -> Result<Self> {
        Self::build(tile.xy_bounds(), tile.z(), 1, 1, tile_size, buffer)
    }

    /// The transform for a metatile (clipped to the world at low zooms).
    pub fn for_metatile(meta: &Metatile, tile_size: u32, buffer: u32) -> Result<Self> {
        Self::build(
            meta.xy_bounds(),
            meta.z(),
            meta.columns(),
            meta.rows(),
            tile_size,
            buffer,
        )
    }

    fn build(
        area: MercatorBbox,
        zoom: u8,
        columns: u32,
        rows: u32,
        tile_size: u32,
        buffer: u32,
    ) -> Result<Self> {
        let size = |tiles: u32| u64::from(tiles) * u64::from(tile_size) + 2 * u64::from(buffer);
        let (width, height) = (size(columns), size(rows));
        if tile_size == 0 || width > 65_536 || height > 65_536 {
            return Err(TileMathError::InvalidPixelSize { tile_size });
        }
        let metres_per_pixel =
            EARTH_CIRCUMFERENCE / (f64::from(tile_size) * 2f64.powi(i32::from(zoom)));
        Ok(Self {
            area,
            metres_per_pixel,
            buffer,
            width: width as u32,
            height: height as u32,
        })
    }

    /// Metres per pixel.
    pub fn metres_per_pixel(&self) -> f64 {
        self.metres_per_pixel
    }

    /// Image width and height in pixels, buffer included.
    pub fn image_size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The buffer in pixels on each side.
    pub fn buffer(&self) -> u32 {
        self.buffer
    }

    /// The area the tiles cover, without the buffer.
    pub fn area(&self) -> MercatorBbox {
        self.area
    }

    /// The area the whole image covers, buffer included. It may reach past
    /// the edge of the world; x beyond ±[`crate::MAX_MERCATOR`] is the other side of
    /// the antimeridian.
    pub fn buffered_area(&self) -> MercatorBbox {
        self.area
            .expanded(f64::from(self.buffer) * self.metres_per_pixel)
    }

    /// Pixel position of a point (fractional; y grows downwards).
    pub fn to_pixel(&self, p: MercatorPoint) -> (f64, f64) {
        let b = f64::from(self.buffer);
        (
            (p.x - self.area.left) / self.metres_per_pixel + b,
            (self.area.top - p.y) / self.metres_per_pixel + b,
        )
    }

    /// The point at a pixel position (fractional).
    pub fn to_metres(&self, px: f64, py: f64) -> MercatorPoint {
        let b = f64::from(self.buffer);
        MercatorPoint {
            x: self.area.left + (px - b) * self.metres_per_pixel,
            y: self.area.top - (py - b) * self.metres_per_pixel,
        }
    }

    /// The pixel offset of a tile's north-west corner in this image, for
    /// cutting a metatile into tiles. `None` if the tile is not inside the
    /// unbuffered area.
    pub fn tile_origin(&self, tile: TileCoord) -> Option<(u32, u32)> {
        let b = tile.xy_bounds();
        let inside = b.left >= self.area.left - 1e-6
            && b.right <= self.area.right + 1e-6
            && b.top <= self.area.top + 1e-6
            && b.bottom >= self.area.bottom - 1e-6;
        if !inside {
            return None;
        }
        let (px, py) = self.to_pixel(MercatorPoint::new(b.left, b.top));
        Some((px.round() as u32, py.round() as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_denominator_matches_mapnik() {
        assert!((scale_denominator(0, 256, 1.0) - 559_082_264.028_717_8).abs() < 1e-6);
        // Each zoom halves it.
        assert!((scale_denominator(10, 256, 1.0) - 559_082_264.028_717_8 / 1024.0).abs() < 1e-6);
        // HiDPI 512 px tiles at scale factor 2 pick the same rules as 256 px.
        assert_eq!(
            scale_denominator(7, 512, 2.0),
            scale_denominator(7, 256, 1.0)
        );
    }

    #[test]
    fn tile_corners_map_to_image_corners() {
        let tile = TileCoord::new(3, 4, 2).unwrap();
        let t = PixelTransform::for_tile(tile, 256, 0).unwrap();
        let b = tile.xy_bounds();
        let (x, y) = t.to_pixel(MercatorPoint::new(b.left, b.top));
        assert!(x.abs() < 1e-9 && y.abs() < 1e-9);
        let (x, y) = t.to_pixel(MercatorPoint::new(b.right, b.bottom));
        assert!((x - 256.0).abs() < 1e-6 && (y - 256.0).abs() < 1e-6);
        let back = t.to_metres(128.0, 128.0);
        assert!((back.x - (b.left + b.right) / 2.0).abs() < 1e-6);
    }

    #[test]
    fn buffer_shifts_and_grows_the_image() {
        let meta = Metatile::containing(TileCoord::new(5, 9, 9).unwrap(), 8).unwrap();
        let t = PixelTransform::for_metatile(&meta, 256, 128).unwrap();
        assert_eq!(t.image_size(), (8 * 256 + 256, 8 * 256 + 256));
        assert_eq!(t.tile_origin(meta.first_tile()), Some((128, 128)));
        assert_eq!(
            t.tile_origin(TileCoord::new(5, 9, 10).unwrap()),
            Some((128 + 256, 128 + 512))
        );
        assert_eq!(t.tile_origin(TileCoord::new(5, 16, 10).unwrap()), None);
        let area = t.buffered_area();
        assert!((area.width() - t.metres_per_pixel() * 2304.0).abs() < 1e-3);
    }

    #[test]
    fn low_zoom_metatile_is_clipped() {
        let meta = Metatile::containing(TileCoord::new(1, 1, 1).unwrap(), 8).unwrap();
        let t = PixelTransform::for_metatile(&meta, 512, 0).unwrap();
        assert_eq!(t.image_size(), (1024, 1024));
    }

    #[test]
    fn absurd_sizes_are_refused() {
        let tile = TileCoord::WORLD;
        assert!(PixelTransform::for_tile(tile, 0, 0).is_err());
        assert!(PixelTransform::for_tile(tile, 70_000, 0).is_err());
    }
}
