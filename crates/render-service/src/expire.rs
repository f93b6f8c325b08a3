//! Expiry: an [`Expire`] message acted on in the store, as renderd's
//! `render_expired` acts on an expire list.
//!
//! Contract:
//! - Every `Expire` gets exactly one answer: [`ExpireDone`] with the
//!   counts, or [`Rejected`] (unknown map, too many tiles, `touch_from`
//!   above `delete_from`, shutting down) having done nothing.
//! - Each tile of the message stands for its block (`block_size`, aligned);
//!   the block is mapped to every metatile of this server's size that it
//!   overlaps, and each metatile is acted on once per message, in the
//!   map's store and in its high-DPI variant's (a map named with `@2x`:
//!   only that variant). A metatile of which neither store holds a tile is
//!   counted `absent` and left alone.
//! - Per metatile, by its zoom `z` ([`Action::at`]): from `delete_from` up
//!   its stored tiles are deleted; otherwise they are marked stale (dated
//!   back, see [`crate::store::expiry`]), and below `touch_from` the
//!   metatile is also queued for a re-render at `Dirty` priority as work
//!   nobody waits for ([`ServiceHandle::submit_unattended`]): it survives
//!   the client's leaving and merges with any other request for it. The
//!   tiles are marked stale before they are queued, so a re-render the
//!   full queue drops is not lost: the tile is drawn when next asked for.
//! - Bounded: the work of one message is bounded by its tiles
//!   ([`MAX_EXPIRE_TILES`]); metatiles are visited one at a time, the set
//!   that deduplicates them holds at most [`DEDUP_WINDOW`] (forgotten
//!   when full: acting twice is harmless), and re-renders are handed over
//!   [`QUEUE_CHUNK`] at a time. Duplicates across messages are acted on
//!   again: marking stale is idempotent and the scheduler merges queued
//!   re-renders of one metatile.
//! - Failures (a file that cannot be deleted or re-dated) are counted per
//!   metatile, the first one's reason is in the answer and each is logged
//!   at WARN; the other metatiles are still acted on.

use std::collections::HashSet;
use std::sync::Arc;

use ipc_proto::{Expire, ExpireDone, Message, RejectReason, Rejected, MAX_EXPIRE_TILES};
use tile_math::{Metatile, TileCoord};

use crate::scheduler::{MapId, PriorityClass};
use crate::service::{MapEntry, ServiceHandle, HIDPI};
use crate::session::SHUTDOWN_GOODBYE;

/// Most metatiles one message remembers having acted on.
pub const DEDUP_WINDOW: usize = 65_536;

/// Re-renders handed to the scheduler in one submission.
pub const QUEUE_CHUNK: usize = 4_096;

/// What expiry does to a stored metatile at some zoom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Delete its tiles (`z >= delete_from`).
    Delete,
    /// Mark its tiles stale (`touch_from <= z < delete_from`).
    MarkStale,
    /// Mark its tiles stale and queue a re-render (below both).
    Rerender,
}

impl Action {
    /// The action at zoom `z`, as `render_expired` chooses it: delete from
    /// `delete_from` up, else touch from `touch_from` up, else render.
    pub fn at(z: u8, touch_from: Option<u8>, delete_from: Option<u8>) -> Action {
        if delete_from.is_some_and(|d| z >= d) {
            Action::Delete
        } else if touch_from.is_some_and(|t| z >= t) {
            Action::MarkStale
        } else {
            Action::Rerender
        }
    }
}

/// The metatiles of size `metatile_size` that the `block_size`×
/// `block_size` block holding `tile` overlaps (clipped to the world), row
/// by row from the north-west. Both sizes must be at least 1.
pub fn metatiles_of_block(
    tile: TileCoord,
    block_size: u32,
    metatile_size: u32,
) -> impl Iterator<Item = Metatile> {
    let (block, size) = (
        u64::from(block_size.max(1)),
        u64::from(metatile_size.max(1)),
    );
    let across = 1u64 << tile.z();
    let span = |at: u32| {
        let first = u64::from(at) / block * block;
        let last = (first + block).min(across) - 1;
        (first / size)..=(last / size)
    };
    let (columns, rows) = (span(tile.x()), span(tile.y()));
    let z = tile.z();
    rows.flat_map(move |row| {
        columns.clone().filter_map(move |column| {
            let corner = TileCoord::new(z, (column * size) as u32, (row * size) as u32).ok()?;
            Metatile::containing(corner, size as u32).ok()
        })
    })
}

