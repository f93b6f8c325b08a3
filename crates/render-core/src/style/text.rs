//! Text labels and shields as plain data with Mapnik 3.1's defaults:
//! [`TextSymbolizer`], [`ShieldSymbolizer`], [`FontSet`], and the two small
//! languages inside them, [`TextExpr`] (the label text) and [`PathExpr`]
//! (a shield's image file).
//!
//! Nothing here draws: the loader fills these types, the font and placement
//! code reads them. Every `Default` is what Mapnik uses when the attribute is
//! absent (`text_properties.hpp`, `text_properties.cpp`,
//! `symbolizer_default_values.hpp` of Mapnik v3.1.0).
//!
//! # Text expressions
//!
//! ```text
//! text := term ("+" term)*          whitespace around terms is ignored
//! term := "[" field "]" | "'" chars "'" | '"' chars '"' | word
//! ```
//!
//! Quoted strings take Mapnik's escapes `\n`, `\t`, `\r`, `\a`, `\b`, `\f`,
//! `\v`, `\\`, `\'`, `\"` and `\xHH`; any other backslash is kept as it is
//! (Mapnik's grammar does the same). A bare ASCII word (`Test`) is literal
//! text, as Mapnik's backward-compatible "unquoted string" is, except words
//! Mapnik reads as something else (`not`, and words starting with one of its
//! constants such as `null`, `true`, `pi`, `point`). Everything else Mapnik's
//! expression language allows (numbers, arithmetic, `.replace()`, functions,
//! `@variables`, `[mapnik::geometry_type]`) is a parse error naming the
//! column.
//!
//! `+` is Mapnik's `+` on values, evaluated left to right: strings
//! concatenate (a number next to a string is written out, see
//! [`value_to_text`]), a missing attribute or `null` adds nothing, and two
//! numbers **add** (`[a]+[b]` with a = 1 and b = 2 is `3`, as in Mapnik).

use std::fmt;
use std::path::PathBuf;

use super::color::Color;
use super::composite::CompOp;
use super::filter::{FeatureView, Value};
use crate::error::FilterError;

// ------------------------------------------------------------------ FontSet

/// A `<FontSet name="...">`: faces tried in order for each character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FontSet {
    /// `name`.
    pub name: String,
    /// The `face-name` of each `<Font>`, in document order (Mapnik's
    /// `<Font>` takes only `face-name`).
    pub faces: Vec<String>,
}

// -------------------------------------------------------------- expressions

/// One piece of a [`TextExpr`] or [`PathExpr`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextPart {
    /// Literal text, escapes already resolved.
    Literal(String),
    /// A feature attribute, `[name]`.
    Field(String),
}

/// The text of a label: `[name]+'\n'+[ref]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TextExpr {
    /// The terms, joined by `+`.
    pub parts: Vec<TextPart>,
}

fn error_at(src: &str, offset: usize, message: impl Into<String>) -> FilterError {
    let column = src.get(..offset).map_or(offset, |s| s.chars().count()) + 1;
    FilterError {
        column,
        offset,
        message: message.into(),
    }
}

/// The constants of Mapnik's expression grammar (matched without case,
/// before bare words).
const MAPNIK_CONSTANTS: &[&str] = &[
    "null",
    "false",
    "true",
    "point",
    "linestring",
    "polygon",
    "collection",
    "pi",
    "deg_to_rad",
    "rad_to_deg",
];

fn skip_ws(src: &str, mut i: usize) -> usize {
    while let Some(c) = src[i..].chars().next() {
        if !c.is_whitespace() {
            break;
        }
        i += c.len_utf8();
    }
    i
}

impl TextExpr {
    /// Parses a text expression (see the module documentation). An empty or
    /// all-whitespace `src` is an error: there is no text to draw.
    pub fn parse(src: &str) -> Result<TextExpr, FilterError> {
        let mut parts = Vec::new();
        let mut i = skip_ws(src, 0);
        loop {
            let (part, next) = Self::term(src, i)?;
            parts.push(part);
            i = skip_ws(src, next);
            let Some(c) = src[i..].chars().next() else {
                break;
            };
            if c != '+' {
                let msg = match c {
                    '.' => "regular expressions and methods (.replace, .match, .length) are not \
                            supported in text"
                        .to_string(),
                    '-' | '*' | '/' | '%' => {
                        format!("arithmetic (`{c}`) is not supported in text; only `+` joins terms")
                    }
                    _ => format!("expected `+` or the end of the text, found `{c}`"),
                };
                return Err(error_at(src, i, msg));
            }
            i = skip_ws(src, i + 1);
        }
        Ok(TextExpr { parts })
    }

