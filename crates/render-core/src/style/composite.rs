//! `comp-op`: how a symbolizer's paint, or a whole style's image, is
//! composited onto what is below it.
//!
//! [`CompOp`] holds the Mapnik compositing modes tessera draws, by Mapnik's
//! names. Each one is drawn with the tiny-skia blend mode whose formula is
//! AGG's (Mapnik's `agg_pixfmt_rgba.h`, premultiplied colours), checked
//! mode by mode below. Mapnik's other modes are known by name and refused
//! by [`CompOp::parse`] with the reason ([`CompOpError`]); the loader turns
//! that into an error naming the mode and listing the supported ones.
//!
//! Antialiased edges: AGG scales the source by the pixel's coverage for
//! most modes, but moves the destination towards the result for the modes
//! that would otherwise change uncovered pixels ([`CompOp::lerps_coverage`]).
//! Drawing code that applies coverage itself must do the same.

use std::fmt;

/// A Mapnik compositing mode that tessera draws. `S`/`D` are the source
/// and destination colours, premultiplied, `Sa`/`Da` their alphas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CompOp {
    /// `clear`: nothing is left.
    Clear,
    /// `src`: the source replaces the destination.
    Src,
    /// `dst`: the destination stays (the source is not drawn).
    Dst,
    /// `src-over` (default): the source over the destination.
    #[default]
    SrcOver,
    /// `dst-over`: the destination over the source.
    DstOver,
    /// `src-in`: `S·Da`.
    SrcIn,
    /// `dst-in`: `D·Sa`.
    DstIn,
    /// `src-out`: `S·(1 - Da)`.
    SrcOut,
    /// `dst-out`: `D·(1 - Sa)` (erases where the source is).
    DstOut,
    /// `src-atop`: `S·Da + D·(1 - Sa)`.
    SrcAtop,
    /// `dst-atop`: `D·Sa + S·(1 - Da)`.
    DstAtop,
    /// `xor`: `S·(1 - Da) + D·(1 - Sa)`.
    Xor,
    /// `plus`: `min(S + D, 1)`.
    Plus,
    /// `multiply`: `S·D + S·(1 - Da) + D·(1 - Sa)`.
    Multiply,
    /// `screen`: `S + D - S·D`.
    Screen,
    /// `overlay`: multiply or screen, by the destination.
    Overlay,
    /// `darken`: `min(S·Da, D·Sa) + S·(1 - Da) + D·(1 - Sa)`.
    Darken,
    /// `lighten`: `max(S·Da, D·Sa) + S·(1 - Da) + D·(1 - Sa)`.
    Lighten,
    /// `hard-light`: multiply or screen, by the source.
    HardLight,
    /// `difference`: `S + D - 2·min(S·Da, D·Sa)`.
    Difference,
    /// `exclusion`: `S + D - 2·S·D`.
    Exclusion,
}

/// Every mode tessera draws, with Mapnik's name, in Mapnik's order.
const SUPPORTED: [(CompOp, &str); 21] = [
    (CompOp::Clear, "clear"),
    (CompOp::Src, "src"),
    (CompOp::Dst, "dst"),
    (CompOp::SrcOver, "src-over"),
    (CompOp::DstOver, "dst-over"),
    (CompOp::SrcIn, "src-in"),
    (CompOp::DstIn, "dst-in"),
    (CompOp::SrcOut, "src-out"),
    (CompOp::DstOut, "dst-out"),
    (CompOp::SrcAtop, "src-atop"),
    (CompOp::DstAtop, "dst-atop"),
    (CompOp::Xor, "xor"),
    (CompOp::Plus, "plus"),
    (CompOp::Multiply, "multiply"),
    (CompOp::Screen, "screen"),
    (CompOp::Overlay, "overlay"),
    (CompOp::Darken, "darken"),
    (CompOp::Lighten, "lighten"),
    (CompOp::HardLight, "hard-light"),
    (CompOp::Difference, "difference"),
    (CompOp::Exclusion, "exclusion"),
];

