//! The renderer: a loaded map and the drawing of metatiles.
//!
//! - [`MapSource`] is a style with its data, loaded once. It holds only
//!   plain Rust values and is shared between workers (cloning it is cheap).
//! - [`Renderer`] is one per worker thread: it draws a metatile once, cuts
//!   it into tiles and encodes them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use tile_math::{scale_denominator, Metatile, PixelTransform, TileCoord};

use crate::draw::Canvas;
use crate::encode::{Compression, TileEncoder, TileFormat};
use crate::source::geometry::Point;
use crate::source::{Found, VectorLayer};
use crate::style::filter::FeatureView;
use crate::style::symbolizer::Symbolizer;
use crate::style::{Datasource, LoadedMap, Map, Rule, StyleWarning};
use crate::{Error, Result};

/// How tiles are drawn and encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderOptions {
    /// Tile width and height in pixels: 256, or 512 for HiDPI.
    pub tile_size: u32,
    /// Multiplies stroke widths and marker sizes, and the scale
    /// denominator, as Mapnik's `scale_factor` does (2 for 512 px tiles
    /// that should look like 256 px tiles on a HiDPI screen).
    pub scale_factor: f64,
    /// Pixels around a metatile whose features are drawn too, so that
    /// strokes and markers that straddle an edge appear on both sides.
    /// `None` takes the map's `buffer-size`.
    pub buffer: Option<u32>,
    /// PNG flavour.
    pub format: TileFormat,
    /// zlib effort.
    pub compression: Compression,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            tile_size: 256,
            scale_factor: 1.0,
            buffer: None,
            format: TileFormat::Png8 { colours: 256 },
            compression: Compression::Fast,
        }
    }
}

/// One tile of a rendered metatile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedTile {
    /// Which tile.
    pub tile: TileCoord,
    /// Its PNG bytes (shared when identical single-colour tiles repeat).
    pub png: Arc<Vec<u8>>,
}

/// A drawn metatile before it is cut up: premultiplied RGBA pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetatileImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Premultiplied RGBA, row by row.
    pub premultiplied_rgba: Vec<u8>,
}

/// A style and its data, loaded once and shared by every worker.
#[derive(Debug, Clone)]
pub struct MapSource {
    inner: Arc<MapSourceInner>,
}

#[derive(Debug)]
struct MapSourceInner {
    map: Map,
    warnings: Vec<StyleWarning>,
    /// Per style layer: its vector data, or `None` (no datasource, raster).
    layers: Vec<Option<VectorLayer>>,
    /// The style file and every data file it reads, for freshness checks.
    files: Vec<PathBuf>,
}

impl MapSource {
    /// Loads a Mapnik-XML style file and all its vector data.
    pub fn load(style: impl AsRef<Path>) -> Result<MapSource> {
        let style = style.as_ref();
        let loaded = Map::load(style)?;
        Self::from_loaded(loaded, Some(style.to_path_buf()))
    }

    /// Loads the data of a style that is already parsed.
    pub fn from_loaded(loaded: LoadedMap, style_file: Option<PathBuf>) -> Result<MapSource> {
        let LoadedMap { map, warnings } = loaded;
        let mut layers = Vec::with_capacity(map.layers.len());
        let mut files: Vec<PathBuf> = style_file.into_iter().collect();
        for layer in &map.layers {
            let data = match &layer.datasource {
                None => None,
                Some(Datasource::Gdal { file, .. }) => {
                    return Err(Error::Render {
                        what: format!("layer `{}`", layer.name),
                        message: format!("raster datasource {} is not drawn yet", file.display()),
                    })
                }
                Some(ds) => {
                    if let Datasource::Shape { file, .. } | Datasource::Ogr { file, .. } = ds {
                        files.push(file.clone());
                    }
                    let data = VectorLayer::load(ds, &layer.srs).map_err(|source| Error::Data {
                        layer: layer.name.clone(),
                        source,
                    })?;
                    Some(data)
                }
            };
            layers.push(data);
        }
        Ok(MapSource {
            inner: Arc::new(MapSourceInner {
                map,
                warnings,
                layers,
                files,
            }),
        })
    }