/// Counts of one message, in metatiles.
#[derive(Debug, Default)]
struct Counts {
    deleted: u32,
    touched: u32,
    queued: u32,
    absent: u32,
    failed: u32,
    first_error: Option<String>,
}

/// One store an expiry acts on: a map or its high-DPI variant.
struct Target {
    id: MapId,
    entry: Arc<MapEntry>,
    /// Re-renders waiting to be handed over.
    rerender: Vec<TileCoord>,
}

/// Acts on one `Expire` and returns its one answer.
pub fn answer(service: &ServiceHandle, request: &Expire) -> Message {
    match expire(service, request) {
        Ok(counts) => Message::ExpireDone(ExpireDone {
            request_id: request.request_id,
            deleted: counts.deleted,
            touched: counts.touched,
            queued: counts.queued,
            absent: counts.absent,
            failed: counts.failed,
            error: counts.first_error.unwrap_or_default(),
        }),
        Err((reason, message)) => Message::Rejected(Rejected {
            request_id: request.request_id,
            reason,
            retry_after_ms: None,
            message,
        }),
    }
}

fn expire(service: &ServiceHandle, request: &Expire) -> Result<Counts, (RejectReason, String)> {
    if service.is_shutting_down() {
        return Err((RejectReason::ShuttingDown, SHUTDOWN_GOODBYE.into()));
    }
    if request.tiles.len() > MAX_EXPIRE_TILES {
        return Err((
            RejectReason::TooManyTiles,
            format!(
                "{} tiles in one Expire; the limit is {MAX_EXPIRE_TILES}",
                request.tiles.len()
            ),
        ));
    }
    if let (Some(touch), Some(delete)) = (request.touch_from, request.delete_from) {
        if touch > delete {
            return Err((
                RejectReason::InvalidRequest,
                format!(
                    "touch_from {touch} is above delete_from {delete}: tiles from zoom \
                     {delete} up are deleted, so none would be marked stale"
                ),
            ));
        }
    }
    let mut targets = targets(service, &request.map)?;
    let metatile_size = service.metatile_size();
    let mut seen: HashSet<Metatile> = HashSet::new();
    let mut counts = Counts::default();
    for &tile in &request.tiles {
        for metatile in metatiles_of_block(tile, u32::from(request.block_size), metatile_size) {
            if seen.len() >= DEDUP_WINDOW {
                seen.clear();
            }
            if !seen.insert(metatile) {
                continue;
            }
            let action = Action::at(metatile.z(), request.touch_from, request.delete_from);
            act(&mut targets, &metatile, action, &mut counts);
            for target in &mut targets {
                if target.rerender.len() >= QUEUE_CHUNK {
                    queue(service, target);
                }
            }
        }
    }
    for target in &mut targets {
        queue(service, target);
    }
    tracing::debug!(
        map = %request.map,
        tiles = request.tiles.len(),
        deleted = counts.deleted,
        touched = counts.touched,
        queued = counts.queued,
        absent = counts.absent,
        failed = counts.failed,
        "expired"
    );
    Ok(counts)
}

/// The stores a map name expires: the map and its high-DPI variant, or
/// only the variant when it is named (`<map>@2x`).
fn targets(service: &ServiceHandle, name: &str) -> Result<Vec<Target>, (RejectReason, String)> {
    let table = service.maps();
    let Some(id) = table.id_of(name) else {
        let names: Vec<&str> = table.iter().map(|m| m.name.as_str()).collect();
        return Err((
            RejectReason::UnknownMap,
            format!(
                "no map named {name:?}; this server has {}",
                names.join(", ")
            ),
        ));
    };
    let ids = if id & HIDPI != 0 {
        vec![id]
    } else {
        vec![id, id | HIDPI]
    };
    Ok(ids
        .into_iter()
        .filter_map(|id| {
            let entry = Arc::clone(table.get(id)?);
            Some(Target {
                id,
                entry,
                rerender: Vec::new(),
            })
        })
        .collect())
}

