//! Drawing one metatile with tiny-skia: antialiased fills, strokes and
//! markers, in pixel space of the buffered metatile image.
//!
//! These details follow Mapnik (AGG) rather than Skia, because users
//! compare our tiles with Mapnik's:
//! - **Thin strokes.** Skia draws a stroke narrower than a pixel as a
//!   faint one-pixel hairline. AGG draws the true thin outline. We always
//!   turn the stroke into its outline and fill that, so a 0.8 px border
//!   covers 0.8 px.
//! - **Miter joins.** Mapnik's `miter` clips a miter that is longer than the
//!   limit; Skia's bevels it. We use tiny-skia's `MiterClip`.
//! - **Gamma.** A fill's or stroke's `gamma` other than 1 adjusts each
//!   edge pixel's coverage as AGG's rasteriser does ([`coverage`]); gamma
//!   1 is tiny-skia's own fill, unchanged.
//!
//! Every paint is composited with its symbolizer's `comp-op`; a style with
//! a `comp-op` or an opacity is drawn apart and composited whole
//! ([`Canvas::composite`]).
//!
//! Geometry is clipped to the image (plus a margin) in `f64` before it is
//! converted to `f32` pixels: at zoom 18 a coastline spans millions of
//! pixels, beyond what `f32` places exactly.

mod coverage;

use tiny_skia::{
    FillRule, IntRect, LineCap as SkCap, LineJoin as SkJoin, Paint, PathBuilder, PathStroker,
    Pixmap, PixmapRef, Stroke, StrokeDash, Transform,
};

use crate::source::geometry::Point;
use crate::style::color::Color;
use crate::style::composite::CompOp;
use crate::style::symbolizer::{GammaMethod, LineCap, LineJoin, LineSymbolizer, PolygonSymbolizer};
use coverage::CoverageTable;
use tile_math::{MercatorBbox, MercatorPoint, PixelTransform};

/// A metatile image being drawn, and where it lies in the world.
pub(crate) struct Canvas {
    pub(crate) pixmap: Pixmap,
    transform: PixelTransform,
    /// Multiplies stroke widths and marker sizes (HiDPI).
    scale_factor: f64,
    stroker: PathStroker,
    /// The coverage table last asked for (`None` in it: it changes
    /// nothing), since consecutive symbolizers usually share one.
    last_table: Option<(GammaMethod, f64, Option<CoverageTable>)>,
}

impl std::fmt::Debug for Canvas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Canvas")
            .field("transform", &self.transform)
            .finish_non_exhaustive()
    }
}

/// The clip rectangle in pixels: the image grown by this many pixels, so
/// that clipped edges and line caps are never visible.
const CLIP_MARGIN_PX: f64 = 16.0;

impl Canvas {
    /// A transparent canvas; `None` if the size is impossible.
    pub(crate) fn new(transform: PixelTransform, scale_factor: f64) -> Option<Canvas> {
        let (w, h) = transform.image_size();
        Some(Canvas {
            pixmap: Pixmap::new(w, h)?,
            transform,
            scale_factor,
            stroker: PathStroker::new(),
            last_table: None,
        })
    }

    /// The coverage table of a gamma, or `None` when it changes nothing
    /// (then tiny-skia's own fill draws exactly that).
    fn coverage_table(&mut self, method: GammaMethod, gamma: f64) -> Option<CoverageTable> {
        if method == GammaMethod::Power && gamma == 1.0 {
            return None;
        }
        match &self.last_table {
            Some((m, g, table)) if *m == method && *g == gamma => table.clone(),
            _ => {
                let table = CoverageTable::new(method, gamma);
                let table = (!table.is_identity()).then_some(table);
                self.last_table = Some((method, gamma, table.clone()));
                table
            }
        }
    }

    /// The world area the image shows, buffer included.
    pub(crate) fn area(&self) -> MercatorBbox {
        self.transform.buffered_area()
    }

    /// Fills the whole image with one colour.
    pub(crate) fn clear(&mut self, colour: Color) {
        self.pixmap.fill(sk_colour(colour, 1.0));
    }

    fn clip_rect(&self, extra_px: f64) -> [f64; 4] {
        let (w, h) = self.transform.image_size();
        let m = CLIP_MARGIN_PX + extra_px;
        [-m, -m, f64::from(w) + m, f64::from(h) + m]
    }

    pub(crate) fn to_px(&self, p: Point, x_shift: f64) -> [f64; 2] {
        let (x, y) = self
            .transform
            .to_pixel(MercatorPoint::new(p[0] + x_shift, p[1]));
        [x, y]
    }

