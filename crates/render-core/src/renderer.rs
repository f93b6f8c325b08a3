//! The renderer: a loaded map and the drawing of metatiles.
//!
//! - [`MapSource`] is a style with its data, loaded once. It holds only
//!   plain Rust values and is shared between workers (cloning it is cheap).
//! - [`Renderer`] is one per worker thread: it draws a metatile once, cuts
//!   it into tiles and encodes them. It opens its own GDAL datasets for
//!   raster layers on first use (a GDAL dataset may move between threads
//!   but must not be shared), so it stays `Send`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tile_math::{scale_denominator, MercatorBbox, Metatile, PixelTransform, TileCoord};

use crate::draw::Canvas;
use crate::encode::{Compression, TileEncoder, TileFormat};
use crate::image::ImageCache;
use crate::labels::LabelContext;
use crate::place::{Collisions, Rect};
use crate::source::geometry::Point;
use crate::source::{
    FileLayer, FileReaders, Found, LayerQuery, PostgisConnections, PostgisCounts, PostgisLayer,
    QueryAhead, QueryArea, RasterLayer, RasterSource, VectorLayer,
};
use crate::style::composite::CompOp;
use crate::style::filter::{FeatureView, GeometryType, Value};
use crate::style::symbolizer::{RasterSymbolizer, ScalingMethod, Symbolizer};
use crate::style::{Datasource, Layer, LoadedMap, Map, Rule, Style, StyleWarning};
use crate::text::{FontBook, FontChain, Shaper, TextCaches};
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
    /// `None` takes the map's `buffer-size` (and each layer's own).
    pub buffer: Option<u32>,
    /// The map's buffer when its `<Map>` sets no `buffer-size` (or 0):
    /// `None` keeps Mapnik's 0; renderd uses half a tile times the scale
    /// factor, which tile-server follows (labels and markers then cross
    /// metatile edges as they do under renderd). Layers' own
    /// `buffer-size` still win, as in Mapnik; [`RenderOptions::buffer`]
    /// overrides all.
    pub buffer_if_unset: Option<u32>,
    /// PNG flavour.
    pub format: TileFormat,
    /// zlib effort.
    pub compression: Compression,
    /// GDAL's raster block cache, in MiB (`GDALSetCacheMax64`). `None`
    /// leaves GDAL's default (the `GDAL_CACHEMAX` configuration option or
    /// environment variable, else 5% of RAM). The cache is one per process
    /// and shared by every worker: the first `Renderer` built with `Some`
    /// sets it, and a later one asking for a different size logs a warning
    /// and changes nothing.
    pub gdal_cache_mb: Option<u32>,
    /// PostgreSQL's `statement_timeout` for every PostGIS query, in
    /// milliseconds: a query running longer fails its tile. `None`: no
    /// limit.
    pub statement_timeout_ms: Option<u64>,
    /// PostGIS connections per renderer (at least 1): a metatile's layer
    /// queries run on them in parallel and ahead of the drawing
    /// ([`crate::source::query_ahead`]). Default 2; see
    /// [`postgis_connections_for`] for renderers that share the cores.
    pub postgis_connections: usize,
}

/// PostGIS connections per renderer when `render_threads` renderers run at
/// once on `cores` cores: 2 while there are spare cores for the database
/// to answer two queries at a time (one renderer on two cores: measured
/// 1.2-1.3× faster tile by tile on openstreetmap-carto), 1 when the
/// renderers already fill the cores (a second connection then only adds
/// database processes competing for them: measured no faster, at times
/// slower). See `docs/performance.md`.
pub fn postgis_connections_for(render_threads: usize, cores: usize) -> usize {
    if render_threads < cores {
        2
    } else {
        1
    }
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            tile_size: 256,
            scale_factor: 1.0,
            buffer: None,
            buffer_if_unset: None,
            format: TileFormat::Png8 { colours: 256 },
            compression: Compression::Fast,
            gdal_cache_mb: None,
            statement_timeout_ms: None,
            postgis_connections: 2,
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
    /// Whether every pixel has one colour (open sea, inland): such tiles
    /// are byte-identical to others of their colour, so a store can keep one
    /// file for all of them.
    pub single_colour: bool,
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
    /// Per style layer: its data.
    layers: Vec<LayerData>,
    /// The style file and every data file it reads, for freshness checks.
    files: Vec<PathBuf>,
    /// The fonts of a style with text labels (`None` without any).
    fonts: Option<FontBook>,
    /// Each face list of the style's text symbolizers, resolved.
    chains: HashMap<Vec<String>, FontChain>,
}

