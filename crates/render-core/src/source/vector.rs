//! Vector data read through GDAL/OGR, reprojected to Web Mercator once, kept
//! in memory with a spatial index and simplified per zoom level.
//!
//! Loading happens once per map (not per worker): the result holds only
//! plain Rust values, so it is shared between render threads behind an
//! `Arc`. The GDAL objects used to read it (datasets, layers, geometries,
//! spatial references, transforms) live and die inside [`VectorLayer::load`]
//! on the loading thread.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef};
use gdal::vector::{FieldValue, LayerAccess};
use gdal::Dataset;
use rstar::{Envelope, RTree, RTreeObject, AABB};
use tile_math::{LngLat, MercatorBbox, EARTH_CIRCUMFERENCE, MAX_MERCATOR};

use super::geometry::{unwrap_antimeridian, Geometry, Point};
use crate::style::filter::{
    attribute_key, attribute_keys_given, Attr, FeatureView, GeometryType, Value,
};
use crate::style::{Datasource, OgrLayer};

/// Why vector data could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// GDAL could not open or read the source. (GDAL's error is kept as
    /// text: GDAL types stay out of the public API.)
    #[error("{what}: {message}")]
    Gdal {
        /// What was being opened or read.
        what: String,
        /// GDAL's message.
        message: String,
    },
    /// The layer's `srs` is not a coordinate system GDAL knows.
    #[error("layer srs {srs:?} is not understood: {message}")]
    BadSrs {
        /// The srs as written.
        srs: String,
        /// GDAL's message.
        message: String,
    },
    /// A file named by the style is missing.
    #[error("data file {0} does not exist")]
    MissingFile(std::path::PathBuf),
    /// The file has no layer of that name (or number).
    #[error("{} has no layer {wanted_and_existing}", file.display())]
    NoSuchLayer {
        /// The file.
        file: std::path::PathBuf,
        /// The layer the style asks for and those the file has, in words:
        /// `` `streets`; its layers are: roads, buildings ``. (One string:
        /// every error of render-core carries this type, and a list would
        /// make all of them larger.)
        wanted_and_existing: String,
    },
    /// The datasource is a raster, not vector data.
    #[error("datasource is a raster (type=gdal), not vector data")]
    NotVector,
}

/// The deepest zoom that gets its own simplified copy; deeper zooms draw
/// the full geometry.
const SIMPLIFIED_ZOOMS: usize = 13;

/// Up to this many fields, a name is found by scanning the field list.
const FIELDS_SCANNED: usize = 16;

/// Simplify to a quarter pixel: invisible after antialiasing.
const SIMPLIFY_PIXELS: f64 = 0.25;

/// One feature: its geometry, its kind and its attribute values (in the
/// order of the layer's field names).
#[derive(Debug, Clone)]
pub struct Feature {
    /// Full-resolution geometry, in metres.
    pub geometry: Geometry,
    /// What Mapnik's `[mapnik::geometry_type]` says of it.
    pub kind: GeometryType,
    /// Attribute values, one per field of the layer.
    pub values: Vec<Value>,
}

/// An index entry: a feature's bounding box, possibly shifted by a whole
/// world width so that geometry reaching past ±180° is found on the other
/// side too.
#[derive(Debug, Clone, Copy)]
struct Entry {
    feature: usize,
    x_shift: f64,
    envelope: AABB<[f64; 2]>,
}

impl RTreeObject for Entry {
    type Envelope = AABB<[f64; 2]>;

    fn envelope(&self) -> Self::Envelope {
        self.envelope
    }
}

/// A vector layer held in memory, ready to draw.
#[derive(Debug)]
pub struct VectorLayer {
    fields: Vec<String>,
    /// Field lookups by name for layers with many fields; layers with few
    /// (most: a style's SQL selects what it draws) scan `fields`, which is
    /// faster than hashing the name (labels' text, `group-by`).
    field_index: Option<HashMap<String, usize>>,
    /// Filters' lookups: the field of each numbered attribute name
    /// ([`Attr::key`]; [`NO_FIELD`] where the layer has none), for the
    /// names numbered when the layer was built. Names numbered later (a
    /// style loaded after the data) fall back to the name.
    field_of_key: Vec<u32>,
    features: Vec<Feature>,
    index: Index,
    /// Simplified geometry per zoom level, made on first use.
    simplified: Vec<OnceLock<Vec<Geometry>>>,
}