    /// Fills polygons (even-odd: holes are holes whatever their winding).
    pub(crate) fn fill_polygons(
        &mut self,
        polygons: &[Vec<Vec<Point>>],
        x_shift: f64,
        style: &PolygonSymbolizer,
    ) {
        let clip = self.clip_rect(0.0);
        let mut builder = PathBuilder::new();
        for ring in polygons.iter().flatten() {
            let px: Vec<[f64; 2]> = ring.iter().map(|p| self.to_px(*p, x_shift)).collect();
            let clipped = clip_ring(&px, clip);
            add_polyline(&mut builder, &clipped, true);
        }
        let Some(path) = builder.finish() else { return };
        let mut paint = paint(style.fill, style.fill_opacity);
        paint.blend_mode = style.comp_op.blend_mode();
        match self.coverage_table(style.gamma_method, style.gamma) {
            None => self.pixmap.fill_path(
                &path,
                &paint,
                FillRule::EvenOdd,
                Transform::identity(),
                None,
            ),
            Some(table) => coverage::fill_through_table(
                &mut self.pixmap,
                &[(&path, FillRule::EvenOdd)],
                &paint,
                style.comp_op,
                &table,
            ),
        }
    }

    /// Fills polygons (even-odd) with any paint (patterns), through a
    /// gamma as `fill_polygons`.
    pub(crate) fn fill_polygons_with(
        &mut self,
        polygons: &[Vec<Vec<Point>>],
        x_shift: f64,
        paint: &Paint<'_>,
        op: CompOp,
        (gamma_method, gamma): (GammaMethod, f64),
    ) {
        let clip = self.clip_rect(0.0);
        let mut builder = PathBuilder::new();
        for ring in polygons.iter().flatten() {
            let px: Vec<[f64; 2]> = ring.iter().map(|p| self.to_px(*p, x_shift)).collect();
            add_polyline(&mut builder, &clip_ring(&px, clip), true);
        }
        let Some(path) = builder.finish() else { return };
        match self.coverage_table(gamma_method, gamma) {
            None => {
                self.pixmap
                    .fill_path(&path, paint, FillRule::EvenOdd, Transform::identity(), None)
            }
            Some(table) => coverage::fill_through_table(
                &mut self.pixmap,
                &[(&path, FillRule::EvenOdd)],
                paint,
                op,
                &table,
            ),
        }
    }

    /// Strokes lines, or polygon outlines (pass each ring as a closed line).
    pub(crate) fn stroke_lines(
        &mut self,
        lines: &[Vec<Point>],
        closed: bool,
        x_shift: f64,
        style: &LineSymbolizer,
    ) {
        let width = style.stroke_width * self.scale_factor;
        if width <= 0.0 || style.stroke_opacity <= 0.0 {
            return;
        }
        // Mapnik's `miter` clips an over-long miter at the limit; tiny-skia's
        // `Miter` bevels it (and its `MiterClip` draws wild spikes at
        // near-reversals). So we stroke with `Miter` and add the clipped
        // tips ourselves. Only for opaque, undashed strokes, where painting
        // a tip over the stroke cannot darken it.
        let clip_miters = style.stroke_linejoin == LineJoin::Miter
            && style.stroke_dasharray.is_empty()
            && style.stroke_opacity >= 1.0
            && style.stroke.a == 255;
        let Some((outline, miter_tips)) =
            self.stroke_outline(lines, closed, x_shift, style, clip_miters)
        else {
            return;
        };
        let mut paint = paint(style.stroke, style.stroke_opacity);
        paint.blend_mode = style.comp_op.blend_mode();
        let tips = miter_tips;
        if let Some(table) = self.coverage_table(style.stroke_gamma_method, style.stroke_gamma) {
            // Outline and tips in one coverage, as AGG rasterises them.
            let mut paths = vec![(&outline, FillRule::Winding)];
            paths.extend(tips.as_ref().map(|t| (t, FillRule::Winding)));
            coverage::fill_through_table(&mut self.pixmap, &paths, &paint, style.comp_op, &table);
            return;
        }
        self.pixmap.fill_path(
            &outline,
            &paint,
            FillRule::Winding,
            Transform::identity(),
            None,
        );
        if let Some(tips) = tips {
            self.pixmap.fill_path(
                &tips,
                &paint,
                FillRule::Winding,
                Transform::identity(),
                None,
            );
        }
    }

