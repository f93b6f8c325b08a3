//! The text engine against the fonts scripts/install-deps.sh installs
//! (fonts-dejavu-core, fonts-noto-cjk): a missing font fails the test with
//! that advice, never skips it.

use std::sync::OnceLock;

use super::*;

const DEJAVU: &str = "DejaVu Sans Book";
const NOTO_JP: &str = "Noto Sans CJK JP Regular";

fn book() -> &'static FontBook {
    static BOOK: OnceLock<FontBook> = OnceLock::new();
    BOOK.get_or_init(|| FontBook::new(&[]))
}

fn chain(names: &[&str]) -> FontChain {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let (chain, missing) = book().chain(&names);
    assert!(
        missing.is_empty(),
        "fonts {missing:?} are not installed: run scripts/install-deps.sh \
         (fonts-dejavu-core, fonts-noto-cjk)"
    );
    chain
}

fn shape(names: &[&str], text: &str, size: f32) -> ShapedLine {
    let mut shaper = Shaper::new(book());
    let mut cache = ShapeCache::default();
    shaper.shape(&mut cache, &chain(names), text, size)
}

#[test]
fn faces_are_found_by_mapnik_names() {
    assert!(book().find(DEJAVU).is_some(), "{:?}", book().names());
    assert!(book().find("DejaVu Sans Bold").is_some());
    assert!(book().find(NOTO_JP).is_some());
    assert_eq!(book().find("No Such Face Regular"), None);
    let names = vec![DEJAVU.to_owned(), "No Such Face Regular".to_owned()];
    let (found, missing) = book().chain(&names);
    assert_eq!(found.faces().len(), 1);
    assert_eq!(missing, vec!["No Such Face Regular".to_owned()]);
}

#[test]
fn each_character_falls_back_through_the_chain() {
    let dejavu = book().find(DEJAVU).unwrap();
    let noto = book().find(NOTO_JP).unwrap();
    // Latin, Cyrillic and Greek from DejaVu; Japanese from Noto.
    let line = shape(&[DEJAVU, NOTO_JP], "Tokyo Москва Αθήνα 東京都", 16.0);
    assert_eq!(line.missing, 0);
    let faces: Vec<FaceId> = line.glyphs.iter().map(|g| g.face).collect();
    let text = "Tokyo Москва Αθήνα 東京都";
    for g in &line.glyphs {
        let c = text[g.cluster as usize..].chars().next().unwrap();
        let want = if ('\u{4e00}'..='\u{9fff}').contains(&c) {
            noto
        } else {
            dejavu
        };
        assert_eq!(g.face, want, "character {c:?}");
    }
    assert!(faces.contains(&dejavu) && faces.contains(&noto));
    // Without the CJK face, the Japanese characters are counted missing.
    assert_eq!(shape(&[DEJAVU], "東京都", 16.0).missing, 3);
}

#[test]
fn kerning_and_sizes_come_from_the_font() {
    let av = shape(&[DEJAVU], "AV", 20.0);
    let a = shape(&[DEJAVU], "A", 20.0);
    let v = shape(&[DEJAVU], "V", 20.0);
    assert!(
        av.width < a.width + v.width - 0.5,
        "no kerning: {} vs {} + {}",
        av.width,
        a.width,
        v.width
    );
    // Sizes scale the same shaping exactly.
    let small = shape(&[DEJAVU], "Helsinki", 10.0);
    let large = shape(&[DEJAVU], "Helsinki", 20.0);
    assert!((large.width - 2.0 * small.width).abs() < 1e-3);
    assert!(
        small.ascent > 5.0 && small.ascent < 12.0,
        "{}",
        small.ascent
    );
}

