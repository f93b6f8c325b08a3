//! Expiry in the store: a metatile's stored tiles deleted, or marked stale
//! by dating them back, as renderd's `render_expired` does.
//!
//! Contract:
//! - Both operations work on a whole metatile (the unit an expire list is
//!   deduplicated to and a render rewrites) and return how many files they
//!   acted on; 0 means the store held none of its tiles, which is not an
//!   error. A layout where several tiles share a file acts on that file
//!   once.
//! - **Deleting** removes the tiles' files. A tile that is a hard link to
//!   a shared single-colour file loses only its own name.
//! - **Marking stale** dates a tile's file back 20 years, as
//!   `render_expired --touch-from` does (mod_tile's `file_metatile_expire`),
//!   and in any case to before the map's cut-off, so tessera renders it
//!   again when it is next asked for, while a reader of the files (mod_tile,
//!   a viewer) still has the old picture. A tile that is stale already is
//!   left as it is, so marking twice moves nothing further (mod_tile's
//!   "from 2006 on" test for this no longer works: 20 years before today
//!   is after 2006). A tile that shares its file with others (the hard
//!   links of single-colour tiles) is first given a file of its own,
//!   written atomically like any tile: re-dating the shared inode would
//!   mark every tile linked to it.
//! - Nothing is left behind: no temporary file survives, whatever fails.
//!   Errors name the file.
//! - Cheap when nothing is stored, as for most of an expire list's deep
//!   metatiles: a zoom whose folder is missing (`{z}/` in the layout, or
//!   the whole store) costs one look for the metatile, and once a tile is
//!   missing, a folder of its path found missing (its column) is not
//!   looked into again for the metatile's other tiles.
//! - Limits: a metatile is acted on tile by tile, not atomically; a
//!   render that writes the same tiles meanwhile may win for some of
//!   them, which leaves them fresh from a render that began before the
//!   expiry (as with renderd).

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tile_math::Metatile;

use super::{Piece, StoreError, TileLayout, TileStore};

/// How far back `render_expired` dates a tile it marks: 20 years (7,305
/// days: every 20 years between 1901 and 2099 have five leap days).
pub const EXPIRED_AGE: Duration = Duration::from_secs(7_305 * 86_400);

/// The date a tile written at `modified` gets when it is marked stale:
/// 20 years earlier, and in any case before `cut_off` (the map's
/// freshness cut-off), so tessera never takes it for fresh. `None` when it
/// is stale already (before the cut-off): it keeps its date.
pub fn stale_stamp(modified: SystemTime, cut_off: SystemTime) -> Option<SystemTime> {
    if modified < cut_off {
        return None;
    }
    let back = modified.checked_sub(EXPIRED_AGE).unwrap_or(UNIX_EPOCH);
    let before_cut_off = cut_off
        .checked_sub(Duration::from_secs(1))
        .unwrap_or(UNIX_EPOCH);
    Some(back.min(before_cut_off))
}

