//! Images repeated over areas and along lines: `<PolygonPatternSymbolizer>`
//! and `<LinePatternSymbolizer>`.
//!
//! Contract, as Mapnik 3.1 (AGG) draws them:
//! - The pattern tile is the image under the symbolizer's `transform`
//!   and the scale factor, cut to its bounding box ([`ImageCache::tile`]).
//! - Polygons are filled (antialiased, even-odd) with the tile repeated
//!   from a whole-pixel origin: the map's origin (`alignment="global"`, so
//!   a pattern runs on seamlessly across features and tiles) or the
//!   feature's first vertex (`local`). Each pixel takes the tile's pixel
//!   under it (no filtering), times `opacity`.
//! - `line-pattern="warp"` (the classic form) lays the tile along each
//!   line: its width runs along the line and repeats, continuing round
//!   corners; its height lies across the line, centred on it. Each
//!   segment is a quad cut at the bisectors of its corners (AGG's
//!   accurate miter joins), sampled bilinearly. Polygon rings get it too.
//! - `line-pattern="repeat"` strokes the line (`stroke-width`, caps, joins,
//!   dashes) and fills the stroke with the repeated tile, aligned as a
//!   polygon pattern.
//!
//! [`ImageCache::tile`]: crate::image::ImageCache::tile

use crate::draw::{offset_path, Canvas};
use crate::labels::LabelContext;
use crate::source::geometry::Point;
use crate::source::vector::Found;
use crate::style::composite::CompOp;
use crate::style::symbolizer::{
    Affine, LinePatternKind, LinePatternSymbolizer, PatternAlignment, PolygonPatternSymbolizer,
};
use tiny_skia::{FillRule, FilterQuality, Paint, PathBuilder, Pixmap, SpreadMode, Transform};

/// The tile of a symbolizer's image at this scale factor.
fn tile(
    file: &std::path::Path,
    transform: &Affine,
    ctx: &mut LabelContext<'_, '_>,
) -> Option<std::sync::Arc<Pixmap>> {
    let sf = ctx.scale_factor;
    let [a, b, c, d, _, _] = transform.0;
    ctx.images
        .tile(file, &Affine([a * sf, b * sf, c * sf, d * sf, 0.0, 0.0]))
}

/// Mapnik's `pattern_offset`: the whole-pixel shift that puts the tile's
/// corner on `reference`.
fn pattern_shift(reference: Point, tile: &Pixmap) -> (f32, f32) {
    let (w, h) = (f64::from(tile.width()), f64::from(tile.height()));
    let ox = ((-reference[0]) % w + w).trunc();
    let oy = ((-reference[1]) % h + h).trunc();
    (ox as f32, oy as f32)
}

/// Where a pattern starts for a feature: the map's origin, or the first
/// vertex of the feature (in pixels).
fn reference(
    canvas: &Canvas,
    feature: &Found<'_>,
    alignment: PatternAlignment,
    first_vertex: Option<Point>,
) -> Point {
    match (alignment, first_vertex) {
        (PatternAlignment::Local, Some(p)) => p,
        _ => canvas.to_px([0.0, 0.0], feature.x_shift),
    }
}

fn pattern_paint(tile: &Pixmap, shift: (f32, f32), opacity: f64, op: CompOp) -> Paint<'_> {
    Paint {
        shader: tiny_skia::Pattern::new(
            tile.as_ref(),
            SpreadMode::Repeat,
            FilterQuality::Nearest,
            opacity.clamp(0.0, 1.0) as f32,
            Transform::from_translate(-shift.0, -shift.1),
        ),
        anti_alias: true,
        blend_mode: op.blend_mode(),
        ..Paint::default()
    }
}

/// Fills a feature's polygons with a `PolygonPatternSymbolizer`.
pub(crate) fn fill_polygons(
    canvas: &mut Canvas,
    feature: &Found<'_>,
    sym: &PolygonPatternSymbolizer,
    ctx: &mut LabelContext<'_, '_>,
) {
    let g = feature.geometry;
    if g.polygons.is_empty() {
        return;
    }
    let Some(tile) = tile(&sym.file, &sym.transform, ctx) else {
        return;
    };
    let first = g
        .polygons
        .first()
        .and_then(|p| p.first())
        .and_then(|r| r.first())
        .map(|p| canvas.to_px(*p, feature.x_shift));
    let reference = reference(canvas, feature, sym.alignment, first);
    let paint = pattern_paint(
        &tile,
        pattern_shift(reference, &tile),
        sym.opacity,
        sym.comp_op,
    );
    let gamma = (sym.gamma_method, sym.gamma);
    canvas.fill_polygons_with(&g.polygons, feature.x_shift, &paint, sym.comp_op, gamma);
}

