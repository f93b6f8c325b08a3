//! The errors of render-core.
//!
//! [`Error`] is what loading a style returns. [`FilterError`] and
//! [`ColorError`] come from the two small languages inside a style (filter
//! expressions and CSS colours); they can be used on their own and are
//! wrapped with a file position when they come from a style file.

use std::fmt;
use std::path::PathBuf;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where something is in a style file: the file (if the style came from one),
/// and a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The style file, or `None` for a style loaded from a string.
    pub file: Option<PathBuf>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column (in characters).
    pub column: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}:{}:{}", file.display(), self.line, self.column),
            None => write!(f, "<string>:{}:{}", self.line, self.column),
        }
    }
}

/// Everything that can go wrong while loading a style.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The style file could not be read.
    #[error("cannot read style file {}: {source}", path.display())]
    Io {
        /// The file that was asked for.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// The file (or a file it includes through an entity or XInclude) is
    /// not well-formed XML, uses an XML feature that is not supported (a
    /// conditional section, `xi:fallback`), or names an entity or file that
    /// cannot be used (undeclared, missing, a URL, outside the style's
    /// folder, a loop, over the expansion limits).
    #[error("{location}: XML error: {message}")]
    Xml {
        /// Where the parser stopped.
        location: Location,
        /// What the XML parser said.
        message: String,
    },
    /// The XML is well-formed but the style is invalid or uses something
    /// tessera does not support and cannot ignore safely.
    #[error("{location}: <{element}>: {message}")]
    Style {
        /// The element (or attribute) at fault.
        location: Location,
        /// Its name, e.g. `LineSymbolizer`.
        element: String,
        /// What is wrong, naming the attribute where there is one.
        message: String,
    },
    /// A layer's data could not be loaded.
    #[error("layer `{layer}`: {source}")]
    Data {
        /// The layer's name in the style.
        layer: String,
        /// What went wrong.
        #[source]
        source: crate::source::SourceError,
    },
    /// A tile could not be encoded.
    #[error(transparent)]
    Encode(#[from] crate::encode::EncodeError),
    /// A metatile could not be set up (size, zoom).
    #[error("cannot render {what}: {message}")]
    Render {
        /// Which metatile or tile.
        what: String,
        /// Why not.
        message: String,
    },
    /// A render was stopped from outside (see
    /// [`Renderer::render_metatile_unless_stopped`](crate::Renderer::render_metatile_unless_stopped)):
    /// nobody waits for it any more.
    #[error("rendering {what} was stopped before it finished")]
    Stopped {
        /// Which metatile.
        what: String,
    },
    /// A `<Filter>` expression that does not parse.
    #[error("{location}: <Filter> `{expression}`: {source}")]
    Filter {
        /// Where the `<Filter>` element is.
        location: Location,
        /// The expression text.
        expression: String,
        /// The parser's error, with the column inside the expression.
        #[source]
        source: FilterError,
    },
}

/// A filter expression that does not parse, or uses a part of Mapnik's
/// expression language that tessera does not support.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct FilterError {
    /// 1-based column (in characters) inside the expression text.
    pub column: usize,
    /// Byte offset of the same place, for callers that want to point into
    /// the original text.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// A colour that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid colour `{input}`: {reason}")]
pub struct ColorError {
    /// The text that was given.
    pub input: String,
    /// Why it is not a colour.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Error>();
        assert_send_sync::<FilterError>();
        assert_send_sync::<ColorError>();
    }

    #[test]
    fn location_names_file_line_and_column() {
        let loc = Location {
            file: Some(PathBuf::from("styles/osm.xml")),
            line: 12,
            column: 5,
        };
        assert_eq!(loc.to_string(), "styles/osm.xml:12:5");
        let loc = Location {
            file: None,
            line: 3,
            column: 1,
        };
        assert_eq!(loc.to_string(), "<string>:3:1");
    }
}
