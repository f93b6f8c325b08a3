//! render-service: the warm tile render service, embeddable in other Rust
//! applications.
//!
//! It keeps renderers warm on a worker pool, ranks work by each client's
//! viewport (tiles on screen first, then their neighbours, then explicit
//! requests, bulk seeding and dirty re-renders), merges duplicate requests
//! for a metatile, cancels work the user has scrolled away from, and gives
//! every requested tile exactly one final answer.
//!
//! # Layout
//! - [`scheduler`]: which metatile to render next — priority classes,
//!   viewport re-ranking, merging, fairness, bounds, deadlines. Pure data,
//!   no threads.
//! - [`service`]: [`TileService`] — the scheduler thread and the render
//!   workers; [`ServiceHandle`] submits work and delivers each tile's one
//!   final answer ([`TileOutcome`]).
//! - [`session`]: one framed-protocol connection (reader and writer threads).
//! - [`legacy_session`]: one legacy line-protocol connection, with the
//!   port+1 callbacks.
//! - [`renderd_session`]: one connection of renderd's socket protocol
//!   (Apache's mod_tile, `render_list`, `render_expired`), and its acceptor.
//! - [`server`]: [`Server`] — listeners, acceptors, connection limits,
//!   graceful shutdown.
//! - [`store`]: [`TileStore`] — the tile directory, laid out by a template
//!   (`{map}`, `{z}`, `{x}`, `{y}`) or as mod_tile's `.meta` files, written a
//!   metatile at a time, atomically.
//! - [`expire`]: an expire list's metatiles deleted, marked stale or
//!   queued for a re-render at `dirty` priority, as renderd's
//!   `render_expired` does (`Expire` → `ExpireDone`).
//! - [`generation`]: which stored tiles are current — a map's fingerprint
//!   (its files and pixel settings) and the cut-off its tiles' stamps are
//!   compared with, kept beside the tiles across restarts.
//! - [`reload`]: [`Reloader`] — the configuration and styles read again
//!   while serving; changed maps swapped in at once, a failed one keeps
//!   the old.
//! - [`cluster`]: past one machine — a front publishes its jobs to a
//!   shared engine (Redis), re-ranks and withdraws them as screens move;
//!   [`cluster::RenderNode`]s draw them into the shared store; leases bring
//!   back the jobs of a node that died.
//! - [`config`]: [`ServiceConfig`] — TOML file plus command-line overrides
//!   (blamed on the flag when invalid), with an embedded default that
//!   serves the demo map from a folder the caller supplies; the effective
//!   configuration as TOML.
//! - [`stats`]: counters, throughput and render-time percentiles.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cluster;
pub mod config;
pub mod expire;
pub mod generation;
pub mod legacy_session;
pub mod reload;
pub mod renderd_session;
pub mod scheduler;
pub mod server;
pub mod service;
pub mod session;
pub mod stats;
pub mod store;

pub use cluster::{ClusterSettings, RenderNode, Role};
pub use config::{ClusterSection, ConfigError, ConfigOverrides, ServiceConfig, ValidConfig};
pub use generation::Generation;
pub use reload::{ConfigSource, ReloadError, ReloadReport, Reloader};
pub use server::{Server, ServerError};
pub use service::{
    ClientEvent, MapEntry, MapTable, ServiceError, ServiceHandle, ServiceOptions, TileOutcome,
    TileService, HIDPI, UNATTENDED,
};
pub use stats::{RenderCounts, StatsSnapshot, RENDER_MS_BUCKETS};

pub use scheduler::{
    Answer, CancelReason, ClientId, Delivery, JobId, Outcome, PriorityClass, RenderJob, RequestId,
    Scheduler, SchedulerConfig, SchedulerStats, TileRequest,
};
pub use store::{
    StoreError, StoredTile, TileLayout, TileStore, DEFAULT_LAYOUT, DEFAULT_MAP_LAYOUT,
    LEGACY_LAYOUT, MOD_TILE_LAYOUT,
};
