//! render-service: the warm tile render service, embeddable in other Rust
//! applications.
//!
//! It keeps renderers warm on a worker pool, ranks work by each client's
//! viewport (tiles on screen first, then their neighbours, then explicit
//! requests, bulk seeding and dirty re-renders), merges duplicate requests
//! for a metatile, cancels work the user has scrolled away from, and gives
//! every requested tile exactly one final answer.
//!
//! # Layout (being built; see the render-service issue)
//! - `scheduler`: priority classes, viewport re-ranking, merging, limits.
//! - `workers`: the render pool on crossbeam channels.
//! - `session`: one per connection, over ipc-proto or the legacy protocol.
//! - `store`: the tile directory, written atomically.
//! - `config`: TOML file plus command-line flags.
//! - `stats`: queue depths, throughput and render-time percentiles.
//!
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod scheduler;
pub mod store;

pub use scheduler::{
    Answer, CancelReason, ClientId, Delivery, JobId, Outcome, PriorityClass, RenderJob, RequestId,
    Scheduler, SchedulerConfig, SchedulerStats, TileRequest,
};
pub use store::{StoreError, StoredTile, TileLayout, TileStore, DEFAULT_LAYOUT, LEGACY_LAYOUT};
