//! PNG encoding of rendered tiles: 32-bit RGBA, or an 8-bit (or smaller)
//! palette.
//!
//! - Input is premultiplied RGBA, as drawn; it is demultiplied here, since
//!   PNG stores straight alpha.
//! - **Palette (`png8`).** A tile with at most 256 colours gets an exact
//!   palette, so nothing is lost. Otherwise its distinct colours are
//!   clustered ([`palette`]). Palettes of up to 2, 4 or 16 colours are written
//!   with 1, 2 or 4 bits per pixel, which keeps flat tiles tiny.
//! - **Speed.** 32-bit tiles: fdeflate's fast mode with adaptive row
//!   filters, several times faster than zlib's default level for a few
//!   percent more bytes. Palette tiles: zlib level 4 and no row filter
//!   ([`Compression::Fast`]), which keeps `png8` no larger than Mapnik's
//!   `png256` (fdeflate would make them ~45% larger).
//! - **Single-colour tiles** (open sea, inland) are the most common tiles of
//!   all; [`TileEncoder`] encodes each colour once and hands out the same
//!   bytes after that.

mod palette;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The output format of a tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TileFormat {
    /// 32-bit RGBA (Mapnik's `png32`).
    Png32,
    /// Palette of at most `colours` colours (Mapnik's `png8`/`png256`).
    Png8 {
        /// Palette size, 2 to 256.
        colours: u16,
    },
}

impl TileFormat {
    /// Parses Mapnik's format names: `png`, `png32`, `png8`, `png256`, and
    /// `png8:c=N` for an N-colour palette.
    pub fn parse(name: &str) -> Option<TileFormat> {
        match name {
            "png" | "png32" => Some(TileFormat::Png32),
            "png8" | "png256" => Some(TileFormat::Png8 { colours: 256 }),
            _ => {
                let colours: u16 = name.strip_prefix("png8:c=")?.parse().ok()?;
                (2..=256)
                    .contains(&colours)
                    .then_some(TileFormat::Png8 { colours })
            }
        }
    }
}

/// How hard zlib works. `Fast` is the default: on map tiles it is several
/// times faster than `Balanced` for a few percent more bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// fdeflate's fast mode for 32-bit tiles, zlib level 4 for palettes.
    #[default]
    Fast,
    /// zlib's usual trade-off (level 6).
    Balanced,
    /// Smallest files, slowest. Used for single-colour tiles, which are
    /// encoded once and served many times.
    High,
}

impl Compression {
    /// The zlib level for palette images. On the benchmark's world tiles
    /// (z0-5, png8) level 4 gives 1467 bytes/tile against Mapnik png256's
    /// 1517 (level 6: 1462, level 3: 1560, fdeflate: 2145) at about
    /// 0.4 ms/tile.
    fn palette_level(self) -> u8 {
        match self {
            Compression::Fast => 4,
            Compression::Balanced => 6,
            Compression::High => 9,
        }
    }

    fn to_png(self) -> png::Compression {
        match self {
            Compression::Fast => png::Compression::Fast,
            Compression::Balanced => png::Compression::Balanced,
            Compression::High => png::Compression::High,
        }
    }
}

