//! The service's configuration: a TOML file, command-line overrides on top,
//! and an embedded default that serves the bundled demo map.
//!
//! Every key is optional. An unknown key, a wrong type or an invalid value
//! is an error that names the key (`server.listen[1]: ...`), so a typo never
//! silently falls back to a default.

use std::path::{Path, PathBuf};

use ipc_proto::{CallbackStyle, Endpoint};
use render_core::TileFormat;
use serde::{Deserialize, Serialize};

use crate::store::TileLayout;

/// The configuration used when none is given: the demo map, served on
/// loopback. Its style path is relative to the demo's folder, which the
/// caller supplies ([`ServiceConfig::builtin_default`]).
pub const DEFAULT_CONFIG: &str = include_str!("default-config.toml");

/// Why a configuration is not usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML does not parse or does not fit the schema (the message
    /// names the key and the line).
    #[error("{origin}: {message}")]
    Toml {
        /// The file, or "built-in default".
        origin: String,
        /// What toml says.
        message: String,
    },
    /// A value parses but is not valid.
    #[error("{origin}: `{key}`: {message}")]
    Invalid {
        /// The file, or "command line".
        origin: String,
        /// The key, e.g. `server.listen[0]`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration, as read from TOML.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Listeners, auth and limits.
    pub server: ServerSection,
    /// Rendering.
    pub render: RenderSection,
    /// The tile store.
    pub store: StoreSection,
    /// Tiles over HTTP for web maps (the `http-front` crate serves them).
    pub http: HttpSection,
    /// Scale-out: this process's role and the engine the roles share.
    pub cluster: ClusterSection,
    /// The maps served; the first is the default for clients that name none.
    #[serde(rename = "map")]
    pub maps: Vec<MapSection>,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Where the framed protocol is served (`tcp:HOST:PORT`, `unix:PATH`).
    pub listen: Vec<String>,
    /// Where the legacy line protocol is served, if anywhere (TCP only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_listen: Option<String>,
    /// The legacy callback goes to the client's address at the legacy
    /// listen port plus this.
    pub legacy_callback_offset: u16,
    /// `connection-per-message` (what the original client expects) or `lines`.
    pub legacy_callback_style: String,
    /// Most legacy connections at once, counted apart from the framed
    /// ones (`max_connections`); more are closed at once.
    pub legacy_max_connections: usize,
    /// A legacy connection that sends nothing for this long (while none of
    /// its batches waits for its `\n` reply) is closed; 0: never.
    pub legacy_idle_timeout_ms: u64,
    /// A legacy batch must be ended (`stop`, empty line, EOF) this long
    /// after its first byte, or the connection is closed; 0: no limit.
    pub legacy_batch_timeout_ms: u64,
    /// Where renderd's socket protocol is served (`unix:PATH`, or
    /// `tcp:HOST:PORT` on loopback), for Apache's mod_tile, `render_list`
    /// and `render_expired`.
    pub renderd_listen: Vec<String>,
    /// The mode of renderd Unix sockets, in octal (`"0666"`): mod_tile
    /// connects as the web server's user.
    pub renderd_socket_mode: String,
    /// Most renderd-protocol connections at once, counted apart from the
    /// framed ones; more are closed at once.
    pub renderd_max_connections: usize,
    /// A file holding the shared secret; required to listen beyond loopback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// Listen on non-loopback addresses without a secret (not recommended).
    pub allow_insecure_remote: bool,
    /// Most connections at once; more are refused with `Goodbye`.
    pub max_connections: usize,
    /// Most tiles queued at once, over all clients.
    pub max_queued_tiles: usize,
    /// Most tiles one client may have queued.
    pub max_queued_tiles_per_client: usize,
    /// Most tiles one request may name (a bbox is counted before it is
    /// expanded).
    pub max_tiles_per_request: u64,
    /// Largest frame accepted, in bytes.
    pub max_frame_bytes: usize,
    /// Serve requests first come, first served, ignoring priority classes
    /// and viewports (the original program's order; for comparisons).
    pub fifo: bool,
    /// How long a new connection has for the whole handshake
    /// (authentication and `Hello`), however slowly its bytes come.
    pub handshake_timeout_ms: u64,
    /// Most connections in their handshake at once; a new one closes the
    /// oldest, so slow or silent connections cannot lock real clients out.
    pub max_handshakes: usize,
    /// A connection that has sent no whole message for this long while
    /// none of its requests is open is closed with `Goodbye` (`Ping` keeps
    /// it alive); 0 never closes an idle connection.
    pub idle_timeout_ms: u64,
    /// A client that takes nothing from its socket for this long is
    /// dropped.
    pub write_timeout_ms: u64,
    /// Most bytes of answers (PNGs included) that may wait for one client;
    /// above it the client's work is paused until it has read half.
    pub max_queued_bytes_per_client: usize,
    /// Look at the configuration file and every map's style and data
    /// files this often (milliseconds) and reload when one changed, as
    /// SIGHUP does; 0: only on SIGHUP or `tile-client reload`.
    pub watch_interval_ms: u64,
}