/// Mapnik's modes that tessera refuses, and why: tiny-skia lacks them, or
/// its mode of that name computes something else than AGG's.
const REFUSED: [(&str, &str); 16] = [
    ("minus", "tiny-skia has no such blend mode"),
    (
        "color-dodge",
        "tiny-skia's color-dodge follows the newer W3C formula, which differs from AGG's \
         where a destination channel is 0 (white over black: white in Mapnik, black in tiny-skia)",
    ),
    (
        "color-burn",
        "tiny-skia's color-burn follows the newer W3C formula, which differs from AGG's \
         where a destination channel is full (black over white: black in Mapnik, white in tiny-skia)",
    ),
    (
        "soft-light",
        "AGG uses the SVG 1.2 draft formula and tiny-skia the W3C one; they differ",
    ),
    ("contrast", "tiny-skia has no such blend mode"),
    ("invert", "tiny-skia has no such blend mode"),
    ("invert-rgb", "tiny-skia has no such blend mode"),
    ("grain-merge", "tiny-skia has no such blend mode"),
    ("grain-extract", "tiny-skia has no such blend mode"),
    (
        "hue",
        "AGG swaps the HSV hue of premultiplied colours, tiny-skia uses the W3C \
         luminosity formulas; they differ",
    ),
    (
        "saturation",
        "AGG swaps the HSV saturation of premultiplied colours, tiny-skia uses the W3C \
         luminosity formulas; they differ",
    ),
    (
        "color",
        "AGG swaps HSL hue and saturation of premultiplied colours, tiny-skia uses the W3C \
         luminosity formulas; they differ",
    ),
    ("value", "tiny-skia has no such blend mode"),
    ("linear-dodge", "tiny-skia has no such blend mode"),
    ("linear-burn", "tiny-skia has no such blend mode"),
    ("divide", "tiny-skia has no such blend mode"),
];

/// Why a `comp-op` value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompOpError {
    /// One of Mapnik's modes that tessera cannot draw as Mapnik does.
    #[error(
        "`{name}` is not supported ({reason}); supported: {}",
        supported_list()
    )]
    Unsupported {
        /// Mapnik's name of the mode.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// Not a Mapnik mode at all.
    #[error("`{name}` is not a compositing mode; supported: {}", supported_list())]
    Unknown {
        /// What was written.
        name: String,
    },
}

fn supported_list() -> String {
    SUPPORTED
        .iter()
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl CompOp {
    /// Parses Mapnik's name of a mode (surrounding spaces ignored).
    pub fn parse(s: &str) -> Result<CompOp, CompOpError> {
        let s = s.trim();
        if let Some((op, _)) = SUPPORTED.iter().find(|(_, name)| *name == s) {
            return Ok(*op);
        }
        match REFUSED.iter().find(|(name, _)| *name == s) {
            Some((name, reason)) => Err(CompOpError::Unsupported {
                name: (*name).to_string(),
                reason,
            }),
            None => Err(CompOpError::Unknown {
                name: s.to_string(),
            }),
        }
    }

    /// Mapnik's name of the mode.
    pub fn name(self) -> &'static str {
        SUPPORTED
            .iter()
            .find(|(op, _)| *op == self)
            .map_or("src-over", |(_, name)| name)
    }

    /// The tiny-skia blend mode that computes what AGG computes for this
    /// mode. Checked against `agg_pixfmt_rgba.h` (premultiplied, per
    /// channel; tiny-skia's `pipeline/highp.rs`):
    /// - clear … xor, plus, multiply, screen: the same expressions.
    /// - overlay and hard-light: AGG branches on `2D < Da` (`2S < Sa`),
    ///   tiny-skia on `<=`; both branches agree at equality.
    /// - darken/lighten/difference: tiny-skia's `S + D - max(S·Da, D·Sa)`
    ///   is AGG's `min(S·Da, D·Sa) + S·(1 - Da) + D·(1 - Sa)` rearranged.
    /// - exclusion: AGG's `S·Da + D·Sa - 2·S·D + S·(1 - Da) + D·(1 - Sa)`
    ///   is `S + D - 2·S·D`.
    /// - Alpha: `Sa + Da - Sa·Da` for the separable modes in both.
    pub(crate) fn blend_mode(self) -> tiny_skia::BlendMode {
        use tiny_skia::BlendMode as B;
        match self {
            CompOp::Clear => B::Clear,
            CompOp::Src => B::Source,
            CompOp::Dst => B::Destination,
            CompOp::SrcOver => B::SourceOver,
            CompOp::DstOver => B::DestinationOver,
            CompOp::SrcIn => B::SourceIn,
            CompOp::DstIn => B::DestinationIn,
            CompOp::SrcOut => B::SourceOut,
            CompOp::DstOut => B::DestinationOut,
            CompOp::SrcAtop => B::SourceAtop,
            CompOp::DstAtop => B::DestinationAtop,
            CompOp::Xor => B::Xor,
            CompOp::Plus => B::Plus,
            CompOp::Multiply => B::Multiply,
            CompOp::Screen => B::Screen,
            CompOp::Overlay => B::Overlay,
            CompOp::Darken => B::Darken,
            CompOp::Lighten => B::Lighten,
            CompOp::HardLight => B::HardLight,
            CompOp::Difference => B::Difference,
            CompOp::Exclusion => B::Exclusion,
        }
    }

    /// Whether AGG applies partial coverage (or a style's opacity) by
    /// moving the destination towards the blended result, rather than by
    /// scaling the source first. These are the modes whose result from a
    /// transparent source is not the destination: scaling the source would
    /// change pixels the shape does not cover.
    pub(crate) fn lerps_coverage(self) -> bool {
        matches!(
            self,
            CompOp::Clear
                | CompOp::Src
                | CompOp::SrcIn
                | CompOp::DstIn
                | CompOp::SrcOut
                | CompOp::DstAtop
        )
    }
}

