//! The tile store: a directory of tiles, either one PNG file per tile laid
//! out by a template, or mod_tile's `.meta` files ([`mod_tile`]).
//!
//! The store is written a metatile at a time
//! ([`TileStore::write_metatile`]): the layout decides whether that is one
//! file per tile or one file for the whole metatile, and every other part
//! of the service is the same for both.
//!
//! - **Layout.** A template such as `{z}/{x}/{y}.png` (web maps) or
//!   `{z}_{x}_{y}.png` (what the legacy desktop application reads) is
//!   checked once, when the store is made: it must name `{z}`, `{x}` and
//!   `{y}`, be relative, and stay inside the store (no `..`, no absolute
//!   part). A tile's path is then built from three checked integers only;
//!   no text a client sent ever becomes part of a path.
//! - **Maps.** A template may also name `{map}` (the configuration's
//!   default is `{map}/{z}/{x}/{y}.png`); [`TileLayout::for_map`] fills it
//!   in with a map's name, which the configuration has checked (letters,
//!   digits, `-`, `_`), and [`TileLayout::split_folder`] makes the folders
//!   before the first number the store's root, so each map keeps its own
//!   folder (and its own `.shared/`) where the template allows.
//! - **mod_tile.** The layout `mod_tile` ([`MOD_TILE_LAYOUT`]) keeps each
//!   map's tiles as renderd does: `<dir>/<map>/<z>/<hash>.meta`, one file
//!   per 8×8 metatile, which Apache's mod_tile serves and renderd's tools
//!   read. A tile there has no file of its own: lookups read its PNG out of
//!   the metatile's file ([`StoredTile::png`]). No single-colour sharing:
//!   the file holds every tile's bytes.
//! - **Atomic writes.** A tile is written to a temporary file in the same
//!   directory and renamed into place, so a reader (or a `kill -9` in the
//!   middle) never sees half a PNG. A failed write (full disk, permissions)
//!   removes its temporary file and reports the error; the old tile, if any,
//!   stays as it was.
//! - **Freshness.** Every tile is written with its render's stamp as its
//!   modification time (the moment the render began), and a stored tile
//!   is fresh when that stamp is at or after its map generation's cut-off
//!   ([`crate::generation`]): a render by an older style or older data is
//!   always older than the cut-off of the generation that replaced it.
//! - **Expiry.** A metatile's stored tiles can be deleted or marked
//!   stale (dated back, as renderd's `render_expired` does): see
//!   [`expiry`].
//! - **Shared single-colour tiles.** Open sea and inland tiles are
//!   byte-identical. [`TileStore::write_shared`] keeps one file per distinct
//!   content (under `.shared/`, per server run) and hard-links each such
//!   tile to it: a link is a directory entry, not a new inode, which is
//!   where most of the time of writing a tile goes on ext4. Readers see an
//!   ordinary file; replacing a tile is still a rename, so the others that
//!   share its content are untouched (and a tile that already links to the
//!   same file, as after a forced re-render, keeps no temporary name: a
//!   rename between two links of one inode is a no-op). Where links are not
//!   possible (another file system, too many links), the tile is written as
//!   a file of its own.

use std::collections::HashMap;
use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tile_math::{Metatile, TileCoord};

pub mod mod_tile;

/// The default layout of one store, the one web maps use.
pub const DEFAULT_LAYOUT: &str = "{z}/{x}/{y}.png";

/// The configuration's default layout: each map in its own folder of the
/// tile directory, in the web-map layout.
pub const DEFAULT_MAP_LAYOUT: &str = "{map}/{z}/{x}/{y}.png";

/// The layout the legacy desktop application reads (`16_58001_25480.png`).
pub const LEGACY_LAYOUT: &str = "{z}_{x}_{y}.png";

/// mod_tile's layout: `<map>/<z>/<h4>/<h3>/<h2>/<h1>/<h0>.meta`, one file
/// per 8×8 metatile ([`mod_tile`]).
pub const MOD_TILE_LAYOUT: &str = "mod_tile";

/// Why a layout template or a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The template is not usable; the message says why.
    #[error("tile layout {template:?}: {reason}")]
    BadLayout {
        /// The template as given.
        template: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The tile cannot be kept in this layout (a zoom level mod_tile's
    /// paths cannot name, a single-tile write to a metatile layout).
    #[error("{0}")]
    NotInLayout(String),
    /// Reading or writing a tile failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`"writing"`, `"creating directory"`, ...).
        action: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
}

/// One piece of a parsed layout template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Map,
    Z,
    X,
    Y,
    /// mod_tile's metatile path: `{z}/{h4}/{h3}/{h2}/{h1}/{h0}.meta`.
    ModTile,
}

/// A checked layout template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileLayout {
    template: String,
    pieces: Vec<Piece>,
}

