//! A tile's palette for `png8`: its own colours when there are few enough,
//! otherwise a quantised palette made from the tile's distinct colours.
//!
//! Contract: [`palette`] gives at most `max` entries and one index per
//! pixel. A tile with at most `max` distinct colours is kept exactly, in
//! the order the colours first appear. Otherwise the distinct colours,
//! each weighted by how many pixels have it, are split into `max` clusters
//! and each pixel takes its cluster's weighted mean.
//!
//! Why clusters of the distinct colours, not NeuQuant over the pixels (the
//! first version): a map tile is a few flat colours plus their
//! antialiasing blends — a few thousand distinct colours at most — so
//! working on the distinct colours is small, while NeuQuant trains a
//! network from every 30th pixel and then searches it for every distinct
//! colour; on openstreetmap-carto's tiles that was a quarter of the render
//! time. The split is the variance-minimising one (Wu's criterion on exact
//! colours): the cluster with the largest weighted squared error is cut
//! across its widest channel where the two halves' error is least, found
//! with a counting sort and prefix sums, so each split is linear in its
//! cluster. A flat colour covering much of the tile dominates its cluster's
//! mean, so it stays as it was, which matters most to the eye.

use std::collections::HashMap;

/// A colour, straight RGBA.
pub(super) type Rgba = [u8; 4];

/// Colour → its number among the tile's distinct colours. A colour is four
/// bytes: one multiply of the packed value hashes it (SipHash, the
/// default, was 5% of a labelled tile's encoding, and colours come from our
/// own drawing, not an attacker).
type ColourIds = HashMap<u32, u32, std::hash::BuildHasherDefault<ColourHasher>>;

/// See [`ColourIds`].
#[derive(Default)]
struct ColourHasher(u64);

