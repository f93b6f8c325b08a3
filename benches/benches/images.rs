//! render-core's image cache alone: what drawing a marker costs when its
//! raster is made once and copied (the renderer's way for markers that do
//! not turn), against painting the SVG from its vector every time (markers
//! turned along a line), and against reading and parsing the file every
//! time (no cache at all).
//!
//! `cargo bench -p tessera-benches --bench images`. The SVG is written by
//! the bench itself (a 16 px POI icon, paths and a gradient-free fill, as
//! openstreetmap-carto's symbols are).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use render_core::image::{draw_marker, ImageCache, Via};
use render_core::PaintOverride;

/// A 14 px icon of the openstreetmap-carto kind: a few filled paths.
const ICON: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="14" height="14" viewBox="0 0 14 14">
<path d="M 7 0.5 C 3.4 0.5 0.5 3.4 0.5 7 C 0.5 10.6 3.4 13.5 7 13.5 C 10.6 13.5 13.5 10.6 13.5 7 C 13.5 3.4 10.6 0.5 7 0.5 Z" fill="#734a08"/>
<path d="M 4 4 L 10 4 L 10 5 L 7.5 5 L 7.5 10 L 6.5 10 L 6.5 5 L 4 5 Z" fill="#ffffff"/>
<path d="M 3 11 L 11 11 L 11 12 L 3 12 Z" fill="#ffffff" stroke="#734a08" stroke-width="0.5"/>
</svg>"##;

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("tessera-images-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("icon.svg");
    std::fs::write(&file, ICON).expect("icon written");
    let plain = PaintOverride::default();
    let at = (32.3, 31.7);
    for scale in [1.0, 2.0] {
        let mut cache = ImageCache::default();
        c.bench_function(&format!("marker_cached_x{scale}"), |b| {
            b.iter(|| {
                black_box(draw_marker(
                    &mut cache,
                    &file,
                    &plain,
                    scale,
                    (64, 64),
                    at,
                    Via::Cache,
                ))
            })
        });
        let mut cache = ImageCache::default();
        c.bench_function(&format!("marker_vector_x{scale}"), |b| {
            b.iter(|| {
                black_box(draw_marker(
                    &mut cache,
                    &file,
                    &plain,
                    scale,
                    (64, 64),
                    at,
                    Via::Vector,
                ))
            })
        });
        c.bench_function(&format!("marker_uncached_x{scale}"), |b| {
            b.iter(|| {
                let mut cache = ImageCache::default();
                black_box(draw_marker(
                    &mut cache,
                    &file,
                    &plain,
                    scale,
                    (64, 64),
                    at,
                    Via::Vector,
                ))
            })
        });
    }
    // Both ways draw the same pixels (the renderer relies on it).
    let mut cache = ImageCache::default();
    let a = draw_marker(&mut cache, &file, &plain, 1.0, (64, 64), at, Via::Cache);
    let b = draw_marker(&mut cache, &file, &plain, 1.0, (64, 64), at, Via::Vector);
    assert_eq!(a, b, "cached and vector markers differ");
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
