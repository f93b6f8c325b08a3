//! Text labels of one metatile, in Mapnik's order: for each feature a
//! `TextSymbolizer` applies to, the text is evaluated, anchors are found on
//! the geometry, each candidate position is laid out and asked of the
//! placement engine, and the first that fits is drawn at once (Mapnik draws
//! a label when it places it, so later layers may draw over it).
//!
//! Anchors, as Mapnik finds them: a point is its own anchor; a line with
//! `placement="point"` is labelled at the middle of its length; a polygon at
//! its centroid (`interior`: a point inside it on the centroid's row);
//! `vertex` labels every vertex. With `largest-bbox-only` only the polygon
//! with the largest bounding box of a multipolygon is labelled.
//!
//! `placement="line"` follows lines (and polygon outlines) glyph cluster by
//! glyph cluster, as Mapnik's `single_line_placement`: labels `spacing`
//! apart (one per line without it), starting half a spacing in, each tried
//! at offsets up to `label-position-tolerance`; a label turning more than
//! `max-char-angle-delta` between clusters is refused; one reading upside
//! down is tried the other way (`upright="auto"`). Every glyph's box enters
//! the placement engine.

use std::collections::HashMap;

use crate::draw::{clip_polyline, clip_ring, Canvas};
use crate::image::ImageCache;
use crate::place::{label_spacing, tolerance_offsets, Collisions, LinePath, Rect};
use crate::source::geometry::{Geometry, Point};
use crate::source::vector::Found;
use crate::style::filter::FeatureView;
use crate::style::text::{TextPlacement, TextSymbolizer, TextTransform};
use crate::text::paint::{block_path, draw_text_path, rotated_glyphs_path, TextPaint};
use crate::text::{layout, FontChain, HAlign, Justify, LayoutParams, Shaper, TextCaches, VAlign};

/// Everything labels of one metatile share.
pub(crate) struct LabelContext<'a, 'b> {
    pub shaper: &'a mut Shaper<'b>,
    pub caches: &'a mut TextCaches,
    /// This worker's decoded images (shields).
    pub images: &'a mut ImageCache,
    pub collisions: &'a mut Collisions,
    /// Face-name lists of the style, resolved at load.
    pub chains: &'a HashMap<Vec<String>, FontChain>,
    pub scale_factor: f64,
    /// The unbuffered image, for `avoid-edges` and `minimum-padding`.
    pub image: Rect,
}

/// Places and draws a feature's labels for one `TextSymbolizer`.
pub(crate) fn draw_text(
    canvas: &mut Canvas,
    feature: &Found<'_>,
    sym: &TextSymbolizer,
    ctx: &mut LabelContext<'_, '_>,
) {
    let text = transform(
        &sym.text.eval(feature as &dyn FeatureView),
        sym.text_transform,
    );
    if text.trim().is_empty() {
        return;
    }
    let Some(chain) = ctx.chains.get(&sym.face_names) else {
        return;
    };
    let geometry = PxGeometry::of(canvas, feature, sym.clip.then(|| ctx.collisions.extent()));
    if sym.placement == TextPlacement::Line {
        let rings = geometry.polygons.iter().flatten();
        for line in geometry.lines.iter().chain(rings) {
            place_along(canvas, &LinePath::new(line), &text, chain, sym, ctx);
        }
        return;
    }
    for anchor in anchors(&geometry, sym) {
        place_at(canvas, anchor, &text, chain, sym, None, ctx);
    }
}

/// A feature's geometry in pixels of the metatile image (labels, markers
/// and points are placed on it).
pub(crate) struct PxGeometry {
    pub(crate) points: Vec<Point>,
    pub(crate) lines: Vec<Vec<Point>>,
    pub(crate) polygons: Vec<Vec<Vec<Point>>>,
}

