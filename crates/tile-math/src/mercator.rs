//! The spherical Mercator projection (EPSG:3857) and the tile that holds a
//! point.
//!
//! The formulas are written exactly as mercantile writes them, operation for
//! operation, so that results agree with it to the last bit where mercantile
//! is defined, and tile boundaries fall the same way.

use crate::{Result, TileCoord, TileMathError, MAX_ZOOM};

/// Radius of the sphere EPSG:3857 projects from, in metres (WGS84 semi-major axis).
pub const EARTH_RADIUS: f64 = 6_378_137.0;

/// Circumference of that sphere at the equator, in metres: the width of the
/// projected world.
pub const EARTH_CIRCUMFERENCE: f64 = 2.0 * std::f64::consts::PI * EARTH_RADIUS;

/// Half the projected world's width: the largest |x| and |y| in metres.
pub const MAX_MERCATOR: f64 = EARTH_CIRCUMFERENCE / 2.0;

/// The latitude at which the projected world is square, `atan(sinh(π))` in
/// degrees. Latitudes beyond it are clamped to it.
pub const MAX_LATITUDE: f64 = 85.051_128_779_806_6;

const R2D: f64 = 180.0 / std::f64::consts::PI;

/// Points within this many world-widths of a tile's right or bottom edge are
/// counted in the next tile: mercantile's `EPSILON`, which makes
/// `tile(ul(t)) == t` despite rounding.
pub(crate) const TILE_EPSILON: f64 = 1e-14;

/// A longitude and latitude in decimal degrees (WGS84).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LngLat {
    /// Degrees east of Greenwich.
    pub lng: f64,
    /// Degrees north of the equator.
    pub lat: f64,
}

/// A point in Web Mercator metres (EPSG:3857).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MercatorPoint {
    /// Metres east of Greenwich.
    pub x: f64,
    /// Metres north of the equator (in projected space).
    pub y: f64,
}

impl LngLat {
    /// A point from longitude and latitude in degrees. No check is made here;
    /// the functions that use a point check it.
    pub const fn new(lng: f64, lat: f64) -> Self {
        Self { lng, lat }
    }

    /// Projects to Web Mercator metres, like mercantile's `xy`.
    ///
    /// With `truncate`, a longitude beyond ±180° or a latitude beyond ±90° is
    /// clamped first; without it, a latitude beyond ±90° is an error, while a
    /// longitude beyond ±180° is projected as it is (geometry that wraps the
    /// world needs that).
    ///
    /// Unlike mercantile, which returns ±infinity at the poles, the latitude
    /// is always clamped to ±[`MAX_LATITUDE`], so the result is finite and
    /// inside the projected world.
    pub fn to_mercator(self, truncate: bool) -> Result<MercatorPoint> {
        let LngLat { lng, lat } = checked_lnglat(self, truncate, false)?;
        let lat = lat.clamp(-MAX_LATITUDE, MAX_LATITUDE);
        let x = EARTH_RADIUS * lng.to_radians();
        let y = EARTH_RADIUS
            * ((std::f64::consts::PI * 0.25) + (0.5 * lat.to_radians()))
                .tan()
                .ln();
        Ok(MercatorPoint { x, y })
    }
}

impl MercatorPoint {
    /// A point from metres.
    pub const fn new(x: f64, y: f64) -> Self {
        Self { x, y }
    }

    /// Unprojects to degrees, like mercantile's `lnglat`. With `truncate`
    /// the result is clamped to ±180° and ±90°.
    pub fn to_lnglat(self, truncate: bool) -> Result<LngLat> {
        check_finite(self.x, "x")?;
        check_finite(self.y, "y")?;
        let lng = self.x * R2D / EARTH_RADIUS;
        let lat =
            ((std::f64::consts::PI * 0.5) - 2.0 * (-self.y / EARTH_RADIUS).exp().atan()) * R2D;
        let p = LngLat { lng, lat };
        Ok(if truncate { clamp_to_world(p) } else { p })
    }
}

