//! Vector data read through GDAL/OGR, reprojected to Web Mercator once, kept
//! in memory with a spatial index and simplified per zoom level.
//!
//! Loading happens once per map (not per worker): the result holds only
//! plain Rust values, so it is shared between render threads behind an
//! `Arc`. The GDAL objects used to read it (datasets, layers, geometries,
//! spatial references, transforms) live and die inside [`VectorLayer::load`]
//! on the loading thread.

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef};
use gdal::vector::{FieldValue, LayerAccess};
use gdal::Dataset;
use rstar::{RTree, RTreeObject, AABB};
use tile_math::{LngLat, MercatorBbox, EARTH_CIRCUMFERENCE, MAX_MERCATOR};

use super::geometry::{unwrap_antimeridian, Geometry, Point};
use crate::style::filter::{FeatureView, GeometryType, Value};
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
    /// The datasource is a raster, not vector data.
    #[error("datasource is a raster (type=gdal), not vector data")]
    NotVector,
}

/// The deepest zoom that gets its own simplified copy; deeper zooms draw
/// the full geometry.
const SIMPLIFIED_ZOOMS: usize = 13;

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
    field_index: HashMap<String, usize>,
    features: Vec<Feature>,
    index: RTree<Entry>,
    /// Simplified geometry per zoom level, made on first use.
    simplified: Vec<OnceLock<Vec<Geometry>>>,
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

