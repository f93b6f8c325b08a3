//! Request paths to routes: a pure function of the path and query, tested
//! on its own.
//!
//! - `/{map}/{z}/{x}/{y}.png` and `/{map}/{z}/{x}/{y}@2x.png` (a tile, at
//!   scale 1 or 2), with an optional `?session=ID` from the viewer;
//! - `/{map}.json` (TileJSON), `POST /{map}/viewport?session=ID`;
//! - `/metrics`, `/health`, `/`, `/viewer/{asset}`.
//!
//! A map name is checked like the configuration's (1-64 letters, digits,
//! `-`, `_`) and the tile numbers are parsed as numbers; nothing of the
//! path is ever used as a file path.

use tile_math::TileCoord;

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A tile.
    Tile {
        /// The map's name.
        map: String,
        /// The tile.
        tile: TileCoord,
        /// 1, or 2 for `@2x`.
        scale: u8,
        /// The viewer session it belongs to, if any.
        session: Option<String>,
    },
    /// The map's TileJSON.
    TileJson {
        /// The map's name.
        map: String,
    },
    /// A viewer's screen.
    Viewport {
        /// The map's name.
        map: String,
        /// The viewer session.
        session: String,
    },
    /// Prometheus metrics.
    Metrics,
    /// Liveness.
    Health,
    /// The viewer page.
    Viewer,
    /// A file of the viewer (script, style sheet, image), by its fixed name.
    Asset(String),
}

/// Why a path is not a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// Nothing is served there (`404`).
    NotFound,
    /// It looks like a tile or a map but is malformed (`400`), with why.
    BadRequest(String),
}

/// The route of `path` (without the query) and `query` (without `?`).
pub fn route(path: &str, query: Option<&str>) -> Result<Route, RouteError> {
    let session = || session_of(query);
    match path {
        "/" | "/index.html" => return Ok(Route::Viewer),
        "/metrics" => return Ok(Route::Metrics),
        "/health" => return Ok(Route::Health),
        _ => {}
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(RouteError::NotFound);
    };
    if let Some(asset) = rest.strip_prefix("viewer/") {
        return Ok(Route::Asset(asset.to_owned()));
    }
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [json] if json.ends_with(".json") => {
            let map = map_name(&json[..json.len() - ".json".len()])?;
            Ok(Route::TileJson { map })
        }
        [map, "viewport"] => Ok(Route::Viewport {
            map: map_name(map)?,
            session: session()?
                .ok_or_else(|| RouteError::BadRequest("a viewport needs ?session=ID".into()))?,
        }),
        [map, z, x, file] => {
            let map = map_name(map)?;
            let (y, scale) = if let Some(y) = file.strip_suffix("@2x.png") {
                (y, 2)
            } else if let Some(y) = file.strip_suffix(".png") {
                (y, 1)
            } else {
                return Err(RouteError::BadRequest(format!(
                    "{file:?}: tiles are Y.png or Y@2x.png"
                )));
            };
            let number = |what: &str, text: &str| {
                // Digits only: no sign, no spaces, no leading `+`.
                if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(RouteError::BadRequest(format!(
                        "{what} {text:?} is not a number"
                    )));
                }
                text.parse::<u32>()
                    .map_err(|_| RouteError::BadRequest(format!("{what} {text:?} is too large")))
            };
            let z = number("zoom", z)?;
            let (x, y) = (number("x", x)?, number("y", y)?);
            let z = u8::try_from(z)
                .map_err(|_| RouteError::BadRequest(format!("zoom {z} is out of range")))?;
            let tile =
                TileCoord::new(z, x, y).map_err(|e| RouteError::BadRequest(e.to_string()))?;
            Ok(Route::Tile {
                map,
                tile,
                scale,
                session: session()?,
            })
        }
        _ => Err(RouteError::NotFound),
    }
}

/// A map name as the configuration allows them.
fn map_name(text: &str) -> Result<String, RouteError> {
    let valid = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(text.to_owned())
    } else {
        Err(RouteError::NotFound)
    }
}

/// The `session` parameter of a query, checked (1-64 letters, digits, `-`).
fn session_of(query: Option<&str>) -> Result<Option<String>, RouteError> {
    let Some(query) = query else { return Ok(None) };
    for pair in query.split('&') {
        if let Some(value) = pair.strip_prefix("session=") {
            let valid = !value.is_empty()
                && value.len() <= 64
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !valid {
                return Err(RouteError::BadRequest(
                    "session must be 1-64 letters, digits or '-'".into(),
                ));
            }
            return Ok(Some(value.to_owned()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tile(z: u8, x: u32, y: u32) -> TileCoord {
        TileCoord::new(z, x, y).unwrap()
    }

    #[test]
    fn tiles_at_both_scales_with_and_without_a_session() {
        assert_eq!(
            route("/demo/12/2331/1185.png", None),
            Ok(Route::Tile {
                map: "demo".into(),
                tile: tile(12, 2331, 1185),
                scale: 1,
                session: None
            })
        );
        assert_eq!(
            route("/osm-carto/0/0/0@2x.png", Some("session=ab-12&x=1")),
            Ok(Route::Tile {
                map: "osm-carto".into(),
                tile: tile(0, 0, 0),
                scale: 2,
                session: Some("ab-12".into())
            })
        );
    }

    #[test]
    fn the_other_routes() {
        assert_eq!(route("/", None), Ok(Route::Viewer));
        assert_eq!(route("/metrics", None), Ok(Route::Metrics));
        assert_eq!(route("/health", None), Ok(Route::Health));
        assert_eq!(
            route("/demo.json", None),
            Ok(Route::TileJson { map: "demo".into() })
        );
        assert_eq!(
            route("/demo/viewport", Some("session=s1")),
            Ok(Route::Viewport {
                map: "demo".into(),
                session: "s1".into()
            })
        );
        assert_eq!(
            route("/viewer/leaflet.js", None),
            Ok(Route::Asset("leaflet.js".into()))
        );
    }

    #[test]
    fn malformed_tiles_are_bad_requests_and_unknown_paths_not_found() {
        let bad = |path: &str| matches!(route(path, None), Err(RouteError::BadRequest(_)));
        assert!(bad("/demo/1/2/3.jpg"));
        assert!(bad("/demo/1/-2/3.png"));
        assert!(bad("/demo/1/+2/3.png"));
        assert!(bad("/demo/a/2/3.png"));
        assert!(bad("/demo/1/2/99999999999.png"));
        assert!(bad("/demo/1/2/3.png"), "x=2 is beyond zoom 1");
        assert!(bad("/demo/31/0/0.png"), "zoom 31");
        assert!(bad("/demo/300/0/0.png"));
        assert!(bad("/demo/viewport"), "no session");
        assert!(matches!(
            route("/demo/1/0/0.png", Some("session=../x")),
            Err(RouteError::BadRequest(_))
        ));
        let missing = |path: &str| route(path, None) == Err(RouteError::NotFound);
        assert!(missing("/demo"));
        assert!(missing("/../etc/passwd"));
        assert!(missing("/de.mo/1/0/0.png"));
        assert!(missing("/demo/1/0/0/0.png"));
        assert!(missing("relative"));
        assert!(missing("/%2e%2e/0/0/0.png"));
    }
}
