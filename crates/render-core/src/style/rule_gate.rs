//! A style's rules gated by one attribute, so that a feature is tested
//! only against the rules it can match.
//!
//! Contract: [`RuleGate::build`] looks at a style's ordinary rules (not
//! `ElseFilter`/`AlsoFilter`) for conditions every match needs: a filter
//! that is a chain of `and`s holding `[key] = 'text'`. It picks the
//! attribute most rules need that way. For a feature whose value of that
//! attribute is a string, [`RuleGate::candidates`] gives, in document
//! order, the rules that need exactly that string plus every rule that
//! needs nothing of the attribute; the others cannot match, since string
//! equality is exact (`Value::compare`). For any other value (a number,
//! null, no attribute) the caller tests every rule, as before. So the rules
//! that match, and their order, are the same with or without the gate.
//!
//! Why: openstreetmap-carto's styles hold hundreds of rules of the form
//! `[feature] = 'landuse_forest' and [zoom...]`; testing each feature
//! against all of them was a fifth of the render time.

use std::collections::HashMap;

use super::filter::{Attr, CompareOp, Expr, Value};
use super::{Rule, RuleKind};

/// Gate only styles where it saves something.
const MIN_GATED_RULES: usize = 4;

/// See the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleGate {
    key: Attr,
    /// Rules (indices into the style's rules, ascending) that need the key
    /// to equal this string.
    by_value: HashMap<String, Vec<u32>>,
    /// Ordinary rules that need nothing of the key, ascending.
    others: Vec<u32>,
}

impl RuleGate {
    /// The gate for `rules`, if enough of them need one attribute to equal
    /// a string.
    pub fn build(rules: &[Rule]) -> Option<RuleGate> {
        let needs: Vec<Vec<(&Attr, &str)>> = rules
            .iter()
            .map(|r| match (&r.kind, &r.filter) {
                (RuleKind::Filter, Some(filter)) => {
                    let mut out = Vec::new();
                    required_equalities(filter, &mut out);
                    out
                }
                _ => Vec::new(),
            })
            .collect();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for need in &needs {
            let mut seen: Vec<&str> = Vec::new();
            for (attr, _) in need {
                if !seen.contains(&attr.name()) {
                    seen.push(attr.name());
                    *counts.entry(attr.name()).or_default() += 1;
                }
            }
        }
        // The attribute most rules need; ties go to the name first in
        // alphabetical order, so the choice does not depend on hashing.
        let (name, count) = counts
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))?;
        if count < MIN_GATED_RULES {
            return None;
        }
        let key = needs
            .iter()
            .flatten()
            .find(|(attr, _)| attr.name() == name)
            .map(|(attr, _)| (*attr).clone())?;
        let mut by_value: HashMap<String, Vec<u32>> = HashMap::new();
        let mut others = Vec::new();
        for (index, (rule, need)) in rules.iter().zip(&needs).enumerate() {
            if rule.kind != RuleKind::Filter {
                continue;
            }
            let index = u32::try_from(index).ok()?;
            // A rule that needs the key to be two strings at once never
            // matches; filed under the first, it is still tested there.
            match need.iter().find(|(attr, _)| attr.name() == name) {
                Some((_, value)) => by_value.entry((*value).to_owned()).or_default().push(index),
                None => others.push(index),
            }
        }
        Some(RuleGate {
            key,
            by_value,
            others,
        })
    }

    /// The attribute that gates.
    pub fn key(&self) -> &Attr {
        &self.key
    }

    /// The rules a feature whose key is the string `value` can match, in
    /// document order: those needing that string, and those needing
    /// nothing of the key.
    pub fn candidates<'g>(&'g self, value: &str) -> impl Iterator<Item = u32> + 'g {
        let needing: &[u32] = self.by_value.get(value).map_or(&[], Vec::as_slice);
        Merge {
            a: needing,
            b: &self.others,
        }
    }
}

/// Two ascending lists, merged.
struct Merge<'a> {
    a: &'a [u32],
    b: &'a [u32],
}

impl Iterator for Merge<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let take_a = match (self.a.first(), self.b.first()) {
            (Some(a), Some(b)) => a < b,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        let list = if take_a { &mut self.a } else { &mut self.b };
        let (&first, rest) = list.split_first()?;
        *list = rest;
        Some(first)
    }
}

