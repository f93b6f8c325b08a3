//! SVG symbols: parsed by usvg, painted here with tiny-skia.
//!
//! We paint usvg's tree ourselves rather than through resvg because Mapnik
//! changes an SVG's paint per symbolizer (`fill`, `stroke`, `stroke-width`
//! and their opacities replace the file's own, path by path, where the
//! path has that paint at all) and multiplies every paint's opacity by the
//! symbolizer's `opacity` and the groups' opacities. That is what Mapnik
//! 3's own SVG renderer does too, and why it needs no offscreen layers:
//! clip paths, masks, filters, patterns and embedded images are not drawn
//! (Mapnik's renderer ignores them as well).
//!
//! Safety limits: files over [`MAX_SVG_BYTES`] are refused, usvg refuses
//! more than a million elements, an `<image>` that names a file is an
//! error (styles must be self-contained: a symbol never reads a path the
//! style did not name), and nothing is ever rasterised larger than
//! [`super::MAX_IMAGE_SIDE`] pixels a side.

use std::path::Path;
use std::sync::{Arc, Mutex};

use tiny_skia::{BlendMode, FillRule, Paint, PixmapMut, Transform};
use usvg::{Node, Tree};

use super::{ImageError, PaintOverride};

/// The largest SVG file read, in bytes.
pub const MAX_SVG_BYTES: u64 = 8 << 20;

/// A parsed SVG and Mapnik's idea of its extent.
pub(crate) struct VectorImage {
    tree: Tree,
    /// Mapnik's bounding box of the geometry (strokes excluded, Bézier
    /// control points and unpainted paths included; [`mapnik_bbox`]), in
    /// the SVG's pixels: what Mapnik centres markers on, scales
    /// `width`/`height` against and cuts pattern tiles to.
    pub(crate) bbox: [f64; 4],
    /// The extent with strokes, for sizing rasters.
    pub(crate) ink: [f64; 4],
}

impl std::fmt::Debug for VectorImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorImage")
            .field("bbox", &self.bbox)
            .finish_non_exhaustive()
    }
}

/// Reads and parses an SVG file.
pub(crate) fn load(path: &Path) -> Result<VectorImage, ImageError> {
    let size = std::fs::metadata(path)?.len();
    if size > MAX_SVG_BYTES {
        return Err(ImageError::Svg(format!(
            "the file has {size} bytes; SVG symbols may have at most {MAX_SVG_BYTES}"
        )));
    }
    let bytes = std::fs::read(path)?;
    parse(&bytes)
}

/// Parses SVG bytes.
pub(crate) fn parse(bytes: &[u8]) -> Result<VectorImage, ImageError> {
    // usvg calls the resolvers for every <image>; we draw none, but one
    // naming a file must not silently read it (or silently vanish).
    let external: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = Arc::clone(&external);
    let options = usvg::Options {
        resources_dir: None,
        image_href_resolver: usvg::ImageHrefResolver {
            resolve_data: Box::new(|_, _, _| None),
            resolve_string: Box::new(move |href, _| {
                if let Ok(mut seen) = seen.lock() {
                    seen.push(href.to_string());
                }
                None
            }),
        },
        ..usvg::Options::default()
    };
    let tree = Tree::from_data(bytes, &options).map_err(|e| ImageError::Svg(e.to_string()))?;
    if let Some(href) = external.lock().ok().and_then(|s| s.first().cloned()) {
        return Err(ImageError::ExternalReference(href));
    }
    let root = tree.root();
    let b = root.abs_bounding_box();
    let s = root.abs_stroke_bounding_box();
    if !has_paths(root) || !(b.width() > 0.0 || b.height() > 0.0) {
        return Err(ImageError::Svg("it draws nothing".into()));
    }
    let rect = |r: usvg::Rect| {
        [
            f64::from(r.left()),
            f64::from(r.top()),
            f64::from(r.right()),
            f64::from(r.bottom()),
        ]
    };
    let mut bbox = None;
    mapnik_bbox(root, &mut bbox);
    Ok(VectorImage {
        bbox: bbox.unwrap_or_else(|| rect(b)),
        ink: rect(s),
        tree,
    })
}

/// Mapnik's bounding box of an SVG (`svg_converter::bounding_rect`, kept
/// by the marker cache): AGG's `bounding_rect` over every path's vertices
/// under the path's transform. The paths are not flattened there, so
/// Bézier control points count as vertices, and paths that paint nothing
/// count too (osm-carto's `mapnik_workaround` rectangles exist for that).
/// A curve whose control points lie outside it (the head of osm-carto's
/// place_of_worship icon) makes the box wider than the drawing; markers
/// are centred on and scaled against this box, so the tight box would
/// move and resize them. tiny-skia's `Path::bounds` is the same
/// control-point box (usvg's own bounding boxes are tight).
fn mapnik_bbox(group: &usvg::Group, acc: &mut Option<[f64; 4]>) {
    for node in group.children() {
        match node {
            Node::Group(g) => mapnik_bbox(g, acc),
            Node::Path(p) => {
                let Some(placed) = p.data().clone().transform(p.abs_transform()) else {
                    continue;
                };
                let r = placed.bounds();
                let (x0, y0, x1, y1) = (
                    f64::from(r.left()),
                    f64::from(r.top()),
                    f64::from(r.right()),
                    f64::from(r.bottom()),
                );
                *acc = Some(match *acc {
                    None => [x0, y0, x1, y1],
                    Some([a, b, c, d]) => [a.min(x0), b.min(y0), c.max(x1), d.max(y1)],
                });
            }
            _ => {}
        }
    }
}

fn has_paths(group: &usvg::Group) -> bool {
    group.children().iter().any(|n| match n {
        Node::Path(_) => true,
        Node::Group(g) => has_paths(g),
        _ => false,
    })
}

