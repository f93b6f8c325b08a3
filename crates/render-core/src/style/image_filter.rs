//! A style's `image-filters`: filters run over the style's own image
//! before it is composited (Mapnik's `image_filter` grammar). tessera runs
//! `scale-hsla`, the one openstreetmap-carto uses (to lighten low-zoom
//! landcover); every other filter is refused by name, since leaving it out
//! would change the picture.

use std::fmt;

/// One filter of an `image-filters` list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ImageFilter {
    /// `scale-hsla(h0,h1,s0,s1,l0,l1,a0,a1)`: each pixel's hue, saturation,
    /// lightness and alpha (0-1) are mapped linearly into `[x0, x1]`.
    ScaleHsla([f64; 8]),
}

impl fmt::Display for ImageFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageFilter::ScaleHsla(v) => {
                let parts: Vec<String> = v.iter().map(f64::to_string).collect();
                write!(f, "scale-hsla({})", parts.join(","))
            }
        }
    }
}

/// Mapnik's filter names that tessera does not run.
const REFUSED: [&str; 14] = [
    "blur",
    "agg-stack-blur",
    "emboss",
    "sharpen",
    "edge-detect",
    "sobel",
    "gray",
    "x-gradient",
    "y-gradient",
    "invert",
    "color-blind-protanope",
    "color-blind-deuteranope",
    "color-blind-tritanope",
    "colorize-alpha",
];

/// Parses an `image-filters` list (filters separated by spaces or commas
/// outside parentheses). The error says which filter is not run or why
/// the text is not a list.
pub fn parse(text: &str) -> Result<Vec<ImageFilter>, String> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| c == '(' || c == ',' || c.is_whitespace())
            .unwrap_or(rest.len());
        let name = &rest[..name_end];
        let after = rest[name_end..].trim_start();
        let (args, next) = match after.strip_prefix('(') {
            Some(inner) => {
                let close = inner
                    .find(')')
                    .ok_or_else(|| format!("`{name}(`: missing `)`"))?;
                (Some(&inner[..close]), &inner[close + 1..])
            }
            None => (None, after),
        };
        match (name, args) {
            ("scale-hsla", Some(args)) => {
                let values: Vec<f64> = args
                    .split(',')
                    .map(|v| v.trim().parse::<f64>().ok().filter(|v| v.is_finite()))
                    .collect::<Option<_>>()
                    .ok_or_else(|| format!("`scale-hsla({args})`: eight numbers expected"))?;
                let values: [f64; 8] = values
                    .try_into()
                    .map_err(|_| format!("`scale-hsla({args})`: eight numbers expected"))?;
                out.push(ImageFilter::ScaleHsla(values));
            }
            (name, _) if REFUSED.contains(&name) || name == "scale-hsla" => {
                return Err(format!(
                    "image filter `{name}` is not supported (tessera runs `scale-hsla` only)"
                ));
            }
            (name, _) => return Err(format!("`{name}` is not an image filter")),
        }
        rest = next.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
    }
    Ok(out)
}

impl ImageFilter {
    /// Runs the filter over premultiplied RGBA pixels, as Mapnik does
    /// (demultiply, map, premultiply, rounding half up).
    pub(crate) fn apply(&self, rgba: &mut [u8]) {
        let ImageFilter::ScaleHsla([h0, h1, s0, s1, l0, l1, a0, a1]) = *self;
        let tinting = !(h0 == 0.0 && h1 == 1.0 && s0 == 0.0 && s1 == 1.0 && l0 == 0.0 && l1 == 1.0);
        let set_alpha = !(a0 == 0.0 && a1 == 1.0);
        if !tinting && !set_alpha {
            return;
        }
        let byte = |v: f64| (v * 255.0 + 0.5).floor().clamp(0.0, 255.0) as u8;
        for px in rgba.chunks_exact_mut(4) {
            let mut a = px[3];
            let mut a2 = f64::from(a) / 255.0;
            if a2 <= 0.0 {
                px[..3].fill(0);
                continue;
            }
            let mut rgb = [0.0f64; 3];
            for (c, v) in rgb.iter_mut().zip(px.iter()) {
                *c = f64::from(*v) / 255.0 / a2;
            }
            if set_alpha {
                a2 = a0 + a2 * (a1 - a0);
                if a2 <= 0.0 {
                    px.fill(0);
                    continue;
                }
                a2 = a2.min(1.0);
                a = byte(a2);
            }
            if tinting {
                let (h, s, l) = rgb_to_hsl(rgb);
                let h = (h0 + h * (h1 - h0)).clamp(0.0, 1.0);
                let s = (s0 + s * (s1 - s0)).clamp(0.0, 1.0);
                let l = (l0 + l * (l1 - l0)).clamp(0.0, 1.0);
                rgb = hsl_to_rgb(h, s, l);
            }
            for (v, c) in px.iter_mut().zip(rgb) {
                *v = byte(c * a2).min(a);
            }
            px[3] = a;
        }
    }
}

