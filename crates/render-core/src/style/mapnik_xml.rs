//! Loading Mapnik XML into a [`Map`].
//!
//! The loader walks the document once and looks at **every** element and
//! attribute. Each one is either understood, or ignored with a
//! [`StyleWarning`] (when ignoring it cannot change the picture, or Mapnik
//! ignores it too), or refused with an [`Error`] naming the file, line and
//! element (when ignoring it would draw a visibly different picture). The
//! lists are in `docs/styles.md`.
//!
//! A document with a DOCTYPE or XInclude first goes through [`entities`]:
//! internal and external entities (`<!ENTITY name "...">`, `<!ENTITY name
//! SYSTEM "file">`, parameter entities) and `<xi:include>` are expanded into
//! one text, with a source map so that every error and warning names the
//! file and line the element came from. A document with neither is parsed
//! by `roxmltree` as it is.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use roxmltree::{Attribute, Document, Node, ParsingOptions};

use super::color::Color;
use super::composite::CompOp;
use super::filter::{parse_with_notes, Expr};
use super::symbolizer::{
    parse_dasharray, Affine, GammaMethod, LineCap, LineJoin, LinePatternKind,
    LinePatternSymbolizer, LineSymbolizer, MarkerMultiPolicy, MarkerPlacement, MarkersSymbolizer,
    PaintOverride, PatternAlignment, PointPlacement, PointSymbolizer, PolygonPatternSymbolizer,
    PolygonSymbolizer, RasterSymbolizer, ScalingMethod, Symbolizer,
};
use super::text::FontSet;
use super::{
    Datasource, FilterMode, GateCell, Layer, LoadedMap, Map, OgrLayer, Rule, RuleKind, Style,
    StyleWarning, DEFAULT_SRS,
};
use crate::error::{Error, Location, Result};
use crate::image::ImageInfo;

mod entities;
mod text_xml;

/// Loads a style file; relative paths resolve against its folder unless the
/// `<Map base="...">` attribute says otherwise.
pub(crate) fn load_file(path: &Path) -> Result<LoadedMap> {
    let xml = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Entity files must stay in the style's folder, shown as it was given.
    let root = path.parent().unwrap_or(Path::new("")).to_path_buf();
    load(&xml, base, &root, Some(path.to_path_buf()), false)
}

/// Loads a style from a string; `base_dir` wins over `<Map base>`, as in
/// Mapnik's `load_map_string`, and is the folder entity files must stay in.
pub(crate) fn load_str(xml: &str, base_dir: &Path, file: Option<PathBuf>) -> Result<LoadedMap> {
    load(xml, base_dir.to_path_buf(), base_dir, file, true)
}

fn load(
    xml: &str,
    base_dir: PathBuf,
    root: &Path,
    file: Option<PathBuf>,
    explicit_base: bool,
) -> Result<LoadedMap> {
    let xml = xml.strip_prefix('\u{feff}').unwrap_or(xml);
    let (text, expanded_map, warnings) = match entities::expand(xml, file.as_deref(), root)? {
        Some(e) => (std::borrow::Cow::Owned(e.text), Some(e.map), e.warnings),
        None => (std::borrow::Cow::Borrowed(xml), None, Vec::new()),
    };
    let options = ParsingOptions {
        allow_dtd: true,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(&text, options).map_err(|e| {
        let pos = e.pos();
        let mut message = e.to_string();
        if matches!(e, roxmltree::Error::UnknownEntityReference(..)) {
            message.push_str(
                " (declare it in a DOCTYPE: <!ENTITY name \"value\"> or \
                 <!ENTITY name SYSTEM \"file.xml\">)",
            );
        }
        let location = match &expanded_map {
            Some(map) => {
                // roxmltree's position is in the expanded text: the map
                // names the real file and line instead.
                message = message.replace(&format!(" at {pos}"), "");
                map.location(entities::offset_of(&text, pos.row, pos.col))
            }
            None => Location {
                file: file.clone(),
                line: pos.row,
                column: pos.col,
            },
        };
        Error::Xml { location, message }
    })?;
    // A line index of the file itself when nothing was expanded: positions
    // cost a binary search instead of a scan from the start of the text.
    let source_map = match expanded_map {
        Some(map) => map,
        None => entities::SourceMap::of_text(xml, file.clone()),
    };
    let mut loader = Loader {
        doc: &doc,
        file,
        source_map,
        base_dir,
        explicit_base,
        relative_to_xml: true,
        warnings,
        templates: HashMap::new(),
        fontsets: Vec::new(),
        text_faces: Vec::new(),
        layer_locations: Vec::new(),
        image_files: Default::default(),
    };
    let mut map = loader.parse_map(doc.root_element())?;
    map.input_files = loader
        .source_map
        .file_paths()
        .map(Path::to_path_buf)
        .collect();
    for image in loader.image_files.take() {
        if !map.input_files.contains(&image) {
            map.input_files.push(image);
        }
    }
    Ok(LoadedMap {
        map,
        warnings: loader.warnings,
    })
}

/// Datasource parameters: name → (value, byte position of the `<Parameter>`).
type Params = HashMap<String, (String, usize)>;

struct Loader<'d, 'i> {
    doc: &'d Document<'i>,
    file: Option<PathBuf>,
    /// Where the bytes of the parsed text came from: files, lines and
    /// columns.
    source_map: entities::SourceMap,
    base_dir: PathBuf,
    /// `base_dir` came from the caller (`Map::from_str`) and wins over
    /// `<Map base>`.
    explicit_base: bool,
    /// `<Map paths-from-xml>`, default true.
    relative_to_xml: bool,
    warnings: Vec<StyleWarning>,
    /// `<Map><Datasource name="...">` templates.
    templates: HashMap<String, Params>,
    /// The `<FontSet>`s so far (a text symbolizer sees those defined
    /// before it, as in Mapnik).
    fontsets: Vec<FontSet>,
    /// Each distinct face list of a text symbolizer, where first used.
    text_faces: Vec<(Vec<String>, Location)>,
    /// Where each layer of `Map::layers` is (its file may be an included
    /// one).
    layer_locations: Vec<Location>,
    /// The constant image files named so far (for `Map::input_files`).
    image_files: std::cell::RefCell<Vec<PathBuf>>,
}

/// The concatenated text content of an element (text and CDATA children).
fn text_of(node: Node<'_, '_>) -> String {
    node.children()
        .filter(|c| c.is_text())
        .filter_map(|c| c.text())
        .collect()
}

fn name_of<'a>(node: Node<'a, '_>) -> &'a str {
    node.tag_name().name()
}

/// Mapnik's boolean spellings.
fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Some(true),
        "false" | "off" | "no" | "0" => Some(false),
        _ => None,
    }
}

impl Loader<'_, '_> {
    // ------------------------------------------------------------ helpers

    fn location(&self, pos: usize) -> Location {
        self.source_map.location(pos)
    }

    fn node_loc(&self, node: Node<'_, '_>) -> Location {
        self.location(node.range().start)
    }

    fn attr_loc(&self, a: &Attribute<'_, '_>) -> Location {
        self.location(a.range().start)
    }

    fn line_of(&self, node: Node<'_, '_>) -> u32 {
        self.node_loc(node).line
    }

    fn warn(&mut self, location: Location, element: &str, message: impl Into<String>) {
        let w = StyleWarning {
            location,
            element: element.to_string(),
            message: message.into(),
        };
        // Returned to the caller, who says it (once).
        tracing::debug!("{w}");
        self.warnings.push(w);
    }

    fn warn_node(&mut self, node: Node<'_, '_>, message: impl Into<String>) {
        let loc = self.node_loc(node);
        self.warn(loc, name_of(node), message);
    }

