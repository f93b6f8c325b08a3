//! Large vector files read per metatile: Shapefiles, GeoPackages and other
//! OGR files above the size limit of [`crate::renderer::LoadOptions`] are
//! not held in memory; each worker keeps the file open and reads the
//! features of each metatile's (buffered) area through OGR's spatial
//! filter, as Mapnik's `shape` and `ogr` plugins do.
//!
//! Contract: [`FileLayer`] (shared) names the file and layer; a worker's
//! [`FileReaders`] opens each file once (GDAL datasets are not `Sync`) and
//! [`FileReaders::read`] returns the features meeting an area, in the
//! order OGR's spatial filter yields them (Mapnik reads them in that order
//! too), as a [`VectorLayer`]. Memory is then bounded by one metatile's
//! features, whatever the file's size.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gdal::vector::LayerAccess;
use gdal::Dataset;
use tile_math::{MercatorBbox, MercatorPoint, MAX_MERCATOR};

use super::vector::{find_layer, open_vector, read_layer, Reprojection, SourceError};
use super::VectorLayer;
use crate::style::{Datasource, OgrLayer};

/// A file layer read per metatile.
#[derive(Debug, Clone)]
pub struct FileLayer {
    file: PathBuf,
    layer: OgrLayer,
    srs: String,
}

impl FileLayer {
    /// The layer of a `shape` or `ogr` datasource; `None` for other types.
    pub fn new(datasource: &Datasource, srs: &str) -> Option<FileLayer> {
        let (file, layer) = match datasource {
            Datasource::Shape { file, .. } => (file.clone(), OgrLayer::Index(0)),
            Datasource::Ogr { file, layer } => (file.clone(), layer.clone()),
            _ => return None,
        };
        Some(FileLayer {
            file,
            layer,
            srs: srs.to_owned(),
        })
    }

    /// The file.
    pub fn file(&self) -> &Path {
        &self.file
    }
}

/// How many bytes a datasource's files take on disk (a Shapefile counts
/// its `.shp` and `.dbf`); `None` when it is not a plain file.
pub fn data_size(datasource: &Datasource) -> Option<u64> {
    let size = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    };
    match datasource {
        Datasource::Shape { file, .. } => {
            Some(size(file)? + size(&file.with_extension("dbf")).unwrap_or(0))
        }
        Datasource::Ogr { file, .. } => {
            // OSM files have no spatial index: OGR would read the whole file
            // for every metatile. They stay in memory.
            let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("");
            if ext.eq_ignore_ascii_case("pbf") || ext.eq_ignore_ascii_case("osm") {
                return None;
            }
            size(file)
        }
        _ => None,
    }
}

/// One worker's open files.
#[derive(Default)]
pub struct FileReaders {
    open: HashMap<PathBuf, Dataset>,
    /// Areas read (each layer of each metatile is one).
    pub reads: u64,
}

impl std::fmt::Debug for FileReaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReaders")
            .field("open", &self.open.len())
            .field("reads", &self.reads)
            .finish()
    }
}

impl FileReaders {
    /// The features of `layer` meeting `area` (Web Mercator metres).
    pub fn read(
        &mut self,
        layer: &FileLayer,
        area: &MercatorBbox,
    ) -> Result<VectorLayer, SourceError> {
        let reprojection = Reprojection::new(&layer.srs)?;
        let [x0, y0, x1, y1] = area_in_srs(&reprojection, area);
        if !self.open.contains_key(&layer.file) {
            if !layer.file.exists() {
                return Err(SourceError::MissingFile(layer.file.clone()));
            }
            let dataset = open_vector(&layer.file).map_err(|e| SourceError::Gdal {
                what: format!("opening {}", layer.file.display()),
                message: e.to_string(),
            })?;
            self.open.insert(layer.file.clone(), dataset);
        }
        let dataset = self
            .open
            .get(&layer.file)
            .ok_or_else(|| SourceError::Gdal {
                what: format!("opening {}", layer.file.display()),
                message: "not open".into(),
            })?;
        self.reads += 1;
        let what = format!("reading {} in a metatile", layer.file.display());
        let gdal_err = |e: gdal::errors::GdalError| SourceError::Gdal {
            what: what.clone(),
            message: e.to_string(),
        };
        match &layer.layer {
            OgrLayer::Sql(sql) => {
                let filter = gdal::vector::Geometry::bbox(x0, y0, x1, y1).map_err(gdal_err)?;
                let mut result = dataset
                    .execute_sql(sql, Some(&filter), gdal::vector::sql::Dialect::DEFAULT)
                    .map_err(gdal_err)?
                    .ok_or_else(|| SourceError::Gdal {
                        what: what.clone(),
                        message: "the query returned no result set".into(),
                    })?;
                read_layer(&mut *result, None, &reprojection)
            }
            OgrLayer::Name(_) | OgrLayer::Index(_) => {
                let mut l = find_layer(dataset, &layer.file, &layer.layer)?;
                l.set_spatial_filter_rect(x0, y0, x1, y1);
                let found = read_layer(&mut l, None, &reprojection);
                l.clear_spatial_filter();
                found
            }
        }
    }
}

/// A Web Mercator area in a layer's coordinates.
fn area_in_srs(reprojection: &Reprojection, a: &MercatorBbox) -> [f64; 4] {
    match reprojection {
        Reprojection::Identity => [a.left, a.bottom, a.right, a.top],
        Reprojection::LngLat => {
            let clamp = |v: f64| v.clamp(-MAX_MERCATOR, MAX_MERCATOR);
            let corner = |x: f64, y: f64| {
                MercatorPoint::new(clamp(x), clamp(y))
                    .to_lnglat(true)
                    .map(|p| (p.lng, p.lat))
                    .unwrap_or((0.0, 0.0))
            };
            let (w, s) = corner(a.left, a.bottom);
            let (e, n) = corner(a.right, a.top);
            // A metatile beyond ±180° wraps: read the whole width there.
            if a.left < -MAX_MERCATOR || a.right > MAX_MERCATOR {
                return [-180.0, s, 180.0, n];
            }
            [w, s, e, n]
        }
        Reprojection::Gdal(..) => {
            reprojection
                .bbox_from_mercator(a)
                .unwrap_or([f64::MIN, f64::MIN, f64::MAX, f64::MAX])
        }
    }
}
