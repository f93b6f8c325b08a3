//! Mapnik filter expressions: a hand-written tokenizer and
//! precedence-climbing parser producing an [`Expr`], and an evaluator over
//! any [`FeatureView`].
//!
//! The supported grammar, precedence from loosest to tightest:
//!
//! ```text
//! expr       := unary (("and" | "&&" | "or" | "||") unary)*     level 1, left to right
//! unary      := ("not" | "!") unary | equality
//! equality   := relational (("=" | "eq" | "is" | "!=" | "<>" | "neq") relational)*
//! relational := operand (("<" | "lt" | "<=" | "le" | ">" | "gt" | ">=" | "ge") operand)*
//! operand    := ("-" | "+") number | primary
//! primary    := number | string | "true" | "false" | "null"
//!             | "point" | "linestring" | "polygon" | "collection"   (1, 2, 3, 4)
//!             | "pi" | "deg_to_rad" | "rad_to_deg"
//!             | "[" name "]" | "[mapnik::geometry_type]" | "(" expr ")"
//!             | bareword                                           (a string, as in Mapnik)
//! ```
//!
//! **`and` and `or` have the same precedence and group left to right**, exactly
//! as in Mapnik's grammar (both its Qi and X3 versions): `a or b and c` means
//! `(a or b) and c`. [`parse_with_notes`] reports expressions that mix the
//! two without parentheses so the style loader can warn about them.
//!
//! Arithmetic, regular expressions (`.match`, `.replace`), functions and
//! `@variables` are Mapnik features that tessera does not support: they are
//! parse errors that say so, never silently wrong.
//!
//! Comparison semantics follow Mapnik's `value` comparison (see
//! [`Value::compare`]).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use crate::error::FilterError;

/// An attribute value of a feature, or of a literal in an expression.
/// Mapnik's `value` variant.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value (a missing attribute, a SQL NULL).
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// A double.
    Float(f64),
    /// A UTF-8 string.
    String(String),
}

impl Value {
    /// Mapnik's `to_bool`: `null` and `""` are false, numbers are true when
    /// **greater than** zero (so `-1` is false, as in Mapnik).
    pub fn to_bool(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i > 0,
            Value::Float(f) => *f > 0.0,
            Value::String(s) => !s.is_empty(),
        }
    }

    /// Compares two values the way Mapnik does:
    /// - bool, int and float are all numbers: mixed pairs are promoted to the
    ///   common type (bool → int → float) and compared numerically;
    /// - strings compare with strings, by UTF-16 code units (ICU's order);
    /// - `null = null` is true (and `null <= null`, `null >= null`);
    /// - any other mixed pair (string vs number, null vs number, ...) is
    ///   false for every operator except `!=`, which is true;
    /// - one Mapnik quirk is kept on purpose: `null != ''` (null on the
    ///   left, the empty string on the right) is **false**, so the common
    ///   `[name] != ''` filter skips features without a name.
    pub fn compare(op: CompareOp, lhs: &Value, rhs: &Value) -> bool {
        use Value::*;
        let ord = match (lhs, rhs) {
            // Equality needs no order: two strings are equal exactly when
            // their UTF-16 forms are (most filters are `[key] = 'text'`).
            (String(a), String(b)) if matches!(op, CompareOp::Eq | CompareOp::Ne) => {
                return (a == b) == (op == CompareOp::Eq);
            }
            (String(a), String(b)) => Some(a.encode_utf16().cmp(b.encode_utf16())),
            (Null, Null) => Some(Ordering::Equal),
            (Null, String(s)) => {
                return op == CompareOp::Ne && !s.is_empty();
            }
            (Bool(a), Bool(b)) => Some(a.cmp(b)),
            (Int(_) | Bool(_), Int(_) | Bool(_)) => {
                lhs.as_i64().zip(rhs.as_i64()).map(|(a, b)| a.cmp(&b))
            }
            // NaN gives `None`: every comparison is false except `!=`.
            (Int(_) | Bool(_) | Float(_), Int(_) | Bool(_) | Float(_)) => lhs
                .as_f64()
                .zip(rhs.as_f64())
                .and_then(|(a, b)| a.partial_cmp(&b)),
            _ => return op == CompareOp::Ne,
        };
        match ord {
            Some(ord) => op.holds(ord),
            None => op == CompareOp::Ne,
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Bool(b) => Some(i64::from(*b)),
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}

/// The geometry type of a feature as `[mapnik::geometry_type]` sees it.
/// Multi-geometries count as their single type, as in Mapnik.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GeometryType {
    /// No or unknown geometry (0).
    Unknown,
    /// Point or MultiPoint (1, keyword `point`).
    Point,
    /// LineString or MultiLineString (2, keyword `linestring`).
    LineString,
    /// Polygon or MultiPolygon (3, keyword `polygon`).
    Polygon,
    /// GeometryCollection (4, keyword `collection`).
    Collection,
}

impl GeometryType {
    /// The integer Mapnik compares: 0 to 4.
    pub fn code(self) -> i64 {
        match self {
            GeometryType::Unknown => 0,
            GeometryType::Point => 1,
            GeometryType::LineString => 2,
            GeometryType::Polygon => 3,
            GeometryType::Collection => 4,
        }
    }
}

/// An attribute name in an expression (`[name]`), with the number the
/// process gives that name.
///
/// Why a number: every rule's filter asks each feature for attributes by
/// name (osm-carto: thousands of rules, tens of thousands of features per
/// metatile), and finding a name in a layer's field list was a fifth of
/// the render time. Names are numbered once, when an expression is parsed;
/// a layer maps each number to its field once when it is built
/// ([`attribute_key`]), and a lookup is then an array index.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Attr {
    name: String,
    key: u32,
}