    /// The style.
    pub fn map(&self) -> &Map {
        &self.inner.map
    }

    /// What the style loader warned about.
    pub fn warnings(&self) -> &[StyleWarning] {
        &self.inner.warnings
    }

    /// The newest modification time of the style and its data files: tiles
    /// older than this may be out of date.
    pub fn modified(&self) -> Option<SystemTime> {
        self.inner
            .files
            .iter()
            .filter_map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
            .max()
    }

    /// The vector data of the style's layer `index`, if it has any.
    pub fn layer_data(&self, index: usize) -> Option<&VectorLayer> {
        self.inner.layers.get(index).and_then(Option::as_ref)
    }
}

/// Draws metatiles of one map. One per worker thread; `Send`.
#[derive(Debug)]
pub struct Renderer {
    source: MapSource,
    options: RenderOptions,
    encoder: TileEncoder,
}

impl Renderer {
    /// A renderer for a map.
    pub fn new(source: MapSource, options: RenderOptions) -> Renderer {
        let encoder = TileEncoder::new(options.compression);
        Renderer {
            source,
            options,
            encoder,
        }
    }

    /// A renderer that shares another's cache of single-colour tiles.
    pub fn with_encoder(
        source: MapSource,
        options: RenderOptions,
        encoder: TileEncoder,
    ) -> Renderer {
        Renderer {
            source,
            options,
            encoder,
        }
    }

    /// The options it renders with.
    pub fn options(&self) -> &RenderOptions {
        &self.options
    }

    /// The map it renders.
    pub fn source(&self) -> &MapSource {
        &self.source
    }

    /// Draws a metatile, cuts it into tiles and encodes each one.
    pub fn render_metatile(&mut self, meta: &Metatile) -> Result<Vec<RenderedTile>> {
        let image = self.draw_metatile(meta)?;
        let size = self.options.tile_size;
        let mut tiles = Vec::with_capacity(meta.tile_count() as usize);
        let mut buffer = vec![0u8; (size * size * 4) as usize];
        for tile in meta.tiles() {
            let Some((dx, dy)) = meta.offset_of(tile) else {
                continue;
            };
            let (x0, y0) = ((dx * size) as usize, (dy * size) as usize);
            let row_bytes = size as usize * 4;
            for row in 0..size as usize {
                let start = ((y0 + row) * image.width as usize + x0) * 4;
                buffer[row * row_bytes..(row + 1) * row_bytes]
                    .copy_from_slice(&image.premultiplied_rgba[start..start + row_bytes]);
            }
            let png = self
                .encoder
                .encode(&buffer, size, size, self.options.format)?;
            tiles.push(RenderedTile { tile, png });
        }
        Ok(tiles)
    }

    /// Renders one tile (as a 1×1 metatile).
    pub fn render_tile(&mut self, tile: TileCoord) -> Result<Arc<Vec<u8>>> {
        let meta = Metatile::containing(tile, 1).map_err(|e| render_error(&tile, e))?;
        let mut tiles = self.render_metatile(&meta)?;
        tiles.pop().map(|t| t.png).ok_or_else(|| Error::Render {
            what: format!("tile {tile}"),
            message: "no tile came out of its metatile".into(),
        })
    }

