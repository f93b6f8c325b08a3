//! The demo map, carried inside the binary: the built-in configuration
//! serves it, so an installed or copied `tile-server` needs no build tree.
//!
//! Contract: [`unpack`] returns a folder holding `demo.xml` and its data,
//! byte for byte the repository's `data/demo/` at build time.
//!
//! - The folder is `$XDG_CACHE_HOME/tessera/demo-<hash of the files>` (or
//!   `$HOME/.cache/...`). It is written once, into a temporary folder that
//!   is then renamed into place (two servers starting together agree on
//!   one), and reused while its files are intact: their modification
//!   times, and with them the freshness of stored demo tiles, stay put
//!   between runs. Another build of the demo gets another folder.
//! - Without a usable cache folder (no `$HOME`, a read-only home under a
//!   sandbox), a private temporary folder (mode 0700, a new name that no
//!   one else can have made first) is used and removed when the returned
//!   [`DemoFolder`] is dropped. Its files are new each run, so the demo's
//!   stored tiles count as stale and are drawn again.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The demo's files, as `data/demo/` holds them.
const FILES: [(&str, &[u8]); 4] = [
    ("demo.xml", include_bytes!("../../../data/demo/demo.xml")),
    (
        "countries.gpkg",
        include_bytes!("../../../data/demo/countries.gpkg"),
    ),
    (
        "helsinki.gpkg",
        include_bytes!("../../../data/demo/helsinki.gpkg"),
    ),
    // The data's sources and licences (OpenStreetMap's asks for credit).
    ("README.md", include_bytes!("../../../data/demo/README.md")),
];

/// Where the demo's files are, for as long as this lives.
#[derive(Debug)]
pub struct DemoFolder {
    path: PathBuf,
    /// A temporary folder of this run, removed on drop.
    temporary: bool,
}

impl DemoFolder {
    /// The folder holding `demo.xml`.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DemoFolder {
    fn drop(&mut self) {
        if self.temporary {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Unpacks the demo into the cache folder, or a temporary one when there
/// is no usable cache.
pub fn unpack() -> io::Result<DemoFolder> {
    if let Some(cache) = cache_root() {
        match unpack_into_cache(&cache) {
            Ok(path) => {
                return Ok(DemoFolder {
                    path,
                    temporary: false,
                })
            }
            Err(e) => tracing::debug!(
                "cannot use {} for the demo map ({e}); unpacking it into a temporary folder",
                cache.display()
            ),
        }
    }
    let path = std::env::temp_dir().join(format!("tessera-demo-{}", unique()));
    create_private_dir(&path)?;
    let folder = DemoFolder {
        path,
        temporary: true,
    };
    write_files(folder.path())?;
    Ok(folder)
}

/// `$XDG_CACHE_HOME/tessera`, or `$HOME/.cache/tessera`.
fn cache_root() -> Option<PathBuf> {
    let absolute = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    absolute("XDG_CACHE_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".cache")))
        .map(|cache| cache.join("tessera"))
}

fn unpack_into_cache(cache: &Path) -> io::Result<PathBuf> {
    let folder = cache.join(format!("demo-{:016x}", content_hash()));
    if holds_the_demo(&folder) {
        return Ok(folder);
    }
    fs::create_dir_all(cache)?;
    let temp = cache.join(format!(".demo-{}.tmp", unique()));
    create_private_dir(&temp)?;
    let placed = write_files(&temp).and_then(|()| match fs::rename(&temp, &folder) {
        Ok(()) => Ok(()),
        // Another server put it there first, or a damaged copy is in the
        // way (a rename never replaces a folder that has files).
        Err(_) if holds_the_demo(&folder) => Ok(()),
        Err(_) => fs::remove_dir_all(&folder).and_then(|()| fs::rename(&temp, &folder)),
    });
    let _ = fs::remove_dir_all(&temp);
    placed.map(|()| folder)
}

/// Whether `folder` holds every demo file, intact.
fn holds_the_demo(folder: &Path) -> bool {
    FILES
        .iter()
        .all(|(name, bytes)| fs::read(folder.join(name)).is_ok_and(|found| found == *bytes))
}

fn write_files(folder: &Path) -> io::Result<()> {
    for (name, bytes) in FILES {
        fs::write(folder.join(name), bytes)?;
    }
    Ok(())
}

/// Makes a new folder only this user can enter; fails if the name exists
/// (so nobody can have prepared it).
fn create_private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().mode(0o700).create(path)
}

/// A name no other run has: the process id and the time.
fn unique() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

/// FNV-1a over the names and bytes: stable between builds and Rust
/// versions (std's hasher promises neither), so an unchanged demo keeps
/// its cache folder.
fn content_hash() -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, bytes) in FILES {
        for byte in name.bytes().chain([0]).chain(bytes.iter().copied()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_cache_is_written_once_and_repaired_when_damaged() {
        let cache = tempfile::tempdir().unwrap();
        let folder = unpack_into_cache(cache.path()).unwrap();
        assert!(holds_the_demo(&folder));
        let written = fs::metadata(folder.join("demo.xml"))
            .unwrap()
            .modified()
            .unwrap();
        // Reused as it is: the same files, the same times.
        assert_eq!(unpack_into_cache(cache.path()).unwrap(), folder);
        let again = fs::metadata(folder.join("demo.xml"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(written, again);
        // A damaged copy is replaced.
        fs::write(folder.join("helsinki.gpkg"), b"not a geopackage").unwrap();
        assert_eq!(unpack_into_cache(cache.path()).unwrap(), folder);
        assert!(holds_the_demo(&folder));
        // Nothing else is left in the cache.
        assert_eq!(fs::read_dir(cache.path()).unwrap().count(), 1);
    }
}
