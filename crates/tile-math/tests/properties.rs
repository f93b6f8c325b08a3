//! Invariants that must hold for every tile and point, checked on random
//! input with proptest.

use proptest::prelude::*;
use tile_math::{
    tile_for_lnglat, tiles_covering, LngLat, LngLatBbox, Metatile, PixelTransform, TileCoord,
    Viewport, MAX_ZOOM,
};

fn any_tile() -> impl Strategy<Value = TileCoord> {
    (0..=MAX_ZOOM).prop_flat_map(|z| {
        let n = 1u64 << z;
        (Just(z), 0..n, 0..n).prop_map(|(z, x, y)| TileCoord::new(z, x as u32, y as u32).unwrap())
    })
}

fn tile_up_to(max_zoom: u8) -> impl Strategy<Value = TileCoord> {
    (0..=max_zoom).prop_flat_map(|z| {
        let n = 1u64 << z;
        (Just(z), 0..n, 0..n).prop_map(|(z, x, y)| TileCoord::new(z, x as u32, y as u32).unwrap())
    })
}

proptest! {
    #[test]
    fn tile_to_bounds_to_tile(t in any_tile()) {
        // The north-west corner and the centre of a tile are in that tile.
        prop_assert_eq!(tile_for_lnglat(t.ul(), t.z(), false).unwrap(), t);
        let b = t.bounds();
        let centre = LngLat::new((b.west + b.east) / 2.0, (b.south + b.north) / 2.0);
        prop_assert_eq!(tile_for_lnglat(centre, t.z(), false).unwrap(), t);
    }

    #[test]
    fn quadkey_round_trip(t in any_tile()) {
        let qk = t.quadkey();
        prop_assert_eq!(qk.len(), usize::from(t.z()));
        prop_assert_eq!(TileCoord::from_quadkey(&qk).unwrap(), t);
    }

    #[test]
    fn children_union_is_the_tile(t in tile_up_to(MAX_ZOOM - 1)) {
        let kids = t.children().unwrap();
        let parent = t.xy_bounds();
        let (mut l, mut b, mut r, mut top) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        let mut area = 0.0;
        for k in kids {
            prop_assert_eq!(k.parent(), Some(t));
            let kb = k.xy_bounds();
            l = l.min(kb.left); b = b.min(kb.bottom); r = r.max(kb.right); top = top.max(kb.top);
            area += kb.width() * kb.height();
        }
        let tol = parent.width() * 1e-9 + 1e-6;
        prop_assert!((l - parent.left).abs() < tol && (r - parent.right).abs() < tol);
        prop_assert!((b - parent.bottom).abs() < tol && (top - parent.top).abs() < tol);
        // No overlap: the children's areas add up to the parent's.
        let parent_area = parent.width() * parent.height();
        prop_assert!((area - parent_area).abs() <= parent_area * 1e-9 + 1e-6);
    }

    #[test]
    fn descendants_all_lie_inside(t in tile_up_to(20), depth in 0u8..4) {
        let zoom = t.z() + depth;
        let mut count = 0u64;
        for d in t.descendants(zoom).unwrap() {
            prop_assert_eq!(d.ancestor(t.z()).unwrap(), t);
            count += 1;
        }
        prop_assert_eq!(count, 1u64 << (2 * u32::from(depth)));
    }

    #[test]
    fn metatile_and_its_tiles_agree(t in any_tile(), size in 1u32..17) {
        let meta = Metatile::containing(t, size).unwrap();
        prop_assert!(meta.contains(t));
        let tiles: Vec<_> = meta.tiles().collect();
        prop_assert_eq!(tiles.len() as u32, meta.tile_count());
        prop_assert!(tiles.contains(&t));
        for other in &tiles {
            prop_assert_eq!(Metatile::containing(*other, size).unwrap(), meta);
        }
        // Never more than the world at low zooms.
        prop_assert!(u64::from(meta.tile_count()) <= (1u64 << t.z()) * (1u64 << t.z()));
    }

    #[test]
    fn metatile_pixels_cut_into_whole_tiles(t in tile_up_to(22), buffer in 0u32..200) {
        let meta = Metatile::containing(t, 8).unwrap();
        let px = PixelTransform::for_metatile(&meta, 256, buffer).unwrap();
        let (dx, dy) = meta.offset_of(t).unwrap();
        prop_assert_eq!(px.tile_origin(t), Some((buffer + dx * 256, buffer + dy * 256)));
    }

    #[test]
    fn point_lands_in_a_tile_that_contains_it(
        lng in -180.0f64..180.0, lat in -85.0f64..85.0, z in 0u8..=MAX_ZOOM
    ) {
        let t = tile_for_lnglat(LngLat::new(lng, lat), z, false).unwrap();
        let b = t.bounds();
        let slack = 1e-9;
        prop_assert!(b.west - slack <= lng && lng <= b.east + slack);
        prop_assert!(b.south - slack <= lat && lat <= b.north + slack);
    }

    #[test]
    fn cover_count_matches_total_and_has_no_duplicates(
        w in -180.0f64..180.0, width in 0.0f64..40.0, s in -85.0f64..80.0, height in 0.0f64..5.0,
        zmin in 0u8..8, extra in 0u8..3
    ) {
        let e = if w + width > 180.0 { w + width - 360.0 } else { w + width };
        let bbox = LngLatBbox::new(w, s, e, (s + height).min(85.0));
        let cover = tiles_covering(bbox, zmin..=zmin + extra).unwrap();
        let total = cover.total();
        let all: Vec<_> = cover.collect();
        prop_assert_eq!(all.len() as u64, total);
        let unique: std::collections::BTreeSet<_> = all.iter().collect();
        prop_assert_eq!(unique.len(), all.len());
    }

    #[test]
    fn viewport_tiles_are_ring_zero_and_ranked_nearest_first(
        w in -180.0f64..179.0, s in -80.0f64..79.0, z in 2u8..12, ring in 0u32..3
    ) {
        let bbox = LngLatBbox::new(w, s, (w + 1.0).min(180.0), s + 1.0);
        let v = Viewport::from_bbox(bbox, z).unwrap();
        for t in v.tiles(0) {
            prop_assert_eq!(v.ring_of(t), Some(0));
        }
        let ranked = v.tiles_by_distance(ring);
        prop_assert_eq!(ranked.len(), v.tiles(ring).len());
        for pair in ranked.windows(2) {
            prop_assert!(v.distance_from_centre(pair[0]) <= v.distance_from_centre(pair[1]));
        }
        for t in &ranked {
            prop_assert!(v.ring_of(*t).is_some_and(|r| r <= ring));
        }
    }
}