    fn term(src: &str, start: usize) -> Result<(TextPart, usize), FilterError> {
        let rest = &src[start..];
        let Some(c) = rest.chars().next() else {
            let msg = if start == 0 || src.trim().is_empty() {
                "empty text"
            } else {
                "expected a `[field]` or a quoted string after `+`"
            };
            return Err(error_at(src, start, msg));
        };
        match c {
            '[' => {
                let Some(end) = rest.find(']') else {
                    return Err(error_at(src, start, "`[` without a closing `]`"));
                };
                let name = &rest[1..end];
                if name.is_empty() {
                    return Err(error_at(src, start, "empty attribute name `[]`"));
                }
                if name.starts_with("mapnik::") {
                    let msg = format!("`[{name}]` is not supported in text");
                    return Err(error_at(src, start, msg));
                }
                Ok((TextPart::Field(name.to_string()), start + end + 1))
            }
            '\'' | '"' => {
                let (s, len) = unquote(src, start, c)?;
                Ok((TextPart::Literal(s), start + len))
            }
            '@' => Err(error_at(
                src,
                start,
                "`@variables` are not supported in text",
            )),
            c if c.is_ascii_digit() || c == '-' => Err(error_at(
                src,
                start,
                "numbers are not supported in text; write them in quotes ('1')",
            )),
            c if c.is_ascii_alphabetic() => {
                // Mapnik's "unquoted string" (`alpha >> *alnum`, ASCII): a
                // bare word is literal text, unless it is a function call,
                // `not`, or starts with one of the constants Mapnik matches
                // first, case-insensitively (`null`, `pi`, `point`...).
                let word: String = rest
                    .chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .collect();
                let after = skip_ws(src, start + word.len());
                let lower = word.to_ascii_lowercase();
                let msg = if src[after..].starts_with('(') {
                    format!("function `{word}(...)` is not supported in text")
                } else if lower == "not" {
                    "`not` is not supported in text".to_string()
                } else if let Some(k) = MAPNIK_CONSTANTS.iter().find(|k| lower.starts_with(*k)) {
                    format!(
                        "unquoted `{word}`: Mapnik reads `{k}` as a constant there; write literal \
                         text in quotes ('{word}')"
                    )
                } else {
                    return Ok((TextPart::Literal(word.clone()), start + word.len()));
                };
                Err(error_at(src, start, msg))
            }
            _ => Err(error_at(
                src,
                start,
                format!("expected a `[field]` or a quoted string, found `{c}`"),
            )),
        }
    }

    /// The label text for `feature`: Mapnik's left-to-right `+` over the
    /// terms (see the module documentation), written out with
    /// [`value_to_text`]. A missing attribute counts as `null`, which adds
    /// nothing, so a label of only missing attributes is empty.
    pub fn eval<F: FeatureView + ?Sized>(&self, feature: &F) -> String {
        let mut acc = Value::Null;
        for part in &self.parts {
            let v = match part {
                TextPart::Literal(s) => Value::String(s.clone()),
                TextPart::Field(name) => feature.attribute(name).unwrap_or(Value::Null),
            };
            acc = add(acc, v);
        }
        value_to_text(&acc)
    }

    /// The attribute names the text reads, in order (with repeats).
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            TextPart::Field(f) => Some(f.as_str()),
            TextPart::Literal(_) => None,
        })
    }

    /// True when there are no terms.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }
}

impl fmt::Display for TextExpr {
    /// Prints an expression that parses back to an equal `TextExpr`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                f.write_str(" + ")?;
            }
            match part {
                TextPart::Field(name) => write!(f, "[{name}]")?,
                TextPart::Literal(s) => {
                    f.write_str("'")?;
                    for c in s.chars() {
                        match c {
                            '\n' => f.write_str("\\n")?,
                            '\t' => f.write_str("\\t")?,
                            '\r' => f.write_str("\\r")?,
                            '\'' => f.write_str("\\'")?,
                            '\\' => f.write_str("\\\\")?,
                            c => write!(f, "{c}")?,
                        }
                    }
                    f.write_str("'")?;
                }
            }
        }
        Ok(())
    }
}

/// A quoted string starting at `start` (on the quote): its value and its
/// length in bytes including both quotes.
fn unquote(src: &str, start: usize, quote: char) -> Result<(String, usize), FilterError> {
    let body = &src[start + 1..];
    let mut out = String::new();
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            return Ok((out, i + 2));
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(&(_, e)) = chars.peek() else {
            out.push('\\');
            continue;
        };
        let unescaped = match e {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'v' => Some('\u{b}'),
            '\\' => Some('\\'),
            '\'' => Some('\''),
            '"' => Some('"'),
            _ => None,
        };
        if let Some(u) = unescaped {
            chars.next();
            out.push(u);
        } else if e == 'x' {
            // `\xHH`: one or two hex digits, as Mapnik's `hex` parser reads.
            let hex: String = body[i + 2..]
                .chars()
                .take_while(char::is_ascii_hexdigit)
                .take(2)
                .collect();
            match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                Some(ch) if !hex.is_empty() => {
                    chars.next();
                    for _ in 0..hex.len() {
                        chars.next();
                    }
                    out.push(ch);
                }
                _ => out.push('\\'),
            }
        } else {
            // Mapnik keeps an unknown escape's backslash.
            out.push('\\');
        }
    }
    Err(error_at(
        src,
        start,
        format!("string starting here has no closing {quote}"),
    ))
}

