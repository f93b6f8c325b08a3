//! [`Color`]: an RGBA colour parsed the way Mapnik parses CSS colours.
//!
//! Accepted forms (Mapnik's `css_color_grammar`):
//! - `#rgb`, `#rgba`, `#rrggbb`, `#rrggbbaa` (hex digits in either case);
//! - `rgb(r, g, b)` with integers 0–255 or percentages, `rgba(r, g, b, a)`
//!   with `a` between 0 and 1 (clamped);
//! - `hsl(h, s%, l%)` and `hsla(h, s%, l%, a)`;
//! - the 147 CSS3 named colours plus `rebeccapurple` and `transparent`, in
//!   any case.
//!
//! One deviation: Mapnik stores `rgb(300, 0, 0)` as 300 mod 256; tessera
//! rejects components above 255.

use std::fmt;
use std::str::FromStr;

use crate::error::ColorError;

/// A straight (not premultiplied) 8-bit RGBA colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Color {
    /// Red, 0–255.
    pub r: u8,
    /// Green, 0–255.
    pub g: u8,
    /// Blue, 0–255.
    pub b: u8,
    /// Alpha, 0 (transparent) – 255 (opaque).
    pub a: u8,
}

impl Color {
    /// Opaque black, Mapnik's default line stroke.
    pub const BLACK: Color = Color::rgb(0, 0, 0);
    /// Opaque white.
    pub const WHITE: Color = Color::rgb(255, 255, 255);
    /// Mapnik's default polygon fill, `#808080`.
    pub const GRAY: Color = Color::rgb(128, 128, 128);
    /// Mapnik's default marker fill, `#0000ff`.
    pub const BLUE: Color = Color::rgb(0, 0, 255);
    /// Fully transparent black.
    pub const TRANSPARENT: Color = Color::new(0, 0, 0, 0);

    /// A colour from its four components.
    pub const fn new(r: u8, g: u8, b: u8, a: u8) -> Self {
        Color { r, g, b, a }
    }

    /// An opaque colour.
    pub const fn rgb(r: u8, g: u8, b: u8) -> Self {
        Color { r, g, b, a: 255 }
    }

    /// Parses a colour in any of the forms listed in the [module
    /// docs](self). Surrounding whitespace is ignored.
    pub fn parse(input: &str) -> Result<Self, ColorError> {
        let err = |reason: &str| ColorError {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(err("empty"));
        }
        if let Some(hex) = s.strip_prefix('#') {
            return parse_hex(hex)
                .ok_or_else(|| err("expected #rgb, #rgba, #rrggbb or #rrggbbaa with hex digits"));
        }
        if let Some(c) = named_color(s) {
            return Ok(c);
        }
        if let Some((func, args)) = split_function(s) {
            return match func {
                "rgb" => parse_rgb(&args, false),
                "rgba" => parse_rgb(&args, true),
                "hsl" => parse_hsl(&args, false),
                "hsla" => parse_hsl(&args, true),
                _ => Err(format!("unknown colour function `{func}`")),
            }
            .map_err(|reason| err(&reason));
        }
        Err(err(
            "not a hex colour, rgb()/rgba()/hsl()/hsla() or a CSS colour name",
        ))
    }

    /// True when the colour is fully transparent.
    pub fn is_transparent(self) -> bool {
        self.a == 0
    }
}

impl FromStr for Color {
    type Err = ColorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Color::parse(s)
    }
}

/// `#rrggbb`, or `#rrggbbaa` when the colour is not opaque; parses back to
/// the same colour.
impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:02x}{:02x}{:02x}", self.r, self.g, self.b)?;
        if self.a != 255 {
            write!(f, "{:02x}", self.a)?;
        }
        Ok(())
    }
}

