//! Drawing a shaped line onto a pixmap: halo first (the outlines stroked),
//! then the fill, both antialiased by tiny-skia like the map's geometry.

use tiny_skia::{
    BlendMode, Color as SkColor, FillRule, LineJoin, Paint, Path, PathBuilder, Pixmap, Stroke,
    Transform,
};

use super::layout::TextBlock;
use super::outline::GlyphCache;
use super::shape::{ShapedLine, Shaper};

/// How to draw a line of text. Colours are straight (not premultiplied)
/// RGBA.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TextPaint {
    pub fill: [u8; 4],
    /// Halo radius in pixels; 0 for none.
    pub halo_radius: f32,
    pub halo_fill: [u8; 4],
    /// Multiplies the alpha of fill and halo.
    pub opacity: f32,
    /// How the glyphs are composited.
    pub blend: BlendMode,
    /// How the halo is composited.
    pub halo_blend: BlendMode,
}

fn sk_color(rgba: [u8; 4], opacity: f32) -> SkColor {
    let a = (f32::from(rgba[3]) / 255.0 * opacity.clamp(0.0, 1.0)).clamp(0.0, 1.0);
    SkColor::from_rgba(
        f32::from(rgba[0]) / 255.0,
        f32::from(rgba[1]) / 255.0,
        f32::from(rgba[2]) / 255.0,
        a,
    )
    .unwrap_or(SkColor::TRANSPARENT)
}

/// The line's glyph outlines as one path in pixels, its baseline starting
/// at (x, y).
pub(crate) fn line_path(
    shaper: &mut Shaper<'_>,
    glyphs: &mut GlyphCache,
    line: &ShapedLine,
    size: f32,
    x: f32,
    y: f32,
) -> Option<Path> {
    let mut builder = PathBuilder::new();
    for g in &line.glyphs {
        let Some(outline) = glyphs.outline(shaper, g.face, g.glyph) else {
            continue;
        };
        let placed = outline.clone().transform(Transform::from_row(
            size,
            0.0,
            0.0,
            size,
            x + g.x,
            y + g.y,
        ))?;
        builder.push_path(&placed);
    }
    builder.finish()
}

/// A laid-out block's glyph outlines as one path in pixels, the block's
/// centre at `origin`.
pub(crate) fn block_path(
    shaper: &mut Shaper<'_>,
    glyphs: &mut GlyphCache,
    block: &TextBlock,
    size: f32,
    origin: (f32, f32),
) -> Option<Path> {
    let mut builder = PathBuilder::new();
    for line in &block.lines {
        for (g, gx) in line.shaped.glyphs.iter().zip(&line.glyph_x) {
            let Some(outline) = glyphs.outline(shaper, g.face, g.glyph) else {
                continue;
            };
            let x = origin.0 + line.x + gx;
            let y = origin.1 + line.baseline + g.y;
            if let Some(placed) = outline
                .clone()
                .transform(Transform::from_row(size, 0.0, 0.0, size, x, y))
            {
                builder.push_path(&placed);
            }
        }
    }
    builder.finish()
}

/// Glyphs each at its own baseline origin and angle (radians, y down), as
/// one path in pixels: labels along lines.
pub(crate) fn rotated_glyphs_path(
    shaper: &mut Shaper<'_>,
    glyphs: &mut GlyphCache,
    placed: &[(super::FaceId, u16, f32, f32, f32)],
    size: f32,
) -> Option<Path> {
    let mut builder = PathBuilder::new();
    for &(face, glyph, x, y, angle) in placed {
        let Some(outline) = glyphs.outline(shaper, face, glyph) else {
            continue;
        };
        let (sin, cos) = angle.sin_cos();
        let t = Transform::from_row(size * cos, size * sin, -size * sin, size * cos, x, y);
        if let Some(p) = outline.clone().transform(t) {
            builder.push_path(&p);
        }
    }
    builder.finish()
}

/// Draws `path` (a line's outlines) with its halo.
pub(crate) fn draw_text_path(pixmap: &mut Pixmap, path: &Path, paint: &TextPaint) {
    if paint.halo_radius > 0.0 {
        let mut halo = Paint::default();
        halo.set_color(sk_color(paint.halo_fill, paint.opacity));
        halo.anti_alias = true;
        halo.blend_mode = paint.halo_blend;
        let stroke = Stroke {
            width: paint.halo_radius * 2.0,
            line_join: LineJoin::Round,
            ..Stroke::default()
        };
        pixmap.stroke_path(path, &halo, &stroke, Transform::identity(), None);
    }
    let mut fill = Paint::default();
    fill.set_color(sk_color(paint.fill, paint.opacity));
    fill.anti_alias = true;
    fill.blend_mode = paint.blend;
    pixmap.fill_path(path, &fill, FillRule::Winding, Transform::identity(), None);
}
