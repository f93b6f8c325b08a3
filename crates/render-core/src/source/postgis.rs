//! PostGIS layers read per metatile, as Mapnik's `postgis` plugin reads
//! them: nothing is read when the map loads; each metatile asks the
//! database for the features in its (buffered) area.
//!
//! Contract:
//! - [`PostgisLayer`] (shared by workers) is the layer's query: its table
//!   or `(SELECT ...) AS name` subquery, geometry column, SRID.
//! - [`PostgisConnections`] (one per worker, never shared: GDAL datasets are
//!   not `Sync`) holds one open connection per connection string, opened on
//!   first use and reused for every metatile.
//! - Per metatile, [`PostgisConnections::query`] substitutes Mapnik's
//!   tokens (`!bbox!`, `!scale_denominator!`, `!pixel_width!`,
//!   `!pixel_height!`) as Mapnik computes them, adds `WHERE geom && bbox`
//!   when the SQL has no `!bbox!` (as Mapnik does), runs it through GDAL's
//!   PostgreSQL driver and returns the features as a [`VectorLayer`].
//! - Failures are errors naming the layer's table and the database's own
//!   message; the connection that failed is closed, so the next metatile
//!   connects again: a database that restarts is picked up by itself, and
//!   one that is down at start fails tiles, never the server. libpq's
//!   `connect_timeout` defaults to 4 s (Mapnik's), and a statement timeout
//!   can be set ([`PostgisConnections::new`]), so nothing waits forever.
//!
//! Why GDAL's driver and not a Rust PostgreSQL client: it is libpq, so it
//! reads `PGHOST`, `PGPORT`, `PGUSER`, `~/.pgpass` and service files exactly
//! as Mapnik's plugin (also libpq) does; it decodes every PostGIS geometry
//! and attribute type the in-memory path already reads; and it adds no
//! second database stack to the build. (See `docs/performance.md` for what
//! a query costs.)

use std::collections::HashMap;
use std::path::Path;

use gdal::Dataset;
use tile_math::{LngLat, MercatorBbox, MercatorPoint, MAX_MERCATOR};

use super::vector::{open_vector, read_layer, redact, srs_epsg, Reprojection, SourceError};
use super::VectorLayer;
use crate::style::Datasource;

/// Mapnik's default `connect_timeout`, in seconds.
const DEFAULT_CONNECT_TIMEOUT_S: u32 = 4;

/// A PostGIS layer's query, shared by every worker.
#[derive(Debug, Clone)]
pub struct PostgisLayer {
    /// GDAL `PG:` connection string (without a statement timeout).
    connection: String,
    /// Table name or `(SELECT ...) AS name`, tokens unreplaced.
    table: String,
    /// `geometry_field`, if given.
    geometry_field: Option<String>,
    /// The SRID of the data: `srid`, else the layer `srs`'s EPSG code.
    srid: i32,
    /// The layer's `srs`, for reprojecting to Web Mercator.
    srs: String,
    /// `extent` in Web Mercator metres, when given in a Mercator SRID.
    extent: Option<MercatorBbox>,
}

/// What one metatile asks of a layer.
#[derive(Debug, Clone, Copy)]
pub struct QueryArea {
    /// The area to cover (the metatile with the layer's buffer), in Web
    /// Mercator metres.
    pub bbox: MercatorBbox,
    /// Mapnik's scale denominator at this zoom.
    pub scale_denominator: f64,
    /// Map units (metres) per pixel, across and down.
    pub pixel_size: (f64, f64),
}

impl PostgisLayer {
    /// The query of a `type=postgis` datasource; `None` for other types.
    pub fn new(datasource: &Datasource, srs: &str) -> Option<PostgisLayer> {
        let Datasource::PostGis {
            connection,
            table,
            geometry_field,
            srid,
            extent,
        } = datasource
        else {
            return None;
        };
        let srid = srid
            .filter(|s| *s > 0)
            .or_else(|| srs_epsg(srs))
            .unwrap_or(3857);
        // Only a Mercator extent is used to skip metatiles (others would
        // need reprojecting, and skipping is just a saving).
        let extent = extent
            .filter(|_| matches!(srid, 3857 | 900_913))
            .map(|[x0, y0, x1, y1]| MercatorBbox::new(x0, y0, x1, y1));
        Some(PostgisLayer {
            connection: with_default_connect_timeout(connection),
            table: table.clone(),
            geometry_field: geometry_field.clone(),
            srid,
            srs: srs.to_owned(),
            extent,
        })
    }

