//! mod_tile's `.meta` files: one file per 8×8 metatile, byte-compatible
//! with mod_tile 0.6 (`src/metatile.cpp`, `src/store_file.c`,
//! `src/store_file_utils.c`), so Apache's mod_tile serves what tessera
//! writes and renderd's tools (`render_list`, `render_expired`) read it.
//!
//! - **Path.** `<tile_dir>/<xmlname>/<z>/<h4>/<h3>/<h2>/<h1>/<h0>.meta`:
//!   the metatile's x and y (multiples of 8) are cut into 4-bit pieces and
//!   byte `hᵢ` is `(x nibble i) << 4 | (y nibble i)`, as mod_tile's
//!   `xyzo_to_meta` does. Five nibbles hold 20 bits, so the layout holds
//!   zoom levels 0 to 20 ([`MAX_ZOOM`], mod_tile's `MAX_ZOOM`); deeper
//!   tiles are refused, never written where another tile's file is.
//! - **File.** `"META"`, then `count` (64), `x`, `y`, `z` of the metatile
//!   (native-endian `int`s), then 64 `(offset, size)` entries (offsets from
//!   the start of the file), then the PNGs. Entry `i` is the tile at
//!   `(x + i / 8, y + i % 8)` and the PNGs follow in entry order. A tile
//!   outside the world (zoom 0-2, where the world is smaller than a
//!   metatile) has size 0, as renderd writes it.
//! - **Reading** follows `file_tile_read`: the header must be whole, the
//!   magic `META` (mod_tile's compressed `METZ` is refused with a clear
//!   error), `count` 64 and the entry inside the file; tessera also checks
//!   that the header names the metatile the path says.
//! - **Staleness for mod_tile.** mod_tile counts a tile as expired when its
//!   `.meta` file is older than `planet-import-complete` in the map's
//!   folder (or in the tile directory). tessera keeps that file's time at
//!   or after its map's cut-off ([`crate::generation`]), never moving it
//!   back, and counts it in its own freshness test too: an operator who
//!   touches it after an import expires tiles for both.
//!
//! Writing is done by [`super::TileStore`], atomically, as every tile
//! file: a temporary name beside the file, then a rename.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tile_math::{Metatile, TileCoord};

/// mod_tile's metatile size (`METATILE`): the layout holds 8×8 metatiles
/// only.
pub const METATILE: u32 = 8;

/// The deepest zoom level the layout can name.
pub const MAX_ZOOM: u8 = 20;

/// The file mod_tile compares tiles' times with.
pub const PLANET_TIMESTAMP: &str = "planet-import-complete";

const MAGIC: &[u8; 4] = b"META";
const MAGIC_COMPRESSED: &[u8; 4] = b"METZ";
const ENTRIES: usize = (METATILE * METATILE) as usize;
/// `sizeof(struct meta_layout)` (magic, count, x, y, z) plus the index.
pub const HEADER_LEN: usize = 20 + ENTRIES * 8;

/// The path of the `.meta` file holding `tile`, relative to the map's
/// folder.
pub fn relative_path(tile: TileCoord) -> PathBuf {
    let mask = METATILE - 1;
    let (mut x, mut y) = (tile.x() & !mask, tile.y() & !mask);
    let mut hash = [0u8; 5];
    for byte in &mut hash {
        *byte = (((x & 0x0f) << 4) | (y & 0x0f)) as u8;
        x >>= 4;
        y >>= 4;
    }
    PathBuf::from(format!(
        "{}/{}/{}/{}/{}/{}.meta",
        tile.z(),
        hash[4],
        hash[3],
        hash[2],
        hash[1],
        hash[0]
    ))
}

/// The tile's entry in its metatile's index.
pub fn index_of(tile: TileCoord) -> usize {
    let mask = METATILE - 1;
    ((tile.x() & mask) * METATILE + (tile.y() & mask)) as usize
}

/// Why a tile cannot be kept in this layout, if it cannot.
pub fn unsupported(tile: TileCoord) -> Option<String> {
    (tile.z() > MAX_ZOOM).then(|| {
        format!(
            "tile {tile}: mod_tile's .meta layout holds zoom levels 0 to {MAX_ZOOM} (its paths \
             have 20 bits of x and y)"
        )
    })
}