/// How a layer finds the features in an area.
#[derive(Debug)]
enum Index {
    /// An R-tree: a layer held for the whole map and asked for many areas.
    Tree(RTree<Entry>),
    /// The entries in the source's order, each tested: a layer read for
    /// one metatile (PostGIS), whose rows the database already chose by
    /// area; building a tree for one question costs more than it saves,
    /// and the rows stay in the order they came.
    Scan(Vec<Entry>),
}

/// A feature found by a query, with the shift to draw it at.
#[derive(Debug, Clone, Copy)]
pub struct Found<'a> {
    /// The layer it belongs to (for attribute look-ups).
    pub layer: &'a VectorLayer,
    /// The feature.
    pub feature: &'a Feature,
    /// The geometry to draw: simplified for the zoom, or full.
    pub geometry: &'a Geometry,
    /// Add this to every x before drawing (0, or ± one world width).
    pub x_shift: f64,
    /// Position in the layer, for a stable drawing order.
    pub position: usize,
}

/// In [`VectorLayer::field_of_key`]: the layer has no such field.
const NO_FIELD: u32 = u32::MAX;

impl FeatureView for Found<'_> {
    fn attribute(&self, name: &str) -> Option<Value> {
        let i = self.layer.field_position(name)?;
        self.feature.values.get(i).cloned()
    }

    fn attribute_of(&self, attr: &Attr) -> Option<Cow<'_, Value>> {
        let i = match self.layer.field_of_key.get(attr.key() as usize) {
            Some(&NO_FIELD) => return None,
            Some(&i) => i as usize,
            None => self.layer.field_position(attr.name())?,
        };
        self.feature.values.get(i).map(Cow::Borrowed)
    }

    fn geometry_type(&self) -> GeometryType {
        self.feature.kind
    }
}

impl VectorLayer {
    /// Reads a whole layer from a datasource, reprojecting from `srs` (the
    /// Mapnik layer's `srs`, which Mapnik trusts over the file's own).
    pub fn load(datasource: &Datasource, srs: &str) -> Result<VectorLayer, SourceError> {
        let gdal_err = |what: String| {
            move |e: gdal::errors::GdalError| SourceError::Gdal {
                what,
                message: e.to_string(),
            }
        };
        let to_mercator = Reprojection::new(srs)?;
        match datasource {
            Datasource::Shape { file, .. } => {
                let dataset = open(file)?;
                let mut layer = dataset
                    .layer(0)
                    .map_err(gdal_err(format!("reading {}", file.display())))?;
                read_layer(&mut layer, None, &to_mercator)
            }
            Datasource::Ogr { file, layer } => {
                let dataset = open(file)?;
                if let OgrLayer::Sql(sql) = layer {
                    let what = format!("reading layer {layer:?} of {}", file.display());
                    return read_sql(&dataset, sql, None, what, &to_mercator);
                }
                let mut layer = find_layer(&dataset, file, layer)?;
                read_layer(&mut layer, None, &to_mercator)
            }
            Datasource::PostGis {
                connection,
                table,
                geometry_field,
                srid,
                ..
            } => {
                // Vector drivers only: with rasters allowed too, GDAL tries
                // the PostGIS Raster driver first, which fails on a database
                // without the postgis_raster extension.
                let dataset = open_vector(Path::new(connection)).map_err(gdal_err(format!(
                    "connecting to PostGIS ({})",
                    redact(connection)
                )))?;
                let what = format!("reading PostGIS table {table}");
                if table.trim_start().starts_with('(') {
                    // A Mapnik subquery: `(SELECT ...) AS name`. Mapnik's
                    // tokens ask for the whole extent here, since the layer
                    // is read once, not per tile.
                    let srid = srid.filter(|s| *s > 0).or_else(|| srs_epsg(srs));
                    let sql = format!("SELECT * FROM {}", expand_postgis_tokens(table, srid));
                    read_sql(
                        &dataset,
                        &sql,
                        geometry_field.as_deref(),
                        what,
                        &to_mercator,
                    )
                } else {
                    let mut layer = dataset.layer_by_name(table).map_err(gdal_err(what))?;
                    read_layer(&mut layer, geometry_field.as_deref(), &to_mercator)
                }
            }
            Datasource::Gdal { .. } => Err(SourceError::NotVector),
        }
    }

