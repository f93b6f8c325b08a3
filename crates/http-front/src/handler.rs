//! One HTTP request to one response.
//!
//! - Tiles: a fresh stored tile is read from the store and sent with
//!   `ETag`, `Last-Modified` and the configured `Cache-Control`; a client
//!   that has it already gets `304`. A missing or stale tile is rendered on
//!   demand at `viewport` priority through the service's scheduler (merged
//!   with every other request for its metatile). A request given up (the
//!   connection closed) cancels its interest: the handler's future is
//!   dropped with its [`PendingTile`].
//! - Render timeout (`http.render_timeout_ms`): past it, the stale tile if
//!   there is one (as mod_tile does), else `503` with `Retry-After`.
//! - `404` for an unknown map, a tile outside the map's zooms or anything
//!   else not served; `400` for a malformed tile path; `405` for another
//!   method. Nothing of the URL becomes a file path ([`crate::route`]).
//! - Every answer is counted by status for `/metrics`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use ipc_proto::FailureKind;
use render_service::{PriorityClass, ServiceHandle, StoredTile, TileOutcome, ValidConfig, HIDPI};
use tile_math::{LngLatBbox, TileCoord, Viewport};

use crate::bridge::{Bridge, PendingTile};
use crate::route::{route, Route, RouteError};
use crate::{metrics, viewer};

/// Viewer sessions kept at most; the least recently used goes first.
const MAX_SESSIONS: usize = 256;
/// Largest viewport body accepted.
const MAX_VIEWPORT_BODY: usize = 4096;

/// What the handlers share.
#[derive(Debug)]
pub struct State {
    pub(crate) service: ServiceHandle,
    /// Requests without a viewer session.
    anonymous: Arc<Bridge>,
    /// Viewer sessions: each its own service client, so its viewport
    /// re-ranks and cancels its own work only.
    sessions: Mutex<HashMap<String, (Arc<Bridge>, Instant)>>,
    /// Zooms and attribution per map, from the configuration.
    maps: HashMap<String, MapInfo>,
    cache_control: HeaderValue,
    cors: Option<HeaderValue>,
    render_timeout: Option<Duration>,
    pub(crate) counters: Counters,
}

/// A map's HTTP facts.
#[derive(Debug, Clone)]
pub(crate) struct MapInfo {
    pub(crate) min_zoom: u8,
    pub(crate) max_zoom: u8,
    pub(crate) attribution: Option<String>,
}

impl Default for MapInfo {
    fn default() -> Self {
        MapInfo {
            min_zoom: 0,
            max_zoom: 20,
            attribution: None,
        }
    }
}

/// Answers by kind, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) responses: Mutex<HashMap<u16, u64>>,
    pub(crate) tiles_from_store: AtomicU64,
    pub(crate) tiles_rendered: AtomicU64,
    pub(crate) tiles_not_modified: AtomicU64,
    pub(crate) tiles_stale_served: AtomicU64,
    pub(crate) requests_given_up: AtomicU64,
}

impl State {
    pub(crate) fn new(config: &ValidConfig, service: ServiceHandle) -> std::io::Result<State> {
        let http = &config.raw.http;
        let maps = config
            .raw
            .maps
            .iter()
            .map(|m| {
                let info = MapInfo {
                    min_zoom: m.min_zoom,
                    max_zoom: m.max_zoom,
                    attribution: m.attribution.clone(),
                };
                (m.name.clone(), info)
            })
            .collect();
        Ok(State {
            anonymous: Bridge::new(service.clone())?,
            service,
            sessions: Mutex::new(HashMap::new()),
            maps,
            cache_control: HeaderValue::from_str(&http.cache_control)
                .unwrap_or_else(|_| HeaderValue::from_static("no-cache")),
            cors: Some(http.cors_allow_origin.as_str())
                .filter(|o| !o.is_empty())
                .and_then(|o| HeaderValue::from_str(o).ok()),
            render_timeout: (http.render_timeout_ms > 0)
                .then(|| Duration::from_millis(http.render_timeout_ms)),
            counters: Counters::default(),
        })
    }

    pub(crate) fn map_info(&self, name: &str) -> MapInfo {
        self.maps.get(name).cloned().unwrap_or_default()
    }

    /// The bridge of a viewer session, made on first use.
    fn session(&self, id: &str) -> Option<Arc<Bridge>> {
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((bridge, used)) = sessions.get_mut(id) {
            *used = Instant::now();
            return Some(Arc::clone(bridge));
        }
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        let bridge = Bridge::new(self.service.clone()).ok()?;
        sessions.insert(id.to_owned(), (Arc::clone(&bridge), Instant::now()));
        Some(bridge)
    }
}