impl Attr {
    /// The attribute name, numbered.
    pub fn new(name: impl Into<String>) -> Attr {
        let name = name.into();
        let key = attribute_names::number(&name);
        Attr { name, key }
    }

    /// The name as written.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process-wide number of the name.
    pub fn key(&self) -> u32 {
        self.key
    }
}

impl fmt::Debug for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.name, f)
    }
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl From<&str> for Attr {
    fn from(name: &str) -> Attr {
        Attr::new(name)
    }
}

impl From<String> for Attr {
    fn from(name: String) -> Attr {
        Attr::new(name)
    }
}

/// The number of an attribute name that some expression uses, if any
/// does; with [`attribute_keys_given`], what a layer needs to map its
/// fields to numbers.
pub fn attribute_key(name: &str) -> Option<u32> {
    attribute_names::find(name)
}

/// How many names have been numbered so far: every key below this is
/// known; a name numbered later has a key at or above it.
pub fn attribute_keys_given() -> u32 {
    attribute_names::count()
}

/// The process-wide numbering of attribute names. Numbers only grow, and a
/// name keeps its number for the life of the process (styles reloaded
/// reuse them), so the table is bounded by the distinct names in styles.
mod attribute_names {
    use std::collections::HashMap;
    use std::sync::{OnceLock, PoisonError, RwLock};

    fn table() -> &'static RwLock<HashMap<String, u32>> {
        static TABLE: OnceLock<RwLock<HashMap<String, u32>>> = OnceLock::new();
        TABLE.get_or_init(RwLock::default)
    }

    pub(super) fn number(name: &str) -> u32 {
        if let Some(key) = find(name) {
            return key;
        }
        let mut names = table().write().unwrap_or_else(PoisonError::into_inner);
        let next = u32::try_from(names.len()).unwrap_or(u32::MAX);
        *names.entry(name.to_owned()).or_insert(next)
    }

    pub(super) fn find(name: &str) -> Option<u32> {
        let names = table().read().unwrap_or_else(PoisonError::into_inner);
        names.get(name).copied()
    }

    pub(super) fn count() -> u32 {
        let names = table().read().unwrap_or_else(PoisonError::into_inner);
        u32::try_from(names.len()).unwrap_or(u32::MAX)
    }
}

/// What a filter can ask of a feature. The data layer implements it for its
/// own feature type.
pub trait FeatureView {
    /// The value of attribute `name`, or `None` when the feature has no such
    /// attribute (evaluated as `null`, as in Mapnik).
    fn attribute(&self, name: &str) -> Option<Value>;
    /// The value of an attribute of an expression, borrowed where the
    /// feature holds it (filters compare without copying strings). By
    /// default the value [`FeatureView::attribute`] gives.
    fn attribute_of(&self, attr: &Attr) -> Option<Cow<'_, Value>> {
        self.attribute(attr.name()).map(Cow::Owned)
    }
    /// The feature's geometry type.
    fn geometry_type(&self) -> GeometryType;
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `=`, `eq`, `is`
    Eq,
    /// `!=`, `<>`, `neq`
    Ne,
    /// `<`, `lt`
    Lt,
    /// `<=`, `le`
    Le,
    /// `>`, `gt`
    Gt,
    /// `>=`, `ge`
    Ge,
}

impl CompareOp {
    fn holds(self, ord: Ordering) -> bool {
        match self {
            CompareOp::Eq => ord == Ordering::Equal,
            CompareOp::Ne => ord != Ordering::Equal,
            CompareOp::Lt => ord == Ordering::Less,
            CompareOp::Le => ord != Ordering::Greater,
            CompareOp::Gt => ord == Ordering::Greater,
            CompareOp::Ge => ord != Ordering::Less,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }
}

/// A parsed filter expression.
///
/// `Display` prints an expression that parses back to an equal `Expr`
/// (fully parenthesised; floats must be finite).
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal value. The geometry keywords (`point`, ...) and the
    /// constants (`pi`, ...) become `Int` and `Float` literals.
    Literal(Value),
    /// `[name]`: a feature attribute.
    Attribute(Attr),
    /// `[mapnik::geometry_type]`.
    GeometryType,
    /// `not e`, `!e`.
    Not(Box<Expr>),
    /// `a and b`, `a && b`.
    And(Box<Expr>, Box<Expr>),
    /// `a or b`, `a || b`.
    Or(Box<Expr>, Box<Expr>),
    /// `a <op> b`.
    Compare(CompareOp, Box<Expr>, Box<Expr>),
}

impl Expr {
    /// Parses a Mapnik filter expression.
    pub fn parse(src: &str) -> Result<Expr, FilterError> {
        parse_with_notes(src).map(|(e, _)| e)
    }

    /// Evaluates the expression as a filter: Mapnik's
    /// `evaluate(...).to_bool()`.
    pub fn eval<F: FeatureView + ?Sized>(&self, feature: &F) -> bool {
        match self {
            Expr::Not(e) => !e.eval(feature),
            Expr::And(a, b) => a.eval(feature) && b.eval(feature),
            Expr::Or(a, b) => a.eval(feature) || b.eval(feature),
            Expr::Compare(op, a, b) => Value::compare(*op, &a.value(feature), &b.value(feature)),
            Expr::Literal(v) => v.to_bool(),
            Expr::Attribute(_) | Expr::GeometryType => self.value(feature).to_bool(),
        }
    }