    /// The outline of stroked lines in pixels (clipped, offset, dashed),
    /// and the clipped miter tips when asked for (see `stroke_lines`).
    pub(crate) fn stroke_outline(
        &mut self,
        lines: &[Vec<Point>],
        closed: bool,
        x_shift: f64,
        style: &LineSymbolizer,
        clip_miters: bool,
    ) -> Option<(tiny_skia::Path, Option<tiny_skia::Path>)> {
        let width = style.stroke_width * self.scale_factor;
        let clip = self.clip_rect(width);
        let offset = style.offset * self.scale_factor;
        let mut builder = PathBuilder::new();
        let mut miter_tips = PathBuilder::new();
        let dashes = dash(
            &style.stroke_dasharray,
            style.stroke_dashoffset,
            self.scale_factor,
        );
        for line in lines {
            let mut px: Vec<[f64; 2]> = line.iter().map(|p| self.to_px(*p, x_shift)).collect();
            if offset != 0.0 {
                px = offset_path(&px, offset, closed);
            }
            if closed && px.first() != px.last() {
                if let Some(first) = px.first().copied() {
                    px.push(first);
                }
            }
            for (start, part) in clip_polyline_along(&px, clip) {
                // A ring that stays whole keeps its join at the start.
                let whole = closed && part.len() == px.len();
                if clip_miters {
                    add_miter_clips(
                        &mut miter_tips,
                        &part,
                        whole,
                        width / 2.0,
                        style.stroke_miterlimit,
                    );
                }
                match &dashes {
                    None => add_polyline(&mut builder, &part, whole),
                    Some((intervals, phase)) => {
                        // Dashes run from the line's own start (Mapnik's
                        // default `clip="false"` draws the whole line), or
                        // from the cut with `clip="true"`.
                        let mut one = PathBuilder::new();
                        add_polyline(&mut one, &part, whole);
                        let phase = if style.clip {
                            *phase
                        } else {
                            // In f64, modulo the pattern: a part may start
                            // millions of pixels along a coastline.
                            let period: f64 = intervals.iter().map(|v| f64::from(*v)).sum();
                            ((f64::from(*phase) + start) % period) as f32
                        };
                        let dashed = one.finish().and_then(|path| {
                            StrokeDash::new(intervals.clone(), phase)
                                .and_then(|d| path.dash(&d, 1.0))
                        });
                        if let Some(dashed) = dashed {
                            builder.push_path(&dashed);
                        }
                    }
                }
            }
        }
        let path = builder.finish()?;
        let stroke = Stroke {
            width: width as f32,
            miter_limit: style.stroke_miterlimit as f32,
            line_cap: match style.stroke_linecap {
                LineCap::Butt => SkCap::Butt,
                LineCap::Round => SkCap::Round,
                LineCap::Square => SkCap::Square,
            },
            line_join: match style.stroke_linejoin {
                LineJoin::Miter | LineJoin::MiterRevert => SkJoin::Miter,
                LineJoin::Round => SkJoin::Round,
                LineJoin::Bevel => SkJoin::Bevel,
            },
            dash: None,
        };
        // The outline, filled: true coverage for strokes under one pixel.
        let outline = self.stroker.stroke(&path, &stroke, 1.0)?;
        Some((outline, miter_tips.finish()))
    }

    /// Runs a style's image filters over this (the style's own) image.
    pub(crate) fn filter(&mut self, filters: &[crate::style::image_filter::ImageFilter]) {
        for f in filters {
            f.apply(self.pixmap.data_mut());
        }
    }

    /// Composites another canvas of the same size onto this one with a
    /// mode and an opacity (a style with a `comp-op` or an `opacity` < 1 is
    /// drawn apart, then composited: Mapnik's style-level compositing), and
    /// leaves `layer` transparent again, ready for the next style.
    ///
    /// Why not the whole image: a style drawn apart usually paints a small
    /// part of the metatile (an admin boundary, a few trees), yet
    /// compositing 2304² pixels through tiny-skia's float pipeline costs
    /// about as much as drawing a busy style. For the modes where a
    /// transparent source leaves the destination as it is (all but
    /// [`CompOp::lerps_coverage`]'s), only the rectangle that holds
    /// painted pixels is composited — the same pixels as the whole image
    /// would give — and nothing at all when nothing was painted.
    pub(crate) fn composite_and_clear(&mut self, layer: &mut Canvas, op: CompOp, opacity: f64) {
        let whole = IntRect::from_xywh(0, 0, layer.pixmap.width(), layer.pixmap.height());
        let region = if op.lerps_coverage() {
            whole
        } else {
            layer.painted_bounds()
        };
        let Some(region) = region else {
            return;
        };
        self.draw_image(layer.pixmap.as_ref(), region, op, opacity);
        layer.clear_region(region);
    }

