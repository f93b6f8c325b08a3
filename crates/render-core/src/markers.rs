//! Image symbols placed at points: `<MarkersSymbolizer>` (an SVG, a PNG
//! or Mapnik's ellipse at points, along lines, inside polygons, at first
//! or last vertices) and `<PointSymbolizer>` (one image per feature, at
//! its centroid or inside it).
//!
//! Contract, as Mapnik 3.1 places and draws them:
//! - Anchors: `point` is a point itself, the middle of a line's length, a
//!   polygon's centroid; `interior` a point inside polygons; `line` every
//!   `spacing` px along lines and exterior rings, starting half a spacing
//!   in, each tried at offsets up to `spacing × max-error`, turned with the
//!   line, never hanging past the line's end; `vertex-first`/`-last` the
//!   first/last vertex, turned with its segment. `multi-policy` chooses
//!   among parts (each, whole = one at the centroid, largest).
//! - Every marker asks the metatile's placement engine (the one text uses)
//!   with the box of its transformed bounding box: `allow-overlap` skips
//!   the question, `ignore-placement` keeps the box out of it,
//!   `avoid-edges` keeps markers inside the buffered image.
//! - Images are scaled by `width`/`height` against their bounding box,
//!   then `transform`, then the scale factor, centred on the anchor, and
//!   their translation rounded to whole pixels (Mapnik's snapping), so an
//!   unturned image is a cached raster copied into place (see
//!   [`crate::image`]); turned ones are painted from the vector.

use crate::draw::{offset_path, Canvas};
use crate::image::{sk_transform, Symbol};
use crate::labels::{bbox_area, centroid, interior, middle_of_line, LabelContext, PxGeometry};
use crate::place::{tolerance_offsets, LinePath, Rect};
use crate::source::geometry::Point;
use crate::source::vector::Found;
use crate::style::symbolizer::{
    Affine, MarkerMultiPolicy, MarkerPlacement, MarkersSymbolizer, PaintOverride, PointPlacement,
    PointSymbolizer,
};
use tiny_skia::{BlendMode, FillRule, Paint, PathBuilder, PixmapPaint, Stroke, Transform};

/// A feature's drawn geometry in pixels of the metatile image.
fn parts_of(canvas: &Canvas, feature: &Found<'_>) -> PxGeometry {
    PxGeometry::in_pixels(canvas, feature.geometry, feature.x_shift)
}

/// The centroid of the whole geometry (Mapnik's `geometry::centroid`): of
/// the polygons' area if there are polygons, else of the lines' length,
/// else of the points.
fn whole_centroid(g: &PxGeometry) -> Option<Point> {
    if !g.polygons.is_empty() {
        let (mut sx, mut sy, mut total) = (0.0, 0.0, 0.0);
        for p in &g.polygons {
            let (Some(c), a) = (centroid(p), ring_area(p)) else {
                continue;
            };
            sx += c[0] * a;
            sy += c[1] * a;
            total += a;
        }
        return if total > 0.0 {
            Some([sx / total, sy / total])
        } else {
            g.polygons.first().and_then(|p| centroid(p))
        };
    }
    if !g.lines.is_empty() {
        let (mut sx, mut sy, mut total) = (0.0, 0.0, 0.0);
        for w in g.lines.iter().flat_map(|l| l.windows(2)) {
            let d = (w[1][0] - w[0][0]).hypot(w[1][1] - w[0][1]);
            sx += (w[0][0] + w[1][0]) / 2.0 * d;
            sy += (w[0][1] + w[1][1]) / 2.0 * d;
            total += d;
        }
        return if total > 0.0 {
            Some([sx / total, sy / total])
        } else {
            g.lines.first().and_then(|l| l.first()).copied()
        };
    }
    let n = g.points.len() as f64;
    (n > 0.0).then(|| {
        let (x, y) = g
            .points
            .iter()
            .fold((0.0, 0.0), |(x, y), p| (x + p[0], y + p[1]));
        [x / n, y / n]
    })
}

/// The area of a polygon's exterior ring (absolute).
fn ring_area(polygon: &[Vec<Point>]) -> f64 {
    polygon.first().map_or(0.0, |ring| {
        ring.windows(2)
            .map(|w| w[0][0] * w[1][1] - w[1][0] * w[0][1])
            .sum::<f64>()
            .abs()
            / 2.0
    })
}

/// Where a marker goes: a point and the angle (radians) it turns by.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    at: Point,
    angle: f64,
    /// Whether it turns with a line (painted from the vector then).
    turned: bool,
}

/// What is drawn at each anchor.
enum Shape {
    /// Mapnik's built-in ellipse: `w`×`h` centred on the anchor.
    Ellipse {
        w: f64,
        h: f64,
        paint: PaintOverride,
    },
    /// A file.
    Image(Symbol),
}