#[test]
fn combining_marks_and_right_to_left_text_are_shaped() {
    // e + COMBINING ACUTE: the mark is positioned over the e, not after it.
    let line = shape(&[DEJAVU], "e\u{301}", 20.0);
    let e = shape(&[DEJAVU], "e", 20.0);
    assert!((line.width - e.width).abs() < 0.01, "a mark takes no room");
    // Arabic: DejaVu Sans has the script; the shaper joins the letters
    // (contextual forms), so the glyphs differ from the isolated ones.
    let joined = shape(&[DEJAVU], "سلام", 20.0);
    let isolated: Vec<u16> = "سلام"
        .chars()
        .map(|c| shape(&[DEJAVU], &c.to_string(), 20.0).glyphs[0].glyph)
        .collect();
    let glyphs: Vec<u16> = joined.glyphs.iter().map(|g| g.glyph).collect();
    assert_eq!(joined.missing, 0);
    assert_ne!(glyphs, isolated);
    // Right to left: the first character's glyph is drawn rightmost.
    let first = joined.glyphs.iter().find(|g| g.cluster == 0).unwrap();
    assert!(joined.glyphs.iter().all(|g| g.x <= first.x));
}

#[test]
fn long_and_odd_text_never_panics() {
    let long = "Helsingin kaupunki ".repeat(600);
    let line = shape(&[DEJAVU, NOTO_JP], &long, 12.0);
    assert!(line.width > 10_000.0);
    for odd in [
        "",
        " ",
        "\u{301}",
        "\u{200d}\u{200d}",
        "\0\t\n",
        "a\u{10ffff}b",
    ] {
        let _ = shape(&[DEJAVU, NOTO_JP], odd, 12.0);
    }
    assert!(shape(&[DEJAVU], "", 12.0).glyphs.is_empty());
    // An empty chain draws nothing and counts every character missing.
    let mut shaper = Shaper::new(book());
    let line = shaper.shape(
        &mut ShapeCache::default(),
        &FontChain::default(),
        "ab",
        12.0,
    );
    assert_eq!((line.glyphs.len(), line.missing), (0, 2));
}

#[test]
fn the_caches_count_what_they_save() {
    let mut shaper = Shaper::new(book());
    let mut caches = TextCaches::default();
    let chain = chain(&[DEJAVU]);
    let first = shaper.shape(&mut caches.shapes, &chain, "Kamppi", 14.0);
    let again = shaper.shape(&mut caches.shapes, &chain, "Kamppi", 14.0);
    assert_eq!(first, again);
    assert_eq!((caches.shapes.hits, caches.shapes.misses), (1, 1));
    for _ in 0..2 {
        let path = paint::line_path(&mut shaper, &mut caches.glyphs, &first, 14.0, 0.0, 20.0);
        assert!(path.is_some());
    }
    // "Kamppi": five distinct glyphs (p twice), each outlined once.
    assert_eq!(caches.glyphs.misses, 5);
    assert_eq!(caches.glyphs.hits, 2 * 6 - 5);
}

fn params(size: f32) -> LayoutParams {
    LayoutParams {
        size,
        line_spacing: 0.0,
        character_spacing: 0.0,
        wrap_width: 0.0,
        wrap_char: None,
        wrap_before: false,
        dx: 0.0,
        dy: 0.0,
        halign: HAlign::Auto,
        valign: VAlign::Auto,
        justify: Justify::Auto,
    }
}

fn block(text: &str, p: &LayoutParams) -> TextBlock {
    let mut shaper = Shaper::new(book());
    layout(
        &mut shaper,
        &mut ShapeCache::default(),
        &chain(&[DEJAVU, NOTO_JP]),
        text,
        p,
    )
}

#[test]
fn a_one_line_block_is_as_tall_as_its_tallest_glyph_and_centred() {
    let p = params(20.0);
    let b = block("Helsinki", &p);
    let line = shape(&[DEJAVU, NOTO_JP], "Helsinki", 20.0);
    assert_eq!(b.lines.len(), 1);
    assert!((b.height - line.max_glyph_height).abs() < 1e-4);
    assert!((b.width - line.width).abs() < 1e-4);
    // Centred on the anchor: the baseline half the height below it.
    assert_eq!(b.offset, (0.0, 0.0));
    assert!((b.lines[0].baseline - b.height / 2.0).abs() < 1e-4);
    assert!((b.lines[0].x + b.width / 2.0).abs() < 1e-4);
}

