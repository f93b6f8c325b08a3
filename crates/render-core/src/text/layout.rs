//! Laying out a label's text as Mapnik does (`text_layout`): lines broken
//! at `wrap-width`, each line shaped on its own, a block whose first line is
//! as tall as its tallest glyph and whose other lines are the font's line
//! height plus `line-spacing`, aligned around a centre point displaced by
//! `dx`/`dy`.
//!
//! Coordinates are pixels, y down; the block's centre is (0, 0) before the
//! displacement is applied.

use super::fonts::FontChain;
use super::shape::{ShapeCache, ShapedLine, Shaper};

/// Horizontal alignment of the block around its anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HAlign {
    /// The block ends at the anchor.
    Left,
    /// Centred.
    Middle,
    /// The block starts at the anchor.
    Right,
    /// From the sign of `dx` (Mapnik's default).
    #[default]
    Auto,
}

/// Vertical alignment of the block around its anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VAlign {
    /// The block is above the anchor.
    Top,
    /// Centred.
    Middle,
    /// The block is below the anchor.
    Bottom,
    /// From the sign of `dy` (Mapnik's default).
    #[default]
    Auto,
}

/// How lines of a block are aligned with each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Justify {
    /// Left edges aligned.
    Left,
    /// Centred.
    Center,
    /// Right edges aligned.
    Right,
    /// From the sign of `dx` (Mapnik's default).
    #[default]
    Auto,
}

/// What a layout needs, in pixels (already multiplied by the scale factor
/// where Mapnik multiplies).
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutParams {
    /// Pixels per em.
    pub size: f32,
    /// Added to every line but the first.
    pub line_spacing: f32,
    /// Added between glyphs that advance.
    pub character_spacing: f32,
    /// Lines longer than this are broken; 0 never.
    pub wrap_width: f32,
    /// Break only at this character instead of at word boundaries.
    pub wrap_char: Option<char>,
    /// Break before the word that passes the width instead of after it.
    pub wrap_before: bool,
    /// Displacement of the block's centre.
    pub dx: f32,
    /// Displacement of the block's centre, y down.
    pub dy: f32,
    /// Alignment of the block.
    pub halign: HAlign,
    /// Alignment of the block.
    pub valign: VAlign,
    /// Alignment of the lines.
    pub justify: Justify,
}

/// One line of a block, its glyphs' x already including character spacing
/// and justification, relative to the block's centre.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockLine {
    /// The shaped glyphs (x relative to the line's start).
    pub shaped: ShapedLine,
    /// Left edge of the line relative to the block's centre.
    pub x: f32,
    /// Baseline relative to the block's centre, y down.
    pub baseline: f32,
    /// Width with character spacing.
    pub width: f32,
    /// The x of each glyph relative to the line start, with spacing.
    pub glyph_x: Vec<f32>,
}

/// A laid-out label.
#[derive(Debug, Clone, PartialEq)]
pub struct TextBlock {
    /// Its lines, top to bottom.
    pub lines: Vec<BlockLine>,
    /// The widest line.
    pub width: f32,
    /// The block's height (first line: its tallest glyph).
    pub height: f32,
    /// Where the block's centre is relative to the anchor (displacement
    /// plus alignment).
    pub offset: (f32, f32),
    /// Characters no face had.
    pub missing: usize,
}

impl TextBlock {
    /// The block's box relative to the anchor: (x0, y0, x1, y1), y down.
    pub fn bbox(&self) -> (f32, f32, f32, f32) {
        let (cx, cy) = self.offset;
        (
            cx - self.width / 2.0,
            cy - self.height / 2.0,
            cx + self.width / 2.0,
            cy + self.height / 2.0,
        )
    }

    /// Whether it has nothing to draw.
    pub fn is_empty(&self) -> bool {
        self.lines.iter().all(|l| l.shaped.glyphs.is_empty())
    }
}