/// The tile at `zoom` that contains a point, like mercantile's `tile`.
///
/// - A latitude beyond ±[`MAX_LATITUDE`] (up to the pole) lands in the first
///   or last row, never on a mirrored row.
/// - A longitude of exactly 180° lands in the last column, `2^z - 1`.
/// - Without `truncate`, a longitude beyond ±180° or a latitude beyond ±90°
///   is an error; with it, they are clamped.
/// - NaN or infinite input is always an error.
pub fn tile_for_lnglat(point: LngLat, zoom: u8, truncate: bool) -> Result<TileCoord> {
    check_zoom(zoom)?;
    let point = checked_lnglat(point, truncate, true)?;
    let (x, y) = unit_xy(point);
    let z2 = 2f64.powi(i32::from(zoom));
    let x = unit_to_index(x, z2);
    let y = unit_to_index(y, z2);
    TileCoord::new(zoom, x, y)
}

/// A point as a fraction of the world: `(0, 0)` is the north-west corner,
/// `(1, 1)` the south-east one. Mercantile's `_xy`, with the latitude clamped
/// so that the poles do not divide by zero.
pub(crate) fn unit_xy(point: LngLat) -> (f64, f64) {
    let lat = point.lat.clamp(-MAX_LATITUDE, MAX_LATITUDE);
    let x = point.lng / 360.0 + 0.5;
    let sinlat = lat.to_radians().sin();
    let y = 0.5 - 0.25 * ((1.0 + sinlat) / (1.0 - sinlat)).ln() / std::f64::consts::PI;
    (x, y)
}

/// The column (or row) of a world fraction at a zoom with `z2 = 2^z` tiles
/// across, as mercantile rounds it.
pub(crate) fn unit_to_index(unit: f64, z2: f64) -> u32 {
    if unit <= 0.0 {
        0
    } else if unit >= 1.0 {
        (z2 - 1.0) as u32
    } else {
        // Cannot exceed 2^30 here, so the cast is exact.
        ((unit + TILE_EPSILON) * z2).floor().min(z2 - 1.0) as u32
    }
}

pub(crate) fn check_zoom(zoom: u8) -> Result<()> {
    if zoom > MAX_ZOOM {
        return Err(TileMathError::ZoomOutOfRange {
            zoom: u32::from(zoom),
        });
    }
    Ok(())
}

pub(crate) fn check_finite(value: f64, what: &'static str) -> Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(TileMathError::NotFinite { what })
    }
}

fn clamp_to_world(p: LngLat) -> LngLat {
    LngLat {
        lng: p.lng.clamp(-180.0, 180.0),
        lat: p.lat.clamp(-90.0, 90.0),
    }
}

