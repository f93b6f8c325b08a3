//! The image cache: PNG and SVG files that styles draw (marker and point
//! icons, pattern tiles, shields), decoded once per worker, and their
//! rasters ("sprites") made once per (file, size and transform, paint
//! override, opacity).
//!
//! Contract:
//! - A path in, an image or a clear [`ImageError`] out. PNG through the
//!   png crate, SVG (by the `.svg` extension, as Mapnik decides) through
//!   usvg ([`svg`]). The style loader calls [`check`] on every constant
//!   path, so a missing or broken file is a load error; at render time a
//!   file that cannot be used (a path from a data field, or a sprite too
//!   large at this scale factor) is logged once and not drawn.
//! - Nothing is decoded or rasterised larger than [`MAX_IMAGE_SIDE`]
//!   pixels a side: a 100 000 × 100 000 px SVG is an error, not an
//!   out-of-memory.
//! - Sprites follow Mapnik's pixel snapping: Mapnik rounds the translation
//!   of a file marker's transform to whole pixels, so a marker drawn from
//!   a raster made once is pixel for pixel the marker drawn from the
//!   vector each time. Only markers that turn with a line are painted from
//!   the vector each time.

mod png;
pub mod svg;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tiny_skia::{BlendMode, FilterQuality, Pixmap, PixmapMut, PixmapPaint, Transform};

use crate::style::symbolizer::{Affine, PaintOverride};

/// The largest image side, in pixels, that is ever decoded or rasterised.
pub const MAX_IMAGE_SIDE: u32 = 2048;

/// Why an image cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file could not be read.
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    /// It is not a PNG this loader decodes.
    #[error("not a PNG that can be decoded: {0}")]
    Decode(String),
    /// An SVG that usvg cannot read, with usvg's reason.
    #[error("not an SVG that can be read: {0}")]
    Svg(String),
    /// An SVG that names another file.
    #[error(
        "the SVG references the external file `{0}`; symbols must be self-contained \
         (tessera never reads files a style does not name)"
    )]
    ExternalReference(String),
    /// Zero or impossible size.
    #[error("an image of {0}x{1} pixels cannot be drawn")]
    Size(u32, u32),
    /// Larger than [`MAX_IMAGE_SIDE`].
    #[error(
        "it would be drawn at {width:.0}x{height:.0} pixels; images may have at most \
         {MAX_IMAGE_SIDE} pixels a side (give the symbolizer a smaller width/height or transform)"
    )]
    TooLarge {
        /// Width in pixels.
        width: f64,
        /// Height in pixels.
        height: f64,
    },
}

/// A decoded file.
#[derive(Debug, Clone)]
pub(crate) enum Symbol {
    /// A PNG, premultiplied.
    Raster(Arc<Pixmap>),
    /// An SVG.
    Vector(Arc<svg::VectorImage>),
}

/// What the style loader learns of a file: its extent, as Mapnik measures
/// it (the pixel size of a PNG; the bounding box of an SVG's geometry).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageInfo {
    /// Width in pixels.
    pub width: f64,
    /// Height in pixels.
    pub height: f64,
}

fn is_svg(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"))
}

/// Decodes `path`, PNG or SVG.
pub(crate) fn load(path: &Path) -> Result<Symbol, ImageError> {
    if is_svg(path) {
        Ok(Symbol::Vector(Arc::new(svg::load(path)?)))
    } else {
        Ok(Symbol::Raster(Arc::new(png::load(path)?)))
    }
}

/// Checks that `path` is an image that can be drawn (the style loader's
/// check) and returns its extent.
pub fn check(path: &Path) -> Result<ImageInfo, ImageError> {
    let symbol = load(path)?;
    let [x0, y0, x1, y1] = symbol.bbox();
    Ok(ImageInfo {
        width: x1 - x0,
        height: y1 - y0,
    })
}

impl Symbol {
    /// Mapnik's bounding box of the image, in its own pixels: what markers
    /// are centred on and scaled against.
    pub(crate) fn bbox(&self) -> [f64; 4] {
        match self {
            Symbol::Raster(p) => [0.0, 0.0, f64::from(p.width()), f64::from(p.height())],
            Symbol::Vector(v) => v.bbox,
        }
    }

    /// The extent of everything drawn, strokes included.
    fn ink(&self) -> [f64; 4] {
        match self {
            Symbol::Raster(_) => self.bbox(),
            Symbol::Vector(v) => v.ink,
        }
    }

    /// Draws the image with `transform` (from its pixels to the target's).
    pub(crate) fn draw(
        &self,
        target: &mut PixmapMut<'_>,
        transform: Transform,
        over: &PaintOverride,
        opacity: f32,
        blend: BlendMode,
    ) {
        match self {
            Symbol::Vector(v) => v.paint(target, transform, over, opacity, blend),
            Symbol::Raster(p) => {
                let exact = transform.sx == 1.0
                    && transform.sy == 1.0
                    && transform.kx == 0.0
                    && transform.ky == 0.0
                    && transform.tx.fract() == 0.0
                    && transform.ty.fract() == 0.0;
                let paint = PixmapPaint {
                    opacity,
                    blend_mode: blend,
                    quality: if exact {
                        FilterQuality::Nearest
                    } else {
                        FilterQuality::Bilinear
                    },
                };
                target.draw_pixmap(0, 0, p.as_ref().as_ref(), &paint, transform, None);
            }
        }
    }
}