/// Draws a feature's lines (and polygon outlines) with a
/// `LinePatternSymbolizer`.
pub(crate) fn stroke_lines(
    canvas: &mut Canvas,
    feature: &Found<'_>,
    sym: &LinePatternSymbolizer,
    ctx: &mut LabelContext<'_, '_>,
) {
    let g = feature.geometry;
    if g.lines.is_empty() && g.polygons.is_empty() {
        return;
    }
    let Some(tile) = tile(&sym.file, &sym.transform, ctx) else {
        return;
    };
    let sf = ctx.scale_factor;
    match sym.kind {
        LinePatternKind::Repeat => {
            let style = crate::style::symbolizer::LineSymbolizer {
                offset: sym.offset,
                ..sym.stroke.clone()
            };
            let first = g
                .lines
                .first()
                .or_else(|| g.polygons.first().and_then(|p| p.first()))
                .and_then(|l| l.first())
                .map(|p| canvas.to_px(*p, feature.x_shift));
            let reference = reference(canvas, feature, sym.alignment, first);
            let paint = pattern_paint(
                &tile,
                pattern_shift(reference, &tile),
                sym.opacity,
                sym.comp_op,
            );
            let rings: Vec<Vec<Point>> = g.polygons.iter().flatten().cloned().collect();
            for (lines, closed) in [(&g.lines, false), (&rings, true)] {
                if lines.is_empty() {
                    continue;
                }
                if let Some((outline, _)) =
                    canvas.stroke_outline(lines, closed, feature.x_shift, &style, false)
                {
                    canvas.pixmap.fill_path(
                        &outline,
                        &paint,
                        FillRule::Winding,
                        Transform::identity(),
                        None,
                    );
                }
            }
        }
        LinePatternKind::Warp => {
            let rings = g.polygons.iter().flatten().map(|r| (r, true));
            for (line, closed) in g.lines.iter().map(|l| (l, false)).chain(rings) {
                let mut px: Vec<Point> = line
                    .iter()
                    .map(|p| canvas.to_px(*p, feature.x_shift))
                    .collect();
                if sym.offset != 0.0 {
                    px = offset_path(&px, sym.offset * sf, closed);
                }
                px.dedup();
                warp(canvas, &px, &tile, sym.opacity, sym.comp_op);
            }
        }
    }
}

/// Lays `tile` along a polyline (see the module doc).
fn warp(canvas: &mut Canvas, line: &[Point], tile: &Pixmap, opacity: f64, op: CompOp) {
    if line.len() < 2 {
        return;
    }
    let half = f64::from(tile.height()) / 2.0;
    let (w, h) = (canvas.pixmap.width(), canvas.pixmap.height());
    let margin = half * 4.0 + 2.0;
    let outside = |p: Point, q: Point| {
        (p[0].max(q[0]) < -margin)
            || (p[1].max(q[1]) < -margin)
            || (p[0].min(q[0]) > f64::from(w) + margin)
            || (p[1].min(q[1]) > f64::from(h) + margin)
    };
    let dir = |a: Point, b: Point| {
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let len = dx.hypot(dy);
        [dx / len, dy / len]
    };
    // The normal to the left of travel (y down), and the corner cut at a
    // vertex between segments with directions `u` and `v`: along the
    // bisector, long enough to reach the edges of both quads (bounded, as
    // AGG bounds a near-reversal).
    let normal = |u: [f64; 2]| [u[1], -u[0]];
    let cut = |u: [f64; 2], v: [f64; 2]| {
        let (n1, n2) = (normal(u), normal(v));
        let m = [n1[0] + n2[0], n1[1] + n2[1]];
        let len = m[0].hypot(m[1]);
        if len < 1e-9 {
            return [n1[0] * half, n1[1] * half];
        }
        let m = [m[0] / len, m[1] / len];
        let k = (half / (m[0] * n1[0] + m[1] * n1[1])).min(half * 4.0);
        [m[0] * k, m[1] * k]
    };
    let mut along = 0.0;
    for i in 0..line.len() - 1 {
        let (p, q) = (line[i], line[i + 1]);
        let u = dir(p, q);
        let length = (q[0] - p[0]).hypot(q[1] - p[1]);
        if !outside(p, q) {
            let n = normal(u);
            let start = if i == 0 {
                [n[0] * half, n[1] * half]
            } else {
                cut(dir(line[i - 1], p), u)
            };
            let end = if i + 2 == line.len() {
                [n[0] * half, n[1] * half]
            } else {
                cut(u, dir(q, line[i + 2]))
            };
            // Half a pixel more at inner corners, so neighbouring quads
            // overlap instead of leaving an antialiased seam.
            let grow = |v: [f64; 2], s: f64| [v[0] + s * u[0] * 0.5, v[1] + s * u[1] * 0.5];
            let quad = [
                grow(
                    [p[0] + start[0], p[1] + start[1]],
                    if i == 0 { 0.0 } else { -1.0 },
                ),
                grow(
                    [q[0] + end[0], q[1] + end[1]],
                    if i + 2 == line.len() { 0.0 } else { 1.0 },
                ),
                grow(
                    [q[0] - end[0], q[1] - end[1]],
                    if i + 2 == line.len() { 0.0 } else { 1.0 },
                ),
                grow(
                    [p[0] - start[0], p[1] - start[1]],
                    if i == 0 { 0.0 } else { -1.0 },
                ),
            ];
            let mut pb = PathBuilder::new();
            pb.move_to(quad[0][0] as f32, quad[0][1] as f32);
            for c in &quad[1..] {
                pb.line_to(c[0] as f32, c[1] as f32);
            }
            pb.close();
            if let Some(path) = pb.finish() {
                // Tile x runs along the segment from `along`, tile y
                // across it from the left edge.
                let origin = [
                    p[0] - u[0] * along + n[0] * half,
                    p[1] - u[1] * along + n[1] * half,
                ];
                let shader_transform = Transform::from_row(
                    u[0] as f32,
                    u[1] as f32,
                    -n[0] as f32,
                    -n[1] as f32,
                    origin[0] as f32,
                    origin[1] as f32,
                );
                let paint = Paint {
                    shader: tiny_skia::Pattern::new(
                        tile.as_ref(),
                        SpreadMode::Repeat,
                        FilterQuality::Bilinear,
                        opacity.clamp(0.0, 1.0) as f32,
                        shader_transform,
                    ),
                    anti_alias: true,
                    blend_mode: op.blend_mode(),
                    ..Paint::default()
                };
                canvas.pixmap.fill_path(
                    &path,
                    &paint,
                    FillRule::Winding,
                    Transform::identity(),
                    None,
                );
            }
        }
        along += length;
    }
}
