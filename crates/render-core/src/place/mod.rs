//! The placement engine of one metatile: which labels (and, next, icons and
//! markers) may be drawn where, given everything placed before them.
//!
//! Contract:
//! - One [`Collisions`] lives for a whole metatile, filled in Mapnik's
//!   order (layers, styles, rules, features), so a label of an earlier layer
//!   blocks a later one.
//! - Its extent is the buffered metatile image: a box that does not touch
//!   it is never placed. `avoid-edges` and `minimum-padding` test against
//!   the unbuffered image instead.
//! - [`Collisions::has_placement`] answers Mapnik's question: does the box,
//!   grown by `margin`, touch a placed box; and is the same text placed
//!   within `repeat_distance`. [`Collisions::insert`] records a placed box
//!   (unless the symbolizer has `ignore-placement`).
//! - Boxes are kept in a uniform grid, so a metatile with 100,000 labels is
//!   answered in time linear in what each box touches, not quadratic.
//!
//! It knows nothing of fonts or drawing: boxes in, yes or no out.

use std::collections::HashMap;

pub mod line;

pub use line::{label_spacing, tolerance_offsets, LinePath};

/// An axis-aligned box in pixels of the metatile image, y down.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    /// Left.
    pub x0: f64,
    /// Top.
    pub y0: f64,
    /// Right.
    pub x1: f64,
    /// Bottom.
    pub y1: f64,
}

impl Rect {
    /// A box from its corners (in any order).
    pub fn new(x0: f64, y0: f64, x1: f64, y1: f64) -> Rect {
        Rect {
            x0: x0.min(x1),
            y0: y0.min(y1),
            x1: x0.max(x1),
            y1: y0.max(y1),
        }
    }

    /// Grown by `d` on every side.
    pub fn grown(&self, d: f64) -> Rect {
        Rect {
            x0: self.x0 - d,
            y0: self.y0 - d,
            x1: self.x1 + d,
            y1: self.y1 + d,
        }
    }

    /// Whether the two boxes share any point (edges touching count, as in
    /// Mapnik's `box2d::intersects`).
    pub fn intersects(&self, other: &Rect) -> bool {
        !(other.x0 > self.x1 || other.x1 < self.x0 || other.y0 > self.y1 || other.y1 < self.y0)
    }

    /// Whether `other` lies entirely inside.
    pub fn contains(&self, other: &Rect) -> bool {
        other.x0 >= self.x0 && other.x1 <= self.x1 && other.y0 >= self.y0 && other.y1 <= self.y1
    }
}

/// Grid cell size in pixels.
const CELL: f64 = 64.0;

/// The boxes placed so far in one metatile.
#[derive(Debug)]
pub struct Collisions {
    extent: Rect,
    boxes: Vec<(Rect, Option<u32>)>,
    /// Interned label texts, for repeat-distance.
    texts: HashMap<String, u32>,
    /// Cell → indices into `boxes`.
    grid: HashMap<(i32, i32), Vec<u32>>,
}

impl Collisions {
    /// An empty engine for a (buffered) image extent.
    pub fn new(extent: Rect) -> Collisions {
        Collisions {
            extent,
            boxes: Vec::new(),
            texts: HashMap::new(),
            grid: HashMap::new(),
        }
    }

    /// The extent labels must touch.
    pub fn extent(&self) -> Rect {
        self.extent
    }

    /// How many boxes have been placed.
    pub fn len(&self) -> usize {
        self.boxes.len()
    }

    /// Whether none has.
    pub fn is_empty(&self) -> bool {
        self.boxes.is_empty()
    }

    fn cells(r: &Rect) -> impl Iterator<Item = (i32, i32)> {
        // Clamp so a huge box cannot make us walk millions of cells.
        let c = |v: f64| (v / CELL).floor().clamp(-4096.0, 4096.0) as i32;
        let (cx0, cy0, cx1, cy1) = (c(r.x0), c(r.y0), c(r.x1), c(r.y1));
        (cy0..=cy1).flat_map(move |y| (cx0..=cx1).map(move |x| (x, y)))
    }