/// Acts on one metatile in every target store and counts it once.
fn act(targets: &mut [Target], metatile: &Metatile, action: Action, counts: &mut Counts) {
    let mut found = false;
    let mut failed = false;
    for target in targets.iter_mut() {
        let store = &target.entry.store;
        let result = match action {
            Action::Delete => store.delete_metatile(metatile),
            Action::MarkStale | Action::Rerender => {
                store.mark_metatile_stale(metatile, target.entry.generation.since)
            }
        };
        match result {
            Ok(0) => {}
            Ok(_) => {
                found = true;
                if action == Action::Rerender {
                    target.rerender.push(metatile.first_tile());
                }
            }
            Err(e) => {
                failed = true;
                tracing::warn!(
                    map = %target.entry.name,
                    metatile = %metatile,
                    "expiry failed: {e}"
                );
                counts.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    let count = match (failed, found, action) {
        (true, _, _) => &mut counts.failed,
        (false, false, _) => &mut counts.absent,
        (false, true, Action::Delete) => &mut counts.deleted,
        (false, true, Action::MarkStale) => &mut counts.touched,
        (false, true, Action::Rerender) => &mut counts.queued,
    };
    *count = count.saturating_add(1);
}

/// Hands a target's waiting re-renders to the scheduler.
fn queue(service: &ServiceHandle, target: &mut Target) {
    if target.rerender.is_empty() {
        return;
    }
    let tiles = std::mem::take(&mut target.rerender);
    let count = tiles.len();
    if !service.submit_unattended(target.id, tiles, PriorityClass::Dirty) {
        // Shutdown began: the tiles are marked stale and are drawn when
        // next asked for.
        tracing::debug!(map = %target.entry.name, count, "re-renders not queued: shutting down");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(z: u8, x: u32, y: u32) -> TileCoord {
        TileCoord::new(z, x, y).unwrap()
    }

    fn corners(tile: TileCoord, block: u32, size: u32) -> Vec<(u8, u32, u32, u32)> {
        metatiles_of_block(tile, block, size)
            .map(|m| (m.z(), m.x(), m.y(), m.size()))
            .collect()
    }

    #[test]
    fn render_expireds_choice_of_action() {
        use Action::*;
        let cases = [
            // (z, touch_from, delete_from, action)
            (5, None, None, Rerender),
            (20, None, None, Rerender),
            (12, Some(13), None, Rerender),
            (13, Some(13), None, MarkStale),
            (16, Some(13), Some(17), MarkStale),
            (17, Some(13), Some(17), Delete),
            (3, None, Some(3), Delete),
            (2, None, Some(3), Rerender),
            // Equal: delete wins, as in render_expired.
            (10, Some(10), Some(10), Delete),
        ];
        for (z, touch, delete, expected) in cases {
            assert_eq!(
                Action::at(z, touch, delete),
                expected,
                "z{z} {touch:?} {delete:?}"
            );
        }
    }

    #[test]
    fn a_block_of_the_metatiles_size_is_its_metatile() {
        assert_eq!(corners(t(17, 72817, 37800), 8, 8), [(17, 72816, 37800, 8)]);
        // Any tile of the block gives the same metatile.
        assert_eq!(corners(t(17, 72823, 37807), 8, 8), [(17, 72816, 37800, 8)]);
    }

    #[test]
    fn blocks_map_onto_every_metatile_they_overlap() {
        // Smaller metatiles: a block covers several.
        assert_eq!(
            corners(t(10, 9, 17), 8, 4),
            [
                (10, 8, 16, 4),
                (10, 12, 16, 4),
                (10, 8, 20, 4),
                (10, 12, 20, 4)
            ]
        );
        // Larger metatiles: many blocks give the same one.
        assert_eq!(corners(t(10, 9, 17), 8, 16), [(10, 0, 16, 16)]);
        assert_eq!(corners(t(10, 27, 31), 8, 16), [(10, 16, 16, 16)]);
        // Sizes that do not divide each other: a block straddles two
        // metatiles across and two down.
        assert_eq!(
            corners(t(10, 8, 8), 8, 6),
            [
                (10, 6, 6, 6),
                (10, 12, 6, 6),
                (10, 6, 12, 6),
                (10, 12, 12, 6)
            ]
        );
        // A block of one tile is that tile's metatile.
        assert_eq!(corners(t(10, 13, 2), 1, 8), [(10, 8, 0, 8)]);
    }

    #[test]
    fn blocks_are_clipped_to_the_world() {
        // At zoom 1 the world is 2×2 tiles: one metatile, clipped.
        let at_z1: Vec<Metatile> = metatiles_of_block(t(1, 1, 1), 8, 8).collect();
        assert_eq!(at_z1.len(), 1);
        assert_eq!(at_z1[0].tile_count(), 4);
        // The last block of zoom 3 with metatiles of 3: columns 6..7 only.
        assert_eq!(corners(t(3, 7, 0), 2, 3), [(3, 6, 0, 3)]);
        assert_eq!(corners(TileCoord::WORLD, 64, 1), [(0, 0, 0, 1)]);
    }
}