    /// The smallest rectangle that holds every pixel that is not fully
    /// transparent (premultiplied: all four bytes zero); `None` when the
    /// image is empty. Rows are or-reduced (vectorised), and within the
    /// rows found only the columns outside the rectangle so far are read.
    pub(crate) fn painted_bounds(&self) -> Option<IntRect> {
        let width = self.pixmap.width() as usize;
        let stride = width * 4;
        let rows: Vec<&[u8]> = self.pixmap.data().chunks_exact(stride).collect();
        let painted = |bytes: &[u8]| bytes.iter().fold(0u8, |a, &b| a | b) != 0;
        let top = rows.iter().position(|r| painted(r))?;
        let bottom = rows.iter().rposition(|r| painted(r))?;
        let (mut left, mut right) = (width, 0usize);
        for row in &rows[top..=bottom] {
            if left > 0 && painted(&row[..left * 4]) {
                left = row[..left * 4]
                    .chunks_exact(4)
                    .position(|p| p != [0, 0, 0, 0])
                    .unwrap_or(left);
            }
            if right + 1 < width && painted(&row[(right + 1) * 4..]) {
                right = row
                    .chunks_exact(4)
                    .rposition(|p| p != [0, 0, 0, 0])
                    .unwrap_or(right);
            }
        }
        let right = right.max(left);
        IntRect::from_xywh(
            left as i32,
            top as i32,
            (right - left + 1) as u32,
            (bottom - top + 1) as u32,
        )
    }

    /// Makes a rectangle of the image transparent.
    fn clear_region(&mut self, region: IntRect) {
        let stride = self.pixmap.width() as usize * 4;
        let (x0, x1) = (region.left() as usize * 4, region.right() as usize * 4);
        let data = self.pixmap.data_mut();
        for row in region.top() as usize..region.bottom() as usize {
            if let Some(bytes) = data.get_mut(row * stride + x0..row * stride + x1) {
                bytes.fill(0);
            }
        }
    }

    /// Composites an image of the canvas's size (premultiplied RGBA, row by
    /// row) with a mode and an opacity: a warped raster layer. `false` when
    /// the pixels do not fit the canvas (nothing is drawn then).
    pub(crate) fn blend_rgba(&mut self, premultiplied: Vec<u8>, op: CompOp, opacity: f64) -> bool {
        let Some(image) = tiny_skia::IntSize::from_wh(self.pixmap.width(), self.pixmap.height())
            .and_then(|size| Pixmap::from_vec(premultiplied, size))
        else {
            return false;
        };
        let whole = IntRect::from_xywh(0, 0, image.width(), image.height());
        if let Some(whole) = whole {
            self.draw_image(image.as_ref(), whole, op, opacity);
        }
        true
    }

    /// The pixels of `image` in `region` composited onto the same pixels of
    /// the canvas, as Mapnik's `composite()` does: AGG's `blend_from` with
    /// the opacity as coverage. (tiny-skia's `draw_pixmap` is this over the
    /// whole image: a nearest-neighbour pattern filling a rectangle.)
    fn draw_image(&mut self, image: PixmapRef<'_>, region: IntRect, op: CompOp, opacity: f64) {
        let opacity = opacity.clamp(0.0, 1.0);
        let shader = |opacity: f32| {
            tiny_skia::Pattern::new(
                image,
                tiny_skia::SpreadMode::Pad,
                tiny_skia::FilterQuality::Nearest,
                opacity,
                Transform::identity(),
            )
        };
        let rect_paint = |opacity: f32| Paint {
            shader: shader(opacity),
            blend_mode: op.blend_mode(),
            anti_alias: false,
            ..Paint::default()
        };
        if op.lerps_coverage() && opacity < 1.0 {
            // These modes take coverage by moving the destination towards
            // the result; tiny-skia's opacity would scale the source.
            let Some(mut blended) = self.pixmap.clone_rect(region) else {
                return;
            };
            blended.fill_rect(
                region.to_rect(),
                &rect_paint(1.0),
                Transform::from_translate(-region.x() as f32, -region.y() as f32),
                None,
            );
            // AGG's cover is `255 * opacity`, truncated.
            let cover = (255.0 * opacity) as u8;
            let stride = self.pixmap.width() as usize * 4;
            let row_bytes = region.width() as usize * 4;
            let x0 = region.x() as usize * 4;
            let dst = self.pixmap.data_mut();
            for (i, src) in blended.data().chunks_exact(row_bytes).enumerate() {
                let start = (region.y() as usize + i) * stride + x0;
                if let Some(row) = dst.get_mut(start..start + row_bytes) {
                    coverage::lerp_row(row, src, std::iter::repeat(cover));
                }
            }
            return;
        }
        self.pixmap.fill_rect(
            region.to_rect(),
            &rect_paint(opacity as f32),
            Transform::identity(),
            None,
        );
    }
}

