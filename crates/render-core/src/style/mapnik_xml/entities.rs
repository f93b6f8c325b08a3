//! DOCTYPE, entities and XInclude: a style split over several files becomes
//! the one XML text that roxmltree parses, with a map back to the files.
//!
//! Contract:
//! - [`expand`] returns `None` for a document without a DOCTYPE that does not
//!   mention XInclude: it is parsed as it is (the fast path, unchanged).
//! - Otherwise it returns the document without its DOCTYPE, with every
//!   general entity reference replaced (in content and in attribute values)
//!   and every `<xi:include>` element replaced by what it includes, plus a
//!   [`SourceMap`] from byte offsets of that text to the file, line and
//!   column the bytes came from (an included file, or the DTD literal of an
//!   internal entity).
//! - Declarations: `<!ENTITY n "v">`, `<!ENTITY n SYSTEM "f">` (`PUBLIC "id"
//!   "f"` uses `f`), `<!ENTITY % n "v">`, `<!ENTITY % n SYSTEM "f">`; `%n;`
//!   between declarations (an external one's text is more DTD) and inside
//!   entity values; the DOCTYPE's own external subset. The first declaration
//!   of a name wins (a later one is a warning). Comments and processing
//!   instructions are skipped; `<!ELEMENT>`, `<!ATTLIST>` and `<!NOTATION>`
//!   are skipped with a warning (Mapnik's libxml2 options apply no DTD
//!   attribute defaults either); conditional sections are errors.
//! - References: the five predefined entities and character references are
//!   left to roxmltree. Internal entities work in content and attribute
//!   values, external ones in content only (as XML says). Character
//!   references inside entity values are replaced when the entity is
//!   declared (so `&#38;#38;` is how a value holds a literal `&`), as XML
//!   and libxml2 do.
//! - XInclude (Mapnik's libxml2 loader runs `xmlXIncludeProcessFlags`):
//!   `<xi:include href="f"/>` with `parse="xml"` (the default: the included
//!   document, its own DOCTYPE expanded, replaces the element) or
//!   `parse="text"`; `xpointer`, fragments and `<xi:fallback>` are errors.
//! - Files: local paths only. A `SYSTEM` path or `href` is relative to the
//!   file that holds the declaration or element. A URL (`scheme:...`, `file:`
//!   included) is an error; a relative path must not lexically leave the root
//!   folder (the top-level style's folder, or the `from_str` base folder); an
//!   absolute path is allowed and its folder is the root for the relative
//!   paths inside that file.
//! - Limits, each an error naming the reference, its file and line:
//!   [`MAX_EXPANDED_BYTES`] of text brought in by references and includes
//!   (checked before an internal entity is expanded, so an entity bomb is
//!   refused at once), [`MAX_NESTING`] nested references, [`MAX_REFERENCES`]
//!   references in all, and loops (a reference to an entity or file that is
//!   being expanded).
//! - Every error is [`Error::Xml`] at the place of the reference, declaration
//!   or element at fault. A missing or unreadable file is an error too
//!   (libxml2 only warns, and Mapnik hides its warnings).
//! - [`SourceMap::of_text`] is the map of a text that was not expanded: the
//!   loader uses a map in both cases, for positions in O(log n).

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use crate::error::{Error, Location, Result};
use crate::style::StyleWarning;

/// The most text that entity references and includes may bring in, all
/// counted each time they are expanded (64 MiB; `docs/styles.md`).
pub(crate) const MAX_EXPANDED_BYTES: usize = 64 * 1024 * 1024;

/// How deep references and includes may nest.
pub(crate) const MAX_NESTING: usize = 32;

/// How many entity references and includes a style may expand in all.
pub(crate) const MAX_REFERENCES: usize = 1_000_000;

const XINCLUDE_NAMESPACES: [&str; 2] = [
    "http://www.w3.org/2001/XInclude",
    "http://www.w3.org/2003/XInclude",
];

const PREDEFINED: [&str; 5] = ["lt", "gt", "amp", "apos", "quot"];

/// The expanded document.
#[derive(Debug)]
pub(crate) struct Expanded {
    /// One XML document without a DOCTYPE.
    pub(crate) text: String,
    /// Where each byte of `text` came from.
    pub(crate) map: SourceMap,
    /// Declarations that were ignored.
    pub(crate) warnings: Vec<StyleWarning>,
}

/// Expands `xml` (without a byte-order mark) whose file is `file` (`None`
/// for a string); `root` is the folder that relative paths must stay in.
/// `None`: nothing to expand.
pub(crate) fn expand(xml: &str, file: Option<&Path>, root: &Path) -> Result<Option<Expanded>> {
    if prolog(xml).doctype.is_none() && !xml.contains("XInclude") {
        return Ok(None);
    }
    let mut ex = Expander::default();
    let (main, text) = ex.add_file(
        file.map(Path::to_path_buf),
        Rc::from(xml),
        root.to_path_buf(),
        Vec::new(),
    );
    if let Some(path) = file {
        // An include of the style itself is a loop.
        ex.file_ids.insert(path.to_path_buf(), main);
        ex.active.push(Active {
            kind: Kind::Include,
            name: path.display().to_string(),
        });
        ex.outer = 1;
    }
    ex.document(text, true)?;
    Ok(Some(Expanded {
        text: ex.out,
        map: ex.map,
        warnings: ex.warnings,
    }))
}

// ---------------------------------------------------------------- source map

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FileId(usize);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct TextId(usize);

/// A place in a text being scanned.
#[derive(Debug, Clone, Copy)]
struct At {
    text: TextId,
    pos: usize,
}

/// Maps byte offsets of the expanded text to files, lines and columns.
///
/// Two levels keep it small: the output is a list of segments, each a run
/// of one *text* (a file, or the replacement text of an internal entity),
/// and each text is a list of pieces, each a run of one file.
#[derive(Debug, Default)]
pub(crate) struct SourceMap {
    files: Vec<SourceFile>,
    /// The pieces of each text, by `TextId`, sorted by `start`.
    pieces: Vec<Vec<Piece>>,
    /// Sorted by `out`.
    segments: Vec<Segment>,
}

#[derive(Debug)]
struct SourceFile {
    /// `None` for a style given as a string.
    path: Option<PathBuf>,
    text: Rc<str>,
    line_starts: Vec<usize>,
    /// The folder relative paths in this file must stay in.
    root: PathBuf,
    /// This file's folder below `root`.
    dir: Vec<OsString>,
}

/// From `start` on, a text's bytes come from `file` at `offset` (one byte
/// for one byte when `linear`, else all from that one place).
#[derive(Debug, Clone, Copy)]
struct Piece {
    start: usize,
    file: FileId,
    offset: usize,
    linear: bool,
}

/// From `out` on, the output's bytes are `text` from `local` on (or all
/// stand for that one place when not `linear`: an escape).
#[derive(Debug, Clone, Copy)]
struct Segment {
    out: usize,
    text: TextId,
    local: usize,
    linear: bool,
}

impl SourceMap {
    /// The map of a text that is one file as it is (`file`: `None` for a
    /// string).
    pub(crate) fn of_text(text: &str, file: Option<PathBuf>) -> SourceMap {
        let mut ex = Expander::default();
        let (_, text) = ex.add_file(file, Rc::from(text), PathBuf::new(), Vec::new());
        ex.map.segments.push(Segment {
            out: 0,
            text,
            local: 0,
            linear: true,
        });
        ex.map
    }

    /// Where byte `out` of the expanded text came from.
    /// The files the text came from, the main file first (none for a
    /// style given as a string).
    pub(crate) fn file_paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().filter_map(|f| f.path.as_deref())
    }

    pub(crate) fn location(&self, out: usize) -> Location {
        let i = self.segments.partition_point(|s| s.out <= out);
        match i.checked_sub(1).and_then(|i| self.segments.get(i)) {
            Some(seg) => {
                let local = seg.local + if seg.linear { out - seg.out } else { 0 };
                self.text_location(seg.text, local)
            }
            None => self.file_location(FileId(0), 0),
        }
    }

    fn origin(&self, text: TextId, local: usize) -> (FileId, usize) {
        let Some(pieces) = self.pieces.get(text.0) else {
            return (FileId(0), 0);
        };
        let i = pieces.partition_point(|p| p.start <= local);
        match i.checked_sub(1).and_then(|i| pieces.get(i)) {
            Some(p) => (
                p.file,
                p.offset + if p.linear { local - p.start } else { 0 },
            ),
            None => (FileId(0), 0),
        }
    }

    fn text_location(&self, text: TextId, local: usize) -> Location {
        let (file, offset) = self.origin(text, local);
        self.file_location(file, offset)
    }

    fn file_location(&self, file: FileId, offset: usize) -> Location {
        let Some(f) = self.files.get(file.0) else {
            return Location {
                file: None,
                line: 1,
                column: 1,
            };
        };
        let mut offset = offset.min(f.text.len());
        while !f.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = f.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = f.line_starts.get(line - 1).copied().unwrap_or(0);
        let column = f.text.get(start..offset).map_or(0, |s| s.chars().count()) + 1;
        Location {
            file: f.path.clone(),
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }
}

/// The byte offset of a 1-based row and column (in characters) of `text`.
pub(crate) fn offset_of(text: &str, row: u32, col: u32) -> usize {
    let mut line_start = 0;
    for _ in 1..row {
        match text[line_start..].find('\n') {
            Some(n) => line_start += n + 1,
            None => return text.len(),
        }
    }
    let skip = usize::try_from(col.saturating_sub(1)).unwrap_or(usize::MAX);
    text[line_start..]
        .char_indices()
        .nth(skip)
        .map_or(text.len(), |(i, _)| line_start + i)
}

