//! SVG transform lists (`transform="rotate(45) scale(2)"`), as Mapnik's
//! `transform` attributes take them. Functions apply right to left, as in
//! SVG: the last one listed is applied to the image first.

use super::symbolizer::Affine;

/// Parses a transform list; `None` when it is not one (unknown function,
/// wrong number of arguments, a value that is not a number).
pub(crate) fn parse(text: &str) -> Option<Affine> {
    let mut total = Affine::IDENTITY;
    let mut rest = text.trim();
    while !rest.is_empty() {
        let open = rest.find('(')?;
        let name = rest[..open].trim();
        let close = rest[open..].find(')')? + open;
        let args: Vec<f64> = rest[open + 1..close]
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<f64>().ok().filter(|v| v.is_finite()))
            .collect::<Option<_>>()?;
        let one = function(name, &args)?;
        total = total.after(&one);
        rest = rest[close + 1..].trim_start_matches(|c: char| c == ',' || c.is_whitespace());
    }
    Some(total)
}

fn function(name: &str, args: &[f64]) -> Option<Affine> {
    let deg = |a: f64| a.to_radians();
    Some(match (name, args) {
        ("matrix", &[a, b, c, d, e, f]) => Affine([a, b, c, d, e, f]),
        ("translate", &[x]) => Affine([1.0, 0.0, 0.0, 1.0, x, 0.0]),
        ("translate", &[x, y]) => Affine([1.0, 0.0, 0.0, 1.0, x, y]),
        ("scale", &[s]) => Affine([s, 0.0, 0.0, s, 0.0, 0.0]),
        ("scale", &[x, y]) => Affine([x, 0.0, 0.0, y, 0.0, 0.0]),
        ("rotate", &[a]) => rotation(deg(a)),
        ("rotate", &[a, cx, cy]) => Affine([1.0, 0.0, 0.0, 1.0, cx, cy])
            .after(&rotation(deg(a)))
            .after(&Affine([1.0, 0.0, 0.0, 1.0, -cx, -cy])),
        ("skewX", &[a]) => Affine([1.0, 0.0, deg(a).tan(), 1.0, 0.0, 0.0]),
        ("skewY", &[a]) => Affine([1.0, deg(a).tan(), 0.0, 1.0, 0.0, 0.0]),
        _ => return None,
    })
}

fn rotation(r: f64) -> Affine {
    let (s, c) = r.sin_cos();
    Affine([c, s, -s, c, 0.0, 0.0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Affine, b: [f64; 6]) -> bool {
        a.0.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9)
    }

    #[test]
    fn single_functions() {
        assert!(close(
            parse("scale(2)").unwrap(),
            [2.0, 0.0, 0.0, 2.0, 0.0, 0.0]
        ));
        assert!(close(
            parse("translate(3)").unwrap(),
            [1.0, 0.0, 0.0, 1.0, 3.0, 0.0]
        ));
        assert!(close(
            parse("rotate(90)").unwrap(),
            [0.0, 1.0, -1.0, 0.0, 0.0, 0.0]
        ));
        assert!(close(
            parse("matrix(1, 2, 3, 4, 5, 6)").unwrap(),
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        ));
        assert_eq!(parse("").unwrap(), Affine::IDENTITY);
    }

    #[test]
    fn lists_apply_the_last_function_first() {
        // translate(10) scale(2): scale, then move.
        let t = parse("translate(10, 0) scale(2)").unwrap();
        assert_eq!(t.apply(1.0, 1.0), (12.0, 2.0));
        let t = parse("scale(2),translate(10,0)").unwrap();
        assert_eq!(t.apply(1.0, 1.0), (22.0, 2.0));
    }

    #[test]
    fn rotation_about_a_centre_keeps_the_centre() {
        let t = parse("rotate(90 5 5)").unwrap();
        let (x, y) = t.apply(5.0, 5.0);
        assert!((x - 5.0).abs() < 1e-9 && (y - 5.0).abs() < 1e-9);
    }

    #[test]
    fn bad_lists_are_refused() {
        for bad in [
            "scale",
            "scale(a)",
            "spin(3)",
            "matrix(1,2)",
            "scale(1) x",
            "[w]",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