    /// Draws a metatile and returns its pixels (premultiplied RGBA).
    pub fn draw_metatile(&mut self, meta: &Metatile) -> Result<MetatileImage> {
        let opts = &self.options;
        let transform = PixelTransform::for_metatile(meta, opts.tile_size, 0)
            .map_err(|e| render_error(meta, e))?;
        let mut canvas =
            Canvas::new(transform, opts.scale_factor).ok_or_else(|| Error::Render {
                what: format!("metatile {meta}"),
                message: "the image size is not possible".into(),
            })?;
        let map = self.source.map();
        if let Some(background) = map.background_color {
            canvas.clear(background);
        }
        let scale = scale_denominator(meta.z(), opts.tile_size, opts.scale_factor);
        let mpp = transform.metres_per_pixel();
        for (index, layer) in map.layers.iter().enumerate() {
            if !layer.visible(scale) {
                continue;
            }
            let Some(data) = self.source.layer_data(index) else {
                continue;
            };
            let buffer_px = opts
                .buffer
                .unwrap_or(layer.buffer_size.unwrap_or(map.buffer_size));
            let query = canvas.area().expanded(f64::from(buffer_px) * mpp);
            let found = data.query(&query, mpp);
            if found.is_empty() {
                continue;
            }
            for style_name in &layer.styles {
                let Some(style) = map.style(style_name) else {
                    continue;
                };
                let rules = style.active_rules(scale);
                if rules.is_empty() {
                    continue;
                }
                if style.opacity < 1.0 {
                    let mut apart =
                        Canvas::new(transform, opts.scale_factor).ok_or_else(|| Error::Render {
                            what: format!("metatile {meta}"),
                            message: "the image size is not possible".into(),
                        })?;
                    draw_features(&mut apart, &found, &rules);
                    canvas.blend(&apart, style.opacity);
                } else {
                    draw_features(&mut canvas, &found, &rules);
                }
            }
        }
        let (width, height) = transform.image_size();
        Ok(MetatileImage {
            width,
            height,
            premultiplied_rgba: canvas.pixmap.take(),
        })
    }
}

fn render_error(what: &dyn std::fmt::Display, e: tile_math::TileMathError) -> Error {
    Error::Render {
        what: what.to_string(),
        message: e.to_string(),
    }
}

/// Draws every feature with the rules that match it, feature by feature, in
/// the data's order (Mapnik's painter's algorithm within one style).
fn draw_features(canvas: &mut Canvas, found: &[Found<'_>], rules: &crate::style::ActiveRules<'_>) {
    let mut matching: Vec<&Rule> = Vec::new();
    for feature in found {
        matching.clear();
        rules.matching(feature as &dyn FeatureView, &mut matching);
        for rule in &matching {
            for symbolizer in &rule.symbolizers {
                draw_symbolizer(canvas, feature, symbolizer);
            }
        }
    }
}

fn draw_symbolizer(canvas: &mut Canvas, feature: &Found<'_>, symbolizer: &Symbolizer) {
    let g = feature.geometry;
    let shift = feature.x_shift;
    match symbolizer {
        Symbolizer::Polygon(style) => {
            if !g.polygons.is_empty() {
                canvas.fill_polygons(&g.polygons, shift, style);
            }
        }
        Symbolizer::Line(style) => {
            if !g.lines.is_empty() {
                canvas.stroke_lines(&g.lines, false, shift, style);
            }
            if !g.polygons.is_empty() {
                let rings: Vec<Vec<Point>> = g.polygons.iter().flatten().cloned().collect();
                canvas.stroke_lines(&rings, true, shift, style);
            }
        }
        Symbolizer::Markers(style) => {
            let mut points: Vec<Point> = g.points.clone();
            // Lines get a marker at their middle vertex, polygons at the
            // centre of their exterior ring's bounding box.
            points.extend(g.lines.iter().filter_map(|l| l.get(l.len() / 2).copied()));
            points.extend(
                g.polygons
                    .iter()
                    .filter_map(|p| p.first())
                    .filter_map(|ring| bbox_centre(ring)),
            );
            canvas.markers(&points, shift, style);
        }
        Symbolizer::Raster(_) => {}
    }
}

fn bbox_centre(ring: &[Point]) -> Option<Point> {
    let first = ring.first()?;
    let (mut x0, mut y0, mut x1, mut y1) = (first[0], first[1], first[0], first[1]);
    for p in ring {
        x0 = x0.min(p[0]);
        x1 = x1.max(p[0]);
        y0 = y0.min(p[1]);
        y1 = y1.max(p[1]);
    }
    Some([(x0 + x1) / 2.0, (y0 + y1) / 2.0])
}

// Renderers move to their worker thread once they are built.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<Renderer>();
    assert_send::<MapSource>();
};