/// One style layer's data.
#[derive(Debug)]
enum LayerData {
    /// No datasource: the layer draws nothing.
    None,
    /// Vector data, in memory.
    Vector(VectorLayer),
    /// A PostGIS layer, queried per metatile by each worker.
    Postgis(PostgisLayer),
    /// A vector file above the in-memory limit, read per metatile by each
    /// worker.
    File(FileLayer),
    /// A raster, checked; each renderer opens its own dataset.
    Raster(RasterSource),
}

/// How a map's data is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Vector files larger than this (bytes; a Shapefile's `.shp` and
    /// `.dbf` together) are not read into memory but per metatile, through
    /// OGR's spatial filter. Default 256 MiB.
    pub in_memory_limit_bytes: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            in_memory_limit_bytes: 256 << 20,
        }
    }
}

impl MapSource {
    /// Loads a Mapnik-XML style file and its data (vector files up to the
    /// default in-memory limit are read into memory; larger ones and
    /// PostGIS are read per metatile; rasters are opened once to check
    /// them).
    pub fn load(style: impl AsRef<Path>) -> Result<MapSource> {
        Self::load_with(style, &LoadOptions::default())
    }

    /// [`MapSource::load`] with options.
    pub fn load_with(style: impl AsRef<Path>, options: &LoadOptions) -> Result<MapSource> {
        let style = style.as_ref();
        let loaded = Map::load(style)?;
        Self::from_loaded_with(loaded, Some(style.to_path_buf()), options)
    }

    /// Loads the data of a style that is already parsed.
    pub fn from_loaded(loaded: LoadedMap, style_file: Option<PathBuf>) -> Result<MapSource> {
        Self::from_loaded_with(loaded, style_file, &LoadOptions::default())
    }