/// Mapnik's `+` on two values (`value.cpp`, `struct add`).
fn add(lhs: Value, rhs: Value) -> Value {
    use Value::*;
    match (lhs, rhs) {
        (Null, r) => r,
        (l, Null) => l,
        (String(mut a), String(b)) => {
            a.push_str(&b);
            String(a)
        }
        (String(mut a), r) => {
            a.push_str(&value_to_text(&r));
            String(a)
        }
        (l, String(b)) => String(value_to_text(&l) + &b),
        (Float(a), r) | (r, Float(a)) => match r {
            Float(b) => Float(a + b),
            Int(b) => Float(a + b as f64),
            Bool(b) => Float(a + f64::from(u8::from(b))),
            _ => unreachable!("null and string handled above"),
        },
        (Int(a), Int(b)) => Int(a.wrapping_add(b)),
        (Int(a), Bool(b)) | (Bool(b), Int(a)) => Int(a.wrapping_add(i64::from(b))),
        (Bool(a), Bool(b)) => Int(i64::from(a) + i64::from(b)),
    }
}

/// How Mapnik writes a value into a label (`value::to_unicode`):
/// `null` is empty, booleans are `true`/`false`, integers in decimal and
/// doubles as C's `printf("%g")` (6 significant digits: `3`, `0.1`,
/// `67.65`, `1e+06`).
pub fn value_to_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format_g(*f),
        Value::String(s) => s.clone(),
    }
}

/// C's `%g` with the default precision of 6.
fn format_g(v: f64) -> String {
    if v.is_nan() {
        return if v.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if v.is_infinite() {
        return if v < 0.0 { "-inf" } else { "inf" }.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    const P: i32 = 6;
    // Round to P significant digits first: the exponent after rounding
    // decides the style, as in C.
    let sci = format!("{:.*e}", (P - 1) as usize, v);
    let (mantissa, exp) = sci.split_once('e').expect("`e` format has an exponent");
    let exp: i32 = exp.parse().expect("`e` format has an integer exponent");
    if !(-4..P).contains(&exp) {
        let m = strip_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (P - 1 - exp).max(0) as usize;
        strip_zeros(&format!("{v:.decimals$}")).to_string()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// A file name with `[field]`s in it (Mapnik's path expression), e.g. a
/// shield's `symbols/shields/primary_[width]x[height].svg`. Everything
/// outside brackets is literal; there are no quotes or `+`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PathExpr {
    /// Literal pieces and fields, in order. When the style's path was
    /// relative, the loader has already put the style's folder in front.
    pub parts: Vec<TextPart>,
}

impl PathExpr {
    /// Parses a path expression. A `[` without `]` or an empty `[]` is an
    /// error.
    pub fn parse(src: &str) -> Result<PathExpr, FilterError> {
        let mut parts = Vec::new();
        let mut i = 0;
        while i < src.len() {
            match src[i..].find('[') {
                Some(0) => {
                    let Some(end) = src[i..].find(']') else {
                        return Err(error_at(src, i, "`[` without a closing `]`"));
                    };
                    if end == 1 {
                        return Err(error_at(src, i, "empty attribute name `[]`"));
                    }
                    parts.push(TextPart::Field(src[i + 1..i + end].to_string()));
                    i += end + 1;
                }
                Some(n) => {
                    parts.push(TextPart::Literal(src[i..i + n].to_string()));
                    i += n;
                }
                None => {
                    parts.push(TextPart::Literal(src[i..].to_string()));
                    i = src.len();
                }
            }
        }
        Ok(PathExpr { parts })
    }

    /// Puts `prefix` in front (merged with a leading literal).
    pub(crate) fn prefixed(mut self, prefix: &str) -> PathExpr {
        match self.parts.first_mut() {
            Some(TextPart::Literal(s)) => s.insert_str(0, prefix),
            _ => self.parts.insert(0, TextPart::Literal(prefix.to_string())),
        }
        self
    }

    /// The file for `feature`: each field written with [`value_to_text`]
    /// (a missing one is empty, as in Mapnik).
    pub fn eval<F: FeatureView + ?Sized>(&self, feature: &F) -> PathBuf {
        let mut s = String::new();
        for part in &self.parts {
            match part {
                TextPart::Literal(l) => s.push_str(l),
                TextPart::Field(name) => {
                    if let Some(v) = feature.attribute(name) {
                        s.push_str(&value_to_text(&v));
                    }
                }
            }
        }
        PathBuf::from(s)
    }

    /// The attribute names the path reads.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            TextPart::Field(f) => Some(f.as_str()),
            TextPart::Literal(_) => None,
        })
    }

    /// The path when it has no fields.
    pub fn as_constant(&self) -> Option<PathBuf> {
        let mut s = String::new();
        for part in &self.parts {
            match part {
                TextPart::Literal(l) => s.push_str(l),
                TextPart::Field(_) => return None,
            }
        }
        Some(PathBuf::from(s))
    }
}

