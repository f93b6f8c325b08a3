//! Raster data (`type=gdal`): GDAL datasets such as GeoTIFF, warped into a
//! metatile's Web Mercator pixel grid with `GDALWarp`.
//!
//! Two halves, because a GDAL dataset may move between threads but must
//! never be used by two at once:
//! - [`RasterSource`] is plain data (the file, the band choice, the source
//!   SRS, the footprint in metres), checked once at load time and shared by
//!   every worker inside the `MapSource`.
//! - [`RasterLayer`] is one worker's open dataset. Each `Renderer` opens its
//!   own on first use and keeps it.
//!
//! # Warping
//! For each metatile, [`RasterLayer::warp`] calls `GDALWarp` (through
//! `gdal-sys`: the `gdal` crate's `reproject` writes no alpha) with
//! `-of MEM -t_srs EPSG:3857 -te <area> -ts <w> <h> -r <resampling>
//! -dstalpha`, reads the bands of the in-memory result and returns
//! premultiplied RGBA, with alpha 0 wherever the source has no data (its
//! nodata value, its mask or alpha band, or simply outside the raster).
//!
//! # Bands
//! | Bands in the file | `band` parameter | Drawn as |
//! |---|---|---|
//! | any | `band=N` | grey from band N (alpha from nodata/mask only) |
//! | 1 | none | grey |
//! | 2 | none | grey + alpha (band 2 is the alpha) |
//! | 3 | none | RGB |
//! | 4 | none | RGBA (band 4 is the alpha) |
//! | 5 or more | none | load error: choose a band with `band` |
//!
//! Samples are converted to 8 bits the way GDAL's `RasterIO` converts them:
//! rounded and clamped to 0–255 (there is no `RasterColorizer`, so a
//! 16-bit or float raster is only meaningful if its values are 0–255).
//!
//! # Source SRS
//! Mapnik trusts the layer's `srs` over the file's own, and so do we, with
//! one exception: when the layer's `srs` is Mapnik's default
//! (`+proj=longlat +ellps=WGS84 +datum=WGS84 +no_defs`, i.e. the style did
//! not say) and the file carries its own SRS, the file's SRS is used. A
//! GeoTIFF in EPSG:3857 under a layer without `srs` thus lands where it
//! belongs, where Mapnik would misplace it.
//!
//! # Resampling
//! Mapnik's `scaling` becomes GDAL's `-r` ([`gdal_resampling`]).

use std::ffi::{c_char, c_int, CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr;

use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef};
use gdal::{Dataset, DatasetOptions, GdalOpenFlags};
use tile_math::{MercatorBbox, MAX_MERCATOR};

use super::SourceError;
use crate::style::symbolizer::ScalingMethod;
use crate::style::{Datasource, DEFAULT_SRS};

/// A raster layer's description, checked at load time. Plain data: shared
/// by every worker.
#[derive(Debug, Clone, PartialEq)]
pub struct RasterSource {
    file: PathBuf,
    /// The band to draw as grey (1-based), or `None` for "by band count".
    band: Option<u32>,
    /// `-srcnodata` override.
    nodata: Option<f64>,
    /// Bands in the file.
    band_count: usize,
    /// WKT handed to GDALWarp as `-s_srs`, or `None` to use the file's own.
    source_srs: Option<String>,
    /// The raster's footprint in Web Mercator metres, when it could be
    /// computed: metatiles outside it are not warped at all.
    bounds: Option<MercatorBbox>,
}

/// How the bands of the warped image become RGBA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bands {
    /// One band (1-based, in the warped image) as grey.
    Grey(usize),
    /// Bands 1, 2, 3 as red, green, blue.
    Rgb,
}

