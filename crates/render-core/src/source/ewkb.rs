//! PostGIS's binary geometry (EWKB, as `geometry` columns come over the
//! wire) read into our [`Geometry`]: points, lines, polygons, their
//! multi-types and collections, in 2D (Z and M dropped). A pure parser,
//! bounded by its input: a count larger than the bytes left is an error,
//! never an allocation.
//!
//! Curves, triangles and surfaces are reported as [`EwkbError::Unsupported`]
//! (the caller skips the feature, as Mapnik's WKB reader does).

use super::geometry::{Geometry, Point};
use crate::style::filter::GeometryType;

/// Why bytes are not a geometry this reader takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EwkbError {
    /// The bytes end before the geometry does.
    #[error("truncated geometry")]
    Truncated,
    /// A byte-order mark other than 0 or 1.
    #[error("bad byte order {0}")]
    ByteOrder(u8),
    /// A geometry type this reader does not draw (curves, surfaces).
    #[error("geometry type {0} is not drawn")]
    Unsupported(u32),
    /// Collections nested deeper than any real geometry.
    #[error("geometry nested too deep")]
    TooDeep,
}

const MAX_DEPTH: usize = 32;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], EwkbError> {
        let end = self.at.checked_add(N).ok_or(EwkbError::Truncated)?;
        let slice = self.bytes.get(self.at..end).ok_or(EwkbError::Truncated)?;
        self.at = end;
        let mut out = [0; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn u32(&mut self, little: bool) -> Result<u32, EwkbError> {
        let b = self.take::<4>()?;
        Ok(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }

    fn f64(&mut self, little: bool) -> Result<f64, EwkbError> {
        let b = self.take::<8>()?;
        Ok(if little {
            f64::from_le_bytes(b)
        } else {
            f64::from_be_bytes(b)
        })
    }

    /// A count of items of at least `item_bytes` each: refused when the
    /// bytes left cannot hold them (so a corrupt count allocates nothing).
    fn count(&mut self, little: bool, item_bytes: usize) -> Result<usize, EwkbError> {
        let n = self.u32(little)? as usize;
        let left = self.bytes.len().saturating_sub(self.at);
        if n.saturating_mul(item_bytes) > left {
            return Err(EwkbError::Truncated);
        }
        Ok(n)
    }
}

/// One geometry's header: byte order, base type, coordinate count.
struct Header {
    little: bool,
    base: u32,
    dims: usize,
}

fn header(r: &mut Reader<'_>) -> Result<Header, EwkbError> {
    let [order] = r.take::<1>()?;
    let little = match order {
        0 => false,
        1 => true,
        other => return Err(EwkbError::ByteOrder(other)),
    };
    let raw = r.u32(little)?;
    // EWKB flags; ISO WKB puts dimensions in the thousands instead.
    let (z, m, srid) = (
        raw & 0x8000_0000 != 0,
        raw & 0x4000_0000 != 0,
        raw & 0x2000_0000 != 0,
    );
    let code = raw & 0x0FFF_FFFF;
    let (base, iso_dims) = (code % 1000, code / 1000);
    let mut dims = 2 + usize::from(z) + usize::from(m);
    dims += match iso_dims {
        1 | 2 => 1,
        3 => 2,
        _ => 0,
    };
    if srid {
        r.u32(little)?;
    }
    Ok(Header { little, base, dims })
}

fn points(r: &mut Reader<'_>, h: &Header) -> Result<Vec<Point>, EwkbError> {
    let n = r.count(h.little, 8 * h.dims)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let x = r.f64(h.little)?;
        let y = r.f64(h.little)?;
        for _ in 2..h.dims {
            r.f64(h.little)?;
        }
        if x.is_finite() && y.is_finite() {
            out.push([x, y]);
        }
    }
    Ok(out)
}

/// Reads one geometry from `bytes` into `out`; returns what Mapnik's
/// `[mapnik::geometry_type]` says of it.
pub fn read(bytes: &[u8], out: &mut Geometry) -> Result<GeometryType, EwkbError> {
    let mut r = Reader { bytes, at: 0 };
    read_one(&mut r, out, 0)
}

fn read_one(
    r: &mut Reader<'_>,
    out: &mut Geometry,
    depth: usize,
) -> Result<GeometryType, EwkbError> {
    if depth > MAX_DEPTH {
        return Err(EwkbError::TooDeep);
    }
    let h = header(r)?;
    match h.base {
        1 => {
            let x = r.f64(h.little)?;
            let y = r.f64(h.little)?;
            for _ in 2..h.dims {
                r.f64(h.little)?;
            }
            // An empty point is (NaN, NaN).
            if x.is_finite() && y.is_finite() {
                out.points.push([x, y]);
            }
            Ok(GeometryType::Point)
        }
        2 => {
            out.lines.push(points(r, &h)?);
            Ok(GeometryType::LineString)
        }
        3 => {
            let n = r.count(h.little, 4)?;
            let mut rings = Vec::with_capacity(n);
            for _ in 0..n {
                rings.push(points(r, &h)?);
            }
            out.polygons.push(rings);
            Ok(GeometryType::Polygon)
        }
        4..=6 => {
            let n = r.count(h.little, 5)?;
            let mut kind = GeometryType::Unknown;
            for _ in 0..n {
                kind = read_one(r, out, depth + 1)?;
            }
            Ok(kind)
        }
        7 => {
            let n = r.count(h.little, 5)?;
            for _ in 0..n {
                read_one(r, out, depth + 1)?;
            }
            Ok(GeometryType::Collection)
        }
        other => Err(EwkbError::Unsupported(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
            .collect()
    }

    #[test]
    fn ewkb_point_with_srid() {
        // SRID=3857;POINT(1 2), little-endian, as PostGIS sends it.
        let b = hex("0101000020110F0000000000000000F03F0000000000000040");
        let mut g = Geometry::default();
        assert_eq!(read(&b, &mut g), Ok(GeometryType::Point));
        assert_eq!(g.points, vec![[1.0, 2.0]]);
    }

    #[test]
    fn big_endian_linestring_z() {
        // LINESTRING Z (1 2 3, 4 5 6), big-endian EWKB with the Z flag.
        let mut b = vec![0u8];
        b.extend_from_slice(&(0x8000_0002u32).to_be_bytes());
        b.extend_from_slice(&2u32.to_be_bytes());
        for v in [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        let mut g = Geometry::default();
        assert_eq!(read(&b, &mut g), Ok(GeometryType::LineString));
        assert_eq!(g.lines, vec![vec![[1.0, 2.0], [4.0, 5.0]]]);
    }

    #[test]
    fn multipolygon_and_collection() {
        // MULTIPOLYGON(((0 0,1 0,1 1,0 0)),((5 5,6 5,6 6,5 5)))
        let mut b = vec![1u8];
        b.extend_from_slice(&6u32.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        for off in [0.0f64, 5.0] {
            b.push(1);
            b.extend_from_slice(&3u32.to_le_bytes());
            b.extend_from_slice(&1u32.to_le_bytes());
            b.extend_from_slice(&4u32.to_le_bytes());
            for (x, y) in [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 0.0)] {
                b.extend_from_slice(&(x + off).to_le_bytes());
                b.extend_from_slice(&(y + off).to_le_bytes());
            }
        }
        let mut g = Geometry::default();
        assert_eq!(read(&b, &mut g), Ok(GeometryType::Polygon));
        assert_eq!(g.polygons.len(), 2);
        assert_eq!(g.polygons[1][0][2], [6.0, 6.0]);
        // A collection of a point and that multipolygon.
        let mut c = vec![1u8];
        c.extend_from_slice(&7u32.to_le_bytes());
        c.extend_from_slice(&2u32.to_le_bytes());
        c.extend_from_slice(&hex("0101000000000000000000F03F0000000000000040"));
        c.extend_from_slice(&b);
        let mut g = Geometry::default();
        assert_eq!(read(&c, &mut g), Ok(GeometryType::Collection));
        assert_eq!((g.points.len(), g.polygons.len()), (1, 2));
    }

    #[test]
    fn corrupt_input_is_an_error_not_an_allocation() {
        let mut g = Geometry::default();
        // A linestring claiming 4 billion points in 9 bytes.
        let mut b = vec![1u8];
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(read(&b, &mut g), Err(EwkbError::Truncated));
        assert_eq!(read(&[7], &mut g), Err(EwkbError::ByteOrder(7)));
        assert_eq!(read(&[], &mut g), Err(EwkbError::Truncated));
        // A circular string.
        let mut b = vec![1u8];
        b.extend_from_slice(&8u32.to_le_bytes());
        assert_eq!(read(&b, &mut g), Err(EwkbError::Unsupported(8)));
    }
}