impl fmt::Display for CompOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_name_parses_back_to_itself() {
        for (op, name) in SUPPORTED {
            assert_eq!(CompOp::parse(name), Ok(op));
            assert_eq!(op.name(), name);
        }
        assert_eq!(CompOp::parse(" multiply "), Ok(CompOp::Multiply));
        assert_eq!(CompOp::default(), CompOp::SrcOver);
    }

    #[test]
    fn mapniks_37_modes_are_all_known() {
        // Mapnik's list (src/image_compositing.cpp), in its order.
        let mapnik = "clear src dst src-over dst-over src-in dst-in src-out dst-out src-atop \
            dst-atop xor plus minus multiply screen overlay darken lighten color-dodge \
            color-burn hard-light soft-light difference exclusion contrast invert invert-rgb \
            grain-merge grain-extract hue saturation color value linear-dodge linear-burn divide";
        let names: Vec<&str> = mapnik.split_whitespace().collect();
        assert_eq!(names.len(), 37);
        for name in names {
            match CompOp::parse(name) {
                Ok(_) | Err(CompOpError::Unsupported { .. }) => {}
                Err(e) => panic!("{name}: {e}"),
            }
        }
    }

    #[test]
    fn a_lacking_mode_is_an_error_naming_it_and_the_supported_ones() {
        let e = CompOp::parse("minus").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("`minus` is not supported"), "{msg}");
        assert!(
            msg.contains("supported: clear, src, dst, src-over"),
            "{msg}"
        );
        assert!(msg.contains("exclusion"), "{msg}");
        let msg = CompOp::parse("color-dodge").unwrap_err().to_string();
        assert!(
            msg.contains("`color-dodge`") && msg.contains("W3C"),
            "{msg}"
        );
        let msg = CompOp::parse("frobnicate").unwrap_err().to_string();
        assert!(
            msg.starts_with("`frobnicate` is not a compositing mode"),
            "{msg}"
        );
        // Names are case-sensitive in Mapnik too.
        assert!(CompOp::parse("Multiply").is_err());
    }

    #[test]
    fn modes_map_to_the_blend_mode_of_the_same_name() {
        use tiny_skia::BlendMode as B;
        assert_eq!(CompOp::SrcOver.blend_mode(), B::SourceOver);
        assert_eq!(CompOp::DstOut.blend_mode(), B::DestinationOut);
        assert_eq!(CompOp::Multiply.blend_mode(), B::Multiply);
        assert_eq!(CompOp::HardLight.blend_mode(), B::HardLight);
        // No two modes share a blend mode.
        let mut modes: Vec<String> = SUPPORTED
            .iter()
            .map(|(op, _)| format!("{:?}", op.blend_mode()))
            .collect();
        modes.sort();
        modes.dedup();
        assert_eq!(modes.len(), SUPPORTED.len());
    }
}