/// Checks that a point is finite and, unless `truncate`, on the globe; with
/// `truncate` it is clamped onto it. `check_lng` decides whether a longitude
/// beyond ±180° is an error (tile look-ups) or allowed (projection).
pub(crate) fn checked_lnglat(p: LngLat, truncate: bool, check_lng: bool) -> Result<LngLat> {
    check_finite(p.lng, "longitude")?;
    check_finite(p.lat, "latitude")?;
    if truncate {
        return Ok(clamp_to_world(p));
    }
    if check_lng && !(-180.0..=180.0).contains(&p.lng) {
        return Err(TileMathError::OutOfWorld {
            what: "longitude",
            value: p.lng,
        });
    }
    if !(-90.0..=90.0).contains(&p.lat) {
        return Err(TileMathError::OutOfWorld {
            what: "latitude",
            value: p.lat,
        });
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_latitude_is_where_the_world_is_square() {
        let exact = std::f64::consts::PI.sinh().atan().to_degrees();
        assert!((exact - MAX_LATITUDE).abs() < 1e-12);
        let p = LngLat::new(180.0, MAX_LATITUDE).to_mercator(false).unwrap();
        assert!((p.x - MAX_MERCATOR).abs() < 1e-6);
        assert!((p.y - MAX_MERCATOR).abs() < 1e-6);
    }

    #[test]
    fn poles_project_to_the_edge_of_the_world_not_to_infinity() {
        let north = LngLat::new(0.0, 90.0).to_mercator(false).unwrap();
        let south = LngLat::new(0.0, -90.0).to_mercator(false).unwrap();
        assert!((north.y - MAX_MERCATOR).abs() < 1e-6);
        assert!((south.y + MAX_MERCATOR).abs() < 1e-6);
    }

    #[test]
    fn latitude_beyond_the_pole_is_an_error_unless_truncated() {
        let p = LngLat::new(0.0, 91.0);
        assert!(matches!(
            p.to_mercator(false),
            Err(TileMathError::OutOfWorld { .. })
        ));
        assert!(p.to_mercator(true).is_ok());
    }

    #[test]
    fn high_latitudes_land_on_row_zero_never_a_mirrored_row() {
        for lat in [85.06, 89.0, 90.0] {
            for z in [0, 1, 5, 18, 30] {
                let t = tile_for_lnglat(LngLat::new(10.0, lat), z, false).unwrap();
                assert_eq!(t.y(), 0, "lat {lat} z {z}");
                let t = tile_for_lnglat(LngLat::new(10.0, -lat), z, false).unwrap();
                assert_eq!(u64::from(t.y()), (1u64 << z) - 1, "lat -{lat} z {z}");
            }
        }
        // Beyond the pole: mercantile would take sin(100°) = sin(80°) and
        // return row of 80°; we refuse, or clamp when asked.
        assert!(tile_for_lnglat(LngLat::new(0.0, 100.0), 4, false).is_err());
        assert_eq!(
            tile_for_lnglat(LngLat::new(0.0, 100.0), 4, true)
                .unwrap()
                .y(),
            0
        );
    }

    #[test]
    fn lon_180_is_the_last_column() {
        for z in [0u8, 1, 7, 20, 30] {
            let t = tile_for_lnglat(LngLat::new(180.0, 0.0), z, false).unwrap();
            assert_eq!(u64::from(t.x()), (1u64 << z) - 1);
            let t = tile_for_lnglat(LngLat::new(-180.0, 0.0), z, false).unwrap();
            assert_eq!(t.x(), 0);
        }
    }

    #[test]
    fn non_finite_input_is_an_error_not_a_panic() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for truncate in [false, true] {
                assert!(matches!(
                    tile_for_lnglat(LngLat::new(bad, 0.0), 3, truncate),
                    Err(TileMathError::NotFinite { what: "longitude" })
                ));
                assert!(matches!(
                    tile_for_lnglat(LngLat::new(0.0, bad), 3, truncate),
                    Err(TileMathError::NotFinite { what: "latitude" })
                ));
                assert!(LngLat::new(bad, 0.0).to_mercator(truncate).is_err());
                assert!(MercatorPoint::new(0.0, bad).to_lnglat(truncate).is_err());
            }
        }
    }

    #[test]
    fn zoom_above_thirty_is_an_error() {
        assert_eq!(
            tile_for_lnglat(LngLat::new(0.0, 0.0), 31, false),
            Err(TileMathError::ZoomOutOfRange { zoom: 31 })
        );
    }

    #[test]
    fn zoom_thirty_is_exact() {
        let t = tile_for_lnglat(LngLat::new(-180.0, MAX_LATITUDE), 30, false).unwrap();
        assert_eq!((t.x(), t.y()), (0, 0));
        let t = tile_for_lnglat(LngLat::new(180.0, -MAX_LATITUDE), 30, false).unwrap();
        assert_eq!((t.x(), t.y()), ((1 << 30) - 1, (1 << 30) - 1));
    }
}
