//! The loader's text part: `<FontSet>`, `<TextSymbolizer>` and
//! `<ShieldSymbolizer>` into the types of [`crate::style::text`].

use roxmltree::{Attribute, Node};

use super::{name_of, text_of, Loader};
use crate::error::{Error, FilterError, Location, Result};
use crate::style::text::{
    parse_placements, FontSet, HorizontalAlignment, JustifyAlignment, PathExpr, ShieldSymbolizer,
    TextExpr, TextPlacement, TextSymbolizer, TextTransform, Upright, VerticalAlignment,
};

/// The shield-only attributes met while reading a `<ShieldSymbolizer>`.
#[derive(Default)]
struct ShieldAttrs<'a, 'i> {
    file: Option<Attribute<'a, 'i>>,
    unlock_image: bool,
    shield_dx: f64,
    shield_dy: f64,
    opacity: f64,
}

impl Loader<'_, '_> {
    /// `<FontSet name="..."><Font face-name="..."/>...</FontSet>`.
    pub(super) fn parse_fontset(&mut self, node: Node<'_, '_>) -> Result<()> {
        let mut name = None;
        for a in node.attributes() {
            match a.name() {
                "name" => name = Some(a.value().to_string()),
                _ => self.unknown_attr(node, &a),
            }
        }
        let Some(name) = name else {
            return Err(self.error_node(node, "a <FontSet> needs a `name`"));
        };
        let mut faces = Vec::new();
        self.stray_text(node);
        for child in node.children().filter(|c| c.is_element()) {
            if name_of(child) != "Font" {
                let msg = format!(
                    "unknown element <{}> inside <FontSet> ignored",
                    name_of(child)
                );
                self.warn_node(child, msg);
                continue;
            }
            let mut face = None;
            for a in child.attributes() {
                match a.name() {
                    "face-name" => face = Some(a.value().to_string()),
                    _ => self.unknown_attr(child, &a),
                }
            }
            match face {
                Some(f) if !f.trim().is_empty() => faces.push(f),
                _ => return Err(self.error_node(child, "a <Font> needs a `face-name`")),
            }
            self.stray_text(child);
        }
        if faces.is_empty() {
            let msg = format!("fontset `{name}` has no <Font> (Mapnik refuses an empty fontset)");
            return Err(self.error_node(node, msg));
        }
        if self.fontsets.iter().any(|f| f.name == name) {
            let msg = format!(
                "a second fontset named `{name}` is ignored; the first one is used (as in Mapnik)"
            );
            self.warn_node(node, msg);
        } else {
            self.fontsets.push(FontSet { name, faces });
        }
        Ok(())
    }

    /// Byte position where `node`'s text starts in the document, when the
    /// text is one plain text node (no entities or CDATA shifting offsets).
    pub(super) fn text_start(&self, node: Node<'_, '_>) -> Option<usize> {
        let text = text_of(node);
        let mut texts = node.children().filter(|c| c.is_text());
        let first = texts.next()?;
        let range = first.range();
        (texts.next().is_none() && self.doc.input_text().get(range.clone()) == Some(text.as_str()))
            .then_some(range.start)
    }

    fn text_error(
        &self,
        node: Node<'_, '_>,
        src: &str,
        start: Option<usize>,
        fallback: Location,
        e: FilterError,
    ) -> Error {
        Error::Style {
            location: match start {
                Some(start) => self.location(start + e.offset),
                None => fallback,
            },
            element: name_of(node).to_string(),
            message: format!("text `{}`: column {}: {}", src.trim(), e.column, e.message),
        }
    }

