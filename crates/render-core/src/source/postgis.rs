//! PostGIS layers read per metatile, as Mapnik's `postgis` plugin reads
//! them: nothing is read when the map loads; each metatile asks the
//! database for the features in its (buffered) area.
//!
//! Contract:
//! - [`PostgisLayer`] (shared by workers) is the layer's query: its table
//!   or `(SELECT ...) AS name` subquery, geometry column, SRID.
//! - [`PostgisConnections`] (one per worker) holds one open connection per
//!   connection string, opened on first use and reused for every metatile.
//! - Per metatile, [`PostgisConnections::query`] substitutes Mapnik's
//!   tokens (`!bbox!`, `!scale_denominator!`, `!pixel_width!`,
//!   `!pixel_height!`) as Mapnik computes them, adds `WHERE geom && bbox`
//!   when the SQL has no `!bbox!` (as Mapnik does), runs it as one query and
//!   returns the features as a [`VectorLayer`]: geometry from PostGIS's
//!   binary EWKB (`ewkb`), attributes typed as Mapnik's plugin types them.
//! - Failures are errors naming the layer's table and PostgreSQL's own
//!   message; the connection that failed is closed, so the next metatile
//!   connects again: a database that restarts is picked up by itself (a
//!   connection found broken at its next use is replaced and the query
//!   asked once more, so a restart between two metatiles fails no tile),
//!   and one that is down at start fails tiles, never the server. libpq's
//!   `connect_timeout` defaults to 4 s (Mapnik's), and a statement timeout
//!   can be set ([`PostgisConnections::new`]), so nothing waits forever.
//!
//! Why a native client (the `postgres` crate) and not GDAL's PostgreSQL
//! driver, which the first version used: GDAL runs each query through a
//! probe cursor first (for osm-carto's sorted subqueries that computes the
//! whole result), looks up the catalogue about a hundred times per
//! metatile, and reads the rows in another transaction: PostgreSQL worked
//! 1.6-2.2× as long for tessera as for Mapnik on openstreetmap-carto
//! (`docs/performance.md`). Mapnik sends one query per layer; so does this.
//! The connection is completed from libpq's environment (`PGHOST`,
//! `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`), as libpq completes
//! Mapnik's.

use std::collections::HashMap;

use postgres::types::{FromSql, Type};
use postgres::{Client, Config, NoTls, Statement};
use tile_math::{LngLat, MercatorBbox, MercatorPoint, MAX_MERCATOR};