fn sk_colour(c: Color, opacity: f64) -> tiny_skia::Color {
    // 8-bit alpha, as AGG keeps it.
    let alpha = (f64::from(c.a) * opacity.clamp(0.0, 1.0)).round() as u8;
    tiny_skia::Color::from_rgba8(c.r, c.g, c.b, alpha)
}

fn paint(colour: Color, opacity: f64) -> Paint<'static> {
    let mut paint = Paint::default();
    paint.set_color(sk_colour(colour, opacity));
    paint.anti_alias = true;
    paint
}

/// A dash array's intervals and phase in pixels; `None` for a solid line.
fn dash(array: &[(f64, f64)], offset: f64, scale: f64) -> Option<(Vec<f32>, f32)> {
    if array.is_empty() {
        return None;
    }
    let intervals: Vec<f32> = array
        .iter()
        .flat_map(|(on, off)| [(on * scale) as f32, (off * scale) as f32])
        .collect();
    // An array StrokeDash refuses (all zero) draws solid.
    StrokeDash::new(intervals.clone(), (offset * scale) as f32)?;
    Some((intervals, (offset * scale) as f32))
}

fn add_polyline(builder: &mut PathBuilder, points: &[[f64; 2]], close: bool) {
    // A closed ring repeats its first point at the end; `close()` draws that
    // edge itself. Keeping the repeat would add a zero-length edge whose
    // join has no direction and strokes as a long miter spike.
    let points = match points {
        [first, .., last] if close && first == last => &points[..points.len() - 1],
        _ => points,
    };
    let Some((first, rest)) = points.split_first() else {
        return;
    };
    if rest.is_empty() {
        return;
    }
    builder.move_to(first[0] as f32, first[1] as f32);
    for p in rest {
        builder.line_to(p[0] as f32, p[1] as f32);
    }
    if close {
        builder.close();
    }
}

/// Adds, for each join of `points` whose miter is longer than `limit` times
/// the stroke width, the part of the miter that AGG keeps: the bevel pushed
/// out to the line `limit * half_width` from the vertex, as the polygon
/// vertex, outer corner 1, clipped tip 1, clipped tip 2, outer corner 2.
fn add_miter_clips(
    tips: &mut PathBuilder,
    points: &[[f64; 2]],
    closed: bool,
    half_width: f64,
    limit: f64,
) {
    let pts = match points {
        [first, .., last] if closed && first == last => &points[..points.len() - 1],
        _ => points,
    };
    let n = pts.len();
    if n < 3 {
        return;
    }
    let lim = limit * half_width;
    let unit = |a: [f64; 2], b: [f64; 2]| {
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let len = (dx * dx + dy * dy).sqrt();
        (len > 1e-9).then(|| [dx / len, dy / len])
    };
    let range = if closed { 0..n } else { 1..n - 1 };
    for i in range {
        let (a, v, b) = (pts[(i + n - 1) % n], pts[i], pts[(i + 1) % n]);
        let (Some(d1), Some(d2)) = (unit(a, v), unit(v, b)) else {
            continue;
        };
        let (n1, n2) = ([-d1[1], d1[0]], [-d2[1], d2[0]]);
        let cross = d1[0] * d2[1] - d1[1] * d2[0];
        let sum = [n1[0] + n2[0], n1[1] + n2[1]];
        let sum_len = (sum[0] * sum[0] + sum[1] * sum[1]).sqrt();
        // Outer side, bisector and cos(turn / 2).
        let (p1, p2, m, cos_half) = if sum_len < 1e-9 {
            // A full reversal: AGG extends the line end squarely.
            let p1 = [v[0] + half_width * n1[0], v[1] + half_width * n1[1]];
            let p2 = [v[0] - half_width * n1[0], v[1] - half_width * n1[1]];
            (p1, p2, d1, 0.0)
        } else {
            let s = if cross > 0.0 { -1.0 } else { 1.0 };
            let m = [s * sum[0] / sum_len, s * sum[1] / sum_len];
            let p1 = [v[0] + s * half_width * n1[0], v[1] + s * half_width * n1[1]];
            let p2 = [v[0] + s * half_width * n2[0], v[1] + s * half_width * n2[1]];
            (p1, p2, m, sum_len / 2.0)
        };
        // Miter length from the vertex is half_width / cos_half.
        if cos_half * lim >= half_width {
            continue;
        }
        let sin_half = d1[0] * m[0] + d1[1] * m[1];
        if sin_half <= 1e-9 {
            continue;
        }
        let t = (lim - half_width * cos_half) / sin_half;
        let c1 = [p1[0] + t * d1[0], p1[1] + t * d1[1]];
        let c2 = [p2[0] - t * d2[0], p2[1] - t * d2[1]];
        let c2 = if sum_len < 1e-9 {
            [p2[0] + t * d1[0], p2[1] + t * d1[1]]
        } else {
            c2
        };
        tips.move_to(v[0] as f32, v[1] as f32);
        for p in [p1, c1, c2, p2] {
            tips.line_to(p[0] as f32, p[1] as f32);
        }
        tips.close();
    }
}