/// A marker ready to place: its shape, its bounding box (in its own
/// units), the centre it is placed by, and the linear transform and
/// translation (pixels) applied after centring.
struct Prepared<'a> {
    shape: Shape,
    bbox: [f64; 4],
    linear: Affine,
    shift: (f64, f64),
    file: Option<&'a std::path::Path>,
    paint: PaintOverride,
    opacity: f64,
    blend: BlendMode,
}

impl Prepared<'_> {
    fn centre(&self) -> (f64, f64) {
        let [x0, y0, x1, y1] = self.bbox;
        ((x0 + x1) / 2.0, (y0 + y1) / 2.0)
    }

    /// The full transform from the marker's units to the image at an
    /// anchor (before snapping).
    fn transform_at(&self, anchor: &Anchor) -> Affine {
        let (cx, cy) = self.centre();
        let recentred = Affine([1.0, 0.0, 0.0, 1.0, -cx, -cy]);
        let placed = Affine([1.0, 0.0, 0.0, 1.0, self.shift.0, self.shift.1])
            .after(&self.linear)
            .after(&recentred);
        let (s, c) = anchor.angle.sin_cos();
        let turn = Affine([c, s, -s, c, anchor.at[0], anchor.at[1]]);
        turn.after(&placed)
    }

    /// The box the marker covers at an anchor.
    fn collision_box(&self, anchor: &Anchor) -> Rect {
        let [x0, y0, x1, y1] = self.transform_at(anchor).bounds(self.bbox);
        Rect::new(x0, y0, x1, y1)
    }

    fn draw(&self, canvas: &mut Canvas, anchor: &Anchor, ctx: &mut LabelContext<'_, '_>) {
        let mut t = self.transform_at(anchor);
        match &self.shape {
            Shape::Ellipse { w, h, paint } => {
                draw_ellipse(canvas, &t, (*w, *h), paint, self.opacity, self.blend)
            }
            Shape::Image(symbol) => {
                // Mapnik's snapping of file markers (mapnik#1316).
                t.0[4] = (t.0[4] + 0.5).floor();
                t.0[5] = (t.0[5] + 0.5).floor();
                if !anchor.turned {
                    if let Some(file) = self.file {
                        if let Some(sprite) = ctx.images.sprite(file, &t, &self.paint, self.opacity)
                        {
                            canvas.pixmap.draw_pixmap(
                                t.0[4] as i32 + sprite.offset.0,
                                t.0[5] as i32 + sprite.offset.1,
                                sprite.pixmap.as_ref(),
                                &PixmapPaint {
                                    blend_mode: self.blend,
                                    ..PixmapPaint::default()
                                },
                                Transform::identity(),
                                None,
                            );
                        }
                        return;
                    }
                }
                symbol.draw(
                    &mut canvas.pixmap.as_mut(),
                    sk_transform(&t),
                    &self.paint,
                    self.opacity as f32,
                    self.blend,
                );
            }
        }
    }
}

/// Mapnik's ellipse: filled, then its outline stroked (the outline is
/// filled as a shape so that thin strokes keep their true width).
fn draw_ellipse(
    canvas: &mut Canvas,
    t: &Affine,
    (w, h): (f64, f64),
    paint: &PaintOverride,
    opacity: f64,
    blend: BlendMode,
) {
    let Some(rect) =
        tiny_skia::Rect::from_xywh((-w / 2.0) as f32, (-h / 2.0) as f32, w as f32, h as f32)
    else {
        return;
    };
    let Some(oval) = PathBuilder::from_oval(rect) else {
        return;
    };
    let Some(path) = oval.transform(sk_transform(t)) else {
        return;
    };
    let colour = |c: Option<crate::style::color::Color>, o: Option<f64>| {
        let c = c.unwrap_or(crate::style::color::Color::BLACK);
        let a = (f64::from(c.a) * o.unwrap_or(1.0) * opacity)
            .round()
            .clamp(0.0, 255.0) as u8;
        let mut p = Paint::default();
        p.set_color_rgba8(c.r, c.g, c.b, a);
        p.anti_alias = true;
        p.blend_mode = blend;
        p
    };
    canvas.pixmap.fill_path(
        &path,
        &colour(paint.fill, paint.fill_opacity),
        FillRule::Winding,
        Transform::identity(),
        None,
    );
    let [a, b, c, d, _, _] = t.0;
    let scale = ((a * d - b * c).abs()).sqrt();
    let width = paint.stroke_width.unwrap_or(0.0) * scale;
    if width > 0.0 {
        let stroke = Stroke {
            width: width as f32,
            ..Stroke::default()
        };
        if let Some(outline) = path.stroke(&stroke, 1.0) {
            canvas.pixmap.fill_path(
                &outline,
                &colour(paint.stroke, paint.stroke_opacity),
                FillRule::Winding,
                Transform::identity(),
                None,
            );
        }
    }
}

