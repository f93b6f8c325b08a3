//! Shaping: a string, a font chain and a size in, positioned glyphs out.
//!
//! Each character is drawn by the first face of the chain that has a glyph
//! for it (combining marks stay with their base character's face);
//! consecutive characters of one face form a run, shaped by rustybuzz with
//! the run's script and direction guessed from its text, so kerning,
//! ligatures, marks and right-to-left scripts come out right within a run.
//! Runs are laid out in logical order (no bidi reordering across runs).
//!
//! Results are cached per (chain, text) at the font's own units, so a name
//! that appears on many features is shaped once per worker; sizes scale the
//! cached result.

use std::collections::HashMap;

use rustybuzz::ttf_parser::GlyphId;
use rustybuzz::UnicodeBuffer;

use super::fonts::{FaceId, FontBook, FontChain};

/// One glyph of a shaped line, in pixels at the requested size, relative to
/// the line's start on its baseline (y grows downwards).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlacedGlyph {
    /// The face that draws it.
    pub face: FaceId,
    /// The glyph in that face.
    pub glyph: u16,
    /// Left edge of its advance box.
    pub x: f32,
    /// Offset from the baseline (marks), y down.
    pub y: f32,
    /// How far the pen moves after it.
    pub advance: f32,
    /// The byte offset in the text of the character it came from.
    pub cluster: u32,
    /// The top of its outline's box relative to the baseline, y down
    /// (negative above the baseline); 0 for a glyph without outline.
    pub top: f32,
    /// The bottom of its outline's box, y down.
    pub bottom: f32,
}

/// A line of shaped text at one size.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ShapedLine {
    /// The glyphs, left to right.
    pub glyphs: Vec<PlacedGlyph>,
    /// The pen's travel: the line's width.
    pub width: f32,
    /// Highest ascender of the faces used, above the baseline (positive).
    pub ascent: f32,
    /// Lowest descender below the baseline (positive).
    pub descent: f32,
    /// The font's line height (ascender - descender + line gap) of the
    /// tallest face used: the distance to the next line.
    pub line_height: f32,
    /// The tallest glyph's height (its box, top to bottom): Mapnik's height
    /// of a block's first line.
    pub max_glyph_height: f32,
    /// Characters no face of the chain has (drawn as the first face's
    /// `.notdef`).
    pub missing: usize,
}

/// A glyph in font units, as cached.
#[derive(Debug, Clone, Copy)]
struct UnitGlyph {
    face: FaceId,
    glyph: u16,
    /// In font units of its face, scaled to 1 em = 1.0.
    x: f32,
    y: f32,
    advance: f32,
    cluster: u32,
    top: f32,
    bottom: f32,
}

#[derive(Debug, Clone)]
struct UnitLine {
    glyphs: Vec<UnitGlyph>,
    width: f32,
    ascent: f32,
    descent: f32,
    line_height: f32,
    max_glyph_height: f32,
    missing: usize,
}

/// Shaping results kept between metatiles (one per worker), with counters.
#[derive(Debug, Default)]
pub struct ShapeCache {
    lines: HashMap<(FontChain, String), UnitLine>,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that shaped.
    pub misses: u64,
}

impl ShapeCache {
    /// Most lines kept; past it the cache starts again empty (names repeat
    /// within a map area, so a simple bound is enough).
    pub const MAX_LINES: usize = 50_000;

    /// Lines cached now.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// Shapes text with the faces of a [`FontBook`], parsing each face once per
/// shaper (make one per metatile; the cache outlives it).
pub struct Shaper<'b> {
    book: &'b FontBook,
    faces: HashMap<FaceId, Option<rustybuzz::Face<'b>>>,
}

impl std::fmt::Debug for Shaper<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shaper")
            .field("faces", &self.faces.len())
            .finish()
    }
}

impl<'b> Shaper<'b> {
    /// A shaper over `book`.
    pub fn new(book: &'b FontBook) -> Shaper<'b> {
        Shaper {
            book,
            faces: HashMap::new(),
        }
    }

    /// The parsed face, if its file can be read.
    pub fn face(&mut self, id: FaceId) -> Option<&rustybuzz::Face<'b>> {
        let book = self.book;
        self.faces
            .entry(id)
            .or_insert_with(|| {
                let (data, index) = book.data(id)?;
                rustybuzz::Face::from_slice(data, index)
            })
            .as_ref()
    }