/// Why a tile could not be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The pixel buffer does not hold `width * height` RGBA pixels.
    #[error("pixel buffer of {len} bytes does not hold {width}x{height} RGBA pixels")]
    BadBuffer {
        /// Bytes given.
        len: usize,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// The PNG encoder failed.
    #[error("PNG encoding failed: {0}")]
    Png(#[from] png::EncodingError),
}

/// Encodes premultiplied RGBA pixels as PNG.
pub fn encode_png(
    premultiplied_rgba: &[u8],
    width: u32,
    height: u32,
    format: TileFormat,
    compression: Compression,
) -> Result<Vec<u8>, EncodeError> {
    let pixels = width as usize * height as usize;
    if premultiplied_rgba.len() != pixels * 4 || pixels == 0 {
        return Err(EncodeError::BadBuffer {
            len: premultiplied_rgba.len(),
            width,
            height,
        });
    }
    let straight = demultiply(premultiplied_rgba);
    match format {
        TileFormat::Png32 => {
            let header = Header {
                width,
                height,
                colour: png::ColorType::Rgba,
                depth: png::BitDepth::Eight,
            };
            write_png(header, None, &straight, compression)
        }
        TileFormat::Png8 { colours } => {
            encode_palette(&straight, width, height, colours.clamp(2, 256), compression)
        }
    }
}

/// The `png8` palette of straight (not premultiplied) RGBA pixels: at most
/// `max` entries (2 to 256) and each pixel's index, exactly as
/// [`encode_png`] makes it (exact when the pixels have at most `max`
/// colours). Public for benchmarks and for embedders that write their own
/// files.
pub fn png8_palette(straight_rgba: &[u8], max: usize) -> (Vec<[u8; 4]>, Vec<u8>) {
    palette::palette(straight_rgba, max.clamp(2, 256))
}

/// Converts premultiplied RGBA to straight RGBA, rounding to nearest.
fn demultiply(premultiplied: &[u8]) -> Vec<u8> {
    let mut out = premultiplied.to_vec();
    for px in out.chunks_exact_mut(4) {
        let a = u32::from(px[3]);
        if a == 0 {
            px[..3].fill(0);
        } else if a < 255 {
            for c in &mut px[..3] {
                *c = ((u32::from(*c) * 255 + a / 2) / a).min(255) as u8;
            }
        }
    }
    out
}

fn encode_palette(
    rgba: &[u8],
    width: u32,
    height: u32,
    max_colours: u16,
    compression: Compression,
) -> Result<Vec<u8>, EncodeError> {
    let (palette, indices) = palette::palette(rgba, usize::from(max_colours));
    png8_file(&palette, &indices, width, height, compression)
}

/// A palette PNG of `palette` and one index per pixel, written as
/// [`encode_png`] writes `png8`: 1, 2, 4 or 8 bits per index by palette
/// size, no row filter, `tRNS` as long as the last non-opaque entry.
/// Public for benchmarks that compare palettes written alike.
pub fn png8_file(
    palette: &[[u8; 4]],
    indices: &[u8],
    width: u32,
    height: u32,
    compression: Compression,
) -> Result<Vec<u8>, EncodeError> {
    let depth = match palette.len() {
        0..=2 => png::BitDepth::One,
        3..=4 => png::BitDepth::Two,
        5..=16 => png::BitDepth::Four,
        _ => png::BitDepth::Eight,
    };
    let packed = pack_indices(indices, width as usize, depth);
    let header = Header {
        width,
        height,
        colour: png::ColorType::Indexed,
        depth,
    };
    write_png(header, Some(palette), &packed, compression)
}

/// Packs one palette index per pixel into rows of `depth` bits per pixel.
fn pack_indices(indices: &[u8], width: usize, depth: png::BitDepth) -> Vec<u8> {
    let bits = depth as usize;
    if bits == 8 {
        return indices.to_vec();
    }
    let per_byte = 8 / bits;
    let row_bytes = width.div_ceil(per_byte);
    let mut out = Vec::with_capacity(row_bytes * (indices.len() / width.max(1)));
    for row in indices.chunks(width) {
        for group in row.chunks(per_byte) {
            let mut byte = 0u8;
            for (i, &index) in group.iter().enumerate() {
                byte |= index << (8 - bits * (i + 1));
            }
            out.push(byte);
        }
    }
    out
}

struct Header {
    width: u32,
    height: u32,
    colour: png::ColorType,
    depth: png::BitDepth,
}

fn write_png(
    header: Header,
    palette: Option<&[[u8; 4]]>,
    data: &[u8],
    compression: Compression,
) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(data.len() / 4 + 256);
    {
        let mut encoder = png::Encoder::new(&mut out, header.width, header.height);
        encoder.set_color(header.colour);
        encoder.set_depth(header.depth);
        encoder.set_compression(compression.to_png());
        if palette.is_some() {
            // Palette indices: no row filter (filtering indices only adds
            // noise) and zlib proper (fdeflate's fast mode lives on the
            // zero runs that filtering makes, and is ~45% larger here).
            encoder.set_deflate_compression(png::DeflateCompression::Level(
                compression.palette_level(),
            ));
            encoder.set_filter(png::Filter::NoFilter);
        }
        if let Some(palette) = palette {
            encoder.set_palette(
                palette
                    .iter()
                    .flat_map(|c| [c[0], c[1], c[2]])
                    .collect::<Vec<u8>>(),
            );
            // tRNS only as long as the last non-opaque entry.
            let alpha: Vec<u8> = palette.iter().map(|c| c[3]).collect();
            if let Some(last) = alpha.iter().rposition(|&a| a != 255) {
                encoder.set_trns(alpha[..=last].to_vec());
            }
        }
        let mut writer = encoder.write_header()?;
        writer.write_image_data(data)?;
        writer.finish()?;
    }
    Ok(out)
}