/// The bytes of a `.meta` file for `metatile` (which must be 8×8), with
/// the PNG of each tile given; tiles not given get an empty entry.
pub fn encode(metatile: &Metatile, tiles: &[(TileCoord, &[u8])]) -> Vec<u8> {
    let mut slots: [&[u8]; ENTRIES] = [&[]; ENTRIES];
    for (tile, png) in tiles {
        if metatile.contains(*tile) {
            slots[index_of(*tile)] = png;
        }
    }
    let total = HEADER_LEN + slots.iter().map(|s| s.len()).sum::<usize>();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    for value in [
        ENTRIES as i32,
        metatile.x() as i32,
        metatile.y() as i32,
        i32::from(metatile.z()),
    ] {
        out.extend_from_slice(&value.to_ne_bytes());
    }
    let mut offset = HEADER_LEN;
    for slot in &slots {
        out.extend_from_slice(&(offset as i32).to_ne_bytes());
        out.extend_from_slice(&(slot.len() as i32).to_ne_bytes());
        offset += slot.len();
    }
    for slot in &slots {
        out.extend_from_slice(slot);
    }
    out
}

/// Reads one tile's PNG from a `.meta` file: `Ok(None)` when the file
/// does not exist or its entry for the tile is empty; an error when the
/// file is not a whole, uncompressed `.meta` of the tile's metatile.
pub fn read_tile(path: &Path, tile: TileCoord) -> io::Result<Option<Vec<u8>>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut header = vec![0u8; HEADER_LEN];
    file.read_exact(&mut header).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            invalid("too small to hold a metatile header")
        } else {
            e
        }
    })?;
    let int = |at: usize| {
        let mut bytes = [0u8; 4];
        bytes.copy_from_slice(&header[at..at + 4]);
        i32::from_ne_bytes(bytes)
    };
    match &header[..4] {
        magic if magic == MAGIC => {}
        magic if magic == MAGIC_COMPRESSED => {
            return Err(invalid(
                "a compressed (METZ) metatile, which tessera does not read",
            ))
        }
        _ => return Err(invalid("not a metatile (no META magic)")),
    }
    if int(4) != ENTRIES as i32 {
        return Err(invalid("its count is not 64 (mod_tile's 8×8 metatiles)"));
    }
    let mask = METATILE - 1;
    let expected = (
        (tile.x() & !mask) as i32,
        (tile.y() & !mask) as i32,
        i32::from(tile.z()),
    );
    if (int(8), int(12), int(16)) != expected {
        return Err(invalid("its header names another metatile"));
    }
    let entry = 20 + index_of(tile) * 8;
    let (offset, size) = (int(entry), int(entry + 4));
    if size == 0 {
        return Ok(None);
    }
    let (Ok(offset), Ok(size)) = (u64::try_from(offset), usize::try_from(size)) else {
        return Err(invalid("a negative offset or size in its index"));
    };
    let length = file.metadata()?.len();
    if offset.saturating_add(size as u64) > length {
        return Err(invalid("an index entry past the end of the file"));
    }
    file.seek(SeekFrom::Start(offset))?;
    let mut png = vec![0u8; size];
    file.read_exact(&mut png)?;
    Ok(Some(png))
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// The time mod_tile compares tiles with: `planet-import-complete` in the
/// map's folder, else in the tile directory above it; `None` without one.
pub fn planet_time(map_folder: &Path) -> Option<SystemTime> {
    let here = map_folder.join(PLANET_TIMESTAMP);
    let above = map_folder.parent().map(|p| p.join(PLANET_TIMESTAMP));
    std::iter::once(here)
        .chain(above)
        .find_map(|path| fs::metadata(path).and_then(|m| m.modified()).ok())
}

