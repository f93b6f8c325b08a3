//! The text engine on its own, drawn and compared exactly with goldens
//! (`tests/images/text_*.png`; `BLESS=1` rewrites them, as golden.rs says).
//! Fonts come from scripts/install-deps.sh (fonts-dejavu-core,
//! fonts-noto-cjk); a missing one fails with that advice.

use std::sync::OnceLock;

use render_core::text::{draw_line, FontBook, FontChain, LineStyle, TextCaches};

use crate::golden::{check, Image};

fn book() -> &'static FontBook {
    static BOOK: OnceLock<FontBook> = OnceLock::new();
    BOOK.get_or_init(|| FontBook::new(&[]))
}

fn chain(names: &[&str]) -> FontChain {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let (chain, missing) = book().chain(&names);
    assert!(
        missing.is_empty(),
        "fonts {missing:?} are not installed: run scripts/install-deps.sh"
    );
    chain
}

fn draw(names: &[&str], text: &str, style: &LineStyle, size: (u32, u32), at: (f32, f32)) -> Image {
    let mut caches = TextCaches::default();
    let rgba = draw_line(book(), &mut caches, &chain(names), text, style, size, at)
        .expect("a possible image size");
    Image {
        width: size.0,
        height: size.1,
        rgba,
    }
}

/// Mapnik's default text: black, a 1 px white halo here.
const HALO: LineStyle = LineStyle {
    size: 14.0,
    fill: [0, 0, 0, 255],
    halo_radius: 1.0,
    halo_fill: [255, 255, 255, 255],
    opacity: 1.0,
};

#[test]
fn text_latin_with_a_halo() {
    let image = draw(
        &["DejaVu Sans Book"],
        "Helsinki AVA",
        &HALO,
        (120, 24),
        (4.0, 17.0),
    );
    // Something was drawn: black glyph pixels and white halo pixels.
    let pixels: Vec<&[u8]> = image.rgba.chunks_exact(4).collect();
    assert!(pixels.iter().any(|p| p == &[0, 0, 0, 255]));
    assert!(pixels.iter().any(|p| p == &[255, 255, 255, 255]));
    check("text_latin_halo", &image);
}

#[test]
fn text_japanese_falls_back_to_noto_cjk() {
    let style = LineStyle {
        size: 16.0,
        fill: [0x22, 0x22, 0x88, 255],
        halo_radius: 1.5,
        halo_fill: [255, 255, 255, 200],
        opacity: 1.0,
    };
    let image = draw(
        &["DejaVu Sans Book", "Noto Sans CJK JP Regular"],
        "東京 Tokyo",
        &style,
        (120, 28),
        (4.0, 20.0),
    );
    check("text_japanese_fallback", &image);
}