    /// Evaluates the expression to a value (logical operators and
    /// comparisons give `Bool`).
    pub fn value<'a, F: FeatureView + ?Sized>(&'a self, feature: &'a F) -> Cow<'a, Value> {
        match self {
            Expr::Literal(v) => Cow::Borrowed(v),
            Expr::Attribute(attr) => feature
                .attribute_of(attr)
                .unwrap_or(Cow::Owned(Value::Null)),
            Expr::GeometryType => Cow::Owned(Value::Int(feature.geometry_type().code())),
            Expr::Not(_) | Expr::And(..) | Expr::Or(..) | Expr::Compare(..) => {
                Cow::Owned(Value::Bool(self.eval(feature)))
            }
        }
    }

    /// The attribute names the expression reads, in order of first use (so
    /// the data layer fetches only those fields).
    pub fn attributes(&self) -> Vec<&str> {
        fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a str>) {
            match e {
                Expr::Attribute(n) => {
                    if !out.contains(&n.name()) {
                        out.push(n.name());
                    }
                }
                Expr::Not(a) => walk(a, out),
                Expr::And(a, b) | Expr::Or(a, b) | Expr::Compare(_, a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Expr::Literal(_) | Expr::GeometryType => {}
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Literal(v) => fmt_literal(v, f),
            Expr::Attribute(n) => write!(f, "[{n}]"),
            Expr::GeometryType => f.write_str("[mapnik::geometry_type]"),
            Expr::Not(e) => write!(f, "(not ({e}))"),
            Expr::And(a, b) => write!(f, "({a} and {b})"),
            Expr::Or(a, b) => write!(f, "({a} or {b})"),
            Expr::Compare(op, a, b) => write!(f, "({a} {} {b})", op.symbol()),
        }
    }
}

fn fmt_literal(v: &Value, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match v {
        Value::Null => f.write_str("null"),
        Value::Bool(b) => write!(f, "{b}"),
        Value::Int(i) => write!(f, "{i}"),
        // `{:?}` always has a `.` or an exponent, so it parses back as a float.
        Value::Float(x) => write!(f, "{x:?}"),
        Value::String(s) => {
            f.write_str("'")?;
            for ch in s.chars() {
                if ch == '\\' || ch == '\'' {
                    f.write_str("\\")?;
                }
                write!(f, "{ch}")?;
            }
            f.write_str("'")
        }
    }
}

/// Something the parser noticed that is legal but probably not what the
/// author meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterNote {
    /// `and` and `or` mixed without parentheses: Mapnik (and tessera)
    /// evaluate them left to right with equal precedence.
    MixedAndOr {
        /// 1-based column of the operator that changed from one to the other.
        column: usize,
    },
}

impl fmt::Display for FilterNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilterNote::MixedAndOr { column } => write!(
                f,
                "column {column}: `and` and `or` are mixed without parentheses; Mapnik gives them \
                 equal precedence and evaluates left to right (`a or b and c` is `(a or b) and c`)"
            ),
        }
    }
}

/// Parses an expression and also returns [`FilterNote`]s about it.
pub fn parse_with_notes(src: &str) -> Result<(Expr, Vec<FilterNote>), FilterError> {
    let tokens = tokenize(src)?;
    let mut p = Parser {
        src,
        tokens,
        pos: 0,
        notes: Vec::new(),
    };
    let expr = p.parse_expr(LOGICAL)?;
    let (tok, at) = p.peek();
    if *tok != Tok::End {
        let msg = match tok {
            Tok::Ident(w) if matches!(w.as_str(), "AND" | "OR" | "And" | "Or") => {
                format!("unexpected `{w}` (the keywords `and` and `or` are lower case)")
            }
            Tok::Plus | Tok::Minus | Tok::Star | Tok::Slash | Tok::Percent => {
                "arithmetic (+ - * / %) is not supported in filters".to_string()
            }
            Tok::Dot => "regular expressions (.match, .replace) are not supported".to_string(),
            _ => format!(
                "expected an operator or the end of the expression, found {}",
                tok.describe()
            ),
        };
        return Err(error_at(src, at, msg));
    }
    Ok((expr, p.notes))
}

// ---------------------------------------------------------------- tokenizer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// Unsigned integer literal (the sign is a separate token).
    Int(u64),
    Float(f64),
    Str(String),
    Attr(String),
    GeomAttr,
    Ident(String),
    LParen,
    RParen,
    Op(CompareOp),
    AndAnd,
    OrOr,
    Bang,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Comma,
    Dot,
    At,
    End,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Int(i) => format!("number `{i}`"),
            Tok::Float(x) => format!("number `{x}`"),
            Tok::Str(s) => format!("string '{s}'"),
            Tok::Attr(a) => format!("attribute `[{a}]`"),
            Tok::GeomAttr => "`[mapnik::geometry_type]`".to_string(),
            Tok::Ident(w) => format!("`{w}`"),
            Tok::LParen => "`(`".to_string(),
            Tok::RParen => "`)`".to_string(),
            Tok::Op(op) => format!("`{}`", op.symbol()),
            Tok::AndAnd => "`&&`".to_string(),
            Tok::OrOr => "`||`".to_string(),
            Tok::Bang => "`!`".to_string(),
            Tok::Plus => "`+`".to_string(),
            Tok::Minus => "`-`".to_string(),
            Tok::Star => "`*`".to_string(),
            Tok::Slash => "`/`".to_string(),
            Tok::Percent => "`%`".to_string(),
            Tok::Comma => "`,`".to_string(),
            Tok::Dot => "`.`".to_string(),
            Tok::At => "`@`".to_string(),
            Tok::End => "the end of the expression".to_string(),
        }
    }
}