/// A raster of an image under a fixed linear transform, ready to be
/// copied at whole-pixel positions.
#[derive(Debug)]
pub(crate) struct Sprite {
    pub(crate) pixmap: Pixmap,
    /// Where the sprite's top-left pixel lies relative to the (whole-pixel)
    /// translation of the transform it was made for.
    pub(crate) offset: (i32, i32),
}

/// How a sprite is asked for: the linear part of the transform (`a b c
/// d`), the paint override and the opacity, as bits.
type SpriteKey = (PathBuf, [u64; 4], [u64; 5], u64);

/// Decoded images and sprites of one worker, with counters.
#[derive(Debug, Default)]
pub struct ImageCache {
    images: HashMap<PathBuf, Option<Symbol>>,
    sprites: HashMap<SpriteKey, Option<Arc<Sprite>>>,
    tiles: HashMap<(PathBuf, [u64; 4]), Option<Arc<Pixmap>>>,
    /// File lookups answered from the cache.
    pub hits: u64,
    /// Files decoded (or found unreadable).
    pub misses: u64,
    /// Sprite lookups answered from the cache.
    pub sprite_hits: u64,
    /// Sprites rasterised (or found impossible).
    pub sprite_misses: u64,
}

impl ImageCache {
    /// The image at `path`, decoded once; `None` (with one warning) when
    /// it cannot be used.
    pub(crate) fn symbol(&mut self, path: &Path) -> Option<Symbol> {
        if let Some(found) = self.images.get(path) {
            self.hits += 1;
            return found.clone();
        }
        self.misses += 1;
        let image = match load(path) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(path = %path.display(), "image not drawn: {e}");
                None
            }
        };
        self.images.insert(path.to_path_buf(), image.clone());
        image
    }

    /// The raster of `path` under the linear transform `linear` (its
    /// translation is ignored), painted with `over` at `opacity`.
    pub(crate) fn sprite(
        &mut self,
        path: &Path,
        linear: &Affine,
        over: &PaintOverride,
        opacity: f64,
    ) -> Option<Arc<Sprite>> {
        let [a, b, c, d, _, _] = linear.0;
        let key: SpriteKey = (
            path.to_path_buf(),
            [a.to_bits(), b.to_bits(), c.to_bits(), d.to_bits()],
            over.key(),
            opacity.to_bits(),
        );
        if let Some(found) = self.sprites.get(&key) {
            self.sprite_hits += 1;
            return found.clone();
        }
        self.sprite_misses += 1;
        let sprite = self.symbol(path).and_then(|symbol| {
            match make_sprite(&symbol, linear, over, opacity) {
                Ok(s) => Some(Arc::new(s)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "image not drawn: {e}");
                    None
                }
            }
        });
        self.sprites.insert(key, sprite.clone());
        sprite
    }

    /// The tile of a pattern: the image under the linear transform
    /// `linear`, cut to its bounding box (Mapnik's `render_pattern`: an
    /// SVG's strokes beyond its geometry's box are cut too).
    pub(crate) fn tile(&mut self, path: &Path, linear: &Affine) -> Option<Arc<Pixmap>> {
        let [a, b, c, d, _, _] = linear.0;
        let key = (
            path.to_path_buf(),
            [a.to_bits(), b.to_bits(), c.to_bits(), d.to_bits()],
        );
        if let Some(found) = self.tiles.get(&key) {
            self.sprite_hits += 1;
            return found.clone();
        }
        self.sprite_misses += 1;
        let tile = self.symbol(path).and_then(|symbol| {
            match make_tile(&symbol, &Affine([a, b, c, d, 0.0, 0.0])) {
                Ok(t) => Some(Arc::new(t)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "pattern not drawn: {e}");
                    None
                }
            }
        });
        self.tiles.insert(key, tile.clone());
        tile
    }

    /// The image at `path` as pixels at its own size (shields).
    pub(crate) fn raster(&mut self, path: &Path) -> Option<Arc<Pixmap>> {
        match self.symbol(path)? {
            Symbol::Raster(p) => Some(p),
            Symbol::Vector(_) => {
                let sprite =
                    self.sprite(path, &Affine::IDENTITY, &PaintOverride::default(), 1.0)?;
                Some(Arc::new(sprite.pixmap.clone()))
            }
        }
    }

    /// Files cached now (readable or not).
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

/// How [`draw_marker`] draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A raster made once per (file, transform, paint, opacity) and copied
    /// (what the renderer does for markers that do not turn).
    Cache,
    /// Painted from the vector every time (markers turned with a line).
    Vector,
}