impl PxGeometry {
    /// A label's geometry: the feature's full geometry, clipped to a
    /// rectangle (points outside it dropped) when the symbolizer says
    /// `clip`.
    fn of(canvas: &Canvas, feature: &Found<'_>, clip: Option<Rect>) -> PxGeometry {
        // Labels are placed on the full geometry, as Mapnik places them:
        // the drawing's simplification (a quarter pixel) can change which
        // part of a small multipolygon is largest, or move a centroid.
        let mut out = PxGeometry::in_pixels(canvas, &feature.feature.geometry, feature.x_shift);
        if let Some(r) = clip {
            let inside = |p: &Point| p[0] >= r.x0 && p[0] <= r.x1 && p[1] >= r.y0 && p[1] <= r.y1;
            out.points.retain(inside);
            out.clip_to(r);
        }
        out
    }

    /// `g` in pixels of the canvas, shifted by `x_shift` metres.
    pub(crate) fn in_pixels(canvas: &Canvas, g: &Geometry, x_shift: f64) -> PxGeometry {
        let px = |line: &Vec<Point>| -> Vec<Point> {
            line.iter().map(|p| canvas.to_px(*p, x_shift)).collect()
        };
        PxGeometry {
            points: g.points.iter().map(|p| canvas.to_px(*p, x_shift)).collect(),
            lines: g.lines.iter().map(px).collect(),
            polygons: g
                .polygons
                .iter()
                .map(|rings| rings.iter().map(px).collect())
                .collect(),
        }
    }

    /// Cuts lines and polygons to `r` (points are left alone).
    pub(crate) fn clip_to(&mut self, r: Rect) {
        let rect = [r.x0, r.y0, r.x1, r.y1];
        self.lines = self
            .lines
            .iter()
            .flat_map(|l| clip_polyline(l, rect))
            .filter(|l| l.len() >= 2)
            .collect();
        self.polygons = self
            .polygons
            .iter()
            .map(|rings| {
                rings
                    .iter()
                    .map(|ring| clip_ring(ring, rect))
                    .filter(|ring| ring.len() >= 3)
                    .collect::<Vec<_>>()
            })
            .filter(|rings| !rings.is_empty())
            .collect();
    }
}

/// The layout parameters of a symbolizer at a size and displacement.
fn params_for(sym: &TextSymbolizer, size: f64, (dx, dy): (f64, f64), sf: f64) -> LayoutParams {
    use crate::style::text::{
        HorizontalAlignment as H, JustifyAlignment as J, VerticalAlignment as V,
    };
    LayoutParams {
        size: (size * sf) as f32,
        line_spacing: (sym.line_spacing * sf) as f32,
        character_spacing: (sym.character_spacing * sf) as f32,
        wrap_width: (sym.wrap_width * sf) as f32,
        wrap_char: (sym.wrap_character != ' ').then_some(sym.wrap_character),
        wrap_before: sym.wrap_before,
        dx: (dx * sf) as f32,
        dy: (dy * sf) as f32,
        halign: match sym.horizontal_alignment {
            H::Left => HAlign::Left,
            H::Middle => HAlign::Middle,
            H::Right => HAlign::Right,
            H::Auto => HAlign::Auto,
        },
        valign: match sym.vertical_alignment {
            V::Top => VAlign::Top,
            V::Middle => VAlign::Middle,
            V::Bottom => VAlign::Bottom,
            V::Auto => VAlign::Auto,
        },
        justify: match sym.justify_alignment {
            J::Left => Justify::Left,
            J::Center => Justify::Center,
            J::Right => Justify::Right,
            J::Auto => Justify::Auto,
        },
    }
}

/// One glyph placed along a line: its baseline origin and angle.
struct LineGlyph {
    face: crate::text::FaceId,
    glyph: u16,
    origin: [f64; 2],
    angle: f64,
}