/// Lays out `text` (already transformed: upper case etc.).
pub fn layout(
    shaper: &mut Shaper<'_>,
    cache: &mut ShapeCache,
    chain: &FontChain,
    text: &str,
    params: &LayoutParams,
) -> TextBlock {
    let mut pieces: Vec<ShapedLine> = Vec::new();
    for paragraph in text.split('\n') {
        for piece in break_paragraph(shaper, cache, chain, paragraph, params) {
            pieces.push(shaper.shape(cache, chain, &piece, params.size));
        }
    }
    let mut lines = Vec::with_capacity(pieces.len());
    let mut heights = Vec::with_capacity(pieces.len());
    let mut width: f32 = 0.0;
    let mut missing = 0;
    for (i, shaped) in pieces.into_iter().enumerate() {
        missing += shaped.missing;
        let mut glyph_x = Vec::with_capacity(shaped.glyphs.len());
        let mut extra = 0.0;
        for (k, g) in shaped.glyphs.iter().enumerate() {
            if k > 0 && g.advance > 0.0 {
                extra += params.character_spacing;
            }
            glyph_x.push(g.x + extra);
        }
        let line_width = shaped.width + extra;
        width = width.max(line_width);
        // Mapnik adds `line-spacing` to a line's height per glyph
        // (`text_line::add_glyph`), so a line without glyphs is 0 px tall:
        // osm-carto's `name || E'\n' || ...` leaves a trailing empty line
        // that must not move the block by half the (negative) spacing.
        let height = if i == 0 {
            shaped.max_glyph_height
        } else if shaped.glyphs.is_empty() {
            0.0
        } else {
            shaped.line_height + params.line_spacing
        };
        heights.push(height);
        lines.push(BlockLine {
            shaped,
            x: 0.0,
            baseline: 0.0,
            width: line_width,
            glyph_x,
        });
    }
    let height: f32 = heights.iter().sum();
    // Mapnik's automatic alignments follow the displacement's sign.
    let (dx, dy) = (params.dx, params.dy);
    fn sign<T>(v: f32, neg: T, zero: T, pos: T) -> T {
        if v > 0.0 {
            pos
        } else if v < 0.0 {
            neg
        } else {
            zero
        }
    }
    let valign = match params.valign {
        VAlign::Auto => sign(dy, VAlign::Top, VAlign::Middle, VAlign::Bottom),
        v => v,
    };
    let halign = match params.halign {
        HAlign::Auto => sign(dx, HAlign::Left, HAlign::Middle, HAlign::Right),
        h => h,
    };
    let justify = match params.justify {
        Justify::Auto => sign(dx, Justify::Right, Justify::Center, Justify::Left),
        j => j,
    };
    let offset_y = dy
        + match valign {
            VAlign::Top => -0.5 * height,
            VAlign::Bottom => 0.5 * height,
            _ => 0.0,
        };
    let offset_x = dx
        + match halign {
            HAlign::Left => -0.5 * width,
            HAlign::Right => 0.5 * width,
            _ => 0.0,
        };
    // Baselines: the first at the top plus its height, then line by line.
    let mut y = -height / 2.0;
    for (line, h) in lines.iter_mut().zip(&heights) {
        y += h;
        line.baseline = y;
        line.x = match justify {
            Justify::Left => -width / 2.0,
            Justify::Right => width / 2.0 - line.width,
            _ => -line.width / 2.0,
        };
    }
    TextBlock {
        lines,
        width,
        height,
        offset: (offset_x, offset_y),
        missing,
    }
}

/// Splits a paragraph where Mapnik's line breaker would, once its width
/// passes `wrap_width`. Break opportunities: after a run of spaces (the
/// spaces end the line), and around CJK characters; or, with a wrap
/// character, after each one of it.
fn break_paragraph(
    shaper: &mut Shaper<'_>,
    cache: &mut ShapeCache,
    chain: &FontChain,
    paragraph: &str,
    params: &LayoutParams,
) -> Vec<String> {
    if params.wrap_width <= 0.0 {
        return vec![paragraph.to_owned()];
    }
    let whole = shaper.shape(cache, chain, paragraph, params.size);
    if whole.width < params.wrap_width {
        return vec![paragraph.to_owned()];
    }
    // The width each character contributes (its cluster's advances).
    let mut widths: Vec<(usize, f32)> = paragraph.char_indices().map(|(i, _)| (i, 0.0)).collect();
    for g in &whole.glyphs {
        if let Ok(k) = widths.binary_search_by_key(&(g.cluster as usize), |w| w.0) {
            widths[k].1 += g.advance;
        }
    }
    let breaks = break_opportunities(paragraph, params.wrap_char);
    let following = |at: usize| breaks.iter().copied().find(|&b| b > at);
    let preceding = |at: usize| breaks.iter().copied().rev().find(|&b| b < at);
    let mut lines = Vec::new();
    let mut last = 0usize;
    let mut length = 0.0;
    let mut k = 0;
    while k < widths.len() {
        let (at, w) = widths[k];
        length += w;
        if length <= params.wrap_width {
            k += 1;
            continue;
        }
        let end_of_char = paragraph[at..]
            .chars()
            .next()
            .map_or(at, |c| at + c.len_utf8());
        let mut position = if params.wrap_before {
            preceding(end_of_char)
        } else {
            following(at)
        };
        if position.is_none_or(|p| p <= last) {
            position = following(at);
        }
        let position = position.unwrap_or(paragraph.len()).min(paragraph.len());
        let line_end = if params.wrap_char.is_none() && paragraph[..position].ends_with(' ') {
            position - 1
        } else {
            position
        };
        lines.push(paragraph[last..line_end].to_owned());
        last = position;
        length = 0.0;
        // Continue with the first character of the next line.
        k = widths.partition_point(|w| w.0 < position);
    }
    if last < paragraph.len() || lines.is_empty() {
        lines.push(paragraph[last..].to_owned());
    }
    lines
}

/// Byte offsets where a new line may start.
fn break_opportunities(text: &str, wrap_char: Option<char>) -> Vec<usize> {
    let mut out = Vec::new();
    let mut previous: Option<char> = None;
    for (i, c) in text.char_indices() {
        if let Some(p) = previous {
            let allowed = match wrap_char {
                Some(w) => p == w,
                None => (p == ' ' && c != ' ') || is_cjk(p) || is_cjk(c),
            };
            if allowed {
                out.push(i);
            }
        }
        previous = Some(c);
    }
    out.push(text.len());
    out
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0xAC00..=0xD7AF)
}