impl TileStore {
    /// Deletes the stored tiles of a metatile; returns how many files were
    /// removed (0: none was stored).
    pub fn delete_metatile(&self, metatile: &Metatile) -> Result<usize, StoreError> {
        self.each_stored_file(metatile, |path| match fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(StoreError::Io {
                action: "deleting",
                path: path.to_path_buf(),
                source,
            }),
        })
    }

    /// Marks the stored tiles of a metatile stale (see [`stale_stamp`]);
    /// returns how many files were marked (0: none was stored).
    pub fn mark_metatile_stale(
        &self,
        metatile: &Metatile,
        cut_off: SystemTime,
    ) -> Result<usize, StoreError> {
        self.each_stored_file(metatile, |path| self.mark_file_stale(path, cut_off))
    }

    /// Runs `act` on each file of a metatile (`Ok(false)`: there was none)
    /// and counts the files it acted on. After a missing file, the
    /// highest folder of its path that is missing too is skipped for the
    /// rest of the metatile.
    fn each_stored_file(
        &self,
        metatile: &Metatile,
        mut act: impl FnMut(&Path) -> Result<bool, StoreError>,
    ) -> Result<usize, StoreError> {
        let zoom_folder = self.root.join(self.layout.zoom_folder(metatile.z()));
        if fs::metadata(&zoom_folder).is_err() {
            return Ok(0);
        }
        let mut acted = 0;
        let mut missing: Option<PathBuf> = None;
        for path in self.metatile_files(metatile) {
            if missing
                .as_ref()
                .is_some_and(|folder| path.starts_with(folder))
            {
                continue;
            }
            if act(&path)? {
                acted += 1;
            } else {
                missing = self.missing_folder(&path);
            }
        }
        Ok(acted)
    }

    /// The highest folder of `path`, inside the store, that does not exist
    /// (`None` when the file's own folder does).
    fn missing_folder(&self, path: &Path) -> Option<PathBuf> {
        let mut missing = None;
        for folder in path.ancestors().skip(1) {
            if !folder.starts_with(&self.root) || fs::metadata(folder).is_ok() {
                break;
            }
            missing = Some(folder.to_path_buf());
        }
        missing
    }

    /// The files a metatile's tiles map to, in the metatile's order;
    /// consecutive tiles that share a file (a layout with one file per
    /// metatile) give it once.
    fn metatile_files(&self, metatile: &Metatile) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = Vec::with_capacity(metatile.tile_count() as usize);
        for tile in metatile.tiles() {
            let path = self.path_of(tile);
            if files.last() != Some(&path) {
                files.push(path);
            }
        }
        files
    }

    /// Dates one tile's file back; `false` if there is no such file.
    fn mark_file_stale(&self, path: &Path, cut_off: SystemTime) -> Result<bool, StoreError> {
        let io_error = |action, source| StoreError::Io {
            action,
            path: path.to_path_buf(),
            source,
        };
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_error("opening", e)),
        };
        let meta = file.metadata().map_err(|e| io_error("reading", e))?;
        if !meta.is_file() {
            return Err(io_error(
                "marking stale",
                io::Error::other("not a regular file"),
            ));
        }
        let modified = meta.modified().map_err(|e| io_error("reading", e))?;
        let Some(stamp) = stale_stamp(modified, cut_off) else {
            return Ok(true);
        };
        if meta.nlink() > 1 {
            // A single-colour tile linked to a shared file: a file of its
            // own, with the old bytes and the stale date, replaces the link.
            let mut bytes = Vec::with_capacity(meta.len() as usize);
            file.read_to_end(&mut bytes)
                .map_err(|e| io_error("reading", e))?;
            drop(file);
            let temp = self.temp_for(path)?;
            let result = super::write_file(&temp, &bytes, stamp).and_then(|()| {
                // Re-dated explicitly: the rename does not touch it.
                fs::rename(&temp, path)
            });
            return super::finish(result, &temp, path.to_path_buf())
                .map(|_| true)
                .map_err(|e| match e {
                    StoreError::Io { path, source, .. } => StoreError::Io {
                        action: "marking stale",
                        path,
                        source,
                    },
                    other => other,
                });
        }
        file.set_modified(stamp)
            .map_err(|e| io_error("marking stale", e))?;
        Ok(true)
    }
}

