//! Image symbols, pixel for pixel: SVG markers (with and without a paint
//! override, along a line), a PNG point icon, a line pattern round a
//! corner and a polygon pattern seamless across two tiles. The images are
//! written by the tests (SVG text, PNGs encoded here), so nothing outside
//! the repository is read. Also the load errors of bad image files.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use render_core::{Map, TileFormat};
use tile_math::TileCoord;

use crate::golden::{base_tile, check, feat, options, render_tile, scene, style, Image, Px};

/// A 16×16 px pin: a red disc with a dark outline, and round it an
/// unfilled ring (whose `fill="none"` must survive a fill override: the
/// gap between them stays empty).
const PIN: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16">
<circle cx="8" cy="8" r="4" fill="#d62728" stroke="#3b0a0a" stroke-width="1"/>
<circle cx="8" cy="8" r="7.5" fill="none" stroke="#3b0a0a" stroke-width="1"/>
</svg>"##;

/// An arrow pointing east (+x), 12×8 px.
const ARROW: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="12" height="8">
<path d="M 0 2 L 6 2 L 6 0 L 12 4 L 6 8 L 6 6 L 0 6 Z" fill="#1f4e79"/>
</svg>"##;

/// A 8×8 hatch tile: a dark diagonal on a light ground, so that a seam or
/// a shift of the pattern shows.
const HATCH: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8">
<rect width="8" height="8" fill="#e8f0d8"/>
<path d="M 0 8 L 8 0" stroke="#4a7a2a" stroke-width="1.5"/>
</svg>"##;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Writes a straight-RGBA PNG.
fn write_png(dir: &Path, name: &str, width: u32, height: u32, rgba: &[u8]) -> PathBuf {
    let path = dir.join(name);
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(rgba).unwrap();
    }
    std::fs::write(&path, out).unwrap();
    path
}

/// A 9×9 icon: an opaque blue square with a transparent 1 px border and a
/// yellow centre pixel, so its exact placement can be checked.
fn icon_pixels() -> Vec<u8> {
    let mut rgba = Vec::new();
    for y in 0..9 {
        for x in 0..9 {
            let px: [u8; 4] = if x == 0 || y == 0 || x == 8 || y == 8 {
                [0, 0, 0, 0]
            } else if (x, y) == (4, 4) {
                [255, 220, 0, 255]
            } else {
                [20, 60, 200, 255]
            };
            rgba.extend_from_slice(&px);
        }
    }
    rgba
}

fn straight(image: &Image, x: u32, y: u32) -> [u8; 4] {
    let i = ((y * image.width + x) * 4) as usize;
    image.rgba[i..i + 4].try_into().unwrap()
}

#[test]
fn svg_marker_with_and_without_fill_override() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "pin.svg", PIN);
    let px = Px::new(base_tile());
    let features = [
        feat("plain", 0, px.point(64.0, 64.0)),
        feat("green", 0, px.point(160.0, 64.0)),
        feat("big", 0, px.point(100.0, 170.0)),
    ];
    let styles = r##"<Style name="s">
<Rule><Filter>[kind] = 'plain'</Filter><MarkersSymbolizer file="pin.svg"/></Rule>
<Rule><Filter>[kind] = 'green'</Filter><MarkersSymbolizer file="pin.svg" fill="#2ca02c" stroke="#000000"/></Rule>
<Rule><Filter>[kind] = 'big'</Filter><MarkersSymbolizer file="pin.svg" width="40" opacity="0.7"/></Rule>
</Style>"##;
    let map = scene(dir.path(), &features, styles, &["s"]);
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    check("svg_marker_with_and_without_fill_override", &image);
    let ground = [0xf4, 0xf1, 0xea, 255];
    // The pin is centred on the point: its red disc round it, then the
    // empty gap before the ring.
    assert_eq!(straight(&image, 61, 64), [0xd6, 0x27, 0x28, 255]);
    assert_eq!(straight(&image, 58, 64), ground);
    // The override turns the disc green; the ring with fill="none" stays
    // unfilled, so the gap stays empty.
    assert_eq!(straight(&image, 161, 64), [0x2c, 0xa0, 0x2c, 255]);
    assert_eq!(straight(&image, 154, 64), ground);
    // width="40" scales the 15 px bounding box (the ring) to 40 px: the
    // disc's outline (4.5) ends at 12 px, the ring (7 to 8) starts at 18.7.
    let red = |x: u32| straight(&image, x, 170)[0] > 200 && straight(&image, x, 170)[1] < 150;
    assert!(red(100 - 8) && red(100 + 7));
    assert_eq!(straight(&image, 100 - 16, 170), ground);
}