/// Sutherland–Hodgman: a ring clipped to a rectangle `[x0, y0, x1, y1]`.
/// The result may run along the rectangle's edges; filled even-odd it
/// covers exactly the ring's inside within the rectangle.
pub(crate) fn clip_ring(ring: &[[f64; 2]], rect: [f64; 4]) -> Vec<[f64; 2]> {
    let inside_all = ring
        .iter()
        .all(|p| p[0] >= rect[0] && p[0] <= rect[2] && p[1] >= rect[1] && p[1] <= rect[3]);
    if inside_all {
        return ring.to_vec();
    }
    let mut out = ring.to_vec();
    // Each edge: (axis, bound, keep when >= bound?)
    for (axis, bound, keep_greater) in [
        (0, rect[0], true),
        (0, rect[2], false),
        (1, rect[1], true),
        (1, rect[3], false),
    ] {
        let input = std::mem::take(&mut out);
        let Some(&last) = input.last() else { break };
        let inside = |p: &[f64; 2]| {
            if keep_greater {
                p[axis] >= bound
            } else {
                p[axis] <= bound
            }
        };
        let mut prev = last;
        for &p in &input {
            match (inside(&prev), inside(&p)) {
                (true, true) => out.push(p),
                (true, false) => out.push(cross(prev, p, axis, bound)),
                (false, true) => {
                    out.push(cross(prev, p, axis, bound));
                    out.push(p);
                }
                (false, false) => {}
            }
            prev = p;
        }
    }
    out
}

fn cross(a: [f64; 2], b: [f64; 2], axis: usize, bound: f64) -> [f64; 2] {
    let t = (bound - a[axis]) / (b[axis] - a[axis]);
    [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])]
}

/// Liang–Barsky on each segment: the parts of a polyline inside a rectangle.
pub(crate) fn clip_polyline(line: &[[f64; 2]], rect: [f64; 4]) -> Vec<Vec<[f64; 2]>> {
    clip_polyline_along(line, rect)
        .into_iter()
        .map(|(_, part)| part)
        .collect()
}

/// `clip_polyline`, with each part's distance from the line's start (so
/// that dashes keep the phase they have on the whole line).
pub(crate) fn clip_polyline_along(line: &[[f64; 2]], rect: [f64; 4]) -> Vec<(f64, Vec<[f64; 2]>)> {
    let mut parts: Vec<(f64, Vec<[f64; 2]>)> = Vec::new();
    let mut current: Vec<[f64; 2]> = Vec::new();
    let mut current_start = 0.0;
    let mut travelled = 0.0;
    let dist = |p: [f64; 2], q: [f64; 2]| (q[0] - p[0]).hypot(q[1] - p[1]);
    for pair in line.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        match clip_segment(a, b, rect) {
            Some((p, q, a_kept, b_kept)) => {
                if current.is_empty() || !a_kept {
                    if current.len() >= 2 {
                        parts.push((current_start, std::mem::take(&mut current)));
                    }
                    current.clear();
                    current.push(p);
                    current_start = travelled + dist(a, p);
                }
                current.push(q);
                if !b_kept {
                    parts.push((current_start, std::mem::take(&mut current)));
                }
            }
            None => {
                if current.len() >= 2 {
                    parts.push((current_start, std::mem::take(&mut current)));
                }
                current.clear();
            }
        }
        travelled += dist(a, b);
    }
    if current.len() >= 2 {
        parts.push((current_start, current));
    }
    parts
}

