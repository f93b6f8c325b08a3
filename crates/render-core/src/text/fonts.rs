//! The font book: every font face the system and the style's font
//! directories offer, found by the names Mapnik gives them, and chains of
//! faces for fallback.
//!
//! Mapnik names a face by FreeType's family and style names joined with a
//! space: "DejaVu Sans Book", "Noto Sans CJK JP Regular". A face is
//! registered under its legacy name pair (name IDs 1 and 2) and, when the
//! font has them, under its typographic pair (IDs 16 and 17), so either
//! spelling finds it. Files are discovered with fontdb; a face's bytes are
//! read only when the face is first used, then kept for the book's life.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustybuzz::ttf_parser::{self, name_id};

/// One face the book knows.
#[derive(Debug)]
struct FaceEntry {
    /// The face's Mapnik name (legacy family + style).
    name: String,
    path: PathBuf,
    index: u32,
    /// Its file's bytes, read on first use (shared by the faces of a
    /// collection).
    data: OnceLock<Option<Arc<Vec<u8>>>>,
}

/// A face in a [`FontBook`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FaceId(pub(crate) u32);

/// Faces to try in order, per character: the first that has a glyph for a
/// character draws it (Mapnik's fontset fallback).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FontChain(pub(crate) Vec<FaceId>);

impl FontChain {
    /// The faces, in order.
    pub fn faces(&self) -> &[FaceId] {
        &self.0
    }

    /// Whether it has no face at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Every face available to a map, by Mapnik name. Shared read-only by the
/// workers.
#[derive(Debug, Default)]
pub struct FontBook {
    faces: Vec<FaceEntry>,
    by_name: HashMap<String, FaceId>,
    /// Bytes of each file read so far, shared by the faces of a collection.
    files: std::sync::Mutex<HashMap<PathBuf, Option<Arc<Vec<u8>>>>>,
}

impl FontBook {
    /// The system's fonts and those under `dirs` (a style's
    /// `font-directory`). A face in `dirs` wins over a system face of the
    /// same name, as a style's own fonts should.
    pub fn new(dirs: &[PathBuf]) -> FontBook {
        let mut db = fontdb::Database::new();
        db.load_system_fonts();
        let system: Vec<fontdb::ID> = db.faces().map(|f| f.id).collect();
        for dir in dirs {
            db.load_fonts_dir(dir);
        }
        let mut book = FontBook::default();
        // Style directories first, so their names take precedence.
        let (own, sys): (Vec<&fontdb::FaceInfo>, Vec<&fontdb::FaceInfo>) =
            db.faces().partition(|f| !system.contains(&f.id));
        for info in own.into_iter().chain(sys) {
            let fontdb::Source::File(path) = &info.source else {
                continue;
            };
            book.add_file_face(path, info.index);
        }
        book
    }

    /// Only the fonts under `dirs`, without the system's (for tests that
    /// must not depend on what a machine has installed).
    pub fn from_dirs(dirs: &[PathBuf]) -> FontBook {
        let mut db = fontdb::Database::new();
        for dir in dirs {
            db.load_fonts_dir(dir);
        }
        let mut book = FontBook::default();
        for info in db.faces() {
            if let fontdb::Source::File(path) = &info.source {
                book.add_file_face(path, info.index);
            }
        }
        book
    }

    fn add_file_face(&mut self, path: &Path, index: u32) {
        let Ok(bytes) = std::fs::read(path) else {
            return;
        };
        let Ok(face) = ttf_parser::Face::parse(&bytes, index) else {
            return;
        };
        let names = mapnik_names(&face);
        let Some(first) = names.first().cloned() else {
            return;
        };
        let id = FaceId(self.faces.len() as u32);
        for name in names {
            self.by_name.entry(name).or_insert(id);
        }
        self.faces.push(FaceEntry {
            name: first,
            path: path.to_path_buf(),
            index,
            data: OnceLock::new(),
        });
    }

    /// The face Mapnik would find under `face_name`, if any.
    pub fn find(&self, face_name: &str) -> Option<FaceId> {
        self.by_name.get(face_name).copied()
    }

    /// The faces for `names` in order, and the names that were not found.
    pub fn chain(&self, names: &[String]) -> (FontChain, Vec<String>) {
        let mut chain = Vec::new();
        let mut missing = Vec::new();
        for name in names {
            match self.find(name) {
                Some(id) if !chain.contains(&id) => chain.push(id),
                Some(_) => {}
                None => missing.push(name.clone()),
            }
        }
        (FontChain(chain), missing)
    }

    /// The Mapnik name of a face.
    pub fn name(&self, id: FaceId) -> &str {
        self.faces
            .get(id.0 as usize)
            .map_or("", |f| f.name.as_str())
    }

    /// Every face name the book answers to, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// How many faces it has.
    pub fn len(&self) -> usize {
        self.faces.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.faces.is_empty()
    }

    /// The face's file bytes and its index in the file; `None` if the file
    /// cannot be read any more.
    pub(crate) fn data(&self, id: FaceId) -> Option<(&[u8], u32)> {
        let entry = self.faces.get(id.0 as usize)?;
        let data = entry.data.get_or_init(|| {
            let mut files = self
                .files
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            files
                .entry(entry.path.clone())
                .or_insert_with(|| std::fs::read(&entry.path).ok().map(Arc::new))
                .clone()
        });
        data.as_ref().map(|d| (d.as_slice(), entry.index))
    }
}

/// The names Mapnik may use for a face: legacy family + subfamily, then
/// typographic family + subfamily when present.
fn mapnik_names(face: &ttf_parser::Face<'_>) -> Vec<String> {
    let get = |id: u16| -> Option<String> {
        face.names()
            .into_iter()
            .filter(|n| n.name_id == id)
            .find_map(|n| {
                // Prefer the English (or language-neutral) record.
                (n.is_unicode() && (n.language_id == 0x0409 || n.language_id == 0))
                    .then(|| n.to_string())
                    .flatten()
            })
            .or_else(|| {
                face.names()
                    .into_iter()
                    .filter(|n| n.name_id == id)
                    .find_map(|n| n.to_string())
            })
    };
    let mut names = Vec::new();
    if let (Some(family), Some(style)) = (get(name_id::FAMILY), get(name_id::SUBFAMILY)) {
        names.push(format!("{family} {style}"));
    }
    if let (Some(family), Some(style)) = (
        get(name_id::TYPOGRAPHIC_FAMILY),
        get(name_id::TYPOGRAPHIC_SUBFAMILY),
    ) {
        let name = format!("{family} {style}");
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}
