//! PNG files decoded into premultiplied pixmaps (the png crate).

use std::path::Path;

use tiny_skia::Pixmap;

use super::{ImageError, MAX_IMAGE_SIDE};

/// Decodes a PNG file into a premultiplied pixmap.
pub(crate) fn load(path: &Path) -> Result<Pixmap, ImageError> {
    let bytes = std::fs::read(path)?;
    decode(&bytes)
}

/// Decodes PNG bytes into a premultiplied pixmap. The size is checked
/// from the header, before any pixel memory is allocated.
pub(crate) fn decode(bytes: &[u8]) -> Result<Pixmap, ImageError> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let header = decoder
        .read_header_info()
        .map_err(|e| ImageError::Decode(e.to_string()))?;
    let (w, h) = (header.width, header.height);
    if w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE {
        return Err(ImageError::TooLarge {
            width: f64::from(w),
            height: f64::from(h),
        });
    }
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
        *dst = tiny_skia::ColorU8::from_rgba(r, g, b, a).premultiply();
    }
    Ok(pixmap)
}