    /// Builds a layer from features already in metres (tests, embedding),
    /// indexed for many queries.
    pub fn from_features(fields: Vec<String>, features: Vec<Feature>) -> VectorLayer {
        Self::build(fields, features, true)
    }

    /// Builds a layer that is asked once, for the area it was read for (a
    /// metatile's PostGIS rows): no spatial index.
    pub fn from_features_for_one_query(fields: Vec<String>, features: Vec<Feature>) -> VectorLayer {
        Self::build(fields, features, false)
    }

    fn build(fields: Vec<String>, features: Vec<Feature>, indexed: bool) -> VectorLayer {
        let field_index = (fields.len() > FIELDS_SCANNED).then(|| {
            fields
                .iter()
                .enumerate()
                .map(|(i, f)| (f.clone(), i))
                .collect()
        });
        let mut entries = Vec::with_capacity(features.len());
        for (i, feature) in features.iter().enumerate() {
            let Some(b) = feature.geometry.bbox() else {
                continue;
            };
            // West, home, east: the order a query gives them in.
            for x_shift in [-EARTH_CIRCUMFERENCE, 0.0, EARTH_CIRCUMFERENCE] {
                let (left, right) = (b.left + x_shift, b.right + x_shift);
                // The unshifted copy always; a shifted one only where it
                // lands (partly) inside the world.
                if x_shift == 0.0 || (right > -MAX_MERCATOR && left < MAX_MERCATOR) {
                    let envelope = AABB::from_corners([left, b.bottom], [right, b.top]);
                    entries.push(Entry {
                        feature: i,
                        x_shift,
                        envelope,
                    });
                }
            }
        }
        let mut field_of_key = vec![NO_FIELD; attribute_keys_given() as usize];
        for (i, name) in fields.iter().enumerate().rev() {
            // In reverse, so that the first of two fields of one name wins,
            // as in `field_position`.
            if let Some(slot) = attribute_key(name).and_then(|k| field_of_key.get_mut(k as usize)) {
                *slot = u32::try_from(i).unwrap_or(NO_FIELD);
            }
        }
        VectorLayer {
            fields,
            field_index,
            field_of_key,
            features,
            index: if indexed {
                Index::Tree(RTree::bulk_load(entries))
            } else {
                Index::Scan(entries)
            },
            simplified: (0..SIMPLIFIED_ZOOMS).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The position of field `name`.
    fn field_position(&self, name: &str) -> Option<usize> {
        match &self.field_index {
            Some(index) => index.get(name).copied(),
            None => self.fields.iter().position(|f| f == name),
        }
    }

    /// The attribute names.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// All features, in the source's order.
    pub fn features(&self) -> &[Feature] {
        &self.features
    }

    /// The features whose bounding box meets `area`, in the source's order
    /// (Mapnik draws in that order), with geometry simplified for drawing at
    /// `metres_per_pixel`.
    pub fn query(&self, area: &MercatorBbox, metres_per_pixel: f64) -> Vec<Found<'_>> {
        let geometries = self.geometries_for(metres_per_pixel);
        let envelope = AABB::from_corners([area.left, area.bottom], [area.right, area.top]);
        let found = move |e: &Entry| Found {
            layer: self,
            feature: &self.features[e.feature],
            geometry: geometries.get(e.feature),
            x_shift: e.x_shift,
            position: e.feature,
        };
        match &self.index {
            Index::Tree(tree) => {
                let mut found: Vec<Found<'_>> = tree
                    .locate_in_envelope_intersecting(&envelope)
                    .map(found)
                    .collect();
                found.sort_by(|a, b| {
                    a.position
                        .cmp(&b.position)
                        .then(a.x_shift.total_cmp(&b.x_shift))
                });
                found
            }
            // Already in that order.
            Index::Scan(entries) => entries
                .iter()
                .filter(|e| e.envelope.intersects(&envelope))
                .map(found)
                .collect(),
        }
    }

    /// The geometry list to draw at a resolution: the simplified copy of the
    /// zoom level whose pixels are no larger, or the full geometry.
    fn geometries_for(&self, metres_per_pixel: f64) -> GeometryList<'_> {
        let z0 = EARTH_CIRCUMFERENCE / 256.0;
        let zoom = (z0 / metres_per_pixel).log2().floor();
        if !(0.0..SIMPLIFIED_ZOOMS as f64).contains(&zoom) {
            return GeometryList::Full(&self.features);
        }
        let level = zoom as usize;
        let tolerance = z0 / 2f64.powi(level as i32) * SIMPLIFY_PIXELS;
        let list = self.simplified[level].get_or_init(|| {
            self.features
                .iter()
                .map(|f| f.geometry.simplified(tolerance))
                .collect()
        });
        GeometryList::Simplified(list)
    }
}

