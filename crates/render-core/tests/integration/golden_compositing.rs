//! Golden images of coverage gamma, line offsets and compositing
//! (`comp-op`), compared exactly like the other goldens (`golden.rs`:
//! `BLESS=1` rewrites the references), each also checked in numbers; and
//! checks in numbers alone of `stroke-gamma`, of a style's `comp-op` with
//! an opacity, and of a marker's `comp-op`.
// Test helpers too: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use render_core::TileFormat;

use crate::golden::{
    base_tile, check, feat, ngon, options, rect, render_tile, scene, Feat, Image, Px,
};

/// Straight RGBA of one pixel.
fn pixel(image: &Image, x: u32, y: u32) -> [u8; 4] {
    let i = ((y * image.width + x) * 4) as usize;
    image.rgba[i..i + 4].try_into().unwrap()
}

fn max_channel_difference(a: [u8; 4], b: [u8; 4]) -> u8 {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(y))
        .max()
        .unwrap_or(0)
}

const BACKGROUND: [u8; 4] = [0xf4, 0xf1, 0xea, 255];
const FILL: [u8; 4] = [0x2e, 0x5e, 0x8c, 255];

/// The x where the shared edge of a gamma pair crosses row centre `y`: from
/// (100.3, top) to (140.7, top + 90).
fn seam_x(top: f64, y: f64) -> f64 {
    100.3 + (y - top) / 90.0 * 40.4
}

/// Two polygons of the same colour sharing a slanted edge that crosses
/// pixels at every fraction, with their top at `top`.
fn gamma_pair(px: &Px, kind: &'static str, top: f64) -> [Feat; 2] {
    let bottom = top + 90.0;
    [
        feat(
            kind,
            0,
            px.polygon(&[&[(20.0, top), (100.3, top), (140.7, bottom), (20.0, bottom)]]),
        ),
        feat(
            kind,
            1,
            px.polygon(&[&[(100.3, top), (236.0, top), (236.0, bottom), (140.7, bottom)]]),
        ),
    ]
}

/// How far the pixels around the shared edge stray from the fill colour,
/// at worst (the interior is exactly the fill colour, so this is the seam).
fn worst_seam(image: &Image, top: f64) -> u8 {
    let mut worst = 0;
    for y in (top as u32 + 5)..(top as u32 + 85) {
        let x = seam_x(top, f64::from(y) + 0.5);
        for sx in (x.floor() as u32 - 1)..=(x.ceil() as u32 + 1) {
            worst = worst.max(max_channel_difference(pixel(image, sx, y), FILL));
        }
    }
    worst
}

#[test]
fn gamma_0_3_against_1_0() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    // Top: gamma 1, the default. Bottom: gamma 0.3 (openstreetmap-carto's
    // landcover value).
    let mut features = Vec::new();
    features.extend(gamma_pair(&px, "g1", 20.0));
    features.extend(gamma_pair(&px, "g03", 140.0));
    let styles = r##"<Style name="s">
<Rule><Filter>[kind] = 'g1'</Filter><PolygonSymbolizer fill="#2e5e8c"/></Rule>
<Rule><Filter>[kind] = 'g03'</Filter><PolygonSymbolizer fill="#2e5e8c" gamma="0.3"/></Rule>
</Style>"##;
    let map = scene(dir.path(), &features, styles, &["s"]);
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    // Inside both pairs: the fill colour.
    assert_eq!(pixel(&image, 60, 60), FILL);
    assert_eq!(pixel(&image, 200, 180), FILL);
    // Gamma 1: where the edge halves a pixel, each polygon covers half of
    // it and together they paint 1 - 0.5 · 0.5 = 75%: a quarter of the
    // background shows, about 50 levels. The seam is visible.
    let seam_1 = worst_seam(&image, 20.0);
    assert!(
        seam_1 >= 40,
        "gamma 1 seam only {seam_1} levels from the fill"
    );
    // Gamma 0.3: half coverage counts as 0.5^0.3 = 81%, together 96.5%:
    // the background shows through by about 7 levels at worst.
    let seam_03 = worst_seam(&image, 140.0);
    assert!(
        seam_03 <= 10,
        "gamma 0.3 seam {seam_03} levels from the fill"
    );
    check("gamma_0_3_against_1_0", &image);
}