/// `[render]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RenderSection {
    /// Render threads; 0 means one per core.
    pub threads: usize,
    /// Metatile size N (N×N tiles drawn at once).
    pub metatile: u32,
    /// Tile size in pixels.
    pub tile_size: u32,
    /// HiDPI scale factor (stroke widths, and rule selection as Mapnik).
    pub scale_factor: f64,
    /// Pixels around a metatile whose features are drawn too; unset takes
    /// the style's `buffer-size`, or, for a style without one, half a tile
    /// times the scale factor (128 for 256 px tiles), as renderd does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffer: Option<u32>,
    /// `png` (32-bit), `png8`/`png256`, or `png8:c=N`.
    pub format: String,
    /// GDAL's raster block cache in MiB; unset keeps GDAL's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gdal_cache_mb: Option<u32>,
    /// PostgreSQL `statement_timeout` of every PostGIS query, in
    /// milliseconds (a longer query fails its tile); 0 means no limit.
    pub statement_timeout_ms: u64,
    /// PostGIS connections per render thread: a metatile's layer queries
    /// run on them in parallel, ahead of the drawing (1 to 16); 0: 2 when
    /// there are fewer render threads than cores, else 1.
    pub postgis_connections: usize,
    /// Vector files larger than this (MiB) are read per metatile instead
    /// of held in memory.
    pub in_memory_limit_mb: u64,
}

/// `[store]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// The tile directory.
    pub dir: PathBuf,
    /// The layout of tile files under it: `{map}` (the map's name), `{z}`,
    /// `{x}`, `{y}`. Without `{map}` (one map only) tiles go straight into
    /// the tile directory.
    pub layout: String,
}

/// `[cluster]`: past one machine (see [`crate::cluster`]).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// `both` (the default: take requests and render them), `front` (take
    /// requests; render nodes draw them) or `render` (draw what fronts ask).
    pub role: String,
    /// The engine the roles share: `redis://HOST:PORT[/DB]`. Empty: one
    /// machine, no engine.
    pub queue: String,
    /// A name for this cluster's keys in the engine, so that several
    /// clusters can share one Redis.
    pub name: String,
    /// Metatile jobs one front keeps in the engine at once; the rest stay in
    /// its own scheduler, re-rankable until they are published.
    pub window: usize,
    /// Of the window, slots only on-screen and explicit work may take.
    pub screen_reserve: usize,
    /// A render node's hold on a job: renewed while it draws; a node that
    /// stops renewing (it died) loses the job to another after this long.
    pub lease_ms: u64,
    /// How long a front waits for an engine that does not answer before it
    /// fails the work waiting on it (`Busy`, retry later).
    pub engine_timeout_ms: u64,
}

impl Default for ClusterSection {
    fn default() -> Self {
        Self {
            role: "both".into(),
            queue: String::new(),
            name: "tessera".into(),
            window: 64,
            screen_reserve: 16,
            lease_ms: 10_000,
            engine_timeout_ms: 10_000,
        }
    }
}

/// `[http]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// Where to serve HTTP: `HOST:PORT` (none by default).
    pub listen: Vec<String>,
    /// Allow a listener beyond loopback. HTTP has no client secret: say so
    /// on purpose, behind a proxy or firewall you trust.
    pub public: bool,
    /// The `Cache-Control` header of tiles.
    pub cache_control: String,
    /// `Access-Control-Allow-Origin` of tiles and TileJSON: `*`, one
    /// origin, or empty for no CORS header.
    pub cors_allow_origin: String,
    /// Open HTTP connections at most; more wait to be accepted.
    pub max_connections: usize,
    /// A request's headers must arrive within this (slow clients).
    pub header_timeout_ms: u64,
    /// Largest request head (request line and headers) in bytes.
    pub max_header_bytes: usize,
    /// Waiting longer than this for a render answers the stale tile if
    /// there is one, else `503` with `Retry-After`; 0 waits as long as the
    /// render takes.
    pub render_timeout_ms: u64,
}

/// `[[map]]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MapSection {
    /// The name clients use; also the map's directory in the store.
    pub name: String,
    /// The Mapnik-XML style file.
    pub style: PathBuf,
    /// The lowest zoom served over HTTP (TileJSON's `minzoom`).
    #[serde(default)]
    pub min_zoom: u8,
    /// The highest zoom served over HTTP (TileJSON's `maxzoom`).
    #[serde(default = "default_max_zoom")]
    pub max_zoom: u8,
    /// TileJSON's `attribution`; unset takes the style's
    /// `<Parameter name="attribution">`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<String>,
}

/// renderd's default `MAXZOOM`.
fn default_max_zoom() -> u8 {
    20
}