use super::ewkb;
use super::geometry::Geometry;
use super::vector::{redact, srs_epsg, Feature, Reprojection, SourceError};
use super::VectorLayer;
use crate::style::filter::Value;
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

    /// The SQL for one metatile, the values written in (what Mapnik sends;
    /// tessera sends [`PostgisLayer::prepared`]). `geometry_column` names
    /// the column to filter on when the table has no `!bbox!` token.
    pub fn sql(&self, area: &QueryArea, geometry_column: Option<&str>) -> String {
        self.with_tokens(
            &self.bbox_sql(&area.bbox),
            [
                &number(area.scale_denominator),
                &number(area.pixel_size.0),
                &number(area.pixel_size.1),
            ],
            geometry_column,
        )
    }

    /// `SELECT * FROM` the table with `!bbox!` and the scale and pixel
    /// tokens replaced by these texts, and the bbox filter added when the
    /// table has no `!bbox!` of its own (as Mapnik does).
    fn with_tokens(
        &self,
        bbox: &str,
        [scale, width, height]: [&str; 3],
        geometry_column: Option<&str>,
    ) -> String {
        let table = self
            .table
            .replace("!bbox!", bbox)
            .replace("!scale_denominator!", scale)
            .replace("!pixel_width!", width)
            .replace("!pixel_height!", height);
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

    /// The SQL for every metatile as a prepared statement, and one
    /// metatile's values for it: the tokens become parameters —
    /// `!bbox!` an envelope of `$1`-`$4` (float8, the area in the data's
    /// SRID), `!scale_denominator!`, `!pixel_width!` and `!pixel_height!`
    /// `$5`-`$7` sent as text and read as `numeric`, the type PostgreSQL
    /// gives the number written in (what [`PostgisLayer::sql`] does).
    pub fn prepared(
        &self,
        area: &QueryArea,
        geometry_column: Option<&str>,
    ) -> (String, [f64; 4], [String; 3]) {
        let sql = self.with_tokens(
            &format!("ST_MakeEnvelope($1,$2,$3,$4,{})", self.srid),
            ["($5::numeric)", "($6::numeric)", "($7::numeric)"],
            geometry_column,
        );
        let numbers = [
            number(area.scale_denominator),
            number(area.pixel_size.0),
            number(area.pixel_size.1),
        ];
        (sql, self.bbox_in_data_srs(&area.bbox), numbers)
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
    open: HashMap<String, Client>,
    /// Prepared statements by (connection string, SQL): each layer's query
    /// is parsed once per connection; each metatile sends only its values.
    statements: HashMap<(String, String), Statement>,
    /// Geometry column of each table without `!bbox!` (found once).
    geometry_columns: HashMap<String, Option<String>>,
    /// Layer srs values known to need no reprojection (GDAL's spatial
    /// references are not `Send`, so only the answer is kept).
    identity_srs: HashMap<String, bool>,
    /// `statement_timeout` for every connection, in milliseconds.
    statement_timeout_ms: Option<u64>,
    /// The last query failed without an answer from the server (the
    /// connection broke), not with the server's error.
    lost_connection: bool,
    /// Queries run (each layer of each metatile is one).
    pub queries: u64,
    /// Connections opened (one per database, plus one after each failure).
    pub connects: u64,
    /// Statements prepared (one per layer and connection).
    pub prepares: u64,
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
            self.close(&layer.connection);
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
        let query = layer.prepared(area, geometry_column.as_deref());
        self.queries += 1;
        let reused = self.open.contains_key(&layer.connection);
        self.lost_connection = false;
        let mut result = self.read(layer, &query);
        if result.is_err() {
            // The connection may be dead (a restarted server): the next
            // metatile opens a new one.
            self.close(&layer.connection);
            if reused && self.lost_connection {
                // It died while idle, since its last query (the server
                // restarted between two metatiles): once more, on a new
                // connection, rather than fail a tile the database could
                // answer now. A query the server refused is not retried.
                result = self.read(layer, &query);
                if result.is_err() {
                    self.close(&layer.connection);
                }
            }
        }
        result
    }

    /// Forgets a connection and the statements prepared on it.
    fn close(&mut self, connection: &str) {
        self.open.remove(connection);
        self.statements.retain(|(c, _), _| c != connection);
    }

    /// The prepared statement of `sql` on `layer`'s connection (prepared
    /// now the first time).
    fn statement(
        &mut self,
        layer: &PostgisLayer,
        sql: &str,
        what: &str,
    ) -> Result<Statement, SourceError> {
        let key = (layer.connection.clone(), sql.to_owned());
        if let Some(statement) = self.statements.get(&key) {
            return Ok(statement.clone());
        }
        let client = self.connection(layer)?;
        // Parameter types given, so a token the SQL does not use is fine.
        let types = [
            Type::FLOAT8,
            Type::FLOAT8,
            Type::FLOAT8,
            Type::FLOAT8,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
        ];
        let prepared = client
            .prepare_typed(sql, &types)
            .map_err(|e| (connection_lost(&e, client), e));
        self.prepares += 1;
        match prepared {
            Ok(statement) => {
                self.statements.insert(key, statement.clone());
                Ok(statement)
            }
            Err((lost, e)) => {
                self.lost_connection = lost;
                Err(SourceError::Gdal {
                    what: what.to_owned(),
                    message: pg_message(&e),
                })
            }
        }
    }

    fn connection(&mut self, layer: &PostgisLayer) -> Result<&mut Client, SourceError> {
        if !self.open.contains_key(&layer.connection) {
            let what = || format!("connecting to PostGIS ({})", redact(&layer.connection));
            let config =
                client_config(&layer.connection, self.statement_timeout_ms).map_err(|message| {
                    SourceError::Gdal {
                        what: what(),
                        message,
                    }
                })?;
            self.connects += 1;
            let client = config.connect(NoTls).map_err(|e| SourceError::Gdal {
                what: what(),
                message: pg_message(&e),
            })?;
            self.open.insert(layer.connection.clone(), client);
        }
        self.open
            .get_mut(&layer.connection)
            .ok_or_else(|| SourceError::Gdal {
                what: "connecting to PostGIS".into(),
                message: "the connection was lost".into(),
            })
    }

    fn read(
        &mut self,
        layer: &PostgisLayer,
        (sql, bbox, numbers): &(String, [f64; 4], [String; 3]),
    ) -> Result<VectorLayer, SourceError> {
        let reprojection = match self.identity_srs.get(&layer.srs) {
            Some(true) => Reprojection::Identity,
            _ => {
                let r = Reprojection::new(&layer.srs)?;
                let identity = matches!(r, Reprojection::Identity);
                self.identity_srs.insert(layer.srs.clone(), identity);
                r
            }
        };
        let transform = reprojection.transform()?;
        let what = format!("querying PostGIS table {}", short(&layer.table));
        let statement = self.statement(layer, sql, &what)?;
        let client = self.connection(layer)?;
        let [x0, y0, x1, y1] = bbox;
        let [sd, pw, ph] = numbers;
        let rows = match client.query(&statement, &[x0, y0, x1, y1, sd, pw, ph]) {
            Ok(rows) => rows,
            Err(e) => {
                self.lost_connection = connection_lost(&e, client);
                return Err(SourceError::Gdal {
                    what,
                    message: pg_message(&e),
                });
            }
        };
        let Some(first) = rows.first() else {
            return Ok(VectorLayer::from_features(Vec::new(), Vec::new()));
        };
        // The geometry: `geometry_field`, else the first geometry column;
        // every other column is an attribute.
        let columns = first.columns();
        let is_geometry = |c: &postgres::Column| c.type_().name() == "geometry";
        let geometry_index = match &layer.geometry_field {
            Some(name) => columns.iter().position(|c| c.name() == name),
            None => columns.iter().position(is_geometry),
        }
        .ok_or_else(|| SourceError::Gdal {
            what: what.clone(),
            message: format!(
                "no geometry column{} in the result",
                layer
                    .geometry_field
                    .as_deref()
                    .map(|g| format!(" `{g}`"))
                    .unwrap_or_default()
            ),
        })?;
        let attributes: Vec<usize> = (0..columns.len())
            .filter(|&i| i != geometry_index && !is_geometry(&columns[i]))
            .collect();
        let fields: Vec<String> = attributes
            .iter()
            .map(|&i| columns[i].name().to_owned())
            .collect();
        let kinds: Vec<Type> = attributes
            .iter()
            .map(|&i| columns[i].type_().clone())
            .collect();
        let mut features = Vec::with_capacity(rows.len());
        for row in &rows {
            let Ok(Some(Raw(wkb))) = row.try_get::<_, Option<Raw<'_>>>(geometry_index) else {
                continue;
            };
            let mut geometry = Geometry::default();
            let Ok(kind) = ewkb::read(wkb, &mut geometry) else {
                continue;
            };
            reprojection.finish(transform.as_ref(), &mut geometry);
            if geometry.is_empty() {
                continue;
            }
            let values = attributes
                .iter()
                .zip(&kinds)
                .map(|(&i, ty)| match row.try_get::<_, Option<Raw<'_>>>(i) {
                    Ok(Some(Raw(bytes))) => decode(ty, bytes),
                    _ => Value::Null,
                })
                .collect();
            features.push(Feature {
                geometry,
                kind,
                values,
            });
        }
        Ok(VectorLayer::from_features_for_one_query(fields, features))
    }

    /// The geometry column of a table queried without `!bbox!`: the first
    /// `geometry` column of `SELECT * ... LIMIT 0` (prepared, not run).
    fn geometry_column(&mut self, layer: &PostgisLayer) -> Result<Option<String>, SourceError> {
        if let Some(found) = self.geometry_columns.get(&layer.table) {
            return Ok(found.clone());
        }
        let sql = format!("SELECT * FROM {} LIMIT 0", layer.table);
        let what = format!("finding the geometry column of {}", short(&layer.table));
        let client = self.connection(layer)?;
        let statement = client.prepare(&sql).map_err(|e| SourceError::Gdal {
            what,
            message: pg_message(&e),
        })?;
        let column = statement
            .columns()
            .iter()
            .find(|c| c.type_().name() == "geometry")
            .map(|c| c.name().to_owned());
        self.geometry_columns
            .insert(layer.table.clone(), column.clone());
        Ok(column)
    }
}