// -------------------------------------------------------------- keywords

macro_rules! keyword_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $kw:literal),+ $(,)? } ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub enum $name {
            $(
                $(#[$vdoc])*
                #[doc = concat!("`", $kw, "`")]
                $variant,
            )+
        }

        impl $name {
            /// Mapnik's keywords, in Mapnik's order.
            pub const KEYWORDS: &'static [&'static str] = &[$($kw),+];

            /// Parses Mapnik's keyword.
            pub fn from_keyword(s: &str) -> Option<Self> {
                match s {
                    $($kw => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The keyword.
            pub fn keyword(self) -> &'static str {
                match self {
                    $($name::$variant => $kw,)+
                }
            }
        }

    };
}

keyword_enum! {
    /// `placement`: where along the geometry a label goes. Default point.
    TextPlacement {
        /// One label at the point, or the centroid of a line or polygon.
        #[default] Point = "point",
        /// Labels follow the line (or polygon outline), every `spacing` px.
        Line = "line",
        /// A label at each vertex.
        Vertex = "vertex",
        /// One label at a point inside the polygon.
        Interior = "interior",
    }
}

keyword_enum! {
    /// `horizontal-alignment`. Default auto: from the sign of the
    /// displacement (right of the point when `dx > 0`, left when `dx < 0`,
    /// else centred).
    HorizontalAlignment {
        /// Text ends at the point.
        Left = "left",
        /// Text centred on the point.
        Middle = "middle",
        /// Text starts at the point.
        Right = "right",
        /// From the displacement.
        #[default] Auto = "auto",
    }
}

keyword_enum! {
    /// `vertical-alignment`. Default auto: below the point when `dy > 0`,
    /// above when `dy < 0`, else centred.
    VerticalAlignment {
        /// Text above the point.
        Top = "top",
        /// Centred.
        Middle = "middle",
        /// Text below the point.
        Bottom = "bottom",
        /// From the displacement.
        #[default] Auto = "auto",
    }
}

keyword_enum! {
    /// `justify-alignment` of the lines of a wrapped label. Default auto:
    /// left when `dx > 0`, right when `dx < 0`, else centred.
    JustifyAlignment {
        /// Left-aligned lines.
        Left = "left",
        /// Centred lines (Mapnik's keyword is `center`, not `middle`).
        Center = "center",
        /// Right-aligned lines.
        Right = "right",
        /// From the displacement.
        #[default] Auto = "auto",
    }
}

keyword_enum! {
    /// `text-transform`. Default none.
    TextTransform {
        /// As written.
        #[default] None = "none",
        /// ICU upper case.
        Uppercase = "uppercase",
        /// ICU lower case.
        Lowercase = "lowercase",
        /// ICU title case.
        Capitalize = "capitalize",
        /// Characters in reverse order.
        Reverse = "reverse",
    }
}

keyword_enum! {
    /// `upright`: which way text placed along a line reads (Mapnik's
    /// `simplify_upright` and `single_line_placement`). Default auto.
    Upright {
        /// Along the line or against it, whichever is not upside down;
        /// retried the other way when more than half the glyphs would be
        /// upside down.
        #[default] Auto = "auto",
        /// Like auto with the opposite first choice, so vertical text reads
        /// downwards.
        AutoDown = "auto-down",
        /// Always against the line direction.
        Left = "left",
        /// Always along the line direction.
        Right = "right",
        /// Against the line direction; no label when more than half the
        /// glyphs would be upside down.
        LeftOnly = "left-only",
        /// Along the line direction; no label when more than half the glyphs
        /// would be upside down.
        RightOnly = "right-only",
    }
}

keyword_enum! {
    /// One position of `placement-type="simple"`'s `placements` list: the
    /// displacement `(dx, dy)` with its signs forced (Mapnik's
    /// `evaluate_displacement`); the alignment then follows from the signs
    /// when it is auto.
    PlacementPosition {
        /// `(dx, dy)` as given: the only position without `placement-type`.
        #[default] Exact = "X",
        /// `(0, -|dy|)`.
        N = "N",
        /// `(|dx|, 0)`.
        E = "E",
        /// `(0, |dy|)`.
        S = "S",
        /// `(-|dx|, 0)`.
        W = "W",
        /// `(|dx|, -|dy|)`.
        NE = "NE",
        /// `(|dx|, |dy|)`.
        SE = "SE",
        /// `(-|dx|, -|dy|)`.
        NW = "NW",
        /// `(-|dx|, |dy|)`.
        SW = "SW",
    }
}

