//! Fills whose antialiasing coverage goes through a lookup table first:
//! Mapnik's `gamma`/`gamma-method` (and `stroke-gamma`), which AGG applies
//! inside its rasteriser and tiny-skia cannot.
//!
//! The path's coverage is rasterised into a [`Mask`] the size of the
//! path's bounding box (clipped to the image), never the whole metatile:
//! styles set a gamma on hundreds of symbolizers. Each coverage value is
//! mapped through the table. A solid colour drawn `src-over` (what styles
//! with a gamma nearly always do) is then blended straight into the image,
//! pixel by pixel; any other paint is drawn by tiny-skia through the mask
//! into a copy of the box, which is written back. A table that changes
//! nothing never gets here: the caller keeps tiny-skia's direct fill.

use tiny_skia::{
    FillRule, IntRect, Mask, Paint, Path, Pixmap, PremultipliedColorU8, Rect, Shader, Transform,
};

use crate::style::composite::CompOp;
use crate::style::symbolizer::GammaMethod;

/// Coverage 0–255 in, adjusted coverage out: AGG's `gamma()` table
/// (`m_gamma[i] = uround(f(i / 255) * 255)`).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct CoverageTable(pub(crate) [u8; 256]);

impl std::fmt::Debug for CoverageTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CoverageTable")
            .field(&&self.0[..8])
            .finish_non_exhaustive()
    }
}

impl CoverageTable {
    pub(crate) fn new(method: GammaMethod, gamma: f64) -> CoverageTable {
        let mut table = [0u8; 256];
        for (i, out) in table.iter_mut().enumerate() {
            let x = i as f64 / 255.0;
            // AGG's uround is `(unsigned)(v + 0.5)`; a negative gamma can
            // push `power` past 1, which AGG does not guard: clamp.
            let v = method.apply(gamma, x) * 255.0 + 0.5;
            *out = v.clamp(0.0, 255.0) as u8;
        }
        // No coverage stays none whatever the function says (`linear` with
        // a negative gamma gives 1): outside the shape nothing is painted.
        table[0] = 0;
        CoverageTable(table)
    }

    /// Whether every coverage maps to itself (gamma 1 with `power`,
    /// `none`, ...): then the ordinary fill draws the same.
    pub(crate) fn is_identity(&self) -> bool {
        self.0.iter().enumerate().all(|(i, &v)| usize::from(v) == i)
    }
}

/// Fills `paths` (drawn into one coverage, in order) with `paint`, whose
/// blend mode is `op`'s, each pixel's coverage mapped through `table`.
pub(crate) fn fill_through_table(
    pixmap: &mut Pixmap,
    paths: &[(&Path, FillRule)],
    paint: &Paint<'_>,
    op: CompOp,
    table: &CoverageTable,
) {
    let Some(bbox) = pixel_box(paths, pixmap.width(), pixmap.height()) else {
        return;
    };
    let (x0, y0, w, h) = bbox;
    let Some(mut mask) = Mask::new(w, h) else {
        return;
    };
    let to_box = Transform::from_translate(-(x0 as f32), -(y0 as f32));
    for (path, rule) in paths {
        mask.fill_path(path, *rule, true, to_box);
    }
    if let (CompOp::SrcOver, Shader::SolidColor(colour)) = (op, &paint.shader) {
        let colour = colour.premultiply().to_color_u8();
        src_over_solid(pixmap, colour, (x0, y0), &mask, table);
        return;
    }
    for c in mask.data_mut() {
        *c = table.0[usize::from(*c)];
    }
    let Some(rect) = IntRect::from_xywh(x0 as i32, y0 as i32, w, h) else {
        return;
    };
    let Some(mut region) = pixmap.clone_rect(rect) else {
        return;
    };
    // The box in the image's coordinates, drawn through a shift onto the
    // region: the shift moves the paint's shader with it, so a pattern
    // stays aligned to the image (Mapnik's `pattern_offset` puts a global
    // pattern's phase on the map's origin, whatever the polygon's box).
    let Some(full) = Rect::from_xywh(x0 as f32, y0 as f32, w as f32, h as f32) else {
        return;
    };
    let to_region = Transform::from_translate(-(x0 as f32), -(y0 as f32));
    if op.lerps_coverage() {
        // The result where fully covered, then each pixel moved from the
        // destination towards it by its coverage (a mask would scale the
        // source instead, which these modes turn into erasing).
        region.fill_rect(full, paint, to_region, None);
        lerp_back(pixmap, &region, (x0, y0), mask.data());
    } else {
        // tiny-skia scales the source by the mask, as AGG scales it by
        // the coverage; a pixel with no coverage stays as it was.
        region.fill_rect(full, paint, to_region, Some(&mask));
        copy_back(pixmap, &region, (x0, y0));
    }
}