impl VectorImage {
    /// Paints the SVG with `transform` (from the SVG's pixels to the
    /// target's), paint overridden by `over` and every opacity multiplied
    /// by `opacity`.
    pub(crate) fn paint(
        &self,
        target: &mut PixmapMut<'_>,
        transform: Transform,
        over: &PaintOverride,
        opacity: f32,
        blend: BlendMode,
    ) {
        let style = Style {
            over,
            blend,
            target_transform: transform,
        };
        paint_group(target, self.tree.root(), opacity, &style);
    }
}

struct Style<'a> {
    over: &'a PaintOverride,
    blend: BlendMode,
    target_transform: Transform,
}

fn paint_group(target: &mut PixmapMut<'_>, group: &usvg::Group, opacity: f32, style: &Style<'_>) {
    let opacity = opacity * group.opacity().get();
    if opacity <= 0.0 {
        return;
    }
    for node in group.children() {
        match node {
            Node::Group(g) => paint_group(target, g, opacity, style),
            Node::Path(p) => paint_path(target, p, opacity, style),
            // Text is converted to paths by usvg only with its text
            // feature (off); images are not drawn (see the module doc).
            Node::Image(_) | Node::Text(_) => {}
        }
    }
}

fn paint_path(target: &mut PixmapMut<'_>, path: &usvg::Path, opacity: f32, style: &Style<'_>) {
    if !path.is_visible() {
        return;
    }
    let transform = style.target_transform.pre_concat(path.abs_transform());
    let anti_alias = path.rendering_mode().use_shape_antialiasing();
    let fill = |target: &mut PixmapMut<'_>| {
        let Some(fill) = path.fill() else { return };
        let bounds = path.data().bounds();
        if bounds.width() == 0.0 || bounds.height() == 0.0 {
            return;
        }
        let over = style.over;
        let alpha = over.fill_opacity.map_or(fill.opacity().get(), |o| o as f32) * opacity;
        let Some(mut paint) = shader(fill.paint(), over.fill, alpha) else {
            return;
        };
        paint.anti_alias = anti_alias;
        paint.blend_mode = style.blend;
        let rule = match fill.rule() {
            usvg::FillRule::NonZero => FillRule::Winding,
            usvg::FillRule::EvenOdd => FillRule::EvenOdd,
        };
        target.fill_path(path.data(), &paint, rule, transform, None);
    };
    let stroke = |target: &mut PixmapMut<'_>| {
        let Some(stroke) = path.stroke() else { return };
        let over = style.over;
        let alpha = over
            .stroke_opacity
            .map_or(stroke.opacity().get(), |o| o as f32)
            * opacity;
        let Some(mut paint) = shader(stroke.paint(), over.stroke, alpha) else {
            return;
        };
        paint.anti_alias = anti_alias;
        paint.blend_mode = style.blend;
        let mut sk = stroke.to_tiny_skia();
        if let Some(w) = over.stroke_width {
            sk.width = w as f32;
        }
        if sk.width > 0.0 {
            target.stroke_path(path.data(), &paint, &sk, transform, None);
        }
    };
    if path.paint_order() == usvg::PaintOrder::FillAndStroke {
        fill(target);
        stroke(target);
    } else {
        stroke(target);
        fill(target);
    }
}

/// The paint of a fill or stroke: the override colour when given,
/// otherwise the file's colour or gradient; `alpha` multiplies it.
fn shader(
    paint: &usvg::Paint,
    over: Option<crate::style::color::Color>,
    alpha: f32,
) -> Option<Paint<'static>> {
    let alpha = alpha.clamp(0.0, 1.0);
    let mut out = Paint::default();
    if let Some(c) = over {
        let a = (f32::from(c.a) * alpha).round() as u8;
        out.set_color_rgba8(c.r, c.g, c.b, a);
        return Some(out);
    }
    match paint {
        usvg::Paint::Color(c) => {
            out.set_color_rgba8(c.red, c.green, c.blue, (alpha * 255.0).round() as u8);
        }
        usvg::Paint::LinearGradient(g) => {
            out.shader = tiny_skia::LinearGradient::new(
                (g.x1(), g.y1()).into(),
                (g.x2(), g.y2()).into(),
                stops(g, alpha),
                spread(g),
                g.transform(),
            )?;
        }
        usvg::Paint::RadialGradient(g) => {
            out.shader = tiny_skia::RadialGradient::new(
                (g.fx(), g.fy()).into(),
                g.fr().get(),
                (g.cx(), g.cy()).into(),
                g.r().get(),
                stops(g, alpha),
                spread(g),
                g.transform(),
            )?;
        }
        // Pattern paints are not drawn (as in Mapnik's SVG renderer).
        usvg::Paint::Pattern(_) => return None,
    }
    Some(out)
}

fn stops(g: &usvg::BaseGradient, alpha: f32) -> Vec<tiny_skia::GradientStop> {
    g.stops()
        .iter()
        .map(|s| {
            let c = s.color();
            let a = (s.opacity().get() * alpha * 255.0).round() as u8;
            tiny_skia::GradientStop::new(
                s.offset().get(),
                tiny_skia::Color::from_rgba8(c.red, c.green, c.blue, a),
            )
        })
        .collect()
}

fn spread(g: &usvg::BaseGradient) -> tiny_skia::SpreadMode {
    match g.spread_method() {
        usvg::SpreadMethod::Pad => tiny_skia::SpreadMode::Pad,
        usvg::SpreadMethod::Reflect => tiny_skia::SpreadMode::Reflect,
        usvg::SpreadMethod::Repeat => tiny_skia::SpreadMode::Repeat,
    }
}