    /// The connection string with its password hidden (for messages).
    pub fn connection_for_display(&self) -> String {
        redact(&self.connection)
    }

    /// Whether the layer's `extent` (if any) meets `area`: a metatile
    /// outside it has nothing to ask the database.
    pub fn may_have_data_in(&self, area: &MercatorBbox) -> bool {
        self.extent.is_none_or(|e| {
            e.left <= area.right
                && area.left <= e.right
                && e.bottom <= area.top
                && area.bottom <= e.top
        })
    }

    /// The table or subquery as written.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The SQL for one metatile. `geometry_column` names the column to
    /// filter on when the table has no `!bbox!` token.
    pub fn sql(&self, area: &QueryArea, geometry_column: Option<&str>) -> String {
        let bbox = self.bbox_sql(&area.bbox);
        let table = self
            .table
            .replace("!bbox!", &bbox)
            .replace("!scale_denominator!", &number(area.scale_denominator))
            .replace("!pixel_width!", &number(area.pixel_size.0))
            .replace("!pixel_height!", &number(area.pixel_size.1));
        let mut sql = format!("SELECT * FROM {table}");
        if !self.table.contains("!bbox!") {
            if let Some(column) = geometry_column.or(self.geometry_field.as_deref()) {
                sql.push_str(&format!(
                    " WHERE \"{}\" && {bbox}",
                    column.replace('"', "\"\"")
                ));
            }
        }
        sql
    }

    /// Mapnik's `sql_bbox`: the area in the data's SRID, as an envelope.
    fn bbox_sql(&self, area: &MercatorBbox) -> String {
        let [x0, y0, x1, y1] = self.bbox_in_data_srs(area);
        format!(
            "ST_MakeEnvelope({},{},{},{},{})",
            number(x0),
            number(y0),
            number(x1),
            number(y1),
            self.srid
        )
    }

    /// The Web Mercator area in the data's coordinates.
    fn bbox_in_data_srs(&self, a: &MercatorBbox) -> [f64; 4] {
        match self.srid {
            3857 | 900_913 => [a.left, a.bottom, a.right, a.top],
            4326 => {
                let clamp = |v: f64| v.clamp(-MAX_MERCATOR, MAX_MERCATOR);
                let corner = |x: f64, y: f64| {
                    MercatorPoint::new(clamp(x), clamp(y))
                        .to_lnglat(true)
                        .unwrap_or(LngLat { lng: 0.0, lat: 0.0 })
                };
                let (sw, ne) = (corner(a.left, a.bottom), corner(a.right, a.top));
                [sw.lng, sw.lat, ne.lng, ne.lat]
            }
            _ => match Reprojection::new(&self.srs) {
                Ok(r) => r
                    .bbox_from_mercator(a)
                    .unwrap_or([a.left, a.bottom, a.right, a.top]),
                Err(_) => [a.left, a.bottom, a.right, a.top],
            },
        }
    }
}

/// A number written into SQL: Rust's shortest exact form (Mapnik prints
/// 16 significant digits; both name the same double).
fn number(v: f64) -> String {
    format!("{v}")
}

/// Adds Mapnik's default `connect_timeout` when the string has none, so a
/// host that does not answer fails a tile instead of hanging a worker.
fn with_default_connect_timeout(connection: &str) -> String {
    if connection.contains("connect_timeout=") {
        connection.to_owned()
    } else {
        format!("{connection} connect_timeout={DEFAULT_CONNECT_TIMEOUT_S}")
    }
}

/// One worker's database connections and per-layer state.
#[derive(Default)]
pub struct PostgisConnections {
    /// Open connections by connection string.
    open: HashMap<String, Dataset>,
    /// Geometry column of each table without `!bbox!` (found once).
    geometry_columns: HashMap<String, Option<String>>,
    /// Layer srs values known to need no reprojection (GDAL's spatial
    /// references are not `Send`, so only the answer is kept).
    identity_srs: HashMap<String, bool>,
    /// `statement_timeout` for every connection, in milliseconds.
    statement_timeout_ms: Option<u64>,
    /// Queries run (each layer of each metatile is one).
    pub queries: u64,
    /// Connections opened (one per database, plus one after each failure).
    pub connects: u64,
}

