//! Map generations: which stored tiles are still current.
//!
//! A map's **generation** is what its tiles were drawn from: every file of
//! the style and its data ([`render_core::MapSource::input_files`]: path,
//! size and modification time of each) and the settings that change the
//! pixels (tile size, scale, buffer, format, metatile size), summed up in
//! a **fingerprint**. Each generation has a **cut-off** (`since`): a
//! stored tile is fresh when its stamp is at or after it.
//!
//! The promise: *no render by an older generation marks a tile fresh.*
//! - A tile's stamp (its file's modification time) is the moment its
//!   render began, taken while the service's map table is read-locked,
//!   before the worker looks its map up. A reload publishes a new
//!   generation under the write lock and sets its cut-off inside it. So a
//!   render that got the old map began before the new cut-off, and its
//!   tiles are stale however late they are written.
//! - Across restarts, the cut-off is kept beside the tiles in
//!   `.tessera-<map>.generation` (written atomically) with its
//!   fingerprint. Same fingerprint at the next start: same cut-off, the
//!   tiles stay fresh. Another fingerprint (the style or the data changed
//!   while the server was down, or while it ran with the copy it had
//!   loaded): the cut-off is the moment of loading, so every older tile is
//!   stale. Without a record (a store from before generations) the cut-off
//!   is the newest input file's modification time, as before.
//! - PostGIS rows are not files: their changes reach the store as expired
//!   tiles (`tile-client expire`), which are stamped in the past.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use render_core::{MapSource, RenderOptions};
use sha2::{Digest, Sha256};

/// What a map's tiles were drawn from, and from when its tiles count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// A digest of the inputs and the pixel-changing settings (hex).
    pub fingerprint: String,
    /// Stored tiles stamped before this are stale.
    pub since: SystemTime,
}

/// The fingerprint of a loaded map drawn with these settings.
pub fn fingerprint(source: &MapSource, render: &RenderOptions, metatile: u32) -> String {
    let mut text = String::new();
    for file in source.input_files() {
        match fs::metadata(file) {
            Ok(meta) => {
                let modified = meta.modified().ok().map_or(0, nanos_since_epoch);
                let _ = writeln!(text, "file {} {} {modified}", file.display(), meta.len());
            }
            Err(_) => {
                let _ = writeln!(text, "file {} missing", file.display());
            }
        }
    }
    settings_line(&mut text, render, metatile);
    hex_digest(text.as_bytes(), 16)
}

/// The settings that change the pixels, as one line of a digest's text.
fn settings_line(text: &mut String, render: &RenderOptions, metatile: u32) {
    let _ = writeln!(
        text,
        "tile_size {} scale {} buffer {:?} buffer_if_unset {:?} format {:?} metatile {metatile}",
        render.tile_size, render.scale_factor, render.buffer, render.buffer_if_unset, render.format
    );
}