    fn warn_attr(&mut self, node: Node<'_, '_>, a: &Attribute<'_, '_>, message: impl Into<String>) {
        let loc = self.attr_loc(a);
        self.warn(loc, name_of(node), message);
    }

    fn error_node(&self, node: Node<'_, '_>, message: impl Into<String>) -> Error {
        Error::Style {
            location: self.node_loc(node),
            element: name_of(node).to_string(),
            message: message.into(),
        }
    }

    fn error_attr(
        &self,
        node: Node<'_, '_>,
        a: &Attribute<'_, '_>,
        message: impl Into<String>,
    ) -> Error {
        Error::Style {
            location: self.attr_loc(a),
            element: name_of(node).to_string(),
            message: message.into(),
        }
    }

    fn unknown_attr(&mut self, node: Node<'_, '_>, a: &Attribute<'_, '_>) {
        let msg = format!("unknown attribute `{}` ignored", a.name());
        self.warn_attr(node, a, msg);
    }

    /// Warns about text and unknown elements among the children of `node`
    /// that the caller did not handle; returns the element children.
    fn stray_text(&mut self, node: Node<'_, '_>) {
        for child in node.children() {
            if child.is_text() && !child.text().unwrap_or("").trim().is_empty() {
                let loc = self.node_loc(child);
                self.warn(loc, name_of(node), "text content ignored");
            }
        }
    }

    fn bad_value(&self, node: Node<'_, '_>, a: &Attribute<'_, '_>, what: &str) -> Error {
        let v = a.value();
        let msg = if v.contains('[') || v.contains('@') {
            format!(
                "`{}=\"{v}\"`: expressions in symbolizer properties are not supported, only constant values",
                a.name()
            )
        } else {
            format!("`{}` must be {what}, found `{v}`", a.name())
        };
        self.error_attr(node, a, msg)
    }