fn error_at(src: &str, offset: usize, message: impl Into<String>) -> FilterError {
    let column = src.get(..offset).map_or(offset, |s| s.chars().count()) + 1;
    FilterError {
        column,
        offset,
        message: message.into(),
    }
}

fn tokenize(src: &str) -> Result<Vec<(Tok, usize)>, FilterError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let start = i;
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let two = src.get(i..i + 2).unwrap_or("");
        let (tok, len) = match b {
            b'[' => {
                let Some(close) = src[i + 1..].find(']') else {
                    return Err(error_at(src, start, "`[` without a closing `]`"));
                };
                let name = &src[i + 1..i + 1 + close];
                if name.is_empty() {
                    return Err(error_at(src, start, "empty attribute name `[]`"));
                }
                let tok = if name == "mapnik::geometry_type" {
                    Tok::GeomAttr
                } else if name.starts_with("mapnik::") {
                    return Err(error_at(
                        src,
                        start,
                        format!("`[{name}]` is not supported (only [mapnik::geometry_type] is)"),
                    ));
                } else {
                    Tok::Attr(name.to_string())
                };
                (tok, close + 2)
            }
            b'\'' | b'"' => {
                let (s, len) = lex_string(src, i)?;
                (Tok::Str(s), len)
            }
            b'0'..=b'9' => lex_number(src, i)?,
            b'.' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => lex_number(src, i)?,
            b if b.is_ascii_alphabetic() => {
                let len = src[i..]
                    .bytes()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                    .count();
                (Tok::Ident(src[i..i + len].to_string()), len)
            }
            _ => match two {
                "!=" => (Tok::Op(CompareOp::Ne), 2),
                "<>" => (Tok::Op(CompareOp::Ne), 2),
                "<=" => (Tok::Op(CompareOp::Le), 2),
                ">=" => (Tok::Op(CompareOp::Ge), 2),
                "&&" => (Tok::AndAnd, 2),
                "||" => (Tok::OrOr, 2),
                _ => match b {
                    b'=' => (Tok::Op(CompareOp::Eq), 1),
                    b'<' => (Tok::Op(CompareOp::Lt), 1),
                    b'>' => (Tok::Op(CompareOp::Gt), 1),
                    b'!' => (Tok::Bang, 1),
                    b'(' => (Tok::LParen, 1),
                    b')' => (Tok::RParen, 1),
                    b'+' => (Tok::Plus, 1),
                    b'-' => (Tok::Minus, 1),
                    b'*' => (Tok::Star, 1),
                    b'/' => (Tok::Slash, 1),
                    b'%' => (Tok::Percent, 1),
                    b',' => (Tok::Comma, 1),
                    b'.' => (Tok::Dot, 1),
                    b'@' => (Tok::At, 1),
                    _ => {
                        let ch = src[i..].chars().next().unwrap_or('?');
                        let hint = if ch == '&' || ch == '|' {
                            " (use `&&`/`and` or `||`/`or`)"
                        } else {
                            ""
                        };
                        return Err(error_at(
                            src,
                            start,
                            format!("unexpected character `{ch}`{hint}"),
                        ));
                    }
                },
            },
        };
        out.push((tok, start));
        i += len;
    }
    out.push((Tok::End, src.len()));
    Ok(out)
}

/// A quoted string starting at `start`; Mapnik's escapes (`\n`, `\t`, `\'`,
/// `\"`, `\\`, `\xHH`, ...). An unknown escape keeps its backslash, as in
/// Mapnik.
fn lex_string(src: &str, start: usize) -> Result<(String, usize), FilterError> {
    let quote = src[start..].chars().next().unwrap_or('\'');
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices().peekable();
    while let Some((off, ch)) = chars.next() {
        if ch == quote {
            return Ok((out, off + 2));
        }
        if ch != '\\' {
            out.push(ch);
            continue;
        }
        let escaped = match chars.peek().map(|&(_, c)| c) {
            Some('a') => Some('\u{7}'),
            Some('b') => Some('\u{8}'),
            Some('f') => Some('\u{c}'),
            Some('n') => Some('\n'),
            Some('r') => Some('\r'),
            Some('t') => Some('\t'),
            Some('v') => Some('\u{b}'),
            Some('\\') => Some('\\'),
            Some('\'') => Some('\''),
            Some('"') => Some('"'),
            Some('x') => {
                chars.next();
                let mut value = 0u32;
                let mut n = 0;
                while n < 2 {
                    match chars.peek().and_then(|&(_, c)| c.to_digit(16)) {
                        Some(d) => {
                            value = value * 16 + d;
                            n += 1;
                            chars.next();
                        }
                        None => break,
                    }
                }
                if n == 0 {
                    return Err(error_at(src, start + 1 + off, "`\\x` without hex digits"));
                }
                out.push(char::from_u32(value).unwrap_or('\u{fffd}'));
                continue;
            }
            _ => None,
        };
        match escaped {
            Some(c) => {
                chars.next();
                out.push(c);
            }
            None => out.push('\\'),
        }
    }
    Err(error_at(
        src,
        start,
        format!("string without a closing {quote}"),
    ))
}

