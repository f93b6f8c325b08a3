//! Glyph outlines as tiny-skia paths, so text is antialiased exactly like
//! the map's geometry, and halos are the same outline stroked.
//!
//! Outlines are cached per (face, glyph) in em units (1 em = 1.0, y down);
//! drawing scales them to the label's size. The cache belongs to one worker
//! and keeps what it has made for the worker's life (a map uses a few
//! thousand glyphs at most); its counters measure it.

use std::collections::HashMap;

use rustybuzz::ttf_parser::{GlyphId, OutlineBuilder};
use tiny_skia::{Path, PathBuilder};

use super::fonts::FaceId;
use super::shape::Shaper;

/// Glyph outlines made so far, with counters.
#[derive(Debug, Default)]
pub struct GlyphCache {
    paths: HashMap<(FaceId, u16), Option<Path>>,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Outlines made.
    pub misses: u64,
}

impl GlyphCache {
    /// The outline of `glyph` in em units (y down), or `None` for a glyph
    /// without one (a space).
    pub(crate) fn outline(
        &mut self,
        shaper: &mut Shaper<'_>,
        face: FaceId,
        glyph: u16,
    ) -> Option<&Path> {
        if self.paths.contains_key(&(face, glyph)) {
            self.hits += 1;
        } else {
            self.misses += 1;
            let path = shaper.face(face).and_then(|f| {
                let scale = 1.0 / f.units_per_em() as f32;
                let mut builder = EmPath {
                    builder: PathBuilder::new(),
                    scale,
                };
                f.outline_glyph(GlyphId(glyph), &mut builder)?;
                builder.builder.finish()
            });
            self.paths.insert((face, glyph), path);
        }
        self.paths.get(&(face, glyph)).and_then(Option::as_ref)
    }

    /// Outlines cached now.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

/// Font units (y up) into em units (y down).
struct EmPath {
    builder: PathBuilder,
    scale: f32,
}

impl OutlineBuilder for EmPath {
    fn move_to(&mut self, x: f32, y: f32) {
        self.builder.move_to(x * self.scale, -y * self.scale);
    }
    fn line_to(&mut self, x: f32, y: f32) {
        self.builder.line_to(x * self.scale, -y * self.scale);
    }
    fn quad_to(&mut self, x1: f32, y1: f32, x: f32, y: f32) {
        let s = self.scale;
        self.builder.quad_to(x1 * s, -y1 * s, x * s, -y * s);
    }
    fn curve_to(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, x: f32, y: f32) {
        let s = self.scale;
        self.builder
            .cubic_to(x1 * s, -y1 * s, x2 * s, -y2 * s, x * s, -y * s);
    }
    fn close(&mut self) {
        self.builder.close();
    }
}