impl RasterSource {
    /// Checks a `type=gdal` datasource: the file exists and opens as a
    /// raster, is georeferenced, the band choice fits it and its SRS (or
    /// the layer's `srs`) is understood.
    pub fn load(datasource: &Datasource, srs: &str) -> Result<RasterSource, SourceError> {
        let Datasource::Gdal { file, band, nodata } = datasource else {
            return Err(SourceError::Gdal {
                what: "loading a raster layer".into(),
                message: "the datasource is not type=gdal".into(),
            });
        };
        let dataset = open_raster(file)?;
        let fail = |message: String| SourceError::Gdal {
            what: format!("reading {}", file.display()),
            message,
        };
        let band_count = dataset.raster_count();
        if band_count == 0 {
            return Err(fail("the file has no raster bands".into()));
        }
        match band {
            Some(b) if *b as usize > band_count => {
                return Err(fail(format!(
                    "band={b} does not exist: the file has {band_count} band(s)"
                )))
            }
            None if band_count > 4 => {
                return Err(fail(format!(
                    "the file has {band_count} bands; choose one with the `band` parameter \
                     (1 to 4 bands are drawn as grey, grey + alpha, RGB and RGBA)"
                )))
            }
            _ => {}
        }
        let geo = dataset.geo_transform().map_err(|e| {
            fail(format!(
                "the raster is not georeferenced (no geotransform): {e}"
            ))
        })?;
        let file_srs = dataset
            .spatial_ref()
            .ok()
            .filter(|s| s.to_wkt().is_ok_and(|w| !w.is_empty()));
        let (srs_ref, source_srs) = match file_srs {
            Some(file_srs) if is_default_srs(srs) => (file_srs, None),
            _ => {
                let layer_srs =
                    SpatialRef::from_definition(srs).map_err(|e| SourceError::BadSrs {
                        srs: srs.to_owned(),
                        message: e.to_string(),
                    })?;
                let wkt = layer_srs.to_wkt().map_err(|e| SourceError::BadSrs {
                    srs: srs.to_owned(),
                    message: e.to_string(),
                })?;
                (layer_srs, Some(wkt))
            }
        };
        let (w, h) = dataset.raster_size();
        let bounds = footprint(&geo, w as f64, h as f64, srs_ref);
        if bounds.is_none() {
            tracing::debug!(
                file = %file.display(),
                "raster footprint unknown in EPSG:3857; every metatile will be warped"
            );
        }
        Ok(RasterSource {
            file: file.clone(),
            band: *band,
            nodata: *nodata,
            band_count,
            source_srs,
            bounds,
        })
    }

    /// The raster file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The raster's footprint in Web Mercator metres, if known.
    pub fn bounds(&self) -> Option<MercatorBbox> {
        self.bounds
    }

    /// Whether the style's `srs` is used (`true`) or the file's own.
    pub fn uses_layer_srs(&self) -> bool {
        self.source_srs.is_some()
    }

    /// Opens this raster for one worker.
    pub fn open(&self) -> Result<RasterLayer, SourceError> {
        let dataset = open_raster(&self.file)?;
        // With `band=N`, warp a one-band VRT of that band: warping all
        // bands would make a pixel "data" when any band has data.
        let one_band = match self.band {
            Some(band) => {
                let args = ["-of", "VRT", "-b", &band.to_string()].map(String::from);
                Some(
                    gdal_translate(&dataset, &args).map_err(|message| SourceError::Gdal {
                        what: format!("selecting band {band} of {}", self.file.display()),
                        message,
                    })?,
                )
            }
            None => None,
        };
        Ok(RasterLayer {
            one_band,
            dataset,
            source: self.clone(),
        })
    }

    /// What `-srcalpha`/`-nosrcalpha` says and how the warped bands are
    /// read. The warped image always has its alpha band last.
    fn bands(&self) -> (&'static str, Bands) {
        match (self.band, self.band_count) {
            // The one-band VRT.
            (Some(_), _) => ("-nosrcalpha", Bands::Grey(1)),
            (None, 2) => ("-srcalpha", Bands::Grey(1)),
            (None, 3) => ("-nosrcalpha", Bands::Rgb),
            (None, 4) => ("-srcalpha", Bands::Rgb),
            (None, _) => ("-nosrcalpha", Bands::Grey(1)),
        }
    }

    /// The `gdalwarp` arguments for one image.
    fn warp_args(
        &self,
        area: &MercatorBbox,
        width: u32,
        height: u32,
        scaling: ScalingMethod,
    ) -> Vec<String> {
        let (alpha_flag, _) = self.bands();
        let mut args: Vec<String> = [
            "-of",
            "MEM",
            "-t_srs",
            "EPSG:3857",
            "-r",
            gdal_resampling(scaling),
            "-dstalpha",
            alpha_flag,
            "-te",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        for v in [area.left, area.bottom, area.right, area.top] {
            // `{:?}` keeps every digit of an f64.
            args.push(format!("{v:?}"));
        }
        args.extend(["-ts".into(), width.to_string(), height.to_string()]);
        if let Some(srs) = &self.source_srs {
            args.extend(["-s_srs".into(), srs.clone()]);
        }
        if let Some(nodata) = self.nodata {
            args.extend(["-srcnodata".into(), format!("{nodata:?}")]);
        }
        args
    }
}

/// One worker's open raster.
///
/// It owns a `gdal::Dataset`, which is `Send` but not `Sync`: the layer may
/// move to a worker thread with its `Renderer`, and the compiler keeps it
/// from being shared between threads.
#[derive(Debug)]
pub struct RasterLayer {
    source: RasterSource,
    /// With `band=N`: a VRT of that band alone, which reads from `dataset`.
    /// Declared before `dataset` so that it is closed first.
    one_band: Option<Dataset>,
    dataset: Dataset,
}

impl RasterLayer {
    /// What it was opened from.
    pub fn source(&self) -> &RasterSource {
        &self.source
    }