    /// Whether `b` can be placed: it touches the extent, it does not touch
    /// a placed box once grown by `margin`, and (with a text) no box of the
    /// same text lies within `repeat_distance`.
    pub fn has_placement(&self, b: &Rect, margin: f64, repeat: Option<(&str, f64)>) -> bool {
        if !self.extent.intersects(b) {
            return false;
        }
        let grown = if margin > 0.0 { b.grown(margin) } else { *b };
        let repeat = repeat.and_then(|(text, d)| {
            let id = *self.texts.get(text)?;
            (d > 0.0).then(|| (id, b.grown(d)))
        });
        let search = match &repeat {
            Some((_, r)) => *r,
            None => grown,
        };
        // A box in several cells is looked at once per cell: cheaper than
        // remembering which were seen, for a yes-or-no answer.
        for cell in Self::cells(&search) {
            let Some(ids) = self.grid.get(&cell) else {
                continue;
            };
            for &i in ids {
                let (placed, text) = &self.boxes[i as usize];
                if placed.intersects(&grown) {
                    return false;
                }
                if let (Some((id, r)), Some(t)) = (&repeat, text) {
                    if id == t && placed.intersects(r) {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Records a placed box, with the label's text for repeat-distance.
    pub fn insert(&mut self, b: Rect, text: Option<&str>) {
        let text = text.map(|t| {
            let next = self.texts.len() as u32;
            *self.texts.entry(t.to_owned()).or_insert(next)
        });
        let index = self.boxes.len() as u32;
        self.boxes.push((b, text));
        for cell in Self::cells(&b) {
            self.grid.entry(cell).or_default().push(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Collisions {
        Collisions::new(Rect::new(-128.0, -128.0, 2176.0, 2176.0))
    }

    #[test]
    fn a_box_touching_a_placed_one_is_refused() {
        let mut c = engine();
        let a = Rect::new(10.0, 10.0, 60.0, 20.0);
        assert!(c.has_placement(&a, 0.0, None));
        c.insert(a, None);
        assert!(!c.has_placement(&Rect::new(59.0, 15.0, 90.0, 25.0), 0.0, None));
        // Edges touching count, as in Mapnik.
        assert!(!c.has_placement(&Rect::new(60.0, 15.0, 90.0, 25.0), 0.0, None));
        assert!(c.has_placement(&Rect::new(61.0, 15.0, 90.0, 25.0), 0.0, None));
        // A margin keeps others further away.
        assert!(!c.has_placement(&Rect::new(61.0, 15.0, 90.0, 25.0), 2.0, None));
    }

    #[test]
    fn the_same_text_keeps_its_repeat_distance() {
        let mut c = engine();
        c.insert(
            Rect::new(100.0, 100.0, 150.0, 110.0),
            Some("Mannerheimintie"),
        );
        let near = Rect::new(200.0, 100.0, 250.0, 110.0);
        assert!(!c.has_placement(&near, 0.0, Some(("Mannerheimintie", 60.0))));
        assert!(c.has_placement(&near, 0.0, Some(("Aleksanterinkatu", 60.0))));
        assert!(c.has_placement(&near, 0.0, Some(("Mannerheimintie", 40.0))));
    }

    #[test]
    fn boxes_outside_the_extent_are_never_placed() {
        let c = engine();
        assert!(!c.has_placement(&Rect::new(-300.0, 0.0, -200.0, 10.0), 0.0, None));
        assert!(c.has_placement(&Rect::new(-300.0, 0.0, -120.0, 10.0), 0.0, None));
    }

    #[test]
    fn of_a_hundred_thousand_overlapping_boxes_only_disjoint_ones_are_placed() {
        // The grid answers each query from a few cells (a metatile with
        // 100,000 labels stays linear); what is placed never overlaps.
        let mut c = engine();
        let mut placed = Vec::new();
        for i in 0..100_000u32 {
            let x = f64::from(i % 400) * 5.7 - 100.0;
            let y = f64::from(i / 400) * 9.1 - 100.0;
            let b = Rect::new(x, y, x + 20.0, y + 8.0);
            if c.has_placement(&b, 0.0, None) {
                c.insert(b, None);
                placed.push(b);
            }
        }
        assert!(
            placed.len() > 1000 && placed.len() < 100_000,
            "{}",
            placed.len()
        );
        assert_eq!(c.len(), placed.len());
        for (i, a) in placed.iter().enumerate() {
            for b in &placed[i + 1..] {
                assert!(!a.intersects(b), "{a:?} overlaps {b:?}");
            }
        }
    }
}