impl std::fmt::Debug for PostgisConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgisConnections")
            .field("open", &self.open.len())
            .field("queries", &self.queries)
            .field("connects", &self.connects)
            .finish_non_exhaustive()
    }
}

impl PostgisConnections {
    /// Connections with a `statement_timeout` (milliseconds) set on each.
    pub fn new(statement_timeout_ms: Option<u64>) -> PostgisConnections {
        PostgisConnections {
            statement_timeout_ms,
            ..PostgisConnections::default()
        }
    }

    /// Connects to `layer`'s database (or finds the connection open):
    /// whether it can be reached now.
    pub fn probe(&mut self, layer: &PostgisLayer) -> Result<(), SourceError> {
        let result = self.connection(layer).map(|_| ());
        if result.is_err() {
            self.open.remove(&layer.connection);
        }
        result
    }

    /// The features of `layer` in `area`.
    pub fn query(
        &mut self,
        layer: &PostgisLayer,
        area: &QueryArea,
    ) -> Result<VectorLayer, SourceError> {
        if !layer.may_have_data_in(&area.bbox) {
            return Ok(VectorLayer::from_features(Vec::new(), Vec::new()));
        }
        let geometry_column = if layer.table.contains("!bbox!") || layer.geometry_field.is_some() {
            None
        } else {
            self.geometry_column(layer)?
        };
        let sql = layer.sql(area, geometry_column.as_deref());
        self.queries += 1;
        let result = self.read(layer, &sql);
        if result.is_err() {
            // The connection may be dead (a restarted server): the next
            // metatile opens a new one.
            self.open.remove(&layer.connection);
        }
        result
    }

    fn connection(&mut self, layer: &PostgisLayer) -> Result<&Dataset, SourceError> {
        if !self.open.contains_key(&layer.connection) {
            let conninfo = match self.statement_timeout_ms {
                Some(ms) => format!("{} options='-c statement_timeout={ms}'", layer.connection),
                None => layer.connection.clone(),
            };
            self.connects += 1;
            let dataset = open_vector(Path::new(&conninfo)).map_err(|e| SourceError::Gdal {
                what: format!("connecting to PostGIS ({})", redact(&layer.connection)),
                message: e.to_string(),
            })?;
            self.open.insert(layer.connection.clone(), dataset);
        }
        self.open
            .get(&layer.connection)
            .ok_or_else(|| SourceError::Gdal {
                what: "connecting to PostGIS".into(),
                message: "the connection was lost".into(),
            })
    }

    fn read(&mut self, layer: &PostgisLayer, sql: &str) -> Result<VectorLayer, SourceError> {
        let reprojection = match self.identity_srs.get(&layer.srs) {
            Some(true) => Reprojection::Identity,
            _ => {
                let r = Reprojection::new(&layer.srs)?;
                let identity = matches!(r, Reprojection::Identity);
                self.identity_srs.insert(layer.srs.clone(), identity);
                r
            }
        };
        self.read_with(layer, sql, &reprojection)
    }

    fn read_with(
        &mut self,
        layer: &PostgisLayer,
        sql: &str,
        reprojection: &Reprojection,
    ) -> Result<VectorLayer, SourceError> {
        let dataset = self.connection(layer)?;
        let what = format!("querying PostGIS table {}", short(&layer.table));
        let mut result = dataset
            .execute_sql(sql, None, gdal::vector::sql::Dialect::DEFAULT)
            .map_err(|e| SourceError::Gdal {
                what: what.clone(),
                message: e.to_string(),
            })?
            .ok_or_else(|| SourceError::Gdal {
                what: what.clone(),
                message: "the query returned no result set".into(),
            })?;
        read_layer(&mut *result, layer.geometry_field.as_deref(), reprojection).map_err(|e| match e
        {
            SourceError::Gdal { message, .. } => SourceError::Gdal { what, message },
            other => other,
        })
    }

