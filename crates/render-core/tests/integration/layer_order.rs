//! Style-level features openstreetmap-carto needs, checked in numbers:
//! `image-filters="scale-hsla(...)"` on a style, and `group-by` on a layer
//! (features drawn style by style within runs of one field value).
#![allow(clippy::unwrap_used)]

use render_core::TileFormat;

use crate::golden::{base_tile, feat, options, rect, render_tile, scene, Image, Px};

fn pixel(image: &Image, x: u32, y: u32) -> [u8; 4] {
    let i = ((y * image.width + x) * 4) as usize;
    image.rgba[i..i + 4].try_into().unwrap()
}

#[test]
fn scale_hsla_lightens_a_style_as_mapnik_does() {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    let features = [feat(
        "area",
        0,
        px.polygon(&[&rect(40.0, 40.0, 200.0, 200.0)]),
    )];
    let styles = r##"<Style name="s" image-filters="scale-hsla(0,1,0,1,0.2,1,0,1)">
<Rule><PolygonSymbolizer fill="#000000"/></Rule></Style>"##;
    let map = scene(dir.path(), &features, styles, &["s"]);
    let image = render_tile(&map, base_tile(), options(TileFormat::Png32));
    // Black has lightness 0, mapped to 0.2: grey 51. The background (not
    // part of the style's image) is untouched.
    assert_eq!(pixel(&image, 100, 100), [51, 51, 51, 255]);
    assert_eq!(pixel(&image, 20, 20), [0xf4, 0xf1, 0xea, 255]);
}

#[test]
fn an_image_filter_tessera_does_not_run_is_a_load_error() {
    let xml = r#"<Map><Style name="s" image-filters="agg-stack-blur(2,2)"><Rule><PolygonSymbolizer/></Rule></Style></Map>"#;
    let e = crate::load_err(xml);
    assert!(
        e.contains("`agg-stack-blur`") && e.contains("`scale-hsla` only"),
        "{e}"
    );
}

/// Two roads crossing, on layers 0 and 1, each with a wide grey casing
/// and a narrow fill, drawn by two styles (casing, then fill).
fn crossing_roads(group_by: bool) -> Image {
    let dir = tempfile::tempdir().unwrap();
    let px = Px::new(base_tile());
    let features = [
        feat("road", 0, px.line(&[(20.0, 128.0), (236.0, 128.0)])),
        feat("road", 1, px.line(&[(128.0, 20.0), (128.0, 236.0)])),
    ];
    let styles = r##"<Style name="casing"><Rule><LineSymbolizer stroke="#444444" stroke-width="14"/></Rule></Style>
<Style name="fill"><Rule><LineSymbolizer stroke="#ffcc00" stroke-width="8"/></Rule></Style>"##;
    let map = scene(dir.path(), &features, styles, &["casing", "fill"]);
    let mut m = map.map().clone();
    if group_by {
        m.layers[0].group_by = Some("n".into());
    }
    let source = render_core::MapSource::from_loaded(
        render_core::LoadedMap {
            map: m,
            warnings: vec![],
        },
        None,
    )
    .unwrap();
    render_tile(&source, base_tile(), options(TileFormat::Png32))
}

#[test]
fn group_by_draws_each_run_of_a_field_style_by_style() {
    // Without group-by both casings go under both fills: the crossing is
    // all fill. With group-by on `n` the upper road (n = 1) is drawn after
    // the lower one's fill: its casing cuts across the lower road's fill.
    let flat = crossing_roads(false);
    let grouped = crossing_roads(true);
    let yellow = [0xff, 0xcc, 0x00, 255];
    let casing = [0x44, 0x44, 0x44, 255];
    // Beside the vertical road, on the horizontal road's fill line.
    assert_eq!(pixel(&flat, 122, 128), yellow);
    assert_eq!(pixel(&grouped, 122, 128), casing);
    // The crossing itself is the upper road's fill in both.
    assert_eq!(pixel(&grouped, 128, 128), yellow);
}

#[test]
fn group_by_is_read_from_the_layer() {
    let xml = r#"<Map><Style name="s"><Rule><LineSymbolizer/></Rule></Style>
<Layer name="roads" group-by="layernotnull"><StyleName>s</StyleName></Layer></Map>"#;
    let map = crate::load(xml).map;
    assert_eq!(map.layers[0].group_by.as_deref(), Some("layernotnull"));
}