/// The pixels the paths can touch, clipped to the image, as (x, y, width,
/// height); `None` when nothing is left.
fn pixel_box(paths: &[(&Path, FillRule)], width: u32, height: u32) -> Option<(u32, u32, u32, u32)> {
    let mut bounds: Option<[f32; 4]> = None;
    for (path, _) in paths {
        let b = path.bounds();
        let grown = match bounds {
            None => [b.left(), b.top(), b.right(), b.bottom()],
            Some([l, t, r, bt]) => [
                l.min(b.left()),
                t.min(b.top()),
                r.max(b.right()),
                bt.max(b.bottom()),
            ],
        };
        bounds = Some(grown);
    }
    let [l, t, r, b] = bounds?;
    // One pixel of slack on each side: antialiasing never reaches further.
    let x0 = (f64::from(l).floor() - 1.0).clamp(0.0, f64::from(width)) as u32;
    let y0 = (f64::from(t).floor() - 1.0).clamp(0.0, f64::from(height)) as u32;
    let x1 = (f64::from(r).ceil() + 1.0).clamp(0.0, f64::from(width)) as u32;
    let y1 = (f64::from(b).ceil() + 1.0).clamp(0.0, f64::from(height)) as u32;
    (x1 > x0 && y1 > y0).then(|| (x0, y0, x1 - x0, y1 - y0))
}

/// `src-over` of one premultiplied colour onto the box at (x0, y0) that
/// the mask covers, the colour scaled by each pixel's coverage after the
/// table (AGG's `blend_pix` with the cover). The mask holds raw coverage:
/// the table is folded into a per-coverage colour here, which saves a pass.
fn src_over_solid(
    pixmap: &mut Pixmap,
    colour: PremultipliedColorU8,
    (x0, y0): (u32, u32),
    mask: &Mask,
    table: &CoverageTable,
) {
    let src = [colour.red(), colour.green(), colour.blue(), colour.alpha()].map(u32::from);
    // Per raw coverage: the scaled colour and how much of the destination
    // stays (255 - its alpha).
    let mut scaled = [([0u8; 4], 0u32); 256];
    for (entry, &m) in scaled.iter_mut().zip(&table.0) {
        let s = src.map(|v| div255(v * u32::from(m)) as u8);
        *entry = (s, 255 - u32::from(s[3]));
    }
    let stride = pixmap.width() as usize * 4;
    let w = mask.width() as usize;
    let dst = pixmap.data_mut();
    for (y, cov) in mask.data().chunks_exact(w).enumerate() {
        let start = (y0 as usize + y) * stride + x0 as usize * 4;
        let row = &mut dst[start..start + w * 4];
        for (d, &c) in row.chunks_exact_mut(4).zip(cov) {
            // No coverage: outside the shape, untouched whatever the table
            // says (AGG never visits such pixels).
            if c == 0 {
                continue;
            }
            let (s, keep) = &scaled[usize::from(c)];
            match keep {
                0 => d.copy_from_slice(s),
                255 => {}
                _ => {
                    for (d, s) in d.iter_mut().zip(s) {
                        *d = (u32::from(*s) + div255(u32::from(*d) * keep)).min(255) as u8;
                    }
                }
            }
        }
    }
}

/// `v / 255`, rounded, for `v` up to 255 · 255.
fn div255(v: u32) -> u32 {
    (v + 128 + ((v + 128) >> 8)) >> 8
}

fn copy_back(pixmap: &mut Pixmap, region: &Pixmap, (x0, y0): (u32, u32)) {
    let stride = pixmap.width() as usize * 4;
    let row = region.width() as usize * 4;
    let dst = pixmap.data_mut();
    for (y, src) in region.data().chunks_exact(row).enumerate() {
        let start = (y0 as usize + y) * stride + x0 as usize * 4;
        dst[start..start + row].copy_from_slice(src);
    }
}

/// `dst = dst + (blended - dst) · coverage`, premultiplied, rounded.
fn lerp_back(pixmap: &mut Pixmap, blended: &Pixmap, (x0, y0): (u32, u32), coverage: &[u8]) {
    let stride = pixmap.width() as usize * 4;
    let w = blended.width() as usize;
    let dst = pixmap.data_mut();
    for (y, (src, cov)) in blended
        .data()
        .chunks_exact(w * 4)
        .zip(coverage.chunks_exact(w))
        .enumerate()
    {
        let start = (y0 as usize + y) * stride + x0 as usize * 4;
        lerp_row(&mut dst[start..start + w * 4], src, cov.iter().copied());
    }
}