#[test]
fn markers_along_a_line() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "arrow.svg", ARROW);
    let px = Px::new(base_tile());
    let features = [
        feat(
            "road",
            0,
            px.line(&[(20.0, 200.0), (120.0, 200.0), (220.0, 60.0)]),
        ),
        // A second line crossing the first: its markers give way where
        // they would overlap (allow-overlap false).
        feat("road", 1, px.line(&[(40.0, 40.0), (220.0, 220.0)])),
    ];
    let styles = r##"<Style name="s">
<Rule><LineSymbolizer stroke="#bbbbbb" stroke-width="6"/>
<MarkersSymbolizer file="arrow.svg" placement="line" spacing="40"/></Rule>
</Style>"##;
    let map = scene(dir.path(), &features, styles, &["s"]);
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    // The first marker is half a spacing (20 px) in, pointing east.
    let blue = |x: u32, y: u32| {
        let p = straight(&image, x, y);
        p[2] > 100 && p[0] < 60
    };
    assert!(blue(40, 200), "first arrow at 20 px along the line");
    check("markers_along_a_line", &image);
}

#[test]
fn png_point_icon() {
    let dir = tempfile::tempdir().unwrap();
    write_png(dir.path(), "icon.png", 9, 9, &icon_pixels());
    let px = Px::new(base_tile());
    let features = [
        // Positions off the pixel grid: Mapnik rounds the icon's corner to
        // whole pixels (never exactly on a grid line, where the tile's
        // metres could round either way).
        feat("poi", 0, px.point(50.2, 50.2)),
        feat("poi", 1, px.point(120.5, 50.5)),
        // Two icons on one spot: the second is not drawn (allow-overlap
        // false), and a polygon's icon goes to its centroid.
        feat("poi", 2, px.point(200.2, 50.2)),
        feat("poi", 3, px.point(202.2, 52.2)),
        feat(
            "area",
            4,
            px.polygon(&[&[(40.4, 150.4), (200.4, 150.4), (200.4, 230.4), (40.4, 230.4)]]),
        ),
    ];
    let styles = r##"<Style name="s">
<Rule><Filter>[kind] = 'area'</Filter><PolygonSymbolizer fill="#d0d0d0"/></Rule>
<Rule><PointSymbolizer file="icon.png"/></Rule>
</Style>"##;
    let map = scene(dir.path(), &features, styles, &["s"]);
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    check("png_point_icon", &image);
    // Copied exactly: the centre pixel lands on the point.
    assert_eq!(straight(&image, 50, 50), [255, 220, 0, 255]);
    assert_eq!(straight(&image, 51, 50), [20, 60, 200, 255]);
    assert_eq!(straight(&image, 120, 50), [255, 220, 0, 255]);
    // The blocked second icon would have put its yellow centre at (202, 52).
    assert_eq!(straight(&image, 202, 52), [20, 60, 200, 255]);
    // The polygon's centroid (120, 190).
    assert_eq!(straight(&image, 120, 190), [255, 220, 0, 255]);
}