/// Labels along one line.
fn place_along(
    canvas: &mut Canvas,
    path: &LinePath,
    text: &str,
    chain: &FontChain,
    sym: &TextSymbolizer,
    ctx: &mut LabelContext<'_, '_>,
) {
    let sf = ctx.scale_factor;
    let params = params_for(sym, sym.size, (0.0, sym.dy), sf);
    let block = layout(ctx.shaper, &mut ctx.caches.shapes, chain, text, &params);
    if block.is_empty() {
        return;
    }
    let length = path.length();
    let width = f64::from(block.width);
    if length <= 0.001 || length < sym.minimum_path_length * sf || length < width {
        return;
    }
    let spacing = label_spacing(length, width, sym.spacing * sf);
    let mut at = spacing / 2.0 + sym.dx * sf;
    let reversed = path.reversed();
    while at <= length {
        for t in tolerance_offsets(sym.label_position_tolerance * sf, spacing) {
            let centre = at + t;
            if let Some(glyphs) = fit_along(path, &reversed, centre, &block, text, sym, ctx) {
                draw_line_glyphs(canvas, &glyphs, params.size, sym, ctx);
                break;
            }
        }
        at += spacing;
    }
}

/// Places a block's glyphs centred at distance `centre` along the path
/// (or, read upside down, along the reversed path); records their boxes.
fn fit_along(
    path: &LinePath,
    reversed: &LinePath,
    centre: f64,
    block: &crate::text::TextBlock,
    text: &str,
    sym: &TextSymbolizer,
    ctx: &mut LabelContext<'_, '_>,
) -> Option<Vec<LineGlyph>> {
    use crate::style::text::Upright;
    let length = path.length();
    // Mapnik's `simplify_upright`: the direction first follows the line's
    // angle where the label is centred (reading left to right unless that
    // would be upside down)...
    let angle = path.angle(centre, 0.0);
    let upside = angle.abs() > std::f64::consts::FRAC_PI_2;
    let start_reversed = match sym.upright {
        Upright::Auto => upside,
        Upright::AutoDown => !upside,
        Upright::Left | Upright::LeftOnly => true,
        Upright::Right | Upright::RightOnly => false,
    };
    let attempt = |reverse: bool, ctx: &LabelContext<'_, '_>| {
        if reverse {
            try_along(reversed, length - centre, block, text, sym, ctx)
        } else {
            try_along(path, centre, block, text, sym, ctx)
        }
    };
    let first = attempt(start_reversed, ctx)?;
    // ...and if more than half of the glyphs still read upside down, the
    // other way is tried (auto) or the label is refused (left-/right-only).
    let (_, glyphs, boxes) = if first.0 * 2 > first.1.len() {
        match sym.upright {
            Upright::Auto | Upright::AutoDown => attempt(!start_reversed, ctx)?,
            Upright::LeftOnly | Upright::RightOnly => return None,
            Upright::Left | Upright::Right => first,
        }
    } else {
        first
    };
    for b in boxes {
        ctx.collisions.insert(b, Some(text));
    }
    Some(glyphs)
}

