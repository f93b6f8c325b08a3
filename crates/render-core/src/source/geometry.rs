//! Geometry as the renderer keeps it: plain `f64` coordinates in Web
//! Mercator metres, converted from GDAL right after reading (GDAL's own
//! geometry types are not `Send` and never leave the loader).

use tile_math::{MercatorBbox, EARTH_CIRCUMFERENCE, MAX_MERCATOR};

/// A point in metres.
pub type Point = [f64; 2];

/// A feature's geometry, grouped by how it is drawn.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Geometry {
    /// Points (markers).
    pub points: Vec<Point>,
    /// Line strings.
    pub lines: Vec<Vec<Point>>,
    /// Polygons, each as rings (exterior first); filled even-odd.
    pub polygons: Vec<Vec<Vec<Point>>>,
}

impl Geometry {
    /// Whether there is nothing to draw.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty() && self.lines.is_empty() && self.polygons.is_empty()
    }

    /// The bounding box, or `None` when empty.
    pub fn bbox(&self) -> Option<MercatorBbox> {
        let mut b: Option<MercatorBbox> = None;
        let mut add = |p: &Point| {
            let bb = b.get_or_insert(MercatorBbox::new(p[0], p[1], p[0], p[1]));
            bb.left = bb.left.min(p[0]);
            bb.right = bb.right.max(p[0]);
            bb.bottom = bb.bottom.min(p[1]);
            bb.top = bb.top.max(p[1]);
        };
        self.points.iter().for_each(&mut add);
        self.lines.iter().flatten().for_each(&mut add);
        self.polygons.iter().flatten().flatten().for_each(&mut add);
        b
    }

    /// A copy simplified with Douglas–Peucker to `tolerance` metres. Rings
    /// keep at least four points and lines two, so nothing vanishes that
    /// was visible; a ring that collapses keeps its original points.
    pub fn simplified(&self, tolerance: f64) -> Geometry {
        Geometry {
            points: self.points.clone(),
            lines: self
                .lines
                .iter()
                .map(|l| simplify_path(l, tolerance, 2))
                .collect(),
            polygons: self
                .polygons
                .iter()
                .map(|rings| {
                    rings
                        .iter()
                        .map(|r| simplify_path(r, tolerance, 4))
                        .collect()
                })
                .collect(),
        }
    }

    /// The number of coordinates, for memory accounting and tests.
    pub fn coordinate_count(&self) -> usize {
        self.points.len()
            + self.lines.iter().map(Vec::len).sum::<usize>()
            + self.polygons.iter().flatten().map(Vec::len).sum::<usize>()
    }
}

/// Douglas–Peucker on one path; keeps the path as it is if the result
/// would have fewer than `min_points` points.
fn simplify_path(path: &[Point], tolerance: f64, min_points: usize) -> Vec<Point> {
    if path.len() <= min_points || tolerance <= 0.0 {
        return path.to_vec();
    }
    let mut keep = vec![false; path.len()];
    keep[0] = true;
    keep[path.len() - 1] = true;
    // An explicit stack: deep recursion on long coastlines would overflow.
    let mut stack = vec![(0usize, path.len() - 1)];
    let tol2 = tolerance * tolerance;
    while let Some((first, last)) = stack.pop() {
        if last <= first + 1 {
            continue;
        }
        let (mut worst, mut worst_d2) = (first, 0.0);
        for i in first + 1..last {
            let d2 = segment_distance2(path[i], path[first], path[last]);
            if d2 > worst_d2 {
                worst = i;
                worst_d2 = d2;
            }
        }
        if worst_d2 > tol2 {
            keep[worst] = true;
            stack.push((first, worst));
            stack.push((worst, last));
        }
    }
    let out: Vec<Point> = path
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(p, _)| *p)
        .collect();
    if out.len() < min_points {
        path.to_vec()
    } else {
        out
    }
}

fn segment_distance2(p: Point, a: Point, b: Point) -> f64 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (cx, cy) = (a[0] + t * dx - p[0], a[1] + t * dy - p[1]);
    cx * cx + cy * cy
}