type Body = Full<Bytes>;

/// Answers one request.
pub(crate) async fn handle(state: &State, request: Request<Incoming>) -> Response<Body> {
    let response = answer(state, request).await;
    if let Ok(mut by_status) = state.counters.responses.lock() {
        *by_status.entry(response.status().as_u16()).or_default() += 1;
    }
    response
}

async fn answer(state: &State, request: Request<Incoming>) -> Response<Body> {
    let uri = request.uri().clone();
    let route = match route(uri.path(), uri.query()) {
        Ok(route) => route,
        Err(RouteError::NotFound) => return text(StatusCode::NOT_FOUND, "not found\n"),
        Err(RouteError::BadRequest(why)) => {
            return text(StatusCode::BAD_REQUEST, &format!("{why}\n"))
        }
    };
    let method = request.method().clone();
    match (&method, route) {
        (&Method::POST, Route::Viewport { map, session }) => {
            viewport(state, &map, &session, request.into_body()).await
        }
        (
            &Method::GET | &Method::HEAD,
            Route::Tile {
                map,
                tile,
                scale,
                session,
            },
        ) => {
            // hyper sends no body for HEAD, with the GET's length.
            let conditions = Conditions::of(&request);
            drop(request);
            tile_response(state, &map, tile, scale, session.as_deref(), &conditions).await
        }
        (&Method::GET | &Method::HEAD, Route::TileJson { map }) => {
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost")
                .to_owned();
            tilejson(state, &map, &host)
        }
        (&Method::GET | &Method::HEAD, Route::Metrics) => {
            let body = metrics::render(state).await;
            let mut response = Response::new(Full::new(Bytes::from(body)));
            set(
                &mut response,
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4",
            );
            response
        }
        (&Method::GET | &Method::HEAD, Route::Health) => {
            if state.service.is_shutting_down() {
                text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
            } else {
                text(StatusCode::OK, "ok\n")
            }
        }
        (&Method::GET | &Method::HEAD, Route::Viewer) => {
            let names: Vec<String> = state
                .service
                .maps()
                .iter()
                .map(|m| m.name.clone())
                .collect();
            viewer::page(&names)
        }
        (&Method::GET | &Method::HEAD, Route::Asset(name)) => viewer::asset(&name),
        _ => {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            set(&mut response, header::ALLOW, "GET, HEAD, POST");
            response
        }
    }
}

async fn tile_response(
    state: &State,
    map: &str,
    tile: TileCoord,
    scale: u8,
    session: Option<&str>,
    conditions: &Conditions,
) -> Response<Body> {
    let Some(map_id) = state.service.map_id(map) else {
        return text(StatusCode::NOT_FOUND, &format!("no map named {map:?}\n"));
    };
    let info = state.map_info(map);
    if !(info.min_zoom..=info.max_zoom).contains(&tile.z()) {
        return text(
            StatusCode::NOT_FOUND,
            &format!(
                "map {map:?} serves zooms {} to {}\n",
                info.min_zoom, info.max_zoom
            ),
        );
    }
    // The high-DPI variant is a map of its own to the scheduler and the
    // store; it shares the style.
    let map_id = if scale == 2 { map_id | HIDPI } else { map_id };
    if let Some(stored) = state.service.fresh_tile(map_id, tile) {
        state
            .counters
            .tiles_from_store
            .fetch_add(1, Ordering::Relaxed);
        return stored_tile(state, &stored, conditions);
    }
    let bridge = match session {
        Some(id) => state
            .session(id)
            .unwrap_or_else(|| Arc::clone(&state.anonymous)),
        None => Arc::clone(&state.anonymous),
    };
    let Some(mut pending) = bridge.render(map_id, tile, PriorityClass::Viewport) else {
        return unavailable("the server is shutting down");
    };
    // Counted as given up unless it finishes: the future may be dropped
    // at any await below (the client went away).
    let mut given_up = GivenUp(Some(&state.counters));
    let outcome = match state.render_timeout {
        None => pending.outcome().await,
        Some(limit) => match tokio::time::timeout(limit, pending.outcome()).await {
            Ok(outcome) => outcome,
            Err(_) => {
                given_up.0 = None;
                return stale_or_unavailable(state, map_id, tile, conditions, pending);
            }
        },
    };
    given_up.0 = None;
    match outcome {
        Some(TileOutcome::Done { path, png, .. }) => {
            state
                .counters
                .tiles_rendered
                .fetch_add(1, Ordering::Relaxed);
            let modified = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .unwrap_or_else(|_| SystemTime::now());
            let bytes = match png {
                Some(png) => Bytes::from(png.as_ref().clone()),
                None => match std::fs::read(&path) {
                    Ok(bytes) => Bytes::from(bytes),
                    Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
                },
            };
            png_response(state, bytes, modified)
        }
        Some(TileOutcome::Failed { kind, message }) => match kind {
            FailureKind::Busy => unavailable(&message),
            FailureKind::InvalidTile => text(StatusCode::NOT_FOUND, &format!("{message}\n")),
            _ => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{message}\n")),
        },
        Some(TileOutcome::Cancelled) | None => unavailable("the render was cancelled"),
    }
}