/// One direction: (glyphs upside down, glyphs, boxes), or `None` if the
/// label does not fit there.
fn try_along(
    path: &LinePath,
    centre: f64,
    block: &crate::text::TextBlock,
    text: &str,
    sym: &TextSymbolizer,
    ctx: &LabelContext<'_, '_>,
) -> Option<(usize, Vec<LineGlyph>, Vec<Rect>)> {
    let max_delta = sym.max_char_angle_delta.to_radians();
    let start = centre - f64::from(block.width) / 2.0;
    if start < 0.0 || start + f64::from(block.width) > path.length() + 1e-6 {
        return None;
    }
    let mut glyphs = Vec::new();
    let mut boxes = Vec::new();
    let mut upside_down = 0;
    for line in &block.lines {
        // Perpendicular offset of this line's baseline from the path.
        let baseline = f64::from(block.offset.1 + line.baseline);
        let line_start = start + f64::from(line.x) + f64::from(block.width) / 2.0;
        let mut last_angle: Option<f64> = None;
        let mut last_cluster = u32::MAX;
        let mut angle = 0.0;
        for (g, gx) in line.shaped.glyphs.iter().zip(&line.glyph_x) {
            let s = line_start + f64::from(*gx);
            if g.cluster != last_cluster {
                last_cluster = g.cluster;
                angle = path.angle(s, f64::from(g.advance).max(0.5));
                if let Some(previous) = last_angle {
                    let mut d = angle - previous;
                    while d > std::f64::consts::PI {
                        d -= 2.0 * std::f64::consts::PI;
                    }
                    while d < -std::f64::consts::PI {
                        d += 2.0 * std::f64::consts::PI;
                    }
                    if max_delta > 0.0 && d.abs() > max_delta {
                        return None;
                    }
                }
                last_angle = Some(angle);
            }
            if angle.abs() > std::f64::consts::FRAC_PI_2 {
                upside_down += 1;
            }
            let p = path.point_at(s);
            let (sin, cos) = angle.sin_cos();
            let origin = [p[0] - sin * baseline, p[1] + cos * baseline];
            // The glyph's box (Mapnik's `get_bbox`): its advance along the
            // line, and its own outline's height across it.
            let adv = f64::from(g.advance);
            let (top, bottom) = (f64::from(g.top), f64::from(g.bottom));
            let corners = [(0.0, top), (adv, top), (adv, bottom), (0.0, bottom)]
                .map(|(x, y)| [origin[0] + x * cos - y * sin, origin[1] + x * sin + y * cos]);
            let b = Rect::new(
                corners.iter().map(|c| c[0]).fold(f64::MAX, f64::min),
                corners.iter().map(|c| c[1]).fold(f64::MAX, f64::min),
                corners.iter().map(|c| c[0]).fold(f64::MIN, f64::max),
                corners.iter().map(|c| c[1]).fold(f64::MIN, f64::max),
            );
            if !fits(&b, text, sym, ctx, Placing::AlongLine) {
                return None;
            }
            boxes.push(b);
            glyphs.push(LineGlyph {
                face: g.face,
                glyph: g.glyph,
                origin,
                angle,
            });
        }
    }
    if !boxes.iter().any(|b| ctx.collisions.extent().intersects(b)) {
        return None;
    }
    Some((upside_down, glyphs, boxes))
}

/// Draws glyphs placed along a line, halo first.
fn draw_line_glyphs(
    canvas: &mut Canvas,
    glyphs: &[LineGlyph],
    size: f32,
    sym: &TextSymbolizer,
    ctx: &mut LabelContext<'_, '_>,
) {
    let placed: Vec<_> = glyphs
        .iter()
        .map(|g| {
            (
                g.face,
                g.glyph,
                g.origin[0] as f32,
                g.origin[1] as f32,
                g.angle as f32,
            )
        })
        .collect();
    if let Some(path) = rotated_glyphs_path(ctx.shaper, &mut ctx.caches.glyphs, &placed, size) {
        let paint = TextPaint {
            fill: rgba(sym.fill, sym.opacity),
            halo_radius: (sym.halo_radius * ctx.scale_factor) as f32,
            halo_fill: rgba(sym.halo_fill, sym.halo_opacity),
            opacity: 1.0,
            blend: sym.comp_op.blend_mode(),
            halo_blend: sym.halo_comp_op.blend_mode(),
        };
        draw_text_path(&mut canvas.pixmap, &path, &paint);
    }
}

/// Tries every position (and every fallback size) at one anchor; draws the
/// A shield's image: drawn centred on the label (or on the anchor with
/// `unlock-image`), moved by `shield-dx`/`shield-dy`, and placed only if
/// its box fits too (Mapnik's `add_marker`).
struct Marker<'a> {
    image: &'a tiny_skia::Pixmap,
    unlock: bool,
    /// `shield-dx`, `shield-dy`, in pixels (times the scale factor).
    displacement: [f64; 2],
    opacity: f32,
    scale: f64,
}