/// Renders one long dashed line (starting 1000 px west, so its dashes enter
/// every tile mid-pattern) as one 2×2 metatile and as 1×1 metatiles, and
/// counts the pixels of the two left tiles that differ.
fn dash_seam_differences(clip: bool) -> (usize, Image) {
    use tile_math::{Metatile, TileCoord};
    let dir = tempfile::tempdir().unwrap();
    let left = TileCoord::new(10, 582, 296).unwrap();
    let right = TileCoord::new(10, 583, 296).unwrap();
    let px = Px::new(left);
    let features = [feat(
        "road",
        0,
        px.line(&[(-1000.3, 100.0), (700.0, 140.0)]),
    )];
    let styles = format!(
        r##"<Style name="s"><Rule><LineSymbolizer stroke="#000000" stroke-width="3" stroke-dasharray="11,7" clip="{clip}"/></Rule></Style>"##
    );
    let map = scene(dir.path(), &features, &styles, &["s"]);
    let opts = || options(TileFormat::Png32);
    let both = crate::golden::render(&map, Metatile::containing(left, 2).unwrap(), opts());
    let a = render_tile(&map, left, opts());
    let b = render_tile(&map, right, opts());
    let mut differing = 0;
    for y in 0..256 {
        for x in 0..256 {
            differing += usize::from(pixel(&both, x, y) != pixel(&a, x, y));
            differing += usize::from(pixel(&both, 256 + x, y) != pixel(&b, x, y));
        }
    }
    (differing, a)
}

/// Dashes run from the line's own start (Mapnik's default `clip="false"`),
/// so a metatile and its tiles draw the same dashes; with `clip="true"`
/// they start at each image's cut and do not.
#[test]
fn dashes_keep_their_phase_across_metatiles() {
    let (differing, a) = dash_seam_differences(false);
    assert_eq!(
        differing, 0,
        "pixels differ between the metatile and its tiles"
    );
    // And the line is dashed: along it, dark and light alternate.
    let dark = (0..256)
        .filter(|&x| (115..140).any(|y| pixel(&a, x, y)[0] < 100))
        .count();
    assert!(dark > 60 && dark < 220, "{dark}");
    let (differing, _) = dash_seam_differences(true);
    assert!(
        differing > 100,
        "clip=\"true\" restarts dashes at the cut: {differing}"
    );
}

/// The benchmark style over its shipped Shapefile extract, with every file
/// read per metatile (an in-memory limit of 0 bytes): the same picture as
/// the in-memory golden, and one read per layer and metatile.
#[test]
fn large_files_read_per_metatile_draw_the_same_picture() {
    use render_core::{LoadOptions, MapSource, Renderer};
    use tile_math::Metatile;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/mapnik_style_extract.xml");
    let tiled = MapSource::load_with(
        &path,
        &LoadOptions {
            in_memory_limit_bytes: 0,
        },
    )
    .unwrap();
    let layers = tiled.map().layers.len();
    assert!((0..layers).all(|i| tiled.file_layer(i).is_some() && tiled.layer_data(i).is_none()));
    let held = MapSource::load(&path).unwrap();
    assert!((0..layers).all(|i| held.layer_data(i).is_some()));
    let z13 =
        tile_math::tile_for_lnglat(tile_math::LngLat::new(24.944, 60.171), 13, false).unwrap();
    let meta = Metatile::containing(z13, 8).unwrap();
    let mut a = Renderer::new(tiled, options(TileFormat::Png32));
    let mut b = Renderer::new(held, options(TileFormat::Png32));
    let ia = a.draw_metatile(&meta).unwrap();
    let ib = b.draw_metatile(&meta).unwrap();
    assert!(
        ia.premultiplied_rgba == ib.premultiplied_rgba,
        "pictures differ"
    );
    // Something is drawn: more than one colour.
    let first = &ia.premultiplied_rgba[..4];
    assert!(ia.premultiplied_rgba.chunks_exact(4).any(|p| p != first));
    assert_eq!(a.files().reads as usize, layers);
}