    /// Warps the raster into a `width`×`height` image of `area` (Web
    /// Mercator metres) and returns its premultiplied RGBA pixels, row by
    /// row; `None` when no pixel of the raster lands in the image.
    pub fn warp(
        &self,
        area: &MercatorBbox,
        width: u32,
        height: u32,
        scaling: ScalingMethod,
    ) -> Result<Option<Vec<u8>>, SourceError> {
        if let Some(bounds) = self.source.bounds {
            if !bounds.intersects(area) {
                return Ok(None);
            }
        }
        let fail = |message: String| SourceError::Gdal {
            what: format!("warping {}", self.source.file.display()),
            message,
        };
        let args = self.source.warp_args(area, width, height, scaling);
        let input = self.one_band.as_ref().unwrap_or(&self.dataset);
        let warped = gdal_warp(input, &args).map_err(fail)?;
        let (_, bands) = self.source.bands();
        let rgba = read_premultiplied(&warped, bands, width as usize, height as usize)
            .map_err(|e| fail(e.to_string()))?;
        if rgba.chunks_exact(4).all(|p| p[3] == 0) {
            return Ok(None);
        }
        Ok(Some(rgba))
    }
}

/// GDAL's `-r` for Mapnik's `scaling`.
///
/// | Mapnik | GDAL | Why |
/// |---|---|---|
/// | `near` | `near` | same |
/// | `bilinear` | `bilinear` | same |
/// | `bicubic` | `cubic` | same kernel family (GDAL's is Catmull-Rom) |
/// | `lanczos` | `lanczos` | same |
/// | `spline16`, `catrom`, `mitchell` | `cubic` | 2-pixel cubic kernels |
/// | `spline36`, `sinc`, `bessel`, `blackman` | `lanczos` | 3-pixel or windowed-sinc kernels |
/// | `hanning`, `hamming`, `hermite`, `kaiser` | `bilinear` | 1-pixel kernels |
/// | `quadric`, `gaussian` | `cubicspline` | smoothing (blurring) kernels |
pub fn gdal_resampling(scaling: ScalingMethod) -> &'static str {
    use ScalingMethod::*;
    match scaling {
        Near => "near",
        Bilinear | Hanning | Hamming | Hermite | Kaiser => "bilinear",
        Bicubic | Spline16 | Catrom | Mitchell => "cubic",
        Lanczos | Spline36 | Sinc | Bessel | Blackman => "lanczos",
        Quadric | Gaussian => "cubicspline",
    }
}

/// Whether a layer `srs` is Mapnik's default (whitespace aside).
fn is_default_srs(srs: &str) -> bool {
    let words = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    words(srs) == words(DEFAULT_SRS)
}

fn open_raster(file: &Path) -> Result<Dataset, SourceError> {
    if !file.exists() {
        return Err(SourceError::MissingFile(file.to_path_buf()));
    }
    let options = DatasetOptions {
        open_flags: GdalOpenFlags::GDAL_OF_RASTER | GdalOpenFlags::GDAL_OF_READONLY,
        ..DatasetOptions::default()
    };
    Dataset::open_ex(file, options).map_err(|e| SourceError::Gdal {
        what: format!("opening {} as a raster", file.display()),
        message: e.to_string(),
    })
}