/// Tries every position (and every fallback size) at one anchor; draws the
/// first that fits. Whether a label was placed.
fn place_at(
    canvas: &mut Canvas,
    anchor: [f64; 2],
    text: &str,
    chain: &FontChain,
    sym: &TextSymbolizer,
    marker: Option<&Marker<'_>>,
    ctx: &mut LabelContext<'_, '_>,
) -> bool {
    let sf = ctx.scale_factor;
    let sizes = std::iter::once(sym.size).chain(sym.placement_sizes.iter().copied());
    for size in sizes {
        for position in &sym.placements {
            let params = params_for(sym, size, position.displacement(sym.dx, sym.dy), sf);
            let block = layout(ctx.shaper, &mut ctx.caches.shapes, chain, text, &params);
            let has_text = !block.is_empty();
            if !has_text && marker.is_none() {
                return false;
            }
            let (x0, y0, x1, y1) = block.bbox();
            let bbox = Rect::new(
                anchor[0] + f64::from(x0),
                anchor[1] + f64::from(y0),
                anchor[0] + f64::from(x1),
                anchor[1] + f64::from(y1),
            );
            if has_text && !fits(&bbox, text, sym, ctx, Placing::AtPoint) {
                continue;
            }
            let centre = [
                anchor[0] + f64::from(block.offset.0),
                anchor[1] + f64::from(block.offset.1),
            ];
            // The shield's image, checked before anything is recorded.
            let mut image_at = None;
            if let Some(m) = marker {
                let base = if m.unlock { anchor } else { centre };
                let pos = [base[0] + m.displacement[0], base[1] + m.displacement[1]];
                let (w, h) = (
                    f64::from(m.image.width()) * m.scale,
                    f64::from(m.image.height()) * m.scale,
                );
                let mbox = Rect::new(
                    pos[0] - w / 2.0,
                    pos[1] - h / 2.0,
                    pos[0] + w / 2.0,
                    pos[1] + h / 2.0,
                );
                if !fits(&mbox, text, sym, ctx, Placing::AtPoint) {
                    continue;
                }
                ctx.collisions.insert(mbox, Some(text));
                image_at = Some((m, [mbox.x0, mbox.y0]));
            }
            if has_text {
                ctx.collisions.insert(bbox, Some(text));
            }
            if let Some((m, top_left)) = image_at {
                let paint = tiny_skia::PixmapPaint {
                    opacity: m.opacity,
                    quality: tiny_skia::FilterQuality::Bilinear,
                    // Mapnik draws a shield's image with the comp-op too.
                    blend_mode: sym.comp_op.blend_mode(),
                };
                let t = tiny_skia::Transform::from_row(
                    m.scale as f32,
                    0.0,
                    0.0,
                    m.scale as f32,
                    top_left[0] as f32,
                    top_left[1] as f32,
                );
                canvas
                    .pixmap
                    .draw_pixmap(0, 0, m.image.as_ref(), &paint, t, None);
            }
            if !has_text {
                return true;
            }
            let origin = (centre[0] as f32, centre[1] as f32);
            if let Some(path) = block_path(
                ctx.shaper,
                &mut ctx.caches.glyphs,
                &block,
                params.size,
                origin,
            ) {
                let paint = TextPaint {
                    fill: rgba(sym.fill, sym.opacity),
                    halo_radius: (sym.halo_radius * sf) as f32,
                    halo_fill: rgba(sym.halo_fill, sym.halo_opacity),
                    opacity: 1.0,
                    blend: sym.comp_op.blend_mode(),
                    halo_blend: sym.halo_comp_op.blend_mode(),
                };
                draw_text_path(&mut canvas.pixmap, &path, &paint);
            }
            return true;
        }
    }
    false
}