/// Encodes tiles, reusing the bytes of single-colour tiles.
///
/// Cheap to clone and share between workers: the cache is behind a mutex
/// that is held only to look up or insert one entry.
#[derive(Debug, Clone, Default)]
pub struct TileEncoder {
    compression: Compression,
    solid: Arc<Mutex<HashMap<SolidKey, Arc<Vec<u8>>>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SolidKey {
    premultiplied: [u8; 4],
    width: u32,
    height: u32,
    format: TileFormat,
}

/// At most this many distinct single-colour tiles are remembered; a style
/// has a handful of flat colours, so this is never reached in practice.
const SOLID_CACHE_LIMIT: usize = 4096;

impl TileEncoder {
    /// A new encoder with an empty cache.
    pub fn new(compression: Compression) -> Self {
        Self {
            compression,
            solid: Arc::default(),
        }
    }

    /// Encodes a tile (premultiplied RGBA). Single-colour tiles come from
    /// the cache after their first encoding.
    pub fn encode(
        &self,
        premultiplied_rgba: &[u8],
        width: u32,
        height: u32,
        format: TileFormat,
    ) -> Result<Arc<Vec<u8>>, EncodeError> {
        let Some(colour) = single_colour(premultiplied_rgba) else {
            return encode_png(premultiplied_rgba, width, height, format, self.compression)
                .map(Arc::new);
        };
        let key = SolidKey {
            premultiplied: colour,
            width,
            height,
            format,
        };
        if let Some(hit) = self.lock().get(&key) {
            return Ok(Arc::clone(hit));
        }
        let png = Arc::new(encode_png(
            premultiplied_rgba,
            width,
            height,
            format,
            Compression::High,
        )?);
        let mut cache = self.lock();
        if cache.len() < SOLID_CACHE_LIMIT {
            cache.insert(key, Arc::clone(&png));
        }
        Ok(png)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SolidKey, Arc<Vec<u8>>>> {
        // A panic while holding the lock cannot leave the map half-updated
        // (insert and get are single calls), so a poisoned lock is usable.
        self.solid
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The one colour of the buffer, if every pixel has it.
pub fn single_colour(rgba: &[u8]) -> Option<[u8; 4]> {
    let first: [u8; 4] = rgba.get(..4)?.try_into().ok()?;
    rgba.chunks_exact(4).all(|px| px == first).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(png_bytes: &[u8]) -> (png::OutputInfo, Vec<u8>) {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::ALPHA);
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info, buf)
    }

    fn raw_info(png_bytes: &[u8]) -> (png::ColorType, png::BitDepth) {
        let reader = png::Decoder::new(std::io::Cursor::new(png_bytes))
            .read_info()
            .unwrap();
        let info = reader.info();
        (info.color_type, info.bit_depth)
    }

    /// A 4x2 image: opaque red, half-transparent green (premultiplied),
    /// transparent, opaque blue; second row repeats it.
    fn sample() -> Vec<u8> {
        let row = [255, 0, 0, 255, 0, 128, 0, 128, 0, 0, 0, 0, 0, 0, 255, 255];
        [row, row].concat()
    }

    #[test]
    fn png32_demultiplies_and_round_trips() {
        let png = encode_png(&sample(), 4, 2, TileFormat::Png32, Compression::Fast).unwrap();
        assert_eq!(raw_info(&png), (png::ColorType::Rgba, png::BitDepth::Eight));
        let (_, pixels) = decode(&png);
        assert_eq!(
            &pixels[..16],
            &[255, 0, 0, 255, 0, 255, 0, 128, 0, 0, 0, 0, 0, 0, 255, 255]
        );
    }

    #[test]
    fn few_colours_give_an_exact_small_palette() {
        let png = encode_png(
            &sample(),
            4,
            2,
            TileFormat::Png8 { colours: 256 },
            Compression::Fast,
        )
        .unwrap();
        assert_eq!(
            raw_info(&png),
            (png::ColorType::Indexed, png::BitDepth::Two)
        );
        let (_, pixels) = decode(&png);
        let straight = demultiply(&sample());
        assert_eq!(pixels, straight, "lossless for <= 256 colours");
    }

    #[test]
    fn many_colours_are_quantized_to_the_palette_size() {
        let (w, h) = (64u32, 64u32);
        let mut img = Vec::new();
        for y in 0..h {
            for x in 0..w {
                img.extend_from_slice(&[(x * 4) as u8, (y * 4) as u8, 128, 255]);
            }
        }
        let png = encode_png(
            &img,
            w,
            h,
            TileFormat::Png8 { colours: 256 },
            Compression::Fast,
        )
        .unwrap();
        assert_eq!(
            raw_info(&png),
            (png::ColorType::Indexed, png::BitDepth::Eight)
        );
        let (_, pixels) = decode(&png);
        // 4096 colours into 256: the mean error stays small.
        let total: u64 = pixels
            .iter()
            .zip(&img)
            .map(|(a, b)| u64::from(a.abs_diff(*b)))
            .sum();
        let mean = total as f64 / pixels.len() as f64;
        assert!(mean < 6.0, "mean quantization error {mean}");
        let png16 = encode_png(
            &img,
            w,
            h,
            TileFormat::Png8 { colours: 16 },
            Compression::Fast,
        )
        .unwrap();
        assert_eq!(raw_info(&png16).1, png::BitDepth::Four);
    }

    #[test]
    fn single_colour_tiles_are_encoded_once() {
        let encoder = TileEncoder::new(Compression::Fast);
        let sea: Vec<u8> = [170u8, 211, 223, 255].repeat(256 * 256);
        let a = encoder
            .encode(&sea, 256, 256, TileFormat::Png8 { colours: 256 })
            .unwrap();
        let b = encoder
            .encode(&sea, 256, 256, TileFormat::Png8 { colours: 256 })
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(raw_info(&a).1, png::BitDepth::One);
        assert!(a.len() < 150, "a flat tile is tiny: {} bytes", a.len());
        let c = encoder.encode(&sea, 256, 256, TileFormat::Png32).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
    }

    #[test]
    fn bad_buffers_are_errors() {
        assert!(encode_png(&[0; 15], 2, 2, TileFormat::Png32, Compression::Fast).is_err());
        assert!(encode_png(&[], 0, 0, TileFormat::Png32, Compression::Fast).is_err());
    }

    #[test]
    fn format_names_follow_mapnik() {
        assert_eq!(TileFormat::parse("png"), Some(TileFormat::Png32));
        assert_eq!(
            TileFormat::parse("png256"),
            Some(TileFormat::Png8 { colours: 256 })
        );
        assert_eq!(
            TileFormat::parse("png8:c=64"),
            Some(TileFormat::Png8 { colours: 64 })
        );
        assert_eq!(TileFormat::parse("png8:c=1"), None);
        assert_eq!(TileFormat::parse("jpeg"), None);
    }
}
