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
//!   corners; its height lies across the line, centred on it, its first
//!   row on the line's left. Each segment is a quad cut at the bisectors
//!   of its corners (AGG's accurate miter joins) reaching half a pixel
//!   past the image's edges, filled without antialiasing and sampled
//!   bilinearly from the image between transparent rows, at AGG's pixel
//!   centres (AGG's `renderer_outline_image`). Polygon rings get it too.
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

/// Where a pattern starts for a feature, in pixels: the map's origin
/// (`global`), or the first vertex of its first line or ring (`local`).
fn reference(canvas: &Canvas, feature: &Found<'_>, alignment: PatternAlignment) -> Point {
    let g = feature.geometry;
    let first = || {
        g.lines
            .first()
            .or_else(|| g.polygons.first().and_then(|p| p.first()))
            .and_then(|l| l.first())
            .map(|p| canvas.to_px(*p, feature.x_shift))
    };
    match alignment {
        PatternAlignment::Local => first(),
        PatternAlignment::Global => None,
    }
    .unwrap_or_else(|| canvas.to_px([0.0, 0.0], feature.x_shift))
}

/// The paint of a pattern aligned for a feature.
fn aligned_paint<'t>(
    canvas: &Canvas,
    feature: &Found<'_>,
    alignment: PatternAlignment,
    tile: &'t Pixmap,
    opacity: f64,
    op: CompOp,
) -> Paint<'t> {
    let shift = pattern_shift(reference(canvas, feature, alignment), tile);
    pattern_paint(tile, shift, opacity, op)
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
    let paint = aligned_paint(
        canvas,
        feature,
        sym.alignment,
        &tile,
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
            let paint = aligned_paint(
                canvas,
                feature,
                sym.alignment,
                &tile,
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

/// The tile upside down between one transparent row above and one below.
/// The transparent rows: AGG's `line_image_pattern` surrounds the image
/// with transparent rows across the line (its `dilation`) and repeats it
/// only along the line, so the bilinear filter fades the band's edges into
/// nothing instead of wrapping round to the image's opposite edge (a
/// repeating shader would put a ghost of the far row beside the line).
/// Upside down: drawn through a mirroring transform, the shader's matrix
/// is never a plain translation, which tiny-skia would sample nearest
/// instead of bilinearly (an eastward horizontal line would lose its soft
/// edges).
fn padded_flipped(tile: &Pixmap) -> Option<Pixmap> {
    let (w, h) = (tile.width() as usize, tile.height() as usize);
    let row = w * 4;
    let mut data = vec![0u8; row * (h + 2)];
    for (k, src) in tile.data().chunks_exact(row).enumerate() {
        // Row k of the tile is row h - k of the result (rows 1..=h).
        let at = (h - k) * row;
        data[at..at + row].copy_from_slice(src);
    }
    Pixmap::from_vec(
        data,
        tiny_skia::IntSize::from_wh(tile.width(), tile.height() + 2)?,
    )
}

/// Lays `tile` along a polyline as AGG's `renderer_outline_image` does
/// (Mapnik's warp form, see the module doc): every pixel whose centre lies
/// within half the image's height plus half a pixel of a segment, between
/// the bisectors of its corners, takes the image sampled bilinearly (no
/// coverage antialiasing: the transparent rows round the image soften the
/// edges). The image's x is the distance along the line of the pixel's
/// centre (AGG's `dist_pict`) at the image's pixel centres, so half a
/// pixel later than area sampling; its y is the distance to the right of
/// the line plus half the height.
fn warp(canvas: &mut Canvas, line: &[Point], tile: &Pixmap, opacity: f64, op: CompOp) {
    if line.len() < 2 {
        return;
    }
    let Some(padded) = padded_flipped(tile) else {
        return;
    };
    let half = f64::from(tile.height()) / 2.0;
    // AGG's line_width(): half the height, rounded to 1/256 px, plus half
    // a pixel.
    let reach = (half * 256.0).round() / 256.0 + 0.5;
    let (w, h) = (canvas.pixmap.width(), canvas.pixmap.height());
    let margin = reach * 4.0 + 2.0;
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
    // AGG bounds a near-reversal). Neighbouring quads share the cut
    // exactly, so without antialiasing each pixel is drawn once.
    let normal = |u: [f64; 2]| [u[1], -u[0]];
    let cut = |u: [f64; 2], v: [f64; 2]| {
        let (n1, n2) = (normal(u), normal(v));
        let m = [n1[0] + n2[0], n1[1] + n2[1]];
        let len = m[0].hypot(m[1]);
        if len < 1e-9 {
            return [n1[0] * reach, n1[1] * reach];
        }
        let m = [m[0] / len, m[1] / len];
        let k = (reach / (m[0] * n1[0] + m[1] * n1[1])).min(reach * 4.0);
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
                [n[0] * reach, n[1] * reach]
            } else {
                cut(dir(line[i - 1], p), u)
            };
            let end = if i + 2 == line.len() {
                [n[0] * reach, n[1] * reach]
            } else {
                cut(u, dir(q, line[i + 2]))
            };
            let quad = [
                [p[0] + start[0], p[1] + start[1]],
                [q[0] + end[0], q[1] + end[1]],
                [q[0] - end[0], q[1] - end[1]],
                [p[0] - start[0], p[1] - start[1]],
            ];
            let mut pb = PathBuilder::new();
            pb.move_to(quad[0][0] as f32, quad[0][1] as f32);
            for c in &quad[1..] {
                pb.line_to(c[0] as f32, c[1] as f32);
            }
            pb.close();
            if let Some(path) = pb.finish() {
                // Image x runs along the segment from `along` (half a
                // pixel on, see above); the image's y runs across it from
                // the left edge of the image (`half` left of the line), so
                // the upside-down padded tile's y runs from its bottom
                // edge, `half + 1` right of the line, towards the left.
                let back = along + 0.5;
                let origin = [
                    p[0] - u[0] * back - n[0] * (half + 1.0),
                    p[1] - u[1] * back - n[1] * (half + 1.0),
                ];
                let shader_transform = Transform::from_row(
                    u[0] as f32,
                    u[1] as f32,
                    n[0] as f32,
                    n[1] as f32,
                    origin[0] as f32,
                    origin[1] as f32,
                );
                let paint = Paint {
                    shader: tiny_skia::Pattern::new(
                        padded.as_ref(),
                        SpreadMode::Repeat,
                        FilterQuality::Bilinear,
                        opacity.clamp(0.0, 1.0) as f32,
                        shader_transform,
                    ),
                    anti_alias: false,
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