#[test]
fn a_line_offset() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    // East, a right-angle turn south, then back up north-west: a right
    // turn and a sharp one. On pixel centres, so that the 1.5 px lines
    // and their ±4 px offsets each cover one row or column fully.
    let path = [(30.0, 50.5), (180.5, 50.5), (180.5, 200.0), (60.0, 140.0)];
    let features = [feat("l", 0, px.line(&path))];
    let styles = r##"<Style name="s"><Rule>
<LineSymbolizer stroke="#222222" stroke-width="1.5"/>
<LineSymbolizer stroke="#c0392b" stroke-width="1.5" offset="4"/>
<LineSymbolizer stroke="#2471a3" stroke-width="1.5" offset="-4"/>
</Rule></Style>"##;
    let map = scene(dir.path(), &features, styles, &["s"]);
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    let red = [0xc0, 0x39, 0x2b, 255];
    let blue = [0x24, 0x71, 0xa3, 255];
    let dark = [0x22, 0x22, 0x22, 255];
    // Going east, the left (+4) is up: red 4 px above, blue 4 px below.
    assert_eq!(pixel(&image, 100, 50), dark);
    assert_eq!(pixel(&image, 100, 46), red);
    assert_eq!(pixel(&image, 100, 54), blue);
    // Going south, the left is east.
    assert_eq!(pixel(&image, 180, 120), dark);
    assert_eq!(pixel(&image, 184, 120), red);
    assert_eq!(pixel(&image, 176, 120), blue);
    // Nothing in between.
    assert_eq!(pixel(&image, 100, 48), BACKGROUND);
    assert_eq!(pixel(&image, 182, 120), BACKGROUND);
    // Around the first corner the outer (red) line turns outside the
    // centre line's corner, the inner (blue) one inside it.
    assert_eq!(pixel(&image, 184, 46), red);
    assert_eq!(pixel(&image, 176, 54), blue);
    check("a_line_offset", &image);
}

#[test]
fn two_comp_ops() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    let features = [
        feat("square", 0, px.polygon(&[&rect(30.0, 30.0, 160.0, 160.0)])),
        // Multiplied onto the square and the background.
        feat("disc", 0, px.polygon(&[&ngon(150.0, 90.0, 60.0, 48)])),
        // Two overlapping discs erasing through a style, over the
        // square's corner and the background: the style is drawn apart
        // first, so their overlap erases no more than one disc.
        feat("hole", 0, px.polygon(&[&ngon(70.0, 150.0, 40.0, 48)])),
        feat("hole", 0, px.polygon(&[&ngon(120.0, 200.0, 40.0, 48)])),
    ];
    let styles = r##"<Style name="paint">
<Rule><Filter>[kind] = 'square'</Filter><PolygonSymbolizer fill="#f0c040"/></Rule>
<Rule><Filter>[kind] = 'disc'</Filter><PolygonSymbolizer fill="#4080c0" comp-op="multiply"/></Rule>
</Style>
<Style name="erase" comp-op="dst-out" opacity="0.6">
<Rule><Filter>[kind] = 'hole'</Filter><PolygonSymbolizer fill="#000000"/></Rule>
</Style>"##;
    let map = scene(dir.path(), &features, styles, &["paint", "erase"]);
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    // multiply of two opaque colours is their product:
    // (240·64, 192·128, 64·192) / 255.
    let near = |a: [u8; 4], b: [u8; 4]| max_channel_difference(a, b) <= 1;
    let over_square = pixel(&image, 130, 90);
    assert!(near(over_square, [60, 96, 48, 255]), "{over_square:?}");
    // Over the background (244, 241, 234).
    let over_background = pixel(&image, 190, 90);
    assert!(
        near(over_background, [61, 121, 176, 255]),
        "{over_background:?}"
    );
    // The square where the disc is not.
    assert_eq!(pixel(&image, 50, 50), [0xf0, 0xc0, 0x40, 255]);
    // dst-out at opacity 0.6 leaves 40% of what was there (the square,
    // or the background): alpha 102, colour unchanged.
    for (x, y, colour) in [
        (70, 140, [0xf0, 0xc0, 0x40]),
        (140, 215, [0xf4, 0xf1, 0xea]),
    ] {
        let p = pixel(&image, x, y);
        assert!((101..=103).contains(&p[3]), "({x}, {y}): {p:?}");
        assert!(
            near([p[0], p[1], p[2], 0], [colour[0], colour[1], colour[2], 0]),
            "({x}, {y}): {p:?}"
        );
    }
    // Where the two holes overlap: erased once, not twice.
    assert_eq!(pixel(&image, 95, 175)[3], pixel(&image, 140, 215)[3]);
    // Outside the holes nothing was erased.
    assert_eq!(pixel(&image, 220, 230), BACKGROUND);
    check("two_comp_ops", &image);
}

