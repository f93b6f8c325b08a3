//! Images that styles draw (shields now; icons and patterns with issue
//! #10): files decoded once into premultiplied pixmaps and kept per worker.
//!
//! Contract: a path in, an image or a clear error out. PNG only for now
//! (the png crate); SVG is refused by the style loader until its loader
//! lands. The cache counts what it saves; a file that cannot be read is
//! remembered as such (one warning, not one per feature).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tiny_skia::Pixmap;

/// Why an image cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file could not be read.
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    /// It is not a PNG this loader decodes.
    #[error("not a PNG that can be decoded: {0}")]
    Decode(String),
    /// Zero or impossible size.
    #[error("an image of {0}x{1} pixels cannot be drawn")]
    Size(u32, u32),
}

/// Checks that `path` is a PNG that decodes (the style loader's check).
pub fn check_png(path: &Path) -> Result<(), ImageError> {
    load_png(path).map(|_| ())
}

/// Decodes a PNG file into a premultiplied pixmap.
pub(crate) fn load_png(path: &Path) -> Result<Pixmap, ImageError> {
    let bytes = std::fs::read(path)?;
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .map_err(|e| ImageError::Decode(e.to_string()))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| ImageError::Decode("image too large".into()))?;
    let mut buf = vec![0; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| ImageError::Decode(e.to_string()))?;
    let (w, h) = (info.width, info.height);
    let mut pixmap = Pixmap::new(w, h).ok_or(ImageError::Size(w, h))?;
    let rgba: Vec<[u8; 4]> = match info.color_type {
        png::ColorType::Rgba => buf
            .chunks_exact(4)
            .map(|p| [p[0], p[1], p[2], p[3]])
            .collect(),
        png::ColorType::Rgb => buf
            .chunks_exact(3)
            .map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        png::ColorType::GrayscaleAlpha => buf
            .chunks_exact(2)
            .map(|p| [p[0], p[0], p[0], p[1]])
            .collect(),
        png::ColorType::Grayscale => buf.iter().map(|&g| [g, g, g, 255]).collect(),
        png::ColorType::Indexed => {
            return Err(ImageError::Decode("palette not expanded".into()));
        }
    };
    for (dst, [r, g, b, a]) in pixmap.pixels_mut().iter_mut().zip(rgba) {
        let c = tiny_skia::ColorU8::from_rgba(r, g, b, a);
        *dst = c.premultiply();
    }
    Ok(pixmap)
}

/// Decoded images of one worker, with counters.
#[derive(Debug, Default)]
pub struct ImageCache {
    images: HashMap<PathBuf, Option<Arc<Pixmap>>>,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Files decoded (or found unreadable).
    pub misses: u64,
}

impl ImageCache {
    /// The image at `path`, decoded once; `None` (with one warning) when
    /// it cannot be read.
    pub(crate) fn get(&mut self, path: &Path) -> Option<Arc<Pixmap>> {
        if let Some(found) = self.images.get(path) {
            self.hits += 1;
            return found.clone();
        }
        self.misses += 1;
        let image = match load_png(path) {
            Ok(p) => Some(Arc::new(p)),
            Err(e) => {
                tracing::warn!(path = %path.display(), "image not drawn: {e}");
                None
            }
        };
        self.images.insert(path.to_path_buf(), image.clone());
        image
    }

    /// Images cached now (readable or not).
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}