    /// The geometry column of a table queried without `!bbox!`: the one
    /// GDAL sees in `SELECT * ... LIMIT 0`.
    fn geometry_column(&mut self, layer: &PostgisLayer) -> Result<Option<String>, SourceError> {
        if let Some(found) = self.geometry_columns.get(&layer.table) {
            return Ok(found.clone());
        }
        let sql = format!("SELECT * FROM {} LIMIT 0", layer.table);
        let dataset = self.connection(layer)?;
        let what = format!("finding the geometry column of {}", short(&layer.table));
        let column = {
            use gdal::vector::LayerAccess;
            let result = dataset
                .execute_sql(&sql, None, gdal::vector::sql::Dialect::DEFAULT)
                .map_err(|e| SourceError::Gdal {
                    what: what.clone(),
                    message: e.to_string(),
                })?;
            result.and_then(|r| r.defn().geom_fields().next().map(|f| f.name()))
        };
        let column = column.filter(|c| !c.is_empty());
        self.geometry_columns
            .insert(layer.table.clone(), column.clone());
        Ok(column)
    }
}

/// A table or subquery, shortened for messages.
fn short(table: &str) -> String {
    let one_line: String = table.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 80 {
        let cut: String = one_line.chars().take(77).collect();
        format!("{cut}...")
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(table: &str, srs: &str, srid: Option<i32>) -> PostgisLayer {
        PostgisLayer::new(
            &Datasource::PostGis {
                connection: "PG:dbname=gis".into(),
                table: table.into(),
                geometry_field: None,
                srid,
                extent: None,
            },
            srs,
        )
        .unwrap()
    }

    fn area() -> QueryArea {
        QueryArea {
            bbox: MercatorBbox::new(2_700_000.0, 8_430_000.0, 2_780_000.0, 8_510_000.0),
            scale_denominator: 8530.918335399136,
            pixel_size: (2.388657133911758, 2.388657133911758),
        }
    }

    #[test]
    fn tokens_are_replaced_as_mapnik_does() {
        let l = layer(
            "(SELECT way, way_area/NULLIF(!pixel_width!::real*!pixel_height!::real,0) AS way_pixels, \
             !scale_denominator! AS sd FROM planet_osm_polygon WHERE way && !bbox!) AS landcover",
            "+proj=merc +a=6378137 +b=6378137 +lat_ts=0.0 +lon_0=0.0 +x_0=0.0 +y_0=0 +k=1.0 +units=m +nadgrids=@null +wktext +no_defs +over",
            None,
        );
        let sql = l.sql(&area(), None);
        assert_eq!(
            sql,
            "SELECT * FROM (SELECT way, way_area/NULLIF(2.388657133911758::real*2.388657133911758::real,0) AS way_pixels, \
             8530.918335399136 AS sd FROM planet_osm_polygon WHERE way && \
             ST_MakeEnvelope(2700000,8430000,2780000,8510000,3857)) AS landcover"
        );
    }

    #[test]
    fn a_table_without_bbox_is_filtered_on_its_geometry_column() {
        let l = layer("planet_osm_line", "epsg:3857", None);
        assert_eq!(
            l.sql(&area(), Some("way")),
            "SELECT * FROM planet_osm_line WHERE \"way\" && ST_MakeEnvelope(2700000,8430000,2780000,8510000,3857)"
        );
    }

    #[test]
    fn the_envelope_is_in_the_data_srid() {
        let l = layer(
            "(SELECT * FROM t WHERE geom && !bbox!) AS t",
            "epsg:4326",
            None,
        );
        let sql = l.sql(&area(), None);
        assert!(sql.contains(",4326)"), "{sql}");
        assert!(sql.contains("ST_MakeEnvelope(24.25"), "{sql}");
        let l = layer(
            "(SELECT * FROM t WHERE geom && !bbox!) AS t",
            "epsg:4326",
            Some(900913),
        );
        assert!(l
            .sql(&area(), None)
            .contains("ST_MakeEnvelope(2700000,8430000,2780000,8510000,900913)"));
    }

    #[test]
    fn connect_timeout_defaults_to_mapnik_s() {
        assert_eq!(
            with_default_connect_timeout("PG:dbname=gis"),
            "PG:dbname=gis connect_timeout=4"
        );
        assert_eq!(
            with_default_connect_timeout("PG:dbname=gis connect_timeout=1"),
            "PG:dbname=gis connect_timeout=1"
        );
    }
}