impl TileLayout {
    /// The folder, relative to the store, that holds every tile of zoom
    /// `z`: the template up to its last `/` before the first part that
    /// varies within a zoom (`{z}/{x}/{y}.png`: `z`; `{z}_{x}_{y}.png`:
    /// the store itself).
    fn zoom_folder(&self, z: u8) -> PathBuf {
        let mut text = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => text.push_str(t),
                Piece::Z => text.push_str(&z.to_string()),
                _ => break,
            }
        }
        text.rfind('/')
            .map_or_else(PathBuf::new, |slash| PathBuf::from(&text[..slash]))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tile_math::TileCoord;

    use super::*;
    use crate::store::{TileLayout, LEGACY_LAYOUT};

    fn t(z: u8, x: u32, y: u32) -> TileCoord {
        TileCoord::new(z, x, y).unwrap()
    }

    fn meta(z: u8, x: u32, y: u32) -> Metatile {
        Metatile::containing(t(z, x, y), 8).unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// Every name under `dir`, sorted, relative to it.
    fn names(dir: &Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(folder) = stack.pop() {
            for entry in fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let name = path.strip_prefix(dir).unwrap().display().to_string();
                    found.push(name);
                }
            }
        }
        found.sort();
        found
    }

    #[test]
    fn the_stale_date_is_render_expireds_and_before_the_cut_off() {
        // 2026-01-01 goes back to 2006-01-01, 20 calendar years exactly.
        let written = at(1_767_225_600);
        let cut_off = at(1_700_000_000);
        assert_eq!(stale_stamp(written, cut_off), Some(at(1_136_073_600)));
        // Stale already: it keeps its date.
        assert_eq!(stale_stamp(at(1_136_073_600), cut_off), None);
        // A cut-off more than 20 years before the tile: just before it.
        assert_eq!(
            stale_stamp(at(3_000_000_000), at(1_000_000_000)),
            Some(at(999_999_999))
        );
        // Whatever the dates, a tile that was fresh is stale after.
        for (modified, cut) in [
            (written, written),
            (at(6), at(6)),
            (at(2_000_000_000), at(0)),
        ] {
            let stamp = stale_stamp(modified, cut).unwrap();
            assert!(stamp < cut, "{modified:?} {cut:?}");
        }
    }

    #[test]
    fn marking_stale_dates_back_only_the_metatiles_tiles() {
        let dir = tempfile::tempdir().unwrap();
        let store = TileStore::open(dir.path(), TileLayout::default()).unwrap();
        let now = SystemTime::now();
        // Two tiles of the metatile at 10/8/16, one beside it.
        for tile in [t(10, 8, 16), t(10, 15, 23), t(10, 16, 16)] {
            store.write(tile, b"png", now).unwrap();
        }
        let cut_off = now - Duration::from_secs(60);
        assert_eq!(
            store
                .mark_metatile_stale(&meta(10, 9, 17), cut_off)
                .unwrap(),
            2
        );
        for tile in [t(10, 8, 16), t(10, 15, 23)] {
            let stored = store.lookup(tile).unwrap();
            assert_eq!(Some(stored.modified), stale_stamp(now, cut_off));
            assert!(store.fresh(tile, cut_off).is_none(), "{tile} is stale");
            assert_eq!(store.read(tile).unwrap(), b"png", "the picture stays");
        }
        assert!(store.fresh(t(10, 16, 16), cut_off).is_some());
        // Marked twice: still stale, not moved further back.
        assert_eq!(
            store
                .mark_metatile_stale(&meta(10, 9, 17), cut_off)
                .unwrap(),
            2
        );
        let again = store.lookup(t(10, 8, 16)).unwrap().modified;
        assert_eq!(Some(again), stale_stamp(now, cut_off));
        // Nothing stored: 0, no error, nothing made.
        assert_eq!(
            store.mark_metatile_stale(&meta(12, 0, 0), cut_off).unwrap(),
            0
        );
        assert!(!dir.path().join("12").exists());
        assert_eq!(
            names(dir.path()),
            ["10/15/23.png", "10/16/16.png", "10/8/16.png"]
        );
    }

    #[test]
    fn the_folder_of_a_zoom_is_the_templates_fixed_start() {
        for (template, folder) in [
            ("{z}/{x}/{y}.png", "5"),
            ("{z}/{y}/{x}.png", "5"),
            ("tiles-{z}/{y}-{x}.png", "tiles-5"),
            ("a/b{z}c/d/{x}/{y}.png", "a/b5c/d"),
            ("{z}_{x}_{y}.png", ""),
            ("{x}/{z}/{y}.png", ""),
        ] {
            let layout = TileLayout::parse(template).unwrap();
            assert_eq!(layout.zoom_folder(5), PathBuf::from(folder), "{template}");
        }
    }

    #[test]
    fn missing_folders_are_skipped_and_nothing_is_missed() {
        let dir = tempfile::tempdir().unwrap();
        let store = TileStore::open(dir.path(), TileLayout::default()).unwrap();
        let now = SystemTime::now();
        // In the metatile at 10/8/16: its last tile only (columns 8-14
        // missing), and at zoom 11 nothing at all.
        store.write(t(10, 15, 23), b"png", now).unwrap();
        let cut_off = now - Duration::from_secs(60);
        assert_eq!(
            store.missing_folder(&store.path_of(t(10, 8, 16))),
            Some(dir.path().join("10/8"))
        );
        assert_eq!(
            store.missing_folder(&store.path_of(t(11, 8, 16))),
            Some(dir.path().join("11"))
        );
        assert_eq!(store.missing_folder(&store.path_of(t(10, 15, 16))), None);
        assert_eq!(
            store
                .mark_metatile_stale(&meta(10, 8, 16), cut_off)
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .mark_metatile_stale(&meta(11, 8, 16), cut_off)
                .unwrap(),
            0
        );
        // A store whose folder is not made yet (a map's @2x variant).
        let unmade = TileStore::open_unmade(dir.path().join("@2x"), TileLayout::default()).unwrap();
        assert_eq!(
            unmade.missing_folder(&unmade.path_of(t(10, 8, 16))),
            Some(dir.path().join("@2x"))
        );
        assert_eq!(
            unmade
                .mark_metatile_stale(&meta(10, 8, 16), cut_off)
                .unwrap(),
            0
        );
        assert_eq!(unmade.delete_metatile(&meta(10, 8, 16)).unwrap(), 0);
        assert!(!dir.path().join("@2x").exists());
        assert_eq!(store.delete_metatile(&meta(10, 8, 16)).unwrap(), 1);
    }

    #[test]
    fn a_shared_single_colour_tile_is_unshared_before_it_is_dated_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = TileStore::open(dir.path(), TileLayout::parse(LEGACY_LAYOUT).unwrap()).unwrap();
        let now = SystemTime::now();
        let sea = Arc::new(b"sea png".to_vec());
        // Three sea tiles: two in the metatile at 4/0/0, one in 4/8/0.
        for tile in [t(4, 0, 0), t(4, 1, 0), t(4, 8, 0)] {
            store.write_shared(tile, &sea, now).unwrap();
        }
        let cut_off = now - Duration::from_secs(60);
        assert_eq!(
            store.mark_metatile_stale(&meta(4, 0, 0), cut_off).unwrap(),
            2
        );
        for tile in [t(4, 0, 0), t(4, 1, 0)] {
            let file = fs::metadata(store.path_of(tile)).unwrap();
            assert_eq!(file.nlink(), 1, "{tile} has a file of its own");
            assert!(store.fresh(tile, cut_off).is_none());
            assert_eq!(store.read(tile).unwrap(), b"sea png");
        }
        // The other sea tile and the shared file keep their date: later
        // sea tiles linked to it are fresh.
        assert!(store.fresh(t(4, 8, 0), cut_off).is_some());
        store.write_shared(t(4, 9, 0), &sea, now).unwrap();
        assert!(store.fresh(t(4, 9, 0), cut_off).is_some());
        assert_eq!(fs::metadata(store.path_of(t(4, 9, 0))).unwrap().nlink(), 3);
        // No temporary file anywhere.
        let left: Vec<String> = names(dir.path())
            .into_iter()
            .filter(|n| !n.starts_with(".shared/"))
            .collect();
        assert_eq!(left, ["4_0_0.png", "4_1_0.png", "4_8_0.png", "4_9_0.png"]);
    }

    #[test]
    fn deleting_removes_the_metatiles_tiles_and_only_those() {
        let dir = tempfile::tempdir().unwrap();
        let store = TileStore::open(dir.path(), TileLayout::default()).unwrap();
        let now = SystemTime::now();
        let sea = Arc::new(b"sea png".to_vec());
        store.write(t(2, 0, 0), b"a", now).unwrap();
        store.write_shared(t(2, 3, 3), &sea, now).unwrap();
        store.write_shared(t(3, 0, 0), &sea, now).unwrap();
        // At zoom 2 the metatile is the whole (4×4) world.
        assert_eq!(store.delete_metatile(&meta(2, 1, 1)).unwrap(), 2);
        assert!(store.lookup(t(2, 0, 0)).is_none());
        assert!(store.lookup(t(2, 3, 3)).is_none());
        assert_eq!(
            store.read(t(3, 0, 0)).unwrap(),
            b"sea png",
            "its link partner stays"
        );
        assert_eq!(
            store.delete_metatile(&meta(2, 1, 1)).unwrap(),
            0,
            "gone already"
        );
    }

    #[test]
    fn failures_name_the_file_and_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = TileStore::open(dir.path(), TileLayout::default()).unwrap();
        // A directory where a tile should be (as root, permissions cannot
        // make these fail).
        let blocker = store.path_of(t(5, 1, 1));
        fs::create_dir_all(blocker.join("in-the-way")).unwrap();
        let err = store
            .delete_metatile(&meta(5, 1, 1))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("deleting ") && err.contains("5/1/1.png"),
            "{err}"
        );
        let err = store
            .mark_metatile_stale(&meta(5, 1, 1), SystemTime::now())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("marking stale ") && err.contains("5/1/1.png"),
            "{err}"
        );
        assert!(blocker.join("in-the-way").is_dir());
        assert_eq!(names(dir.path()).len(), 0, "no file made");
    }
}