/// The raster's extent in EPSG:3857, or `None` when it cannot be projected
/// (then every metatile is warped and GDAL sorts it out).
fn footprint(geo: &[f64; 6], w: f64, h: f64, mut srs: SpatialRef) -> Option<MercatorBbox> {
    let corners = [(0.0, 0.0), (w, 0.0), (0.0, h), (w, h)].map(|(px, py)| {
        (
            geo[0] + px * geo[1] + py * geo[2],
            geo[3] + px * geo[4] + py * geo[5],
        )
    });
    let xs = corners.map(|c| c.0);
    let ys = corners.map(|c| c.1);
    let fold = |v: [f64; 4], f: fn(f64, f64) -> f64| v.into_iter().reduce(f);
    let (mut x0, mut x1) = (fold(xs, f64::min)?, fold(xs, f64::max)?);
    let (mut y0, mut y1) = (fold(ys, f64::min)?, fold(ys, f64::max)?);
    srs.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    if srs.is_geographic() {
        // The poles are at infinity in Mercator; the world stops at ±85.05°.
        const MAX_LAT: f64 = 85.051_128_779_806_6;
        y0 = y0.clamp(-MAX_LAT, MAX_LAT);
        y1 = y1.clamp(-MAX_LAT, MAX_LAT);
        x0 = x0.max(-540.0);
        x1 = x1.min(540.0);
    }
    let mut mercator = SpatialRef::from_epsg(3857).ok()?;
    mercator.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    let transform = CoordTransform::new(&srs, &mercator).ok()?;
    let [left, bottom, right, top] = transform.transform_bounds(&[x0, y0, x1, y1], 21).ok()?;
    let b = MercatorBbox {
        left,
        bottom: bottom.max(-MAX_MERCATOR),
        right,
        top: top.min(MAX_MERCATOR),
    };
    let finite = [b.left, b.bottom, b.right, b.top]
        .iter()
        .all(|v| v.is_finite());
    (finite && b.left <= b.right && b.bottom <= b.top).then_some(b)
}

/// A GDAL string list (`char **`), destroyed with `CSLDestroy` on drop.
struct StringList(*mut *mut c_char);

impl StringList {
    fn new(items: &[String]) -> Result<StringList, String> {
        let mut list = StringList(ptr::null_mut());
        for item in items {
            let c = CString::new(item.as_str())
                .map_err(|_| format!("argument {item:?} contains a NUL byte"))?;
            // SAFETY: `list.0` is null or a list made by CSLAddString;
            // `c` is a valid C string that CSLAddString copies. The returned
            // list replaces the old pointer (which CSLAddString reallocated),
            // so `list` always owns exactly one valid list and frees it on
            // drop, also when a later item fails.
            list.0 = unsafe { gdal_sys::CSLAddString(list.0, c.as_ptr()) };
        }
        Ok(list)
    }
}

impl Drop for StringList {
    fn drop(&mut self) {
        // SAFETY: the pointer is null (CSLDestroy accepts that) or a list
        // made by CSLAddString that nothing else owns.
        unsafe { gdal_sys::CSLDestroy(self.0) };
    }
}

/// `GDALWarpAppOptions`, freed on drop.
struct WarpOptions(*mut gdal_sys::GDALWarpAppOptions);

impl Drop for WarpOptions {
    fn drop(&mut self) {
        // SAFETY: made by GDALWarpAppOptionsNew (never null here) and freed
        // only here.
        unsafe { gdal_sys::GDALWarpAppOptionsFree(self.0) };
    }
}

/// `GDALTranslateOptions`, freed on drop.
struct TranslateOptions(*mut gdal_sys::GDALTranslateOptions);

impl Drop for TranslateOptions {
    fn drop(&mut self) {
        // SAFETY: made by GDALTranslateOptionsNew (never null here) and
        // freed only here.
        unsafe { gdal_sys::GDALTranslateOptionsFree(self.0) };
    }
}

