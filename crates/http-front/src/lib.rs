//! http-front: tiles over HTTP for web maps, in front of render-service.
//!
//! `GET /{map}/{z}/{x}/{y}.png` serves a fresh stored tile (with `ETag`,
//! `Last-Modified`, `Cache-Control`, and `304` for a client that has it) or
//! renders it on demand at `viewport` priority through the service's
//! scheduler; a browser that gives up a request cancels its interest.
//! `GET /{map}.json` is TileJSON 3.0, `GET /metrics` Prometheus' text,
//! `GET /health` a liveness check, `GET /` a map viewer that tells the
//! server its screen. HTTP/1.1 on hyper and a small tokio runtime of its
//! own; the service's scheduler and workers stay as they are.
//!
//! # Layout
//! - [`server`]: [`HttpServer`] — listeners, connection limits, slow
//!   clients, shutdown.
//! - [`route`]: paths to routes, a pure function (no path from the URL
//!   ever reaches the file system).
//! - [`bridge`]: one service client seen from async code; a request given
//!   up is cancelled.
//! - `handler`: one request to one response (tiles, TileJSON, viewports).
//! - `metrics`: `/metrics`.
//! - `viewer`: the page and the vendored Leaflet.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bridge;
mod handler;
mod metrics;
pub mod route;
pub mod server;
mod viewer;

pub use server::{HttpError, HttpServer};