impl PlacementPosition {
    /// The displacement of this position for a symbolizer's `dx`, `dy`.
    pub fn displacement(self, dx: f64, dy: f64) -> (f64, f64) {
        use PlacementPosition::*;
        match self {
            Exact => (dx, dy),
            N => (0.0, -dy.abs()),
            E => (dx.abs(), 0.0),
            S => (0.0, dy.abs()),
            W => (-dx.abs(), 0.0),
            NE => (dx.abs(), -dy.abs()),
            SE => (dx.abs(), dy.abs()),
            NW => (-dx.abs(), -dy.abs()),
            SW => (-dx.abs(), dy.abs()),
        }
    }
}

/// Parses `placements` of `placement-type="simple"`: positions separated by
/// commas, then optional font sizes (`"N,S,E,W,11,10"`). Whitespace is
/// skipped. Sizes are truncated to integers, as Mapnik stores them. Returns
/// `None` when the text does not parse completely (Mapnik 3.1 logs an error
/// and drops the whole symbolizer; the loader refuses it).
pub fn parse_placements(s: &str) -> Option<(Vec<PlacementPosition>, Vec<f64>)> {
    let mut positions = Vec::new();
    let mut sizes = Vec::new();
    for item in s.split(',') {
        let item = item.trim();
        if sizes.is_empty() {
            if let Some(p) = PlacementPosition::from_keyword(item) {
                positions.push(p);
                continue;
            }
        }
        if positions.is_empty() {
            return None;
        }
        let size: f64 = item.parse().ok().filter(|v: &f64| v.is_finite())?;
        sizes.push(size.trunc());
    }
    (!positions.is_empty()).then_some((positions, sizes))
}

// -------------------------------------------------------------- symbolizers

/// `<TextSymbolizer>`: Mapnik 3.1's text properties with their defaults.
/// Distances are in pixels before the scale factor.
#[derive(Debug, Clone, PartialEq)]
pub struct TextSymbolizer {
    /// The text: the element's content (`<TextSymbolizer>[name]</...>`), or
    /// Mapnik 2's `name` attribute.
    pub text: TextExpr,
    /// The faces to use, in fallback order: `face-name` alone, or the faces
    /// of the `fontset-name` fontset. Mapnik requires exactly one of the two.
    pub face_names: Vec<String>,
    /// `fontset-name`, when the faces came from a fontset.
    pub fontset: Option<String>,
    /// `size`, default 10.
    pub size: f64,
    /// `fill`, default black.
    pub fill: Color,
    /// `halo-fill`, default white.
    pub halo_fill: Color,
    /// `halo-radius`, default 0 (no halo).
    pub halo_radius: f64,
    /// `halo-opacity`, default 1 (multiplies `halo-fill`'s alpha).
    pub halo_opacity: f64,
    /// `opacity` of the text (for shields: `text-opacity`), default 1.
    pub opacity: f64,
    /// `comp-op`, default src-over: how the glyphs (and a shield's image)
    /// are composited.
    pub comp_op: CompOp,
    /// `halo-comp-op`, default src-over: how the halo is composited.
    pub halo_comp_op: CompOp,
    /// `placement`, default point.
    pub placement: TextPlacement,
    /// Positions to try, in order: `[Exact]` unless `placement-type="simple"`
    /// gives a `placements` list.
    pub placements: Vec<PlacementPosition>,
    /// The font sizes that follow the positions in `placements`
    /// (`"N,S,11,10"` → `[11, 10]`): after every position failed at `size`,
    /// all positions are tried again at each of these sizes. Usually empty.
    pub placement_sizes: Vec<f64>,
    /// `dx`, default 0 (positive is right).
    pub dx: f64,
    /// `dy`, default 0 (positive is **down**).
    pub dy: f64,
    /// `horizontal-alignment`, default auto.
    pub horizontal_alignment: HorizontalAlignment,
    /// `vertical-alignment`, default auto.
    pub vertical_alignment: VerticalAlignment,
    /// `justify-alignment`, default auto.
    pub justify_alignment: JustifyAlignment,
    /// `wrap-width` in pixels; 0 (default) never wraps.
    pub wrap_width: f64,
    /// `wrap-character`, default a space (Mapnik keeps the default when the
    /// attribute is empty and uses only its first character).
    pub wrap_character: char,
    /// `wrap-before`, default false: break before the word that would pass
    /// `wrap-width` rather than after it.
    pub wrap_before: bool,
    /// `repeat-wrap-character`, default false: keep the wrap character at
    /// the line break.
    pub repeat_wrap_character: bool,
    /// `text-ratio`, default 0: a preferred width/height ratio for wrapping.
    pub text_ratio: f64,
    /// `line-spacing`, default 0: extra space between lines.
    pub line_spacing: f64,
    /// `character-spacing`, default 0: extra space between characters.
    pub character_spacing: f64,
    /// `text-transform`, default none.
    pub text_transform: TextTransform,
    /// `spacing` between repeated labels along a line, default 0 (one
    /// label per line).
    pub spacing: f64,
    /// `repeat-distance`, default 0: minimum distance to another label with
    /// the same text.
    pub repeat_distance: f64,
    /// `minimum-distance`, default 0 (Mapnik 2's `repeat-distance`; Mapnik
    /// refuses it together with `margin` or `repeat-distance`).
    pub minimum_distance: f64,
    /// `minimum-padding`, default 0: distance to the image edge (with
    /// `avoid-edges`).
    pub minimum_padding: f64,
    /// `minimum-path-length`, default 0: shorter lines get no label.
    pub minimum_path_length: f64,
    /// `margin`, default 0: minimum distance to any other label.
    pub margin: f64,
    /// `max-char-angle-delta` in **degrees**, default 22.5.
    pub max_char_angle_delta: f64,
    /// `upright`, default auto.
    pub upright: Upright,
    /// `label-position-tolerance`, default 0: how far along the line a
    /// label may move to fit; 0 means half the `spacing` (Mapnik's
    /// `tolerance_iterator`).
    pub label_position_tolerance: f64,
    /// `allow-overlap`, default false.
    pub allow_overlap: bool,
    /// `avoid-edges`, default false.
    pub avoid_edges: bool,
    /// `largest-bbox-only`, default true: only the part of a
    /// multi-geometry with the largest bounding box gets a label.
    pub largest_bbox_only: bool,
    /// Always false: Mapnik 3.1 does not read `ignore-placement` for text
    /// (labels always enter the collision detector); the loader warns when
    /// it is given.
    pub ignore_placement: bool,
    /// `clip`, default false: clip the geometry to the buffered extent
    /// before placing labels.
    pub clip: bool,
    /// `offset`, default 0: a parallel offset of the line that
    /// line-placed text follows.
    pub offset: f64,
    /// `orientation` in degrees, default 0: rotates the label.
    pub orientation: f64,
    /// `rotate-displacement`, default false: rotate `(dx, dy)` with the
    /// orientation.
    pub rotate_displacement: bool,
}