fn parse_hex(hex: &str) -> Option<Color> {
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let digit = |i: usize| u8::from_str_radix(hex.get(i..i + 1)?, 16).ok();
    let pair = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
    match hex.len() {
        3 | 4 => {
            let a = if hex.len() == 4 { digit(3)? } else { 15 };
            Some(Color::new(
                digit(0)? * 17,
                digit(1)? * 17,
                digit(2)? * 17,
                a * 17,
            ))
        }
        6 | 8 => {
            let a = if hex.len() == 8 { pair(6)? } else { 255 };
            Some(Color::new(pair(0)?, pair(2)?, pair(4)?, a))
        }
        _ => None,
    }
}

/// `name(a, b, c)` → (`name`, [`a`, `b`, `c`]).
fn split_function(s: &str) -> Option<(&str, Vec<&str>)> {
    let open = s.find('(')?;
    let inner = s.get(open + 1..)?.trim_end().strip_suffix(')')?;
    let func = s.get(..open)?.trim_end();
    Some((func, inner.split(',').map(str::trim).collect()))
}

fn parse_alpha(s: &str) -> Result<u8, String> {
    let a: f64 = s
        .parse()
        .ok()
        .filter(|a: &f64| a.is_finite())
        .ok_or_else(|| format!("alpha `{s}` is not a number"))?;
    // Mapnik: uint8((255.0 * clip(a, 0, 1)) + 0.5)
    Ok((255.0 * a.clamp(0.0, 1.0) + 0.5) as u8)
}

fn parse_percent(s: &str) -> Option<f64> {
    s.strip_suffix('%')?
        .trim_end()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
}

fn parse_rgb(args: &[&str], with_alpha: bool) -> Result<Color, String> {
    let want = if with_alpha { 4 } else { 3 };
    if args.len() != want {
        return Err(format!("expected {want} components, found {}", args.len()));
    }
    let percent = args[0].ends_with('%');
    let mut c = [0u8; 3];
    for (slot, arg) in c.iter_mut().zip(args) {
        *slot = if percent {
            let v = parse_percent(arg).ok_or_else(|| {
                format!("`{arg}`: mix of percentages and numbers, or not a percentage")
            })?;
            // Mapnik: lround(255 * v / 100), saturated.
            (255.0 * v / 100.0).round().min(255.0) as u8
        } else {
            arg.parse::<u8>()
                .map_err(|_| format!("`{arg}` is not an integer between 0 and 255"))?
        };
    }
    let a = if with_alpha {
        parse_alpha(args[3])?
    } else {
        255
    };
    Ok(Color::new(c[0], c[1], c[2], a))
}

fn parse_hsl(args: &[&str], with_alpha: bool) -> Result<Color, String> {
    let want = if with_alpha { 4 } else { 3 };
    if args.len() != want {
        return Err(format!("expected {want} components, found {}", args.len()));
    }
    let h: f64 = args[0]
        .parse()
        .ok()
        .filter(|h: &f64| h.is_finite())
        .ok_or_else(|| format!("hue `{}` is not a number", args[0]))?;
    let s = parse_percent(args[1]).ok_or_else(|| format!("`{}` is not a percentage", args[1]))?;
    let l = parse_percent(args[2]).ok_or_else(|| format!("`{}` is not a percentage", args[2]))?;
    let a = if with_alpha {
        parse_alpha(args[3])?
    } else {
        255
    };
    // Mapnik's hsl_to_rgba (CSS3 algorithm).
    let (h, s, l) = (h / 360.0, s / 100.0, l / 100.0);
    let m2 = if l <= 0.5 {
        l * (s + 1.0)
    } else {
        l + s - l * s
    };
    let m1 = l * 2.0 - m2;
    let to_u8 = |v: f64| (255.0 * v).round().clamp(0.0, 255.0) as u8;
    Ok(Color::new(
        to_u8(hue_to_rgb(m1, m2, h + 1.0 / 3.0)),
        to_u8(hue_to_rgb(m1, m2, h)),
        to_u8(hue_to_rgb(m1, m2, h - 1.0 / 3.0)),
        a,
    ))
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

/// A CSS named colour (case-insensitive), as in Mapnik's table.
pub fn named_color(name: &str) -> Option<Color> {
    NAMED_COLORS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, c)| c)
}

