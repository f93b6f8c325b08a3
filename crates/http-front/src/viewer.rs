//! The viewer page and its files, carried in the binary: a full-screen
//! Leaflet map of each served map that tells the server its screen
//! (`POST /{map}/viewport`) before the tile requests arrive. Leaflet is
//! vendored from the npm registry (`viewer/leaflet/README.md`); no CDN.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

const PAGE: &str = include_str!("../viewer/index.html");

/// The files under `/viewer/`, by their fixed names.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "leaflet.js",
        "text/javascript",
        include_bytes!("../viewer/leaflet/leaflet.js"),
    ),
    (
        "leaflet.css",
        "text/css",
        include_bytes!("../viewer/leaflet/leaflet.css"),
    ),
    (
        "images/layers.png",
        "image/png",
        include_bytes!("../viewer/leaflet/layers.png"),
    ),
    (
        "images/layers-2x.png",
        "image/png",
        include_bytes!("../viewer/leaflet/layers-2x.png"),
    ),
    (
        "images/marker-icon.png",
        "image/png",
        include_bytes!("../viewer/leaflet/marker-icon.png"),
    ),
    (
        "images/marker-icon-2x.png",
        "image/png",
        include_bytes!("../viewer/leaflet/marker-icon-2x.png"),
    ),
    (
        "images/marker-shadow.png",
        "image/png",
        include_bytes!("../viewer/leaflet/marker-shadow.png"),
    ),
];

/// The page, with the maps' names (configuration-checked: letters,
/// digits, `-`, `_`) written into it as a JSON list.
pub(crate) fn page(maps: &[String]) -> Response<Full<Bytes>> {
    let list = serde_json::to_string(maps).unwrap_or_else(|_| "[]".into());
    let html = PAGE.replace("/*MAPS*/[]", &list);
    let mut response = Response::new(Full::new(Bytes::from(html)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A file of the viewer, or `404`.
pub(crate) fn asset(name: &str) -> Response<Full<Bytes>> {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, bytes)) => {
            let mut response = Response::new(Full::new(Bytes::from_static(bytes)));
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            // They change only with the binary.
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            );
            response
        }
        None => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"not found\n")));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    }
}