/// Makes `planet-import-complete` in the map's folder at least as new as
/// `cut_off` (created if missing; never moved back).
pub fn publish_cut_off(map_folder: &Path, cut_off: SystemTime) -> io::Result<()> {
    let path = map_folder.join(PLANET_TIMESTAMP);
    if let Ok(modified) = fs::metadata(&path).and_then(|m| m.modified()) {
        if modified >= cut_off {
            return Ok(());
        }
    }
    fs::create_dir_all(map_folder)?;
    let file = File::options().create(true).append(true).open(&path)?;
    file.set_modified(cut_off)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(z: u8, x: u32, y: u32) -> TileCoord {
        TileCoord::new(z, x, y).unwrap()
    }

    #[test]
    fn paths_follow_mod_tiles_hash() {
        // Worked by hand from xyzo_to_meta: x = 58000 (0xE290), y = 25480
        // (0x6388) → nibbles from the lowest: (0,8) (9,8) (2,3) (E,6) (0,0)
        // → 8, 152, 35, 230, 0.
        assert_eq!(
            relative_path(t(16, 58001, 25480)),
            PathBuf::from("16/0/230/35/152/8.meta")
        );
        assert_eq!(relative_path(t(0, 0, 0)), PathBuf::from("0/0/0/0/0/0.meta"));
        // Every tile of a metatile shares its file.
        assert_eq!(
            relative_path(t(12, 2272, 1184)),
            relative_path(t(12, 2279, 1191))
        );
        assert_ne!(
            relative_path(t(12, 2272, 1184)),
            relative_path(t(12, 2280, 1184))
        );
        assert_eq!(index_of(t(12, 2272, 1184)), 0);
        assert_eq!(index_of(t(12, 2272, 1185)), 1, "y runs fastest");
        assert_eq!(index_of(t(12, 2273, 1184)), 8);
        assert_eq!(index_of(t(12, 2279, 1191)), 63);
        assert!(unsupported(t(20, 0, 0)).is_none());
        assert!(unsupported(t(21, 0, 0)).unwrap().contains("0 to 20"));
    }

    #[test]
    fn the_file_is_laid_out_as_metatile_save_writes_it() {
        let meta = Metatile::containing(t(3, 5, 2), 8).unwrap();
        let pngs: Vec<(TileCoord, Vec<u8>)> = meta
            .tiles()
            .map(|tile| (tile, format!("png {}/{}", tile.x(), tile.y()).into_bytes()))
            .collect();
        let given: Vec<(TileCoord, &[u8])> = pngs.iter().map(|(t, p)| (*t, &p[..])).collect();
        let bytes = encode(&meta, &given);
        let int = |at: usize| i32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap());
        assert_eq!(&bytes[..4], b"META");
        assert_eq!((int(4), int(8), int(12), int(16)), (64, 0, 0, 3));
        // Entry 0 is (0,0) right after the header; entry 1 is (0,1).
        assert_eq!((int(20), int(24)), (HEADER_LEN as i32, 7));
        assert_eq!(&bytes[HEADER_LEN..HEADER_LEN + 7], b"png 0/0");
        assert_eq!(int(28), HEADER_LEN as i32 + 7);
        assert_eq!(&bytes[HEADER_LEN + 7..HEADER_LEN + 14], b"png 0/1");
        let total: usize = pngs.iter().map(|(_, p)| p.len()).sum();
        assert_eq!(bytes.len(), HEADER_LEN + total);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.meta");
        fs::write(&path, &bytes).unwrap();
        for (tile, png) in &pngs {
            assert_eq!(read_tile(&path, *tile).unwrap().as_ref(), Some(png));
        }
    }

    #[test]
    fn below_zoom_3_the_world_fills_part_of_the_metatile_and_the_rest_is_empty() {
        let meta = Metatile::containing(t(1, 0, 0), 8).unwrap();
        let tiles: Vec<TileCoord> = meta.tiles().collect();
        assert_eq!(tiles.len(), 4);
        let given: Vec<(TileCoord, &[u8])> = tiles.iter().map(|t| (*t, &b"ab"[..])).collect();
        let bytes = encode(&meta, &given);
        assert_eq!(bytes.len(), HEADER_LEN + 8);
        let int = |at: usize| i32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap());
        // (0,0) (0,1), then (0,2)..(0,7) empty at the running offset.
        assert_eq!((int(20), int(24)), (HEADER_LEN as i32, 2));
        assert_eq!((int(28), int(32)), (HEADER_LEN as i32 + 2, 2));
        assert_eq!((int(36), int(40)), (HEADER_LEN as i32 + 4, 0));
        // (1,0) is entry 8.
        assert_eq!((int(20 + 64), int(24 + 64)), (HEADER_LEN as i32 + 4, 2));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.meta");
        fs::write(&path, &bytes).unwrap();
        assert_eq!(read_tile(&path, t(1, 1, 1)).unwrap(), Some(b"ab".to_vec()));
    }

    #[test]
    fn broken_files_are_errors_that_say_why_and_missing_ones_are_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.meta");
        let tile = t(3, 0, 0);
        assert_eq!(read_tile(&path, tile).unwrap(), None);
        let meta = Metatile::containing(tile, 8).unwrap();
        let good = encode(&meta, &[(tile, b"png")]);
        for (bytes, why) in [
            (good[..100].to_vec(), "too small"),
            ([b"METZ", &good[4..]].concat(), "compressed"),
            ([b"PNG!", &good[4..]].concat(), "no META magic"),
            (good[..good.len() - 1].to_vec(), "past the end"),
        ] {
            fs::write(&path, bytes).unwrap();
            let err = read_tile(&path, tile).unwrap_err().to_string();
            assert!(err.contains(why), "{why}: {err}");
        }
        fs::write(&path, &good).unwrap();
        assert_eq!(read_tile(&path, tile).unwrap(), Some(b"png".to_vec()));
        assert_eq!(
            read_tile(&path, t(3, 0, 1)).unwrap(),
            None,
            "an empty entry"
        );
        // Another metatile's file where this one's should be.
        let other = encode(&Metatile::containing(t(4, 8, 0), 8).unwrap(), &[]);
        fs::write(&path, other).unwrap();
        let err = read_tile(&path, tile).unwrap_err().to_string();
        assert!(err.contains("another metatile"), "{err}");
    }

    #[test]
    fn the_planet_timestamp_only_moves_forward() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("demo");
        assert_eq!(planet_time(&folder), None);
        let early = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        let late = early + std::time::Duration::from_secs(3600);
        publish_cut_off(&folder, late).unwrap();
        assert_eq!(planet_time(&folder), Some(late));
        publish_cut_off(&folder, early).unwrap();
        assert_eq!(planet_time(&folder), Some(late), "never moved back");
        // One in the tile directory counts when the map has none.
        fs::remove_file(folder.join(PLANET_TIMESTAMP)).unwrap();
        let above = dir.path().join(PLANET_TIMESTAMP);
        fs::write(&above, "").unwrap();
        File::options()
            .append(true)
            .open(&above)
            .unwrap()
            .set_modified(early)
            .unwrap();
        assert_eq!(planet_time(&folder), Some(early));
    }

    #[test]
    fn files_renderd_wrote_are_read_and_written_again_byte_for_byte() {
        // testdata/mod_tile/README.md says how Debian's renderd 0.6.1 made
        // them.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/mod_tile");
        for (name, z, real_tiles) in [
            ("renderd-0.6.1-z1-0-0.meta", 1, 4),
            ("renderd-0.6.1-z3-0-0.meta", 3, 64),
        ] {
            let path = dir.join(name);
            let golden = fs::read(&path).unwrap();
            let metatile = Metatile::containing(t(z, 0, 0), METATILE).unwrap();
            let pngs: Vec<(TileCoord, Vec<u8>)> = metatile
                .tiles()
                .map(|tile| (tile, read_tile(&path, tile).unwrap().unwrap()))
                .collect();
            assert_eq!(pngs.len(), real_tiles, "{name}");
            assert!(
                pngs.iter().all(|(_, png)| png.starts_with(b"\x89PNG")),
                "{name}"
            );
            let given: Vec<(TileCoord, &[u8])> =
                pngs.iter().map(|(tile, png)| (*tile, &png[..])).collect();
            assert!(
                encode(&metatile, &given) == golden,
                "{name}: not byte-identical"
            );
            // Its place in the store is renderd's.
            assert_eq!(
                relative_path(t(z, 1, 1)),
                PathBuf::from(format!("{z}/0/0/0/0/0.meta"))
            );
        }
    }
}