/// Either the features' own geometry or a simplified copy.
#[derive(Clone, Copy)]
enum GeometryList<'a> {
    Full(&'a [Feature]),
    Simplified(&'a [Geometry]),
}

impl<'a> GeometryList<'a> {
    fn get(self, i: usize) -> &'a Geometry {
        match self {
            GeometryList::Full(features) => &features[i].geometry,
            GeometryList::Simplified(list) => &list[i],
        }
    }
}

/// Reads the result of an SQL statement as a layer.
fn read_sql(
    dataset: &Dataset,
    sql: &str,
    geometry_field: Option<&str>,
    what: String,
    to_mercator: &Reprojection,
) -> Result<VectorLayer, SourceError> {
    let mut result = dataset
        .execute_sql(sql, None, gdal::vector::sql::Dialect::DEFAULT)
        .map_err(|e| SourceError::Gdal {
            what: what.clone(),
            message: e.to_string(),
        })?
        .ok_or_else(|| SourceError::Gdal {
            what,
            message: "the query returned no result set".into(),
        })?;
    read_layer(&mut *result, geometry_field, to_mercator)
}

fn open(file: &Path) -> Result<Dataset, SourceError> {
    if !file.exists() {
        return Err(SourceError::MissingFile(file.to_path_buf()));
    }
    open_vector(file).map_err(|e| SourceError::Gdal {
        what: format!("opening {}", file.display()),
        message: e.to_string(),
    })
}

/// The layer a style names by name or number (not by SQL), or an error
/// that lists the layers the file has: GDAL's own says only that it
/// returned a NULL pointer.
pub(super) fn find_layer<'d>(
    dataset: &'d Dataset,
    file: &Path,
    layer: &OgrLayer,
) -> Result<gdal::vector::Layer<'d>, SourceError> {
    let found = match layer {
        OgrLayer::Name(name) => dataset.layer_by_name(name).ok(),
        OgrLayer::Index(i) => dataset.layer(*i as usize).ok(),
        OgrLayer::Sql(_) => None,
    };
    found.ok_or_else(|| {
        let wanted = match layer {
            OgrLayer::Name(name) => format!("`{name}`"),
            OgrLayer::Index(i) => format!("number {i} (counting from 0)"),
            OgrLayer::Sql(sql) => format!("for {sql:?}"),
        };
        let existing: Vec<String> = dataset.layers().map(|l| l.name()).collect();
        let existing = if existing.is_empty() {
            "none".to_owned()
        } else {
            existing.join(", ")
        };
        SourceError::NoSuchLayer {
            file: file.to_path_buf(),
            wanted_and_existing: format!("{wanted}; its layers are: {existing}"),
        }
    })
}

/// Opens a dataset with GDAL's vector drivers only.
pub(super) fn open_vector(name: &Path) -> gdal::errors::Result<Dataset> {
    Dataset::open_ex(
        name,
        gdal::DatasetOptions {
            open_flags: gdal::GdalOpenFlags::GDAL_OF_VECTOR,
            ..Default::default()
        },
    )
}