impl MapSection {
    /// A map of this name and style, with the default zooms.
    pub fn new(name: impl Into<String>, style: impl Into<PathBuf>) -> MapSection {
        MapSection {
            name: name.into(),
            style: style.into(),
            min_zoom: 0,
            max_zoom: default_max_zoom(),
            attribution: None,
        }
    }
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: Vec::new(),
            public: false,
            cache_control: "public, max-age=3600".into(),
            cors_allow_origin: "*".into(),
            max_connections: 1024,
            header_timeout_ms: 10_000,
            max_header_bytes: 16 << 10,
            render_timeout_ms: 0,
        }
    }
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: vec!["tcp:127.0.0.1:7420".into()],
            legacy_listen: None,
            legacy_callback_offset: ipc_proto::legacy::DEFAULT_CALLBACK_PORT_OFFSET,
            legacy_callback_style: "connection-per-message".into(),
            legacy_max_connections: 64,
            legacy_idle_timeout_ms: 30_000,
            legacy_batch_timeout_ms: 60_000,
            renderd_listen: Vec::new(),
            renderd_socket_mode: "0600".into(),
            renderd_max_connections: 512,
            secret_file: None,
            allow_insecure_remote: false,
            max_connections: 256,
            max_queued_tiles: 2_000_000,
            max_queued_tiles_per_client: 1_000_000,
            max_tiles_per_request: 1_000_000,
            max_frame_bytes: ipc_proto::DEFAULT_MAX_FRAME,
            fifo: false,
            handshake_timeout_ms: 10_000,
            max_handshakes: 64,
            idle_timeout_ms: 300_000,
            write_timeout_ms: 30_000,
            max_queued_bytes_per_client: 16 << 20,
            watch_interval_ms: 0,
        }
    }
}

impl Default for RenderSection {
    fn default() -> Self {
        Self {
            threads: 0,
            metatile: tile_math::DEFAULT_METATILE_SIZE,
            tile_size: 256,
            scale_factor: 1.0,
            buffer: None,
            format: "png8".into(),
            gdal_cache_mb: None,
            statement_timeout_ms: 60_000,
            postgis_connections: 0,
            in_memory_limit_mb: 256,
        }
    }
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("tiles"),
            layout: crate::store::DEFAULT_MAP_LAYOUT.into(),
        }
    }
}

/// Values from the command line that override the file. `None` keeps the
/// file's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigOverrides {
    /// `--style`: replaces the maps with one map named `default`.
    pub style: Option<PathBuf>,
    /// `--tile-dir`.
    pub tile_dir: Option<PathBuf>,
    /// `--tile-layout`.
    pub tile_layout: Option<String>,
    /// `--listen` (repeatable): replaces the list.
    pub listen: Vec<String>,
    /// `--legacy-listen`.
    pub legacy_listen: Option<String>,
    /// `--renderd-listen` (repeatable): replaces the list.
    pub renderd_listen: Vec<String>,
    /// `--threads`.
    pub threads: Option<usize>,
    /// `--metatile`.
    pub metatile: Option<u32>,
    /// `--secret-file`.
    pub secret_file: Option<PathBuf>,
    /// `--format`.
    pub format: Option<String>,
    /// `--fifo`: sets `server.fifo` (false keeps the file's value).
    pub fifo: bool,
    /// `--http-listen` (repeatable): replaces the list.
    pub http_listen: Vec<String>,
    /// `--role`.
    pub role: Option<String>,
    /// `--queue`.
    pub queue: Option<String>,
}

impl ConfigOverrides {
    /// Blames the command line for an invalid value that came from one of
    /// these flags: `command line: --metatile: ...`, not the file's name
    /// (or "built-in default") and a key the user never wrote.
    pub fn blame(&self, error: ConfigError) -> ConfigError {
        let ConfigError::Invalid {
            origin,
            key,
            message,
        } = error
        else {
            return error;
        };
        let section = key.split('[').next().unwrap_or(&key);
        let flag = match section {
            "server.listen" if !self.listen.is_empty() => Some("--listen"),
            "server.legacy_listen" if self.legacy_listen.is_some() => Some("--legacy-listen"),
            "server.renderd_listen" if !self.renderd_listen.is_empty() => Some("--renderd-listen"),
            "server.secret_file" if self.secret_file.is_some() => Some("--secret-file"),
            "render.threads" if self.threads.is_some() => Some("--threads"),
            "render.metatile" if self.metatile.is_some() => Some("--metatile"),
            "render.format" if self.format.is_some() => Some("--format"),
            "store.dir" if self.tile_dir.is_some() => Some("--tile-dir"),
            "store.layout" if self.tile_layout.is_some() => Some("--tile-layout"),
            "http.listen" if !self.http_listen.is_empty() => Some("--http-listen"),
            "cluster.role" if self.role.is_some() => Some("--role"),
            "cluster.queue" if self.queue.is_some() => Some("--queue"),
            "map" if self.style.is_some() => Some("--style"),
            _ => None,
        };
        match flag {
            Some(flag) => ConfigError::Invalid {
                origin: "command line".into(),
                key: flag.into(),
                message,
            },
            None => ConfigError::Invalid {
                origin,
                key,
                message,
            },
        }
    }
}

/// A checked configuration, ready to start a service from.
#[derive(Debug, Clone)]
pub struct ValidConfig {
    /// The configuration as given.
    pub raw: ServiceConfig,
    /// Parsed listen endpoints.
    pub listen: Vec<Endpoint>,
    /// Parsed legacy endpoint.
    pub legacy_listen: Option<Endpoint>,
    /// Parsed renderd-protocol endpoints.
    pub renderd_listen: Vec<Endpoint>,
    /// Parsed mode of renderd Unix sockets.
    pub renderd_socket_mode: u32,
    /// Parsed HTTP addresses (loopback unless `http.public`).
    pub http_listen: Vec<std::net::SocketAddr>,
    /// Parsed callback style.
    pub legacy_callback_style: CallbackStyle,
    /// Parsed tile format.
    pub format: TileFormat,
    /// Parsed layout.
    pub layout: TileLayout,
    /// Render threads (0 resolved to the number of cores).
    pub threads: usize,
    /// This process's part in a cluster, or `None` on one machine.
    pub cluster: Option<crate::cluster::ClusterSettings>,
}