/// Places and draws a feature's shields: the image with its text, at the
/// same anchors as a text label, or every `spacing` along lines (each one
/// horizontal, as Mapnik places shields on lines).
pub(crate) fn draw_shield(
    canvas: &mut Canvas,
    feature: &Found<'_>,
    shield: &crate::style::text::ShieldSymbolizer,
    ctx: &mut LabelContext<'_, '_>,
) {
    let sym = &shield.text;
    let Some(chain) = ctx.chains.get(&sym.face_names) else {
        return;
    };
    let text = transform(
        &sym.text.eval(feature as &dyn FeatureView),
        sym.text_transform,
    );
    let path = shield.file.eval(feature as &dyn FeatureView);
    let Some(image) = ctx.images.raster(&path) else {
        // No image (a field named a file that is not there): the text
        // alone, as Mapnik draws it.
        if !text.trim().is_empty() {
            let geometry =
                PxGeometry::of(canvas, feature, sym.clip.then(|| ctx.collisions.extent()));
            for anchor in anchors(&geometry, sym) {
                place_at(canvas, anchor, &text, chain, sym, None, ctx);
            }
        }
        return;
    };
    let sf = ctx.scale_factor;
    let marker = Marker {
        image: &image,
        unlock: shield.unlock_image,
        displacement: [shield.shield_dx * sf, shield.shield_dy * sf],
        opacity: shield.opacity.clamp(0.0, 1.0) as f32,
        scale: sf,
    };
    let geometry = PxGeometry::of(canvas, feature, sym.clip.then(|| ctx.collisions.extent()));
    if sym.placement == TextPlacement::Line {
        let rings = geometry.polygons.iter().flatten();
        for line in geometry.lines.iter().chain(rings) {
            let path = LinePath::new(line);
            let length = path.length();
            if length <= 0.001 || length < sym.minimum_path_length * sf {
                continue;
            }
            let spacing = label_spacing(length, 0.0, sym.spacing * sf);
            let mut at = spacing / 2.0;
            while at <= length {
                for t in tolerance_offsets(sym.label_position_tolerance * sf, spacing) {
                    let d = at + t;
                    if (0.0..=length).contains(&d)
                        && place_at(
                            canvas,
                            path.point_at(d),
                            &text,
                            chain,
                            sym,
                            Some(&marker),
                            ctx,
                        )
                    {
                        break;
                    }
                }
                at += spacing;
            }
        }
        return;
    }
    for anchor in anchors(&geometry, sym) {
        place_at(canvas, anchor, &text, chain, sym, Some(&marker), ctx);
    }
}

/// Which of Mapnik's two sets of spacing rules a box is checked with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Placing {
    /// A label at an anchor (or a shield's image): `margin`, falling back
    /// to `minimum-distance`, from any box; `repeat-distance` from the same
    /// text. Its box must touch the buffered metatile.
    AtPoint,
    /// One glyph of a label along a line: `margin` from any box;
    /// `repeat-distance`, falling back to `minimum-distance`, from the same
    /// text. (The whole label must touch the buffered metatile; the caller
    /// checks that once.)
    AlongLine,
}

/// Mapnik's `placement_finder::collision`, as a yes: whether `bbox` may be
/// placed.
fn fits(
    bbox: &Rect,
    text: &str,
    sym: &TextSymbolizer,
    ctx: &LabelContext<'_, '_>,
    placing: Placing,
) -> bool {
    let sf = ctx.scale_factor;
    if placing == Placing::AtPoint && !ctx.collisions.extent().intersects(bbox) {
        return false;
    }
    if sym.avoid_edges && !ctx.image.contains(bbox) {
        return false;
    }
    if sym.minimum_padding > 0.0 && !ctx.image.contains(&bbox.grown(sym.minimum_padding * sf)) {
        return false;
    }
    if sym.allow_overlap {
        return true;
    }
    let or = |given: f64, fallback: f64| if given != 0.0 { given } else { fallback };
    let (margin, repeat) = match placing {
        Placing::AtPoint => (or(sym.margin, sym.minimum_distance), sym.repeat_distance),
        Placing::AlongLine => (sym.margin, or(sym.repeat_distance, sym.minimum_distance)),
    };
    ctx.collisions
        .has_placement(bbox, margin * sf, Some((text, repeat * sf)))
}