/// Counts a request whose future was dropped before its answer.
struct GivenUp<'a>(Option<&'a Counters>);

impl Drop for GivenUp<'_> {
    fn drop(&mut self) {
        if let Some(counters) = self.0 {
            counters.requests_given_up.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The render took too long: the stale tile if there is one (the render
/// goes on, for the next request), else `503`.
fn stale_or_unavailable(
    state: &State,
    map_id: render_service::scheduler::MapId,
    tile: TileCoord,
    conditions: &Conditions,
    pending: PendingTile,
) -> Response<Body> {
    // Keep the render going for whoever asks next.
    pending.detach();
    let stale = state
        .service
        .map(map_id)
        .and_then(|entry| entry.store.lookup(tile));
    match stale {
        Some(stored) => {
            state
                .counters
                .tiles_stale_served
                .fetch_add(1, Ordering::Relaxed);
            let mut response = stored_tile(state, &stored, conditions);
            set(&mut response, header::CACHE_CONTROL, "no-cache");
            response
        }
        None => unavailable("the tile is still being rendered"),
    }
}

/// What a client says it has (`If-None-Match`, `If-Modified-Since`).
#[derive(Debug, Default)]
struct Conditions {
    if_none_match: Option<String>,
    if_modified_since: Option<SystemTime>,
}

impl Conditions {
    fn of(request: &Request<Incoming>) -> Conditions {
        let headers = request.headers();
        Conditions {
            if_none_match: headers
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            if_modified_since: headers
                .get(header::IF_MODIFIED_SINCE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| httpdate::parse_http_date(v).ok()),
        }
    }

    /// Whether the client's copy is this version (RFC 9110 13.2.2:
    /// `If-None-Match` wins over `If-Modified-Since`).
    fn has(&self, etag: &str, modified: SystemTime) -> bool {
        match (&self.if_none_match, self.if_modified_since) {
            (Some(tags), _) => tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"),
            (None, Some(since)) => whole_seconds(modified) <= since,
            (None, None) => false,
        }
    }
}

/// A stored tile, or `304` when the client has it. Tiles are small and
/// usually in the page cache: read in place (a few microseconds), not on a
/// blocking thread.
fn stored_tile(state: &State, stored: &StoredTile, conditions: &Conditions) -> Response<Body> {
    // A tile of mod_tile's layout has no file of its own: the store read
    // its bytes out of the metatile's `.meta` file.
    let read = match &stored.png {
        Some(png) => Ok(png.as_ref().clone()),
        None => std::fs::read(&stored.path),
    };
    let bytes = match read {
        Ok(bytes) => Bytes::from(bytes),
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("reading the tile: {e}\n"),
            )
        }
    };
    let etag = etag(stored.modified, bytes.len());
    let not_modified = conditions.has(&etag, stored.modified);
    if not_modified {
        state
            .counters
            .tiles_not_modified
            .fetch_add(1, Ordering::Relaxed);
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        tile_headers(state, &mut response, &etag, stored.modified);
        return response;
    }
    png_response(state, bytes, stored.modified)
}

fn png_response(state: &State, bytes: Bytes, modified: SystemTime) -> Response<Body> {
    let etag = etag(modified, bytes.len());
    let mut response = Response::new(Full::new(bytes));
    set(&mut response, header::CONTENT_TYPE, "image/png");
    tile_headers(state, &mut response, &etag, modified);
    response
}

fn tile_headers(state: &State, response: &mut Response<Body>, etag: &str, modified: SystemTime) {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(modified)) {
        headers.insert(header::LAST_MODIFIED, value);
    }
    headers.insert(header::CACHE_CONTROL, state.cache_control.clone());
    if let Some(origin) = &state.cors {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    }
}