const fn c(r: u8, g: u8, b: u8) -> Color {
    Color::rgb(r, g, b)
}

/// Mapnik's named colours (CSS3 plus `rebeccapurple` and `transparent`).
const NAMED_COLORS: &[(&str, Color)] = &[
    ("aliceblue", c(240, 248, 255)),
    ("antiquewhite", c(250, 235, 215)),
    ("aqua", c(0, 255, 255)),
    ("aquamarine", c(127, 255, 212)),
    ("azure", c(240, 255, 255)),
    ("beige", c(245, 245, 220)),
    ("bisque", c(255, 228, 196)),
    ("black", c(0, 0, 0)),
    ("blanchedalmond", c(255, 235, 205)),
    ("blue", c(0, 0, 255)),
    ("blueviolet", c(138, 43, 226)),
    ("brown", c(165, 42, 42)),
    ("burlywood", c(222, 184, 135)),
    ("cadetblue", c(95, 158, 160)),
    ("chartreuse", c(127, 255, 0)),
    ("chocolate", c(210, 105, 30)),
    ("coral", c(255, 127, 80)),
    ("cornflowerblue", c(100, 149, 237)),
    ("cornsilk", c(255, 248, 220)),
    ("crimson", c(220, 20, 60)),
    ("cyan", c(0, 255, 255)),
    ("darkblue", c(0, 0, 139)),
    ("darkcyan", c(0, 139, 139)),
    ("darkgoldenrod", c(184, 134, 11)),
    ("darkgray", c(169, 169, 169)),
    ("darkgreen", c(0, 100, 0)),
    ("darkgrey", c(169, 169, 169)),
    ("darkkhaki", c(189, 183, 107)),
    ("darkmagenta", c(139, 0, 139)),
    ("darkolivegreen", c(85, 107, 47)),
    ("darkorange", c(255, 140, 0)),
    ("darkorchid", c(153, 50, 204)),
    ("darkred", c(139, 0, 0)),
    ("darksalmon", c(233, 150, 122)),
    ("darkseagreen", c(143, 188, 143)),
    ("darkslateblue", c(72, 61, 139)),
    ("darkslategray", c(47, 79, 79)),
    ("darkslategrey", c(47, 79, 79)),
    ("darkturquoise", c(0, 206, 209)),
    ("darkviolet", c(148, 0, 211)),
    ("deeppink", c(255, 20, 147)),
    ("deepskyblue", c(0, 191, 255)),
    ("dimgray", c(105, 105, 105)),
    ("dimgrey", c(105, 105, 105)),
    ("dodgerblue", c(30, 144, 255)),
    ("firebrick", c(178, 34, 34)),
    ("floralwhite", c(255, 250, 240)),
    ("forestgreen", c(34, 139, 34)),
    ("fuchsia", c(255, 0, 255)),
    ("gainsboro", c(220, 220, 220)),
    ("ghostwhite", c(248, 248, 255)),
    ("gold", c(255, 215, 0)),
    ("goldenrod", c(218, 165, 32)),
    ("gray", c(128, 128, 128)),
    ("green", c(0, 128, 0)),
    ("greenyellow", c(173, 255, 47)),
    ("grey", c(128, 128, 128)),
    ("honeydew", c(240, 255, 240)),
    ("hotpink", c(255, 105, 180)),
    ("indianred", c(205, 92, 92)),
    ("indigo", c(75, 0, 130)),
    ("ivory", c(255, 255, 240)),
    ("khaki", c(240, 230, 140)),
    ("lavender", c(230, 230, 250)),
    ("lavenderblush", c(255, 240, 245)),
    ("lawngreen", c(124, 252, 0)),
    ("lemonchiffon", c(255, 250, 205)),
    ("lightblue", c(173, 216, 230)),
    ("lightcoral", c(240, 128, 128)),
    ("lightcyan", c(224, 255, 255)),
    ("lightgoldenrodyellow", c(250, 250, 210)),
    ("lightgray", c(211, 211, 211)),
    ("lightgreen", c(144, 238, 144)),
    ("lightgrey", c(211, 211, 211)),
    ("lightpink", c(255, 182, 193)),
    ("lightsalmon", c(255, 160, 122)),
    ("lightseagreen", c(32, 178, 170)),
    ("lightskyblue", c(135, 206, 250)),
    ("lightslategray", c(119, 136, 153)),
    ("lightslategrey", c(119, 136, 153)),
    ("lightsteelblue", c(176, 196, 222)),
    ("lightyellow", c(255, 255, 224)),
    ("lime", c(0, 255, 0)),
    ("limegreen", c(50, 205, 50)),
    ("linen", c(250, 240, 230)),
    ("magenta", c(255, 0, 255)),
    ("maroon", c(128, 0, 0)),
    ("mediumaquamarine", c(102, 205, 170)),
    ("mediumblue", c(0, 0, 205)),
    ("mediumorchid", c(186, 85, 211)),
    ("mediumpurple", c(147, 112, 219)),
    ("mediumseagreen", c(60, 179, 113)),
    ("mediumslateblue", c(123, 104, 238)),
    ("mediumspringgreen", c(0, 250, 154)),
    ("mediumturquoise", c(72, 209, 204)),
    ("mediumvioletred", c(199, 21, 133)),
    ("midnightblue", c(25, 25, 112)),
    ("mintcream", c(245, 255, 250)),
    ("mistyrose", c(255, 228, 225)),
    ("moccasin", c(255, 228, 181)),
    ("navajowhite", c(255, 222, 173)),
    ("navy", c(0, 0, 128)),
    ("oldlace", c(253, 245, 230)),
    ("olive", c(128, 128, 0)),
    ("olivedrab", c(107, 142, 35)),
    ("orange", c(255, 165, 0)),
    ("orangered", c(255, 69, 0)),
    ("orchid", c(218, 112, 214)),
    ("palegoldenrod", c(238, 232, 170)),
    ("palegreen", c(152, 251, 152)),
    ("paleturquoise", c(175, 238, 238)),
    ("palevioletred", c(219, 112, 147)),
    ("papayawhip", c(255, 239, 213)),
    ("peachpuff", c(255, 218, 185)),
    ("peru", c(205, 133, 63)),
    ("pink", c(255, 192, 203)),
    ("plum", c(221, 160, 221)),
    ("powderblue", c(176, 224, 230)),
    ("purple", c(128, 0, 128)),
    ("rebeccapurple", c(102, 51, 153)),
    ("red", c(255, 0, 0)),
    ("rosybrown", c(188, 143, 143)),
    ("royalblue", c(65, 105, 225)),
    ("saddlebrown", c(139, 69, 19)),
    ("salmon", c(250, 128, 114)),
    ("sandybrown", c(244, 164, 96)),
    ("seagreen", c(46, 139, 87)),
    ("seashell", c(255, 245, 238)),
    ("sienna", c(160, 82, 45)),
    ("silver", c(192, 192, 192)),
    ("skyblue", c(135, 206, 235)),
    ("slateblue", c(106, 90, 205)),
    ("slategray", c(112, 128, 144)),
    ("slategrey", c(112, 128, 144)),
    ("snow", c(255, 250, 250)),
    ("springgreen", c(0, 255, 127)),
    ("steelblue", c(70, 130, 180)),
    ("tan", c(210, 180, 140)),
    ("teal", c(0, 128, 128)),
    ("thistle", c(216, 191, 216)),
    ("tomato", c(255, 99, 71)),
    ("turquoise", c(64, 224, 208)),
    ("violet", c(238, 130, 238)),
    ("wheat", c(245, 222, 179)),
    ("white", c(255, 255, 255)),
    ("whitesmoke", c(245, 245, 245)),
    ("yellow", c(255, 255, 0)),
    ("yellowgreen", c(154, 205, 50)),
    ("transparent", Color::new(0, 0, 0, 0)),
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_form() {
        let cases: &[(&str, Color)] = &[
            ("#aad3df", Color::rgb(0xaa, 0xd3, 0xdf)),
            ("#AAD3DF", Color::rgb(0xaa, 0xd3, 0xdf)),
            ("  #f2efe9 ", Color::rgb(0xf2, 0xef, 0xe9)),
            ("#abc", Color::rgb(0xaa, 0xbb, 0xcc)),
            ("#abc8", Color::new(0xaa, 0xbb, 0xcc, 0x88)),
            ("#11223344", Color::new(0x11, 0x22, 0x33, 0x44)),
            ("rgb(1,2,3)", Color::rgb(1, 2, 3)),
            ("rgb( 10 , 20 , 30 )", Color::rgb(10, 20, 30)),
            ("rgb(100%,50%,0%)", Color::rgb(255, 128, 0)),
            ("rgba(255,0,0,0.5)", Color::new(255, 0, 0, 128)),
            ("rgba(255,0,0,2)", Color::new(255, 0, 0, 255)),
            ("rgba(255,0,0,-1)", Color::new(255, 0, 0, 0)),
            ("rgba(0%,0%,100%,0.25)", Color::new(0, 0, 255, 64)),
            ("hsl(0,100%,50%)", Color::rgb(255, 0, 0)),
            ("hsl(120,100%,25%)", Color::rgb(0, 128, 0)),
            ("hsla(240,100%,50%,0.5)", Color::new(0, 0, 255, 128)),
            ("red", Color::rgb(255, 0, 0)),
            ("Gray", Color::GRAY),
            ("STEELBLUE", Color::rgb(70, 130, 180)),
            ("transparent", Color::TRANSPARENT),
            ("rebeccapurple", Color::rgb(102, 51, 153)),
        ];
        for (input, want) in cases {
            assert_eq!(Color::parse(input).as_ref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn rejects_garbage_with_the_input_in_the_message() {
        for bad in [
            "",
            "#",
            "#ab",
            "#abcde",
            "#gggggg",
            "rgb(1,2)",
            "rgb(256,0,0)",
            "rgb(1,2,3,4)",
            "rgba(1,2,3)",
            "rgb(1%,2,3)",
            "notacolour",
            "hsl(a,1%,1%)",
            "cmyk(1,2,3,4)",
        ] {
            let err = Color::parse(bad).expect_err(bad);
            assert_eq!(err.input, bad);
            assert!(err.to_string().contains("invalid colour"), "{err}");
        }
    }

    #[test]
    fn named_table_is_complete_and_unique() {
        assert_eq!(NAMED_COLORS.len(), 149);
        let mut names: Vec<_> = NAMED_COLORS.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), NAMED_COLORS.len());
    }

    #[test]
    fn display_is_hex() {
        assert_eq!(Color::rgb(0xaa, 0xd3, 0xdf).to_string(), "#aad3df");
        assert_eq!(Color::new(1, 2, 3, 4).to_string(), "#01020304");
    }

    proptest! {
        #[test]
        fn hex_round_trip(r: u8, g: u8, b: u8, a: u8) {
            let c = Color::new(r, g, b, a);
            prop_assert_eq!(Color::parse(&c.to_string()), Ok(c));
            prop_assert_eq!(Color::parse(&c.to_string().to_uppercase()), Ok(c));
        }

        #[test]
        fn rgba_round_trip(r: u8, g: u8, b: u8) {
            let s = format!("rgb({r},{g},{b})");
            prop_assert_eq!(Color::parse(&s), Ok(Color::rgb(r, g, b)));
        }

        #[test]
        fn never_panics(s in "\\PC{0,20}") {
            let _ = Color::parse(&s);
        }
    }
}
