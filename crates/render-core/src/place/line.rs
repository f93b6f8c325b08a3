//! Walking along a line in pixels: where a distance along it lies, and the
//! direction of the chord from one distance to another (Mapnik's
//! `vertex_cache`). Labels that follow a line ask it where each glyph
//! cluster goes and at which angle.

/// A polyline with its cumulative lengths.
#[derive(Debug, Clone)]
pub struct LinePath {
    points: Vec<[f64; 2]>,
    /// Distance from the start to each point.
    at: Vec<f64>,
}

impl LinePath {
    /// A path through `points` (pixels); repeated points are dropped.
    pub fn new(points: &[[f64; 2]]) -> LinePath {
        let mut kept: Vec<[f64; 2]> = Vec::with_capacity(points.len());
        for p in points {
            if kept.last() != Some(p) {
                kept.push(*p);
            }
        }
        let mut at = Vec::with_capacity(kept.len());
        let mut total = 0.0;
        for (i, p) in kept.iter().enumerate() {
            if i > 0 {
                total += (p[0] - kept[i - 1][0]).hypot(p[1] - kept[i - 1][1]);
            }
            at.push(total);
        }
        LinePath { points: kept, at }
    }

    /// The same path walked the other way.
    pub fn reversed(&self) -> LinePath {
        let points: Vec<[f64; 2]> = self.points.iter().rev().copied().collect();
        LinePath::new(&points)
    }

    /// Its length in pixels.
    pub fn length(&self) -> f64 {
        self.at.last().copied().unwrap_or(0.0)
    }

    /// The point at distance `d` from the start (clamped to the path).
    pub fn point_at(&self, d: f64) -> [f64; 2] {
        let Some(first) = self.points.first() else {
            return [0.0, 0.0];
        };
        if d <= 0.0 || self.points.len() == 1 {
            return *first;
        }
        let i = self.at.partition_point(|&a| a < d);
        if i >= self.points.len() {
            return self.points[self.points.len() - 1];
        }
        let (a, b) = (self.points[i - 1], self.points[i]);
        let span = self.at[i] - self.at[i - 1];
        let t = if span > 0.0 {
            (d - self.at[i - 1]) / span
        } else {
            0.0
        };
        [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])]
    }

    /// The angle (radians, y down, 0 = east) of the chord from distance `d`
    /// to `d + width`; for a zero width, of the segment at `d`.
    pub fn angle(&self, d: f64, width: f64) -> f64 {
        let a = self.point_at(d);
        let b = if width.abs() > 1e-9 {
            self.point_at(d + width)
        } else {
            self.point_at(d + 1e-3)
        };
        if a == b {
            // A chord past the end: the last segment's direction.
            let n = self.points.len();
            if n >= 2 {
                let (p, q) = (self.points[n - 2], self.points[n - 1]);
                return (q[1] - p[1]).atan2(q[0] - p[0]);
            }
            return 0.0;
        }
        (b[1] - a[1]).atan2(b[0] - a[0])
    }
}

/// Mapnik's `tolerance_iterator` (tolerance_iterator.hpp), value for
/// value: the offsets along a line at which a label or a line marker is
/// tried around its spot. 0 first, then each distance `v` backwards and
/// then forwards (`-v`, `+v`): `v = 1`, then `v = 1.3^k · k / (4t) + k` for
/// k = 1, 2, ... (steps of about a pixel that grow), stopping at the first
/// `v` over the tolerance `t` (the spacing's half when it is 0), and after
/// 255 values. `±1` is tried even when `t < 1`, as Mapnik tries it.
pub fn tolerance_offsets(tolerance: f64, spacing: f64) -> impl Iterator<Item = f64> {
    let tolerance = if tolerance > 0.0 {
        tolerance
    } else {
        spacing / 2.0
    };
    ToleranceIterator {
        tolerance,
        linear_position: 1.0,
        value: 0.0,
        initialized: false,
        tried: 0,
    }
}

/// The state of Mapnik's `tolerance_iterator`, with its field names.
struct ToleranceIterator {
    tolerance: f64,
    linear_position: f64,
    value: f64,
    initialized: bool,
    tried: u32,
}

impl Iterator for ToleranceIterator {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        // Mapnik's next(), then its get() (the value negated).
        self.tried += 1;
        if self.tried > 255 {
            return None;
        }
        if !self.initialized {
            self.initialized = true;
            return Some(-self.value);
        }
        if self.value == 0.0 {
            self.value = self.linear_position;
            return Some(-self.value);
        }
        self.value = -self.value;
        if self.value > 0.0 {
            self.value = 1.3f64.powf(self.linear_position) * self.linear_position
                / (4.0 * self.tolerance)
                + self.linear_position;
            self.linear_position += 1.0;
        }
        if self.value > self.tolerance {
            // Mapnik stops for good here; a further next() would go on.
            self.tried = u32::MAX;
            return None;
        }
        Some(-self.value)
    }
}

/// Mapnik's `get_spacing`: the distance between labels on a path of
/// `length` for a label `width` wide and a `spacing` (0: one label).
pub fn label_spacing(length: f64, width: f64, spacing: f64) -> f64 {
    let mut labels = 1.0;
    if spacing > 0.0 {
        labels = (length / (spacing + width)).floor();
    }
    if labels <= 0.0 {
        labels = 1.0;
    }
    length / labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_and_angles_along_a_bent_line() {
        let path = LinePath::new(&[[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [10.0, 10.0]]);
        assert_eq!(path.length(), 20.0);
        assert_eq!(path.point_at(5.0), [5.0, 0.0]);
        assert_eq!(path.point_at(15.0), [10.0, 5.0]);
        assert_eq!(path.point_at(99.0), [10.0, 10.0]);
        assert!((path.angle(0.0, 5.0)).abs() < 1e-12);
        assert!((path.angle(12.0, 5.0) - std::f64::consts::FRAC_PI_2).abs() < 1e-12);
        // The chord over the corner: 45° down-right.
        assert!((path.angle(5.0, 10.0) - std::f64::consts::FRAC_PI_4).abs() < 1e-12);
        let back = path.reversed();
        assert_eq!(back.point_at(5.0), [10.0, 5.0]);
    }

    #[test]
    fn tolerance_alternates_around_the_spot_and_spacing_divides_the_path() {
        // Mapnik's sequence: backwards first; after ±1 the distances are
        // 1.3^k k / 4t + k (k = 1, 2, ...) while within the tolerance.
        let offsets: Vec<f64> = tolerance_offsets(3.0, 100.0).collect();
        let v1 = 1.3 / 12.0 + 1.0;
        let v2 = 1.3f64.powi(2) * 2.0 / 12.0 + 2.0;
        assert_eq!(offsets, vec![0.0, -1.0, 1.0, -v1, v1, -v2, v2]);
        // No tolerance: half the spacing (2 here); 1.3^3 * 3 / 8 + 3 > 2.
        assert_eq!(tolerance_offsets(0.0, 4.0).count(), 5);
        // Under a pixel: ±1 all the same, as Mapnik.
        assert_eq!(
            tolerance_offsets(0.5, 0.0).collect::<Vec<_>>(),
            vec![0.0, -1.0, 1.0]
        );
        // At most 255 values.
        assert_eq!(tolerance_offsets(1e9, 0.0).count(), 255);
        assert_eq!(label_spacing(1000.0, 100.0, 0.0), 1000.0);
        assert_eq!(label_spacing(1000.0, 100.0, 150.0), 250.0);
        assert_eq!(label_spacing(100.0, 100.0, 150.0), 100.0);
    }
}