/// A column's bytes as they came (binary format), whatever its type.
struct Raw<'a>(&'a [u8]);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// An attribute in PostgreSQL's binary format, as Mapnik's plugin types
/// it: booleans, integers, floats (and `numeric`) and text keep their
/// kind; other types (arrays, hstore, dates) are null.
fn decode(ty: &Type, b: &[u8]) -> Value {
    let be = |n: usize| -> Option<[u8; 8]> {
        let mut out = [0u8; 8];
        out[8 - n..].copy_from_slice(b.get(..n)?);
        Some(out)
    };
    let int = |n: usize| -> Value {
        match be(n) {
            // Sign-extend from the top byte of the value.
            Some(bytes) => {
                let shift = 64 - 8 * n as u32;
                Value::Int((i64::from_be_bytes(bytes) << shift) >> shift)
            }
            None => Value::Null,
        }
    };
    match *ty {
        Type::BOOL => b.first().map_or(Value::Null, |v| Value::Bool(*v != 0)),
        Type::INT2 => int(2),
        Type::INT4 => int(4),
        Type::INT8 => int(8),
        Type::FLOAT4 => be(4).map_or(Value::Null, |x| {
            Value::Float(f64::from(f32::from_bits(u64::from_be_bytes(x) as u32)))
        }),
        Type::FLOAT8 => be(8).map_or(Value::Null, |x| {
            Value::Float(f64::from_bits(u64::from_be_bytes(x)))
        }),
        Type::NUMERIC => numeric(b).map_or(Value::Null, Value::Float),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            Value::String(String::from_utf8_lossy(b).into_owned())
        }
        _ => Value::Null,
    }
}

