//! render-core's text engine alone: what the per-worker caches save.
//! Shaping a label and drawing it, cold (fresh caches every time, as for a
//! name seen once) and warm (the caches a worker keeps between metatiles).
//!
//! `cargo bench -p tessera-benches --bench text`. Needs the fonts
//! scripts/install-deps.sh installs (DejaVu Sans, Noto Sans CJK JP).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use render_core::text::{
    draw_line, FontBook, FontChain, LineStyle, ShapeCache, Shaper, TextCaches,
};

const LABELS: [(&str, &str); 3] = [
    ("latin", "Helsingin päärautatieasema"),
    ("japanese", "東京都千代田区丸の内"),
    ("mixed", "Tokyo 東京 Москва"),
];

fn chain(book: &FontBook) -> FontChain {
    let names = vec![
        "DejaVu Sans Book".to_owned(),
        "Noto Sans CJK JP Regular".to_owned(),
    ];
    let (chain, missing) = book.chain(&names);
    assert!(
        missing.is_empty(),
        "run scripts/install-deps.sh: {missing:?} missing"
    );
    chain
}

fn bench(c: &mut Criterion) {
    let book = FontBook::new(&[]);
    let chain = chain(&book);
    let style = LineStyle {
        size: 12.0,
        fill: [0, 0, 0, 255],
        halo_radius: 1.0,
        halo_fill: [255, 255, 255, 255],
        opacity: 1.0,
    };
    for (name, text) in LABELS {
        c.bench_function(&format!("shape_{name}_cold"), |b| {
            b.iter(|| {
                let mut shaper = Shaper::new(&book);
                let mut cache = ShapeCache::default();
                black_box(shaper.shape(&mut cache, &chain, black_box(text), 12.0))
            })
        });
        let mut shaper = Shaper::new(&book);
        let mut cache = ShapeCache::default();
        c.bench_function(&format!("shape_{name}_cached"), |b| {
            b.iter(|| black_box(shaper.shape(&mut cache, &chain, black_box(text), 12.0)))
        });
        c.bench_function(&format!("draw_{name}_cold"), |b| {
            b.iter(|| {
                let mut caches = TextCaches::default();
                black_box(draw_line(
                    &book,
                    &mut caches,
                    &chain,
                    text,
                    &style,
                    (200, 24),
                    (2.0, 17.0),
                ))
            })
        });
        let mut caches = TextCaches::default();
        c.bench_function(&format!("draw_{name}_cached"), |b| {
            b.iter(|| {
                black_box(draw_line(
                    &book,
                    &mut caches,
                    &chain,
                    text,
                    &style,
                    (200, 24),
                    (2.0, 17.0),
                ))
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