#[test]
fn stroke_gamma_makes_partly_covered_pixels_more_solid() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    // 1 px lines centred on a pixel boundary: each covers half of two rows.
    let features = [
        feat("g1", 0, px.line(&[(20.0, 40.0), (236.0, 40.0)])),
        feat("g03", 0, px.line(&[(20.0, 80.0), (236.0, 80.0)])),
    ];
    let styles = r##"<Style name="s">
<Rule><Filter>[kind] = 'g1'</Filter><LineSymbolizer stroke="#000000"/></Rule>
<Rule><Filter>[kind] = 'g03'</Filter><LineSymbolizer stroke="#000000" stroke-gamma="0.3"/></Rule>
</Style>"##;
    let map = scene(dir.path(), &features, styles, &["s"]);
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    // Gamma 1: half of the background shows (0xf4 / 2 = 122). Gamma 0.3:
    // 0.5^0.3 = 81% black, 19% of the background (46).
    let g1 = pixel(&image, 128, 39)[0];
    let g03 = pixel(&image, 128, 79)[0];
    assert!((112..=132).contains(&g1), "gamma 1: {g1}");
    assert!((36..=56).contains(&g03), "gamma 0.3: {g03}");
    // The other half row alike (within rounding).
    for y in [40, 80] {
        let d = max_channel_difference(pixel(&image, 128, y), pixel(&image, 128, y - 1));
        assert!(d <= 1, "rows {} and {y} differ by {d}", y - 1);
    }
}

#[test]
fn style_dst_in_at_half_opacity_keeps_half_of_what_it_does_not_cover() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    let features = [feat(
        "keep",
        0,
        px.polygon(&[&rect(64.0, 64.0, 192.0, 192.0)]),
    )];
    // dst-in keeps the map where the style draws and erases it elsewhere;
    // at opacity 0.5 AGG moves each pixel halfway (cover 127) to that.
    let styles = r##"<Style name="s" comp-op="dst-in" opacity="0.5">
<Rule><PolygonSymbolizer fill="#000000"/></Rule>
</Style>"##;
    let map = scene(dir.path(), &features, styles, &["s"]);
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    // Inside: untouched background.
    assert_eq!(pixel(&image, 128, 128), BACKGROUND);
    // Outside: the background at 1 - 127/255 alpha, not erased (which is
    // what scaling the source by the opacity would give).
    let outside = pixel(&image, 20, 20);
    assert_eq!(outside[3], 128, "{outside:?}");
    assert!(
        max_channel_difference(
            [outside[0], outside[1], outside[2], 0],
            [0xf4, 0xf1, 0xea, 0]
        ) <= 1,
        "{outside:?}"
    );
}

#[test]
fn marker_comp_op_dst_out_erases_the_map_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    let features = [feat("m", 0, px.point(100.5, 100.5))];
    let map = scene(
        dir.path(),
        &features,
        r#"<Style name="s"><Rule><MarkersSymbolizer width="20" comp-op="dst-out" allow-overlap="true"/></Rule></Style>"#,
        &["s"],
    );
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    // The opaque marker erases the background under it, to transparent.
    assert_eq!(pixel(&image, 100, 100)[3], 0);
    assert_eq!(pixel(&image, 130, 100), BACKGROUND);
}