/// GDAL's last error message on this thread (GDAL keeps it per thread).
fn last_error(what: &str) -> String {
    // SAFETY: CPLGetLastErrorMsg returns a pointer to a NUL-terminated
    // thread-local buffer that stays valid until the next GDAL call on this
    // thread; it is copied right away.
    let message = unsafe {
        let p = gdal_sys::CPLGetLastErrorMsg();
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    if message.is_empty() {
        format!("{what} failed")
    } else {
        format!("{what} failed: {message}")
    }
}

/// Runs `GDALWarp` with `gdalwarp`-style arguments (which must say
/// `-of MEM`) on one source and returns the new in-memory dataset. Every
/// GDAL object made on the way is freed on every path: the argument list
/// and the options by their guards, the result by `Dataset`'s drop
/// (`GDALClose`).
fn gdal_warp(source: &Dataset, args: &[String]) -> Result<Dataset, String> {
    let argv = StringList::new(args)?;
    // SAFETY: resets this thread's GDAL error state; no pointers involved.
    unsafe { gdal_sys::CPLErrorReset() };
    // SAFETY: `argv.0` is a valid NULL-terminated string list that
    // GDALWarpAppOptionsNew only reads (the C signature lacks `const`);
    // a null "for binary" struct is allowed. The result is owned by the
    // guard below.
    let options = unsafe { gdal_sys::GDALWarpAppOptionsNew(argv.0, ptr::null_mut()) };
    if options.is_null() {
        return Err(last_error("GDALWarpAppOptionsNew"));
    }
    let options = WarpOptions(options);
    let mut sources = [source.c_dataset()];
    let mut usage_error: c_int = 0;
    // SAFETY: the destination name is a valid C string (empty: a MEM
    // dataset has no file); a null destination handle asks GDALWarp to
    // create the output; `sources` holds one open dataset handle that
    // `source` keeps alive for the call and that GDALWarp only reads;
    // `options` is valid until its guard drops after the call;
    // `usage_error` is a valid out-pointer.
    let handle = unsafe {
        gdal_sys::GDALWarp(
            c"".as_ptr(),
            ptr::null_mut(),
            1,
            sources.as_mut_ptr(),
            options.0,
            &mut usage_error,
        )
    };
    if handle.is_null() {
        let what = if usage_error != 0 {
            "GDALWarp (bad arguments)"
        } else {
            "GDALWarp"
        };
        return Err(last_error(what));
    }
    // SAFETY: GDALWarp returned a new, open dataset that nothing else owns;
    // `Dataset` closes it (GDALClose) when dropped.
    Ok(unsafe { Dataset::from_c_dataset(handle) })
}

/// Runs `GDALTranslate` with `gdal_translate`-style arguments (which must
/// say `-of VRT`: the result lives in memory) and returns the new dataset.
/// The result reads from `source`, which must outlive it.
fn gdal_translate(source: &Dataset, args: &[String]) -> Result<Dataset, String> {
    let argv = StringList::new(args)?;
    // SAFETY: resets this thread's GDAL error state; no pointers involved.
    unsafe { gdal_sys::CPLErrorReset() };
    // SAFETY: as for GDALWarpAppOptionsNew: a valid string list, only read;
    // a null "for binary" struct is allowed; the result is owned below.
    let options = unsafe { gdal_sys::GDALTranslateOptionsNew(argv.0, ptr::null_mut()) };
    if options.is_null() {
        return Err(last_error("GDALTranslateOptionsNew"));
    }
    let options = TranslateOptions(options);
    let mut usage_error: c_int = 0;
    // SAFETY: an empty destination name with `-of VRT` keeps the result in
    // memory; `source` is an open dataset kept alive by the caller;
    // `options` is valid until its guard drops after the call;
    // `usage_error` is a valid out-pointer.
    let handle = unsafe {
        gdal_sys::GDALTranslate(
            c"".as_ptr(),
            source.c_dataset(),
            options.0,
            &mut usage_error,
        )
    };
    if handle.is_null() {
        return Err(last_error("GDALTranslate"));
    }
    // SAFETY: GDALTranslate returned a new, open dataset that nothing else
    // owns; `Dataset` closes it (GDALClose) when dropped.
    Ok(unsafe { Dataset::from_c_dataset(handle) })
}

/// Reads a warped image (colour bands, then its alpha band last) as
/// premultiplied RGBA.
fn read_premultiplied(
    warped: &Dataset,
    bands: Bands,
    width: usize,
    height: usize,
) -> Result<Vec<u8>, gdal::errors::GdalError> {
    let pixels = width * height;
    let read = |index: usize| -> Result<Vec<u8>, gdal::errors::GdalError> {
        let mut buffer = vec![0u8; pixels];
        warped.rasterband(index)?.read_into_slice::<u8>(
            (0, 0),
            (width, height),
            (width, height),
            &mut buffer,
            None,
        )?;
        Ok(buffer)
    };
    let alpha = read(warped.raster_count())?;
    let mut out = vec![0u8; pixels * 4];
    match bands {
        Bands::Grey(band) => {
            let grey = read(band)?;
            for ((px, &v), &a) in out.chunks_exact_mut(4).zip(&grey).zip(&alpha) {
                let c = premultiply(v, a);
                px.copy_from_slice(&[c, c, c, a]);
            }
        }
        Bands::Rgb => {
            let (r, g, b) = (read(1)?, read(2)?, read(3)?);
            for (i, px) in out.chunks_exact_mut(4).enumerate() {
                let a = alpha[i];
                px.copy_from_slice(&[
                    premultiply(r[i], a),
                    premultiply(g[i], a),
                    premultiply(b[i], a),
                    a,
                ]);
            }
        }
    }
    Ok(out)
}

/// `c * a / 255`, rounded (as tiny-skia premultiplies).
fn premultiply(c: u8, a: u8) -> u8 {
    let prod = u32::from(c) * u32::from(a) + 128;
    ((prod + (prod >> 8)) >> 8) as u8
}

#[cfg(test)]
mod tests;