    fn attr_f64(&self, node: Node<'_, '_>, a: &Attribute<'_, '_>) -> Result<f64> {
        a.value()
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| self.bad_value(node, a, "a number"))
    }

    fn attr_non_negative(&self, node: Node<'_, '_>, a: &Attribute<'_, '_>) -> Result<f64> {
        let v = self.attr_f64(node, a)?;
        if v < 0.0 {
            return Err(self.bad_value(node, a, "a non-negative number"));
        }
        Ok(v)
    }

    /// An opacity, clamped to 0..=1 with a warning when it is outside.
    fn attr_opacity(&mut self, node: Node<'_, '_>, a: &Attribute<'_, '_>) -> Result<f64> {
        let v = self.attr_f64(node, a)?;
        if !(0.0..=1.0).contains(&v) {
            let msg = format!("`{}=\"{}\"` clamped to 0..1", a.name(), a.value());
            self.warn_attr(node, a, msg);
        }
        Ok(v.clamp(0.0, 1.0))
    }

    fn attr_u32(&self, node: Node<'_, '_>, a: &Attribute<'_, '_>) -> Result<u32> {
        a.value()
            .trim()
            .parse::<u32>()
            .map_err(|_| self.bad_value(node, a, "a non-negative integer"))
    }

    fn attr_bool(&self, node: Node<'_, '_>, a: &Attribute<'_, '_>) -> Result<bool> {
        parse_bool(a.value()).ok_or_else(|| self.bad_value(node, a, "true or false"))
    }

    fn attr_color(&self, node: Node<'_, '_>, a: &Attribute<'_, '_>) -> Result<Color> {
        Color::parse(a.value()).map_err(|e| {
            if a.value().contains('[') {
                self.bad_value(node, a, "a colour")
            } else {
                self.error_attr(node, a, format!("`{}`: {e}", a.name()))
            }
        })
    }

    fn attr_keyword<T>(
        &self,
        node: Node<'_, '_>,
        a: &Attribute<'_, '_>,
        parse: fn(&str) -> Option<T>,
        allowed: &str,
    ) -> Result<T> {
        parse(a.value().trim()).ok_or_else(|| self.bad_value(node, a, &format!("one of {allowed}")))
    }

    fn resolve(&self, raw: &str) -> PathBuf {
        let p = Path::new(raw);
        let is_connection =
            raw.contains("://") || raw.starts_with("PG:") || raw.starts_with("/vsi");
        if self.relative_to_xml && p.is_relative() && !is_connection {
            self.base_dir.join(p)
        } else {
            p.to_path_buf()
        }
    }

    // ---------------------------------------------------------------- Map

    fn parse_map(&mut self, node: Node<'_, '_>) -> Result<Map> {
        if name_of(node) != "Map" || node.tag_name().namespace().is_some() {
            return Err(self.error_node(
                node,
                "not a Mapnik map file: the root element must be <Map>",
            ));
        }
        // paths-from-xml and base first: they change how every path resolves.
        for a in node.attributes() {
            match a.name() {
                "paths-from-xml" => self.relative_to_xml = self.attr_bool(node, &a)?,
                "base" => {
                    if self.explicit_base {
                        self.warn_attr(
                            node,
                            &a,
                            "`base` ignored: the base directory given by the caller wins (as in Mapnik's load_map_string)",
                        );
                    } else {
                        self.base_dir = self.base_dir.join(a.value().trim());
                    }
                }
                _ => {}
            }
        }
        let mut map = Map {
            background_color: None,
            srs: DEFAULT_SRS.to_string(),
            buffer_size: 0,
            styles: Default::default(),
            layers: Vec::new(),
            base_dir: PathBuf::new(),
            font_directory: None,
            fontsets: Vec::new(),
            text_faces: Vec::new(),
            input_files: Vec::new(),
            parameters: Default::default(),
        };
        for a in node.attributes() {
            match a.name() {
                "paths-from-xml" | "base" => {}
                "srs" => map.srs = a.value().trim().to_string(),
                "background-color" => map.background_color = Some(self.attr_color(node, &a)?),
                "buffer-size" => map.buffer_size = self.attr_u32(node, &a)?,
                "background-image" => {
                    return Err(self.error_attr(node, &a, "`background-image` is not supported"))
                }
                "font-directory" => {
                    let dir = a.value().trim();
                    if dir.is_empty() {
                        self.warn_attr(node, &a, "empty `font-directory` ignored");
                    } else {
                        map.font_directory = Some(self.resolve(dir));
                    }
                }
                "maximum-extent"
                | "minimum-version"
                | "background-image-comp-op"
                | "background-image-opacity" => {
                    let msg = format!("`{}` ignored (no effect on tessera's drawing)", a.name());
                    self.warn_attr(node, &a, msg);
                }
                _ => self.unknown_attr(node, &a),
            }
        }
        self.parse_map_children(node, &mut map)?;
        map.base_dir = self.base_dir.clone();
        map.fontsets = self.fontsets.clone();
        map.text_faces = std::mem::take(&mut self.text_faces);

        // Layers naming styles that do not exist draw nothing, in Mapnik too.
        let mut missing = Vec::new();
        for (i, layer) in map.layers.iter().enumerate() {
            for style in &layer.styles {
                if !map.styles.contains_key(style) {
                    let location = self.layer_locations.get(i).cloned().unwrap_or(Location {
                        file: self.file.clone(),
                        line: layer.line,
                        column: 1,
                    });
                    missing.push((location, layer.name.clone(), style.clone()));
                }
            }
        }
        for (location, layer, style) in missing {
            self.warn(
                location,
                "Layer",
                format!("layer `{layer}` names style `{style}`, which is not defined; it draws nothing (as in Mapnik)"),
            );
        }
        Ok(map)
    }

    /// The children of `<Map>` (and of `<Include>`, which Mapnik treats as a
    /// transparent group).
    fn parse_map_children(&mut self, node: Node<'_, '_>, map: &mut Map) -> Result<()> {
        self.stray_text(node);
        for child in node.children().filter(|c| c.is_element()) {
            if let Some(ns) = child.tag_name().namespace() {
                let msg = if ns.contains("XInclude") {
                    format!(
                        "<{}>: only <xi:include> is supported from the XInclude namespace",
                        name_of(child)
                    )
                } else {
                    format!("element in namespace `{ns}` is not supported")
                };
                return Err(self.error_node(child, msg));
            }
            match name_of(child) {
                "Style" => {
                    let style = self.parse_style(child)?;
                    if map.styles.contains_key(&style.name) {
                        let msg = format!(
                            "a second style named `{}` is ignored; the first one is used (as in Mapnik)",
                            style.name
                        );
                        self.warn_node(child, msg);
                    } else {
                        map.styles.insert(style.name.clone(), style);
                    }
                }
                "Layer" => {
                    let layer = self.parse_layer(child, &map.srs)?;
                    self.layer_locations.push(self.node_loc(child));
                    map.layers.push(layer);
                }
                "Include" => self.parse_map_children(child, map)?,
                "Datasource" => self.parse_template(child)?,
                "FontSet" => self.parse_fontset(child)?,
                "FileSource" => {
                    return Err(self.error_node(
                        child,
                        "<FileSource> is not supported: give image files as paths relative to the style",
                    ))
                }
                // Map metadata (a TileJSON's name, centre, attribution,
                // ...): nothing to draw, as in Mapnik; kept for servers.
                "Parameters" => {
                    for p in child.children().filter(|c| c.has_tag_name("Parameter")) {
                        if let Some(name) = p.attribute("name") {
                            map.parameters
                                .insert(name.to_owned(), text_of(p).trim().to_owned());
                        }
                    }
                }
                other => {
                    let msg = format!("unknown element <{other}> ignored");
                    self.warn_node(child, msg);
                }
            }
        }
        Ok(())
    }

    fn parse_template(&mut self, node: Node<'_, '_>) -> Result<()> {
        let mut name = "Unnamed".to_string();
        for a in node.attributes() {
            match a.name() {
                "name" => name = a.value().to_string(),
                _ => self.unknown_attr(node, &a),
            }
        }
        let params = self.parse_parameters(node)?;
        self.templates.insert(name, params);
        Ok(())
    }

    // -------------------------------------------------------------- Style

    fn parse_style(&mut self, node: Node<'_, '_>) -> Result<Style> {
        let mut style = Style {
            name: String::new(),
            filter_mode: FilterMode::All,
            opacity: 1.0,
            comp_op: CompOp::SrcOver,
            rules: Vec::new(),
            image_filters: Vec::new(),
            line: self.line_of(node),
            gate: GateCell::default(),
        };
        let mut named = false;
        for a in node.attributes() {
            match a.name() {
                "name" => {
                    style.name = a.value().to_string();
                    named = true;
                }
                "filter-mode" => {
                    style.filter_mode = self.attr_keyword(
                        node,
                        &a,
                        |s| match s {
                            "all" => Some(FilterMode::All),
                            "first" => Some(FilterMode::First),
                            _ => None,
                        },
                        "`all`, `first`",
                    )?
                }
                "opacity" => style.opacity = self.attr_opacity(node, &a)?,
                "comp-op" => style.comp_op = self.comp_op(node, &a)?,
                "image-filters" => {
                    style.image_filters = super::image_filter::parse(a.value())
                        .map_err(|e| self.error_attr(node, &a, e))?;
                }
                "direct-image-filters" => {
                    if a.value().trim().is_empty() {
                        let msg = format!("empty `{}` ignored", a.name());
                        self.warn_attr(node, &a, msg);
                    } else {
                        let msg = format!("`{}` is not supported", a.name());
                        return Err(self.error_attr(node, &a, msg));
                    }
                }
                "image-filters-inflate" => self.warn_attr(
                    node,
                    &a,
                    "`image-filters-inflate` ignored (it matters to blurs, which are not run)",
                ),
                _ => self.unknown_attr(node, &a),
            }
        }
        if !named {
            return Err(self.error_node(node, "a <Style> needs a `name`"));
        }
        self.stray_text(node);
        for child in node.children().filter(|c| c.is_element()) {
            if name_of(child) == "Rule" {
                let rule = self.parse_rule(child)?;
                style.rules.push(rule);
            } else {
                let msg = format!(
                    "unknown element <{}> inside <Style> ignored",
                    name_of(child)
                );
                self.warn_node(child, msg);
            }
        }
        Ok(style)
    }

    /// A compositing mode (`comp-op`, `halo-comp-op`): one of Mapnik's
    /// modes that tessera draws, else an error naming it and listing them.
    fn comp_op(&self, node: Node<'_, '_>, a: &Attribute<'_, '_>) -> Result<CompOp> {
        CompOp::parse(a.value()).map_err(|e| {
            if a.value().contains('[') || a.value().contains('@') {
                self.bad_value(node, a, "a compositing mode")
            } else {
                self.error_attr(node, a, format!("`{}`: {e}", a.name()))
            }
        })
    }

    /// `comp-op` where only the default is drawn.
    fn src_over_only(&self, node: Node<'_, '_>, a: &Attribute<'_, '_>) -> Result<()> {
        match self.comp_op(node, a)? {
            CompOp::SrcOver => Ok(()),
            other => Err(self.error_attr(
                node,
                a,
                format!(
                    "`{}=\"{other}\"` is not supported on <{}> (only src-over)",
                    a.name(),
                    name_of(node)
                ),
            )),
        }
    }

    fn gamma_method(&self, node: Node<'_, '_>, a: &Attribute<'_, '_>) -> Result<GammaMethod> {
        self.attr_keyword(
            node,
            a,
            GammaMethod::from_keyword,
            "`power`, `linear`, `none`, `threshold`, `multiply`",
        )
    }

    // --------------------------------------------------------------- Rule

    fn parse_rule(&mut self, node: Node<'_, '_>) -> Result<Rule> {
        let mut rule = Rule {
            name: None,
            filter: None,
            kind: RuleKind::Filter,
            min_scale_denominator: 0.0,
            max_scale_denominator: f64::INFINITY,
            symbolizers: Vec::new(),
            line: self.line_of(node),
        };
        for a in node.attributes() {
            match a.name() {
                "name" => rule.name = Some(a.value().to_string()),
                _ => self.unknown_attr(node, &a),
            }
        }
        self.stray_text(node);
        let (mut has_else, mut has_also, mut seen_filter) = (false, false, false);
        for child in node.children().filter(|c| c.is_element()) {
            match name_of(child) {
                "Filter" => {
                    if seen_filter {
                        self.warn_node(child, "second <Filter> ignored; Mapnik uses the first");
                        continue;
                    }
                    seen_filter = true;
                    rule.filter = Some(self.parse_filter(child)?);
                }
                "ElseFilter" => has_else = true,
                "AlsoFilter" => has_also = true,
                "MinScaleDenominator" => rule.min_scale_denominator = self.scale_text(child)?,
                "MaxScaleDenominator" => rule.max_scale_denominator = self.scale_text(child)?,
                "PolygonSymbolizer" => {
                    let s = self.parse_polygon(child)?;
                    rule.symbolizers.push(Symbolizer::Polygon(s));
                }
                "LineSymbolizer" => {
                    let s = self.parse_line(child)?;
                    rule.symbolizers.push(Symbolizer::Line(s));
                }
                "MarkersSymbolizer" => {
                    let s = self.parse_markers(child)?;
                    rule.symbolizers.push(Symbolizer::Markers(s));
                }
                "RasterSymbolizer" => {
                    let s = self.parse_raster(child)?;
                    rule.symbolizers.push(Symbolizer::Raster(s));
                }
                "TextSymbolizer" => match self.text_expr(child)? {
                    Some(text) => {
                        let s = self.parse_text(child, text)?;
                        if !self.text_faces.iter().any(|(f, _)| *f == s.face_names) {
                            let at = self.node_loc(child);
                            self.text_faces.push((s.face_names.clone(), at));
                        }
                        rule.symbolizers.push(Symbolizer::Text(s));
                    }
                    None => self.warn_node(
                        child,
                        "<TextSymbolizer> without text draws nothing; ignored",
                    ),
                },
                "ShieldSymbolizer" => {
                    let s = self.parse_shield(child)?;
                    self.check_shield_image(child, &s)?;
                    if !self.text_faces.iter().any(|(f, _)| *f == s.text.face_names) {
                        let at = self.node_loc(child);
                        self.text_faces.push((s.text.face_names.clone(), at));
                    }
                    rule.symbolizers.push(Symbolizer::Shield(s));
                }
                "PointSymbolizer" => {
                    let s = self.parse_point(child)?;
                    rule.symbolizers.push(Symbolizer::Point(s));
                }
                "LinePatternSymbolizer" => {
                    let s = self.parse_line_pattern(child)?;
                    rule.symbolizers.push(Symbolizer::LinePattern(s));
                }
                "PolygonPatternSymbolizer" => {
                    let s = self.parse_polygon_pattern(child)?;
                    rule.symbolizers.push(Symbolizer::PolygonPattern(s));
                }
                other @ ("BuildingSymbolizer" | "DotSymbolizer" | "GroupSymbolizer"
                | "DebugSymbolizer") => {
                    let msg = format!("<{other}> is not supported");
                    return Err(self.error_node(child, msg));
                }
                other => {
                    let msg = format!(
                        "unknown element <{other}> inside <Rule> (an unknown symbolizer would silently be missing from the picture)"
                    );
                    return Err(self.error_node(child, msg));
                }
            }
        }
        if has_else {
            rule.kind = RuleKind::Else;
            if has_also {
                self.warn_node(node, "rule has both <ElseFilter/> and <AlsoFilter/>; it is an else rule (as in Mapnik)");
            }
        } else if has_also {
            rule.kind = RuleKind::Also;
        }
        if rule.kind != RuleKind::Filter && rule.filter.is_some() {
            self.warn_node(
                node,
                "<Filter> of an <ElseFilter/>/<AlsoFilter/> rule is ignored (as in Mapnik)",
            );
            rule.filter = None;
        }
        if rule.symbolizers.is_empty() {
            self.warn_node(
                node,
                "rule has no symbolizers and is never active (as in Mapnik)",
            );
        }
        if rule.min_scale_denominator > rule.max_scale_denominator {
            self.warn_node(
                node,
                "MinScaleDenominator is above MaxScaleDenominator: the rule is never active",
            );
        }
        Ok(rule)
    }

    fn scale_text(&self, node: Node<'_, '_>) -> Result<f64> {
        let text = text_of(node);
        let v = text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| !v.is_nan() && *v >= 0.0)
            .ok_or_else(|| {
                self.error_node(
                    node,
                    format!("expected a non-negative number, found `{}`", text.trim()),
                )
            })?;
        Ok(v)
    }

    fn parse_filter(&mut self, node: Node<'_, '_>) -> Result<Expr> {
        let text = text_of(node);
        // Point errors at the exact place when the text is one plain text
        // node (no entities or CDATA shifting offsets).
        let text_start = self.text_start(node);
        match parse_with_notes(&text) {
            Ok((expr, notes)) => {
                for note in notes {
                    let msg = format!("filter `{}`: {note}", text.trim());
                    self.warn_node(node, msg);
                }
                Ok(expr)
            }
            Err(source) => {
                let location = match text_start {
                    Some(start) => self.location(start + source.offset),
                    None => self.node_loc(node),
                };
                Err(Error::Filter {
                    location,
                    expression: text.trim().to_string(),
                    source,
                })
            }
        }
    }

    // -------------------------------------------------------- symbolizers

    /// Attributes every symbolizer accepts (Mapnik's `symbolizer_base`).
    /// Returns false when `a` is not one of them. Symbolizers that draw
    /// `comp-op` read it before they get here.
    fn common_attr(&mut self, node: Node<'_, '_>, a: &Attribute<'_, '_>) -> Result<bool> {
        match a.name() {
            "comp-op" => self.src_over_only(node, a)?,
            // Fills and images come out the same clipped or not (tessera
            // cuts geometry to the buffered image, with a margin, only to
            // keep f32 pixels exact).
            "clip" => {
                self.attr_bool(node, a)?;
            }
            "simplify" => {
                let v = self.attr_f64(node, a)?;
                let msg = if v == 0.0 {
                    "`simplify=\"0\"` is the default; ignored".to_string()
                } else {
                    format!(
                        "`simplify=\"{v}\"` ignored: tessera simplifies per zoom level by itself"
                    )
                };
                self.warn_attr(node, a, msg);
            }
            "simplify-algorithm" | "smooth-algorithm" => {
                let msg = format!("`{}` ignored", a.name());
                self.warn_attr(node, a, msg);
            }
            "smooth" => {
                if self.attr_f64(node, a)? == 0.0 {
                    self.warn_attr(node, a, "`smooth=\"0\"` is the default; ignored");
                } else {
                    return Err(self.error_attr(
                        node,
                        a,
                        "`smooth` (curve smoothing) is not supported",
                    ));
                }
            }
            "geometry-transform" => {
                if a.value().trim().is_empty() {
                    self.warn_attr(node, a, "empty `geometry-transform` ignored");
                } else {
                    return Err(self.error_attr(node, a, "`geometry-transform` is not supported"));
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn no_children(&mut self, node: Node<'_, '_>) {
        self.stray_text(node);
        for child in node.children().filter(|c| c.is_element()) {
            let msg = format!("unknown element <{}> ignored", name_of(child));
            self.warn_node(child, msg);
        }
    }

    fn parse_polygon(&mut self, node: Node<'_, '_>) -> Result<PolygonSymbolizer> {
        let mut s = PolygonSymbolizer::default();
        for a in node.attributes() {
            match a.name() {
                "fill" => s.fill = self.attr_color(node, &a)?,
                "fill-opacity" => s.fill_opacity = self.attr_opacity(node, &a)?,
                "gamma" => s.gamma = self.attr_f64(node, &a)?,
                "gamma-method" => s.gamma_method = self.gamma_method(node, &a)?,
                "comp-op" => s.comp_op = self.comp_op(node, &a)?,
                _ => {
                    if !self.common_attr(node, &a)? {
                        self.unknown_attr(node, &a);
                    }
                }
            }
        }
        self.no_children(node);
        Ok(s)
    }

    fn parse_line(&mut self, node: Node<'_, '_>) -> Result<LineSymbolizer> {
        let mut s = LineSymbolizer::default();
        for a in node.attributes() {
            match a.name() {
                "stroke" => s.stroke = self.attr_color(node, &a)?,
                "stroke-width" => s.stroke_width = self.attr_non_negative(node, &a)?,
                "stroke-opacity" => s.stroke_opacity = self.attr_opacity(node, &a)?,
                "stroke-linecap" => {
                    s.stroke_linecap = self.attr_keyword(
                        node,
                        &a,
                        LineCap::from_keyword,
                        "`butt`, `round`, `square`",
                    )?
                }
                "stroke-linejoin" => {
                    s.stroke_linejoin = self.attr_keyword(
                        node,
                        &a,
                        LineJoin::from_keyword,
                        "`miter`, `miter-revert`, `round`, `bevel`",
                    )?;
                }
                "stroke-miterlimit" => s.stroke_miterlimit = self.attr_non_negative(node, &a)?,
                "stroke-dasharray" => {
                    s.stroke_dasharray = parse_dasharray(a.value()).ok_or_else(|| {
                        self.bad_value(
                            node,
                            &a,
                            "a list of non-negative numbers (e.g. `4,2`) or `none`",
                        )
                    })?
                }
                "stroke-dashoffset" => s.stroke_dashoffset = self.attr_f64(node, &a)?,
                "clip" => s.clip = self.attr_bool(node, &a)?,
                "offset" => s.offset = self.attr_f64(node, &a)?,
                "stroke-gamma" => s.stroke_gamma = self.attr_f64(node, &a)?,
                "stroke-gamma-method" => s.stroke_gamma_method = self.gamma_method(node, &a)?,
                "comp-op" => s.comp_op = self.comp_op(node, &a)?,
                "rasterizer" => match a.value().trim() {
                    "full" => {}
                    "fast" => self.warn_attr(
                        node,
                        &a,
                        "`rasterizer=\"fast\"` ignored; lines are antialiased",
                    ),
                    _ => return Err(self.bad_value(node, &a, "`full` or `fast`")),
                },
                _ => {
                    if !self.common_attr(node, &a)? {
                        self.unknown_attr(node, &a);
                    }
                }
            }
        }
        self.no_children(node);
        Ok(s)
    }

    /// An image `file=` attribute: resolved against the style's folder (as
    /// Mapnik resolves it), checked now (a missing or broken file is a load
    /// error naming the line, as Mapnik refuses to load too).
    fn image_file(
        &self,
        node: Node<'_, '_>,
        a: &Attribute<'_, '_>,
    ) -> Result<(PathBuf, ImageInfo)> {
        let raw = a.value().trim();
        if raw.is_empty() {
            return Err(self.error_attr(node, a, "empty `file`"));
        }
        if raw.contains('[') {
            return Err(self.bad_value(node, a, "a file name"));
        }
        if raw.contains("://") {
            return Err(self.error_attr(
                node,
                a,
                format!("`file=\"{raw}\"`: only local files are read"),
            ));
        }
        let path = self.resolve(raw);
        match crate::image::check(&path) {
            Ok(info) => {
                self.image_files.borrow_mut().push(path.clone());
                Ok((path, info))
            }
            Err(e) => Err(self.error_attr(node, a, format!("image {}: {e}", path.display()))),
        }
    }

    /// What every image symbolizer takes besides its own attributes:
    /// `base` (warned: `<FileSource>` is refused) and the common ones.
    fn image_symbolizer_attr(&mut self, node: Node<'_, '_>, a: &Attribute<'_, '_>) -> Result<()> {
        if a.name() == "base" {
            self.warn_attr(
                node,
                a,
                "`base` ignored (<FileSource> is not supported; paths resolve against the style's folder)",
            );
        } else if !self.common_attr(node, a)? {
            self.unknown_attr(node, a);
        }
        Ok(())
    }

    fn attr_transform(&self, node: Node<'_, '_>, a: &Attribute<'_, '_>) -> Result<Affine> {
        Affine::parse(a.value()).ok_or_else(|| {
            self.bad_value(
                node,
                a,
                "an SVG transform list (matrix, translate, scale, rotate, skewX, skewY)",
            )
        })
    }

    /// Refuses an image that would be rasterised larger than the limit.
    fn check_drawn_size(
        &self,
        node: Node<'_, '_>,
        path: &Path,
        (width, height): (f64, f64),
        transform: &Affine,
    ) -> Result<()> {
        let [x0, y0, x1, y1] = transform.bounds([0.0, 0.0, width, height]);
        let (w, h) = (x1 - x0, y1 - y0);
        let max = f64::from(crate::image::MAX_IMAGE_SIDE);
        if w > max || h > max || !w.is_finite() || !h.is_finite() {
            let e = crate::image::ImageError::TooLarge {
                width: w,
                height: h,
            };
            return Err(self.error_node(node, format!("image {}: {e}", path.display())));
        }
        Ok(())
    }

    /// Paint attributes that override an SVG's own (markers).
    fn paint_attr(
        &mut self,
        node: Node<'_, '_>,
        a: &Attribute<'_, '_>,
        paint: &mut PaintOverride,
    ) -> Result<bool> {
        match a.name() {
            "fill" => paint.fill = Some(self.attr_color(node, a)?),
            "fill-opacity" => paint.fill_opacity = Some(self.attr_opacity(node, a)?),
            "stroke" => paint.stroke = Some(self.attr_color(node, a)?),
            "stroke-width" => paint.stroke_width = Some(self.attr_non_negative(node, a)?),
            "stroke-opacity" => paint.stroke_opacity = Some(self.attr_opacity(node, a)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn parse_markers(&mut self, node: Node<'_, '_>) -> Result<MarkersSymbolizer> {
        let mut s = MarkersSymbolizer::default();
        let mut image: Option<(PathBuf, ImageInfo)> = None;
        for a in node.attributes() {
            if self.paint_attr(node, &a, &mut s.paint)? {
                continue;
            }
            match a.name() {
                "file" => {
                    let v = a.value().trim();
                    if !(v.is_empty() || v == "shape://ellipse") {
                        if v.starts_with("shape://") {
                            let msg = format!(
                                "`file=\"{v}\"`: the built-in markers are `shape://ellipse` only (Mapnik 3 has no other)"
                            );
                            return Err(self.error_attr(node, &a, msg));
                        }
                        image = Some(self.image_file(node, &a)?);
                    }
                }
                "marker-type" => match a.value().trim() {
                    "ellipse" => {}
                    "arrow" => {
                        return Err(self.error_attr(
                            node,
                            &a,
                            "`marker-type=\"arrow\"` is not supported (Mapnik 3 dropped it too)",
                        ))
                    }
                    _ => return Err(self.bad_value(node, &a, "`ellipse`")),
                },
                "base" => self.warn_attr(
                    node,
                    &a,
                    "`base` ignored (<FileSource> is not supported; paths resolve against the style's folder)",
                ),
                "width" => s.width = Some(self.attr_non_negative(node, &a)?),
                "height" => s.height = Some(self.attr_non_negative(node, &a)?),
                "opacity" => s.opacity = self.attr_opacity(node, &a)?,
                "placement" => {
                    s.placement = self.attr_keyword(
                        node,
                        &a,
                        MarkerPlacement::from_keyword,
                        "`point`, `interior`, `line`, `vertex-first`, `vertex-last`",
                    )?
                }
                "multi-policy" => {
                    s.multi_policy = self.attr_keyword(
                        node,
                        &a,
                        MarkerMultiPolicy::from_keyword,
                        "`each`, `whole`, `largest`",
                    )?
                }
                "spacing" => s.spacing = self.attr_non_negative(node, &a)?,
                "max-error" => s.max_error = self.attr_non_negative(node, &a)?,
                "offset" => s.offset = self.attr_f64(node, &a)?,
                "allow-overlap" => s.allow_overlap = self.attr_bool(node, &a)?,
                "ignore-placement" => s.ignore_placement = self.attr_bool(node, &a)?,
                "comp-op" => s.comp_op = self.comp_op(node, &a)?,
                "clip" => s.clip = self.attr_bool(node, &a)?,
                "avoid-edges" => s.avoid_edges = self.attr_bool(node, &a)?,
                "transform" => s.transform = self.attr_transform(node, &a)?,
                "direction" => {
                    if a.value().trim() != "right" {
                        return Err(self.error_attr(
                            node,
                            &a,
                            "marker `direction` other than `right` (the default) is not supported",
                        ));
                    }
                    self.warn_attr(node, &a, "`direction=\"right\"` is the default; ignored");
                }
                "spacing-offset" => {
                    return Err(self.error_attr(node, &a, "`spacing-offset` is not supported"))
                }
                "stroke-linejoin"
                | "stroke-linecap"
                | "stroke-dasharray"
                | "stroke-dashoffset"
                | "stroke-miterlimit"
                | "stroke-gamma"
                | "stroke-gamma-method" => {
                    let msg = format!("`{}` ignored for markers (as in Mapnik)", a.name());
                    self.warn_attr(node, &a, msg);
                }
                _ => {
                    if !self.common_attr(node, &a)? {
                        self.unknown_attr(node, &a);
                    }
                }
            }
        }
        if let Some((path, info)) = image {
            let scale = marker_scale(s.width, s.height, info);
            self.check_drawn_size(
                node,
                &path,
                (info.width * scale.0, info.height * scale.1),
                &s.transform,
            )?;
            s.file = Some(path);
        }
        self.no_children(node);
        Ok(s)
    }

    fn parse_point(&mut self, node: Node<'_, '_>) -> Result<PointSymbolizer> {
        let mut s = PointSymbolizer::default();
        let mut image = None;
        for a in node.attributes() {
            match a.name() {
                "file" => image = Some(self.image_file(node, &a)?),
                "opacity" => s.opacity = self.attr_opacity(node, &a)?,
                "allow-overlap" => s.allow_overlap = self.attr_bool(node, &a)?,
                "ignore-placement" => s.ignore_placement = self.attr_bool(node, &a)?,
                "transform" => s.transform = self.attr_transform(node, &a)?,
                "comp-op" => s.comp_op = self.comp_op(node, &a)?,
                "placement" => {
                    s.placement = self.attr_keyword(
                        node,
                        &a,
                        |k| match k {
                            "centroid" => Some(PointPlacement::Centroid),
                            "interior" => Some(PointPlacement::Interior),
                            _ => None,
                        },
                        "`centroid`, `interior`",
                    )?
                }
                _ => self.image_symbolizer_attr(node, &a)?,
            }
        }
        if let Some((path, info)) = image {
            self.check_drawn_size(node, &path, (info.width, info.height), &s.transform)?;
            s.file = Some(path);
        }
        self.no_children(node);
        Ok(s)
    }

    fn pattern_alignment(
        &self,
        node: Node<'_, '_>,
        a: &Attribute<'_, '_>,
    ) -> Result<PatternAlignment> {
        self.attr_keyword(
            node,
            a,
            |k| match k {
                "global" => Some(PatternAlignment::Global),
                "local" => Some(PatternAlignment::Local),
                _ => None,
            },
            "`global`, `local`",
        )
    }

    fn parse_polygon_pattern(&mut self, node: Node<'_, '_>) -> Result<PolygonPatternSymbolizer> {
        let mut file = None;
        let (mut alignment, mut opacity, mut gamma, mut transform) =
            (PatternAlignment::Global, 1.0, 1.0, Affine::IDENTITY);
        let (mut gamma_method, mut comp_op) = (GammaMethod::Power, CompOp::SrcOver);
        for a in node.attributes() {
            match a.name() {
                "file" => file = Some(self.image_file(node, &a)?),
                "alignment" => alignment = self.pattern_alignment(node, &a)?,
                "opacity" => opacity = self.attr_opacity(node, &a)?,
                "gamma" => gamma = self.attr_f64(node, &a)?,
                "gamma-method" => gamma_method = self.gamma_method(node, &a)?,
                "comp-op" => comp_op = self.comp_op(node, &a)?,
                "transform" => transform = self.attr_transform(node, &a)?,
                _ => self.image_symbolizer_attr(node, &a)?,
            }
        }
        let Some((file, info)) = file else {
            return Err(self.error_node(node, "a <PolygonPatternSymbolizer> needs a `file`"));
        };
        self.check_drawn_size(node, &file, (info.width, info.height), &transform)?;
        self.no_children(node);
        Ok(PolygonPatternSymbolizer {
            file,
            alignment,
            opacity,
            gamma,
            gamma_method,
            transform,
            comp_op,
        })
    }

    fn parse_line_pattern(&mut self, node: Node<'_, '_>) -> Result<LinePatternSymbolizer> {
        let mut file = None;
        let mut s = LinePatternSymbolizer {
            file: PathBuf::new(),
            kind: LinePatternKind::Warp,
            opacity: 1.0,
            offset: 0.0,
            transform: Affine::IDENTITY,
            stroke: LineSymbolizer::default(),
            alignment: PatternAlignment::Global,
            comp_op: CompOp::SrcOver,
        };
        for a in node.attributes() {
            match a.name() {
                "file" => file = Some(self.image_file(node, &a)?),
                "line-pattern" => {
                    s.kind = self.attr_keyword(
                        node,
                        &a,
                        |k| match k {
                            "warp" => Some(LinePatternKind::Warp),
                            "repeat" => Some(LinePatternKind::Repeat),
                            _ => None,
                        },
                        "`warp`, `repeat`",
                    )?
                }
                "opacity" => s.opacity = self.attr_opacity(node, &a)?,
                "offset" => s.offset = self.attr_f64(node, &a)?,
                "transform" => s.transform = self.attr_transform(node, &a)?,
                "comp-op" => s.comp_op = self.comp_op(node, &a)?,
                "alignment" => s.alignment = self.pattern_alignment(node, &a)?,
                "stroke-width" => s.stroke.stroke_width = self.attr_non_negative(node, &a)?,
                "stroke-linecap" => {
                    s.stroke.stroke_linecap = self.attr_keyword(
                        node,
                        &a,
                        LineCap::from_keyword,
                        "`butt`, `round`, `square`",
                    )?
                }
                "stroke-linejoin" => {
                    s.stroke.stroke_linejoin = self.attr_keyword(
                        node,
                        &a,
                        LineJoin::from_keyword,
                        "`miter`, `miter-revert`, `round`, `bevel`",
                    )?
                }
                "stroke-miterlimit" => {
                    s.stroke.stroke_miterlimit = self.attr_non_negative(node, &a)?
                }
                "stroke-dasharray" => {
                    s.stroke.stroke_dasharray = parse_dasharray(a.value()).ok_or_else(|| {
                        self.bad_value(
                            node,
                            &a,
                            "a list of non-negative numbers (e.g. `4,2`) or `none`",
                        )
                    })?
                }
                "stroke-dashoffset" => s.stroke.stroke_dashoffset = self.attr_f64(node, &a)?,
                _ => self.image_symbolizer_attr(node, &a)?,
            }
        }
        let Some((file, info)) = file else {
            return Err(self.error_node(node, "a <LinePatternSymbolizer> needs a `file`"));
        };
        self.check_drawn_size(node, &file, (info.width, info.height), &s.transform)?;
        s.file = file;
        self.no_children(node);
        Ok(s)
    }

    fn parse_raster(&mut self, node: Node<'_, '_>) -> Result<RasterSymbolizer> {
        let mut s = RasterSymbolizer::default();
        for a in node.attributes() {
            match a.name() {
                "opacity" => s.opacity = self.attr_opacity(node, &a)?,
                "scaling" => {
                    s.scaling = self.attr_keyword(
                        node,
                        &a,
                        ScalingMethod::from_keyword,
                        "`near`, `bilinear`, `bicubic`, `spline16`, `spline36`, `hanning`, `hamming`, \
                         `hermite`, `kaiser`, `quadric`, `catrom`, `gaussian`, `bessel`, `mitchell`, \
                         `sinc`, `lanczos`, `blackman`",
                    )?
                }
                "comp-op" => s.comp_op = self.comp_op(node, &a)?,
                "mode" => {
                    return Err(self.error_attr(node, &a, "`mode` (raster compositing) is not supported"))
                }
                "default-mode" | "default-color" | "epsilon" => {
                    let msg = format!("`{}`: raster colorizers are not supported", a.name());
                    return Err(self.error_attr(node, &a, msg));
                }
                "filter-factor" | "mesh-size" | "premultiplied" => {
                    let msg = format!("`{}` ignored", a.name());
                    self.warn_attr(node, &a, msg);
                }
                _ => {
                    if !self.common_attr(node, &a)? {
                        self.unknown_attr(node, &a);
                    }
                }
            }
        }
        if let Some(c) = node.children().find(|c| c.has_tag_name("RasterColorizer")) {
            return Err(self.error_node(c, "raster colorizers are not supported"));
        }
        self.no_children(node);
        Ok(s)
    }

    // -------------------------------------------------------------- Layer

    fn parse_layer(&mut self, node: Node<'_, '_>, map_srs: &str) -> Result<Layer> {
        let mut layer = Layer {
            name: "Unnamed".to_string(),
            srs: map_srs.to_string(),
            active: true,
            min_scale_denominator: 0.0,
            max_scale_denominator: f64::MAX,
            buffer_size: None,
            styles: Vec::new(),
            group_by: None,
            datasource: None,
            line: self.line_of(node),
        };
        for a in node.attributes() {
            match a.name() {
                "name" => layer.name = a.value().to_string(),
                "srs" => layer.srs = a.value().trim().to_string(),
                "status" => layer.active = self.attr_bool(node, &a)?,
                "minimum-scale-denominator" => {
                    layer.min_scale_denominator = self.attr_non_negative(node, &a)?
                }
                "maximum-scale-denominator" => {
                    layer.max_scale_denominator = self.attr_non_negative(node, &a)?
                }
                "buffer-size" => layer.buffer_size = Some(self.attr_u32(node, &a)?),
                "opacity" => {
                    if self.attr_f64(node, &a)? != 1.0 {
                        return Err(self.error_attr(
                            node,
                            &a,
                            "layer `opacity` other than 1 is not supported",
                        ));
                    }
                }
                "comp-op" => self.src_over_only(node, &a)?,
                "group-by" => {
                    let field = a.value().trim();
                    layer.group_by = (!field.is_empty()).then(|| field.to_string());
                }
                // Mapnik's feature cache for layers drawn by several styles:
                // a speed setting (tessera reads a layer once per metatile
                // whatever its styles).
                "cache-features" => {
                    self.attr_bool(node, &a)?;
                }
                "maximum-extent" | "queryable" | "clear-label-cache" | "title" | "abstract" => {
                    let msg = format!("`{}` ignored (no effect on tessera's drawing)", a.name());
                    self.warn_attr(node, &a, msg);
                }
                _ => self.unknown_attr(node, &a),
            }
        }
        self.stray_text(node);
        for child in node.children().filter(|c| c.is_element()) {
            match name_of(child) {
                "StyleName" => {
                    let name = text_of(child).trim().to_string();
                    if name.is_empty() {
                        self.warn_node(child, "empty <StyleName> ignored (as in Mapnik)");
                    } else {
                        layer.styles.push(name);
                    }
                }
                "Datasource" => {
                    if layer.datasource.is_some() {
                        self.warn_node(
                            child,
                            "second <Datasource> replaces the first (as in Mapnik)",
                        );
                    }
                    layer.datasource = Some(self.parse_datasource(child, &layer.name)?);
                }
                "Layer" => return Err(self.error_node(child, "nested layers are not supported")),
                other => {
                    let msg = format!("unknown element <{other}> inside <Layer> ignored");
                    self.warn_node(child, msg);
                }
            }
        }
        if layer.datasource.is_none() {
            self.warn_node(
                node,
                format!(
                    "layer `{}` has no <Datasource> and draws nothing",
                    layer.name
                ),
            );
        }
        if layer.styles.is_empty() {
            self.warn_node(
                node,
                format!(
                    "layer `{}` has no <StyleName> and draws nothing",
                    layer.name
                ),
            );
        }
        Ok(layer)
    }

    // --------------------------------------------------------- Datasource

    fn parse_parameters(&mut self, node: Node<'_, '_>) -> Result<Params> {
        let mut params = Params::new();
        self.stray_text(node);
        for child in node.children().filter(|c| c.is_element()) {
            if name_of(child) != "Parameter" {
                let msg = format!(
                    "unknown element <{}> inside <Datasource> ignored",
                    name_of(child)
                );
                self.warn_node(child, msg);
                continue;
            }
            let Some(name) = child.attribute("name") else {
                return Err(self.error_node(child, "a <Parameter> needs a `name`"));
            };
            for a in child.attributes().filter(|a| a.name() != "name") {
                self.unknown_attr(child, &a);
            }
            params.insert(
                name.to_string(),
                (text_of(child).trim().to_string(), child.range().start),
            );
        }
        Ok(params)
    }

    fn parse_datasource(&mut self, node: Node<'_, '_>, layer: &str) -> Result<Datasource> {
        let mut params = Params::new();
        for a in node.attributes() {
            match a.name() {
                "base" => match self.templates.get(a.value()) {
                    Some(t) => params = t.clone(),
                    None => {
                        let msg = format!(
                            "datasource template `{}` is not defined (before this layer)",
                            a.value()
                        );
                        return Err(self.error_attr(node, &a, msg));
                    }
                },
                _ => self.unknown_attr(node, &a),
            }
        }
        params.extend(self.parse_parameters(node)?);
        DatasourceBuilder {
            loader: self,
            node,
            layer,
            params,
        }
        .build()
    }
}

/// Turns the parameter map of one `<Datasource>` into a [`Datasource`],
/// consuming the parameters it understands and warning about the rest.
struct DatasourceBuilder<'l, 'd, 'i, 'n, 'ni> {
    loader: &'l mut Loader<'d, 'i>,
    node: Node<'n, 'ni>,
    layer: &'l str,
    params: Params,
}

impl DatasourceBuilder<'_, '_, '_, '_, '_> {
    fn error(&self, pos: Option<usize>, message: String) -> Error {
        Error::Style {
            location: match pos {
                Some(pos) => self.loader.location(pos),
                None => self.loader.node_loc(self.node),
            },
            element: "Datasource".to_string(),
            message: format!("layer `{}`: {message}", self.layer),
        }
    }

    fn take(&mut self, name: &str) -> Option<(String, usize)> {
        self.params.remove(name)
    }

    fn required(&mut self, name: &str, ty: &str) -> Result<(String, usize)> {
        self.take(name)
            .filter(|(v, _)| !v.is_empty())
            .ok_or_else(|| {
                self.error(
                    None,
                    format!("`{ty}` datasource needs a `{name}` parameter"),
                )
            })
    }

    fn parse_num<T: std::str::FromStr>(
        &self,
        name: &str,
        value: &(String, usize),
        what: &str,
    ) -> Result<T> {
        value.0.parse::<T>().map_err(|_| {
            self.error(
                Some(value.1),
                format!("parameter `{name}` must be {what}, found `{}`", value.0),
            )
        })
    }

    /// The `file` parameter resolved as Mapnik does: against `base` when
    /// that parameter is given, else against the XML folder.
    fn file(&mut self, ty: &str) -> Result<PathBuf> {
        let (file, _) = self.required("file", ty)?;
        Ok(match self.take("base") {
            Some((base, _)) if !base.is_empty() => self.loader.resolve(&base).join(file),
            _ => self.loader.resolve(&file),
        })
    }

    fn build(mut self) -> Result<Datasource> {
        let (ty, ty_pos) = self.take("type").ok_or_else(|| {
            self.error(None, "the datasource has no `type` parameter".to_string())
        })?;
        if let Some(row_limit) = self.take("row_limit") {
            if row_limit.0 != "0" {
                return Err(self.error(
                    Some(row_limit.1),
                    "parameter `row_limit` is not supported".to_string(),
                ));
            }
        }
        let ds = match ty.as_str() {
            "shape" => {
                let mut file = self.file("shape")?;
                // Mapnik strips a trailing `.shp` (any case) and adds it back.
                let s = file.to_string_lossy().into_owned();
                if !s.to_ascii_lowercase().ends_with(".shp") {
                    file = PathBuf::from(format!("{s}.shp"));
                } else if !s.ends_with(".shp") {
                    file = PathBuf::from(format!("{}.shp", &s[..s.len() - 4]));
                }
                let encoding = self.take("encoding").map(|(v, _)| v);
                Datasource::Shape { file, encoding }
            }
            "ogr" => {
                if let Some((_, pos)) = self.take("string") {
                    return Err(self.error(Some(pos), "inline OGR data (`string`) is not supported".to_string()));
                }
                let file = self.file("ogr")?;
                let by_name = self.take("layer");
                let by_index = self.take("layer_by_index");
                let by_sql = self.take("layer_by_sql");
                // Mapnik's order of precedence.
                let layer = if let Some((name, _)) = by_name {
                    OgrLayer::Name(name)
                } else if let Some(v) = by_index {
                    OgrLayer::Index(self.parse_num("layer_by_index", &v, "a non-negative integer")?)
                } else if let Some((sql, _)) = by_sql {
                    OgrLayer::Sql(sql)
                } else {
                    return Err(self.error(
                        None,
                        "`ogr` datasource needs one of `layer`, `layer_by_index` or `layer_by_sql`".to_string(),
                    ));
                };
                Datasource::Ogr { file, layer }
            }
            "geojson" => {
                if let Some((_, pos)) = self.take("inline") {
                    return Err(self.error(Some(pos), "inline GeoJSON is not supported".to_string()));
                }
                let file = self.file("geojson")?;
                Datasource::Ogr {
                    file,
                    layer: OgrLayer::Index(0),
                }
            }
            "gdal" => {
                let file = self.file("gdal")?;
                let band = match self.take("band") {
                    Some(v) => {
                        let b: i64 = self.parse_num("band", &v, "an integer")?;
                        u32::try_from(b).ok().filter(|b| *b > 0)
                    }
                    None => None,
                };
                let nodata = match self.take("nodata") {
                    Some(v) => Some(self.parse_num("nodata", &v, "a number")?),
                    None => None,
                };
                Datasource::Gdal { file, band, nodata }
            }
            "postgis" => {
                let table = self.required("table", "postgis")?.0;
                let mut parts = Vec::new();
                for key in ["dbname", "host", "port", "user", "password", "connect_timeout"] {
                    if let Some((v, _)) = self.take(key) {
                        parts.push(format!("{key}={}", conninfo_value(&v)));
                    }
                }
                let connection = format!("PG:{}", parts.join(" "));
                let geometry_field = self.take("geometry_field").map(|(v, _)| v).filter(|v| !v.is_empty());
                let srid = match self.take("srid") {
                    Some(v) => Some(self.parse_num("srid", &v, "an integer")?),
                    None => None,
                };
                let extent = match self.take("extent") {
                    Some((v, pos)) => {
                        let numbers: Option<Vec<f64>> = v
                            .split(|c: char| c == ',' || c.is_whitespace())
                            .filter(|p| !p.is_empty())
                            .map(|p| p.parse::<f64>().ok().filter(|n| n.is_finite()))
                            .collect();
                        match numbers.as_deref() {
                            Some(&[a, b, c, d]) => Some([a, b, c, d]),
                            _ => {
                                return Err(self.error(
                                    Some(pos),
                                    format!("`extent` must be `minx,miny,maxx,maxy`, found `{v}`"),
                                ))
                            }
                        }
                    }
                    None => None,
                };
                // Parameters that tune Mapnik's connection and cursor, or
                // estimate an extent: nothing to draw differently.
                for quiet in [
                    "estimate_extent",
                    "key_field",
                    "key_field_as_attribute",
                    "max_size",
                    "initial_size",
                    "cursor_size",
                    "persist_connection",
                    "simplify_geometries",
                    "max_async_connection",
                ] {
                    self.take(quiet);
                }
                Datasource::PostGis {
                    connection,
                    table,
                    geometry_field,
                    srid,
                    extent,
                }
            }
            other => {
                return Err(self.error(
                    Some(ty_pos),
                    format!(
                        "datasource type `{other}` is not supported (supported: shape, ogr, gdal, postgis, geojson)"
                    ),
                ))
            }
        };
        let mut rest: Vec<_> = self.params.drain().collect();
        rest.sort_by_key(|(_, (_, pos))| *pos);
        for (name, (_, pos)) in rest {
            let location = self.loader.location(pos);
            self.loader.warn(
                location,
                "Parameter",
                format!("datasource parameter `{name}` ignored for type `{ty}`"),
            );
        }
        Ok(ds)
    }
}

/// A value for a libpq connection string: quoted when empty or when it has
/// spaces, quotes or backslashes.
fn conninfo_value(v: &str) -> String {
    if !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\')
    {
        return v.to_string();
    }
    let mut out = String::from("'");
    for c in v.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// How a marker image is scaled by `width`/`height` (Mapnik's
/// `setup_transform_scaling`): both given scale each axis; one alone
/// scales both, keeping proportions.
pub(crate) fn marker_scale(
    width: Option<f64>,
    height: Option<f64>,
    image: ImageInfo,
) -> (f64, f64) {
    let ratio = |want: f64, have: f64| if have > 0.0 { want / have } else { 1.0 };
    match (width.filter(|w| *w > 0.0), height.filter(|h| *h > 0.0)) {
        (Some(w), Some(h)) => (ratio(w, image.width), ratio(h, image.height)),
        (Some(w), None) => {
            let s = ratio(w, image.width);
            (s, s)
        }
        (None, Some(h)) => {
            let s = ratio(h, image.height);
            (s, s)
        }
        (None, None) => (1.0, 1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conninfo_quoting() {
        assert_eq!(conninfo_value("gis"), "gis");
        assert_eq!(conninfo_value(""), "''");
        assert_eq!(conninfo_value("a b"), "'a b'");
        assert_eq!(conninfo_value("it's\\"), "'it\\'s\\\\'");
    }

    #[test]
    fn booleans() {
        for t in ["true", "on", "yes", "1", "TRUE"] {
            assert_eq!(parse_bool(t), Some(true));
        }
        for f in ["false", "off", "no", "0"] {
            assert_eq!(parse_bool(f), Some(false));
        }
        assert_eq!(parse_bool("maybe"), None);
    }
}