/// Premultiplied RGBA pixels `dst` moved towards `src` by one coverage
/// each: `dst + (src - dst) · coverage / 255`, rounded.
pub(crate) fn lerp_row(dst: &mut [u8], src: &[u8], coverage: impl Iterator<Item = u8>) {
    for ((d, s), c) in dst
        .chunks_exact_mut(4)
        .zip(src.chunks_exact(4))
        .zip(coverage)
    {
        match c {
            0 => {}
            255 => d.copy_from_slice(s),
            _ => {
                let c = u32::from(c);
                for (d, &s) in d.iter_mut().zip(s) {
                    let v = u32::from(*d) * (255 - c) + u32::from(s) * c;
                    *d = ((v + 127) / 255) as u8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiny_skia::{Color, PathBuilder};

    #[test]
    fn tables_are_aggs() {
        // power 1 and none change nothing.
        assert!(CoverageTable::new(GammaMethod::Power, 1.0).is_identity());
        assert!(CoverageTable::new(GammaMethod::None, 0.3).is_identity());
        assert!(CoverageTable::new(GammaMethod::Linear, 1.0).is_identity());
        assert!(CoverageTable::new(GammaMethod::Multiply, 1.0).is_identity());
        // power 0.3: uround(255 · (i/255)^0.3); 0 stays 0.
        let t = CoverageTable::new(GammaMethod::Power, 0.3);
        assert!(!t.is_identity());
        assert_eq!(t.0[0], 0);
        assert_eq!(t.0[1], 48); // 255 · (1/255)^0.3 = 48.3
        assert_eq!(t.0[64], 168); // 255 · (64/255)^0.3 = 168.4
        assert_eq!(t.0[128], 207); // 255 · (128/255)^0.3 = 207.3
        assert_eq!(t.0[255], 255);
        assert!(t.0.windows(2).all(|w| w[0] <= w[1]), "monotonic");
        // power 2 darkens edges instead.
        assert_eq!(CoverageTable::new(GammaMethod::Power, 2.0).0[128], 64);
        // threshold 0.5: a step at 0.5 (128/255 = 0.502 is above).
        let t = CoverageTable::new(GammaMethod::Threshold, 0.5);
        assert_eq!((t.0[127], t.0[128]), (0, 255));
        // linear 0.5: coverage doubled, at most 255.
        let t = CoverageTable::new(GammaMethod::Linear, 0.5);
        assert_eq!((t.0[64], t.0[127], t.0[128]), (128, 254, 255));
        // multiply 2: the same ramp, by AGG's other function.
        let t = CoverageTable::new(GammaMethod::Multiply, 2.0);
        assert_eq!((t.0[64], t.0[128]), (128, 255));
        // A negative power gamma would exceed 255 in AGG: clamped.
        assert_eq!(CoverageTable::new(GammaMethod::Power, -1.0).0[10], 255);
        // No coverage stays none, even where the function says otherwise.
        let t = CoverageTable::new(GammaMethod::Linear, -1.0);
        assert_eq!((t.0[0], t.0[1]), (0, 255));
    }

    fn half_covered_square() -> Path {
        // x from 2.5 to 6.5: columns 2 and 6 are half covered.
        PathBuilder::from_rect(Rect::from_xywh(2.5, 2.0, 4.0, 4.0).unwrap())
    }

    fn paint(op: CompOp) -> Paint<'static> {
        let mut p = Paint::default();
        p.set_color(Color::from_rgba8(0, 0, 0, 255));
        p.blend_mode = op.blend_mode();
        p.anti_alias = true;
        p
    }

    fn white() -> Pixmap {
        let mut pixmap = Pixmap::new(10, 10).unwrap();
        pixmap.fill(Color::WHITE);
        pixmap
    }

    #[test]
    fn edges_go_through_the_table_and_nothing_outside_the_path_changes() {
        let path = half_covered_square();
        let table = CoverageTable::new(GammaMethod::Power, 0.3);
        let mut pixmap = white();
        fill_through_table(
            &mut pixmap,
            &[(&path, FillRule::EvenOdd)],
            &paint(CompOp::SrcOver),
            CompOp::SrcOver,
            &table,
        );
        let red = |x, y| pixmap.pixel(x, y).unwrap().red();
        // Inside black, outside white, the half-covered edge ~81% black
        // (gamma 1 would leave it 50%).
        assert_eq!(red(4, 4), 0);
        assert_eq!(red(0, 4), 255);
        assert_eq!(red(8, 4), 255);
        assert_eq!(red(4, 8), 255);
        let edge = red(2, 4);
        assert!((40..=56).contains(&edge), "{edge}");
    }

    #[test]
    fn a_pattern_keeps_the_images_phase_away_from_the_origin() {
        // A 4 px tile with one black pixel at (1, 2), repeated from the
        // image's origin; the polygon starts at (5, 5). Its box begins at
        // (4, 4), which must not move the pattern (it once did: the region
        // was painted as if it were the image).
        let mut tile = Pixmap::new(4, 4).unwrap();
        tile.fill_rect(
            Rect::from_xywh(1.0, 2.0, 1.0, 1.0).unwrap(),
            &paint(CompOp::SrcOver),
            Transform::identity(),
            None,
        );
        let pattern = Paint {
            shader: tiny_skia::Pattern::new(
                tile.as_ref(),
                tiny_skia::SpreadMode::Repeat,
                tiny_skia::FilterQuality::Nearest,
                1.0,
                Transform::identity(),
            ),
            ..Paint::default()
        };
        let path = PathBuilder::from_rect(Rect::from_xywh(5.0, 5.0, 5.0, 5.0).unwrap());
        let table = CoverageTable::new(GammaMethod::Power, 0.3);
        // src-over through the mask, src through the lerp.
        for op in [CompOp::SrcOver, CompOp::Src] {
            let mut pixmap = white();
            let mut p = pattern.clone();
            p.blend_mode = op.blend_mode();
            fill_through_table(&mut pixmap, &[(&path, FillRule::EvenOdd)], &p, op, &table);
            let black: Vec<(u32, u32)> = (0..10)
                .flat_map(|y| (0..10).map(move |x| (x, y)))
                .filter(|&(x, y)| {
                    let c = pixmap.pixel(x, y).unwrap();
                    (c.red(), c.alpha()) == (0, 255)
                })
                .collect();
            assert_eq!(black, vec![(5, 6), (9, 6)], "{op:?}");
        }
    }

    #[test]
    fn div255_rounds() {
        for v in 0..=255 * 255 {
            let exact = (f64::from(v) / 255.0).round() as u32;
            assert_eq!(div255(v), exact, "{v}");
        }
    }

    #[test]
    fn translucent_src_over_and_other_modes_agree_with_tiny_skia() {
        // The direct src-over blend and tiny-skia's own (through the mask
        // path, taken for any mode but src-over) give the same picture,
        // within rounding.
        let path = half_covered_square();
        let table = CoverageTable::new(GammaMethod::Power, 0.3);
        let mut direct = white();
        let mut p = paint(CompOp::SrcOver);
        p.set_color(Color::from_rgba8(200, 40, 20, 150));
        fill_through_table(
            &mut direct,
            &[(&path, FillRule::Winding)],
            &p,
            CompOp::SrcOver,
            &table,
        );
        // src-atop onto an opaque destination is src-over.
        let mut masked = white();
        p.blend_mode = CompOp::SrcAtop.blend_mode();
        fill_through_table(
            &mut masked,
            &[(&path, FillRule::Winding)],
            &p,
            CompOp::SrcAtop,
            &table,
        );
        for (a, b) in direct.data().iter().zip(masked.data()) {
            assert!(a.abs_diff(*b) <= 1, "{a} vs {b}");
        }
        assert_ne!(direct.pixel(4, 4), white().pixel(4, 4));
    }

    #[test]
    fn erasing_modes_leave_uncovered_pixels_alone() {
        // `clear` erases what it covers: only the path's pixels may
        // change, partly where partly covered.
        let path = half_covered_square();
        let table = CoverageTable::new(GammaMethod::Power, 0.5);
        let mut pixmap = white();
        fill_through_table(
            &mut pixmap,
            &[(&path, FillRule::Winding)],
            &paint(CompOp::Clear),
            CompOp::Clear,
            &table,
        );
        assert_eq!(pixmap.pixel(4, 4).unwrap().alpha(), 0);
        assert_eq!(pixmap.pixel(0, 4).unwrap().alpha(), 255);
        assert_eq!(pixmap.pixel(8, 8).unwrap().alpha(), 255);
        // Half covered → 0.5^0.5 = 71% cleared.
        let a = pixmap.pixel(2, 4).unwrap().alpha();
        assert!((70..=78).contains(&a), "{a}");
    }
}