// ------------------------------------------------------------------ scanning

/// The XML declaration's end and the DOCTYPE's start, if the prolog has one.
#[derive(Debug, PartialEq)]
struct Prolog {
    decl_end: usize,
    doctype: Option<usize>,
}

fn prolog(s: &str) -> Prolog {
    let mut i = 0;
    let after_xml = s.as_bytes().get(5).copied();
    if s.starts_with("<?xml") && matches!(after_xml, Some(b' ' | b'\t' | b'\r' | b'\n' | b'?')) {
        if let Some(e) = s.find("?>") {
            i = e + 2;
        }
    }
    let decl_end = i;
    loop {
        i = skip_ws(s, i, s.len());
        let rest = &s[i..];
        let end = if rest.starts_with("<!DOCTYPE") {
            return Prolog {
                decl_end,
                doctype: Some(i),
            };
        } else if rest.starts_with("<!--") {
            find(s, i + 4, s.len(), "-->").map(|e| e + 3)
        } else if rest.starts_with("<?") {
            find(s, i + 2, s.len(), "?>").map(|e| e + 2)
        } else {
            None
        };
        match end {
            Some(e) => i = e,
            None => {
                return Prolog {
                    decl_end,
                    doctype: None,
                }
            }
        }
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn skip_ws(s: &str, mut i: usize, to: usize) -> usize {
    let b = s.as_bytes();
    while i < to && b.get(i).is_some_and(|&c| is_ws(c)) {
        i += 1;
    }
    i
}

/// The first `pat` in `s[from..to]`, as an offset of `s`.
fn find(s: &str, from: usize, to: usize, pat: &str) -> Option<usize> {
    s.get(from..to)?.find(pat).map(|k| from + k)
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || !c.is_ascii()
}

fn is_name_char(c: char) -> bool {
    is_name_start(c) || c.is_ascii_digit() || c == '-' || c == '.'
}

/// The end of the XML name starting at `from` (`from` itself when there is
/// none).
fn name_end(s: &str, from: usize, to: usize) -> usize {
    let Some(rest) = s.get(from..to) else {
        return from;
    };
    let mut chars = rest.char_indices();
    match chars.next() {
        Some((_, c)) if is_name_start(c) => {}
        _ => return from,
    }
    for (k, c) in chars {
        if !is_name_char(c) {
            return from + k;
        }
    }
    to
}

/// What an `&` starts.
#[derive(Debug, PartialEq)]
enum Ref {
    /// `&name;` of a declared-or-not general entity; the `;` is at the
    /// given offset.
    Named(usize),
    /// A predefined entity or a character reference, ending before the
    /// given offset: roxmltree's business.
    Other(usize),
    /// Not a reference: left for roxmltree to complain about.
    Malformed,
}

fn reference(s: &str, i: usize, to: usize) -> Ref {
    let b = s.as_bytes();
    if b.get(i + 1) == Some(&b'#') {
        return match char_ref(s, i, to) {
            Some((_, end)) => Ref::Other(end),
            None => Ref::Malformed,
        };
    }
    let ne = name_end(s, i + 1, to);
    if ne == i + 1 || ne >= to || b.get(ne) != Some(&b';') {
        return Ref::Malformed;
    }
    if PREDEFINED.contains(&&s[i + 1..ne]) {
        Ref::Other(ne + 1)
    } else {
        Ref::Named(ne)
    }
}

/// A character reference `&#...;` at `i`: its character and where it ends.
fn char_ref(s: &str, i: usize, to: usize) -> Option<(char, usize)> {
    let semi = find(s, i, to.min(i + 12), ";")?;
    let body = s.get(i + 2..semi)?;
    let code = match body.strip_prefix('x') {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => body.parse::<u32>().ok()?,
    };
    let c = char::from_u32(code)?;
    let xml_char =
        matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}');
    xml_char.then_some((c, semi + 1))
}

/// An attribute value with only predefined entities and character
/// references decoded; `None` when it holds a named entity reference.
fn decode_plain(v: &str) -> Option<String> {
    let mut out = String::with_capacity(v.len());
    let mut i = 0;
    while let Some(k) = find(v, i, v.len(), "&") {
        out.push_str(&v[i..k]);
        match reference(v, k, v.len()) {
            Ref::Other(end) => {
                let body = &v[k + 1..end - 1];
                match body {
                    "lt" => out.push('<'),
                    "gt" => out.push('>'),
                    "amp" => out.push('&'),
                    "apos" => out.push('\''),
                    "quot" => out.push('"'),
                    _ => out.push(char_ref(v, k, v.len())?.0),
                }
                i = end;
            }
            _ => return None,
        }
    }
    out.push_str(&v[i..]);
    Some(out)
}

fn is_url(s: &str) -> bool {
    match s.find(':') {
        // One letter is a drive, not a scheme.
        Some(n) if n >= 2 => {
            let scheme = &s[..n];
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        _ => false,
    }
}

fn is_utf8_name(encoding: &str) -> bool {
    matches!(
        encoding.to_ascii_lowercase().as_str(),
        "utf-8" | "utf8" | "us-ascii" | "ascii"
    )
}

/// A short excerpt of `s` at `i` for messages.
fn snippet(s: &str, i: usize) -> String {
    s[i..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .take(12)
        .collect()
}

/// Lexically normalised absolute path (`..` and `.` resolved).
fn normalize_absolute(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

// ------------------------------------------------------------------ expander

/// Where a file named by an entity or include is, and the rules for the
/// relative paths in it.
#[derive(Debug)]
struct Resolved {
    path: PathBuf,
    root: PathBuf,
    dir: Vec<OsString>,
}

#[derive(Debug)]
struct Entity {
    name: String,
    param: bool,
    value: Value,
    declared: At,
    /// The document (main or xi:included) it belongs to.
    scope: usize,
}

#[derive(Debug)]
enum Value {
    Internal(TextId),
    External {
        system: String,
        declared_in: FileId,
        /// `NDATA`: not XML, cannot be referenced.
        unparsed: bool,
    },
}

/// The entities of one document, by name.
#[derive(Debug, Default)]
struct Scope {
    general: HashMap<String, usize>,
    param: HashMap<String, usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    General,
    Param,
    Subset,
    Include,
}

/// A reference or include being expanded.
#[derive(Debug)]
struct Active {
    kind: Kind,
    name: String,
}

impl Active {
    fn display(kind: Kind, name: &str) -> String {
        match kind {
            Kind::General => format!("&{name};"),
            Kind::Param => format!("%{name};"),
            Kind::Subset | Kind::Include => name.to_string(),
        }
    }
}

/// A namespace prefix bound by an open element.
#[derive(Debug)]
struct Binding {
    depth: usize,
    /// `""` for the default namespace.
    prefix: String,
    xinclude: bool,
}

/// A replacement text being built.
#[derive(Debug, Default)]
struct Builder {
    s: String,
    pieces: Vec<Piece>,
}

fn push_piece(pieces: &mut Vec<Piece>, p: Piece) {
    if let Some(last) = pieces.last_mut() {
        if last.start == p.start {
            *last = p;
            return;
        }
        if last.linear
            && p.linear
            && last.file == p.file
            && last.offset + (p.start - last.start) == p.offset
        {
            return;
        }
    }
    pieces.push(p);
}

/// An attribute of a start tag: byte ranges of its name and value.
#[derive(Debug, Clone, Copy)]
struct Attr {
    name: (usize, usize),
    value: (usize, usize),
}

#[derive(Debug, Default)]
struct Expander {
    map: SourceMap,
    /// The texts, by `TextId` (the pieces are in `map`).
    texts: Vec<Rc<str>>,
    /// The whole text of each file, by `FileId`.
    file_texts: Vec<TextId>,
    file_ids: HashMap<PathBuf, FileId>,
    out: String,
    entities: Vec<Entity>,
    scopes: Vec<Scope>,
    scope: usize,
    active: Vec<Active>,
    /// Entries of `active` that are not nesting (the style file itself).
    outer: usize,
    /// Bytes brought in by references and includes so far.
    expanded: usize,
    references: usize,
    /// Expanded size and reference count of internal general entities.
    estimates: HashMap<usize, (usize, usize)>,
    estimating: HashSet<usize>,
    warnings: Vec<StyleWarning>,
    /// Open elements, and the namespace prefixes they bind.
    depth: usize,
    bindings: Vec<Binding>,
}

impl Expander {
    // ------------------------------------------------------------ helpers

    fn add_file(
        &mut self,
        path: Option<PathBuf>,
        text: Rc<str>,
        root: PathBuf,
        dir: Vec<OsString>,
    ) -> (FileId, TextId) {
        let file = FileId(self.map.files.len());
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        self.map.files.push(SourceFile {
            path,
            text: text.clone(),
            line_starts,
            root,
            dir,
        });
        let id = TextId(self.texts.len());
        self.texts.push(text);
        self.map.pieces.push(vec![Piece {
            start: 0,
            file,
            offset: 0,
            linear: true,
        }]);
        self.file_texts.push(id);
        if self.scopes.is_empty() {
            self.scopes.push(Scope::default());
        }
        (file, id)
    }

    fn text(&self, t: TextId) -> Rc<str> {
        self.texts.get(t.0).cloned().unwrap_or_else(|| Rc::from(""))
    }

    fn loc(&self, at: At) -> Location {
        self.map.text_location(at.text, at.pos)
    }

    fn error(&self, at: At, message: impl Into<String>) -> Error {
        Error::Xml {
            location: self.loc(at),
            message: message.into(),
        }
    }

    fn warn(&mut self, at: At, element: &str, message: String) {
        let w = StyleWarning {
            location: self.loc(at),
            element: element.to_string(),
            message,
        };
        // Returned to the caller, who says it (once).
        tracing::debug!("{w}");
        self.warnings.push(w);
    }

    /// `line:column` of `at`, for messages about the same file.
    fn line_col(&self, at: At) -> String {
        let l = self.loc(at);
        format!("{}:{}", l.line, l.column)
    }

    /// Copies `src[from..to]` to the output.
    fn emit(&mut self, src: TextId, from: usize, to: usize) {
        if from >= to {
            return;
        }
        let out = self.out.len();
        if let Some(s) = self.texts.get(src.0) {
            self.out.push_str(&s[from..to]);
        }
        if let Some(last) = self.map.segments.last() {
            if last.linear && last.text == src && last.local + (out - last.out) == from {
                return;
            }
        }
        self.map.segments.push(Segment {
            out,
            text: src,
            local: from,
            linear: true,
        });
    }

    /// Writes `s`, which stands for the place `at`, to the output.
    fn emit_escape(&mut self, s: &str, at: At) {
        self.map.segments.push(Segment {
            out: self.out.len(),
            text: at.text,
            local: at.pos,
            linear: false,
        });
        self.out.push_str(s);
    }

    /// Copies `src[from..to]` into a replacement text being built.
    fn append(&self, b: &mut Builder, src: TextId, from: usize, to: usize) {
        if from >= to {
            return;
        }
        let (Some(s), Some(pieces)) = (self.texts.get(src.0), self.map.pieces.get(src.0)) else {
            return;
        };
        let start = b.s.len();
        b.s.push_str(&s[from..to]);
        let first = pieces
            .partition_point(|p| p.start <= from)
            .saturating_sub(1);
        for p in &pieces[first..] {
            if p.start >= to {
                break;
            }
            let lo = p.start.max(from);
            let offset = p.offset + if p.linear { lo - p.start } else { 0 };
            push_piece(
                &mut b.pieces,
                Piece {
                    start: start + lo - from,
                    file: p.file,
                    offset,
                    linear: p.linear,
                },
            );
        }
    }

    /// Appends `c`, which stands for the place `at` (a character reference).
    fn append_char(&self, b: &mut Builder, c: char, at: At) {
        let (file, offset) = self.map.origin(at.text, at.pos);
        push_piece(
            &mut b.pieces,
            Piece {
                start: b.s.len(),
                file,
                offset,
                linear: false,
            },
        );
        b.s.push(c);
    }

    fn finish(&mut self, b: Builder) -> TextId {
        let id = TextId(self.texts.len());
        self.texts.push(Rc::from(b.s));
        self.map.pieces.push(b.pieces);
        id
    }

    /// Counts `n` more expanded bytes.
    fn charge(&mut self, n: usize, at: At) -> Result<()> {
        self.expanded = self.expanded.saturating_add(n);
        if self.expanded > MAX_EXPANDED_BYTES {
            let what = self
                .active
                .last()
                .map(|a| Active::display(a.kind, &a.name))
                .unwrap_or_default();
            return Err(self.error(
                at,
                format!(
                    "expanding `{what}` brings the text from entities and includes over \
                     the limit of {MAX_EXPANDED_BYTES} bytes (64 MiB)"
                ),
            ));
        }
        Ok(())
    }

    /// Starts expanding `name`: refuses loops, deep nesting and too many
    /// references.
    fn enter(&mut self, kind: Kind, name: &str, at: At) -> Result<()> {
        let shown = Active::display(kind, name);
        if let Some(first) = self
            .active
            .iter()
            .position(|a| a.kind == kind && a.name == name)
        {
            let chain: Vec<String> = self.active[first..]
                .iter()
                .map(|a| format!("`{}`", Active::display(a.kind, &a.name)))
                .chain(std::iter::once(format!("`{shown}`")))
                .collect();
            let what = if kind == Kind::Include {
                "xi:include loop"
            } else {
                "entity loop"
            };
            return Err(self.error(at, format!("{what}: {}", chain.join(" → "))));
        }
        if self.active.len() - self.outer >= MAX_NESTING {
            return Err(self.error(
                at,
                format!("`{shown}`: entities and includes are nested more than {MAX_NESTING} deep"),
            ));
        }
        self.references += 1;
        if self.references > MAX_REFERENCES {
            return Err(self.error(
                at,
                format!("`{shown}`: more than {MAX_REFERENCES} entity references and includes"),
            ));
        }
        self.active.push(Active {
            kind,
            name: name.to_string(),
        });
        Ok(())
    }

    fn leave(&mut self) {
        self.active.pop();
    }

    /// Resolves a `SYSTEM` literal or `href` named in `base`.
    fn resolve(&self, system: &str, base: FileId) -> std::result::Result<Resolved, String> {
        if system.is_empty() {
            return Err("empty path".to_string());
        }
        if is_url(system) {
            return Err(format!(
                "`{system}` is a URL; only local files are read (write a path)"
            ));
        }
        let Some(f) = self.map.files.get(base.0) else {
            return Err("no base file".to_string());
        };
        let p = Path::new(system);
        if p.is_absolute() {
            let path = normalize_absolute(p);
            let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
            return Ok(Resolved {
                path,
                root,
                dir: Vec::new(),
            });
        }
        let mut parts = f.dir.clone();
        for c in p.components() {
            match c {
                Component::Normal(x) => parts.push(x.to_os_string()),
                Component::CurDir => {}
                Component::ParentDir => {
                    if parts.pop().is_none() {
                        let root = if f.root.as_os_str().is_empty() {
                            Path::new(".")
                        } else {
                            &f.root
                        };
                        return Err(format!(
                            "`{system}` leads outside the style's folder `{}`; relative paths \
                             must stay inside it (absolute paths are allowed)",
                            root.display()
                        ));
                    }
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(format!("`{system}` is not a relative path"));
                }
            }
        }
        let Some((_, dir)) = parts.split_last() else {
            return Err(format!("`{system}` names the style's folder, not a file"));
        };
        let mut path = f.root.clone();
        path.extend(&parts);
        Ok(Resolved {
            path,
            root: f.root.clone(),
            dir: dir.to_vec(),
        })
    }

    /// Reads a file once (later reads share it).
    fn read(&mut self, r: Resolved) -> std::result::Result<TextId, String> {
        if let Some(f) = self.file_ids.get(&r.path) {
            return self
                .file_texts
                .get(f.0)
                .copied()
                .ok_or_else(|| "internal error: unknown file".to_string());
        }
        let len = std::fs::metadata(&r.path).map_err(|e| e.to_string())?.len();
        if len > MAX_EXPANDED_BYTES as u64 {
            return Err(format!(
                "it has {len} bytes, more than the limit of {MAX_EXPANDED_BYTES} (64 MiB)"
            ));
        }
        let bytes = std::fs::read(&r.path).map_err(|e| e.to_string())?;
        let text = String::from_utf8(bytes).map_err(|_| "it is not UTF-8".to_string())?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let (file, id) = self.add_file(Some(r.path.clone()), Rc::from(text), r.root, r.dir);
        self.file_ids.insert(r.path, file);
        Ok(id)
    }

    /// Where the content of an external entity or included document starts:
    /// after its text declaration (`<?xml ... ?>`), whose encoding must be
    /// UTF-8.
    fn text_decl_end(&self, t: TextId) -> Result<usize> {
        let s = self.text(t);
        let end = prolog(&s).decl_end;
        if end > 0 {
            let decl = &s[..end];
            if let Some(k) = decl.find("encoding") {
                let rest = decl[k + 8..]
                    .trim_start()
                    .trim_start_matches('=')
                    .trim_start();
                let enc: String = rest
                    .trim_start_matches(['"', '\''])
                    .chars()
                    .take_while(|c| !matches!(c, '"' | '\''))
                    .collect();
                if !is_utf8_name(&enc) {
                    return Err(self.error(
                        At { text: t, pos: k },
                        format!("encoding `{enc}` is not supported; style files must be UTF-8"),
                    ));
                }
            }
        }
        Ok(end)
    }

    // ----------------------------------------------------------- documents

    /// A whole document (the style, or an xi:included one): its prolog,
    /// DOCTYPE and content.
    fn document(&mut self, t: TextId, main: bool) -> Result<()> {
        let s = self.text(t);
        let p = prolog(&s);
        // An included document's XML declaration would be one too many.
        let start = if main { 0 } else { self.text_decl_end(t)? };
        match p.doctype {
            None => self.content(t, start, s.len()),
            Some(dt) => {
                self.content(t, start, dt)?;
                let end = self.doctype(t, dt)?;
                self.content(t, end, s.len())
            }
        }
    }

    /// `<!DOCTYPE Name ExternalID? [internal subset]? >` at `at`; returns
    /// where it ends.
    fn doctype(&mut self, t: TextId, at: usize) -> Result<usize> {
        let s = self.text(t);
        let b = s.as_bytes();
        let len = s.len();
        let here = |pos| At { text: t, pos };
        let mut i = at + "<!DOCTYPE".len();
        let j = skip_ws(&s, i, len);
        let ne = name_end(&s, j, len);
        if j == i || ne == j {
            return Err(self.error(
                here(i),
                "expected the root element's name after `<!DOCTYPE`",
            ));
        }
        i = skip_ws(&s, ne, len);
        let external = if s[i..].starts_with("SYSTEM") || s[i..].starts_with("PUBLIC") {
            let (system, lit_at, end) = self.external_id(t, i, len)?;
            i = skip_ws(&s, end, len);
            Some((system, lit_at))
        } else {
            None
        };
        if b.get(i) == Some(&b'[') {
            i = self.dtd(t, i + 1, len, Some(i))?;
            i = skip_ws(&s, i + 1, len);
        }
        if b.get(i) != Some(&b'>') {
            return Err(if i >= len {
                self.error(
                    here(at),
                    "the DOCTYPE is not closed: the file ends inside it",
                )
            } else {
                self.error(
                    here(i),
                    format!(
                        "expected `>` to close the DOCTYPE, found `{}`",
                        snippet(&s, i)
                    ),
                )
            });
        }
        if let Some((system, lit_at)) = external {
            self.external_subset(t, &system, lit_at)?;
        }
        Ok(i + 1)
    }

    /// `SYSTEM "lit"` or `PUBLIC "id" "lit"` at `i`: the system literal,
    /// where it is, and where the external id ends.
    fn external_id(&self, t: TextId, i: usize, to: usize) -> Result<(String, usize, usize)> {
        let s = self.text(t);
        let quoted = |from: usize| -> Result<(usize, usize)> {
            let j = skip_ws(&s, from, to);
            let q = s.as_bytes().get(j).copied();
            if j == from || !matches!(q, Some(b'"' | b'\'')) {
                return Err(self.error(
                    At { text: t, pos: j },
                    "expected a space and a quoted literal",
                ));
            }
            let quote = if q == Some(b'"') { "\"" } else { "'" };
            match find(&s, j + 1, to, quote) {
                Some(close) => Ok((j + 1, close)),
                None => Err(self.error(
                    At { text: t, pos: j },
                    format!("literal not closed with `{quote}`"),
                )),
            }
        };
        let (start, close) = if s[i..].starts_with("SYSTEM") {
            quoted(i + 6)?
        } else {
            let (_, public_close) = quoted(i + 6)?;
            quoted(public_close + 1)?
        };
        Ok((s[start..close].to_string(), start, close + 1))
    }

    fn external_subset(&mut self, t: TextId, system: &str, lit_at: usize) -> Result<()> {
        let at = At {
            text: t,
            pos: lit_at,
        };
        let base = self.map.origin(t, lit_at).0;
        let r = self
            .resolve(system, base)
            .map_err(|m| self.error(at, format!("the DOCTYPE's external DTD: {m}")))?;
        let path = r.path.display().to_string();
        self.enter(Kind::Subset, system, at)?;
        let ft = self.read(r).map_err(|m| {
            self.error(
                at,
                format!("the DOCTYPE's external DTD: cannot read `{path}`: {m}"),
            )
        })?;
        let start = self.text_decl_end(ft)?;
        let len = self.text(ft).len();
        self.charge(len - start, at)?;
        self.dtd(ft, start, len, None)?;
        self.leave();
        Ok(())
    }

    /// Declarations in `t[from..to]`. In the internal subset (`subset` is
    /// where its `[` is) they end at `]`, whose offset is returned.
    fn dtd(&mut self, t: TextId, from: usize, to: usize, subset: Option<usize>) -> Result<usize> {
        let s = self.text(t);
        let b = s.as_bytes();
        let here = |pos| At { text: t, pos };
        let mut i = from;
        loop {
            i = skip_ws(&s, i, to);
            if i >= to {
                return match subset {
                    Some(open) => Err(self.error(
                        here(open),
                        "the DOCTYPE is not closed: the internal subset opened here never \
                         ends with `]>`",
                    )),
                    None => Ok(to),
                };
            }
            let rest = &s[i..to];
            if b[i] == b']' {
                if subset.is_some() {
                    return Ok(i);
                }
                return Err(self.error(here(i), "unexpected `]` in the DTD"));
            } else if b[i] == b'%' {
                i = self.param_in_dtd(t, i, to)?;
            } else if rest.starts_with("<!--") {
                i = find(&s, i + 4, to, "-->").map(|e| e + 3).ok_or_else(|| {
                    self.error(here(i), "comment in the DTD not closed with `-->`")
                })?;
            } else if rest.starts_with("<?") {
                i = find(&s, i + 2, to, "?>").map(|e| e + 2).ok_or_else(|| {
                    self.error(
                        here(i),
                        "processing instruction in the DTD not closed with `?>`",
                    )
                })?;
            } else if rest.starts_with("<!ENTITY") {
                i = self.entity_decl(t, i, to)?;
            } else if let Some(kw) = ["<!ELEMENT", "<!ATTLIST", "<!NOTATION"]
                .into_iter()
                .find(|kw| rest.starts_with(kw))
            {
                let start = i;
                i = self.skip_decl(t, i, to, kw)?;
                self.warn(
                    here(start),
                    &kw[1..],
                    "declaration ignored: tessera does not validate, and applies no DTD \
                     attribute defaults (neither do Mapnik's libxml2 options)"
                        .to_string(),
                );
            } else if rest.starts_with("<![") {
                return Err(self.error(
                    here(i),
                    "conditional sections (`<![INCLUDE[`, `<![IGNORE[`) are not supported",
                ));
            } else if let (Some(open), true) = (
                subset,
                rest.starts_with('<') && rest[1..].starts_with(is_name_start),
            ) {
                return Err(self.error(
                    here(i),
                    format!(
                        "the DOCTYPE is not closed: `]>` expected before `{}` (the internal \
                         subset opened at {})",
                        &s[i..name_end(&s, i + 1, to)],
                        self.line_col(here(open))
                    ),
                ));
            } else {
                return Err(self.error(
                    here(i),
                    format!("unexpected `{}` in the DTD", snippet(&s, i)),
                ));
            }
        }
    }

    /// Skips a declaration that is not used (`>` outside quotes ends it).
    fn skip_decl(&self, t: TextId, at: usize, to: usize, kw: &str) -> Result<usize> {
        let s = self.text(t);
        let b = s.as_bytes();
        let mut i = at + kw.len();
        let mut quote = None;
        while i < to {
            match (quote, b[i]) {
                (None, b'>') => return Ok(i + 1),
                (None, q @ (b'"' | b'\'')) => quote = Some(q),
                (Some(q), c) if c == q => quote = None,
                _ => {}
            }
            i += 1;
        }
        Err(self.error(
            At { text: t, pos: at },
            format!("`{kw}` declaration not closed with `>`"),
        ))
    }

    /// `<!ENTITY ...>` at `at`; returns where it ends.
    fn entity_decl(&mut self, t: TextId, at: usize, to: usize) -> Result<usize> {
        let s = self.text(t);
        let b = s.as_bytes();
        let here = |pos| At { text: t, pos };
        let mut i = at + "<!ENTITY".len();
        let j = skip_ws(&s, i, to);
        if j == i {
            return Err(self.error(here(i), "expected a space after `<!ENTITY`"));
        }
        i = j;
        let param = b.get(i) == Some(&b'%');
        if param {
            let j = skip_ws(&s, i + 1, to);
            if j == i + 1 {
                return Err(self.error(here(i), "expected a space after `<!ENTITY %`"));
            }
            i = j;
        }
        let ne = name_end(&s, i, to);
        if ne == i {
            return Err(self.error(
                here(i),
                format!("expected an entity name, found `{}`", snippet(&s, i)),
            ));
        }
        let name = s[i..ne].to_string();
        let shown = if param {
            format!("%{name}")
        } else {
            name.clone()
        };
        i = skip_ws(&s, ne, to);
        if i == ne {
            return Err(self.error(
                here(i),
                format!("expected a space after `<!ENTITY {shown}`"),
            ));
        }
        let rest = &s[i..to];
        let value = if matches!(b.get(i), Some(b'"' | b'\'')) {
            let mut builder = Builder::default();
            let close = self.value_body(&mut builder, t, i + 1, to, Some(b[i]), &shown)?;
            i = close + 1;
            Value::Internal(self.finish(builder))
        } else if rest.starts_with("SYSTEM") || rest.starts_with("PUBLIC") {
            let (system, lit_at, end) = self.external_id(t, i, to)?;
            i = end;
            let j = skip_ws(&s, i, to);
            let unparsed = j > i && s[j..to].starts_with("NDATA");
            if unparsed {
                if param {
                    return Err(self.error(here(j), "a parameter entity cannot be `NDATA`"));
                }
                let k = skip_ws(&s, j + 5, to);
                let ne = name_end(&s, k, to);
                if k == j + 5 || ne == k {
                    return Err(self.error(here(j), "expected a notation name after `NDATA`"));
                }
                i = ne;
            }
            Value::External {
                system,
                declared_in: self.map.origin(t, lit_at).0,
                unparsed,
            }
        } else {
            return Err(self.error(
                here(i),
                format!("expected a quoted value or SYSTEM after `<!ENTITY {shown}`"),
            ));
        };
        i = skip_ws(&s, i, to);
        if b.get(i) != Some(&b'>') || i >= to {
            return Err(self.error(here(i), format!("expected `>` to close `<!ENTITY {shown}`")));
        }
        self.declare(name, param, value, here(at));
        Ok(i + 1)
    }

    fn declare(&mut self, name: String, param: bool, value: Value, declared: At) {
        let scope = self.scope;
        let table = match self.scopes.get(scope) {
            Some(sc) if param => &sc.param,
            Some(sc) => &sc.general,
            None => return,
        };
        if let Some(&first) = table.get(&name) {
            let first = self.entities.get(first).map(|e| self.loc(e.declared));
            let first = first.map(|l| l.to_string()).unwrap_or_default();
            let shown = if param { format!("%{name}") } else { name };
            self.warn(
                declared,
                "!ENTITY",
                format!(
                    "entity `{shown}` is declared again; the first declaration ({first}) is \
                     used, as XML says"
                ),
            );
            return;
        }
        let id = self.entities.len();
        if let Some(sc) = self.scopes.get_mut(scope) {
            let table = if param {
                &mut sc.param
            } else {
                &mut sc.general
            };
            table.insert(name.clone(), id);
        }
        self.entities.push(Entity {
            name,
            param,
            value,
            declared,
            scope,
        });
    }

    /// The body of an entity value from `from` up to the closing `quote`
    /// (or up to `to` for the text of an external parameter entity):
    /// parameter entity and character references replaced, general ones
    /// kept. Returns where the quote is.
    fn value_body(
        &mut self,
        builder: &mut Builder,
        t: TextId,
        from: usize,
        to: usize,
        quote: Option<u8>,
        entity: &str,
    ) -> Result<usize> {
        let s = self.text(t);
        let b = s.as_bytes();
        let here = |pos| At { text: t, pos };
        let mut i = from;
        let mut run = from;
        while i < to {
            let c = b[i];
            if Some(c) == quote {
                self.append(builder, t, run, i);
                return Ok(i);
            }
            match c {
                b'%' => {
                    let ne = name_end(&s, i + 1, to);
                    if ne == i + 1 || b.get(ne) != Some(&b';') {
                        return Err(self.error(
                            here(i),
                            format!(
                                "`%` in the value of entity `{entity}` must start a parameter \
                                 entity reference `%name;`"
                            ),
                        ));
                    }
                    self.append(builder, t, run, i);
                    self.param_in_value(builder, here(i), &s[i + 1..ne])?;
                    i = ne + 1;
                    run = i;
                }
                b'&' if b.get(i + 1) == Some(&b'#') => {
                    let Some((ch, end)) = char_ref(&s, i, to) else {
                        return Err(self.error(
                            here(i),
                            format!("invalid character reference `{}`", snippet(&s, i)),
                        ));
                    };
                    self.append(builder, t, run, i);
                    self.append_char(builder, ch, here(i));
                    i = end;
                    run = end;
                }
                _ => i += 1,
            }
        }
        match quote {
            Some(q) => Err(self.error(
                here(from.saturating_sub(1)),
                format!(
                    "the value of entity `{entity}` is not closed with `{}`",
                    char::from(q)
                ),
            )),
            None => {
                self.append(builder, t, run, to);
                Ok(to)
            }
        }
    }

    fn lookup(&self, name: &str, param: bool, at: At) -> Result<usize> {
        let table = self
            .scopes
            .get(self.scope)
            .map(|sc| if param { &sc.param } else { &sc.general });
        match table.and_then(|t| t.get(name)) {
            Some(&id) => Ok(id),
            None if param => Err(self.error(
                at,
                format!("parameter entity `%{name};` is not declared (declare it before using it)"),
            )),
            None => Err(self.error(
                at,
                format!("entity `&{name};` is not declared in the DOCTYPE"),
            )),
        }
    }

    /// The text of an external entity, read on first use.
    fn load_entity(&mut self, id: usize, at: At) -> Result<TextId> {
        let Some(e) = self.entities.get(id) else {
            return Err(self.error(at, "unknown entity"));
        };
        let shown = if e.param {
            format!("%{};", e.name)
        } else {
            format!("&{};", e.name)
        };
        let Value::External {
            system,
            declared_in,
            ..
        } = &e.value
        else {
            return Err(self.error(at, format!("entity `{shown}` is not external")));
        };
        let declared = self.loc(e.declared);
        let r = self.resolve(system, *declared_in).map_err(|m| {
            self.error(
                at,
                format!("entity `{shown}` (declared at {declared}): {m}"),
            )
        })?;
        let path = r.path.display().to_string();
        self.read(r).map_err(|m| {
            self.error(
                at,
                format!("entity `{shown}` (declared at {declared}): cannot read `{path}`: {m}"),
            )
        })
    }

    fn param_in_dtd(&mut self, t: TextId, i: usize, to: usize) -> Result<usize> {
        let s = self.text(t);
        let at = At { text: t, pos: i };
        let ne = name_end(&s, i + 1, to);
        if ne == i + 1 || s.as_bytes().get(ne) != Some(&b';') {
            return Err(self.error(
                at,
                format!(
                    "expected a parameter entity reference `%name;`, found `{}`",
                    snippet(&s, i)
                ),
            ));
        }
        let name = &s[i + 1..ne];
        let id = self.lookup(name, true, at)?;
        self.enter(Kind::Param, name, at)?;
        let (text, start) = match self.entities.get(id).map(|e| &e.value) {
            Some(Value::Internal(v)) => (*v, 0),
            _ => {
                let ft = self.load_entity(id, at)?;
                (ft, self.text_decl_end(ft)?)
            }
        };
        let len = self.text(text).len();
        self.charge(len - start, at)?;
        self.dtd(text, start, len, None)?;
        self.leave();
        Ok(ne + 1)
    }

    fn param_in_value(&mut self, builder: &mut Builder, at: At, name: &str) -> Result<()> {
        let id = self.lookup(name, true, at)?;
        self.enter(Kind::Param, name, at)?;
        match self.entities.get(id).map(|e| &e.value) {
            Some(Value::Internal(v)) => {
                let v = *v;
                let len = self.text(v).len();
                self.charge(len, at)?;
                self.append(builder, v, 0, len);
            }
            _ => {
                let ft = self.load_entity(id, at)?;
                let start = self.text_decl_end(ft)?;
                let len = self.text(ft).len();
                self.charge(len - start, at)?;
                self.value_body(builder, ft, start, len, None, &format!("%{name}"))?;
            }
        }
        self.leave();
        Ok(())
    }

    // ------------------------------------------------------------ content

    /// Content (elements, text, comments...) in `t[from..to]`, copied to the
    /// output with references expanded and xi:includes replaced.
    fn content(&mut self, t: TextId, from: usize, to: usize) -> Result<()> {
        let s = self.text(t);
        let b = s.as_bytes();
        let mut i = from;
        let mut run = from;
        while i < to {
            match b[i] {
                b'&' => match reference(&s, i, to) {
                    Ref::Named(ne) => {
                        self.emit(t, run, i);
                        self.general_in_content(t, i, &s[i + 1..ne])?;
                        i = ne + 1;
                        run = i;
                    }
                    Ref::Other(end) => i = end,
                    Ref::Malformed => i += 1,
                },
                b'<' => {
                    let rest = &s[i..to];
                    let skip_to = |from: usize, pat: &str| {
                        find(&s, from, to, pat).map_or(to, |e| e + pat.len())
                    };
                    i = if rest.starts_with("<!--") {
                        skip_to(i + 4, "-->")
                    } else if rest.starts_with("<![CDATA[") {
                        skip_to(i + 9, "]]>")
                    } else if rest.starts_with("<?") {
                        skip_to(i + 2, "?>")
                    } else if rest.starts_with("</") {
                        self.end_element();
                        skip_to(i + 2, ">")
                    } else if rest.starts_with("<!") {
                        i + 2
                    } else {
                        self.start_tag(t, i, to, &mut run)?
                    };
                }
                _ => i += 1,
            }
        }
        self.emit(t, run, to);
        Ok(())
    }

    fn end_element(&mut self) {
        while self.bindings.last().is_some_and(|b| b.depth == self.depth) {
            self.bindings.pop();
        }
        self.depth = self.depth.saturating_sub(1);
    }

    /// A start tag at `at`: references in its attribute values expanded, or
    /// the whole element replaced when it is an xi:include. Returns where
    /// scanning goes on; `run` is where the text still to be copied starts.
    fn start_tag(&mut self, t: TextId, at: usize, to: usize, run: &mut usize) -> Result<usize> {
        let s = self.text(t);
        let b = s.as_bytes();
        let qend = name_end(&s, at + 1, to);
        if qend == at + 1 {
            return Ok(at + 1);
        }
        // A tag that does not parse is copied as it is, for roxmltree to
        // report.
        let opaque = |from: usize| find(&s, from, to, ">").map_or(to, |e| e + 1);
        let mut attrs = Vec::new();
        let mut i = qend;
        let (end, empty) = loop {
            let j = skip_ws(&s, i, to);
            if s[j..to].starts_with("/>") {
                break (j + 2, true);
            }
            if j < to && b[j] == b'>' {
                break (j + 1, false);
            }
            let ne = name_end(&s, j, to);
            if j == i || ne == j {
                return Ok(opaque(i));
            }
            let k = skip_ws(&s, ne, to);
            if b.get(k) != Some(&b'=') {
                return Ok(opaque(i));
            }
            let k = skip_ws(&s, k + 1, to);
            let quote = match b.get(k) {
                Some(b'"') => "\"",
                Some(b'\'') => "'",
                _ => return Ok(opaque(i)),
            };
            let Some(close) = find(&s, k + 1, to, quote) else {
                return Ok(opaque(i));
            };
            attrs.push(Attr {
                name: (j, ne),
                value: (k + 1, close),
            });
            i = close + 1;
        };

        let here = |pos| At { text: t, pos };
        let mut own = Vec::new();
        for a in &attrs {
            let name = &s[a.name.0..a.name.1];
            if let Some(prefix) = name.strip_prefix("xmlns") {
                if prefix.is_empty() || prefix.starts_with(':') {
                    let Some(uri) = decode_plain(&s[a.value.0..a.value.1]) else {
                        return Err(self.error(
                            here(a.name.0),
                            format!("`{name}`: entity references in namespace declarations are not supported"),
                        ));
                    };
                    let xinclude = XINCLUDE_NAMESPACES.contains(&uri.as_str());
                    own.push((prefix.trim_start_matches(':').to_string(), xinclude));
                }
            }
        }
        let qname = &s[at + 1..qend];
        let (prefix, local) = qname.split_once(':').unwrap_or(("", qname));
        let xinclude = local == "include"
            && own
                .iter()
                .rev()
                .find(|(p, _)| p == prefix)
                .map(|&(_, x)| x)
                .or_else(|| {
                    self.bindings
                        .iter()
                        .rev()
                        .find(|bd| bd.prefix == prefix)
                        .map(|bd| bd.xinclude)
                })
                .unwrap_or(false);
        if xinclude {
            self.emit(t, *run, at);
            let element_end = if empty {
                end
            } else {
                self.include_end(t, at, end, to, qname)?
            };
            self.xinclude(t, at, &attrs)?;
            *run = element_end;
            return Ok(element_end);
        }

        for a in &attrs {
            let (vs, ve) = a.value;
            let mut k = vs;
            while let Some(p) = find(&s, k, ve, "&") {
                match reference(&s, p, ve) {
                    Ref::Named(ne) => {
                        self.emit(t, *run, p);
                        self.general_in_attr(t, p, &s[p + 1..ne])?;
                        k = ne + 1;
                        *run = k;
                    }
                    Ref::Other(e) => k = e,
                    Ref::Malformed => k = p + 1,
                }
            }
        }
        if !empty {
            self.depth += 1;
            for (prefix, xinclude) in own {
                self.bindings.push(Binding {
                    depth: self.depth,
                    prefix,
                    xinclude,
                });
            }
        }
        Ok(end)
    }

    /// The end of a non-empty `<xi:include>` element whose start tag ends at
    /// `from`: only whitespace and comments may be inside.
    fn include_end(
        &self,
        t: TextId,
        at: usize,
        from: usize,
        to: usize,
        qname: &str,
    ) -> Result<usize> {
        let s = self.text(t);
        let mut i = from;
        loop {
            i = skip_ws(&s, i, to);
            let rest = &s[i..to];
            if rest.starts_with("<!--") {
                match find(&s, i + 4, to, "-->") {
                    Some(e) => i = e + 3,
                    None => break,
                }
            } else if let Some(close) = rest.strip_prefix("</").and_then(|r| r.strip_prefix(qname))
            {
                let k = skip_ws(&s, to - close.len(), to);
                if s.as_bytes().get(k) == Some(&b'>') {
                    return Ok(k + 1);
                }
                break;
            } else if rest.starts_with('<') && name_end(&s, i + 1, to) > i + 1 {
                let name = &s[i + 1..name_end(&s, i + 1, to)];
                let msg = if name.ends_with("fallback") {
                    "<xi:fallback> is not supported".to_string()
                } else {
                    format!("<{qname}> must be empty, found <{name}> inside")
                };
                return Err(self.error(At { text: t, pos: i }, msg));
            } else {
                break;
            }
        }
        Err(self.error(
            At { text: t, pos: at },
            format!("<{qname}> must be empty (or hold only comments) and be closed"),
        ))
    }

    fn xinclude(&mut self, t: TextId, at: usize, attrs: &[Attr]) -> Result<()> {
        let s = self.text(t);
        let here = At { text: t, pos: at };
        let mut href = None;
        let mut parse = None;
        for a in attrs {
            let name = &s[a.name.0..a.name.1];
            let raw = &s[a.value.0..a.value.1];
            let Some(value) = decode_plain(raw) else {
                return Err(self.error(
                    At {
                        text: t,
                        pos: a.name.0,
                    },
                    format!("<xi:include> `{name}`: entity references are not supported here"),
                ));
            };
            match name {
                "href" => href = Some(value),
                "parse" => parse = Some(value),
                "xpointer" => {
                    return Err(self.error(here, "<xi:include> `xpointer` is not supported"))
                }
                "encoding" if !is_utf8_name(&value) => {
                    return Err(self.error(
                        here,
                        format!(
                            "<xi:include> encoding `{value}` is not supported; files must be UTF-8"
                        ),
                    ))
                }
                // HTTP content negotiation: no effect on local files.
                "encoding" | "accept" | "accept-language" => {}
                _ if name.starts_with("xmlns") => {}
                _ => {
                    let loc = At {
                        text: t,
                        pos: a.name.0,
                    };
                    self.warn(
                        loc,
                        "xi:include",
                        format!("unknown attribute `{name}` ignored"),
                    );
                }
            }
        }
        let Some(href) = href else {
            return Err(self.error(here, "<xi:include> needs an `href`"));
        };
        if href.contains('#') {
            return Err(self.error(
                here,
                format!("<xi:include href=\"{href}\">: fragments (`#...`) are not supported"),
            ));
        }
        let text_mode = match parse.as_deref() {
            None | Some("xml") => false,
            Some("text") => true,
            Some(other) => {
                return Err(self.error(
                    here,
                    format!("<xi:include> `parse=\"{other}\"`: only `xml` and `text` exist"),
                ))
            }
        };
        let base = self.map.origin(t, at).0;
        let r = self
            .resolve(&href, base)
            .map_err(|m| self.error(here, format!("<xi:include href=\"{href}\">: {m}")))?;
        let path = r.path.display().to_string();
        self.enter(Kind::Include, &path, here)?;
        let ft = self.read(r).map_err(|m| {
            self.error(
                here,
                format!("<xi:include href=\"{href}\">: cannot read `{path}`: {m}"),
            )
        })?;
        let len = self.text(ft).len();
        self.charge(len, here)?;
        if text_mode {
            self.include_text(ft);
        } else {
            // The included document has entities of its own.
            let outer = self.scope;
            self.scopes.push(Scope::default());
            self.scope = self.scopes.len() - 1;
            self.document(ft, false)?;
            self.scope = outer;
        }
        self.leave();
        Ok(())
    }

    /// A text file as character data: one CDATA section (split where the
    /// file holds `]]>`, and then mapped as a whole to the file's start).
    fn include_text(&mut self, ft: TextId) {
        let s = self.text(ft);
        let start = At { text: ft, pos: 0 };
        if s.contains("]]>") {
            let split = s.replace("]]>", "]]]]><![CDATA[>");
            self.emit_escape(&format!("<![CDATA[{split}]]>"), start);
        } else {
            self.emit_escape("<![CDATA[", start);
            self.emit(ft, 0, s.len());
            let end = At {
                text: ft,
                pos: s.len(),
            };
            self.emit_escape("]]>", end);
        }
    }

    fn general_in_content(&mut self, t: TextId, pos: usize, name: &str) -> Result<()> {
        let at = At { text: t, pos };
        let id = self.lookup(name, false, at)?;
        self.enter(Kind::General, name, at)?;
        match self.entities.get(id).map(|e| &e.value) {
            Some(Value::Internal(v)) => {
                let v = *v;
                self.precheck(id, name, at)?;
                let len = self.text(v).len();
                self.charge(len, at)?;
                self.content(v, 0, len)?;
            }
            Some(Value::External { unparsed: true, .. }) => {
                return Err(self.error(
                    at,
                    format!("entity `&{name};` is unparsed (`NDATA`) and cannot be referenced"),
                ));
            }
            _ => {
                let ft = self.load_entity(id, at)?;
                let start = self.text_decl_end(ft)?;
                let len = self.text(ft).len();
                self.charge(len - start, at)?;
                self.content(ft, start, len)?;
            }
        }
        self.leave();
        Ok(())
    }

    fn general_in_attr(&mut self, t: TextId, pos: usize, name: &str) -> Result<()> {
        let at = At { text: t, pos };
        let id = self.lookup(name, false, at)?;
        let Some(Value::Internal(v)) = self.entities.get(id).map(|e| &e.value) else {
            return Err(self.error(
                at,
                format!(
                    "external entity `&{name};` cannot be used in an attribute value (XML \
                     allows only internal ones there)"
                ),
            ));
        };
        let v = *v;
        self.enter(Kind::General, name, at)?;
        self.precheck(id, name, at)?;
        let len = self.text(v).len();
        self.charge(len, at)?;
        self.attr_text(v, name)?;
        self.leave();
        Ok(())
    }

    /// The replacement text `t` of entity `name` inside an attribute value
    /// (where `<` is not allowed).
    fn attr_text(&mut self, t: TextId, name: &str) -> Result<()> {
        let s = self.text(t);
        let b = s.as_bytes();
        let to = s.len();
        let mut i = 0;
        let mut run = 0;
        while i < to {
            match b[i] {
                b'&' => match reference(&s, i, to) {
                    Ref::Named(ne) => {
                        self.emit_attr_run(t, run, i);
                        self.general_in_attr(t, i, &s[i + 1..ne])?;
                        i = ne + 1;
                        run = i;
                    }
                    Ref::Other(end) => i = end,
                    Ref::Malformed => i += 1,
                },
                b'<' => {
                    return Err(self.error(
                        At { text: t, pos: i },
                        format!(
                            "entity `&{name};` is used in an attribute value but holds `<`, \
                             which XML does not allow there"
                        ),
                    ))
                }
                _ => i += 1,
            }
        }
        self.emit_attr_run(t, run, to);
        Ok(())
    }

    /// Copies `t[from..to]` into an attribute value. Quotes are data there,
    /// so they are escaped; such a run then maps as a whole to where it
    /// starts (one map entry per run, however many quotes it holds).
    fn emit_attr_run(&mut self, t: TextId, from: usize, to: usize) {
        let s = self.text(t);
        let Some(run) = s.get(from..to) else {
            return;
        };
        if run.contains(['"', '\'']) {
            let escaped = run.replace('"', "&quot;").replace('\'', "&apos;");
            self.emit_escape(&escaped, At { text: t, pos: from });
        } else {
            self.emit(t, from, to);
        }
    }

    /// Refuses an internal entity whose full expansion would go over the
    /// limits, before expanding anything (an entity bomb stops here).
    fn precheck(&mut self, id: usize, name: &str, at: At) -> Result<()> {
        let (bytes, refs) = self.estimate(id, 0);
        let total = self.expanded.saturating_add(bytes);
        if total > MAX_EXPANDED_BYTES {
            return Err(self.error(
                at,
                format!(
                    "entity `&{name};` expands to {bytes} bytes, over the limit of \
                     {MAX_EXPANDED_BYTES} bytes (64 MiB) for all text from entities and includes"
                ),
            ));
        }
        if self.references.saturating_add(refs) > MAX_REFERENCES {
            return Err(self.error(
                at,
                format!(
                    "entity `&{name};` expands {refs} entity references, over the limit of \
                     {MAX_REFERENCES} in all"
                ),
            ));
        }
        Ok(())
    }

    /// Bytes and references of the full expansion of internal general
    /// entity `id` (external ones count as one reference: their size is
    /// charged when they are read). A loop or deep nesting counts as
    /// nothing here: the expansion itself reports it.
    fn estimate(&mut self, id: usize, depth: usize) -> (usize, usize) {
        if let Some(&e) = self.estimates.get(&id) {
            return e;
        }
        let Some(Entity {
            value: Value::Internal(t),
            scope,
            ..
        }) = self.entities.get(id)
        else {
            return (0, 1);
        };
        if depth > MAX_NESTING || self.estimating.contains(&id) {
            return (0, 0);
        }
        let (t, scope) = (*t, *scope);
        self.estimating.insert(id);
        let s = self.text(t);
        let mut bytes = s.len();
        let mut refs = 1usize;
        let mut i = 0;
        while let Some(k) = find(&s, i, s.len(), "&") {
            i = k + 1;
            if let Ref::Named(ne) = reference(&s, k, s.len()) {
                let child = self
                    .scopes
                    .get(scope)
                    .and_then(|sc| sc.general.get(&s[k + 1..ne]).copied());
                if let Some(child) = child {
                    let (b, r) = self.estimate(child, depth + 1);
                    bytes = bytes.saturating_add(b);
                    refs = refs.saturating_add(r);
                }
                i = ne + 1;
            }
        }
        self.estimating.remove(&id);
        self.estimates.insert(id, (bytes, refs));
        (bytes, refs)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ex(xml: &str) -> Expanded {
        expand(xml, None, Path::new("/styles")).unwrap().unwrap()
    }

    fn out(xml: &str) -> String {
        ex(xml).text
    }

    fn err(xml: &str) -> String {
        expand(xml, None, Path::new("/styles"))
            .unwrap_err()
            .to_string()
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn expand_file(path: &Path) -> Result<Option<Expanded>> {
        let xml = std::fs::read_to_string(path).unwrap();
        expand(&xml, Some(path), path.parent().unwrap())
    }

    // -------------------------------------------------------- pieces

    #[test]
    fn the_prolog_finds_the_doctype_after_declaration_comments_and_pis() {
        assert_eq!(
            prolog("<Map/>"),
            Prolog {
                decl_end: 0,
                doctype: None
            }
        );
        let s = "<?xml version=\"1.0\"?>\n<!-- c -->\n<?pi x?>\n<!DOCTYPE Map []><Map/>";
        assert_eq!(
            prolog(s),
            Prolog {
                decl_end: 21,
                doctype: Some(s.find("<!DOCTYPE").unwrap())
            }
        );
        // A DOCTYPE after the root element is not the prolog's.
        assert_eq!(prolog("<Map/><!DOCTYPE Map []>").doctype, None);
        // `<?xml-stylesheet` is a PI, not the declaration.
        assert_eq!(prolog("<?xml-stylesheet a?><Map/>").decl_end, 0);
    }

    #[test]
    fn names_references_and_character_references() {
        assert_eq!(name_end("layer-data; x", 0, 13), 10);
        assert_eq!(name_end("1abc", 0, 4), 0);
        assert_eq!(name_end("été;", 0, 6), 5);
        let s = "&a; &lt; &#38; &#x26; &b &#xZZ; &;";
        assert_eq!(reference(s, 0, s.len()), Ref::Named(2));
        assert_eq!(reference(s, 4, s.len()), Ref::Other(8));
        assert_eq!(reference(s, 9, s.len()), Ref::Other(14));
        assert_eq!(reference(s, 15, s.len()), Ref::Other(21));
        assert_eq!(reference(s, 22, s.len()), Ref::Malformed);
        assert_eq!(reference(s, 25, s.len()), Ref::Malformed);
        assert_eq!(reference(s, 32, s.len()), Ref::Malformed);
        assert_eq!(char_ref("&#x1F600;", 0, 9), Some(('😀', 9)));
        // Not an XML character.
        assert_eq!(char_ref("&#1;", 0, 4), None);
        assert_eq!(
            decode_plain("a&amp;b&#x41;&quot;").as_deref(),
            Some("a&bA\"")
        );
        assert_eq!(decode_plain("&name;"), None);
    }

    #[test]
    fn urls_are_told_from_paths() {
        for url in [
            "http://x/y.xml",
            "https://x",
            "file:///etc/passwd",
            "file:a.xml",
            "ftp://x",
        ] {
            assert!(is_url(url), "{url}");
        }
        for path in [
            "inc/a.xml",
            "/abs/a.xml",
            "c:\\a.xml",
            "a.xml",
            "../a:b/c.xml",
        ] {
            assert!(!is_url(path), "{path}");
        }
    }

    #[test]
    fn offsets_of_rows_and_columns() {
        let s = "ab\ncdé\nf";
        assert_eq!(offset_of(s, 1, 1), 0);
        assert_eq!(offset_of(s, 2, 3), 5);
        assert_eq!(offset_of(s, 3, 1), 8);
        assert_eq!(offset_of(s, 9, 1), s.len());
    }

    // ------------------------------------------------------- expansion

    #[test]
    fn without_doctype_or_xinclude_nothing_is_expanded() {
        assert!(expand("<Map>&lt;</Map>", None, Path::new("/"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn internal_entities_in_content_and_attributes() {
        let xml = "<?xml version=\"1.0\"?>\n<!DOCTYPE Map [<!ENTITY a \"x\">]>\n<Map k=\"&a;-&a;\">&a;&lt;</Map>";
        assert_eq!(
            out(xml),
            "<?xml version=\"1.0\"?>\n\n<Map k=\"x-x\">x&lt;</Map>"
        );
        // Quotes from a value are data inside an attribute.
        let xml = "<!DOCTYPE Map [<!ENTITY q 'say \"hi\" &apos;'>]><Map k=\"&q;\">&q;</Map>";
        assert_eq!(
            out(xml),
            "<Map k=\"say &quot;hi&quot; &apos;\">say \"hi\" &apos;</Map>"
        );
    }

    #[test]
    fn entity_values_expand_parameter_and_character_references_when_declared() {
        let xml = r#"<!DOCTYPE Map [
<!ENTITY % p "pp">
<!ENTITY g "a%p;b&#x43;">
<!ENTITY amp2 "&#38;#38;">
<!ENTITY markup "&#60;b/>">
]><Map>&g;|&amp2;|&markup;</Map>"#;
        assert_eq!(out(xml), "<Map>appbC|&#38;|<b/></Map>");
    }

    #[test]
    fn general_references_in_values_expand_when_used() {
        // `b` is declared after `a` uses it: fine, it is expanded at use.
        let xml = "<!DOCTYPE Map [<!ENTITY a \"[&b;]\"><!ENTITY b \"B\">]><Map k=\"&a;\">&a;</Map>";
        assert_eq!(out(xml), "<Map k=\"[B]\">[B]</Map>");
    }

    #[test]
    fn the_first_declaration_wins() {
        let e = ex("<!DOCTYPE Map [\n<!ENTITY a \"1\">\n<!ENTITY a \"2\">\n]><Map>&a;</Map>");
        assert_eq!(e.text, "<Map>1</Map>");
        assert_eq!(e.warnings.len(), 1);
        assert_eq!(
            e.warnings[0].to_string(),
            "<string>:3:1: <!ENTITY>: entity `a` is declared again; the first declaration \
             (<string>:2:1) is used, as XML says"
        );
    }

    #[test]
    fn comments_cdata_and_pis_are_copied_untouched() {
        let xml = "<!DOCTYPE Map [<!-- <!ENTITY no \"x\"> --><?pi <!ENTITY ?>]>\
                   <Map><!-- &x; --><![CDATA[&x; <a>]]><?p &x;?></Map>";
        assert_eq!(
            out(xml),
            "<Map><!-- &x; --><![CDATA[&x; <a>]]><?p &x;?></Map>"
        );
    }

    #[test]
    fn element_attlist_and_notation_declarations_are_skipped_with_warnings() {
        let e =
            ex("<!DOCTYPE Map [\n<!ATTLIST Map srs CDATA \"a>b\">\n<!ELEMENT Map ANY>\n]><Map/>");
        assert_eq!(e.text, "<Map/>");
        let w: Vec<String> = e.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(w.len(), 2);
        assert!(
            w[0].starts_with("<string>:2:1: <!ATTLIST>: declaration ignored"),
            "{w:?}"
        );
        assert!(
            w[1].starts_with("<string>:3:1: <!ELEMENT>: declaration ignored"),
            "{w:?}"
        );
    }

    #[test]
    fn refused_references() {
        assert_eq!(
            err("<!DOCTYPE Map [<!ENTITY t \"<b/>\">]>\n<Map k=\"&t;\"/>"),
            "<string>:1:28: XML error: entity `&t;` is used in an attribute value but holds \
             `<`, which XML does not allow there"
        );
        assert_eq!(
            err("<!DOCTYPE Map [<!ENTITY t SYSTEM \"t.xml\">]>\n<Map k=\"&t;\"/>"),
            "<string>:2:9: XML error: external entity `&t;` cannot be used in an attribute \
             value (XML allows only internal ones there)"
        );
        assert_eq!(
            err("<!DOCTYPE Map []>\n<Map>\n  &nope;</Map>"),
            "<string>:3:3: XML error: entity `&nope;` is not declared in the DOCTYPE"
        );
        assert_eq!(
            err("<!DOCTYPE Map [\n%nope;]><Map/>"),
            "<string>:2:1: XML error: parameter entity `%nope;` is not declared (declare it \
             before using it)"
        );
        assert_eq!(
            err("<!DOCTYPE Map [<![IGNORE[ x ]]>]><Map/>"),
            "<string>:1:16: XML error: conditional sections (`<![INCLUDE[`, `<![IGNORE[`) \
             are not supported"
        );
        assert_eq!(
            err("<!DOCTYPE Map [<!ENTITY a \"x]><Map/>"),
            "<string>:1:27: XML error: the value of entity `a` is not closed with `\"`"
        );
        assert_eq!(
            err("<!DOCTYPE Map [<!ENTITY a \"x\" junk>]><Map/>"),
            "<string>:1:31: XML error: expected `>` to close `<!ENTITY a`"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let mut xml = String::from("<!DOCTYPE Map [<!ENTITY e0 \"x\">\n");
        for k in 1..=40 {
            xml.push_str(&format!("<!ENTITY e{k} \"&e{};\">\n", k - 1));
        }
        xml.push_str("]><Map>&e40;</Map>");
        let msg = err(&xml);
        // The 33rd nested reference (e40 → ... → e9 → e8) is refused, in
        // e9's value.
        assert_eq!(
            msg,
            "<string>:10:14: XML error: `&e8;`: entities and includes are nested more than 32 \
             deep"
        );
        // 32 levels are fine.
        let ok = xml.replace("&e40;", "&e31;");
        assert_eq!(out(&ok), "<Map>x</Map>");
    }

    #[test]
    fn the_source_map_points_into_the_dtd_and_after_it() {
        let xml = "<!DOCTYPE Map [\n<!ENTITY a \"<Layer/>\">\n]>\n<Map>\n&a;</Map>";
        let e = ex(xml);
        assert_eq!(e.text, "\n<Map>\n<Layer/></Map>");
        let at = |needle: &str| {
            let l = e.map.location(e.text.find(needle).unwrap());
            (l.file, l.line, l.column)
        };
        assert_eq!(at("<Map>"), (None, 4, 1));
        // Inside the entity value in the DTD.
        assert_eq!(at("<Layer"), (None, 2, 13));
        assert_eq!(at("/>"), (None, 2, 19));
        // After the reference.
        assert_eq!(at("</Map>"), (None, 5, 4));
    }

    // ----------------------------------------------------------- files

    #[test]
    fn external_entities_resolve_against_the_declaring_file() {
        let dir = tempfile::tempdir().unwrap();
        let main = write(
            dir.path(),
            "style.xml",
            "<!DOCTYPE Map [<!ENTITY % e SYSTEM \"inc/e.inc\">%e;]>\n<Map>&body;</Map>",
        );
        write(
            dir.path(),
            "inc/e.inc",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!ENTITY body SYSTEM \"sub/body.inc\">",
        );
        write(
            dir.path(),
            "inc/sub/body.inc",
            "<?xml version=\"1.0\"?>\n<Style/>\n",
        );
        let e = expand_file(&main).unwrap().unwrap();
        assert_eq!(e.text, "\n<Map>\n<Style/>\n</Map>");
        let l = e.map.location(e.text.find("<Style").unwrap());
        assert_eq!(l.file, Some(dir.path().join("inc/sub/body.inc")));
        assert_eq!((l.line, l.column), (2, 1));
    }

    #[test]
    fn absolute_paths_are_allowed_and_root_their_own_relative_paths() {
        let styles = tempfile::tempdir().unwrap();
        let shared = tempfile::tempdir().unwrap();
        write(shared.path(), "a/colours.inc", "<!ENTITY water \"blue\">");
        let abs = shared.path().join("a/colours.inc");
        let main = write(
            styles.path(),
            "style.xml",
            &format!(
                "<!DOCTYPE Map [<!ENTITY % c SYSTEM \"{}\">%c;]><Map k=\"&water;\"/>",
                abs.display()
            ),
        );
        assert_eq!(
            expand_file(&main).unwrap().unwrap().text,
            "<Map k=\"blue\"/>"
        );
        // From there, `..` may not leave that file's folder.
        write(
            shared.path(),
            "a/colours.inc",
            "<!ENTITY % up SYSTEM \"../x.inc\">%up;",
        );
        let msg = expand_file(&main).unwrap_err().to_string();
        assert!(
            msg.contains(&format!(
                "`../x.inc` leads outside the style's folder `{}`",
                shared.path().join("a").display()
            )),
            "{msg}"
        );
    }

    #[test]
    fn other_encodings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let main = write(
            dir.path(),
            "style.xml",
            "<!DOCTYPE Map [<!ENTITY b SYSTEM \"b.inc\">]><Map>&b;</Map>",
        );
        write(
            dir.path(),
            "b.inc",
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><x/>",
        );
        let msg = expand_file(&main).unwrap_err().to_string();
        assert_eq!(
            msg,
            format!(
                "{}:1:21: XML error: encoding `ISO-8859-1` is not supported; style files must \
                 be UTF-8",
                dir.path().join("b.inc").display()
            )
        );
    }

    #[test]
    fn xinclude_of_xml_and_text() {
        let dir = tempfile::tempdir().unwrap();
        let main = write(
            dir.path(),
            "style.xml",
            "<Map xmlns:xi=\"http://www.w3.org/2001/XInclude\">\
             <xi:include href=\"inc/part.xml\"/>\
             <Filter><xi:include parse=\"text\" href=\"inc/f.txt\"></xi:include></Filter>\
             <xi:include href='inc/part.xml'><!-- twice is no loop --></xi:include></Map>",
        );
        write(
            dir.path(),
            "inc/part.xml",
            "<?xml version=\"1.0\"?>\n<!DOCTYPE Include [<!ENTITY x \"X\">]>\n<Include>&x;</Include>\n",
        );
        write(dir.path(), "inc/f.txt", "[a] = ']]>'");
        let e = expand_file(&main).unwrap().unwrap();
        assert_eq!(
            e.text,
            // Each included document: what follows its XML declaration, less
            // the DOCTYPE.
            "<Map xmlns:xi=\"http://www.w3.org/2001/XInclude\">\n\n<Include>X</Include>\n\
             <Filter><![CDATA[[a] = ']]]]><![CDATA[>']]></Filter>\n\n<Include>X</Include>\n</Map>"
        );
        let doc = roxmltree::Document::parse(&e.text).unwrap();
        let filter = doc
            .descendants()
            .find(|n| n.has_tag_name("Filter"))
            .unwrap();
        assert_eq!(filter.text(), Some("[a] = ']]>'"));
    }

    #[test]
    fn xinclude_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str| dir.path().join(name).display().to_string();
        let ns = "xmlns:xi=\"http://www.w3.org/2001/XInclude\"";
        let main = write(
            dir.path(),
            "style.xml",
            &format!("<Map {ns}>\n<xi:include href=\"a.xml\"/></Map>"),
        );
        write(
            dir.path(),
            "a.xml",
            &format!("<Include {ns}><xi:include href=\"style.xml\"/></Include>"),
        );
        assert_eq!(
            expand_file(&main).unwrap_err().to_string(),
            format!(
                "{}:1:{}: XML error: xi:include loop: `{}` → `{}` → `{}`",
                p("a.xml"),
                ns.len() + 11,
                p("style.xml"),
                p("a.xml"),
                p("style.xml")
            )
        );
        for (element, message) in [
            ("<xi:include href=\"a.xml\" xpointer=\"x\"/>", "<xi:include> `xpointer` is not supported"),
            ("<xi:include href=\"a.xml#x\"/>", "<xi:include href=\"a.xml#x\">: fragments (`#...`) are not supported"),
            ("<xi:include href=\"a.xml\" parse=\"html\"/>", "<xi:include> `parse=\"html\"`: only `xml` and `text` exist"),
            ("<xi:include/>", "<xi:include> needs an `href`"),
            ("<xi:include href=\"http://x/a.xml\"/>", "<xi:include href=\"http://x/a.xml\">: `http://x/a.xml` is a URL; only local files are read (write a path)"),
            ("<xi:include href=\"a.xml\"><xi:fallback/></xi:include>", "<xi:fallback> is not supported"),
        ] {
            let xml = format!("<Map {ns}>{element}</Map>");
            let msg = expand(&xml, None, dir.path()).unwrap_err().to_string();
            assert!(msg.ends_with(message), "{element}: {msg}");
        }
    }
}