/// A PG: connection string with the password hidden, for messages.
pub(super) fn redact(connection: &str) -> String {
    connection
        .split_whitespace()
        .map(|part| {
            if part.starts_with("password=") {
                "password=***"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Replaces Mapnik's PostGIS tokens with values for "the whole world",
/// since a layer is read once, not per tile.
///
/// `!bbox!` becomes an envelope in the data's SRID (Mapnik's `srid`
/// parameter, else the EPSG code of the layer's `srs`): PostGIS refuses
/// `ST_Intersects` between geometries of different SRIDs (its `&&` operator
/// does not check). The envelope is the Mercator world for EPSG:3857 (and
/// when the SRID is unknown), the whole globe for EPSG:4326, and a box
/// around every coordinate a projected system produces for anything else.
fn expand_postgis_tokens(table: &str, srid: Option<i32>) -> String {
    let world = match srid {
        None | Some(3857 | 900_913) => format!(
            "ST_MakeEnvelope({m}, {m}, {M}, {M}, {srid})",
            m = -MAX_MERCATOR,
            M = MAX_MERCATOR,
            srid = srid.unwrap_or(3857)
        ),
        Some(4326) => "ST_MakeEnvelope(-180, -90, 180, 90, 4326)".to_owned(),
        Some(other) => format!("ST_MakeEnvelope(-1e15, -1e15, 1e15, 1e15, {other})"),
    };
    table
        .replace("!bbox!", &world)
        .replace("!scale_denominator!", "0")
        .replace("!pixel_width!", "0")
        .replace("!pixel_height!", "0")
}

/// The EPSG code of a layer `srs` such as `epsg:4326`, `+init=epsg:3857` or
/// a PROJ string GDAL recognises; `None` when it has none.
pub(super) fn srs_epsg(srs: &str) -> Option<i32> {
    let normalised = srs.trim().to_ascii_lowercase();
    let code = normalised
        .strip_prefix("+init=")
        .unwrap_or(&normalised)
        .strip_prefix("epsg:");
    if let Some(code) = code {
        return code.trim().parse().ok();
    }
    match Reprojection::new(srs).ok()? {
        Reprojection::Identity => Some(3857),
        Reprojection::LngLat => Some(4326),
        Reprojection::Gdal(source, _) => {
            if let Ok(code) = source.auth_code() {
                return Some(code);
            }
            // PROJ strings carry no authority. The usual ones are Web
            // Mercator (`+proj=merc +a=6378137 ... +nadgrids=@null`) and
            // lon/lat; otherwise ask GDAL (it knows UTM zones, for one).
            for code in [3857, 4326] {
                if SpatialRef::from_epsg(code).ok().as_ref() == Some(&source) {
                    return Some(code as i32);
                }
            }
            let mut source = source.clone();
            source.auto_identify_epsg().ok()?;
            source.auth_code().ok().filter(|c| *c > 0)
        }
    }
}

/// How coordinates get from the layer's srs to Web Mercator metres.
pub(super) enum Reprojection {
    /// Already EPSG:3857.
    Identity,
    /// WGS84 longitude/latitude: tile-math's spherical formulas, which clamp
    /// the poles to the edge of the projected world instead of sending them
    /// to infinity.
    LngLat,
    /// Anything else: GDAL/PROJ, in traditional GIS (x = east) axis order.
    Gdal(SpatialRef, SpatialRef),
}

impl Reprojection {
    pub(super) fn new(srs: &str) -> Result<Self, SourceError> {
        let bad = |e: gdal::errors::GdalError| SourceError::BadSrs {
            srs: srs.to_owned(),
            message: e.to_string(),
        };
        let normalised = srs.trim().to_ascii_lowercase();
        if matches!(
            normalised.as_str(),
            "epsg:3857" | "+init=epsg:3857" | "epsg:900913" | "+init=epsg:900913"
        ) {
            return Ok(Reprojection::Identity);
        }
        if matches!(normalised.as_str(), "epsg:4326" | "+init=epsg:4326")
            || (normalised.contains("+proj=longlat") && normalised.contains("wgs84"))
        {
            return Ok(Reprojection::LngLat);
        }
        let mut source = SpatialRef::from_definition(srs).map_err(bad)?;
        source.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
        let mut target = SpatialRef::from_epsg(3857).map_err(bad)?;
        target.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
        // Web Mercator written as a PROJ string (openstreetmap-carto's
        // `+proj=merc +a=6378137 ... +nadgrids=@null`) is EPSG:3857: no
        // transformation, instead of a PROJ call per coordinate.
        if source.auth_code().ok() == Some(3857) || source == target {
            return Ok(Reprojection::Identity);
        }
        Ok(Reprojection::Gdal(source, target))
    }

    /// The transform `apply` wants: `None` unless GDAL does the work.
    pub(super) fn transform(&self) -> Result<Option<CoordTransform>, SourceError> {
        match self {
            Reprojection::Gdal(source, target) => CoordTransform::new(source, target)
                .map(Some)
                .map_err(|e| SourceError::Gdal {
                    what: "setting up the reprojection to EPSG:3857".into(),
                    message: e.to_string(),
                }),
            _ => Ok(None),
        }
    }

    /// Reprojects a feature's geometry to Web Mercator in place, makes
    /// lines and rings that jump across ±180° continuous, and drops parts
    /// too short to draw.
    pub(super) fn finish(&self, transform: Option<&CoordTransform>, geometry: &mut Geometry) {
        for p in &mut geometry.points {
            let mut one = vec![*p];
            self.apply(transform, &mut one);
            if let Some(q) = one.first() {
                *p = *q;
            }
        }
        for line in &mut geometry.lines {
            self.apply(transform, line);
            unwrap_antimeridian(line, false);
        }
        for polygon in &mut geometry.polygons {
            for ring in polygon.iter_mut() {
                self.apply(transform, ring);
                unwrap_antimeridian(ring, true);
            }
            polygon.retain(|ring| ring.len() >= 3);
        }
        geometry.lines.retain(|l| l.len() >= 2);
        geometry.polygons.retain(|p| !p.is_empty());
    }

    /// A Web Mercator area in the source srs (its corners and edge
    /// midpoints transformed, then their box); `None` when GDAL cannot.
    pub(super) fn bbox_from_mercator(&self, a: &MercatorBbox) -> Option<[f64; 4]> {
        let Reprojection::Gdal(source, target) = self else {
            return None;
        };
        let back = CoordTransform::new(target, source).ok()?;
        let (mx, my) = ((a.left + a.right) / 2.0, (a.bottom + a.top) / 2.0);
        let mut xs = [a.left, mx, a.right, a.right, a.right, mx, a.left, a.left];
        let mut ys = [a.bottom, a.bottom, a.bottom, my, a.top, a.top, a.top, my];
        back.transform_coords(&mut xs, &mut ys, &mut []).ok()?;
        let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some([min(&xs), min(&ys), max(&xs), max(&ys)])
    }

    /// Reprojects a path in place; points that cannot be projected are
    /// dropped.
    fn apply(&self, transform: Option<&CoordTransform>, path: &mut Vec<Point>) {
        match self {
            Reprojection::Identity => {}
            Reprojection::LngLat => {
                path.retain_mut(|p| match LngLat::new(p[0], p[1]).to_mercator(true) {
                    Ok(m) => {
                        *p = [m.x, m.y];
                        true
                    }
                    Err(_) => false,
                });
            }
            Reprojection::Gdal(..) => {
                let Some(transform) = transform else { return };
                let mut xs: Vec<f64> = path.iter().map(|p| p[0]).collect();
                let mut ys: Vec<f64> = path.iter().map(|p| p[1]).collect();
                let mut zs = vec![0.0; path.len()];
                if transform
                    .transform_coords(&mut xs, &mut ys, &mut zs)
                    .is_err()
                {
                    path.clear();
                    return;
                }
                *path = xs
                    .into_iter()
                    .zip(ys)
                    .filter(|(x, y)| x.is_finite() && y.is_finite())
                    .map(|(x, y)| [x, y.clamp(-MAX_MERCATOR, MAX_MERCATOR)])
                    .collect();
            }
        }
    }
}

/// Reads every feature of a layer. `geometry_field` picks one of several
/// geometry columns by name (Mapnik's PostGIS `geometry_field`); without it
/// the first one is read.
pub(super) fn read_layer<L: LayerAccess>(
    layer: &mut L,
    geometry_field: Option<&str>,
    to_mercator: &Reprojection,
) -> Result<VectorLayer, SourceError> {
    let transform = to_mercator.transform()?;
    // From the first feature, whatever an earlier reader left.
    layer.reset_feature_reading();
    let defn = layer.defn();
    let fields: Vec<String> = defn.fields().map(|f| f.name()).collect();
    let geometry_index = match geometry_field {
        None => None,
        Some(name) => Some(defn.geometry_field_index(name).map_err(|_| {
            let names: Vec<String> = defn.geom_fields().map(|f| f.name()).collect();
            SourceError::Gdal {
                what: format!("reading geometry field {name:?}"),
                message: format!("no such geometry column (the layer has {names:?})"),
            }
        })?),
    };
    let mut features = Vec::new();
    // OGR reports errors met while reading (a PostGIS query that fails
    // when its cursor is first read, a truncated file) only through
    // CPLError, ending the feature loop early: check after the loop, so a
    // failed read is an error rather than a silently short layer.
    // SAFETY: resets this thread's GDAL error state; no pointers involved.
    unsafe { gdal_sys::CPLErrorReset() };
    // Not `layer.features()`: the gdal crate's iterator asks for the feature
    // count first (a size hint), which GDAL's PostgreSQL driver answers by
    // running the whole query again as `SELECT count(*) FROM (...)`:
    // every PostGIS layer of every metatile was queried twice. Mapnik's
    // plugin runs each layer's query once.
    loop {
        // SAFETY: the layer handle is valid while `layer` is borrowed;
        // OGR_L_GetNextFeature returns a feature the caller owns, or null
        // at the end, and `from_c_feature` takes that ownership (the
        // feature is destroyed when dropped), with the layer's own `defn`.
        let feature = unsafe {
            let c_feature = gdal_sys::OGR_L_GetNextFeature(layer.c_layer());
            if c_feature.is_null() {
                break;
            }
            gdal::vector::Feature::from_c_feature(defn, c_feature)
        };
        // Not `feature.geometry()`: for a feature without geometry it hands
        // out a wrapper around a null pointer (GDAL then complains about it
        // on every call); `geometry_by_index` says `Err` instead.
        let gdal_geometry = feature.geometry_by_index(geometry_index.unwrap_or(0)).ok();
        let Some(gdal_geometry) = gdal_geometry else {
            continue;
        };
        let mut geometry = Geometry::default();
        let kind = collect_geometry(gdal_geometry, &mut geometry);
        to_mercator.finish(transform.as_ref(), &mut geometry);
        if geometry.is_empty() {
            continue;
        }
        let values = (0..fields.len())
            .map(|i| {
                if !field_is_set(&feature, i) {
                    return Value::Null;
                }
                feature
                    .field(i)
                    .ok()
                    .flatten()
                    .map_or(Value::Null, field_value)
            })
            .collect();
        features.push(Feature {
            geometry,
            kind,
            values,
        });
    }
    let failure = read_failure();
    // What the iterator's drop did: GDAL's PostgreSQL driver closes its
    // cursor here (after the error state is read, which this may touch).
    layer.reset_feature_reading();
    if let Some(message) = failure {
        return Err(SourceError::Gdal {
            what: format!("reading features (after {})", features.len()),
            message,
        });
    }
    Ok(VectorLayer::from_features(fields, features))
}

/// GDAL's last error on this thread, if it was a failure (not a warning).
fn read_failure() -> Option<String> {
    use gdal_sys::CPLErr;
    // SAFETY: reads this thread's GDAL error state; no pointers involved.
    let kind = unsafe { gdal_sys::CPLGetLastErrorType() };
    if kind != CPLErr::CE_Failure && kind != CPLErr::CE_Fatal {
        return None;
    }
    // SAFETY: CPLGetLastErrorMsg returns a NUL-terminated thread-local
    // buffer that stays valid until the next GDAL call on this thread; it is
    // copied right away.
    let message = unsafe {
        let p = gdal_sys::CPLGetLastErrorMsg();
        if p.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(p)
                .to_string_lossy()
                .trim()
                .to_owned()
        }
    };
    Some(if message.is_empty() {
        "GDAL reported a failure".to_owned()
    } else {
        message
    })
}

/// Whether field `i` has a value. GDAL tells "unset" (the feature does not
/// have the attribute at all: a GeoJSON property or an OSM tag that is
/// absent) from "null"; the gdal crate only checks null and would read an
/// unset field as 0 or "". Mapnik's OGR plugin skips both.
fn field_is_set(feature: &gdal::vector::Feature<'_>, i: usize) -> bool {
    let Ok(i) = i32::try_from(i) else {
        return false;
    };
    // SAFETY: the feature handle is valid for the life of `feature`, and
    // `i` is below the layer's field count (OGR checks it again and returns
    // false when out of range).
    unsafe { gdal_sys::OGR_F_IsFieldSetAndNotNull(feature.c_feature(), i) != 0 }
}

/// An OGR field value as a filter value. Lists have no Mapnik equivalent
/// (Mapnik's OGR plugin leaves them unset): they are null.
fn field_value(value: FieldValue) -> Value {
    match value {
        FieldValue::IntegerValue(i) => Value::Int(i64::from(i)),
        FieldValue::Integer64Value(i) => Value::Int(i),
        FieldValue::RealValue(f) => Value::Float(f),
        FieldValue::StringValue(s) => Value::String(s),
        FieldValue::DateValue(d) => Value::String(d.to_string()),
        FieldValue::DateTimeValue(d) => Value::String(d.to_string()),
        _ => Value::Null,
    }
}

/// A linear copy of a curved GDAL geometry (`OGR_G_GetLinearGeometry`),
/// destroyed with the wrapper.
struct Linearised {
    geometry: gdal::vector::Geometry,
    handle: gdal_sys::OGRGeometryH,
}

impl Linearised {
    /// Approximates arcs with GDAL's default step (4° per segment).
    fn new(g: &gdal::vector::Geometry) -> Option<Linearised> {
        // SAFETY: `g` wraps a valid geometry handle; GDAL returns a new
        // geometry (or null) that we own and destroy in `drop`.
        let handle =
            unsafe { gdal_sys::OGR_G_GetLinearGeometry(g.c_geometry(), 0.0, std::ptr::null_mut()) };
        if handle.is_null() {
            return None;
        }
        // SAFETY: a wrapper that does not own the handle (it never frees
        // it); `handle` is valid until `drop` below, after every use of
        // `geometry`.
        let geometry = unsafe {
            let geometry = gdal::vector::Geometry::lazy_feature_geometry();
            geometry.set_c_geometry(handle);
            geometry
        };
        Some(Linearised { geometry, handle })
    }
}

impl Drop for Linearised {
    fn drop(&mut self) {
        // SAFETY: `handle` came from OGR_G_GetLinearGeometry, is owned by
        // us, and `geometry` (which does not own it) is not used after this.
        unsafe { gdal_sys::OGR_G_DestroyGeometry(self.handle) };
    }
}

/// Walks a GDAL geometry into ours (still in source coordinates) and says
/// what kind it is. Z and M are dropped; curves (circular strings, compound
/// curves, curve polygons, multi-curves and multi-surfaces) are
/// approximated by line segments; triangles, TINs and polyhedral surfaces
/// are polygons.
fn collect_geometry(g: &gdal::vector::Geometry, out: &mut Geometry) -> GeometryType {
    use gdal::vector::geometry_type_flatten as flat;
    use gdal_sys::OGRwkbGeometryType as T;
    // Non-finite coordinates are dropped: GeoPackage stores an empty point
    // as (NaN, NaN), which would poison bounding boxes and the R-tree.
    let points = |g: &gdal::vector::Geometry| -> Vec<Point> {
        let mut pts = Vec::new();
        g.get_points(&mut pts);
        pts.into_iter()
            .filter(|(x, y, _)| x.is_finite() && y.is_finite())
            .map(|(x, y, _)| [x, y])
            .collect()
    };
    let rings = |g: &gdal::vector::Geometry| -> Vec<Vec<Point>> {
        (0..g.geometry_count())
            .map(|i| points(&g.get_geometry(i)))
            .collect()
    };
    let geometry_type = g.geometry_type();
    // SAFETY: a pure function of the type code.
    if unsafe { gdal_sys::OGR_GT_IsNonLinear(geometry_type) } != 0 {
        return match Linearised::new(g) {
            Some(linear) => collect_geometry(&linear.geometry, out),
            None => GeometryType::Unknown,
        };
    }
    match flat(geometry_type) {
        T::wkbPoint => {
            out.points.extend(points(g));
            GeometryType::Point
        }
        T::wkbLineString | T::wkbLinearRing => {
            out.lines.push(points(g));
            GeometryType::LineString
        }
        T::wkbPolygon | T::wkbTriangle => {
            out.polygons.push(rings(g));
            GeometryType::Polygon
        }
        T::wkbPolyhedralSurface | T::wkbTIN => {
            for i in 0..g.geometry_count() {
                out.polygons.push(rings(&g.get_geometry(i)));
            }
            GeometryType::Polygon
        }
        T::wkbMultiPoint | T::wkbMultiLineString | T::wkbMultiPolygon => {
            let mut kind = GeometryType::Unknown;
            for i in 0..g.geometry_count() {
                kind = collect_geometry(&g.get_geometry(i), out);
            }
            kind
        }
        T::wkbGeometryCollection => {
            for i in 0..g.geometry_count() {
                collect_geometry(&g.get_geometry(i), out);
            }
            GeometryType::Collection
        }
        _ => GeometryType::Unknown,
    }
}

#[cfg(test)]
mod tests;