/// PostgreSQL's binary `numeric`: digit count, weight, sign, scale, then
/// base-10000 digits.
fn numeric(b: &[u8]) -> Option<f64> {
    let word = |i: usize| -> Option<u16> { Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?])) };
    let (n, weight, sign) = (word(0)? as usize, word(2)? as i16, word(4)?);
    if sign == 0xC000 {
        return Some(f64::NAN);
    }
    let mut value = 0.0;
    for k in 0..n {
        let digit = f64::from(word(8 + 2 * k)?);
        value += digit * 10000f64.powi(i32::from(weight) - k as i32);
    }
    Some(if sign == 0x4000 { -value } else { value })
}

/// PostgreSQL's own message for an error (severity, message, detail).
/// Whether an error means the connection is gone (rather than the server
/// refusing the query): no answer from the server, a `FATAL` one (a
/// restart's "terminating connection due to administrator command"), a
/// connection-class SQLSTATE (`08...`), or the client closed since.
fn connection_lost(e: &postgres::Error, client: &Client) -> bool {
    let fatal = e
        .as_db_error()
        .is_none_or(|db| db.severity() == "FATAL" || db.code().code().starts_with("08"));
    fatal || client.is_closed()
}

fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut m = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                m.push_str(&format!(" ({detail})"));
            }
            m
        }
        None => {
            let mut m = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                m.push_str(&format!(": {s}"));
                source = s.source();
            }
            m
        }
    }
}