    /// [`MapSource::from_loaded`] with options.
    pub fn from_loaded_with(
        loaded: LoadedMap,
        style_file: Option<PathBuf>,
        options: &LoadOptions,
    ) -> Result<MapSource> {
        let LoadedMap { map, mut warnings } = loaded;
        let (fonts, chains) = load_fonts(&map, &mut warnings);
        let mut layers = Vec::with_capacity(map.layers.len());
        let style_path = style_file.clone();
        let mut files: Vec<PathBuf> = style_file.into_iter().collect();
        for layer in &map.layers {
            let data_error = |source| Error::Data {
                layer: layer.name.clone(),
                source,
            };
            let data = match &layer.datasource {
                None => LayerData::None,
                Some(ds @ Datasource::Gdal { file, .. }) => {
                    files.push(file.clone());
                    let raster = RasterSource::load(ds, &layer.srs).map_err(data_error)?;
                    LayerData::Raster(raster)
                }
                Some(ds @ Datasource::PostGis { .. }) => match PostgisLayer::new(ds, &layer.srs) {
                    Some(pg) => LayerData::Postgis(pg),
                    None => LayerData::None,
                },
                Some(ds) => {
                    if let Datasource::Shape { file, .. } | Datasource::Ogr { file, .. } = ds {
                        files.push(file.clone());
                    }
                    let large = crate::source::file_tiles::data_size(ds)
                        .is_some_and(|bytes| bytes > options.in_memory_limit_bytes);
                    match FileLayer::new(ds, &layer.srs).filter(|_| large) {
                        Some(file) => LayerData::File(file),
                        None => {
                            let data = VectorLayer::load(ds, &layer.srs).map_err(data_error)?;
                            LayerData::Vector(data)
                        }
                    }
                }
            };
            layers.push(data);
        }
        check_databases(&map, &layers, &style_path, &mut warnings);
        Ok(MapSource {
            inner: Arc::new(MapSourceInner {
                map,
                warnings,
                layers,
                files,
                fonts,
                chains,
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
        self.input_files()
            .filter_map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
            .max()
    }

    /// Every file this map was made from: the style, the files it
    /// includes, its image files and its data files (PostGIS data is not a
    /// file: its changes reach a server as expired tiles).
    pub fn input_files(&self) -> impl Iterator<Item = &Path> {
        let style = &self.inner.map.input_files;
        // `files` starts with the style file itself, which `style` has too.
        let data = self.inner.files.iter().filter(|f| !style.contains(f));
        style.iter().chain(data).map(PathBuf::as_path)
    }

    /// The vector data of the style's layer `index`, if it has any.
    pub fn layer_data(&self, index: usize) -> Option<&VectorLayer> {
        match self.inner.layers.get(index) {
            Some(LayerData::Vector(data)) => Some(data),
            _ => None,
        }
    }

    /// The file of the style's layer `index`, if it is read per metatile.
    pub fn file_layer(&self, index: usize) -> Option<&FileLayer> {
        match self.inner.layers.get(index) {
            Some(LayerData::File(file)) => Some(file),
            _ => None,
        }
    }

    /// The PostGIS query of the style's layer `index`, if it is one.
    pub fn postgis_layer(&self, index: usize) -> Option<&PostgisLayer> {
        match self.inner.layers.get(index) {
            Some(LayerData::Postgis(pg)) => Some(pg),
            _ => None,
        }
    }

    /// The raster of the style's layer `index`, if it is a raster layer.
    pub fn raster_source(&self, index: usize) -> Option<&RasterSource> {
        match self.inner.layers.get(index) {
            Some(LayerData::Raster(raster)) => Some(raster),
            _ => None,
        }
    }
}

/// Says at load when a PostGIS database cannot be reached: the map loads
/// anyway (its layers are read per metatile), and tiles that need the
/// database fail until it is back.
fn check_databases(
    map: &Map,
    layers: &[LayerData],
    style_file: &Option<PathBuf>,
    warnings: &mut Vec<StyleWarning>,
) {
    let mut probe = PostgisConnections::default();
    let mut seen: Vec<String> = Vec::new();
    for (layer, data) in map.layers.iter().zip(layers) {
        let LayerData::Postgis(pg) = data else {
            continue;
        };
        let connection = pg.connection_for_display();
        if seen.contains(&connection) {
            continue;
        }
        seen.push(connection.clone());
        if let Err(e) = probe.probe(pg) {
            let w = StyleWarning {
                location: crate::error::Location {
                    file: style_file.clone(),
                    line: layer.line,
                    column: 1,
                },
                element: "Layer".into(),
                message: format!(
                    "the database of layer `{}` cannot be reached now ({e}); tiles that need it \
                     fail until it can",
                    layer.name
                ),
            };
            // Returned to the caller, who says it (once).
            tracing::debug!("{w}");
            warnings.push(w);
        }
    }
}

/// The font book of a style with text labels, and its face lists
/// resolved: a missing face is a warning naming it and the fallback used.
fn load_fonts(
    map: &Map,
    warnings: &mut Vec<StyleWarning>,
) -> (Option<FontBook>, HashMap<Vec<String>, FontChain>) {
    let mut chains = HashMap::new();
    if map.text_faces.is_empty() {
        return (None, chains);
    }
    let dirs: Vec<PathBuf> = map.font_directory.iter().cloned().collect();
    let book = FontBook::new(&dirs);
    // What a list with no face found falls back to: Mapnik's own default
    // face, else any face at all.
    let fallback = ["DejaVu Sans Book"]
        .iter()
        .find_map(|n| book.find(n))
        .or_else(|| (!book.is_empty()).then_some(crate::text::FaceId(0)));
    for (names, location) in &map.text_faces {
        let (mut chain, missing) = book.chain(names);
        if chain.is_empty() {
            if let Some(face) = fallback {
                chain.0.push(face);
            }
        }
        if !missing.is_empty() {
            let used: Vec<&str> = chain.faces().iter().map(|f| book.name(*f)).collect();
            let message = if used.is_empty() {
                format!(
                    "font face {} not found and no font is installed: these labels are not drawn",
                    quote_list(&missing)
                )
            } else if used.len() <= SHOWN_FACES {
                format!(
                    "font face {} not found; using {}",
                    quote_list(&missing),
                    quote_list(&used)
                )
            } else {
                // A long fontset (openstreetmap-carto's have ~40 faces):
                // the missing ones matter, the rest is counted.
                format!(
                    "font face {} not found; using the list's other {} faces ({}, ...)",
                    quote_list(&missing),
                    used.len(),
                    quote_list(&used[..SHOWN_FACES])
                )
            };
            // Returned to the caller, who says it (once).
            tracing::debug!("{location}: <TextSymbolizer>: {message}");
            warnings.push(StyleWarning {
                location: location.clone(),
                element: "TextSymbolizer".into(),
                message,
            });
        }
        chains.insert(names.clone(), chain);
    }
    (Some(book), chains)
}

/// How many of the faces used instead of a missing one a warning names.
const SHOWN_FACES: usize = 3;

fn quote_list<S: AsRef<str>>(names: &[S]) -> String {
    names
        .iter()
        .map(|n| format!("\"{}\"", n.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Draws metatiles of one map. One per worker thread; `Send`.
#[derive(Debug)]
pub struct Renderer {
    source: MapSource,
    options: RenderOptions,
    encoder: TileEncoder,
    /// Per style layer: this worker's open raster, once first drawn.
    /// `RasterLayer` owns a `gdal::Dataset`, which is `Send` (GDAL allows a
    /// dataset to move between threads) but not `Sync`; each renderer has
    /// its own, so the renderer can move to its worker thread.
    rasters: Vec<Option<RasterLayer>>,
    /// This worker's shaped text and glyph outlines.
    text: TextCaches,
    /// This worker's decoded images (shields).
    images: ImageCache,
    /// This worker's PostGIS queries (a thread of their own, which holds
    /// the worker's connections).
    postgis: QueryAhead,
    /// This worker's open files of layers read per metatile.
    files: FileReaders,
}

impl Renderer {
    /// A renderer for a map.
    pub fn new(source: MapSource, options: RenderOptions) -> Renderer {
        let encoder = TileEncoder::new(options.compression);
        Self::with_encoder(source, options, encoder)
    }

    /// A renderer that shares another's cache of single-colour tiles.
    pub fn with_encoder(
        source: MapSource,
        options: RenderOptions,
        encoder: TileEncoder,
    ) -> Renderer {
        if let Some(mb) = options.gdal_cache_mb {
            set_gdal_cache(mb);
        }
        let rasters = std::iter::repeat_with(|| None)
            .take(source.map().layers.len())
            .collect();
        let statement_timeout_ms = options.statement_timeout_ms;
        let postgis_connections = options.postgis_connections;
        Renderer {
            source,
            options,
            encoder,
            rasters,
            text: TextCaches::default(),
            images: ImageCache::default(),
            postgis: QueryAhead::new(statement_timeout_ms, postgis_connections),
            files: FileReaders::default(),
        }
    }

    /// This worker's PostGIS queries and connections so far.
    pub fn postgis(&self) -> PostgisCounts {
        self.postgis.counts()
    }

    /// This worker's files of layers read per metatile (their counter
    /// counts reads).
    pub fn files(&self) -> &FileReaders {
        &self.files
    }

    /// This worker's text caches (their counters measure them).
    pub fn text_caches(&self) -> &TextCaches {
        &self.text
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
        self.render_metatile_unless_stopped(meta, &AtomicBool::new(false))
    }

    /// Like [`Renderer::render_metatile`], but gives up with
    /// [`Error::Stopped`] soon after `stop` is set (another thread sets it
    /// when nobody waits for the render any more). The flag is read before
    /// each layer and before each tile is encoded: a layer's query and
    /// drawing run to their end, so the render stops within one layer's
    /// time (osm-carto: tens of milliseconds, against seconds for a
    /// metatile).
    pub fn render_metatile_unless_stopped(
        &mut self,
        meta: &Metatile,
        stop: &AtomicBool,
    ) -> Result<Vec<RenderedTile>> {
        let image = self.draw(meta, stop)?;
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
            if stop.load(Ordering::Relaxed) {
                return Err(stopped(meta));
            }
            let png = self
                .encoder
                .encode(&buffer, size, size, self.options.format)?;
            let single_colour = crate::encode::single_colour(&buffer).is_some();
            tiles.push(RenderedTile {
                tile,
                png,
                single_colour,
            });
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
        self.draw(meta, &AtomicBool::new(false))
    }

    fn draw(&mut self, meta: &Metatile, stop: &AtomicBool) -> Result<MetatileImage> {
        let opts = &self.options;
        let transform = PixelTransform::for_metatile(meta, opts.tile_size, 0)
            .map_err(|e| render_error(meta, e))?;
        let mut canvas =
            Canvas::new(transform, opts.scale_factor).ok_or_else(|| Error::Render {
                what: format!("metatile {meta}"),
                message: "the image size is not possible".into(),
            })?;
        let source = self.source.clone();
        let map = source.map();
        if let Some(background) = map.background_color {
            canvas.clear(background);
        }
        let scale = scale_denominator(meta.z(), opts.tile_size, opts.scale_factor);
        let mpp = transform.metres_per_pixel();
        // One placement engine for the whole metatile: a label of an
        // earlier layer blocks a later one. Labels must touch the buffered
        // image, as in Mapnik.
        let (width_px, height_px) = transform.image_size();
        let image = Rect::new(0.0, 0.0, f64::from(width_px), f64::from(height_px));
        let map_buffer = match (map.buffer_size, opts.buffer_if_unset) {
            (0, Some(unset)) => unset,
            (set, _) => set,
        };
        let label_buffer = f64::from(opts.buffer.unwrap_or(map_buffer));
        let mut collisions = Collisions::new(image.grown(label_buffer));
        // A style without text has no font book; its placement engine
        // still places markers and points.
        let no_fonts = FontBook::default();
        let mut shaper = Shaper::new(source.inner.fonts.as_ref().unwrap_or(&no_fonts));
        let mut labels = LabelContext {
            shaper: &mut shaper,
            caches: &mut self.text,
            images: &mut self.images,
            collisions: &mut collisions,
            chains: &source.inner.chains,
            scale_factor: opts.scale_factor,
            image,
        };
        // The area a vector layer is read in, if it is drawn at all: a
        // layer none of whose styles has a rule at this scale is not read
        // (Mapnik does not query it either).
        let buffered_area = canvas.area();
        let read_area = |layer: &Layer| {
            let drawn = layer.visible(scale)
                && layer.styles.iter().any(|name| {
                    map.style(name)
                        .is_some_and(|style| !style.active_rules(scale).is_empty())
                });
            let buffer_px = opts
                .buffer
                .unwrap_or(layer.buffer_size.unwrap_or(map_buffer));
            drawn.then(|| buffered_area.expanded(f64::from(buffer_px) * mpp))
        };
        let read_areas: Vec<Option<MercatorBbox>> = map.layers.iter().map(read_area).collect();
        // Every PostGIS query of the metatile, in drawing order, starts now
        // on the query thread: the database answers the next layers while
        // this one is drawn.
        let queries: Vec<LayerQuery> = map
            .layers
            .iter()
            .enumerate()
            .filter(|(index, _)| {
                source.raster_source(*index).is_none() && source.layer_data(*index).is_none()
            })
            .filter_map(|(index, _)| {
                let postgis = source.postgis_layer(index)?.clone();
                let bbox = read_areas.get(index).copied().flatten()?;
                Some(LayerQuery {
                    layer: index,
                    postgis,
                    area: QueryArea {
                        bbox,
                        scale_denominator: scale,
                        pixel_size: (mpp, mpp),
                    },
                })
            })
            .collect();
        let mut answers = (!queries.is_empty()).then(|| self.postgis.start(queries));
        // The image styles drawn apart are drawn on (made when first needed).
        let mut apart: Option<Canvas> = None;
        for (index, layer) in map.layers.iter().enumerate() {
            if stop.load(Ordering::Relaxed) {
                return Err(stopped(meta));
            }
            if !layer.visible(scale) {
                continue;
            }
            if let Some(raster) = source.raster_source(index) {
                let Some(open) = self.rasters.get_mut(index) else {
                    continue;
                };
                let target = RasterTarget {
                    transform,
                    scale_factor: opts.scale_factor,
                    scale,
                };
                draw_raster_layer(&mut canvas, &target, map, layer, raster, open)?;
                continue;
            }
            let Some(query) = read_areas.get(index).copied().flatten() else {
                continue;
            };
            let queried;
            let data = match (source.layer_data(index), source.postgis_layer(index)) {
                (Some(data), _) => data,
                (None, Some(_)) => {
                    let answer = match &mut answers {
                        Some(answers) => answers.next(index),
                        None => Err(crate::source::SourceError::Gdal {
                            what: "querying PostGIS".into(),
                            message: "the layer's query was not started".into(),
                        }),
                    };
                    queried = answer.map_err(|source| Error::Data {
                        layer: layer.name.clone(),
                        source,
                    })?;
                    &queried
                }
                (None, None) => match source.file_layer(index) {
                    Some(file) => {
                        queried = self
                            .files
                            .read(file, &query)
                            .map_err(|source| Error::Data {
                                layer: layer.name.clone(),
                                source,
                            })?;
                        &queried
                    }
                    None => continue,
                },
            };
            let found = data.query(&query, mpp);
            if found.is_empty() {
                continue;
            }
            // `group-by`: consecutive runs of features with one value of
            // the field are drawn style by style, run by run (Mapnik's
            // feature_style_processor), so that e.g. road casings and fills
            // interleave by layer. Without it the whole set is one run.
            let runs: Vec<&[Found<'_>]> = match &layer.group_by {
                Some(field) => found
                    .chunk_by(|a, b| {
                        (a as &dyn FeatureView).attribute(field)
                            == (b as &dyn FeatureView).attribute(field)
                    })
                    .collect(),
                None => vec![&found[..]],
            };
            for run in runs {
                for style_name in &layer.styles {
                    let Some(style) = map.style(style_name) else {
                        continue;
                    };
                    let rules = style.active_rules(scale);
                    if rules.is_empty() {
                        continue;
                    }
                    if drawn_apart(style) {
                        // One transparent image for every style drawn
                        // apart in this metatile: compositing leaves it
                        // transparent again.
                        let apart = match &mut apart {
                            Some(apart) => apart,
                            None => {
                                apart.insert(Canvas::new(transform, opts.scale_factor).ok_or_else(
                                    || Error::Render {
                                        what: format!("metatile {meta}"),
                                        message: "the image size is not possible".into(),
                                    },
                                )?)
                            }
                        };
                        draw_features(apart, run, &rules, &mut labels);
                        apart.filter(&style.image_filters);
                        canvas.composite_and_clear(apart, style.comp_op, style.opacity);
                    } else {
                        draw_features(&mut canvas, run, &rules, &mut labels);
                    }
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

fn stopped(meta: &Metatile) -> Error {
    Error::Stopped {
        what: format!("metatile {meta}"),
    }
}

/// Whether a style is drawn on its own transparent image, then composited
/// (Mapnik's `start_style_processing`): with a `comp-op` other than
/// src-over, or an opacity below 1. Otherwise it draws straight onto the
/// metatile, which is the same as compositing with src-over at opacity 1.
fn drawn_apart(style: &Style) -> bool {
    style.opacity < 1.0 || style.comp_op != CompOp::SrcOver || !style.image_filters.is_empty()
}

/// Where a raster layer is drawn.
struct RasterTarget {
    transform: PixelTransform,
    scale_factor: f64,
    /// The scale denominator.
    scale: f64,
}

/// Draws a raster layer: for each of its styles, each `RasterSymbolizer`
/// of the rules that apply at this scale, in order, with its opacity. The
/// raster is warped once per resampling method. A layer whose rules hold no
/// `RasterSymbolizer` draws nothing, as in Mapnik.
fn draw_raster_layer(
    canvas: &mut Canvas,
    target: &RasterTarget,
    map: &Map,
    layer: &Layer,
    raster: &RasterSource,
    open: &mut Option<RasterLayer>,
) -> Result<()> {
    let data_error = |source| Error::Data {
        layer: layer.name.clone(),
        source,
    };
    let render_error = |message: &str| Error::Render {
        what: format!("layer `{}`", layer.name),
        message: message.into(),
    };
    let area = canvas.area();
    if raster.bounds().is_some_and(|b| !b.intersects(&area)) {
        return Ok(());
    }
    let mut matching: Vec<&Rule> = Vec::new();
    let passes: Vec<(&Style, Vec<&RasterSymbolizer>)> = layer
        .styles
        .iter()
        .filter_map(|name| map.style(name))
        .map(|style| {
            (
                style,
                raster_symbolizers(style, target.scale, &mut matching),
            )
        })
        .filter(|(_, symbolizers)| !symbolizers.is_empty())
        .collect();
    // Each resampling method's warped image, and how many symbolizers still
    // need it (the last one takes it instead of copying it).
    let mut warped: Vec<(ScalingMethod, Option<Vec<u8>>, usize)> = Vec::new();
    for symbolizer in passes.iter().flat_map(|(_, s)| s) {
        match warped.iter_mut().find(|(s, ..)| *s == symbolizer.scaling) {
            Some(entry) => entry.2 += 1,
            None => warped.push((symbolizer.scaling, None, 1)),
        }
    }
    let (width, height) = target.transform.image_size();
    for (style, symbolizers) in &passes {
        // A style with a comp-op or an opacity is drawn apart, then
        // composited (as for vector layers).
        let mut apart = if drawn_apart(style) {
            let c = Canvas::new(target.transform, target.scale_factor)
                .ok_or_else(|| render_error("the image size is not possible"))?;
            Some(c)
        } else {
            None
        };
        for symbolizer in symbolizers {
            let Some(entry) = warped.iter_mut().find(|(s, ..)| *s == symbolizer.scaling) else {
                continue;
            };
            if entry.1.is_none() {
                let opened = match open {
                    Some(opened) => opened,
                    None => open.insert(raster.open().map_err(data_error)?),
                };
                let image = opened
                    .warp(&area, width, height, symbolizer.scaling)
                    .map_err(data_error)?;
                // No pixel of the raster here: an empty image stands for it.
                entry.1 = Some(image.unwrap_or_default());
            }
            entry.2 -= 1;
            let image = match &mut entry.1 {
                Some(image) if image.is_empty() => continue,
                Some(image) if entry.2 == 0 => std::mem::take(image),
                Some(image) => image.clone(),
                None => continue,
            };
            let target_canvas = apart.as_mut().unwrap_or(&mut *canvas);
            if !target_canvas.blend_rgba(image, symbolizer.comp_op, symbolizer.opacity) {
                return Err(render_error("the warped raster does not fit the image"));
            }
        }
        if let Some(mut apart) = apart {
            apart.filter(&style.image_filters);
            canvas.composite_and_clear(&mut apart, style.comp_op, style.opacity);
        }
    }
    Ok(())
}

/// The `RasterSymbolizer`s of a style's rules that apply to a raster at
/// this scale, in order. Filters see a feature without attributes.
fn raster_symbolizers<'a>(
    style: &'a Style,
    scale: f64,
    matching: &mut Vec<&'a Rule>,
) -> Vec<&'a RasterSymbolizer> {
    let rules = style.active_rules(scale);
    matching.clear();
    rules.matching(&RasterFeature, matching);
    matching
        .iter()
        .flat_map(|rule| &rule.symbolizers)
        .filter_map(|s| match s {
            Symbolizer::Raster(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// What a raster looks like to a `<Filter>`: no attributes, no geometry.
struct RasterFeature;

impl FeatureView for RasterFeature {
    fn attribute(&self, _name: &str) -> Option<Value> {
        None
    }

    fn geometry_type(&self) -> GeometryType {
        GeometryType::Unknown
    }
}

/// Sets GDAL's block cache size, once per process (see
/// [`RenderOptions::gdal_cache_mb`]).
fn set_gdal_cache(mb: u32) {
    static CACHE_MB: Mutex<Option<u32>> = Mutex::new(None);
    let mut set = match CACHE_MB.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    match *set {
        Some(current) if current == mb => {}
        Some(current) => tracing::warn!(
            requested_mb = mb,
            current_mb = current,
            "GDAL's block cache is one per process and already set; keeping it"
        ),
        None => {
            let bytes = i64::from(mb) * 1024 * 1024;
            // SAFETY: a plain setter of a process-wide size (GDAL takes its
            // cache lock to shrink the cache); no pointers involved.
            unsafe { gdal_sys::GDALSetCacheMax64(bytes) };
            tracing::debug!(mb, "GDAL block cache size set");
            *set = Some(mb);
        }
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
fn draw_features(
    canvas: &mut Canvas,
    found: &[Found<'_>],
    rules: &crate::style::ActiveRules<'_>,
    labels: &mut LabelContext<'_, '_>,
) {
    let mut matching: Vec<&Rule> = Vec::new();
    for feature in found {
        matching.clear();
        rules.matching(feature as &dyn FeatureView, &mut matching);
        for rule in &matching {
            for symbolizer in &rule.symbolizers {
                draw_symbolizer(canvas, feature, symbolizer, labels);
            }
        }
    }
}

fn draw_symbolizer(
    canvas: &mut Canvas,
    feature: &Found<'_>,
    symbolizer: &Symbolizer,
    labels: &mut LabelContext<'_, '_>,
) {
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
        Symbolizer::Markers(style) => crate::markers::draw_markers(canvas, feature, style, labels),
        Symbolizer::Point(style) => crate::markers::draw_point(canvas, feature, style, labels),
        Symbolizer::PolygonPattern(style) => {
            crate::patterns::fill_polygons(canvas, feature, style, labels)
        }
        Symbolizer::LinePattern(style) => {
            crate::patterns::stroke_lines(canvas, feature, style, labels)
        }
        Symbolizer::Text(text) => crate::labels::draw_text(canvas, feature, text, labels),
        Symbolizer::Shield(shield) => crate::labels::draw_shield(canvas, feature, shield, labels),
        // Raster layers are drawn by draw_raster_layer.
        Symbolizer::Raster(_) => {}
    }
}

// Renderers move to their worker thread once they are built.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<Renderer>();
    assert_send::<MapSource>();
};
