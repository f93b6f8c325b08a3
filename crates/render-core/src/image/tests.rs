//! The image loader and cache, with files made by the tests.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::style::color::Color;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

const RED_SQUARE: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">
<rect x="1" y="1" width="8" height="8" fill="#ff0000" stroke="#0000ff" stroke-width="1"/>
<rect x="3" y="3" width="4" height="4" fill="none" stroke="#00ff00"/>
</svg>"##;

fn pixel(p: &Pixmap, x: u32, y: u32) -> [u8; 4] {
    let c = p.pixel(x, y).unwrap().demultiply();
    [c.red(), c.green(), c.blue(), c.alpha()]
}

#[test]
fn svg_bbox_is_the_geometry_and_ink_includes_strokes() {
    let v = svg::parse(RED_SQUARE.as_bytes()).unwrap();
    assert_eq!(v.bbox, [1.0, 1.0, 9.0, 9.0]);
    assert_eq!(v.ink, [0.5, 0.5, 9.5, 9.5]);
}

#[test]
fn svg_bbox_counts_control_points_and_unpainted_paths_as_mapnik_does() {
    // A curve from (2,8) to (8,8) whose control points rise to y = 0: its
    // top is at y = 2 (0.75 of the way up), but Mapnik's box (AGG's
    // bounding_rect over the unflattened path) reaches the control points.
    let hump = r##"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">
<path d="M2,8 C2,0 8,0 8,8 z" fill="#000"/>
</svg>"##;
    assert_eq!(
        svg::parse(hump.as_bytes()).unwrap().bbox,
        [2.0, 0.0, 8.0, 8.0]
    );
    // An unpainted rectangle widens the box (osm-carto's `mapnik_workaround`),
    // and a path's transform applies to its vertices.
    let workaround = r##"<svg xmlns="http://www.w3.org/2000/svg" width="16" height="8">
<rect width="16" height="8" fill="none"/>
<path d="M0,3 h2 v1 h-2 z" fill="#000" transform="translate(20,1)"/>
</svg>"##;
    assert_eq!(
        svg::parse(workaround.as_bytes()).unwrap().bbox,
        [0.0, 0.0, 22.0, 8.0]
    );
}

#[test]
fn fill_override_replaces_fills_but_keeps_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "sq.svg", RED_SQUARE.as_bytes());
    let mut cache = ImageCache::default();
    let plain = cache
        .sprite(&path, &Affine::IDENTITY, &PaintOverride::default(), 1.0)
        .unwrap();
    let over = PaintOverride {
        fill: Some(Color::rgb(0, 0, 0)),
        ..PaintOverride::default()
    };
    let black = cache.sprite(&path, &Affine::IDENTITY, &over, 1.0).unwrap();
    // Sprite pixel (i, j) is image pixel (i + offset.0, j + offset.1).
    let at = |s: &Sprite, x: i32, y: i32| {
        pixel(&s.pixmap, (x - s.offset.0) as u32, (y - s.offset.1) as u32)
    };
    assert_eq!(at(&plain, 2, 2), [255, 0, 0, 255]);
    assert_eq!(at(&black, 2, 2), [0, 0, 0, 255]);
    // The inner rect has no fill: its inside shows the outer fill.
    assert_eq!(at(&black, 5, 5), [0, 0, 0, 255]);
    // The stroke keeps its green (half a pixel over the black fill).
    assert_eq!(at(&black, 3, 5), [0, 128, 0, 255]);
    assert_eq!((cache.sprite_misses, cache.sprite_hits), (2, 0));
    cache.sprite(&path, &Affine::IDENTITY, &over, 1.0).unwrap();
    assert_eq!(
        (cache.sprite_misses, cache.sprite_hits, cache.misses),
        (2, 1, 1)
    );
}

#[test]
fn a_sprite_copied_at_whole_pixels_equals_the_vector_painted_there() {
    let v = svg::parse(RED_SQUARE.as_bytes()).unwrap();
    let symbol = Symbol::Vector(Arc::new(v));
    let linear = Affine([1.3, 0.4, -0.4, 1.3, 0.0, 0.0]);
    let sprite = make_sprite(&symbol, &linear, &PaintOverride::default(), 0.8).unwrap();
    let mut direct = Pixmap::new(40, 40).unwrap();
    let at = Affine([1.3, 0.4, -0.4, 1.3, 17.0, 11.0]);
    symbol.draw(
        &mut direct.as_mut(),
        sk_transform(&at),
        &PaintOverride::default(),
        0.8,
        BlendMode::SourceOver,
    );
    let mut copied = Pixmap::new(40, 40).unwrap();
    copied.draw_pixmap(
        17 + sprite.offset.0,
        11 + sprite.offset.1,
        sprite.pixmap.as_ref(),
        &PixmapPaint::default(),
        Transform::identity(),
        None,
    );
    let differing = direct
        .pixels()
        .iter()
        .zip(copied.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert!(direct.pixels().iter().any(|p| p.alpha() > 0));
    assert_eq!(differing, 0);
}

#[test]
fn a_missing_file_is_an_io_error() {
    let e = check(Path::new("/no/such/icon.png")).unwrap_err();
    assert!(matches!(e, ImageError::Io(_)), "{e}");
}

#[test]
fn a_corrupt_png_is_a_decode_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(b"this is not a PNG chunk stream");
    let path = write(dir.path(), "bad.png", &bytes);
    let e = check(&path).unwrap_err();
    assert!(matches!(e, ImageError::Decode(_)), "{e}");
}

#[test]
fn a_huge_svg_is_refused_when_rasterised_never_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let huge = r#"<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000" viewBox="0 0 100000 100000"><rect width="100000" height="100000" fill="red"/></svg>"#;
    let path = write(dir.path(), "huge.svg", huge.as_bytes());
    let info = check(&path).unwrap();
    assert_eq!((info.width, info.height), (100000.0, 100000.0));
    let mut cache = ImageCache::default();
    assert!(cache
        .sprite(&path, &Affine::IDENTITY, &PaintOverride::default(), 1.0)
        .is_none());
    // Scaled down it is fine.
    let small = Affine([0.0001, 0.0, 0.0, 0.0001, 0.0, 0.0]);
    let s = cache
        .sprite(&path, &small, &PaintOverride::default(), 1.0)
        .unwrap();
    assert!(s.pixmap.width() <= 16);
}

#[test]
fn an_svg_naming_another_file_is_refused() {
    let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10"><rect width="10" height="10"/><image xlink:href="/etc/passwd.png" width="5" height="5"/></svg>"#;
    let e = svg::parse(svg.as_bytes()).unwrap_err();
    assert!(
        matches!(e, ImageError::ExternalReference(ref f) if f == "/etc/passwd.png"),
        "{e}"
    );
    assert!(e.to_string().contains("/etc/passwd.png"));
}

#[test]
fn an_svg_usvg_cannot_read_says_why() {
    let e = svg::parse(b"<svg xmlns='http://www.w3.org/2000/svg'><rect").unwrap_err();
    assert!(matches!(e, ImageError::Svg(_)), "{e}");
    let e = svg::parse(br#"<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"></svg>"#)
        .unwrap_err();
    assert!(e.to_string().contains("draws nothing"), "{e}");
}

#[test]
fn pattern_tiles_are_the_bounding_box_truncated() {
    let v = svg::parse(RED_SQUARE.as_bytes()).unwrap();
    let t = make_tile(
        &Symbol::Vector(Arc::new(v)),
        &Affine([1.5, 0.0, 0.0, 1.5, 0.0, 0.0]),
    )
    .unwrap();
    assert_eq!((t.width(), t.height()), (12, 12));
}