/// The client configuration of a `PG:` connection string, completed from
/// libpq's environment (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`,
/// `PGDATABASE`) and defaults (the Unix socket in /var/run/postgresql, the
/// user's name), as libpq completes Mapnik's.
fn client_config(connection: &str, statement_timeout_ms: Option<u64>) -> Result<Config, String> {
    let conninfo = connection.strip_prefix("PG:").unwrap_or(connection);
    let mut pairs: HashMap<String, String> = parse_conninfo(conninfo)?.into_iter().collect();
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    for (key, var) in [
        ("host", "PGHOST"),
        ("port", "PGPORT"),
        ("user", "PGUSER"),
        ("password", "PGPASSWORD"),
        ("dbname", "PGDATABASE"),
    ] {
        if !pairs.contains_key(key) {
            if let Some(v) = env(var) {
                pairs.insert(key.into(), v);
            }
        }
    }
    let user = pairs
        .get("user")
        .cloned()
        .or_else(|| env("USER"))
        .unwrap_or_else(|| "postgres".into());
    let mut config = Config::new();
    config.user(&user);
    config.dbname(pairs.get("dbname").map_or(user.as_str(), String::as_str));
    config.host(
        pairs
            .get("host")
            .map_or("/var/run/postgresql", String::as_str),
    );
    let port = match pairs.get("port") {
        Some(p) => p.parse::<u16>().map_err(|_| format!("bad port `{p}`"))?,
        None => 5432,
    };
    config.port(port);
    if let Some(password) = pairs.get("password") {
        config.password(password);
    }
    if let Some(t) = pairs.get("connect_timeout") {
        let secs: u64 = t
            .parse()
            .map_err(|_| format!("bad connect_timeout `{t}`"))?;
        config.connect_timeout(std::time::Duration::from_secs(secs.max(1)));
    }
    // Every metatile's query planned with its own values, as Mapnik's
    // literal queries are (PostgreSQL would switch a prepared statement to
    // one generic plan after five runs; rows that tie in an ORDER BY then
    // come in another order, and labels are placed differently from
    // Mapnik's). The statement is still parsed and analysed once.
    let mut options = String::from("-c plan_cache_mode=force_custom_plan");
    if let Some(ms) = statement_timeout_ms {
        options.push_str(&format!(" -c statement_timeout={ms}"));
    }
    config.options(&options);
    config.application_name("tessera");
    Ok(config)
}

/// libpq's `key=value` list (values may be single-quoted, with `\'`).
fn parse_conninfo(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let key: String =
            std::iter::from_fn(|| chars.next_if(|&c| c != '=' && !c.is_whitespace())).collect();
        if key.is_empty() {
            break;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!("`{key}` has no value in the connection string"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("unterminated quote in `{key}`")),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())).collect();
        }
        out.push((key, value));
    }
    Ok(out)
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
    fn the_prepared_statement_has_parameters_where_the_tokens_were() {
        let l = layer(
            "(SELECT way, !pixel_width!::real AS pw, !scale_denominator! AS sd FROM t \
             WHERE way && !bbox!) AS x",
            "epsg:3857",
            None,
        );
        let (sql, bbox, numbers) = l.prepared(&area(), None);
        assert_eq!(
            sql,
            "SELECT * FROM (SELECT way, ($6::numeric)::real AS pw, ($5::numeric) AS sd FROM t \
             WHERE way && ST_MakeEnvelope($1,$2,$3,$4,3857)) AS x"
        );
        assert_eq!(bbox, [2_700_000.0, 8_430_000.0, 2_780_000.0, 8_510_000.0]);
        // The numbers as the literal form writes them.
        assert_eq!(
            numbers,
            [
                "8530.918335399136".to_string(),
                "2.388657133911758".into(),
                "2.388657133911758".into()
            ]
        );
        // A table without !bbox!: the same filter, with the parameters.
        let plain = layer("planet_osm_line", "epsg:3857", None);
        assert_eq!(
            plain.prepared(&area(), Some("way")).0,
            "SELECT * FROM planet_osm_line WHERE \"way\" && ST_MakeEnvelope($1,$2,$3,$4,3857)"
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