impl std::hash::Hasher for ColourHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = (u64::from(n) ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The palette of straight-RGBA pixels (at most `max` entries, `max` ≤
/// 256) and each pixel's index into it.
pub(super) fn palette(rgba: &[u8], max: usize) -> (Vec<Rgba>, Vec<u8>) {
    let max = max.clamp(1, 256);
    let histogram = Histogram::of(rgba);
    if histogram.colours.len() <= max {
        let indices = histogram.ids.iter().map(|&id| id as u8).collect();
        return (histogram.colours, indices);
    }
    let (entries, entry_of_colour) = cluster(&histogram.colours, &histogram.counts, max);
    let indices = histogram
        .ids
        .iter()
        .map(|&id| entry_of_colour[id as usize])
        .collect();
    (entries, indices)
}

/// The distinct colours of an image, how many pixels have each, and each
/// pixel's colour number.
struct Histogram {
    colours: Vec<Rgba>,
    counts: Vec<u32>,
    ids: Vec<u32>,
}

impl Histogram {
    fn of(rgba: &[u8]) -> Histogram {
        let mut colours: Vec<Rgba> = Vec::new();
        let mut counts: Vec<u32> = Vec::new();
        let mut id_of = ColourIds::default();
        let mut ids = Vec::with_capacity(rgba.len() / 4);
        let mut last: Option<(u32, u32)> = None;
        for px in rgba.chunks_exact(4) {
            let packed = u32::from_le_bytes([px[0], px[1], px[2], px[3]]);
            // Runs of one colour are the rule in map tiles: skip the hash.
            let id = match last {
                Some((colour, id)) if colour == packed => id,
                _ => {
                    let next = colours.len() as u32;
                    let id = *id_of.entry(packed).or_insert(next);
                    if id == next {
                        colours.push(packed.to_le_bytes());
                        counts.push(0);
                    }
                    last = Some((packed, id));
                    id
                }
            };
            counts[id as usize] += 1;
            ids.push(id);
        }
        Histogram {
            colours,
            counts,
            ids,
        }
    }
}

/// A cluster of distinct colours: a range of the working order.
#[derive(Debug, Clone, Copy)]
struct Cluster {
    start: usize,
    end: usize,
    /// Weighted squared error around the weighted mean (what a split
    /// lowers).
    error: f64,
}

/// Running sums over weighted colours: weight, weighted channel sums and
/// weighted sum of squares (all channels together).
#[derive(Debug, Clone, Copy, Default)]
struct Moments {
    weight: f64,
    sum: [f64; 4],
    squares: f64,
}

impl Moments {
    fn add(&mut self, colour: Rgba, count: u32) {
        let w = f64::from(count);
        self.weight += w;
        for (s, &c) in self.sum.iter_mut().zip(&colour) {
            let c = f64::from(c);
            *s += w * c;
            self.squares += w * c * c;
        }
    }

    fn minus(&self, other: &Moments) -> Moments {
        let mut sum = self.sum;
        for (s, o) in sum.iter_mut().zip(&other.sum) {
            *s -= o;
        }
        Moments {
            weight: self.weight - other.weight,
            sum,
            squares: self.squares - other.squares,
        }
    }

    /// Σ w·|c - mean|² = Σ w·c² - |Σ w·c|² / W.
    fn error(&self) -> f64 {
        if self.weight <= 0.0 {
            return 0.0;
        }
        let centred: f64 = self.sum.iter().map(|s| s * s).sum::<f64>() / self.weight;
        (self.squares - centred).max(0.0)
    }

    fn mean(&self) -> Rgba {
        let w = self.weight.max(1.0);
        self.sum.map(|s| (s / w).round().clamp(0.0, 255.0) as u8)
    }
}

/// Splits the weighted colours into at most `max` clusters: the palette
/// (each cluster's weighted mean) and each colour's entry.
fn cluster(colours: &[Rgba], counts: &[u32], max: usize) -> (Vec<Rgba>, Vec<u8>) {
    let mut order: Vec<u32> = (0..colours.len() as u32).collect();
    let moments_of = |ids: &[u32]| {
        let mut m = Moments::default();
        for &i in ids {
            m.add(colours[i as usize], counts[i as usize]);
        }
        m
    };
    let mut clusters = vec![Cluster {
        start: 0,
        end: order.len(),
        error: moments_of(&order).error(),
    }];
    let mut scratch: Vec<u32> = Vec::with_capacity(order.len());
    while clusters.len() < max {
        // The cluster whose split gains most: the largest error.
        let Some((at, _)) = clusters
            .iter()
            .enumerate()
            .filter(|(_, c)| c.end - c.start > 1 && c.error > 0.0)
            .max_by(|a, b| a.1.error.total_cmp(&b.1.error))
        else {
            break;
        };
        let c = clusters[at];
        let Some((left, right)) = split(colours, counts, &mut order[c.start..c.end], &mut scratch)
        else {
            // Cannot be cut (one colour): never pick it again.
            clusters[at].error = 0.0;
            continue;
        };
        let middle = c.start + left.0;
        clusters[at] = Cluster {
            start: c.start,
            end: middle,
            error: left.1,
        };
        clusters.push(Cluster {
            start: middle,
            end: c.end,
            error: right.1,
        });
    }
    let mut entries = Vec::with_capacity(clusters.len());
    let mut entry_of_colour = vec![0u8; colours.len()];
    for (entry, c) in clusters.iter().enumerate() {
        entries.push(moments_of(&order[c.start..c.end]).mean());
        for &i in &order[c.start..c.end] {
            entry_of_colour[i as usize] = entry as u8;
        }
    }
    (entries, entry_of_colour)
}

/// Cuts one cluster in two across its widest channel, where the two
/// halves' summed error is least. Reorders `ids` so the left half comes
/// first; returns (left length, left error) and (right length, right
/// error), or `None` when every colour has the same value on every
/// channel worth cutting.
fn split(
    colours: &[Rgba],
    counts: &[u32],
    ids: &mut [u32],
    scratch: &mut Vec<u32>,
) -> Option<((usize, f64), (usize, f64))> {
    // The channel with the largest weighted variance.
    let mut weight = 0.0;
    let mut sum = [0.0f64; 4];
    let mut squares = [0.0f64; 4];
    for &i in ids.iter() {
        let w = f64::from(counts[i as usize]);
        weight += w;
        for (ch, &c) in colours[i as usize].iter().enumerate() {
            let c = f64::from(c);
            sum[ch] += w * c;
            squares[ch] += w * c * c;
        }
    }
    let variance = |ch: usize| squares[ch] - sum[ch] * sum[ch] / weight.max(1.0);
    let axis = (0..4).max_by(|&a, &b| variance(a).total_cmp(&variance(b)))?;
    // Counting sort by that channel (stable, linear).
    let mut starts = [0usize; 257];
    for &i in ids.iter() {
        starts[usize::from(colours[i as usize][axis]) + 1] += 1;
    }
    for v in 1..257 {
        starts[v] += starts[v - 1];
    }
    scratch.clear();
    scratch.resize(ids.len(), 0);
    for &i in ids.iter() {
        let v = usize::from(colours[i as usize][axis]);
        scratch[starts[v]] = i;
        starts[v] += 1;
    }
    ids.copy_from_slice(scratch);
    // Prefix moments; a cut may fall only between two different values.
    let mut total = Moments::default();
    for &i in ids.iter() {
        total.add(colours[i as usize], counts[i as usize]);
    }
    let mut left = Moments::default();
    let mut best: Option<(usize, f64, f64, f64)> = None;
    for k in 1..ids.len() {
        let prev = ids[k - 1] as usize;
        left.add(colours[prev], counts[prev]);
        if colours[prev][axis] == colours[ids[k] as usize][axis] {
            continue;
        }
        let right = total.minus(&left);
        let (le, re) = (left.error(), right.error());
        if best.is_none_or(|(_, total_error, ..)| le + re < total_error) {
            best = Some((k, le + re, le, re));
        }
    }
    let (k, _, le, re) = best?;
    Some(((k, le), (ids.len() - k, re)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(colours: &[(Rgba, usize)]) -> Vec<u8> {
        colours
            .iter()
            .flat_map(|(c, n)| c.repeat(*n))
            .collect::<Vec<u8>>()
    }

    #[test]
    fn few_colours_are_kept_exactly_in_order_of_appearance() {
        let img = image(&[([9, 9, 9, 255], 3), ([1, 2, 3, 4], 1), ([9, 9, 9, 255], 2)]);
        let (entries, indices) = palette(&img, 256);
        assert_eq!(entries, vec![[9, 9, 9, 255], [1, 2, 3, 4]]);
        assert_eq!(indices, vec![0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn many_colours_give_max_entries_and_a_dominant_colour_stays_exact() {
        // A flat background with 1000 blends towards black around it.
        let background: Rgba = [242, 239, 233, 255];
        let mut img = image(&[(background, 60_000)]);
        for i in 0..1000u32 {
            let t = (i % 250) as u8;
            let a = 255 - (i / 250) as u8 * 40;
            img.extend_from_slice(&[242 - t / 2, 239 - t / 2, 233 - t / 3, a]);
        }
        let (entries, indices) = palette(&img, 256);
        assert_eq!(entries.len(), 256);
        assert_eq!(indices.len(), img.len() / 4);
        assert_eq!(
            entries[usize::from(indices[0])],
            background,
            "the background keeps its exact colour"
        );
        // Every pixel is near its entry: 1000 blends in 255 clusters.
        let worst = img
            .chunks_exact(4)
            .zip(&indices)
            .map(|(px, &i)| {
                let e = entries[usize::from(i)];
                (0..4).map(|c| px[c].abs_diff(e[c])).max().unwrap_or(0)
            })
            .max()
            .unwrap_or(0);
        assert!(worst <= 8, "worst channel error {worst}");
    }

    #[test]
    fn the_palette_size_is_honoured_for_small_palettes() {
        let img: Vec<u8> = (0..4096u32)
            .flat_map(|i| [(i % 64 * 4) as u8, (i / 64 * 4) as u8, 128, 255])
            .collect();
        for max in [2usize, 16, 100, 256] {
            let (entries, indices) = palette(&img, max);
            assert_eq!(entries.len(), max, "max {max}");
            assert!(indices.iter().all(|&i| usize::from(i) < max));
        }
    }
}