/// Draws one marker image centred on `at` (Mapnik's whole-pixel snapping)
/// into a transparent `size` image and returns its premultiplied RGBA
/// pixels: the renderer's marker drawing alone, for benchmarks and
/// previews. `None` when the file cannot be used.
pub fn draw_marker(
    cache: &mut ImageCache,
    file: &Path,
    over: &PaintOverride,
    scale: f64,
    size: (u32, u32),
    at: (f64, f64),
    via: Via,
) -> Option<Vec<u8>> {
    let symbol = cache.symbol(file)?;
    let [x0, y0, x1, y1] = symbol.bbox();
    let (cx, cy) = ((x0 + x1) / 2.0 * scale, (y0 + y1) / 2.0 * scale);
    let (tx, ty) = ((at.0 - cx + 0.5).floor(), (at.1 - cy + 0.5).floor());
    let mut target = Pixmap::new(size.0, size.1)?;
    let linear = Affine([scale, 0.0, 0.0, scale, tx, ty]);
    match via {
        Via::Cache => {
            let sprite = cache.sprite(file, &linear, over, 1.0)?;
            target.draw_pixmap(
                tx as i32 + sprite.offset.0,
                ty as i32 + sprite.offset.1,
                sprite.pixmap.as_ref(),
                &PixmapPaint::default(),
                Transform::identity(),
                None,
            );
        }
        Via::Vector => symbol.draw(
            &mut target.as_mut(),
            sk_transform(&linear),
            over,
            1.0,
            BlendMode::SourceOver,
        ),
    }
    Some(target.take())
}

/// Tiny-skia's transform of an [`Affine`].
pub(crate) fn sk_transform(t: &Affine) -> Transform {
    let [a, b, c, d, e, f] = t.0;
    Transform::from_row(a as f32, b as f32, c as f32, d as f32, e as f32, f as f32)
}

fn make_sprite(
    symbol: &Symbol,
    linear: &Affine,
    over: &PaintOverride,
    opacity: f64,
) -> Result<Sprite, ImageError> {
    let [a, b, c, d, _, _] = linear.0;
    let linear = Affine([a, b, c, d, 0.0, 0.0]);
    let [x0, y0, x1, y1] = symbol.ink();
    // An overriding stroke may be wider than the file's own.
    let scale = (a * a + b * b).sqrt().max((c * c + d * d).sqrt());
    let pad = 1.0 + over.stroke_width.map_or(0.0, |w| w * scale / 2.0);
    let [min_x, min_y, max_x, max_y] = linear.bounds([x0, y0, x1, y1]);
    let (min_x, min_y, max_x, max_y) = (min_x - pad, min_y - pad, max_x + pad, max_y + pad);
    let (left, top) = (min_x.floor(), min_y.floor());
    let (width, height) = (max_x.ceil() - left, max_y.ceil() - top);
    let mut pixmap = bounded_pixmap(width, height)?;
    let shifted = Affine([a, b, c, d, -left, -top]);
    symbol.draw(
        &mut pixmap.as_mut(),
        sk_transform(&shifted),
        over,
        opacity.clamp(0.0, 1.0) as f32,
        BlendMode::SourceOver,
    );
    Ok(Sprite {
        pixmap,
        offset: (left as i32, top as i32),
    })
}

/// A transparent pixmap of a size, refused above [`MAX_IMAGE_SIDE`].
fn bounded_pixmap(width: f64, height: f64) -> Result<Pixmap, ImageError> {
    if !(width.is_finite() && height.is_finite())
        || width > f64::from(MAX_IMAGE_SIDE)
        || height > f64::from(MAX_IMAGE_SIDE)
    {
        return Err(ImageError::TooLarge { width, height });
    }
    let (w, h) = (width.max(1.0) as u32, height.max(1.0) as u32);
    Pixmap::new(w, h).ok_or(ImageError::Size(w, h))
}

fn make_tile(symbol: &Symbol, linear: &Affine) -> Result<Pixmap, ImageError> {
    if let (Symbol::Raster(p), true) = (symbol, *linear == Affine::IDENTITY) {
        return Ok(p.as_ref().clone());
    }
    let [x0, y0, x1, y1] = symbol.bbox();
    let [min_x, min_y, max_x, max_y] = linear.bounds([x0, y0, x1, y1]);
    // Mapnik makes an image of the box's size, truncated.
    let (width, height) = ((max_x - min_x).trunc(), (max_y - min_y).trunc());
    let mut pixmap = bounded_pixmap(width, height)?;
    let [a, b, c, d, _, _] = linear.0;
    let shifted = Affine([a, b, c, d, -min_x, -min_y]);
    symbol.draw(
        &mut pixmap.as_mut(),
        sk_transform(&shifted),
        &PaintOverride::default(),
        1.0,
        BlendMode::SourceOver,
    );
    Ok(pixmap)
}

#[cfg(test)]
mod tests;