/// The part of segment a→b inside the rectangle, and whether each end was
/// kept as it is.
fn clip_segment(
    a: [f64; 2],
    b: [f64; 2],
    rect: [f64; 4],
) -> Option<([f64; 2], [f64; 2], bool, bool)> {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a[0] - rect[0]),
        (dx, rect[2] - a[0]),
        (-dy, a[1] - rect[1]),
        (dy, rect[3] - a[1]),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
        }
    }
    if t0 > t1 {
        return None;
    }
    let at = |t: f64| [a[0] + t * dx, a[1] + t * dy];
    Some((at(t0), at(t1), t0 == 0.0, t1 == 1.0))
}

/// A path moved sideways by `offset` pixels (positive: to the left of the
/// direction of travel, as Mapnik's `offset`), joining the moved segments
/// at their intersections (clamped, so sharp turns do not spike).
pub(crate) fn offset_path(path: &[[f64; 2]], offset: f64, closed: bool) -> Vec<[f64; 2]> {
    let n = path.len();
    if n < 2 {
        return path.to_vec();
    }
    let normal = |a: [f64; 2], b: [f64; 2]| {
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let len = (dx * dx + dy * dy).sqrt();
        if len == 0.0 {
            [0.0, 0.0]
        } else {
            // Screen y points down: the left normal of (dx, dy) is (dy, -dx).
            [dy / len, -dx / len]
        }
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let prev = if i > 0 {
            Some(normal(path[i - 1], path[i]))
        } else if closed {
            Some(normal(path[n - 2], path[n - 1]))
        } else {
            None
        };
        let next = if i + 1 < n {
            Some(normal(path[i], path[i + 1]))
        } else if closed {
            Some(normal(path[0], path[1]))
        } else {
            None
        };
        let m = match (prev, next) {
            (Some(a), Some(b)) => {
                let sum = [a[0] + b[0], a[1] + b[1]];
                let dot = (sum[0] * a[0] + sum[1] * a[1]).max(0.25);
                [sum[0] / dot, sum[1] / dot]
            }
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => [0.0, 0.0],
        };
        out.push([path[i][0] + m[0] * offset, path[i][1] + m[1] * offset]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64×64 canvas (one tile of zoom 2, tile size 64).
    fn small_canvas() -> Canvas {
        let meta =
            tile_math::Metatile::containing(tile_math::TileCoord::new(2, 1, 1).expect("a tile"), 1)
                .expect("a metatile");
        let transform = PixelTransform::for_metatile(&meta, 64, 0).expect("a transform");
        Canvas::new(transform, 1.0).expect("a canvas")
    }

    /// A destination where every pixel differs: a gradient, half opaque.
    fn gradient(canvas: &mut Canvas) {
        for (i, p) in canvas.pixmap.pixels_mut().iter_mut().enumerate() {
            let (x, y) = ((i % 64) as u8, (i / 64) as u8);
            let a = if (x + y) % 2 == 0 { 255 } else { 160 };
            *p = tiny_skia::ColorU8::from_rgba(x * 2, y * 3, 200, a).premultiply();
        }
    }

    fn put(canvas: &mut Canvas, x: usize, y: usize, rgba: [u8; 4]) {
        canvas.pixmap.pixels_mut()[y * 64 + x] =
            tiny_skia::ColorU8::from_rgba(rgba[0], rgba[1], rgba[2], rgba[3]).premultiply();
    }

    #[test]
    fn painted_bounds_hold_exactly_the_painted_pixels() {
        let mut layer = small_canvas();
        assert_eq!(layer.painted_bounds(), None);
        put(&mut layer, 10, 20, [255, 0, 0, 255]);
        assert_eq!(layer.painted_bounds(), IntRect::from_xywh(10, 20, 1, 1));
        put(&mut layer, 3, 41, [0, 0, 255, 1]);
        put(&mut layer, 62, 25, [0, 255, 0, 128]);
        assert_eq!(layer.painted_bounds(), IntRect::from_xywh(3, 20, 60, 22));
        put(&mut layer, 0, 0, [1, 1, 1, 255]);
        put(&mut layer, 63, 63, [1, 1, 1, 255]);
        assert_eq!(layer.painted_bounds(), IntRect::from_xywh(0, 0, 64, 64));
    }

    #[test]
    fn compositing_the_painted_region_gives_the_whole_images_pixels_and_clears_the_layer() {
        for op in [
            CompOp::SrcOver,
            CompOp::Darken,
            CompOp::Multiply,
            CompOp::DstIn,
            CompOp::Src,
        ] {
            for opacity in [1.0, 0.5] {
                let mut layer = small_canvas();
                put(&mut layer, 10, 20, [255, 0, 0, 255]);
                put(&mut layer, 30, 33, [0, 80, 255, 100]);
                // Reference: every pixel of the layer composited.
                let mut whole = small_canvas();
                gradient(&mut whole);
                let all = IntRect::from_xywh(0, 0, 64, 64).expect("a rect");
                whole.draw_image(layer.pixmap.as_ref(), all, op, opacity);
                let mut regional = small_canvas();
                gradient(&mut regional);
                regional.composite_and_clear(&mut layer, op, opacity);
                assert!(
                    regional.pixmap.data() == whole.pixmap.data(),
                    "{op} at opacity {opacity}: the pixels differ from a whole-image composite"
                );
                assert_eq!(
                    layer.painted_bounds(),
                    None,
                    "{op}: the layer was not cleared"
                );
            }
        }
    }

    #[test]
    fn a_mode_that_changes_unpainted_pixels_composites_the_whole_image() {
        // dst-in keeps the destination only under the source: a layer with
        // one pixel erases everything else, as in Mapnik.
        let mut layer = small_canvas();
        put(&mut layer, 5, 5, [0, 0, 0, 255]);
        let mut canvas = small_canvas();
        gradient(&mut canvas);
        canvas.composite_and_clear(&mut layer, CompOp::DstIn, 1.0);
        assert_eq!(canvas.painted_bounds(), IntRect::from_xywh(5, 5, 1, 1));
    }

    #[test]
    fn ring_inside_is_untouched_and_outside_is_cut_to_the_rect() {
        let rect = [0.0, 0.0, 10.0, 10.0];
        let inside = vec![[1.0, 1.0], [5.0, 1.0], [5.0, 5.0]];
        assert_eq!(clip_ring(&inside, rect), inside);
        let big = vec![
            [-100.0, -100.0],
            [100.0, -100.0],
            [100.0, 100.0],
            [-100.0, 100.0],
        ];
        let clipped = clip_ring(&big, rect);
        assert!(clipped
            .iter()
            .all(|p| p[0] >= 0.0 && p[0] <= 10.0 && p[1] >= 0.0 && p[1] <= 10.0));
        assert_eq!(clipped.len(), 4);
        assert!(clip_ring(&[[20.0, 20.0], [30.0, 20.0], [30.0, 30.0]], rect).is_empty());
    }

    #[test]
    fn polyline_is_split_where_it_leaves_the_rect() {
        let rect = [0.0, 0.0, 10.0, 10.0];
        let line = vec![
            [-5.0, 5.0],
            [5.0, 5.0],
            [5.0, 20.0],
            [8.0, 20.0],
            [8.0, 5.0],
            [9.0, 5.0],
        ];
        let parts = clip_polyline(&line, rect);
        assert_eq!(
            parts,
            vec![
                vec![[0.0, 5.0], [5.0, 5.0], [5.0, 10.0]],
                vec![[8.0, 10.0], [8.0, 5.0], [9.0, 5.0]]
            ]
        );
        assert!(clip_polyline(&[[20.0, 0.0], [30.0, 0.0]], rect).is_empty());
    }

    #[test]
    fn sharp_miters_are_clipped_at_the_limit_not_spiked() {
        // A near-reversal: the true miter would reach ~57 half-widths away.
        let line = [[0.0, 50.0], [40.0, 50.0], [0.0, 51.4]];
        let mut tips = PathBuilder::new();
        add_miter_clips(&mut tips, &line, false, 1.0, 4.0);
        let path = tips.finish().unwrap();
        let b = path.bounds();
        // The clipped tip ends 4 half-widths past the vertex, no further.
        assert!(b.right() <= 44.1 && b.right() >= 43.9, "{b:?}");
        assert!(b.top() > 45.0 && b.bottom() < 56.0, "{b:?}");
        // A right angle stays under the limit: no extra tip.
        let mut none = PathBuilder::new();
        add_miter_clips(
            &mut none,
            &[[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]],
            false,
            1.0,
            4.0,
        );
        assert!(none.finish().is_none());
    }

    #[test]
    fn offset_moves_a_line_to_its_left() {
        let line = vec![[0.0, 0.0], [10.0, 0.0]];
        // Travelling east with y down, "left" is up (negative y).
        assert_eq!(
            offset_path(&line, 2.0, false),
            vec![[0.0, -2.0], [10.0, -2.0]]
        );
        let corner = offset_path(&[[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]], 1.0, false);
        assert!(
            (corner[1][0] - 11.0).abs() < 1e-9 && (corner[1][1] + 1.0).abs() < 1e-9,
            "{corner:?}"
        );
    }
}
