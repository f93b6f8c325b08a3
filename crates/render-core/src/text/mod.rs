//! Text: fonts, shaping and glyph outlines. It knows nothing of Mapnik
//! XML; it takes face names, strings, sizes and colours.
//!
//! Contract:
//! - [`FontBook`] (one per map, shared read-only by the workers) finds
//!   faces by Mapnik's names ("DejaVu Sans Book") among the system's fonts
//!   and a style's `font-directory`, and builds [`FontChain`]s: a fontset's
//!   faces in order, tried per character.
//! - [`Shaper`] (one per metatile, borrowing the book) shapes a line with
//!   rustybuzz, run by run, falling back through the chain per character.
//!   Its results are cached per worker in a [`ShapeCache`].
//! - Glyph outlines are tiny-skia paths cached per worker in a
//!   [`GlyphCache`]; [`TextCaches`] holds both caches and their counters.
//! - `paint` (crate-internal) draws a shaped line as Mapnik does: the halo
//!   is the glyph outlines stroked (width 2 × radius, round joins) under the
//!   fill.
//!
//! What it does not do yet: bidi reordering across runs of different
//! direction in one line (each run is shaped in its own direction), hinting
//! (Mapnik hints with FreeType; we draw unhinted outlines).

mod fonts;
mod layout;
mod outline;
pub(crate) mod paint;
mod shape;

pub use fonts::{FaceId, FontBook, FontChain};
pub use layout::{layout, BlockLine, HAlign, Justify, LayoutParams, TextBlock, VAlign};
pub use outline::GlyphCache;
pub use shape::{PlacedGlyph, ShapeCache, ShapedLine, Shaper};

/// A worker's text caches, kept from metatile to metatile.
#[derive(Debug, Default)]
pub struct TextCaches {
    /// Shaped lines.
    pub shapes: ShapeCache,
    /// Glyph outlines.
    pub glyphs: GlyphCache,
}

#[cfg(test)]
mod tests;

/// How [`draw_line`] draws. Colours are straight (not premultiplied) RGBA.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LineStyle {
    /// Pixels per em (Mapnik's `size`).
    pub size: f32,
    /// The glyphs' colour.
    pub fill: [u8; 4],
    /// Halo radius in pixels; 0 for none.
    pub halo_radius: f32,
    /// The halo's colour.
    pub halo_fill: [u8; 4],
    /// Multiplies both alphas.
    pub opacity: f32,
}

/// One line of text drawn alone on a transparent image of `width` ×
/// `height`, its baseline starting at (`x`, `y`): the text engine on its own,
/// for tests, benchmarks and previews. Returns straight RGBA pixels, or
/// `None` for an impossible size.
#[allow(clippy::too_many_arguments)]
pub fn draw_line(
    book: &FontBook,
    caches: &mut TextCaches,
    chain: &FontChain,
    text: &str,
    style: &LineStyle,
    (width, height): (u32, u32),
    (x, y): (f32, f32),
) -> Option<Vec<u8>> {
    let mut pixmap = tiny_skia::Pixmap::new(width, height)?;
    let mut shaper = Shaper::new(book);
    let line = shaper.shape(&mut caches.shapes, chain, text, style.size);
    if let Some(path) = paint::line_path(&mut shaper, &mut caches.glyphs, &line, style.size, x, y) {
        let text_paint = paint::TextPaint {
            fill: style.fill,
            halo_radius: style.halo_radius,
            halo_fill: style.halo_fill,
            opacity: style.opacity,
            blend: tiny_skia::BlendMode::SourceOver,
            halo_blend: tiny_skia::BlendMode::SourceOver,
        };
        paint::draw_text_path(&mut pixmap, &path, &text_paint);
    }
    Some(
        pixmap
            .pixels()
            .iter()
            .flat_map(|p| {
                let c = p.demultiply();
                [c.red(), c.green(), c.blue(), c.alpha()]
            })
            .collect(),
    )
}