    /// The label text: the element's content, else Mapnik 2's `name`
    /// attribute. `None` when there is neither.
    pub(super) fn text_expr(&mut self, node: Node<'_, '_>) -> Result<Option<TextExpr>> {
        if let Some(child) = node.children().find(|c| c.is_element()) {
            let msg = format!(
                "<{}> inside <{}> is not supported (formatting and placement lists)",
                name_of(child),
                name_of(node)
            );
            return Err(self.error_node(child, msg));
        }
        let content = text_of(node);
        let name_attr = node.attributes().find(|a| a.name() == "name");
        if !content.trim().is_empty() {
            if let Some(a) = &name_attr {
                self.warn_attr(node, a, "`name` ignored: the element's text is the label");
            }
            let start = self.text_start(node);
            return TextExpr::parse(&content).map(Some).map_err(|e| {
                let fallback = self.node_loc(node);
                self.text_error(node, &content, start, fallback, e)
            });
        }
        let Some(a) = name_attr else {
            return Ok(None);
        };
        if a.value().trim().is_empty() {
            return Ok(None);
        }
        self.warn_attr(
            node,
            &a,
            "`name` is Mapnik 2 syntax (Mapnik 3 ignores it and draws no label); tessera draws it. \
             Write the text as the element's content instead",
        );
        let range = a.range_value();
        let start =
            (self.doc.input_text().get(range.clone()) == Some(a.value())).then_some(range.start);
        TextExpr::parse(a.value()).map(Some).map_err(|e| {
            let fallback = self.attr_loc(&a);
            self.text_error(node, a.value(), start, fallback, e)
        })
    }

    /// `<TextSymbolizer>` with text (the caller handles the empty case).
    pub(super) fn parse_text(
        &mut self,
        node: Node<'_, '_>,
        text: TextExpr,
    ) -> Result<TextSymbolizer> {
        let (s, _) = self.parse_text_props(node, text, false)?;
        // Parsed, but not drawn yet: refused rather than drawn wrongly.
        let not_yet = [
            (s.orientation != 0.0, "`orientation` (rotated labels)"),
            (s.text_ratio > 0.0, "`text-ratio`"),
            (s.offset != 0.0, "`offset` (labels on a parallel line)"),
            (
                s.repeat_wrap_character && s.wrap_character != ' ',
                "`repeat-wrap-character`",
            ),
        ];
        if let Some((_, what)) = not_yet.iter().find(|(given, _)| *given) {
            return Err(self.error_node(
                node,
                format!("{what} is not drawn yet; remove it or use its default"),
            ));
        }
        Ok(s)
    }

    /// A shield's image must be a PNG or SVG that can be read: checked now
    /// when the path is constant;
    /// a path with `[field]`s is checked per feature when drawn (a file
    /// that is missing then draws the text alone, as in Mapnik).
    pub(super) fn check_shield_image(
        &self,
        node: Node<'_, '_>,
        s: &ShieldSymbolizer,
    ) -> Result<()> {
        if let Some(path) = s.file.as_constant() {
            if let Err(e) = crate::image::check(&path) {
                return Err(self.error_node(node, format!("shield image {}: {e}", path.display())));
            }
            self.image_files.borrow_mut().push(path);
        }
        Ok(())
    }

    /// `<ShieldSymbolizer>`. Without text the shield has an empty label.
    pub(super) fn parse_shield(&mut self, node: Node<'_, '_>) -> Result<ShieldSymbolizer> {
        let text = self.text_expr(node)?.unwrap_or_default();
        let (text, extra) = self.parse_text_props(node, text, true)?;
        let Some(file) = extra.file else {
            return Err(self.error_node(node, "a <ShieldSymbolizer> needs a `file`"));
        };
        let raw = file.value().trim();
        if raw.is_empty() {
            return Err(self.error_attr(node, &file, "empty `file`"));
        }
        let mut path = PathExpr::parse(raw).map_err(|e| {
            self.error_attr(
                node,
                &file,
                format!("`file=\"{raw}\"`: column {}: {}", e.column, e.message),
            )
        })?;
        let resolved = self.resolve(raw);
        if resolved.as_os_str() != raw {
            // Relative: `resolve` put the folder in front; do the same
            // for the expression.
            let prefix = resolved.to_string_lossy();
            let prefix = &prefix[..prefix.len() - raw.len()];
            path = path.prefixed(prefix);
        }
        Ok(ShieldSymbolizer {
            text,
            file: path,
            unlock_image: extra.unlock_image,
            shield_dx: extra.shield_dx,
            shield_dy: extra.shield_dy,
            opacity: extra.opacity,
        })
    }