/// Mapnik's `rgb2hsl` (hue 0-1).
fn rgb_to_hsl([r, g, b]: [f64; 3]) -> (f64, f64, f64) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let delta = max - min;
    let gamma = max + min;
    let l = gamma / 2.0;
    if delta <= 0.0 {
        return (0.0, 0.0, l);
    }
    let s = if l > 0.5 {
        delta / (2.0 - gamma)
    } else {
        delta / gamma
    };
    let h = if max == r && max != g {
        (g - b) / delta + if g < b { 6.0 } else { 0.0 }
    } else if max == g && max != b {
        (b - r) / delta + 2.0
    } else if max == b && max != r {
        (r - g) / delta + 4.0
    } else {
        0.0
    };
    (h / 6.0, s, l)
}

fn hue_to_rgb(m1: f64, m2: f64, mut h: f64) -> f64 {
    if h < 0.0 {
        h += 1.0;
    } else if h > 1.0 {
        h -= 1.0;
    }
    if h * 6.0 < 1.0 {
        m1 + (m2 - m1) * h * 6.0
    } else if h * 2.0 < 1.0 {
        m2
    } else if h * 3.0 < 2.0 {
        m1 + (m2 - m1) * (2.0 / 3.0 - h) * 6.0
    } else {
        m1
    }
}

/// Mapnik's `hsl2rgb`.
fn hsl_to_rgb(h: f64, s: f64, l: f64) -> [f64; 3] {
    if s == 0.0 {
        return [l, l, l];
    }
    let m2 = if l <= 0.5 {
        l * (s + 1.0)
    } else {
        l + s - l * s
    };
    let m1 = l * 2.0 - m2;
    [
        hue_to_rgb(m1, m2, h + 1.0 / 3.0),
        hue_to_rgb(m1, m2, h),
        hue_to_rgb(m1, m2, h - 1.0 / 3.0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openstreetmap_carto_s_filter() {
        assert_eq!(
            parse("scale-hsla(0,1,0,1,0.2,1,0,1)").unwrap(),
            vec![ImageFilter::ScaleHsla([
                0.0, 1.0, 0.0, 1.0, 0.2, 1.0, 0.0, 1.0
            ])]
        );
        assert_eq!(parse("").unwrap(), vec![]);
    }

    #[test]
    fn other_filters_are_refused_by_name() {
        let e = parse("scale-hsla(0,1,0,1,0,1,0,1) blur").unwrap_err();
        assert!(
            e.contains("`blur`") && e.contains("`scale-hsla` only"),
            "{e}"
        );
        assert!(parse("wobble").unwrap_err().contains("not an image filter"));
        assert!(parse("scale-hsla(1,2)")
            .unwrap_err()
            .contains("eight numbers"));
    }

    #[test]
    fn lightness_into_0_2_to_1_lightens_black_and_keeps_white() {
        let f = ImageFilter::ScaleHsla([0.0, 1.0, 0.0, 1.0, 0.2, 1.0, 0.0, 1.0]);
        // Black, white, and half-transparent black (premultiplied).
        let mut px = [0, 0, 0, 255, 255, 255, 255, 255, 0, 0, 0, 128];
        f.apply(&mut px);
        assert_eq!(px[..4], [51, 51, 51, 255]);
        assert_eq!(px[4..8], [255, 255, 255, 255]);
        // Lightness 0.2 at alpha 128/255, premultiplied.
        assert_eq!(px[8..], [26, 26, 26, 128]);
    }

    #[test]
    fn hsl_round_trips() {
        for rgb in [
            [0.2, 0.4, 0.6],
            [0.9, 0.1, 0.1],
            [0.5, 0.5, 0.5],
            [0.1, 0.8, 0.3],
        ] {
            let (h, s, l) = rgb_to_hsl(rgb);
            let back = hsl_to_rgb(h, s, l);
            for (a, b) in rgb.iter().zip(back) {
                assert!((a - b).abs() < 1e-9, "{rgb:?} -> {back:?}");
            }
        }
    }

    #[test]
    fn transparent_pixels_stay_transparent() {
        let f = ImageFilter::ScaleHsla([0.0, 1.0, 0.0, 1.0, 0.2, 1.0, 0.0, 1.0]);
        let mut px = [0, 0, 0, 0];
        f.apply(&mut px);
        assert_eq!(px, [0, 0, 0, 0]);
    }
}