#[test]
fn line_pattern_around_a_corner() {
    let dir = tempfile::tempdir().unwrap();
    // 12×6: dark top row, a red mark on the first columns, light body.
    let mut rgba = Vec::new();
    for y in 0..6 {
        for x in 0..12 {
            let p: [u8; 4] = if y == 0 {
                [30, 30, 30, 255]
            } else if x < 3 {
                [200, 30, 30, 255]
            } else {
                [240, 200, 120, 255]
            };
            rgba.extend_from_slice(&p);
        }
    }
    write_png(dir.path(), "rail.png", 12, 6, &rgba);
    write(dir.path(), "hatch.svg", HATCH);
    let px = Px::new(base_tile());
    let features = [
        feat(
            "warp",
            0,
            px.line(&[(30.0, 40.0), (200.0, 40.0), (200.0, 120.0), (60.0, 110.0)]),
        ),
        feat(
            "repeat",
            0,
            px.line(&[(30.0, 220.0), (110.0, 160.0), (220.0, 220.0)]),
        ),
    ];
    let styles = r##"<Style name="s">
<Rule><Filter>[kind] = 'warp'</Filter><LinePatternSymbolizer file="rail.png"/></Rule>
<Rule><Filter>[kind] = 'repeat'</Filter><LinePatternSymbolizer file="hatch.svg" line-pattern="repeat" stroke-width="10" stroke-linejoin="round" stroke-linecap="round"/></Rule>
</Style>"##;
    let map = scene(dir.path(), &features, styles, &["s"]);
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    // The warped image is 6 px across the line, centred on it: nothing
    // 5 px away from the straight part, the body on it.
    assert_eq!(straight(&image, 100, 46), [0xf4, 0xf1, 0xea, 255]);
    assert_eq!(straight(&image, 100, 34), [0xf4, 0xf1, 0xea, 255]);
    let body = straight(&image, 110, 40);
    assert!(body[0] > 150 && body[3] == 255, "{body:?}");
    check("line_pattern_around_a_corner", &image);
}

#[test]
fn polygon_pattern_with_global_alignment_is_seamless_across_two_tiles() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "hatch.svg", HATCH);
    let left = base_tile();
    let right = TileCoord::new(left.z(), left.x() + 1, left.y()).unwrap();
    let px = Px::new(left);
    // One polygon over both tiles (x from 100 to 412 in the left tile's
    // pixels).
    let features = [feat(
        "area",
        0,
        px.polygon(&[&[(100.0, 40.0), (412.0, 40.0), (412.0, 220.0), (100.0, 220.0)]]),
    )];
    let map = scene(
        dir.path(),
        &features,
        &style(r#"<PolygonPatternSymbolizer file="hatch.svg"/>"#),
        &["s"],
    );
    let a = render_tile(&map, left, options(TileFormat::Png32));
    let b = render_tile(&map, right, options(TileFormat::Png32));
    // The pattern repeats every 8 px from the map's origin, which lies on
    // a multiple of 8 px: along any row, pixel x of the right tile equals
    // pixel x of the left tile (256 is a multiple of 8), and across the
    // seam the two tiles continue one pattern.
    for y in 48..212 {
        for x in 0..120 {
            assert_eq!(straight(&a, 136 + x, y), straight(&b, x, y), "({x}, {y})");
        }
        assert_eq!(straight(&a, 255, y), straight(&a, 247, y));
        assert_eq!(straight(&b, 0, y), straight(&a, 248, y));
    }
    // Both tiles side by side, as one golden.
    let mut both = Image {
        width: 512,
        height: 256,
        rgba: vec![0; 512 * 256 * 4],
    };
    for y in 0..256usize {
        let row = 256 * 4;
        both.rgba[y * 2 * row..y * 2 * row + row].copy_from_slice(&a.rgba[y * row..(y + 1) * row]);
        both.rgba[y * 2 * row + row..(y + 1) * 2 * row]
            .copy_from_slice(&b.rgba[y * row..(y + 1) * row]);
    }
    check("polygon_pattern_global_alignment_two_tiles", &both);
}

/// The load error of a style with one symbolizer using `file`.
fn load_error(dir: &Path, symbolizer: &str) -> String {
    let xml = format!(
        r#"<Map>
<Style name="s">
<Rule>
{symbolizer}
</Rule>
</Style>
</Map>"#
    );
    match Map::from_str(&xml, dir) {
        Ok(_) => panic!("loaded: {symbolizer}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_missing_icon_is_a_load_error_naming_the_line_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = load_error(dir.path(), r#"<PointSymbolizer file="icons/nope.png"/>"#);
    assert!(e.contains(":4:"), "{e}");
    assert!(
        e.contains("icons/nope.png") && e.contains("cannot read it"),
        "{e}"
    );
}

#[test]
fn a_corrupt_png_is_a_load_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 13, b'I', b'H', b'D', b'R', 1, 2, 3]);
    std::fs::write(dir.path().join("broken.png"), bytes).unwrap();
    let e = load_error(
        dir.path(),
        r#"<PolygonPatternSymbolizer file="broken.png"/>"#,
    );
    assert!(e.contains("broken.png") && e.contains("not a PNG"), "{e}");
}