impl ValidConfig {
    /// The configuration in effect, as TOML (`--check-config` prints it):
    /// every key with its value, paths made absolute, `render.threads` as
    /// the number of threads that will run. Read back, it configures the
    /// same server from any folder.
    pub fn effective_toml(&self) -> Result<String, ConfigError> {
        let mut effective = self.raw.clone();
        let absolute = |path: &mut PathBuf| {
            if let Ok(full) = std::path::absolute(&*path) {
                *path = full;
            }
        };
        absolute(&mut effective.store.dir);
        for map in &mut effective.maps {
            absolute(&mut map.style);
        }
        if let Some(secret) = &mut effective.server.secret_file {
            absolute(secret);
        }
        effective.render.threads = self.threads;
        toml::to_string(&effective).map_err(|e| ConfigError::Toml {
            origin: "the effective configuration".into(),
            message: e.to_string(),
        })
    }

    /// Where a map's tiles go: a store root under `store.dir` and the
    /// layout inside it (see [`TileLayout::split_folder`]). `map` is a
    /// configured, checked name.
    pub fn store_location(&self, map: &str) -> (PathBuf, TileLayout) {
        let (folder, layout) = self.layout.for_map(map).split_folder();
        (self.raw.store.dir.join(folder), layout)
    }
}

/// `HOST:PORT`, also written `tcp:HOST:PORT` or `http://HOST:PORT/`; a
/// host name is resolved to its first address.
fn parse_http_address(text: &str) -> Result<std::net::SocketAddr, String> {
    let bare = text
        .strip_prefix("http://")
        .map(|rest| rest.trim_end_matches('/'))
        .or_else(|| text.strip_prefix("tcp:"))
        .unwrap_or(text);
    if text.starts_with("https://") {
        return Err(format!(
            "{text:?}: tessera serves plain HTTP; put TLS in a proxy in front of it"
        ));
    }
    if bare.contains('/') || bare.starts_with("unix:") {
        return Err(format!("{text:?} is not HOST:PORT (e.g. 127.0.0.1:8080)"));
    }
    use std::net::ToSocketAddrs;
    bare.to_socket_addrs()
        .map_err(|e| format!("{text:?} is not HOST:PORT (e.g. 127.0.0.1:8080): {e}"))?
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

impl ServiceConfig {
    /// Reads a TOML file. Relative paths in it (styles, store, secret) are
    /// taken relative to the file's folder.
    pub fn from_file(path: &Path) -> Result<ServiceConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::from_toml(&text, &path.display().to_string())?;
        config.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        Ok(config)
    }

    /// The built-in default: the demo map, whose files (`demo.xml` and its
    /// data, as in the repository's `data/demo/`) are in `demo_dir`.
    /// No path of the machine that built the crate is involved: tile-server
    /// carries the demo inside its binary and unpacks it there.
    pub fn builtin_default(demo_dir: &Path) -> ServiceConfig {
        // The default is part of the crate and tested; it always parses.
        let mut config = Self::from_toml(DEFAULT_CONFIG, "built-in default").unwrap_or_default();
        config.resolve_paths(demo_dir);
        config
    }

    /// Parses TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<ServiceConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Toml {
            origin: origin.into(),
            message: e.to_string(),
        })
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for map in &mut self.maps {
            resolve(&mut map.style);
        }
        // The store is relative to where the server runs unless the file
        // says otherwise with an absolute path: tiles are output, not input.
        if let Some(secret) = &mut self.server.secret_file {
            resolve(secret);
        }
    }

    /// Applies command-line overrides.
    pub fn apply(&mut self, o: &ConfigOverrides) {
        if let Some(style) = &o.style {
            self.maps = vec![MapSection::new("default", style.clone())];
        }
        if let Some(dir) = &o.tile_dir {
            self.store.dir = dir.clone();
        }
        if let Some(layout) = &o.tile_layout {
            self.store.layout = layout.clone();
        }
        if !o.listen.is_empty() {
            self.server.listen = o.listen.clone();
        }
        if let Some(legacy) = &o.legacy_listen {
            self.server.legacy_listen = Some(legacy.clone());
        }
        if !o.renderd_listen.is_empty() {
            self.server.renderd_listen = o.renderd_listen.clone();
        }
        if let Some(threads) = o.threads {
            self.render.threads = threads;
        }
        if let Some(metatile) = o.metatile {
            self.render.metatile = metatile;
        }
        if let Some(secret) = &o.secret_file {
            self.server.secret_file = Some(secret.clone());
        }
        if let Some(format) = &o.format {
            self.render.format = format.clone();
        }
        if o.fifo {
            self.server.fifo = true;
        }
        if !o.http_listen.is_empty() {
            self.http.listen = o.http_listen.clone();
        }
        if let Some(role) = &o.role {
            self.cluster.role = role.clone();
        }
        if let Some(queue) = &o.queue {
            self.cluster.queue = queue.clone();
        }
    }

    /// Checks every value; `origin` names the source in errors.
    pub fn validate(self, origin: &str) -> Result<ValidConfig, ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid {
            origin: origin.into(),
            key,
            message,
        };
        let mut listen = Vec::new();
        for (i, text) in self.server.listen.iter().enumerate() {
            listen.push(
                text.parse::<Endpoint>()
                    .map_err(|e| invalid(format!("server.listen[{i}]"), e.to_string()))?,
            );
        }
        let mut renderd_listen = Vec::new();
        for (i, text) in self.server.renderd_listen.iter().enumerate() {
            renderd_listen.push(
                text.parse::<Endpoint>()
                    .map_err(|e| invalid(format!("server.renderd_listen[{i}]"), e.to_string()))?,
            );
        }
        let renderd_socket_mode = u32::from_str_radix(&self.server.renderd_socket_mode, 8)
            .ok()
            .filter(|mode| *mode <= 0o777 && *mode & 0o600 == 0o600)
            .ok_or_else(|| {
                invalid(
                    "server.renderd_socket_mode".into(),
                    format!(
                        "{:?} is not an octal mode from \"0600\" to \"0777\" that lets the \
                         server's own user read and write (e.g. \"0660\" or \"0666\")",
                        self.server.renderd_socket_mode
                    ),
                )
            })?;
        if self.server.renderd_max_connections == 0 {
            return Err(invalid(
                "server.renderd_max_connections".into(),
                "must be at least 1".into(),
            ));
        }
        let mut http_listen = Vec::new();
        for (i, text) in self.http.listen.iter().enumerate() {
            let key = format!("http.listen[{i}]");
            let address = parse_http_address(text).map_err(|m| invalid(key.clone(), m))?;
            if !address.ip().is_loopback() && !self.http.public {
                return Err(invalid(
                    key,
                    format!(
                        "{address} is reachable beyond this machine, and HTTP has no secret: \
                         set `http.public = true` to serve it anyway (behind a proxy or \
                         firewall you trust)"
                    ),
                ));
            }
            http_listen.push(address);
        }
        for (key, value) in [
            ("http.max_connections", self.http.max_connections),
            (
                "http.header_timeout_ms",
                self.http.header_timeout_ms as usize,
            ),
            ("http.max_header_bytes", self.http.max_header_bytes),
        ] {
            if value == 0 {
                return Err(invalid(key.into(), "must be at least 1".into()));
            }
        }
        if self.http.max_header_bytes < 1024 {
            return Err(invalid(
                "http.max_header_bytes".into(),
                "must be at least 1024".into(),
            ));
        }
        let cluster = crate::cluster::ClusterSettings::from_section(&self.cluster)
            .map_err(|(key, message)| invalid(key, message))?;
        let renders_only = cluster
            .as_ref()
            .is_some_and(|c| c.role == crate::cluster::Role::Render);
        if !renders_only
            && listen.is_empty()
            && self.server.legacy_listen.is_none()
            && renderd_listen.is_empty()
            && http_listen.is_empty()
        {
            return Err(invalid(
                "server.listen".into(),
                "nothing to listen on".into(),
            ));
        }
        let legacy_listen = match &self.server.legacy_listen {
            None => None,
            Some(text) => {
                let endpoint: Endpoint = text.parse().map_err(|e: ipc_proto::Error| {
                    invalid("server.legacy_listen".into(), e.to_string())
                })?;
                if !matches!(endpoint, Endpoint::Tcp { .. }) {
                    return Err(invalid(
                        "server.legacy_listen".into(),
                        "the legacy protocol calls back to a TCP port: use tcp:HOST:PORT".into(),
                    ));
                }
                Some(endpoint)
            }
        };
        let legacy_callback_style = match self.server.legacy_callback_style.as_str() {
            "connection-per-message" => CallbackStyle::ConnectionPerMessage,
            "lines" => CallbackStyle::Lines,
            other => {
                return Err(invalid(
                    "server.legacy_callback_style".into(),
                    format!("{other:?} is not `connection-per-message` or `lines`"),
                ))
            }
        };
        if self.server.legacy_max_connections == 0 {
            return Err(invalid(
                "server.legacy_max_connections".into(),
                "must be at least 1".into(),
            ));
        }
        for (key, value) in [
            ("server.max_connections", self.server.max_connections),
            ("server.max_queued_tiles", self.server.max_queued_tiles),
            (
                "server.max_queued_tiles_per_client",
                self.server.max_queued_tiles_per_client,
            ),
            ("server.max_handshakes", self.server.max_handshakes),
            (
                "server.handshake_timeout_ms",
                self.server.handshake_timeout_ms as usize,
            ),
            (
                "server.write_timeout_ms",
                self.server.write_timeout_ms as usize,
            ),
        ] {
            if value == 0 {
                return Err(invalid(key.into(), "must be at least 1".into()));
            }
        }
        if self.server.max_queued_bytes_per_client < (64 << 10) {
            return Err(invalid(
                "server.max_queued_bytes_per_client".into(),
                "must be at least 65536 (one tile's answer must fit)".into(),
            ));
        }
        if self.server.max_frame_bytes < 1024 {
            return Err(invalid(
                "server.max_frame_bytes".into(),
                "must be at least 1024".into(),
            ));
        }
        let format = TileFormat::parse(&self.render.format).ok_or_else(|| {
            invalid(
                "render.format".into(),
                format!(
                    "{:?} is not png, png32, png8, png256 or png8:c=N",
                    self.render.format
                ),
            )
        })?;
        if self.render.postgis_connections > 16 {
            return Err(invalid(
                "render.postgis_connections".into(),
                "must be 0 (automatic) to 16".into(),
            ));
        }
        if !(1..=64).contains(&self.render.metatile) {
            return Err(invalid("render.metatile".into(), "must be 1 to 64".into()));
        }
        if !matches!(self.render.tile_size, 64..=4096) {
            return Err(invalid(
                "render.tile_size".into(),
                "must be 64 to 4096".into(),
            ));
        }
        if !(self.render.scale_factor > 0.0 && self.render.scale_factor <= 16.0) {
            return Err(invalid(
                "render.scale_factor".into(),
                "must be above 0 and at most 16".into(),
            ));
        }
        let layout = TileLayout::parse(&self.store.layout)
            .map_err(|e| invalid("store.layout".into(), e.to_string()))?;
        if layout.is_mod_tile() {
            if self.render.metatile != crate::store::mod_tile::METATILE {
                return Err(invalid(
                    "render.metatile".into(),
                    format!(
                        "{0} (metatiles of {0}×{0} tiles), but the mod_tile layout stores \
                         mod_tile's 8×8 metatiles: use 8",
                        self.render.metatile
                    ),
                ));
            }
            if self.server.legacy_listen.is_some() {
                return Err(invalid(
                    "server.legacy_listen".into(),
                    "the legacy application reads one PNG file per tile, and the mod_tile \
                     layout keeps tiles inside .meta files: use a PNG layout such as \
                     \"{z}_{x}_{y}.png\" with the legacy protocol"
                        .into(),
                ));
            }
        }
        if self.maps.is_empty() {
            return Err(invalid(
                "map".into(),
                "no map to serve: add a [[map]] or give --style".into(),
            ));
        }
        if self.maps.len() > 1 && !layout.names_map() {
            return Err(invalid(
                "store.layout".into(),
                format!(
                    "{:?} has no `{{map}}`, so the {} maps would write the same files: \
                     put `{{map}}` in it, e.g. {:?}",
                    self.store.layout,
                    self.maps.len(),
                    format!("{{map}}/{}", self.store.layout)
                ),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, map) in self.maps.iter().enumerate() {
            let valid_name = !map.name.is_empty()
                && map.name.len() <= 64
                && map
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid_name {
                return Err(invalid(
                    format!("map[{i}].name"),
                    format!(
                        "{:?} must be 1-64 letters, digits, '-' or '_' (it names a directory)",
                        map.name
                    ),
                ));
            }
            if !names.insert(map.name.as_str()) {
                return Err(invalid(
                    format!("map[{i}].name"),
                    format!("{:?} is used twice", map.name),
                ));
            }
            if map.min_zoom > map.max_zoom || map.max_zoom > 30 {
                return Err(invalid(
                    format!("map[{i}].max_zoom"),
                    format!(
                        "zooms {}..{} are not a range within 0..30",
                        map.min_zoom, map.max_zoom
                    ),
                ));
            }
            if !map.style.is_file() {
                return Err(invalid(
                    format!("map[{i}].style"),
                    format!("{} is not a file", map.style.display()),
                ));
            }
        }
        let threads = match self.render.threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        Ok(ValidConfig {
            raw: self,
            http_listen,
            listen,
            legacy_listen,
            renderd_listen,
            renderd_socket_mode,
            legacy_callback_style,
            format,
            layout,
            threads,
            cluster,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in configuration over the repository's demo folder.
    fn builtin() -> ServiceConfig {
        ServiceConfig::builtin_default(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/demo"),
        )
    }

    #[test]
    fn the_builtin_default_serves_the_demo_map() {
        let config = builtin();
        assert_eq!(config.maps.len(), 1);
        assert!(config.maps[0].style.ends_with("data/demo/demo.xml"));
        let valid = config.validate("built-in default").unwrap();
        assert_eq!(valid.listen.len(), 1);
        assert!(valid.threads >= 1);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = ServiceConfig::from_toml(
            "[server]\nlisten = [\"tcp:127.0.0.1:1\"]\nlistne = 3\n",
            "x.toml",
        )
        .unwrap_err();
        assert!(err.to_string().contains("listne"), "{err}");
        let err = ServiceConfig::from_toml("[render]\nthreads = \"many\"\n", "x.toml").unwrap_err();
        assert!(err.to_string().contains("threads"), "{err}");
        let mut config = builtin();
        config.server.listen = vec!["tcp:127.0.0.1:1".into(), "tcp:no-port".into()];
        let err = config.validate("x.toml").unwrap_err().to_string();
        assert!(err.contains("server.listen[1]"), "{err}");
        let mut config = builtin();
        config.render.format = "jpeg".into();
        assert!(config
            .validate("x")
            .unwrap_err()
            .to_string()
            .contains("render.format"));
        let mut config = builtin();
        config.maps[0].name = "../etc".into();
        assert!(config
            .validate("x")
            .unwrap_err()
            .to_string()
            .contains("map[0].name"));
        let mut config = builtin();
        config.store.layout = "{z}/{x}.png".into();
        assert!(config
            .validate("x")
            .unwrap_err()
            .to_string()
            .contains("store.layout"));
        let mut config = builtin();
        config.server.legacy_listen = Some("unix:/tmp/x".into());
        assert!(config
            .validate("x")
            .unwrap_err()
            .to_string()
            .contains("server.legacy_listen"));
    }

    #[test]
    fn the_command_line_wins_over_the_file() {
        let mut config = builtin();
        config.apply(&ConfigOverrides {
            listen: vec!["unix:/tmp/t.sock".into()],
            threads: Some(3),
            tile_layout: Some(crate::store::LEGACY_LAYOUT.into()),
            ..ConfigOverrides::default()
        });
        assert_eq!(config.server.listen, ["unix:/tmp/t.sock"]);
        assert_eq!(config.render.threads, 3);
        let valid = config.validate("x").unwrap();
        assert_eq!(valid.threads, 3);
        assert_eq!(valid.layout.template(), "{z}_{x}_{y}.png");
    }

    #[test]
    fn the_builtin_file_states_every_default_of_the_server_section() {
        // The file documents the defaults: it must not drift from them.
        assert_eq!(builtin().server, ServerSection::default());
    }

    #[test]
    fn connection_limits_and_timeouts_are_checked() {
        type Edit = fn(&mut ServerSection);
        let cases: [(&str, Edit, &str); 4] = [
            (
                "max_handshakes",
                |s| s.max_handshakes = 0,
                "must be at least 1",
            ),
            (
                "handshake_timeout_ms",
                |s| s.handshake_timeout_ms = 0,
                "must be at least 1",
            ),
            (
                "write_timeout_ms",
                |s| s.write_timeout_ms = 0,
                "must be at least 1",
            ),
            (
                "max_queued_bytes_per_client",
                |s| s.max_queued_bytes_per_client = 1000,
                "must be at least 65536 (one tile's answer must fit)",
            ),
        ];
        for (key, edit, message) in cases {
            let mut config = builtin();
            edit(&mut config.server);
            let err = config.validate("t").unwrap_err().to_string();
            assert_eq!(err, format!("t: `server.{key}`: {message}"));
        }
        // 0 is allowed for the idle timeout: never.
        let mut config = builtin();
        config.server.idle_timeout_ms = 0;
        assert_eq!(config.validate("t").unwrap().raw.server.idle_timeout_ms, 0);
    }

    #[test]
    fn fifo_is_off_by_default_and_set_by_file_or_flag() {
        let config = builtin();
        assert!(!config.server.fifo);
        let options = crate::ServiceOptions::from_config(&config.clone().validate("x").unwrap());
        assert!(!options.scheduler.fifo);
        let file = ServiceConfig::from_toml("[server]\nfifo = true\n", "f").unwrap();
        assert!(file.server.fifo);
        let mut flagged = builtin();
        flagged.apply(&ConfigOverrides {
            fifo: true,
            ..ConfigOverrides::default()
        });
        let options = crate::ServiceOptions::from_config(&flagged.validate("x").unwrap());
        assert!(options.scheduler.fifo);
    }

    #[test]
    fn the_layout_places_each_map_and_one_map_may_go_straight_into_the_tile_dir() {
        let mut config = builtin();
        config.store.dir = PathBuf::from("/srv/tiles");
        let valid = config.clone().validate("x").unwrap();
        assert_eq!(
            valid.store_location("demo"),
            (PathBuf::from("/srv/tiles/demo"), TileLayout::default())
        );
        // The legacy application's layout with one map: no map folder.
        config.store.layout = crate::store::LEGACY_LAYOUT.into();
        let valid = config.clone().validate("x").unwrap();
        let (root, layout) = valid.store_location("demo");
        assert_eq!(root, PathBuf::from("/srv/tiles"));
        assert_eq!(layout.template(), "{z}_{x}_{y}.png");
        // Two maps need `{map}`, or they would write the same files.
        let second = config.maps[0].clone();
        config.maps.push(MapSection {
            name: "other".into(),
            ..second
        });
        let err = config.clone().validate("x").unwrap_err().to_string();
        assert!(
            err.contains("`store.layout`") && err.contains("\"{map}/{z}_{x}_{y}.png\""),
            "{err}"
        );
        config.store.layout = "{map}/{z}_{x}_{y}.png".into();
        let valid = config.validate("x").unwrap();
        assert_eq!(
            valid.store_location("other").0,
            PathBuf::from("/srv/tiles/other")
        );
    }

    #[test]
    fn flags_are_blamed_for_their_own_values_only() {
        let overrides = ConfigOverrides {
            metatile: Some(99),
            listen: vec!["http://localhost:7420".into()],
            ..ConfigOverrides::default()
        };
        let mut config = builtin();
        config.apply(&overrides);
        let err = overrides
            .blame(config.clone().validate("built-in default").unwrap_err())
            .to_string();
        assert!(err.starts_with("command line: `--listen`: "), "{err}");
        assert!(!err.contains("built-in default"), "{err}");
        config.server.listen = vec!["tcp:127.0.0.1:0".into()];
        let err = overrides
            .blame(config.clone().validate("built-in default").unwrap_err())
            .to_string();
        assert_eq!(err, "command line: `--metatile`: must be 1 to 64");
        // A value the flags did not set is the file's.
        config.render.metatile = 8;
        config.render.format = "jpeg".into();
        let err = overrides
            .blame(config.validate("tessera.toml").unwrap_err())
            .to_string();
        assert!(err.starts_with("tessera.toml: `render.format`: "), "{err}");
    }

    #[test]
    fn the_effective_configuration_reads_back_as_itself() {
        let mut config = builtin();
        config.store.dir = PathBuf::from("relative/tiles");
        config.render.buffer = Some(128);
        let valid = config.validate("x").unwrap();
        let text = valid.effective_toml().unwrap();
        assert!(
            text.contains("[server]") && text.contains("[[map]]"),
            "{text}"
        );
        let again = ServiceConfig::from_toml(&text, "printed").unwrap();
        assert!(again.store.dir.is_absolute(), "{text}");
        assert!(again.store.dir.ends_with("relative/tiles"));
        assert_eq!(again.render.threads, valid.threads);
        assert_eq!(again.render.buffer, Some(128));
        assert_eq!(again.server, valid.raw.server);
        assert_eq!(again.maps, valid.raw.maps);
    }

    #[test]
    fn a_file_resolves_styles_against_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.xml"), "<Map/>").unwrap();
        let path = dir.path().join("tessera.toml");
        std::fs::write(&path, "[[map]]\nname = \"m\"\nstyle = \"s.xml\"\n").unwrap();
        let config = ServiceConfig::from_file(&path).unwrap();
        assert_eq!(config.maps[0].style, dir.path().join("s.xml"));
        assert!(config.validate("t").is_ok());
    }

    #[test]
    fn renderd_listeners_and_the_mod_tile_layout_are_checked() {
        let mut config = builtin();
        config.server.renderd_listen = vec!["unix:/run/renderd/renderd.sock".into()];
        config.server.renderd_socket_mode = "0666".into();
        config.store.layout = crate::store::MOD_TILE_LAYOUT.into();
        let valid = config.clone().validate("x").unwrap();
        assert_eq!(
            valid.renderd_listen,
            ["unix:/run/renderd/renderd.sock"
                .parse::<Endpoint>()
                .unwrap()]
        );
        assert_eq!(valid.renderd_socket_mode, 0o666);
        assert!(valid.layout.is_mod_tile());
        // mod_tile's folder per map, its .meta files inside.
        let (root, layout) = valid.store_location("demo");
        assert!(root.ends_with("demo"), "{}", root.display());
        assert!(!layout.names_map() && layout.is_mod_tile());
        // A renderd socket alone is something to listen on.
        config.server.listen.clear();
        assert!(config.clone().validate("x").is_ok());
        for (edit, key, says) in [
            (
                (|c: &mut ServiceConfig| c.server.renderd_socket_mode = "0400".into())
                    as fn(&mut ServiceConfig),
                "server.renderd_socket_mode",
                "octal mode",
            ),
            (
                |c| c.server.renderd_socket_mode = "rw".into(),
                "server.renderd_socket_mode",
                "octal mode",
            ),
            (
                |c| c.server.renderd_listen = vec!["http://x".into()],
                "server.renderd_listen[0]",
                "not an endpoint",
            ),
            (
                |c| c.server.renderd_max_connections = 0,
                "server.renderd_max_connections",
                "at least 1",
            ),
            (
                |c| c.render.metatile = 4,
                "render.metatile",
                "8×8 metatiles: use 8",
            ),
            (
                |c| c.server.legacy_listen = Some("tcp:127.0.0.1:1".into()),
                "server.legacy_listen",
                "one PNG file per tile",
            ),
        ] {
            let mut broken = config.clone();
            edit(&mut broken);
            let err = broken.validate("x").unwrap_err().to_string();
            assert!(
                err.contains(&format!("`{key}`")) && err.contains(says),
                "{err}"
            );
        }
        // The flags are blamed for their own values.
        let overrides = ConfigOverrides {
            renderd_listen: vec!["nohost".into()],
            metatile: Some(16),
            ..ConfigOverrides::default()
        };
        let mut flagged = config.clone();
        flagged.apply(&overrides);
        assert_eq!(flagged.server.renderd_listen, ["nohost"]);
        let err = overrides
            .blame(flagged.clone().validate("f").unwrap_err())
            .to_string();
        assert!(
            err.starts_with("command line: `--renderd-listen`: "),
            "{err}"
        );
        flagged.server.renderd_listen = vec!["unix:/tmp/r.sock".into()];
        let err = overrides
            .blame(flagged.validate("f").unwrap_err())
            .to_string();
        assert!(err.starts_with("command line: `--metatile`: 16 "), "{err}");
    }
}