/// The `[attribute] = 'string'` conditions that must all hold for `e` to be
/// true: the comparisons of a chain of `and`s (an `or` or a `not` needs
/// nothing that can be told this way).
fn required_equalities<'e>(e: &'e Expr, out: &mut Vec<(&'e Attr, &'e str)>) {
    match e {
        Expr::And(a, b) => {
            required_equalities(a, out);
            required_equalities(b, out);
        }
        Expr::Compare(CompareOp::Eq, lhs, rhs) => {
            if let (Expr::Attribute(attr), Expr::Literal(Value::String(s))) = (&**lhs, &**rhs) {
                out.push((attr, s));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(filter: Option<&str>, kind: RuleKind) -> Rule {
        Rule {
            name: None,
            filter: filter.map(|f| Expr::parse(f).expect("a filter")),
            kind,
            min_scale_denominator: 0.0,
            max_scale_denominator: f64::INFINITY,
            symbolizers: Vec::new(),
            line: 0,
        }
    }

    fn rules() -> Vec<Rule> {
        vec![
            rule(Some("[feature] = 'a' and [zoom] > 3"), RuleKind::Filter), // 0
            rule(Some("[feature] = 'b'"), RuleKind::Filter),                // 1
            rule(Some("[other] = 'x'"), RuleKind::Filter),                  // 2
            rule(Some("[feature] = 'a' or [feature] = 'b'"), RuleKind::Filter), // 3
            rule(Some("[feature] = 'a'"), RuleKind::Filter),                // 4
            rule(None, RuleKind::Filter),                                   // 5
            rule(None, RuleKind::Else),                                     // 6
            rule(
                Some("'c' = [feature] and [feature] = 'c'"),
                RuleKind::Filter,
            ), // 7
            rule(Some("not ([feature] = 'a')"), RuleKind::Filter),          // 8
        ]
    }

    #[test]
    fn candidates_are_the_rules_needing_the_value_and_those_needing_nothing_in_order() {
        let gate = RuleGate::build(&rules()).expect("a gate");
        assert_eq!(gate.key().name(), "feature");
        let list = |v: &str| gate.candidates(v).collect::<Vec<u32>>();
        assert_eq!(list("a"), vec![0, 2, 3, 4, 5, 8]);
        assert_eq!(list("b"), vec![1, 2, 3, 5, 8]);
        assert_eq!(list("c"), vec![2, 3, 5, 7, 8]);
        assert_eq!(list("zzz"), vec![2, 3, 5, 8]);
    }

    /// A feature with a few attributes, for matching.
    struct F(Vec<(&'static str, Value)>);

    impl super::super::filter::FeatureView for F {
        fn attribute(&self, name: &str) -> Option<Value> {
            self.0
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        }
        fn geometry_type(&self) -> super::super::filter::GeometryType {
            super::super::filter::GeometryType::Point
        }
    }

    #[test]
    fn a_gated_style_matches_the_same_rules_as_testing_every_rule() {
        use super::super::symbolizer::{LineSymbolizer, Symbolizer};
        use super::super::{FilterMode, GateCell, Style};
        let mut rules = rules();
        rules.push(rule(None, RuleKind::Also));
        for (line, r) in rules.iter_mut().enumerate() {
            r.symbolizers = vec![Symbolizer::Line(LineSymbolizer::default())];
            r.line = line as u32;
        }
        let values = [
            None,
            Some(Value::from("a")),
            Some(Value::from("b")),
            Some(Value::from("c")),
            Some(Value::from("zzz")),
            Some(Value::from("")),
            Some(Value::Int(3)),
            Some(Value::Null),
        ];
        for mode in [FilterMode::All, FilterMode::First] {
            let style = Style {
                name: "s".into(),
                filter_mode: mode,
                opacity: 1.0,
                comp_op: Default::default(),
                rules: rules.clone(),
                image_filters: Vec::new(),
                line: 0,
                gate: GateCell::default(),
            };
            let gated = style.active_rules(1000.0);
            assert!(gated.gate.is_some());
            let mut plain = style.active_rules(1000.0);
            plain.gate = None;
            for feature in &values {
                for zoom in [Value::Int(1), Value::Int(5)] {
                    for other in [Value::from("x"), Value::from("y")] {
                        let mut attrs = vec![("zoom", zoom.clone()), ("other", other)];
                        if let Some(v) = feature {
                            attrs.push(("feature", v.clone()));
                        }
                        let f = F(attrs);
                        let (mut a, mut b) = (Vec::new(), Vec::new());
                        gated.matching(&f, &mut a);
                        plain.matching(&f, &mut b);
                        let lines = |v: &Vec<&Rule>| v.iter().map(|r| r.line).collect::<Vec<u32>>();
                        assert_eq!(lines(&a), lines(&b), "{mode:?} feature {feature:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn few_rules_needing_one_attribute_get_no_gate() {
        let few = vec![
            rule(Some("[feature] = 'a'"), RuleKind::Filter),
            rule(Some("[feature] = 'b'"), RuleKind::Filter),
            rule(None, RuleKind::Filter),
        ];
        assert_eq!(RuleGate::build(&few), None);
    }
}