    /// Shapes one line of `text` at `size` pixels per em.
    pub fn shape(
        &mut self,
        cache: &mut ShapeCache,
        chain: &FontChain,
        text: &str,
        size: f32,
    ) -> ShapedLine {
        let key = (chain.clone(), text.to_owned());
        let unit = if let Some(line) = cache.lines.get(&key) {
            cache.hits += 1;
            line.clone()
        } else {
            cache.misses += 1;
            let line = self.shape_units(chain, text);
            if cache.lines.len() >= ShapeCache::MAX_LINES {
                cache.lines.clear();
            }
            cache.lines.insert(key, line.clone());
            line
        };
        ShapedLine {
            glyphs: unit
                .glyphs
                .iter()
                .map(|g| PlacedGlyph {
                    face: g.face,
                    glyph: g.glyph,
                    x: g.x * size,
                    y: g.y * size,
                    advance: g.advance * size,
                    cluster: g.cluster,
                    top: g.top * size,
                    bottom: g.bottom * size,
                })
                .collect(),
            width: unit.width * size,
            ascent: unit.ascent * size,
            descent: unit.descent * size,
            line_height: unit.line_height * size,
            max_glyph_height: unit.max_glyph_height * size,
            missing: unit.missing,
        }
    }

    /// Which face of the chain draws each character: byte ranges of runs.
    fn itemize(&mut self, chain: &FontChain, text: &str) -> (Vec<(FaceId, usize, usize)>, usize) {
        let mut runs: Vec<(FaceId, usize, usize)> = Vec::new();
        let mut missing = 0;
        let Some(&first) = chain.faces().first() else {
            return (runs, text.chars().count());
        };
        for (at, c) in text.char_indices() {
            let end = at + c.len_utf8();
            // Marks and joiners stay in their base character's run.
            let continues = is_mark_or_joiner(c) && !runs.is_empty();
            let face = if continues {
                runs.last().map_or(first, |r| r.0)
            } else {
                let found = chain
                    .faces()
                    .iter()
                    .copied()
                    .find(|id| self.face(*id).is_some_and(|f| f.glyph_index(c).is_some()));
                if found.is_none() && !c.is_whitespace() && !c.is_control() {
                    missing += 1;
                }
                // Spaces and unknown characters keep the current run's face.
                found.unwrap_or_else(|| runs.last().map_or(first, |r| r.0))
            };
            match runs.last_mut() {
                Some(run) if run.0 == face => run.2 = end,
                _ => runs.push((face, at, end)),
            }
        }
        (runs, missing)
    }

    fn shape_units(&mut self, chain: &FontChain, text: &str) -> UnitLine {
        let (runs, missing) = self.itemize(chain, text);
        let mut line = UnitLine {
            glyphs: Vec::new(),
            width: 0.0,
            ascent: 0.0,
            descent: 0.0,
            line_height: 0.0,
            max_glyph_height: 0.0,
            missing,
        };
        for (face_id, start, end) in runs {
            let Some(face) = self.face(face_id) else {
                continue;
            };
            let upem = face.units_per_em() as f32;
            line.ascent = line.ascent.max(f32::from(face.ascender()) / upem);
            line.descent = line.descent.max(-f32::from(face.descender()) / upem);
            let gap = f32::from(face.line_gap());
            let height = f32::from(face.ascender()) - f32::from(face.descender()) + gap;
            line.line_height = line.line_height.max(height / upem);
            let mut buffer = UnicodeBuffer::new();
            buffer.push_str(&text[start..end]);
            buffer.guess_segment_properties();
            let shaped = rustybuzz::shape(face, &[], buffer);
            for (info, pos) in shaped.glyph_infos().iter().zip(shaped.glyph_positions()) {
                let (mut top, mut bottom) = (0.0, 0.0);
                if let Some(bbox) = face.glyph_bounding_box(GlyphId(info.glyph_id as u16)) {
                    let h = f32::from(bbox.y_max) - f32::from(bbox.y_min);
                    line.max_glyph_height = line.max_glyph_height.max(h / upem);
                    top = -f32::from(bbox.y_max) / upem;
                    bottom = -f32::from(bbox.y_min) / upem;
                }
                line.glyphs.push(UnitGlyph {
                    face: face_id,
                    glyph: GlyphId(info.glyph_id as u16).0,
                    x: line.width + pos.x_offset as f32 / upem,
                    y: -(pos.y_offset as f32) / upem,
                    advance: pos.x_advance as f32 / upem,
                    cluster: start as u32 + info.cluster,
                    top: top - pos.y_offset as f32 / upem,
                    bottom: bottom - pos.y_offset as f32 / upem,
                });
                line.width += pos.x_advance as f32 / upem;
            }
        }
        line
    }
}

/// Combining marks, variation selectors and zero-width joiners: drawn with
/// the character before them.
fn is_mark_or_joiner(c: char) -> bool {
    matches!(c as u32,
        0x0300..=0x036F   // combining diacritical marks
        | 0x1AB0..=0x1AFF
        | 0x1DC0..=0x1DFF
        | 0x20D0..=0x20FF
        | 0xFE20..=0xFE2F
        | 0xFE00..=0xFE0F // variation selectors
        | 0x200C | 0x200D // ZWNJ, ZWJ
        | 0x3099 | 0x309A // kana voiced marks
        | 0x0591..=0x05C7 // Hebrew points
        | 0x064B..=0x065F // Arabic harakat
        | 0x0670
    )
}