fn lex_number(src: &str, start: usize) -> Result<(Tok, usize), FilterError> {
    let bytes = src.as_bytes();
    let mut i = start;
    let digits = |i: &mut usize| {
        while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
    };
    digits(&mut i);
    let mut is_float = false;
    if bytes.get(i) == Some(&b'.') {
        is_float = true;
        i += 1;
        digits(&mut i);
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if bytes.get(j).is_some_and(u8::is_ascii_digit) {
            is_float = true;
            i = j;
            digits(&mut i);
        }
    }
    let text = &src[start..i];
    let tok = if is_float {
        Tok::Float(
            text.parse()
                .map_err(|_| error_at(src, start, format!("bad number `{text}`")))?,
        )
    } else {
        Tok::Int(
            text.parse()
                .map_err(|_| error_at(src, start, format!("integer `{text}` is too large")))?,
        )
    };
    Ok((tok, i - start))
}

// ------------------------------------------------------------------- parser

/// Precedence levels for the climbing parser.
const LOGICAL: u8 = 1;
const EQUALITY: u8 = 2;
const RELATIONAL: u8 = 3;

#[derive(Clone, Copy, PartialEq)]
enum Logical {
    And,
    Or,
}

enum BinOp {
    Logical(Logical),
    Compare(CompareOp),
}

struct Parser<'s> {
    src: &'s str,
    tokens: Vec<(Tok, usize)>,
    pos: usize,
    notes: Vec<FilterNote>,
}

const FUNCTIONS: &[&str] = &[
    "sin", "cos", "tan", "atan", "exp", "log", "abs", "length", "min", "max", "pow",
];