#[test]
fn newlines_and_wrapping_make_lines_a_line_height_apart() {
    let mut p = params(10.0);
    p.line_spacing = 2.0;
    let b = block("Kamppi\nKampen", &p);
    assert_eq!(b.lines.len(), 2);
    let second = shape(&[DEJAVU, NOTO_JP], "Kampen", 10.0);
    let gap = b.lines[1].baseline - b.lines[0].baseline;
    assert!((gap - (second.line_height + 2.0)).abs() < 1e-4, "{gap}");
    // As Mapnik: the line breaks after the word that passes wrap-width
    // (the space ends the line), or before it with wrap-before.
    p.wrap_width = 60.0;
    let glyphs =
        |b: &TextBlock| -> Vec<usize> { b.lines.iter().map(|l| l.shaped.glyphs.len()).collect() };
    let b = block("Helsingin rautatieasema Helsinki", &p);
    assert_eq!(
        glyphs(&b),
        vec!["Helsingin rautatieasema".len(), "Helsinki".len()]
    );
    p.wrap_before = true;
    let b = block("Helsingin rautatieasema Helsinki", &p);
    assert_eq!(
        glyphs(&b),
        vec!["Helsingin".len(), "rautatieasema".len(), "Helsinki".len()]
    );
    // A word longer than the width stays whole.
    let b = block("Rautatientori", &p);
    assert_eq!(b.lines.len(), 1);
}

#[test]
fn an_empty_line_adds_no_height_whatever_the_line_spacing() {
    // osm-carto's text-point names end in a newline when there is no
    // elevation: Mapnik's empty line has no glyph, so no height and no
    // line-spacing either; the block stays where the one line puts it.
    let mut p = params(12.0);
    p.line_spacing = -1.8;
    let one = block("Helsingin yliopisto", &p);
    let trailing = block("Helsingin yliopisto\n", &p);
    assert_eq!(trailing.lines.len(), 2);
    assert!((trailing.height - one.height).abs() < 1e-4);
    assert!((trailing.lines[0].baseline - one.lines[0].baseline).abs() < 1e-4);
    // In the middle too: the lines around it are one line height apart.
    p.line_spacing = 2.0;
    let b = block("Kamppi\n\nKampen", &p);
    let second = shape(&[DEJAVU, NOTO_JP], "Kampen", 12.0);
    let gap = b.lines[2].baseline - b.lines[0].baseline;
    assert!((gap - (second.line_height + 2.0)).abs() < 1e-4, "{gap}");
}

#[test]
fn displacement_sets_the_automatic_alignments() {
    let mut p = params(10.0);
    p.dx = 5.0;
    p.dy = -4.0;
    let b = block("Two\nlines here", &p);
    // dx > 0: the block starts at the anchor + dx; dy < 0: it ends above.
    let (x0, _, _, y1) = b.bbox();
    assert!((x0 - 5.0).abs() < 1e-4, "{x0}");
    assert!((y1 + 4.0).abs() < 1e-4, "{y1}");
    // Lines are justified left.
    assert!((b.lines[0].x - b.lines[1].x).abs() < 1e-4);
    p.dx = -5.0;
    let b = block("Two\nlines here", &p);
    let right = |l: &BlockLine| l.x + l.width;
    assert!((right(&b.lines[0]) - right(&b.lines[1])).abs() < 1e-4);
}

#[test]
fn non_ascii_words_wrap_too() {
    let mut p = params(12.0);
    // "Helsingin" alone passes 40 px: the break comes after it.
    p.wrap_width = 40.0;
    let b = block("Helsingin päärautatieasema", &p);
    let widths: Vec<f32> = b.lines.iter().map(|l| l.width).collect();
    assert_eq!(b.lines.len(), 2, "{widths:?}");
    // At 60 px "Helsingin" fits, so the line breaks only after the word
    // that passes the width: the end. One line, as in Mapnik.
    p.wrap_width = 60.0;
    assert_eq!(block("Helsingin päärautatieasema", &p).lines.len(), 1);
}