/// Whether a marker's box may be placed, and records it (Mapnik's
/// `push_to_detector`).
fn place(
    bbox: &Rect,
    allow_overlap: bool,
    ignore_placement: bool,
    avoid_edges: bool,
    ctx: &mut LabelContext<'_, '_>,
) -> bool {
    let extent = ctx.collisions.extent();
    if !extent.intersects(bbox) || (avoid_edges && !extent.contains(bbox)) {
        return false;
    }
    if !allow_overlap && !ctx.collisions.has_placement(bbox, 0.0, None) {
        return false;
    }
    if !ignore_placement {
        ctx.collisions.insert(*bbox, None);
    }
    true
}

/// Places and draws a feature's markers for one `MarkersSymbolizer`.
pub(crate) fn draw_markers(
    canvas: &mut Canvas,
    feature: &Found<'_>,
    sym: &MarkersSymbolizer,
    ctx: &mut LabelContext<'_, '_>,
) {
    let sf = ctx.scale_factor;
    let [ua, ub, uc, ud, ue, uf] = sym.transform.0;
    let user = Affine([ua, ub, uc, ud, 0.0, 0.0]);
    let prepared = match &sym.file {
        None => {
            let (w, h) = sym.ellipse_size();
            let paint = sym.ellipse_paint();
            let half = paint.stroke_width.unwrap_or(0.0) / 2.0;
            Prepared {
                shape: Shape::Ellipse { w, h, paint },
                bbox: [
                    -w / 2.0 - half,
                    -h / 2.0 - half,
                    w / 2.0 + half,
                    h / 2.0 + half,
                ],
                linear: user.after(&Affine([sf, 0.0, 0.0, sf, 0.0, 0.0])),
                shift: (ue * sf, uf * sf),
                file: None,
                paint,
                opacity: sym.opacity,
                blend: sym.comp_op.blend_mode(),
            }
        }
        Some(file) => {
            let Some(symbol) = ctx.images.symbol(file) else {
                return;
            };
            let bbox = symbol.bbox();
            let info = crate::image::ImageInfo {
                width: bbox[2] - bbox[0],
                height: bbox[3] - bbox[1],
            };
            let (sx, sy) = crate::style::mapnik_xml::marker_scale(sym.width, sym.height, info);
            Prepared {
                shape: Shape::Image(symbol),
                bbox,
                linear: user.after(&Affine([sx * sf, 0.0, 0.0, sy * sf, 0.0, 0.0])),
                shift: (ue * sf, uf * sf),
                file: Some(file.as_path()),
                paint: sym.paint,
                opacity: sym.opacity,
                blend: sym.comp_op.blend_mode(),
            }
        }
    };
    let mut parts = parts_of(canvas, feature);
    if sym.clip {
        parts.clip_to(ctx.collisions.extent());
    }
    let try_at = |canvas: &mut Canvas, anchor: Anchor, ctx: &mut LabelContext<'_, '_>| {
        let bbox = prepared.collision_box(&anchor);
        if place(
            &bbox,
            sym.allow_overlap,
            sym.ignore_placement,
            sym.avoid_edges,
            ctx,
        ) {
            prepared.draw(canvas, &anchor, ctx);
            true
        } else {
            false
        }
    };
    let still = |at: Point| Anchor {
        at,
        angle: 0.0,
        turned: false,
    };
    if sym.placement == MarkerPlacement::Line {
        for &p in &parts.points {
            try_at(canvas, still(p), ctx);
        }
        let rings = parts.polygons.iter().filter_map(|p| p.first());
        for line in parts.lines.iter().chain(rings) {
            let line = if sym.offset != 0.0 {
                offset_path(line, sym.offset * sf, false)
            } else {
                line.clone()
            };
            let path = LinePath::new(&line);
            let spacing = if sym.spacing < 1.0 {
                100.0
            } else {
                sym.spacing
            } * sf;
            let marker_width = {
                let b = prepared.collision_box(&still([0.0, 0.0]));
                b.x1 - b.x0
            };
            let length = path.length();
            let extent = ctx.collisions.extent().grown(marker_width + spacing);
            let mut at = spacing / 2.0;
            while at <= length {
                // Far outside the image nothing can be placed: skip the
                // tries (a long line at a high zoom has thousands).
                let here = path.point_at(at);
                if extent.contains(&Rect::new(here[0], here[1], here[0], here[1])) {
                    for t in tolerance_offsets(spacing * sym.max_error, 0.0) {
                        let d = at + t;
                        if d < 0.0 || d + marker_width / 2.0 >= length {
                            continue;
                        }
                        let anchor = Anchor {
                            at: path.point_at(d),
                            angle: path.angle(d, 0.0),
                            turned: true,
                        };
                        if try_at(canvas, anchor, ctx) {
                            break;
                        }
                    }
                }
                at += spacing;
            }
        }
        return;
    }
    if matches!(
        sym.placement,
        MarkerPlacement::VertexFirst | MarkerPlacement::VertexLast
    ) {
        let first = sym.placement == MarkerPlacement::VertexFirst;
        for &p in &parts.points {
            try_at(canvas, still(p), ctx);
        }
        let rings = parts.polygons.iter().filter_map(|p| p.first());
        for line in parts.lines.iter().chain(rings) {
            let (p, q) = match (first, line.len()) {
                (_, 0) => continue,
                (_, 1) => (line[0], line[0]),
                (true, _) => (line[0], line[1]),
                (false, n) => (line[n - 1], line[n - 2]),
            };
            // The marker turns with the segment it ends, pointing out of
            // the line at the last vertex.
            let angle = if first {
                (q[1] - p[1]).atan2(q[0] - p[0])
            } else {
                (p[1] - q[1]).atan2(p[0] - q[0])
            };
            let anchor = Anchor {
                at: p,
                angle,
                turned: angle != 0.0,
            };
            try_at(canvas, anchor, ctx);
        }
        return;
    }
    // point and interior
    if sym.multi_policy == MarkerMultiPolicy::Whole
        && (parts.points.len() + parts.lines.len() + parts.polygons.len()) > 1
    {
        if let Some(c) = whole_centroid(&parts) {
            try_at(canvas, still(c), ctx);
        }
        return;
    }
    let polygons: Vec<&Vec<Vec<Point>>> = if sym.multi_policy == MarkerMultiPolicy::Largest {
        parts
            .polygons
            .iter()
            .max_by(|a, b| bbox_area(a).total_cmp(&bbox_area(b)))
            .into_iter()
            .collect()
    } else {
        parts.polygons.iter().collect()
    };
    for &p in &parts.points {
        try_at(canvas, still(p), ctx);
    }
    for line in &parts.lines {
        if let Some(m) = middle_of_line(line) {
            try_at(canvas, still(m), ctx);
        }
    }
    for polygon in polygons {
        let at = if sym.placement == MarkerPlacement::Interior {
            interior(polygon)
        } else {
            centroid(polygon)
        };
        if let Some(at) = at {
            try_at(canvas, still(at), ctx);
        }
    }
}