fn rgba(c: crate::style::color::Color, opacity: f64) -> [u8; 4] {
    let a = (f64::from(c.a) * opacity.clamp(0.0, 1.0)).round() as u8;
    [c.r, c.g, c.b, a]
}

/// `text-transform`.
fn transform(text: &str, how: TextTransform) -> String {
    match how {
        TextTransform::None => text.to_owned(),
        TextTransform::Uppercase => text.to_uppercase(),
        TextTransform::Lowercase => text.to_lowercase(),
        TextTransform::Capitalize => {
            let mut out = String::with_capacity(text.len());
            let mut start = true;
            for c in text.chars() {
                if start && c.is_alphabetic() {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = c.is_whitespace();
            }
            out
        }
        TextTransform::Reverse => text.chars().rev().collect(),
    }
}

/// Where a feature's labels go, in pixels.
fn anchors(g: &PxGeometry, sym: &TextSymbolizer) -> Vec<Point> {
    let mut out: Vec<Point> = Vec::new();
    match sym.placement {
        TextPlacement::Line => {}
        TextPlacement::Vertex => {
            out.extend(g.points.iter().copied());
            out.extend(g.lines.iter().flatten().copied());
            out.extend(g.polygons.iter().flatten().flatten().copied());
        }
        TextPlacement::Point | TextPlacement::Interior => {
            out.extend(g.points.iter().copied());
            out.extend(g.lines.iter().filter_map(|l| middle_of_line(l)));
            let polygons: Vec<&Vec<Vec<Point>>> = if sym.largest_bbox_only {
                g.polygons
                    .iter()
                    .max_by(|a, b| bbox_area(a).total_cmp(&bbox_area(b)))
                    .into_iter()
                    .collect()
            } else {
                g.polygons.iter().collect()
            };
            for polygon in polygons {
                let point = if sym.placement == TextPlacement::Interior {
                    interior(polygon)
                } else {
                    centroid(polygon)
                };
                out.extend(point);
            }
        }
    }
    out
}

/// The point half way along a line.
pub(crate) fn middle_of_line(line: &[Point]) -> Option<Point> {
    let total: f64 = line.windows(2).map(|w| dist(w[0], w[1])).sum();
    let mut left = total / 2.0;
    for w in line.windows(2) {
        let d = dist(w[0], w[1]);
        if d >= left && d > 0.0 {
            let t = left / d;
            return Some([
                w[0][0] + t * (w[1][0] - w[0][0]),
                w[0][1] + t * (w[1][1] - w[0][1]),
            ]);
        }
        left -= d;
    }
    line.first().copied()
}

fn dist(a: Point, b: Point) -> f64 {
    (b[0] - a[0]).hypot(b[1] - a[1])
}

pub(crate) fn bbox_area(polygon: &[Vec<Point>]) -> f64 {
    let Some(ring) = polygon.first() else {
        return 0.0;
    };
    let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for p in ring {
        x0 = x0.min(p[0]);
        y0 = y0.min(p[1]);
        x1 = x1.max(p[0]);
        y1 = y1.max(p[1]);
    }
    ((x1 - x0) * (y1 - y0)).max(0.0)
}

/// The area-weighted centroid of a polygon with its holes.
pub(crate) fn centroid(polygon: &[Vec<Point>]) -> Option<Point> {
    let (mut area, mut cx, mut cy) = (0.0, 0.0, 0.0);
    let origin = polygon.first().and_then(|r| r.first()).copied()?;
    for (i, ring) in polygon.iter().enumerate() {
        // Exterior counts positive, holes negative, whatever their winding.
        let mut ring_area = 0.0;
        let (mut rx, mut ry) = (0.0, 0.0);
        for w in ring.windows(2) {
            let (a, b) = (
                [w[0][0] - origin[0], w[0][1] - origin[1]],
                [w[1][0] - origin[0], w[1][1] - origin[1]],
            );
            let cross = a[0] * b[1] - b[0] * a[1];
            ring_area += cross;
            rx += (a[0] + b[0]) * cross;
            ry += (a[1] + b[1]) * cross;
        }
        // Exterior rings count positive, holes negative, whatever their
        // winding.
        let sign = if i == 0 { 1.0 } else { -1.0 } * ring_area.signum();
        area += sign * ring_area;
        cx += sign * rx;
        cy += sign * ry;
    }
    if area.abs() < f64::EPSILON {
        return polygon.first().and_then(|r| r.first()).copied();
    }
    Some([origin[0] + cx / (3.0 * area), origin[1] + cy / (3.0 * area)])
}

/// A point inside the polygon: on the centroid's row, the middle of the
/// widest span inside it.
pub(crate) fn interior(polygon: &[Vec<Point>]) -> Option<Point> {
    let c = centroid(polygon)?;
    let y = c[1];
    let mut xs: Vec<f64> = Vec::new();
    for ring in polygon {
        for w in ring.windows(2) {
            let (a, b) = (w[0], w[1]);
            if (a[1] <= y) != (b[1] <= y) {
                xs.push(a[0] + (y - a[1]) / (b[1] - a[1]) * (b[0] - a[0]));
            }
        }
    }
    xs.sort_by(f64::total_cmp);
    xs.chunks_exact(2)
        .max_by(|a, b| (a[1] - a[0]).total_cmp(&(b[1] - b[0])))
        .map(|span| [(span[0] + span[1]) / 2.0, y])
        .or(Some(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(points: &[(f64, f64)]) -> Vec<Point> {
        let mut r: Vec<Point> = points.iter().map(|&(x, y)| [x, y]).collect();
        r.push(r[0]);
        r
    }

    #[test]
    fn centroid_weighs_area_and_subtracts_holes_whatever_the_winding() {
        let square = ring(&[(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)]);
        assert_eq!(centroid(std::slice::from_ref(&square)), Some([5.0, 5.0]));
        let reversed: Vec<Point> = square.iter().rev().copied().collect();
        assert_eq!(centroid(&[reversed]), Some([5.0, 5.0]));
        // A hole in the right half moves the centroid left.
        let hole = ring(&[(6.0, 2.0), (9.0, 2.0), (9.0, 8.0), (6.0, 8.0)]);
        let c = centroid(&[square, hole]).unwrap();
        assert!(c[0] < 5.0 && (c[1] - 5.0).abs() < 1e-9, "{c:?}");
    }

    #[test]
    fn interior_points_lie_inside_a_c_shape_whose_centroid_does_not() {
        // A C open to the right: its centroid is in the opening.
        let c_shape = ring(&[
            (0.0, 0.0),
            (10.0, 0.0),
            (10.0, 2.0),
            (2.0, 2.0),
            (2.0, 8.0),
            (10.0, 8.0),
            (10.0, 10.0),
            (0.0, 10.0),
        ]);
        let centre = centroid(std::slice::from_ref(&c_shape)).unwrap();
        assert!(centre[0] > 2.0, "{centre:?}");
        let inside = interior(&[c_shape]).unwrap();
        assert!(inside[0] > 0.0 && inside[0] < 2.0, "{inside:?}");
    }

    #[test]
    fn the_middle_of_a_line_is_half_its_length() {
        let line = [[0.0, 0.0], [10.0, 0.0], [10.0, 30.0]];
        assert_eq!(middle_of_line(&line), Some([10.0, 10.0]));
        assert_eq!(
            transform("Töölö tori", TextTransform::Uppercase),
            "TÖÖLÖ TORI"
        );
        assert_eq!(
            transform("töölö tori", TextTransform::Capitalize),
            "Töölö Tori"
        );
        assert_eq!(transform("abc", TextTransform::Reverse), "cba");
    }
}