impl TileLayout {
    /// Parses and checks a template.
    pub fn parse(template: &str) -> Result<Self, StoreError> {
        if template == MOD_TILE_LAYOUT {
            return Ok(Self {
                template: template.to_owned(),
                pieces: vec![Piece::Map, Piece::Text("/".into()), Piece::ModTile],
            });
        }
        let bad = |reason| StoreError::BadLayout {
            template: template.to_owned(),
            reason,
        };
        let mut pieces = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_owned()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| bad("a '{' is never closed"))?;
            pieces.push(match &rest[open + 1..open + close] {
                "map" => Piece::Map,
                "z" => Piece::Z,
                "x" => Piece::X,
                "y" => Piece::Y,
                _ => return Err(bad("only {map}, {z}, {x} and {y} may appear in braces")),
            });
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        if rest.contains('}')
            || pieces
                .iter()
                .any(|p| matches!(p, Piece::Text(t) if t.contains('}')))
        {
            return Err(bad("a '}' has no '{'"));
        }
        for needed in [Piece::Z, Piece::X, Piece::Y] {
            if !pieces.contains(&needed) {
                return Err(bad(
                    "it must contain {z}, {x} and {y}, so every tile has its own file",
                ));
            }
        }
        let path = Path::new(template);
        if path.is_absolute() || template.starts_with('/') {
            return Err(bad("it must be relative to the tile directory"));
        }
        if path
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(bad("it must not contain '..' or '.' parts"));
        }
        if template.ends_with('/') || template.contains("//") || template.contains('\0') {
            return Err(bad("it must name a file, without empty parts"));
        }
        Ok(Self {
            template: template.to_owned(),
            pieces,
        })
    }

    /// The template as given.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// Whether this is mod_tile's `.meta` layout (one file per metatile).
    pub fn is_mod_tile(&self) -> bool {
        self.pieces.contains(&Piece::ModTile)
    }

    /// Whether the template names `{map}`.
    pub fn names_map(&self) -> bool {
        self.pieces.contains(&Piece::Map)
    }

    /// This layout with every `{map}` replaced by `map`, a name the
    /// configuration has checked (it is not checked again here).
    pub fn for_map(&self, map: &str) -> TileLayout {
        let pieces = self
            .pieces
            .iter()
            .map(|piece| match piece {
                Piece::Map => Piece::Text(map.to_owned()),
                other => other.clone(),
            })
            .collect();
        Self::from_pieces(pieces)
    }

    /// Splits off the folders that come before the first tile number:
    /// `demo/{z}/{x}/{y}.png` gives `demo` and `{z}/{x}/{y}.png`;
    /// `{z}_{x}_{y}.png` gives an empty path and itself.
    pub fn split_folder(&self) -> (PathBuf, TileLayout) {
        let Some(Piece::Text(lead)) = self.pieces.first() else {
            return (PathBuf::new(), self.clone());
        };
        let Some(slash) = lead.rfind('/') else {
            return (PathBuf::new(), self.clone());
        };
        let mut pieces = self.pieces.clone();
        let rest = &lead[slash + 1..];
        if rest.is_empty() {
            pieces.remove(0);
        } else {
            pieces[0] = Piece::Text(rest.to_owned());
        }
        (PathBuf::from(&lead[..slash]), Self::from_pieces(pieces))
    }

    /// A layout from pieces, adjacent texts merged and the template
    /// written back.
    fn from_pieces(pieces: Vec<Piece>) -> TileLayout {
        let mut merged: Vec<Piece> = Vec::with_capacity(pieces.len());
        for piece in pieces {
            match (merged.last_mut(), piece) {
                (Some(Piece::Text(last)), Piece::Text(text)) => last.push_str(&text),
                (_, piece) => merged.push(piece),
            }
        }
        let template = merged
            .iter()
            .map(|piece| match piece {
                Piece::Text(text) => text.as_str(),
                Piece::Map => "{map}",
                Piece::Z => "{z}",
                Piece::X => "{x}",
                Piece::Y => "{y}",
                Piece::ModTile => "{mod_tile}",
            })
            .collect();
        TileLayout {
            template,
            pieces: merged,
        }
    }

    /// The relative path of a tile (in the mod_tile layout: of the
    /// `.meta` file that holds it).
    pub fn relative_path(&self, tile: TileCoord) -> PathBuf {
        let mut out = String::with_capacity(self.template.len() + 16);
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                // A store's layout never holds `{map}` (`TileStore::open`
                // refuses it); were it there, it would stay a literal name.
                Piece::Map => out.push_str("{map}"),
                Piece::Z => out.push_str(&tile.z().to_string()),
                Piece::X => out.push_str(&tile.x().to_string()),
                Piece::Y => out.push_str(&tile.y().to_string()),
                Piece::ModTile => out.push_str(&mod_tile::relative_path(tile).to_string_lossy()),
            }
        }
        PathBuf::from(out)
    }
}

impl Default for TileLayout {
    fn default() -> Self {
        Self {
            template: DEFAULT_LAYOUT.to_owned(),
            pieces: vec![
                Piece::Z,
                Piece::Text("/".into()),
                Piece::X,
                Piece::Text("/".into()),
                Piece::Y,
                Piece::Text(".png".into()),
            ],
        }
    }
}

/// A tile found in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTile {
    /// Where it is: its PNG file, or (mod_tile layout) its metatile's
    /// `.meta` file.
    pub path: PathBuf,
    /// When it was written.
    pub modified: SystemTime,
    /// Its PNG, read with the lookup, when it has no file of its own (the
    /// mod_tile layout); `None` when `path` is the tile's own PNG file.
    pub png: Option<Arc<Vec<u8>>>,
}