/// Mapnik's default point image: a 4×4 black square.
fn default_point_symbol() -> Option<Symbol> {
    let mut p = tiny_skia::Pixmap::new(4, 4)?;
    p.fill(tiny_skia::Color::BLACK);
    Some(Symbol::Raster(std::sync::Arc::new(p)))
}

/// Places and draws a feature's image for one `PointSymbolizer`.
pub(crate) fn draw_point(
    canvas: &mut Canvas,
    feature: &Found<'_>,
    sym: &PointSymbolizer,
    ctx: &mut LabelContext<'_, '_>,
) {
    let symbol = match &sym.file {
        Some(file) => ctx.images.symbol(file),
        None => default_point_symbol(),
    };
    let Some(symbol) = symbol else { return };
    let parts = parts_of(canvas, feature);
    // Mapnik: the centroid of the whole geometry, or with `interior` a
    // point inside a (single) polygon; lines have no interior.
    let at = match sym.placement {
        PointPlacement::Interior if parts.points.is_empty() => {
            if parts.polygons.len() == 1 && parts.lines.is_empty() {
                interior(&parts.polygons[0])
            } else {
                None
            }
        }
        _ => whole_centroid(&parts),
    };
    let Some(at) = at else { return };
    let sf = ctx.scale_factor;
    let [ua, ub, uc, ud, ue, uf] = sym.transform.0;
    let prepared = Prepared {
        bbox: symbol.bbox(),
        shape: Shape::Image(symbol),
        linear: Affine([ua * sf, ub * sf, uc * sf, ud * sf, 0.0, 0.0]),
        shift: (ue * sf, uf * sf),
        file: sym.file.as_deref(),
        paint: PaintOverride::default(),
        opacity: sym.opacity,
        blend: sym.comp_op.blend_mode(),
    };
    let anchor = Anchor {
        at,
        angle: 0.0,
        turned: false,
    };
    let bbox = prepared.collision_box(&anchor);
    if place(&bbox, sym.allow_overlap, sym.ignore_placement, false, ctx) {
        prepared.draw(canvas, &anchor, ctx);
    }
}