/// A tile's version: its stamp (the render that made it) and its size.
fn etag(modified: SystemTime, len: usize) -> String {
    let nanos = modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("\"{nanos:x}-{len:x}\"")
}

/// HTTP dates have whole seconds.
fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// `POST /{map}/viewport?session=ID` with `{"zoom":Z,"bbox":[W,S,E,N]}`:
/// the session's queued tiles are re-ranked and those more than one tile
/// outside the screen cancelled.
async fn viewport(state: &State, map: &str, session: &str, body: Incoming) -> Response<Body> {
    if state.service.map_id(map).is_none() {
        return text(StatusCode::NOT_FOUND, &format!("no map named {map:?}\n"));
    }
    let bytes = match Limited::new(body, MAX_VIEWPORT_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "a viewport is a small JSON object\n",
            )
        }
    };
    let parsed: Result<ViewportBody, String> = serde_json::from_slice::<serde_json::Value>(&bytes)
        .map_err(|e| e.to_string())
        .and_then(|v| ViewportBody::from_json(&v));
    let view = match parsed.and_then(|b| {
        Viewport::from_bbox(
            LngLatBbox::new(b.bbox[0], b.bbox[1], b.bbox[2], b.bbox[3]),
            b.zoom,
        )
        .map_err(|e| e.to_string())
    }) {
        Ok(view) => view,
        Err(why) => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("viewport: {why} (expected {{\"zoom\":Z,\"bbox\":[W,S,E,N]}})\n"),
            )
        }
    };
    let Some(bridge) = state.session(session) else {
        return unavailable("no session can be opened now");
    };
    bridge.set_viewport(view, 1);
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

struct ViewportBody {
    zoom: u8,
    bbox: [f64; 4],
}

impl ViewportBody {
    fn from_json(v: &serde_json::Value) -> Result<ViewportBody, String> {
        let zoom = v
            .get("zoom")
            .and_then(serde_json::Value::as_u64)
            .and_then(|z| u8::try_from(z).ok())
            .filter(|z| *z <= 30)
            .ok_or("`zoom` must be a whole number 0-30")?;
        let bbox: Vec<f64> = v
            .get("bbox")
            .and_then(serde_json::Value::as_array)
            .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
            .unwrap_or_default();
        let bbox: [f64; 4] = bbox
            .try_into()
            .map_err(|_| "`bbox` must be four numbers W,S,E,N")?;
        Ok(ViewportBody { zoom, bbox })
    }
}

/// TileJSON 3.0 for a map; the tile URL uses the request's `Host`.
fn tilejson(state: &State, map: &str, host: &str) -> Response<Body> {
    if state.service.map_id(map).is_none() {
        return text(StatusCode::NOT_FOUND, &format!("no map named {map:?}\n"));
    }
    let info = state.map_info(map);
    // The host is only echoed inside a JSON string (escaped there); a
    // value with anything but host characters falls back to localhost.
    let host = if host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    {
        host
    } else {
        "localhost"
    };
    let mut json = serde_json::json!({
        "tilejson": "3.0.0",
        "name": map,
        "scheme": "xyz",
        "tiles": [format!("http://{host}/{map}/{{z}}/{{x}}/{{y}}.png")],
        "minzoom": info.min_zoom,
        "maxzoom": info.max_zoom,
        "bounds": [-180.0, -85.051_128_779_806_6, 180.0, 85.051_128_779_806_6],
        "center": [0.0, 0.0, info.min_zoom],
    });
    // The configuration's attribution, else the style's <Parameters>.
    let style_attribution = state
        .service
        .map_id(map)
        .and_then(|id| state.service.map(id))
        .and_then(|entry| entry.source.map().parameters.get("attribution").cloned());
    if let Some(attribution) = info.attribution.or(style_attribution) {
        json["attribution"] = serde_json::Value::String(attribution);
    }
    let mut response = Response::new(Full::new(Bytes::from(json.to_string())));
    set(&mut response, header::CONTENT_TYPE, "application/json");
    if let Some(origin) = &state.cors {
        response
            .headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    }
    response
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    set(
        &mut response,
        header::CONTENT_TYPE,
        "text/plain; charset=utf-8",
    );
    response
}

fn unavailable(why: &str) -> Response<Body> {
    let mut response = text(StatusCode::SERVICE_UNAVAILABLE, &format!("{why}\n"));
    set(&mut response, header::RETRY_AFTER, "1");
    response
}

fn set(response: &mut Response<Body>, name: header::HeaderName, value: &'static str) {
    response
        .headers_mut()
        .insert(name, HeaderValue::from_static(value));
}