/// Makes a path continuous across the antimeridian.
///
/// Data made for spherical renderers stores rings that jump from +180° to
/// -180° (Russia's Chukotka, Fiji). Drawn on a plane, such a jump paints a
/// band across the whole world. Each jump of more than half the world's
/// width is undone by shifting the rest of the path a world east or west,
/// so the ring extends past ±180° instead (the renderer draws geometry that
/// sticks out of the world a second time, shifted by one world width).
///
/// A ring that goes once around the globe (Antarctica) cannot be made
/// continuous: it is closed along the nearer pole instead, at the edge of
/// the projected world. Returns whether the path was changed.
pub fn unwrap_antimeridian(path: &mut Vec<Point>, is_ring: bool) -> bool {
    let mut offset = 0.0;
    let mut changed = false;
    for i in 1..path.len() {
        let jump = path[i][0] + offset - path[i - 1][0];
        if jump > MAX_MERCATOR {
            offset -= EARTH_CIRCUMFERENCE;
            changed = true;
        } else if jump < -MAX_MERCATOR {
            offset += EARTH_CIRCUMFERENCE;
            changed = true;
        }
        path[i][0] += offset;
    }
    if is_ring && offset != 0.0 {
        // The ring wraps the globe: walk along the pole back to the start.
        let pole = if path.iter().map(|p| p[1]).sum::<f64>() < 0.0 {
            -MAX_MERCATOR
        } else {
            MAX_MERCATOR
        };
        let (first, last) = (path[0], path[path.len() - 1]);
        // Drop the closing point (it is the first point shifted a world).
        if (last[0] - offset - first[0]).abs() < 1e-6 && (last[1] - first[1]).abs() < 1e-6 {
            path.pop();
        }
        let last = path[path.len() - 1];
        path.push([last[0], pole]);
        path.push([first[0], pole]);
        path.push(first);
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simplification_keeps_shape_and_minimum_points() {
        let line: Vec<Point> = (0..100)
            .map(|i| [f64::from(i), (f64::from(i) * 0.1).sin() * 0.01])
            .collect();
        let s = simplify_path(&line, 0.1, 2);
        assert_eq!(s, vec![[0.0, line[0][1]], line[99]]);
        let square = vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]];
        assert_eq!(
            simplify_path(&square, 10.0, 4),
            square,
            "a ring never collapses"
        );
        let zigzag = vec![[0.0, 0.0], [1.0, 5.0], [2.0, 0.0], [3.0, 5.0], [4.0, 0.0]];
        assert_eq!(simplify_path(&zigzag, 1.0, 2), zigzag);
    }

    #[test]
    fn a_ring_jumping_the_antimeridian_becomes_continuous() {
        let e = MAX_MERCATOR;
        // Fiji-like: from 179° east across to 179° west and back.
        let mut ring = vec![
            [e - 100.0, 0.0],
            [-e + 100.0, 0.0],
            [-e + 100.0, -50.0],
            [e - 100.0, -50.0],
            [e - 100.0, 0.0],
        ];
        assert!(unwrap_antimeridian(&mut ring, true));
        assert_eq!(ring.len(), 5, "not a polar ring");
        assert!(
            ring.iter().all(|p| p[0] > 0.0),
            "continued past +180: {ring:?}"
        );
        assert!((ring[1][0] - (e + 100.0)).abs() < 1e-6);
    }

    #[test]
    fn a_ring_around_the_pole_is_closed_along_it() {
        let e = MAX_MERCATOR;
        let mut ring = vec![[-e, -1000.0], [0.0, -2000.0], [e, -1000.0]];
        // Goes from -180 to +180 without a jump: nothing to undo.
        assert!(!unwrap_antimeridian(&mut ring.clone(), true));
        // The same ring stored with a jump back to the start.
        ring = vec![
            [-e * 0.5, -1000.0],
            [0.0, -2000.0],
            [e * 0.5, -1000.0],
            [e * 0.9, -1500.0],
            [-e * 0.9, -1500.0],
            [-e * 0.5, -1000.0],
        ];
        assert!(unwrap_antimeridian(&mut ring, true));
        let last_three: Vec<_> = ring[ring.len() - 3..].to_vec();
        assert_eq!(last_three[0][1], -MAX_MERCATOR);
        assert_eq!(last_three[1][1], -MAX_MERCATOR);
        assert_eq!(last_three[2], ring[0]);
    }

    #[test]
    fn bbox_covers_every_part() {
        let g = Geometry {
            points: vec![[5.0, 5.0]],
            lines: vec![vec![[-1.0, 0.0], [2.0, 3.0]]],
            polygons: vec![vec![vec![
                [0.0, -4.0],
                [1.0, -4.0],
                [1.0, 0.0],
                [0.0, -4.0],
            ]]],
        };
        assert_eq!(g.bbox(), Some(MercatorBbox::new(-1.0, -4.0, 5.0, 5.0)));
        assert_eq!(Geometry::default().bbox(), None);
        assert_eq!(g.coordinate_count(), 7);
    }
}