impl Default for TextSymbolizer {
    /// Mapnik's defaults, with no text and no faces (the loader always
    /// sets both).
    fn default() -> Self {
        TextSymbolizer {
            text: TextExpr::default(),
            face_names: Vec::new(),
            fontset: None,
            size: 10.0,
            fill: Color::BLACK,
            halo_fill: Color::WHITE,
            halo_radius: 0.0,
            halo_opacity: 1.0,
            opacity: 1.0,
            comp_op: CompOp::SrcOver,
            halo_comp_op: CompOp::SrcOver,
            placement: TextPlacement::Point,
            placements: vec![PlacementPosition::Exact],
            placement_sizes: Vec::new(),
            dx: 0.0,
            dy: 0.0,
            horizontal_alignment: HorizontalAlignment::Auto,
            vertical_alignment: VerticalAlignment::Auto,
            justify_alignment: JustifyAlignment::Auto,
            wrap_width: 0.0,
            wrap_character: ' ',
            wrap_before: false,
            repeat_wrap_character: false,
            text_ratio: 0.0,
            line_spacing: 0.0,
            character_spacing: 0.0,
            text_transform: TextTransform::None,
            spacing: 0.0,
            repeat_distance: 0.0,
            minimum_distance: 0.0,
            minimum_padding: 0.0,
            minimum_path_length: 0.0,
            margin: 0.0,
            max_char_angle_delta: 22.5,
            upright: Upright::Auto,
            label_position_tolerance: 0.0,
            allow_overlap: false,
            avoid_edges: false,
            largest_bbox_only: true,
            ignore_placement: false,
            clip: false,
            offset: 0.0,
            orientation: 0.0,
            rotate_displacement: false,
        }
    }
}