    fn parse_text_props<'a, 'i>(
        &mut self,
        node: Node<'a, 'i>,
        text: TextExpr,
        is_shield: bool,
    ) -> Result<(TextSymbolizer, ShieldAttrs<'a, 'i>)> {
        let mut s = TextSymbolizer {
            text,
            ..TextSymbolizer::default()
        };
        let mut shield = ShieldAttrs {
            opacity: 1.0,
            ..ShieldAttrs::default()
        };
        let mut face_name: Option<Attribute<'_, '_>> = None;
        let mut fontset: Option<Attribute<'_, '_>> = None;
        let mut placement_type = None;
        let mut placements = None;
        let mut new_spacing = None;
        let mut minimum_distance = None;
        for a in node.attributes() {
            match a.name() {
                "name" => {} // read by `text_expr`
                "face-name" => face_name = Some(a),
                "fontset-name" => fontset = Some(a),
                "size" => s.size = self.attr_non_negative(node, &a)?,
                "fill" => s.fill = self.attr_color(node, &a)?,
                "halo-fill" => s.halo_fill = self.attr_color(node, &a)?,
                "halo-radius" => s.halo_radius = self.attr_non_negative(node, &a)?,
                "halo-opacity" => s.halo_opacity = self.attr_opacity(node, &a)?,
                "opacity" if is_shield => shield.opacity = self.attr_opacity(node, &a)?,
                "text-opacity" if is_shield => s.opacity = self.attr_opacity(node, &a)?,
                "opacity" => s.opacity = self.attr_opacity(node, &a)?,
                "placement" => {
                    let v = a.value().trim();
                    if matches!(v, "grid" | "alternating-grid") {
                        let msg = format!("`placement=\"{v}\"` is not supported");
                        return Err(self.error_attr(node, &a, msg));
                    }
                    s.placement = self.attr_keyword(
                        node,
                        &a,
                        TextPlacement::from_keyword,
                        "`point`, `line`, `vertex`, `interior`",
                    )?
                }
                "placement-type" => placement_type = Some(a),
                "placements" => placements = Some(a),
                "dx" => s.dx = self.attr_f64(node, &a)?,
                "dy" => s.dy = self.attr_f64(node, &a)?,
                "horizontal-alignment" => {
                    if a.value().trim() == "adjust" {
                        return Err(self.error_attr(
                            node,
                            &a,
                            "`horizontal-alignment=\"adjust\"` is not supported",
                        ));
                    }
                    s.horizontal_alignment = self.attr_keyword(
                        node,
                        &a,
                        HorizontalAlignment::from_keyword,
                        "`left`, `middle`, `right`, `auto`",
                    )?
                }
                "vertical-alignment" => {
                    s.vertical_alignment = self.attr_keyword(
                        node,
                        &a,
                        VerticalAlignment::from_keyword,
                        "`top`, `middle`, `bottom`, `auto`",
                    )?
                }
                "justify-alignment" => {
                    s.justify_alignment = self.attr_keyword(
                        node,
                        &a,
                        JustifyAlignment::from_keyword,
                        "`left`, `center`, `right`, `auto`",
                    )?
                }
                "wrap-width" => s.wrap_width = self.attr_non_negative(node, &a)?,
                "wrap-character" => {
                    if let Some(c) = a.value().chars().next() {
                        s.wrap_character = c;
                    }
                }
                "wrap-before" => s.wrap_before = self.attr_bool(node, &a)?,
                "repeat-wrap-character" => s.repeat_wrap_character = self.attr_bool(node, &a)?,
                "text-ratio" => s.text_ratio = self.attr_non_negative(node, &a)?,
                "line-spacing" => s.line_spacing = self.attr_f64(node, &a)?,
                "character-spacing" => s.character_spacing = self.attr_f64(node, &a)?,
                "text-transform" => {
                    s.text_transform = self.attr_keyword(
                        node,
                        &a,
                        TextTransform::from_keyword,
                        "`none`, `uppercase`, `lowercase`, `capitalize`, `reverse`",
                    )?
                }
                "spacing" => s.spacing = self.attr_non_negative(node, &a)?,
                "repeat-distance" => {
                    s.repeat_distance = self.attr_non_negative(node, &a)?;
                    new_spacing.get_or_insert(a);
                }
                "margin" => {
                    s.margin = self.attr_non_negative(node, &a)?;
                    new_spacing.get_or_insert(a);
                }
                "minimum-distance" => {
                    s.minimum_distance = self.attr_non_negative(node, &a)?;
                    minimum_distance = Some(a);
                }
                "minimum-padding" => s.minimum_padding = self.attr_f64(node, &a)?,
                "minimum-path-length" => {
                    s.minimum_path_length = self.attr_non_negative(node, &a)?
                }
                "max-char-angle-delta" => s.max_char_angle_delta = self.attr_f64(node, &a)?,
                "upright" => {
                    s.upright = self.attr_keyword(
                        node,
                        &a,
                        Upright::from_keyword,
                        "`auto`, `auto-down`, `left`, `right`, `left-only`, `right-only`",
                    )?
                }
                "label-position-tolerance" => {
                    s.label_position_tolerance = self.attr_non_negative(node, &a)?
                }
                "allow-overlap" => s.allow_overlap = self.attr_bool(node, &a)?,
                "avoid-edges" => s.avoid_edges = self.attr_bool(node, &a)?,
                "largest-bbox-only" => s.largest_bbox_only = self.attr_bool(node, &a)?,
                "ignore-placement" => {
                    self.attr_bool(node, &a)?;
                    self.warn_attr(
                        node,
                        &a,
                        "`ignore-placement` ignored: Mapnik 3 does not read it for text (labels always block later labels)",
                    );
                }
                "clip" => s.clip = self.attr_bool(node, &a)?,
                "offset" => s.offset = self.attr_f64(node, &a)?,
                "orientation" => s.orientation = self.attr_f64(node, &a)?,
                "rotate-displacement" => s.rotate_displacement = self.attr_bool(node, &a)?,
                "halo-rasterizer" => match a.value().trim() {
                    "full" => {}
                    "fast" => self.warn_attr(
                        node,
                        &a,
                        "`halo-rasterizer=\"fast\"` ignored; halos are drawn in full",
                    ),
                    _ => return Err(self.bad_value(node, &a, "`full` or `fast`")),
                },
                "halo-comp-op" => s.halo_comp_op = self.comp_op(node, &a)?,
                "comp-op" => s.comp_op = self.comp_op(node, &a)?,
                "halo-transform" => {
                    if a.value().trim().is_empty() {
                        self.warn_attr(node, &a, "empty `halo-transform` ignored");
                    } else {
                        return Err(self.error_attr(node, &a, "`halo-transform` is not supported"));
                    }
                }
                "font-feature-settings" => self.warn_attr(
                    node,
                    &a,
                    "`font-feature-settings` ignored: fonts are shaped with their default features",
                ),
                "grid-cell-width" | "grid-cell-height" | "force-odd-labels" => {
                    let msg = format!("`{}` ignored (Mapnik 3.1 does not use it here)", a.name());
                    self.warn_attr(node, &a, msg);
                }
                "file" if is_shield => shield.file = Some(a),
                "base" if is_shield => {
                    return Err(self.error_attr(
                        node,
                        &a,
                        "`base` (a <FileSource>) is not supported",
                    ))
                }
                "shield-dx" if is_shield => shield.shield_dx = self.attr_f64(node, &a)?,
                "shield-dy" if is_shield => shield.shield_dy = self.attr_f64(node, &a)?,
                "unlock-image" if is_shield => shield.unlock_image = self.attr_bool(node, &a)?,
                "transform" if is_shield => {
                    if !a.value().trim().is_empty() {
                        return Err(self.error_attr(
                            node,
                            &a,
                            "shield `transform` is not supported",
                        ));
                    }
                }
                "no-text" if is_shield => self.warn_attr(
                    node,
                    &a,
                    "`no-text` ignored (removed in Mapnik 3; give the shield empty text instead)",
                ),
                _ => {
                    if !self.common_attr(node, &a)? {
                        self.unknown_attr(node, &a);
                    }
                }
            }
        }
        // Mapnik: margin/repeat-distance replace minimum-distance; both is an error.
        if let (Some(new), Some(old)) = (new_spacing, minimum_distance) {
            let msg = format!(
                "`minimum-distance` cannot be used together with `{}` (Mapnik refuses the deprecated option next to its replacements)",
                new.name()
            );
            return Err(self.error_attr(node, &old, msg));
        }
        match (face_name, fontset) {
            (Some(a), Some(_)) => {
                return Err(self.error_attr(
                    node,
                    &a,
                    "`face-name` and `fontset-name` cannot both be given (as in Mapnik)",
                ))
            }
            (Some(a), None) => {
                if a.value().is_empty() {
                    return Err(self.error_attr(node, &a, "empty `face-name`"));
                }
                s.face_names = vec![a.value().to_string()];
            }
            (None, Some(a)) => {
                let name = a.value();
                let Some(set) = self.fontsets.iter().find(|f| f.name == name) else {
                    let msg = format!(
                        "fontset `{name}` is not defined (a <FontSet> must come before the styles that use it)"
                    );
                    return Err(self.error_attr(node, &a, msg));
                };
                s.face_names = set.faces.clone();
                s.fontset = Some(name.to_string());
            }
            (None, None) => {
                let msg = format!(
                    "a <{}> needs a `face-name` or a `fontset-name` (Mapnik has no default font)",
                    name_of(node)
                );
                return Err(self.error_node(node, msg));
            }
        }
        match placement_type {
            None => {
                if let Some(p) = placements {
                    self.warn_attr(
                        node,
                        &p,
                        "`placements` ignored without `placement-type=\"simple\"` (as in Mapnik)",
                    );
                }
            }
            Some(pt) => {
                match pt.value().trim() {
                    "dummy" => {
                        if let Some(p) = placements {
                            self.warn_attr(
                            node,
                            &p,
                            "`placements` ignored with `placement-type=\"dummy\"` (as in Mapnik)",
                        );
                        }
                    }
                    "simple" => {
                        let raw = placements.as_ref().map_or("X", |p| p.value());
                        let Some((positions, sizes)) = parse_placements(raw) else {
                            let p = placements.expect("the default `X` parses");
                            return Err(self.bad_value(
                            node,
                            &p,
                            "positions from `N`, `E`, `S`, `W`, `NE`, `SE`, `NW`, `SW`, `X` separated by commas, then optional font sizes (e.g. `N,S,E,W,11,10`)",
                        ));
                        };
                        s.placements = positions;
                        s.placement_sizes = sizes;
                    }
                    "list" => return Err(self.error_attr(
                        node,
                        &pt,
                        "`placement-type=\"list\"` is not supported (only `simple` and `dummy`)",
                    )),
                    other => {
                        let msg = format!(
                        "unknown `placement-type=\"{other}\"` (Mapnik knows `simple`, `list`, `dummy`)"
                    );
                        return Err(self.error_attr(node, &pt, msg));
                    }
                }
            }
        }
        debug_assert!(!s.placements.is_empty());
        Ok((s, shield))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use roxmltree::{Document, ParsingOptions};

    use super::*;
    use crate::style::filter::{FeatureView, GeometryType, Value};
    use crate::style::text::{PlacementPosition, TextPart};

    /// Runs the shield parser on the first `<ShieldSymbolizer>` of `xml`,
    /// with `fonts` defined and paths relative to `/styles`.
    fn shield(xml: &str) -> (Result<ShieldSymbolizer>, Vec<String>) {
        let doc = Document::parse_with_options(xml, ParsingOptions::default()).unwrap();
        let mut loader = Loader {
            doc: &doc,
            file: None,
            source_map: crate::style::mapnik_xml::entities::SourceMap::of_text(xml, None),
            base_dir: PathBuf::from("/styles"),
            explicit_base: true,
            relative_to_xml: true,
            warnings: Vec::new(),
            templates: HashMap::new(),
            fontsets: vec![FontSet {
                name: "fonts".into(),
                faces: vec!["A".into(), "B".into()],
            }],
            text_faces: Vec::new(),
            layer_locations: Vec::new(),
            image_files: Default::default(),
        };
        let node = doc
            .descendants()
            .find(|n| n.has_tag_name("ShieldSymbolizer"))
            .unwrap();
        let r = loader.parse_shield(node);
        let warnings = loader.warnings.iter().map(|w| w.to_string()).collect();
        (r, warnings)
    }

    struct F;
    impl FeatureView for F {
        fn attribute(&self, name: &str) -> Option<Value> {
            match name {
                "width" => Some(Value::Int(3)),
                "height" => Some(Value::Int(1)),
                _ => None,
            }
        }
        fn geometry_type(&self) -> GeometryType {
            GeometryType::LineString
        }
    }

    #[test]
    fn osm_carto_shield() {
        let (s, warnings) = shield(
            r#"<ShieldSymbolizer file="symbols/shields/primary_[width]x[height].svg"
                fontset-name="fonts" size="10" fill="red" placement="line" spacing="760"
                repeat-distance="400" margin="5" unlock-image="true" shield-dx="1" shield-dy="-2"
                opacity="0.5" text-opacity="0.7" minimum-padding="2">[refs]</ShieldSymbolizer>"#,
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        let s = s.unwrap();
        assert_eq!(
            s.file.eval(&F),
            PathBuf::from("/styles/symbols/shields/primary_3x1.svg")
        );
        assert_eq!(s.file.fields().collect::<Vec<_>>(), ["width", "height"]);
        assert!(s.unlock_image);
        assert_eq!((s.shield_dx, s.shield_dy), (1.0, -2.0));
        // `opacity` is the image's, `text-opacity` the text's (Mapnik 3).
        assert_eq!((s.opacity, s.text.opacity), (0.5, 0.7));
        assert_eq!(s.text.text.parts, vec![TextPart::Field("refs".into())]);
        assert_eq!(s.text.face_names, ["A", "B"]);
        assert_eq!(s.text.placement, TextPlacement::Line);
        assert_eq!(
            (s.text.spacing, s.text.repeat_distance, s.text.margin),
            (760.0, 400.0, 5.0)
        );
        assert_eq!(s.text.placements, vec![PlacementPosition::Exact]);
    }

    #[test]
    fn shield_defaults_and_paths() {
        let (s, _) = shield(r#"<ShieldSymbolizer file="/abs/a.png" face-name="A"/>"#);
        let s = s.unwrap();
        assert_eq!(s.file.as_constant(), Some(PathBuf::from("/abs/a.png")));
        assert!(!s.unlock_image);
        assert_eq!((s.shield_dx, s.shield_dy, s.opacity), (0.0, 0.0, 1.0));
        assert!(s.text.text.is_empty());
        assert_eq!(s.text.opacity, 1.0);
        let (s, _) =
            shield(r#"<ShieldSymbolizer file="[icon].png" face-name="A">[n]</ShieldSymbolizer>"#);
        assert_eq!(
            s.unwrap().file.parts,
            vec![
                TextPart::Literal("/styles/".into()),
                TextPart::Field("icon".into()),
                TextPart::Literal(".png".into())
            ]
        );
    }

    #[test]
    fn shield_errors() {
        for (xml, needle) in [
            (
                r#"<ShieldSymbolizer face-name="A">[n]</ShieldSymbolizer>"#,
                "needs a `file`",
            ),
            (
                r#"<ShieldSymbolizer file=" " face-name="A"/>"#,
                "empty `file`",
            ),
            (
                r#"<ShieldSymbolizer file="a[b" face-name="A"/>"#,
                "closing `]`",
            ),
            (
                r#"<ShieldSymbolizer file="a.png"/>"#,
                "needs a `face-name` or a `fontset-name`",
            ),
            (
                r#"<ShieldSymbolizer file="a.png" fontset-name="x"/>"#,
                "fontset `x` is not defined",
            ),
            (
                r#"<ShieldSymbolizer file="a.png" face-name="A" base="icons"/>"#,
                "FileSource",
            ),
            (
                r#"<ShieldSymbolizer file="a.png" face-name="A" transform="scale(2)"/>"#,
                "transform",
            ),
            (
                r#"<ShieldSymbolizer file="a.png" face-name="A" shield-dx="x"/>"#,
                "`shield-dx` must be a number",
            ),
            (
                r#"<ShieldSymbolizer file="a.png" face-name="A" placement="diagonal"/>"#,
                "`placement` must be one of",
            ),
        ] {
            let msg = shield(xml).0.unwrap_err().to_string();
            assert!(msg.contains(needle), "{xml}: {msg}");
            assert!(msg.starts_with("<string>:1:"), "{msg}");
        }
    }
}