impl FeatureView for Found<'_> {
    fn attribute(&self, name: &str) -> Option<Value> {
        let i = *self.layer.field_index.get(name)?;
        self.feature.values.get(i).cloned()
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
                read_layer(&mut layer, &to_mercator)
            }
            Datasource::Ogr { file, layer } => {
                let dataset = open(file)?;
                let what = format!("reading layer {layer:?} of {}", file.display());
                let mut layer = match layer {
                    OgrLayer::Name(name) => dataset.layer_by_name(name),
                    OgrLayer::Index(i) => dataset.layer(*i as usize),
                    OgrLayer::Sql(sql) => return read_sql(&dataset, sql, what, &to_mercator),
                }
                .map_err(gdal_err(what))?;
                read_layer(&mut layer, &to_mercator)
            }
            Datasource::PostGis {
                connection, table, ..
            } => {
                let dataset = Dataset::open(connection).map_err(gdal_err(format!(
                    "connecting to PostGIS ({})",
                    redact(connection)
                )))?;
                let what = format!("reading PostGIS table {table}");
                if table.trim_start().starts_with('(') {
                    // A Mapnik subquery: `(SELECT ...) AS name`. Mapnik's
                    // tokens ask for the whole extent here, since the layer
                    // is read once, not per tile.
                    let sql = format!("SELECT * FROM {}", expand_postgis_tokens(table));
                    read_sql(&dataset, &sql, what, &to_mercator)
                } else {
                    let mut layer = dataset.layer_by_name(table).map_err(gdal_err(what))?;
                    read_layer(&mut layer, &to_mercator)
                }
            }
            Datasource::Gdal { .. } => Err(SourceError::NotVector),
        }
    }

    /// Builds a layer from features already in metres (tests, embedding).
    pub fn from_features(fields: Vec<String>, features: Vec<Feature>) -> VectorLayer {
        let field_index = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.clone(), i))
            .collect();
        let mut entries = Vec::with_capacity(features.len());
        for (i, feature) in features.iter().enumerate() {
            let Some(b) = feature.geometry.bbox() else {
                continue;
            };
            for x_shift in [0.0, EARTH_CIRCUMFERENCE, -EARTH_CIRCUMFERENCE] {
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
        VectorLayer {
            fields,
            field_index,
            features,
            index: RTree::bulk_load(entries),
            simplified: (0..SIMPLIFIED_ZOOMS).map(|_| OnceLock::new()).collect(),
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
        let mut found: Vec<Found<'_>> = self
            .index
            .locate_in_envelope_intersecting(&envelope)
            .map(move |e| Found {
                layer: self,
                feature: &self.features[e.feature],
                geometry: geometries.get(e.feature),
                x_shift: e.x_shift,
                position: e.feature,
            })
            .collect();
        found.sort_by(|a, b| {
            a.position
                .cmp(&b.position)
                .then(a.x_shift.total_cmp(&b.x_shift))
        });
        found
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
    read_layer(&mut *result, to_mercator)
}

fn open(file: &Path) -> Result<Dataset, SourceError> {
    if !file.exists() {
        return Err(SourceError::MissingFile(file.to_path_buf()));
    }
    Dataset::open(file).map_err(|e| SourceError::Gdal {
        what: format!("opening {}", file.display()),
        message: e.to_string(),
    })
}

/// A PG: connection string with the password hidden, for messages.
fn redact(connection: &str) -> String {
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

/// Replaces Mapnik's PostGIS tokens with values for "the whole world".
fn expand_postgis_tokens(table: &str) -> String {
    let world = format!(
        "ST_MakeEnvelope({m}, {m}, {M}, {M}, 3857)",
        m = -MAX_MERCATOR,
        M = MAX_MERCATOR
    );
    table
        .replace("!bbox!", &world)
        .replace("!scale_denominator!", "0")
        .replace("!pixel_width!", "0")
        .replace("!pixel_height!", "0")
}

/// How coordinates get from the layer's srs to Web Mercator metres.
enum Reprojection {
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
    fn new(srs: &str) -> Result<Self, SourceError> {
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
        if source.auth_code().ok() == Some(3857) {
            return Ok(Reprojection::Identity);
        }
        Ok(Reprojection::Gdal(source, target))
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

fn read_layer<L: LayerAccess>(
    layer: &mut L,
    to_mercator: &Reprojection,
) -> Result<VectorLayer, SourceError> {
    let transform = match to_mercator {
        Reprojection::Gdal(source, target) => Some(CoordTransform::new(source, target).map_err(
            |e| SourceError::Gdal {
                what: "setting up the reprojection to EPSG:3857".into(),
                message: e.to_string(),
            },
        )?),
        _ => None,
    };
    let fields: Vec<String> = layer.defn().fields().map(|f| f.name()).collect();
    let mut features = Vec::new();
    for feature in layer.features() {
        let Some(gdal_geometry) = feature.geometry() else {
            continue;
        };
        let mut geometry = Geometry::default();
        let kind = collect_geometry(gdal_geometry, &mut geometry);
        for p in &mut geometry.points {
            let mut one = vec![*p];
            to_mercator.apply(transform.as_ref(), &mut one);
            if let Some(q) = one.first() {
                *p = *q;
            }
        }
        for line in &mut geometry.lines {
            to_mercator.apply(transform.as_ref(), line);
            unwrap_antimeridian(line, false);
        }
        for polygon in &mut geometry.polygons {
            for ring in polygon.iter_mut() {
                to_mercator.apply(transform.as_ref(), ring);
                unwrap_antimeridian(ring, true);
            }
            polygon.retain(|ring| ring.len() >= 3);
        }
        geometry.lines.retain(|l| l.len() >= 2);
        geometry.polygons.retain(|p| !p.is_empty());
        if geometry.is_empty() {
            continue;
        }
        let values = (0..fields.len())
            .map(|i| {
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
    Ok(VectorLayer::from_features(fields, features))
}

fn field_value(value: FieldValue) -> Value {
    match value {
        FieldValue::IntegerValue(i) => Value::Int(i64::from(i)),
        FieldValue::Integer64Value(i) => Value::Int(i),
        FieldValue::RealValue(f) => Value::Float(f),
        FieldValue::StringValue(s) => Value::String(s),
        FieldValue::DateValue(d) => Value::String(d.to_string()),
        FieldValue::DateTimeValue(d) => Value::String(d.to_string()),
        other => Value::String(format!("{other:?}")),
    }
}

/// Walks a GDAL geometry into ours (still in source coordinates) and says
/// what kind it is.
fn collect_geometry(g: &gdal::vector::Geometry, out: &mut Geometry) -> GeometryType {
    use gdal::vector::geometry_type_flatten as flat;
    use gdal_sys::OGRwkbGeometryType as T;
    let points = |g: &gdal::vector::Geometry| -> Vec<Point> {
        let mut pts = Vec::new();
        g.get_points(&mut pts);
        pts.into_iter().map(|(x, y, _)| [x, y]).collect()
    };
    match flat(g.geometry_type()) {
        T::wkbPoint => {
            out.points.extend(points(g));
            GeometryType::Point
        }
        T::wkbLineString | T::wkbLinearRing => {
            out.lines.push(points(g));
            GeometryType::LineString
        }
        T::wkbPolygon => {
            let rings = (0..g.geometry_count())
                .map(|i| points(&g.get_geometry(i)))
                .collect();
            out.polygons.push(rings);
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