impl Parser<'_> {
    fn peek(&self) -> (&Tok, usize) {
        let i = self.pos.min(self.tokens.len() - 1);
        (&self.tokens[i].0, self.tokens[i].1)
    }

    fn bump(&mut self) -> (Tok, usize) {
        let i = self.pos.min(self.tokens.len() - 1);
        self.pos += 1;
        self.tokens[i].clone()
    }

    fn err(&self, offset: usize, msg: impl Into<String>) -> FilterError {
        error_at(self.src, offset, msg)
    }

    /// The binary operator at the cursor and its precedence.
    fn peek_binary(&self) -> Option<(BinOp, u8)> {
        let op = match self.peek().0 {
            Tok::AndAnd => BinOp::Logical(Logical::And),
            Tok::OrOr => BinOp::Logical(Logical::Or),
            Tok::Op(op) => BinOp::Compare(*op),
            Tok::Ident(w) => match w.as_str() {
                "and" => BinOp::Logical(Logical::And),
                "or" => BinOp::Logical(Logical::Or),
                "eq" | "is" => BinOp::Compare(CompareOp::Eq),
                "neq" => BinOp::Compare(CompareOp::Ne),
                "lt" => BinOp::Compare(CompareOp::Lt),
                "le" => BinOp::Compare(CompareOp::Le),
                "gt" => BinOp::Compare(CompareOp::Gt),
                "ge" => BinOp::Compare(CompareOp::Ge),
                _ => return None,
            },
            _ => return None,
        };
        let prec = match &op {
            BinOp::Logical(_) => LOGICAL,
            BinOp::Compare(CompareOp::Eq | CompareOp::Ne) => EQUALITY,
            BinOp::Compare(_) => RELATIONAL,
        };
        Some((op, prec))
    }

    fn parse_expr(&mut self, min_prec: u8) -> Result<Expr, FilterError> {
        let mut lhs = self.parse_prefix()?;
        let mut chain: Option<Logical> = None;
        while let Some((op, prec)) = self.peek_binary() {
            if prec < min_prec {
                break;
            }
            let (_, at) = self.bump();
            let rhs = self.parse_expr(prec + 1)?;
            lhs = match op {
                BinOp::Logical(l) => {
                    if chain.is_some_and(|c| c != l) {
                        self.notes.push(FilterNote::MixedAndOr {
                            column: error_at(self.src, at, "").column,
                        });
                    }
                    chain = Some(l);
                    match l {
                        Logical::And => Expr::And(Box::new(lhs), Box::new(rhs)),
                        Logical::Or => Expr::Or(Box::new(lhs), Box::new(rhs)),
                    }
                }
                BinOp::Compare(op) => Expr::Compare(op, Box::new(lhs), Box::new(rhs)),
            };
        }
        Ok(lhs)
    }

    fn parse_prefix(&mut self) -> Result<Expr, FilterError> {
        let (tok, at) = self.peek();
        match tok {
            Tok::Bang => {
                self.bump();
                Ok(Expr::Not(Box::new(self.parse_expr(EQUALITY)?)))
            }
            Tok::Ident(w) if w == "not" => {
                self.bump();
                Ok(Expr::Not(Box::new(self.parse_expr(EQUALITY)?)))
            }
            Tok::Minus | Tok::Plus => {
                let negate = *tok == Tok::Minus;
                self.bump();
                let (tok, num_at) = self.bump();
                match tok {
                    Tok::Int(u) => {
                        let v = if negate {
                            0i64.checked_sub_unsigned(u)
                        } else {
                            i64::try_from(u).ok()
                        };
                        v.map(|v| Expr::Literal(Value::Int(v)))
                            .ok_or_else(|| self.err(num_at, format!("integer `{u}` is too large")))
                    }
                    Tok::Float(x) => Ok(Expr::Literal(Value::Float(if negate { -x } else { x }))),
                    _ => Err(self.err(
                        at,
                        "unary `-`/`+` is only supported in front of a number (arithmetic is not supported)",
                    )),
                }
            }
            _ => self.parse_primary(),
        }
    }

    fn parse_primary(&mut self) -> Result<Expr, FilterError> {
        let (tok, at) = self.bump();
        match tok {
            Tok::Int(u) => i64::try_from(u)
                .map(|v| Expr::Literal(Value::Int(v)))
                .map_err(|_| self.err(at, format!("integer `{u}` is too large"))),
            Tok::Float(x) => Ok(Expr::Literal(Value::Float(x))),
            Tok::Str(s) => Ok(Expr::Literal(Value::String(s))),
            Tok::Attr(a) => Ok(Expr::Attribute(Attr::new(a))),
            Tok::GeomAttr => Ok(Expr::GeometryType),
            Tok::LParen => {
                let e = self.parse_expr(LOGICAL)?;
                let (close, close_at) = self.bump();
                if close != Tok::RParen {
                    return Err(self.err(
                        close_at,
                        format!(
                            "expected `)` to close the `(` at column {}, found {}",
                            error_at(self.src, at, "").column,
                            close.describe()
                        ),
                    ));
                }
                Ok(e)
            }
            Tok::At => Err(self.err(at, "variables (`@name`) are not supported")),
            Tok::Ident(w) => self.parse_word(w, at),
            other => Err(self.err(at, format!("expected a value, found {}", other.describe()))),
        }
    }

    fn parse_word(&mut self, w: String, at: usize) -> Result<Expr, FilterError> {
        let lower = w.to_ascii_lowercase();
        let lit = |v: Value| Ok(Expr::Literal(v));
        match lower.as_str() {
            "true" => return lit(Value::Bool(true)),
            "false" => return lit(Value::Bool(false)),
            "null" => return lit(Value::Null),
            "point" => return lit(Value::Int(1)),
            "linestring" => return lit(Value::Int(2)),
            "polygon" => return lit(Value::Int(3)),
            "collection" => return lit(Value::Int(4)),
            _ => {}
        }
        match w.as_str() {
            "pi" => lit(Value::Float(std::f64::consts::PI)),
            "deg_to_rad" => lit(Value::Float(std::f64::consts::PI / 180.0)),
            "rad_to_deg" => lit(Value::Float(180.0 / std::f64::consts::PI)),
            "and" | "or" | "not" => {
                Err(self.err(at, format!("expected a value, found keyword `{w}`")))
            }
            f if FUNCTIONS.contains(&f) && *self.peek().0 == Tok::LParen => {
                Err(self.err(at, format!("functions (`{f}(...)`) are not supported")))
            }
            // Mapnik reads an unquoted word as a string (mapnik/mapnik#3389).
            _ => lit(Value::String(w)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    struct F {
        attrs: HashMap<&'static str, Value>,
        geom: GeometryType,
    }

    impl FeatureView for F {
        fn attribute(&self, name: &str) -> Option<Value> {
            self.attrs.get(name).cloned()
        }
        fn geometry_type(&self) -> GeometryType {
            self.geom
        }
    }

    fn feature() -> F {
        let attrs = HashMap::from([
            ("name", Value::from("Helsinki")),
            ("empty", Value::from("")),
            ("pop", Value::Int(650_000)),
            ("area", Value::Float(715.48)),
            ("neg", Value::Int(-3)),
            ("flag", Value::Bool(true)),
            ("nothing", Value::Null),
            ("highway", Value::from("primary")),
            ("it's", Value::from("quote")),
            ("num_str", Value::from("10")),
        ]);
        F {
            attrs,
            geom: GeometryType::Polygon,
        }
    }

    fn attr(n: &str) -> Box<Expr> {
        Box::new(Expr::Attribute(n.into()))
    }
    fn lit(v: impl Into<Value>) -> Box<Expr> {
        Box::new(Expr::Literal(v.into()))
    }

    #[test]
    fn parse_table() {
        use CompareOp::*;
        let cases: Vec<(&str, Expr)> = vec![
            ("[pop] > 1000", Expr::Compare(Gt, attr("pop"), lit(1000i64))),
            ("[pop]>=-5", Expr::Compare(Ge, attr("pop"), lit(-5i64))),
            ("[a] = 'x'", Expr::Compare(Eq, attr("a"), lit("x"))),
            ("[a] = \"x y\"", Expr::Compare(Eq, attr("a"), lit("x y"))),
            ("[a] <> 1.5", Expr::Compare(Ne, attr("a"), lit(1.5))),
            ("[a] != -.5", Expr::Compare(Ne, attr("a"), lit(-0.5))),
            ("[a] = 1e3", Expr::Compare(Eq, attr("a"), lit(1000.0))),
            (
                "[a] neq null",
                Expr::Compare(Ne, attr("a"), Box::new(Expr::Literal(Value::Null))),
            ),
            (
                "[a] = NULL",
                Expr::Compare(Eq, attr("a"), Box::new(Expr::Literal(Value::Null))),
            ),
            ("[a] le 2", Expr::Compare(Le, attr("a"), lit(2i64))),
            ("[a] is True", Expr::Compare(Eq, attr("a"), lit(true))),
            (
                "[a] = residential",
                Expr::Compare(Eq, attr("a"), lit("residential")),
            ),
            (
                "[mapnik::geometry_type] = polygon",
                Expr::Compare(Eq, Box::new(Expr::GeometryType), lit(3i64)),
            ),
            (
                "[mapnik::geometry_type]=Point",
                Expr::Compare(Eq, Box::new(Expr::GeometryType), lit(1i64)),
            ),
            (
                "[name with space]",
                Expr::Attribute("name with space".into()),
            ),
            ("'it\\'s'", Expr::Literal(Value::from("it's"))),
            ("'a\\\\b'", Expr::Literal(Value::from("a\\b"))),
            ("'tab\\there'", Expr::Literal(Value::from("tab\there"))),
            ("'\\x41'", Expr::Literal(Value::from("A"))),
            ("'keep\\d'", Expr::Literal(Value::from("keep\\d"))),
            ("\"it's\"", Expr::Literal(Value::from("it's"))),
            ("'ünïcødé'", Expr::Literal(Value::from("ünïcødé"))),
            (
                "not [a] = 1",
                Expr::Not(Box::new(Expr::Compare(Eq, attr("a"), lit(1i64)))),
            ),
            ("![a]", Expr::Not(attr("a"))),
            ("not not [a]", Expr::Not(Box::new(Expr::Not(attr("a"))))),
            // `and`/`or`: equal precedence, left to right (Mapnik).
            (
                "[a] or [b] and [c]",
                Expr::And(Box::new(Expr::Or(attr("a"), attr("b"))), attr("c")),
            ),
            (
                "[a] and [b] or [c]",
                Expr::Or(Box::new(Expr::And(attr("a"), attr("b"))), attr("c")),
            ),
            (
                "[a] or ([b] and [c])",
                Expr::Or(attr("a"), Box::new(Expr::And(attr("b"), attr("c")))),
            ),
            (
                "[a] = 1 && [b] != 2 || ![c]",
                Expr::Or(
                    Box::new(Expr::And(
                        Box::new(Expr::Compare(Eq, attr("a"), lit(1i64))),
                        Box::new(Expr::Compare(Ne, attr("b"), lit(2i64))),
                    )),
                    Box::new(Expr::Not(attr("c"))),
                ),
            ),
            // Relational binds tighter than equality.
            (
                "[a] < 1 = true",
                Expr::Compare(
                    Eq,
                    Box::new(Expr::Compare(Lt, attr("a"), lit(1i64))),
                    lit(true),
                ),
            ),
            ("pi", Expr::Literal(Value::Float(std::f64::consts::PI))),
            ("((([a])))", Expr::Attribute("a".into())),
            (
                "-9223372036854775808 = [a]",
                Expr::Compare(Eq, lit(i64::MIN), attr("a")),
            ),
        ];
        for (src, want) in cases {
            match Expr::parse(src) {
                Ok(got) => assert_eq!(got, want, "{src}"),
                Err(e) => panic!("{src}: {e}"),
            }
        }
    }

    #[test]
    fn parse_errors_name_the_column() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 1, "expected a value"),
            ("[a] =", 6, "expected a value"),
            ("[a] = 'x", 7, "closing"),
            ("[a = 1", 1, "closing `]`"),
            ("[] = 1", 1, "empty attribute"),
            ("([a] = 1", 9, "expected `)`"),
            ("[a] = 1)", 8, "expected an operator"),
            ("[a] + 1 > 2", 5, "arithmetic"),
            ("[a] * 2", 5, "arithmetic"),
            ("-[a] > 2", 1, "unary"),
            ("[a].match('x')", 4, "regular expressions"),
            ("@zoom > 3", 1, "variables"),
            ("max([a], 2) > 1", 1, "functions"),
            ("[a] = 1 AND [b] = 2", 9, "lower case"),
            ("[a] & [b]", 5, "`&&`"),
            ("[a] = 1 # 2", 9, "unexpected character `#`"),
            ("[a] = 99999999999999999999", 7, "too large"),
            ("[mapnik::feature_id] = 1", 1, "not supported"),
            ("[a] == 1", 6, "expected a value"),
            ("[a] = 'x' and", 14, "expected a value"),
            ("'ééé' = 1 )", 11, "expected an operator"),
        ];
        for &(src, column, needle) in cases {
            let err = Expr::parse(src).expect_err(src);
            assert_eq!(err.column, column, "{src}: {err}");
            assert!(err.message.contains(needle), "{src}: {err}");
        }
    }

    #[test]
    fn notes_on_mixed_and_or() {
        let (_, notes) = parse_with_notes("[a] = 1 or [b] = 2 and [c] = 3").unwrap();
        assert_eq!(notes, vec![FilterNote::MixedAndOr { column: 20 }]);
        let (_, notes) = parse_with_notes("[a] or ([b] and [c])").unwrap();
        assert!(notes.is_empty());
        let (_, notes) = parse_with_notes("[a] and [b] and [c]").unwrap();
        assert!(notes.is_empty());
    }

    #[test]
    fn eval_table() {
        let f = feature();
        let cases: &[(&str, bool)] = &[
            ("[pop] > 1000", true),
            ("[pop] > 1000.5", true),
            ("[pop] = 650000.0", true),
            ("[area] < 716", true),
            ("[area] >= 715.48", true),
            ("[name] = 'Helsinki'", true),
            ("[name] = \"Helsinki\"", true),
            ("[name] != 'Espoo'", true),
            ("[name] > 'Espoo'", true),
            ("[name] = Helsinki", true),
            // string vs number: never equal, `!=` true.
            ("[num_str] = 10", false),
            ("[num_str] != 10", true),
            ("[num_str] > 5", false),
            ("[pop] = '650000'", false),
            // null
            ("[nothing] = null", true),
            ("[missing] = null", true),
            ("[missing] != null", false),
            ("[name] = null", false),
            ("[name] != null", true),
            ("[pop] != null", true),
            ("[missing] = 0", false),
            ("[missing] != 0", true),
            ("[missing] < 1", false),
            ("[missing] <= null", true),
            // Mapnik's quirk: null != '' is false, '' != null is true.
            ("[missing] != ''", false),
            ("[missing] = ''", false),
            ("'' != [missing]", true),
            ("[missing] != 'x'", true),
            ("[empty] != ''", false),
            ("[empty] = ''", true),
            // bools are numbers
            ("[flag] = 1", true),
            ("[flag] = true", true),
            ("[flag] > 0.5", true),
            ("[flag] = 'true'", false),
            // truthiness
            ("[name]", true),
            ("[empty]", false),
            ("[missing]", false),
            ("[neg]", false),
            ("[pop]", true),
            ("not [missing]", true),
            ("0", false),
            ("1.5", true),
            // logic
            ("[pop] > 1 and [name] = 'Helsinki'", true),
            ("[pop] > 1 and [name] = 'Espoo'", false),
            ("[pop] < 1 or [name] = 'Helsinki'", true),
            ("not ([pop] < 1 or [name] = 'Espoo')", true),
            ("![flag]", false),
            // left-to-right and/or: (true or x) and false = false
            ("[pop] > 1 or [name] = 'x' and [area] < 0", false),
            ("[pop] > 1 or ([name] = 'x' and [area] < 0)", true),
            // geometry type
            ("[mapnik::geometry_type] = polygon", true),
            ("[mapnik::geometry_type] = 3", true),
            ("[mapnik::geometry_type] = point", false),
            ("[mapnik::geometry_type] != linestring", true),
            ("[mapnik::geometry_type] > 2", true),
            // quoting in attribute names
            ("[it's] = 'quote'", true),
        ];
        for &(src, want) in cases {
            let e = Expr::parse(src).unwrap_or_else(|err| panic!("{src}: {err}"));
            assert_eq!(e.eval(&f), want, "{src}");
            // The same through a trait object.
            let dynf: &dyn FeatureView = &f;
            assert_eq!(e.eval(dynf), want, "{src} (dyn)");
        }
    }

    #[test]
    fn utf16_string_order() {
        // U+FF5E sorts after U+1F600 in UTF-8/code points but before it in
        // UTF-16 code units (surrogates are 0xD800..), as ICU compares.
        let a = Value::from("\u{ff5e}");
        let b = Value::from("\u{1f600}");
        assert!(Value::compare(CompareOp::Gt, &a, &b));
    }

    #[test]
    fn nan_compares_false_except_ne() {
        let nan = Value::Float(f64::NAN);
        assert!(!Value::compare(CompareOp::Eq, &nan, &nan));
        assert!(Value::compare(CompareOp::Ne, &nan, &Value::Int(1)));
        assert!(!Value::compare(CompareOp::Lt, &nan, &Value::Int(1)));
    }

    #[test]
    fn attributes_are_listed_once() {
        let e = Expr::parse("[a] = 1 or [b] = [a] and [mapnik::geometry_type] = 1").unwrap();
        assert_eq!(e.attributes(), vec!["a", "b"]);
    }

    #[test]
    fn display_examples() {
        let e = Expr::parse("[a] = 'it''s' or not [b] > -1.5").unwrap_err();
        assert!(e.message.contains("expected an operator"));
        let e = Expr::parse("[a] = 'it\\'s' or not [b] > -1.5").unwrap();
        assert_eq!(e.to_string(), "(([a] = 'it\\'s') or (not (([b] > -1.5))))");
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            prop::num::f64::NORMAL.prop_map(Value::Float),
            Just(Value::Float(0.0)),
            "\\PC{0,6}".prop_map(Value::String),
            "[\\\\'\"a ]{0,6}".prop_map(Value::String),
        ]
    }

    fn arb_expr() -> impl Strategy<Value = Expr> {
        let leaf = prop_oneof![
            arb_value().prop_map(Expr::Literal),
            "[a-z_][a-z0-9_ ]{0,8}".prop_map(|n| Expr::Attribute(n.into())),
            Just(Expr::GeometryType),
        ];
        leaf.prop_recursive(4, 24, 2, |inner| {
            let op = prop_oneof![
                Just(CompareOp::Eq),
                Just(CompareOp::Ne),
                Just(CompareOp::Lt),
                Just(CompareOp::Le),
                Just(CompareOp::Gt),
                Just(CompareOp::Ge),
            ];
            prop_oneof![
                inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
                (op, inner.clone(), inner).prop_map(|(op, a, b)| Expr::Compare(
                    op,
                    Box::new(a),
                    Box::new(b)
                )),
            ]
        })
    }

    proptest! {
        #[test]
        fn print_parse_round_trip(e in arb_expr()) {
            let printed = e.to_string();
            let parsed = Expr::parse(&printed);
            prop_assert_eq!(parsed.as_ref(), Ok(&e), "printed as {}", printed);
        }

        #[test]
        fn parser_never_panics(s in "\\PC{0,30}") {
            let _ = Expr::parse(&s);
        }

        #[test]
        fn parser_never_panics_on_filter_alphabet(s in "[\\[\\]()'\"=!<>&|a-z0-9 .\\-+]{0,30}") {
            let _ = Expr::parse(&s);
        }
    }
}