/// Where one tile of a metatile went, or why it failed
/// ([`TileStore::write_metatile`]).
pub type TileWritten = (TileCoord, Result<PathBuf, StoreError>);

/// Tells apart the stores one process opens (their `.shared/` folders).
static STORE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A directory of tiles for one map.
#[derive(Debug)]
pub struct TileStore {
    root: PathBuf,
    layout: TileLayout,
    /// One PNG file per tile, or one `.meta` file per metatile.
    kind: StoreKind,
    /// Makes temporary names unique between threads of this process.
    temp_counter: AtomicU64,
    /// This run's shared files, by content hash.
    shared: Mutex<HashMap<u64, SharedFile>>,
    /// `.shared/<run>`: a fresh folder per server run, so shared files are
    /// always newer than the run's freshness cut-off.
    shared_dir: PathBuf,
}

/// How a store keeps its tiles (fixed by its layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreKind {
    /// One PNG file per tile, single-colour tiles shared by hard links.
    PngFiles,
    /// mod_tile's `.meta` files, one per 8×8 metatile.
    ModTile,
}

/// One shared file: its bytes (to rule out hash collisions) and its path.
#[derive(Debug)]
struct SharedFile {
    content: Arc<Vec<u8>>,
    path: PathBuf,
}

impl TileStore {
    /// A store rooted at `root` (created if missing) with a layout.
    pub fn open(root: impl Into<PathBuf>, layout: TileLayout) -> Result<Self, StoreError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|source| StoreError::Io {
            action: "creating tile directory",
            path: root.clone(),
            source,
        })?;
        Self::open_unmade(root, layout)
    }

    /// A store whose root is made with its first tile, not now (a map's
    /// `@2x` store: no folder appears in the tile directory until a
    /// high-DPI tile is asked for).
    pub fn open_unmade(root: impl Into<PathBuf>, layout: TileLayout) -> Result<Self, StoreError> {
        if layout.names_map() {
            return Err(StoreError::BadLayout {
                template: layout.template,
                reason: "`{map}` must be filled in with the map's name first",
            });
        }
        let root = root.into();
        // Paths handed to clients (`TileDone` with a store path) are
        // absolute: a client does not share the server's working directory.
        let root = std::path::absolute(&root).map_err(|source| StoreError::Io {
            action: "resolving tile directory",
            path: root.clone(),
            source,
        })?;
        let shared_root = root.join(".shared");
        // Old runs' shared files can go: tiles linked to them keep their
        // content (a link is as good as the original name). This process's
        // own folders stay: two maps may share a root (`{z}/{map}/...`).
        let this_run = format!("{}-", std::process::id());
        if let Ok(entries) = fs::read_dir(&shared_root) {
            for entry in entries.flatten() {
                if !entry.file_name().to_string_lossy().starts_with(&this_run) {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
        let run = format!(
            "{this_run}{}-{}",
            STORE_COUNTER.fetch_add(1, Ordering::Relaxed),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let kind = if layout.is_mod_tile() {
            StoreKind::ModTile
        } else {
            StoreKind::PngFiles
        };
        Ok(Self {
            root,
            layout,
            kind,
            temp_counter: AtomicU64::new(0),
            shared: Mutex::new(HashMap::new()),
            shared_dir: shared_root.join(run),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The layout.
    pub fn layout(&self) -> &TileLayout {
        &self.layout
    }

    /// Whether each tile is a PNG file of its own (false in the mod_tile
    /// layout, where a tile is a part of its metatile's file).
    pub fn has_tile_files(&self) -> bool {
        self.kind == StoreKind::PngFiles
    }

    /// Where a tile lives (whether or not it exists): its PNG file, or its
    /// metatile's `.meta` file.
    pub fn path_of(&self, tile: TileCoord) -> PathBuf {
        self.root.join(self.layout.relative_path(tile))
    }

    /// The stored tile, if there is one. In the mod_tile layout its PNG is
    /// read out of the metatile's file (a file that does not read as a
    /// `.meta` file counts as no tile, and is logged).
    pub fn lookup(&self, tile: TileCoord) -> Option<StoredTile> {
        self.find(tile, None)
    }

    /// The stored tile if its stamp is at or after `fresh_after` (in the
    /// mod_tile layout also at or after `planet-import-complete`, as
    /// mod_tile judges it).
    pub fn fresh(&self, tile: TileCoord, fresh_after: SystemTime) -> Option<StoredTile> {
        let cut_off = match self.kind {
            StoreKind::PngFiles => fresh_after,
            StoreKind::ModTile => mod_tile::planet_time(&self.root)
                .map_or(fresh_after, |planet| planet.max(fresh_after)),
        };
        self.find(tile, Some(cut_off))
    }

    /// The stored tile, if there is one stamped at or after `cut_off`
    /// (when given): the file's time first, its bytes only then.
    fn find(&self, tile: TileCoord, cut_off: Option<SystemTime>) -> Option<StoredTile> {
        let path = self.path_of(tile);
        let meta = fs::metadata(&path).ok()?;
        if !meta.is_file() {
            return None;
        }
        let modified = meta.modified().ok()?;
        if cut_off.is_some_and(|cut_off| modified < cut_off) {
            return None;
        }
        let png = match self.kind {
            StoreKind::PngFiles => None,
            StoreKind::ModTile => match mod_tile::read_tile(&path, tile) {
                Ok(png) => Some(Arc::new(png?)),
                Err(e) => {
                    tracing::warn!(%tile, "cannot read {}: {e}; rendering it again", path.display());
                    return None;
                }
            },
        };
        Some(StoredTile {
            path,
            modified,
            png,
        })
    }

    /// Reads a stored tile's bytes.
    pub fn read(&self, tile: TileCoord) -> Result<Vec<u8>, StoreError> {
        let path = self.path_of(tile);
        let io_error = |source| StoreError::Io {
            action: "reading",
            path: path.clone(),
            source,
        };
        match self.kind {
            StoreKind::PngFiles => fs::read(&path).map_err(io_error),
            StoreKind::ModTile => mod_tile::read_tile(&path, tile)
                .map_err(io_error)?
                .ok_or_else(|| {
                    io_error(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("no tile {tile} in the metatile file"),
                    ))
                }),
        }
    }

    /// Writes the tiles of one rendered metatile, each stamped `stamp` (the
    /// moment its render began, see [`crate::generation`]). PNG layouts
    /// write one file per tile (single-colour tiles shared); the result
    /// says, tile by tile, where each went or why it failed. The mod_tile
    /// layout writes one `.meta` file, atomically; `Err` when it failed,
    /// which fails every tile of the metatile.
    pub fn write_metatile(
        &self,
        metatile: &Metatile,
        tiles: &[render_core::RenderedTile],
        stamp: SystemTime,
    ) -> Result<Vec<TileWritten>, StoreError> {
        match self.kind {
            StoreKind::PngFiles => Ok(tiles
                .iter()
                .map(|t| {
                    let written = if t.single_colour {
                        self.write_shared(t.tile, &t.png, stamp)
                    } else {
                        self.write(t.tile, &t.png, stamp)
                    };
                    (t.tile, written)
                })
                .collect()),
            StoreKind::ModTile => {
                let path = self.write_meta(metatile, tiles, stamp)?;
                Ok(tiles.iter().map(|t| (t.tile, Ok(path.clone()))).collect())
            }
        }
    }

    /// One `.meta` file for the metatile, written atomically.
    fn write_meta(
        &self,
        metatile: &Metatile,
        tiles: &[render_core::RenderedTile],
        stamp: SystemTime,
    ) -> Result<PathBuf, StoreError> {
        let first = metatile.first_tile();
        if metatile.size() != mod_tile::METATILE {
            return Err(StoreError::NotInLayout(format!(
                "metatile {metatile}: mod_tile's .meta layout holds 8×8 metatiles, not {0}×{0}",
                metatile.size()
            )));
        }
        if let Some(why) = mod_tile::unsupported(first) {
            return Err(StoreError::NotInLayout(why));
        }
        let given: Vec<(TileCoord, &[u8])> =
            tiles.iter().map(|t| (t.tile, t.png.as_slice())).collect();
        let bytes = mod_tile::encode(metatile, &given);
        let path = self.path_of(first);
        let temp = self.temp_for(&path)?;
        let result = write_file(&temp, &bytes, stamp).and_then(|()| fs::rename(&temp, &path));
        finish(result, &temp, path)
    }

    /// Tells readers outside tessera which stored tiles are stale: in the
    /// mod_tile layout, `planet-import-complete` in the map's folder is
    /// moved forward to `cut_off` (mod_tile re-renders tiles older than
    /// it); nothing for the PNG layouts.
    pub fn publish_cut_off(&self, cut_off: SystemTime) -> Result<(), StoreError> {
        match self.kind {
            StoreKind::PngFiles => Ok(()),
            StoreKind::ModTile => {
                mod_tile::publish_cut_off(&self.root, cut_off).map_err(|source| StoreError::Io {
                    action: "updating",
                    path: self.root.join(mod_tile::PLANET_TIMESTAMP),
                    source,
                })
            }
        }
    }

    /// A single-tile write where the layout keeps whole metatiles.
    fn refuse_single_tile(&self, tile: TileCoord) -> Result<(), StoreError> {
        match self.kind {
            StoreKind::PngFiles => Ok(()),
            StoreKind::ModTile => Err(StoreError::NotInLayout(format!(
                "tile {tile}: mod_tile's .meta layout is written a metatile at a time"
            ))),
        }
    }

    /// Writes a tile atomically: a temporary file in the same directory,
    /// then a rename over the old tile. Its modification time is `stamp`,
    /// the moment its render began (see [`crate::generation`]), not the
    /// moment it was written. Returns the tile's path.
    pub fn write(
        &self,
        tile: TileCoord,
        png: &[u8],
        stamp: SystemTime,
    ) -> Result<PathBuf, StoreError> {
        self.refuse_single_tile(tile)?;
        let path = self.path_of(tile);
        let temp = self.temp_for(&path)?;
        let result = write_file(&temp, png, stamp).and_then(|()| fs::rename(&temp, &path));
        finish(result, &temp, path)
    }

    /// Writes a tile whose bytes many tiles share (a single-colour tile):
    /// it becomes a hard link to one file per distinct content, placed with
    /// the same temporary-name-and-rename as [`TileStore::write`]. Falls back
    /// to a file of its own when a link cannot be made.
    /// The shared file carries the stamp of the first tile that made it:
    /// all its tiles were drawn by this store's generation.
    pub fn write_shared(
        &self,
        tile: TileCoord,
        png: &Arc<Vec<u8>>,
        stamp: SystemTime,
    ) -> Result<PathBuf, StoreError> {
        self.refuse_single_tile(tile)?;
        let Some(shared) = self.shared_file(png, stamp) else {
            return self.write(tile, png, stamp);
        };
        let path = self.path_of(tile);
        let temp = self.temp_for(&path)?;
        match fs::hard_link(&shared, &temp).and_then(|()| fs::rename(&temp, &path)) {
            Ok(()) => {
                // When the tile already was a link to this shared file (a
                // forced re-render of open sea), `rename` between two links
                // of one inode does nothing and leaves the temporary name
                // (POSIX): remove it. Normally it is gone and this fails.
                let _ = fs::remove_file(&temp);
                Ok(path)
            }
            Err(e) => {
                let _ = fs::remove_file(&temp);
                // Too many links to one inode (ext4 allows 65,000), or a file
                // system without links: start a new shared file next time,
                // and write this tile on its own.
                tracing::debug!(
                    "hard link failed ({e}); writing {} as a file",
                    path.display()
                );
                self.lock_shared().remove(&content_hash(png));
                self.write(tile, png, stamp)
            }
        }
    }

    /// The shared file for these bytes, written on first use.
    fn shared_file(&self, png: &Arc<Vec<u8>>, stamp: SystemTime) -> Option<PathBuf> {
        let hash = content_hash(png);
        let mut shared = self.lock_shared();
        if let Some(file) = shared.get(&hash) {
            // Equal hashes with different bytes would link the wrong
            // picture: share only on a true match.
            return (file.content == *png).then(|| file.path.clone());
        }
        fs::create_dir_all(&self.shared_dir).ok()?;
        let unique = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        let path = self.shared_dir.join(format!("{hash:016x}-{unique}.png"));
        let temp = self.shared_dir.join(format!(".{hash:016x}-{unique}.tmp"));
        if write_file(&temp, png, stamp)
            .and_then(|()| fs::rename(&temp, &path))
            .is_err()
        {
            let _ = fs::remove_file(&temp);
            return None;
        }
        shared.insert(
            hash,
            SharedFile {
                content: Arc::clone(png),
                path: path.clone(),
            },
        );
        Some(path)
    }

    fn lock_shared(&self) -> std::sync::MutexGuard<'_, HashMap<u64, SharedFile>> {
        // Each update is one insert or remove: a poisoned map is consistent.
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// This store's shared files are no longer needed once it is gone
    /// (after a reload, or at shutdown): the tiles linked to them keep
    /// their content.
    fn remove_shared_files(&self) {
        let _ = fs::remove_dir_all(&self.shared_dir);
    }

    /// Makes the tile's directory and picks a temporary name beside it.
    fn temp_for(&self, path: &Path) -> Result<PathBuf, StoreError> {
        let dir = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            action: "creating directory",
            path: dir.to_path_buf(),
            source,
        })?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let unique = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        // A leading dot keeps half-written files out of directory listings
        // that skip hidden files; the pid and counter keep writers apart.
        Ok(dir.join(format!(".{file_name}.{}.{unique}.tmp", std::process::id())))
    }
}

/// Writes a new file whose modification time is `stamp`.
impl Drop for TileStore {
    fn drop(&mut self) {
        self.remove_shared_files();
    }
}

fn write_file(path: &Path, bytes: &[u8], stamp: SystemTime) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.set_modified(stamp)
}

/// The tile's path, or the error with the temporary file removed.
fn finish(result: io::Result<()>, temp: &Path, path: PathBuf) -> Result<PathBuf, StoreError> {
    match result {
        Ok(()) => Ok(path),
        Err(source) => {
            // Best effort: the temporary may not exist if create failed.
            let _ = fs::remove_file(temp);
            Err(StoreError::Io {
                action: "writing",
                path,
                source,
            })
        }
    }
}

fn content_hash(bytes: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

pub mod expiry;

#[cfg(test)]
mod tests {
    use super::*;

    fn t(z: u8, x: u32, y: u32) -> TileCoord {
        TileCoord::new(z, x, y).unwrap()
    }

    #[test]
    fn layouts_build_paths_from_numbers_only() {
        let web = TileLayout::parse(DEFAULT_LAYOUT).unwrap();
        assert_eq!(
            web.relative_path(t(16, 58001, 25480)),
            PathBuf::from("16/58001/25480.png")
        );
        assert_eq!(web, TileLayout::default());
        let legacy = TileLayout::parse(LEGACY_LAYOUT).unwrap();
        assert_eq!(
            legacy.relative_path(t(16, 58001, 25480)),
            PathBuf::from("16_58001_25480.png")
        );
        let custom = TileLayout::parse("tiles-{z}/{y}-{x}.png").unwrap();
        assert_eq!(
            custom.relative_path(t(3, 1, 2)),
            PathBuf::from("tiles-3/2-1.png")
        );
    }

    #[test]
    fn map_names_fill_the_map_placeholder_and_lead_folders_become_the_root() {
        let by_map = TileLayout::parse(DEFAULT_MAP_LAYOUT).unwrap();
        assert!(by_map.names_map());
        let demo = by_map.for_map("demo");
        assert!(!demo.names_map());
        assert_eq!(demo.template(), "demo/{z}/{x}/{y}.png");
        let (folder, inside) = demo.split_folder();
        assert_eq!(folder, PathBuf::from("demo"));
        assert_eq!(inside, TileLayout::default());
        // Deeper folders and a file-name prefix.
        let (folder, inside) = TileLayout::parse("maps/{map}/t-{z}_{x}_{y}.png")
            .unwrap()
            .for_map("osm")
            .split_folder();
        assert_eq!(folder, PathBuf::from("maps/osm"));
        assert_eq!(inside.template(), "t-{z}_{x}_{y}.png");
        assert_eq!(
            inside.relative_path(t(16, 58001, 25480)),
            PathBuf::from("t-16_58001_25480.png")
        );
        // The map after a number: the store is the whole tile directory.
        let (folder, inside) = TileLayout::parse("{z}/{map}/{x}/{y}.png")
            .unwrap()
            .for_map("a")
            .split_folder();
        assert_eq!(folder, PathBuf::new());
        assert_eq!(
            inside.relative_path(t(3, 1, 2)),
            PathBuf::from("3/a/1/2.png")
        );
        // No map and no folder: the legacy layout stays as it is.
        let legacy = TileLayout::parse(LEGACY_LAYOUT).unwrap();
        assert_eq!(legacy.for_map("x").split_folder(), (PathBuf::new(), legacy));
        // A store never takes an unfilled `{map}`.
        let dir = tempfile::tempdir().unwrap();
        let err = TileStore::open(dir.path(), by_map).unwrap_err().to_string();
        assert!(err.contains("{map}"), "{err}");
    }

    #[test]
    fn two_stores_on_one_root_keep_their_shared_files() {
        let dir = tempfile::tempdir().unwrap();
        let layout = TileLayout::parse("{z}/{map}/{x}/{y}.png").unwrap();
        let a = TileStore::open(dir.path(), layout.for_map("a")).unwrap();
        let sea = Arc::new(b"sea png".to_vec());
        a.write_shared(t(3, 0, 0), &sea, SystemTime::now()).unwrap();
        let b = TileStore::open(dir.path(), layout.for_map("b")).unwrap();
        b.write_shared(t(3, 0, 0), &sea, SystemTime::now()).unwrap();
        // `a`'s shared file survived `b`'s opening: its next tile links to
        // it (three names) instead of falling back to a file of its own.
        use std::os::unix::fs::MetadataExt;
        let second = a.write_shared(t(3, 1, 0), &sea, SystemTime::now()).unwrap();
        assert_eq!(fs::metadata(second).unwrap().nlink(), 3);
        assert_eq!(fs::read_dir(dir.path().join(".shared")).unwrap().count(), 2);
    }

    #[test]
    fn bad_layouts_are_refused_with_a_reason() {
        for (template, reason) in [
            ("{z}/{x}.png", "must contain"),
            ("/abs/{z}/{x}/{y}.png", "relative"),
            ("../{z}/{x}/{y}.png", "'..'"),
            ("{z}/../{x}/{y}.png", "'..'"),
            ("{z}/{x}/{y}.png/", "name a file"),
            ("{z}/{x}/{y}{maps}.png", "only {map}, {z}"),
            ("{z/{x}/{y}.png", "only {map}, {z}"),
            ("{z}/{x}/{y}.png}", "no '{'"),
            ("{z}/{x}/{y.png", "never closed"),
        ] {
            let err = TileLayout::parse(template).unwrap_err().to_string();
            assert!(err.contains(reason), "{template}: {err}");
        }
    }

    #[test]
    fn writes_are_atomic_and_leave_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let store = TileStore::open(dir.path().join("tiles"), TileLayout::default()).unwrap();
        let tile = t(5, 3, 4);
        assert!(store.lookup(tile).is_none());
        let path = store.write(tile, b"first", SystemTime::now()).unwrap();
        assert_eq!(path, dir.path().join("tiles/5/3/4.png"));
        store.write(tile, b"second", SystemTime::now()).unwrap();
        assert_eq!(store.read(tile).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["4.png"]);
    }

    #[test]
    fn single_colour_tiles_share_one_file() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let store = TileStore::open(dir.path(), TileLayout::default()).unwrap();
        let sea = Arc::new(b"sea png".to_vec());
        let land = Arc::new(b"land png".to_vec());
        let a = store
            .write_shared(t(3, 0, 0), &sea, SystemTime::now())
            .unwrap();
        let b = store
            .write_shared(t(3, 1, 0), &sea, SystemTime::now())
            .unwrap();
        let c = store
            .write_shared(t(3, 2, 0), &land, SystemTime::now())
            .unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"sea png");
        assert_eq!(fs::read(&c).unwrap(), b"land png");
        let (ma, mb, mc) = (
            fs::metadata(&a).unwrap(),
            fs::metadata(&b).unwrap(),
            fs::metadata(&c).unwrap(),
        );
        assert_eq!(ma.ino(), mb.ino(), "same content, one file");
        assert_ne!(ma.ino(), mc.ino());
        assert_eq!(ma.nlink(), 3, "two tiles and the shared file");
        // Replacing one tile leaves the others as they were.
        store.write(t(3, 0, 0), b"new", SystemTime::now()).unwrap();
        assert_eq!(fs::read(&b).unwrap(), b"sea png");
        // A store that is dropped (reload, shutdown) removes its shared
        // folder; the tiles keep their content.
        drop(store);
        let shared_root = dir.path().join(".shared");
        assert_eq!(fs::read_dir(&shared_root).unwrap().count(), 0);
        assert_eq!(fs::read(&b).unwrap(), b"sea png");
        // A new run clears the folders of other processes (here one made
        // up, as a run killed with -9 would leave).
        let ended_run = shared_root.join(format!("{}-0-0", std::process::id() + 1));
        fs::create_dir_all(&ended_run).unwrap();
        fs::write(ended_run.join("0-0.png"), b"sea png").unwrap();
        let again = TileStore::open(dir.path(), TileLayout::default()).unwrap();
        assert_eq!(fs::read(&b).unwrap(), b"sea png");
        assert!(!ended_run.exists(), "an ended run's folder is cleared");
        again
            .write_shared(t(3, 3, 0), &sea, SystemTime::now())
            .unwrap();
        assert_eq!(fs::read_dir(&shared_root).unwrap().count(), 1);
    }

    #[test]
    fn rewriting_a_shared_tile_with_the_same_content_leaves_no_temporary() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let store = TileStore::open(dir.path(), TileLayout::parse(LEGACY_LAYOUT).unwrap()).unwrap();
        let sea = Arc::new(b"sea png".to_vec());
        let tiles = [t(3, 0, 0), t(3, 1, 0)];
        // Three forced re-renders: each tile is already a link to the
        // shared file when it is written again.
        for _ in 0..3 {
            for tile in tiles {
                store.write_shared(tile, &sea, SystemTime::now()).unwrap();
            }
        }
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [".shared", "3_0_0.png", "3_1_0.png"]);
        let shared = fs::metadata(store.path_of(tiles[0])).unwrap();
        assert_eq!(shared.nlink(), 3, "two tiles and the shared file, no more");
        assert_eq!(store.read(tiles[1]).unwrap(), b"sea png");
    }

    #[test]
    fn freshness_follows_the_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let store = TileStore::open(dir.path(), TileLayout::default()).unwrap();
        let tile = t(1, 0, 1);
        store.write(tile, b"png", SystemTime::now()).unwrap();
        let written = store.lookup(tile).unwrap().modified;
        assert!(store.fresh(tile, written).is_some());
        assert!(store
            .fresh(tile, written + std::time::Duration::from_secs(1))
            .is_none());
    }

    #[test]
    fn a_failed_write_reports_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let store = TileStore::open(dir.path(), TileLayout::default()).unwrap();
        let tile = t(2, 1, 1);
        // A directory where the tile should go: the final rename fails (as
        // root, permissions cannot be used to make a write fail).
        let blocker = store.path_of(tile);
        fs::create_dir_all(blocker.join("in-the-way")).unwrap();
        let err = store.write(tile, b"png", SystemTime::now()).unwrap_err();
        assert!(err.to_string().starts_with("writing "), "{err}");
        assert!(err.to_string().contains("2/1/1.png"), "{err}");
        // A shared (single-colour) tile fails the same way: its link is
        // made, the rename fails, the link is removed.
        let sea = Arc::new(b"sea png".to_vec());
        store
            .write_shared(tile, &sea, SystemTime::now())
            .unwrap_err();
        let names: Vec<_> = fs::read_dir(blocker.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["1.png"], "the temporary file was removed");
        assert!(blocker.join("in-the-way").is_dir());
    }

    fn rendered(metatile: &Metatile) -> Vec<render_core::RenderedTile> {
        let sea = Arc::new(b"sea png".to_vec());
        metatile
            .tiles()
            .map(|tile| render_core::RenderedTile {
                tile,
                // Half of them single-colour: the .meta file holds every
                // tile's own bytes all the same.
                png: if tile.x() % 2 == 0 {
                    Arc::clone(&sea)
                } else {
                    Arc::new(format!("png {tile}").into_bytes())
                },
                single_colour: tile.x() % 2 == 0,
            })
            .collect()
    }

    #[test]
    fn the_mod_tile_layout_writes_one_meta_file_per_metatile_in_each_maps_folder() {
        let dir = tempfile::tempdir().unwrap();
        let layout = TileLayout::parse(MOD_TILE_LAYOUT).unwrap();
        assert!(layout.is_mod_tile() && layout.names_map());
        let (folder, inside) = layout.for_map("demo").split_folder();
        assert_eq!(folder, PathBuf::from("demo"));
        let store = TileStore::open(dir.path().join(&folder), inside).unwrap();
        assert!(!store.has_tile_files());
        let metatile = Metatile::containing(t(12, 2275, 1185), 8).unwrap();
        let tiles = rendered(&metatile);
        let stamp = SystemTime::now() - std::time::Duration::from_secs(60);
        let written = store.write_metatile(&metatile, &tiles, stamp).unwrap();
        assert_eq!(written.len(), 64);
        let meta = dir.path().join("demo/12/0/0/132/234/0.meta");
        for (_, path) in &written {
            assert_eq!(path.as_ref().unwrap(), &meta);
        }
        assert_eq!(
            files_in(dir.path()),
            std::slice::from_ref(&meta),
            "one file, no temporaries"
        );
        assert_eq!(fs::metadata(&meta).unwrap().modified().unwrap(), stamp);
        for tile in &tiles {
            assert_eq!(store.read(tile.tile).unwrap(), *tile.png);
            let found = store.lookup(tile.tile).unwrap();
            assert_eq!(found.path, meta);
            assert_eq!(found.png.as_deref(), Some(&*tile.png));
        }
        // Fresh by its stamp, and by planet-import-complete as mod_tile
        // judges it.
        assert!(store.fresh(t(12, 2275, 1185), stamp).is_some());
        assert!(store
            .fresh(t(12, 2275, 1185), stamp + std::time::Duration::from_secs(1))
            .is_none());
        store
            .publish_cut_off(stamp + std::time::Duration::from_secs(5))
            .unwrap();
        assert!(store.fresh(t(12, 2275, 1185), stamp).is_none());
        // Forced again: replaced, still one file; no temporary.
        let later = SystemTime::now();
        store.write_metatile(&metatile, &tiles, later).unwrap();
        assert_eq!(
            files_in(dir.path()).len(),
            2,
            "the .meta and planet-import-complete"
        );
        assert!(store.fresh(t(12, 2275, 1185), stamp).is_some());
        // A single tile cannot be written into a metatile file.
        let err = store.write(t(12, 2275, 1185), b"x", later).unwrap_err();
        assert!(err.to_string().contains("a metatile at a time"), "{err}");
        let asked = tiles.iter().find(|r| r.tile == t(12, 2275, 1185)).unwrap();
        assert_eq!(
            store.read(asked.tile).unwrap(),
            *asked.png,
            "still as it was"
        );
    }

    #[test]
    fn the_mod_tile_layout_refuses_what_its_paths_cannot_name_and_cleans_up_failed_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = TileStore::open(
            dir.path(),
            TileLayout::parse(MOD_TILE_LAYOUT)
                .unwrap()
                .for_map("m")
                .split_folder()
                .1,
        )
        .unwrap();
        let deep = Metatile::containing(t(21, 0, 0), 8).unwrap();
        let err = store
            .write_metatile(&deep, &rendered(&deep), SystemTime::now())
            .unwrap_err();
        assert!(err.to_string().contains("zoom levels 0 to 20"), "{err}");
        let small = Metatile::containing(t(12, 0, 0), 4).unwrap();
        let err = store
            .write_metatile(&small, &rendered(&small), SystemTime::now())
            .unwrap_err();
        assert!(err.to_string().contains("8×8"), "{err}");
        // A directory where the .meta file should go: the rename fails,
        // the temporary file is removed.
        let metatile = Metatile::containing(t(3, 0, 0), 8).unwrap();
        let blocker = store.path_of(t(3, 0, 0));
        fs::create_dir_all(blocker.join("in-the-way")).unwrap();
        let err = store
            .write_metatile(&metatile, &rendered(&metatile), SystemTime::now())
            .unwrap_err();
        assert!(err.to_string().starts_with("writing "), "{err}");
        let names: Vec<_> = fs::read_dir(blocker.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["0.meta"], "only the directory in the way");
        assert!(files_in(dir.path()).is_empty());
    }

    #[test]
    fn png_layouts_write_a_metatile_tile_by_tile_and_share_single_colour_tiles() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let store = TileStore::open(dir.path(), TileLayout::default()).unwrap();
        assert!(store.has_tile_files());
        let metatile = Metatile::containing(t(3, 0, 0), 8).unwrap();
        let tiles = rendered(&metatile);
        let written = store
            .write_metatile(&metatile, &tiles, SystemTime::now())
            .unwrap();
        assert_eq!(written.len(), 64);
        for ((tile, path), rendered) in written.iter().zip(&tiles) {
            let path = path.as_ref().unwrap();
            assert_eq!(path, &store.path_of(*tile));
            assert_eq!(fs::read(path).unwrap(), *rendered.png);
            assert!(store.lookup(*tile).unwrap().png.is_none());
        }
        let sea = fs::metadata(store.path_of(t(3, 0, 0))).unwrap();
        assert_eq!(sea.nlink(), 33, "32 sea tiles and the shared file");
    }

    /// Every file under `dir`, recursively, hidden ones included.
    fn files_in(dir: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(folder) = stack.pop() {
            for entry in fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    found.push(path);
                }
            }
        }
        found.sort();
        found
    }
}