#[test]
fn an_svg_with_a_huge_view_box_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "huge.svg",
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100000 100000"><rect width="100000" height="100000"/></svg>"#,
    );
    let e = load_error(dir.path(), r#"<MarkersSymbolizer file="huge.svg"/>"#);
    assert!(
        e.contains("100000x100000") && e.contains("at most 2048"),
        "{e}"
    );
    // Given a size it is an ordinary 20 px marker.
    let xml = r#"<Map><Style name="s"><Rule><MarkersSymbolizer file="huge.svg" width="20"/></Rule></Style></Map>"#;
    assert!(Map::from_str(xml, dir.path()).is_ok());
}

#[test]
fn an_svg_that_references_an_external_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "sneaky.svg",
        r#"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="8" height="8"><rect width="8" height="8"/><image xlink:href="../secret.png" width="8" height="8"/></svg>"#,
    );
    let e = load_error(dir.path(), r#"<MarkersSymbolizer file="sneaky.svg"/>"#);
    assert!(e.contains("external file `../secret.png`"), "{e}");
}

#[test]
fn an_svg_usvg_cannot_read_names_the_file_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "cut.svg",
        "<svg xmlns='http://www.w3.org/2000/svg'><rect",
    );
    let e = load_error(dir.path(), r#"<PointSymbolizer file="cut.svg"/>"#);
    assert!(
        e.contains("cut.svg") && e.contains("not an SVG that can be read"),
        "{e}"
    );
}

#[test]
fn an_svg_shield_draws_its_image_under_the_text() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "shield.svg",
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="30" height="16"><rect x="0.5" y="0.5" width="29" height="15" rx="3" fill="#2a6f2a" stroke="#ffffff"/></svg>"##,
    );
    let px = Px::new(base_tile());
    let features = [feat("E75", 0, px.point(128.2, 128.2))];
    let styles = r##"<Style name="s"><Rule>
<ShieldSymbolizer file="shield.svg" face-name="DejaVu Sans Book" size="9" fill="#ffffff">[kind]</ShieldSymbolizer>
</Rule></Style>"##;
    let map = scene(dir.path(), &features, styles, &["s"]);
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    check("svg_shield", &image);
    let green = image
        .rgba
        .chunks_exact(4)
        .filter(|p| *p == [0x2a, 0x6f, 0x2a, 255])
        .count();
    // 28×14 px of green inside the outline, less the white text.
    assert!((200..=392).contains(&green), "{green} green pixels");
    check("svg_shield", &image);
}

#[test]
fn marker_clip_restarts_line_placement_at_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    // A line from far left of the tile (x = -400) to far right.
    let features = [feat("road", 0, px.line(&[(-400.0, 128.0), (600.0, 128.0)]))];
    let markers = |clip: &str| {
        format!(
            r##"<Style name="s"><Rule><MarkersSymbolizer placement="line" spacing="100" width="8" fill="#0000ff" stroke-width="0" clip="{clip}"/></Rule></Style>"##
        )
    };
    let blue =
        |image: &Image, x: u32| straight(image, x, 128)[2] > 200 && straight(image, x, 128)[0] < 50;
    // Not clipped (Mapnik's default): markers every 100 px from the line's
    // own start, half a spacing in: at x = -350, -250, ... so 50, 150, 250.
    let map = scene(dir.path(), &features, &markers("false"), &["s"]);
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    assert!(blue(&image, 50) && blue(&image, 150) && !blue(&image, 86));
    // Clipped: the line starts at the buffered image's edge, so the
    // markers move (by whatever the buffer makes the cut).
    let dir = tempfile::tempdir().unwrap();
    let map = scene(dir.path(), &features, &markers("true"), &["s"]);
    let clipped = render_tile(&map, base_tile(), options(TileFormat::Png32));
    assert!(!blue(&clipped, 50) && !blue(&clipped, 150));
    let count = |image: &Image| (0..256).filter(|&x| blue(image, x)).count();
    assert!(count(&clipped) >= 16, "{} blue pixels", count(&clipped));
}
