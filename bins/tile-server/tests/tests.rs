//! tile-server end to end: a real server on loopback (port 0) or a Unix
//! socket in a temporary directory, real renders, real PNG files, clients
//! from the tile-client library, the legacy protocol as the C# client
//! speaks it.

// Test helpers may unwrap: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

/// A cluster in network namespaces: two fronts, render nodes, a real
/// Redis; a node killed, the engine restarted, a front cut off, a node
/// with another style, viewports and cancels across nodes.
mod cluster;
/// Many clients that disconnect at random: every request of the clients
/// that stay gets exactly one final answer per tile.
mod concurrency;
/// Every error class of docs/protocol.md §7, driven with raw bytes.
mod conformance;
/// Rendering through the framed protocol: paths, inline PNGs, the store,
/// viewports, stats, auth, bad requests.
mod framed;
/// Fresh tiles across style and data changes, restarts and reloads;
/// SIGHUP under load; failed reloads; maps added and removed.
mod freshness;
/// The legacy line protocol, as the C# program of the seeds speaks it.
mod legacy;
/// Shutdown, kill -9 and the store: no partial PNG ever.
mod lifecycle;
/// Debian's Apache mod_tile, render_list and render_expired with tessera
/// in renderd's place, on its `.meta` files.
mod mod_tile;
/// What an operator sees: exit statuses, logs, --check-config, layouts,
/// forced re-renders without leftovers, a copied binary.
mod operator;
/// renderd's socket protocol, byte by byte: answers, dirty work, bad
/// input, shutdown, socket modes, refused configurations.
mod renderd;
/// SIGTERM under load, a deleted socket file, a second signal.
mod shutdown;
/// Slowloris connections and a client that never reads.
mod slow_clients;
/// A server on a throwaway configuration, and small styles to render.
mod support;
/// The systemd unit verifies; READY/RELOADING/STOPPING notifications.
mod systemd;
/// The map viewer in headless chromium: the stored tiles on screen, a fast
/// pan that cancels what it left.
mod viewer;