/// `<ShieldSymbolizer>`: an image with a text label on it. PNG images are
/// drawn; SVG is refused until the SVG loader of issue #10.
#[derive(Debug, Clone, PartialEq)]
pub struct ShieldSymbolizer {
    /// The text and its placement; `text.opacity` is `text-opacity` here
    /// (Mapnik issue 2507).
    pub text: TextSymbolizer,
    /// `file` (required): the image, with `[field]`s filled per feature;
    /// relative paths already resolved against the style's folder.
    pub file: PathExpr,
    /// `unlock-image`, default false: when true the image stays at the
    /// point and only the text moves with `dx`/`dy`.
    pub unlock_image: bool,
    /// `shield-dx`, default 0: moves image and text together.
    pub shield_dx: f64,
    /// `shield-dy`, default 0.
    pub shield_dy: f64,
    /// `opacity` of the image, default 1.
    pub opacity: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::style::filter::GeometryType;
    use std::collections::HashMap;

    struct F(HashMap<&'static str, Value>);
    impl FeatureView for F {
        fn attribute(&self, name: &str) -> Option<Value> {
            self.0.get(name).cloned()
        }
        fn geometry_type(&self) -> GeometryType {
            GeometryType::Point
        }
    }

    fn f(attrs: &[(&'static str, Value)]) -> F {
        F(attrs.iter().cloned().collect())
    }
    fn field(s: &str) -> TextPart {
        TextPart::Field(s.to_string())
    }
    fn lit(s: &str) -> TextPart {
        TextPart::Literal(s.to_string())
    }

    #[test]
    fn osm_carto_expressions() {
        let e = TextExpr::parse(r"[name]+'\n'+[ref]").unwrap();
        assert_eq!(e.parts, vec![field("name"), lit("\n"), field("ref")]);
        let feat = f(&[("name", "Main St".into()), ("ref", "A 1".into())]);
        assert_eq!(e.eval(&feat), "Main St\nA 1");
        assert_eq!(e.fields().collect::<Vec<_>>(), ["name", "ref"]);

        let e = TextExpr::parse("[addr_housenumber] + ' ' +\n [addr_unit]").unwrap();
        assert_eq!(
            e.parts,
            vec![field("addr_housenumber"), lit(" "), field("addr_unit")]
        );
        let feat = f(&[("addr_housenumber", "12".into()), ("addr_unit", "B".into())]);
        assert_eq!(e.eval(&feat), "12 B");
        // A missing field adds nothing.
        let feat = f(&[("addr_housenumber", "12".into())]);
        assert_eq!(e.eval(&feat), "12 ");
        assert_eq!(TextExpr::parse("[name]").unwrap().eval(&f(&[])), "");
    }

    #[test]
    fn escapes_and_quotes() {
        let e = TextExpr::parse(r#"'it\'s' + "a \"b\"" + '\\' + '\t\x41' + '\q'"#).unwrap();
        assert_eq!(
            e.parts,
            vec![
                lit("it's"),
                lit("a \"b\""),
                lit("\\"),
                lit("\tA"),
                lit("\\q")
            ]
        );
        assert_eq!(e.eval(&f(&[])), "it'sa \"b\"\\\tA\\q");
        // Display round-trips.
        let again = TextExpr::parse(&e.to_string()).unwrap();
        assert_eq!(again, e);
        // The other quote needs no escape.
        assert_eq!(
            TextExpr::parse(r#"'say "hi"'"#).unwrap().parts,
            vec![lit("say \"hi\"")]
        );
    }

    #[test]
    fn bare_words_are_literal_text() {
        // A style found in the wild: `<TextSymbolizer ...>Test</TextSymbolizer>`.
        assert_eq!(TextExpr::parse("Test").unwrap().parts, vec![lit("Test")]);
        let e = TextExpr::parse("[ele] + m2").unwrap();
        assert_eq!(e.parts, vec![field("ele"), lit("m2")]);
        assert_eq!(e.eval(&f(&[("ele", Value::Int(812))])), "812m2");
    }

    #[test]
    fn values_are_written_as_mapnik_writes_them() {
        let e = TextExpr::parse("[v] + ''").unwrap();
        let cases: Vec<(Value, &str)> = vec![
            (Value::Int(42), "42"),
            (Value::Int(-7), "-7"),
            (Value::Float(3.0), "3"),
            (Value::Float(715.48), "715.48"),
            (Value::Float(0.1), "0.1"),
            (Value::Float(1e-5), "1e-05"),
            (Value::Float(1_000_000.0), "1e+06"),
            (Value::Float(100_000.0), "100000"),
            (Value::Float(0.000_123_456_789_012_345_6), "0.000123457"),
            (Value::Float(1.234e16), "1.234e+16"),
            (Value::Float(67.65), "67.65"),
            (Value::Bool(true), "true"),
            (Value::Null, ""),
        ];
        for (v, want) in cases {
            assert_eq!(e.eval(&f(&[("v", v.clone())])), want, "{v:?}");
        }
        // Two numbers add, as Mapnik's `+` does; a string in between joins.
        let sum = TextExpr::parse("[a] + [b]").unwrap();
        let feat = f(&[("a", Value::Int(1)), ("b", Value::Int(2))]);
        assert_eq!(sum.eval(&feat), "3");
        let joined = TextExpr::parse("[a] + '' + [b]").unwrap();
        assert_eq!(joined.eval(&feat), "12");
        let feat = f(&[("a", Value::Int(1)), ("b", Value::Float(0.5))]);
        assert_eq!(sum.eval(&feat), "1.5");
    }

    #[test]
    fn unsupported_syntax_names_the_column() {
        let cases: &[(&str, usize, &str)] = &[
            ("[name] + [ref].replace('a','b')", 15, "regular expressions"),
            ("[name] * 2", 8, "arithmetic"),
            ("[name] + 1", 10, "numbers"),
            ("upper([name])", 1, "function `upper(...)`"),
            ("[name] + Pizza", 10, "Mapnik reads `pi` as a constant"),
            ("NULL", 1, "`null` as a constant"),
            ("not", 1, "`not`"),
            ("[name] + hello_world", 15, "expected `+`"),
            ("Hello World", 7, "expected `+`"),
            ("[name] + @var", 10, "@variables"),
            ("[mapnik::geometry_type]", 1, "not supported"),
            ("[name] + 'open", 10, "no closing '"),
            ("[name", 1, "closing `]`"),
            ("[name] +", 9, "after `+`"),
            ("[name] [ref]", 8, "expected `+`"),
            ("", 1, "empty text"),
            ("'é' + [a] ^", 11, "expected `+`"),
        ];
        for &(src, column, needle) in cases {
            let err = TextExpr::parse(src).unwrap_err();
            assert_eq!(err.column, column, "{src}: {err}");
            assert!(err.message.contains(needle), "{src}: {err}");
        }
    }

    #[test]
    fn path_expressions() {
        let p = PathExpr::parse("symbols/shields/primary_[width]x[height].svg").unwrap();
        assert_eq!(
            p.parts,
            vec![
                lit("symbols/shields/primary_"),
                field("width"),
                lit("x"),
                field("height"),
                lit(".svg")
            ]
        );
        assert_eq!(p.fields().collect::<Vec<_>>(), ["width", "height"]);
        let feat = f(&[("width", Value::Int(3)), ("height", Value::Float(2.0))]);
        assert_eq!(
            p.eval(&feat),
            PathBuf::from("symbols/shields/primary_3x2.svg")
        );
        assert_eq!(p.as_constant(), None);
        let p = p.prefixed("/styles/");
        assert_eq!(
            p.eval(&feat),
            PathBuf::from("/styles/symbols/shields/primary_3x2.svg")
        );
        let c = PathExpr::parse("a.png").unwrap().prefixed("/s/");
        assert_eq!(c.as_constant(), Some(PathBuf::from("/s/a.png")));
        assert_eq!(PathExpr::parse("a[b.png").unwrap_err().column, 2);
        assert!(PathExpr::parse("a[].png").is_err());
    }

    #[test]
    fn placements_lists() {
        use PlacementPosition::*;
        assert_eq!(
            parse_placements("S,SE,SW,E,NE,W,NW,N"),
            Some((vec![S, SE, SW, E, NE, W, NW, N], vec![]))
        );
        assert_eq!(
            parse_placements(" N, S ,E,W,11,10.7"),
            Some((vec![N, S, E, W], vec![11.0, 10.0]))
        );
        assert_eq!(parse_placements("X"), Some((vec![Exact], vec![])));
        for bad in ["", "11", "N,Q", "N,11,S", "N,", "n"] {
            assert_eq!(parse_placements(bad), None, "{bad}");
        }
        assert_eq!(N.displacement(3.0, 4.0), (0.0, -4.0));
        assert_eq!(SW.displacement(-3.0, -4.0), (-3.0, 4.0));
        assert_eq!(Exact.displacement(-3.0, 4.0), (-3.0, 4.0));
    }

    #[test]
    fn defaults_are_mapnik_3_1s() {
        let d = TextSymbolizer::default();
        assert_eq!(
            (d.size, d.fill, d.halo_fill),
            (10.0, Color::BLACK, Color::WHITE)
        );
        assert_eq!((d.halo_radius, d.halo_opacity, d.opacity), (0.0, 1.0, 1.0));
        assert_eq!(d.max_char_angle_delta, 22.5);
        assert_eq!(d.wrap_character, ' ');
        assert!(d.largest_bbox_only && !d.allow_overlap && !d.clip);
        assert_eq!(d.placements, vec![PlacementPosition::Exact]);
        assert_eq!(TextPlacement::default(), TextPlacement::Point);
        assert_eq!(Upright::from_keyword("left-only"), Some(Upright::LeftOnly));
        assert_eq!(JustifyAlignment::from_keyword("middle"), None);
        assert_eq!(JustifyAlignment::Center.keyword(), "center");
    }
}