fn hex_digest(bytes: &[u8], len: usize) -> String {
    let digest = Sha256::digest(bytes);
    digest[..len].iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

/// Files up to this size count by their content in a style version;
/// larger ones (big data files) by their name and size, so that a start
/// does not read gigabytes to name a version.
pub const VERSION_CONTENT_LIMIT: u64 = 64 << 20;

/// A map's **style version**, for a cluster: what its tiles look like,
/// the same on every machine that has the same files (unlike the
/// fingerprint, which has paths and modification times). The content of
/// every input file (by file name and size above
/// [`VERSION_CONTENT_LIMIT`]) and the pixel settings; 12 hex digits. A
/// render node only takes the jobs of the versions it has.
pub fn style_version(source: &MapSource, render: &RenderOptions, metatile: u32) -> String {
    let mut text = String::new();
    for file in source.input_files() {
        let name = file.file_name().map_or_else(
            || file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let content = match fs::metadata(file) {
            Ok(meta) if meta.len() > VERSION_CONTENT_LIMIT => format!("size {}", meta.len()),
            Ok(_) => match fs::read(file) {
                Ok(bytes) => format!("sha256 {}", hex_digest(&bytes, 32)),
                Err(e) => format!("unreadable {}", e.kind()),
            },
            Err(_) => "missing".to_owned(),
        };
        let _ = writeln!(text, "file {name} {content}");
    }
    settings_line(&mut text, render, metatile);
    hex_digest(text.as_bytes(), 6)
}

/// Where a map's generation is kept: beside its tiles, named after the map
/// (two maps may share a folder). Map names are checked by the
/// configuration (letters, digits, `-`, `_`).
pub fn record_path(store_root: &Path, map: &str) -> PathBuf {
    store_root.join(format!(".tessera-{map}.generation"))
}

/// The generation of a map that is being loaded: the recorded one when its
/// fingerprint matches, else a new one from `now` (or, with no record at
/// all, from the newest input file). The record is written when it
/// changed; failing to write it is returned as a warning, the generation
/// still holds for this run.
pub fn resolve(
    record: &Path,
    fingerprint: String,
    newest_input: Option<SystemTime>,
    now: SystemTime,
) -> (Generation, Option<String>) {
    let recorded = read_record(record);
    let since = match &recorded {
        Some(old) if old.fingerprint == fingerprint => return (old.clone(), None),
        Some(_) => now,
        None => newest_input.unwrap_or(UNIX_EPOCH).min(now),
    };
    let generation = Generation { fingerprint, since };
    let warning = save(record, &generation).err().map(|e| {
        format!(
            "cannot record the map's generation in {}: {e}",
            record.display()
        )
    });
    (generation, warning)
}

fn nanos_since_epoch(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// The record, if it exists and reads as one (anything else is as good as
/// none: the tiles are then judged by the inputs' times).
fn read_record(path: &Path) -> Option<Generation> {
    let text = fs::read_to_string(path).ok()?;
    let mut fingerprint = None;
    let mut since = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("fingerprint = ") {
            fingerprint = Some(v.trim().trim_matches('"').to_owned());
        } else if let Some(v) = line.strip_prefix("since_ns = ") {
            let ns: u128 = v.trim().parse().ok()?;
            let secs = u64::try_from(ns / 1_000_000_000).ok()?;
            let sub = u32::try_from(ns % 1_000_000_000).ok()?;
            since = UNIX_EPOCH.checked_add(Duration::new(secs, sub));
        }
    }
    Some(Generation {
        fingerprint: fingerprint?,
        since: since?,
    })
}

/// Writes a generation's record atomically (temporary file, then rename).
pub fn save(path: &Path, generation: &Generation) -> std::io::Result<()> {
    let text = format!(
        "# tessera: tiles in this folder stamped before `since_ns` are stale\n\
         fingerprint = \"{}\"\nsince_ns = {}\n",
        generation.fingerprint,
        nanos_since_epoch(generation.since)
    );
    let temp = path.with_extension(format!("generation.{}.tmp", std::process::id()));
    let written = fs::File::create(&temp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .and_then(|()| fs::rename(&temp, path));
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn the_first_load_takes_the_newest_input_and_records_it() {
        let dir = tempfile::tempdir().unwrap();
        let record = record_path(dir.path(), "osm");
        let (generation, warning) = resolve(&record, "aa".into(), Some(at(100)), at(500));
        assert_eq!(warning, None);
        assert_eq!(generation.since, at(100));
        assert_eq!(read_record(&record), Some(generation));
    }

    #[test]
    fn the_same_fingerprint_keeps_the_cut_off_and_another_moves_it_to_now() {
        let dir = tempfile::tempdir().unwrap();
        let record = record_path(dir.path(), "osm");
        resolve(&record, "aa".into(), Some(at(100)), at(500));
        // A restart with nothing changed: tiles stay fresh.
        let (same, _) = resolve(&record, "aa".into(), Some(at(100)), at(900));
        assert_eq!(same.since, at(100));
        // The style changed (even to an older file time, as `cp -p` of an
        // old copy would): every tile stamped before now is stale.
        let (changed, _) = resolve(&record, "bb".into(), Some(at(50)), at(900));
        assert_eq!(changed.since, at(900));
        assert_eq!(read_record(&record).unwrap().fingerprint, "bb");
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
    }

    #[test]
    fn a_record_that_cannot_be_written_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir
            .path()
            .join("missing-folder")
            .join(".tessera-osm.generation");
        let (generation, warning) = resolve(&record, "aa".into(), Some(at(100)), at(500));
        assert_eq!(generation.since, at(100));
        assert!(warning.unwrap().contains("cannot record"));
    }

    #[test]
    fn the_fingerprint_follows_the_files_and_the_settings() {
        let dir = tempfile::tempdir().unwrap();
        let style = dir.path().join("style.xml");
        let write_style = |colour: &str| {
            fs::write(
                &style,
                format!(r#"<Map srs="epsg:3857" background-color="{colour}"/>"#),
            )
            .unwrap();
        };
        write_style("#ffffff");
        let options = RenderOptions::default();
        let first = fingerprint(&MapSource::load(&style).unwrap(), &options, 8);
        assert_eq!(
            first,
            fingerprint(&MapSource::load(&style).unwrap(), &options, 8)
        );
        assert_ne!(
            first,
            fingerprint(&MapSource::load(&style).unwrap(), &options, 4)
        );
        let scaled = RenderOptions {
            scale_factor: 2.0,
            ..options.clone()
        };
        assert_ne!(
            first,
            fingerprint(&MapSource::load(&style).unwrap(), &scaled, 8)
        );
        write_style("#000"); // another size too: file times are coarse
        assert_ne!(
            first,
            fingerprint(&MapSource::load(&style).unwrap(), &options, 8)
        );
    }

    #[test]
    fn the_style_version_follows_content_and_settings_not_place_or_time() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let style = |dir: &Path, colour: &str| {
            let path = dir.join("style.xml");
            fs::write(
                &path,
                format!(r#"<Map srs="epsg:3857" background-color="{colour}"/>"#),
            )
            .unwrap();
            MapSource::load(&path).unwrap()
        };
        let options = RenderOptions::default();
        let here = style_version(&style(a.path(), "#ffffff"), &options, 8);
        assert_eq!(here.len(), 12);
        // Another folder, another moment: another machine with the same
        // files names the same version.
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            here,
            style_version(&style(b.path(), "#ffffff"), &options, 8)
        );
        // Same size, other bytes: another version.
        assert_ne!(
            here,
            style_version(&style(b.path(), "#fffffe"), &options, 8)
        );
        assert_ne!(
            here,
            style_version(&style(a.path(), "#ffffff"), &options, 4)
        );
    }
}
