//! tile-math: point → tile, and covering a bbox.
//!
//! `cargo bench -p tessera-benches --bench tile_math`. Compare with
//! mercantile through `benches/scripts/tile_math_vs_mercantile.py`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tile_math::{tile_for_lnglat, tiles_covering, LngLat, LngLatBbox, TileCoord};

fn point_to_tile(c: &mut Criterion) {
    let mut group = c.benchmark_group("point_to_tile");
    group.throughput(Throughput::Elements(1));
    group.bench_function("helsinki_z16", |b| {
        b.iter(|| {
            tile_for_lnglat(
                black_box(LngLat::new(24.9384, 60.1699)),
                black_box(16),
                false,
            )
        })
    });
    group.finish();
}

fn cover_bbox(c: &mut Criterion) {
    let mut group = c.benchmark_group("cover_bbox");
    // Japan, z0-12: 55,476 tiles. Two ways, each matched on the Python side
    // by tile_math_vs_mercantile.py: `collect` builds the list of tiles (as
    // `list(mercantile.tiles(...))`), `count` only walks them (as
    // `sum(1 for _ in mercantile.tiles(...))`).
    let japan = LngLatBbox::new(129.0, 31.0, 146.0, 45.5);
    let count = tiles_covering(japan, 0..=12)
        .map(|c| c.count())
        .unwrap_or(0) as u64;
    group.throughput(Throughput::Elements(count));
    group.bench_function("japan_z0_12_collect", |b| {
        b.iter(|| tiles_covering(black_box(japan), 0..=12).map(|c| c.collect::<Vec<TileCoord>>()))
    });
    group.bench_function("japan_z0_12_count", |b| {
        b.iter(|| tiles_covering(black_box(japan), 0..=12).map(|c| c.count()))
    });
    group.finish();
}

criterion_group!(benches, point_to_tile, cover_bbox);
criterion_main!(benches);
