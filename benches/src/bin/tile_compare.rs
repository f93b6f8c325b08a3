//! Compares two tile trees (`DIR/z/x/y.png`) pixel by pixel: the visual
//! part of `benches/scripts/render_vs_mapnik.sh` (tessera against Mapnik's
//! 32-bit tiles).
//!
//! Prints, over every tile of the reference tree in the zoom range:
//! - pooled PSNR: the PSNR of the mean squared error averaged over all
//!   tiles (RGB, 8 bits);
//! - the worst tile's PSNR, and the mean and median of the per-tile PSNRs;
//! - whether every single-colour reference tile is identical in ours;
//!
//! and writes the worst tiles side by side (ours | reference | difference,
//! amplified 4×, dark = different) into one PNG.
//!
//! ```sh
//! tile_compare --ours T --reference M --zoom 0-4 --image worst.png --worst 6
//! ```
// A command-line tool: it prints its results.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Pooled PSNR and worst tiles of two tile trees")]
struct Args {
    /// Our tiles, `z/x/y.png`.
    #[arg(long)]
    ours: PathBuf,
    /// The reference tiles (Mapnik), `z/x/y.png`.
    #[arg(long)]
    reference: PathBuf,
    /// Zoom range `MIN-MAX`.
    #[arg(long, default_value = "0-4")]
    zoom: String,
    /// Where to write the side-by-side image of the worst tiles.
    #[arg(long)]
    image: Option<PathBuf>,
    /// How many worst tiles to show.
    #[arg(long, default_value_t = 6)]
    worst: usize,
    /// Append one JSON line with the results to this file, with the run's
    /// metadata (`"runmeta"`: commit, dirty flag, machine, load average).
    #[arg(long)]
    json: Option<PathBuf>,
    /// With `--json`: record a run on a tree with uncommitted changes
    /// (`"dirty": true`) instead of refusing (also `ALLOW_DIRTY=1`).
    #[arg(long)]
    allow_dirty: bool,
}

struct Rgba {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

fn decode(path: &Path) -> Result<Rgba> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(
        png::Transformations::EXPAND | png::Transformations::ALPHA | png::Transformations::STRIP_16,
    );
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size().context("image too large")?];
    let info = reader.next_frame(&mut buf)?;
    buf.truncate(info.buffer_size());
    if info.color_type != png::ColorType::Rgba {
        bail!("{}: decoded to {:?}", path.display(), info.color_type);
    }
    Ok(Rgba {
        width: info.width,
        height: info.height,
        pixels: buf,
    })
}

/// Composites straight RGBA over white (tiles of this style are opaque;
/// this only matters for transparent ones).
fn rgb(p: &[u8]) -> [f64; 3] {
    let a = f64::from(p[3]) / 255.0;
    [0, 1, 2].map(|i| f64::from(p[i]) * a + 255.0 * (1.0 - a))
}

fn mse(a: &Rgba, b: &Rgba) -> f64 {
    let sum: f64 = a
        .pixels
        .chunks_exact(4)
        .zip(b.pixels.chunks_exact(4))
        .map(|(p, q)| {
            let (p, q) = (rgb(p), rgb(q));
            (0..3).map(|i| (p[i] - q[i]).powi(2)).sum::<f64>()
        })
        .sum();
    sum / (a.pixels.len() / 4 * 3) as f64
}

fn psnr(mse: f64) -> f64 {
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

struct Scored {
    tile: String,
    mse: f64,
    ours: Rgba,
    reference: Rgba,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (z0, z1) = match args.zoom.split_once('-') {
        Some((a, b)) => (a.parse::<u8>()?, b.parse::<u8>()?),
        None => (args.zoom.parse::<u8>()?, args.zoom.parse::<u8>()?),
    };
    // Before any work: a dirty tree is refused here, not after the compare.
    let meta = match &args.json {
        Some(_) => Some(tessera_benches::run_meta(args.allow_dirty)?),
        None => None,
    };
    let mut scored: Vec<Scored> = Vec::new();
    let (mut single, mut single_same) = (0usize, 0usize);
    let mut single_differing: Vec<String> = Vec::new();
    for z in z0..=z1 {
        // The reference tree's tiles, in (x, y) order (listed, not probed:
        // 4^z names at street zooms).
        for (x, y) in reference_tiles(&args.reference, z)? {
            let rel = format!("{z}/{x}/{y}.png");
            let reference = args.reference.join(&rel);
            let reference = decode(&reference)?;
            let ours = decode(&args.ours.join(&rel))?;
            if (ours.width, ours.height) != (reference.width, reference.height) {
                bail!("{rel}: sizes differ");
            }
            let first = &reference.pixels[..4];
            if reference.pixels.chunks_exact(4).all(|p| p == first) {
                single += 1;
                if ours.pixels == reference.pixels {
                    single_same += 1;
                } else {
                    single_differing.push(rel.clone());
                }
            }
            scored.push(Scored {
                tile: format!("{z}/{x}/{y}"),
                mse: mse(&ours, &reference),
                ours,
                reference,
            });
        }
    }
    if scored.is_empty() {
        bail!("no reference tiles in {}", args.reference.display());
    }
    let count = scored.len();
    let pooled_mse = scored.iter().map(|s| s.mse).sum::<f64>() / count as f64;
    scored.sort_by(|a, b| b.mse.total_cmp(&a.mse));
    let mut psnrs: Vec<f64> = scored.iter().map(|s| psnr(s.mse)).collect();
    psnrs.sort_by(f64::total_cmp);
    let finite: Vec<f64> = psnrs.iter().copied().filter(|p| p.is_finite()).collect();
    let mean_finite = finite.iter().sum::<f64>() / finite.len().max(1) as f64;
    let median = psnrs[count / 2];
    let identical = count - finite.len();
    let worst = &scored[0];
    println!(
        "{count} tiles z{z0}-{z1}: pooled PSNR {:.2} dB; worst tile {} {:.2} dB; median {:.2} dB; \
         mean of non-identical {:.2} dB; {identical} tiles identical",
        psnr(pooled_mse),
        worst.tile,
        psnr(worst.mse),
        median,
        mean_finite,
    );
    println!(
        "single-colour reference tiles: {single}, identical in ours: {single_same}{}",
        if single_differing.is_empty() {
            String::new()
        } else {
            format!(" (differing: {})", single_differing.join(" "))
        }
    );
    let shown: Vec<&Scored> = scored.iter().take(args.worst).collect();
    println!(
        "worst tiles: {}",
        shown
            .iter()
            .map(|s| format!("{} {:.2} dB", s.tile, psnr(s.mse)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(path) = &args.image {
        write_side_by_side(path, &shown)?;
        println!("side by side: {}", path.display());
    }
    if let Some(path) = &args.json {
        let worst_list: Vec<String> = shown
            .iter()
            .map(|s| format!("[\"{}\",{:.3}]", s.tile, psnr(s.mse)))
            .collect();
        let line = format!(
            "{{\"tool\":\"compare\",\"tiles\":{count},\"zoom\":\"{z0}-{z1}\",\"pooled_psnr\":{:.3},\
             \"worst_tile\":\"{}\",\"worst_psnr\":{:.3},\"median_psnr\":{:.3},\"identical_tiles\":{identical},\
             \"single_colour\":{single},\"single_colour_identical\":{single_same},\"worst\":[{}]}}",
            psnr(pooled_mse),
            worst.tile,
            psnr(worst.mse),
            if median.is_finite() { median } else { 999.0 },
            worst_list.join(",")
        );
        tessera_benches::append_stamped(path, &line, meta.as_deref().unwrap_or("{}"))?;
    }
    Ok(())
}

/// The `(x, y)` of every `DIR/z/x/y.png`, sorted; none if `DIR/z` is missing.
fn reference_tiles(dir: &Path, z: u8) -> Result<Vec<(u32, u32)>> {
    let mut tiles = Vec::new();
    let zdir = dir.join(z.to_string());
    if !zdir.is_dir() {
        return Ok(tiles);
    }
    for xe in std::fs::read_dir(&zdir)? {
        let xe = xe?;
        let Some(x) = xe.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        for ye in std::fs::read_dir(xe.path())? {
            let name = ye?.file_name();
            let Some(y) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".png"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            tiles.push((x, y));
        }
    }
    tiles.sort_unstable();
    Ok(tiles)
}

/// One row per tile: ours | reference | difference (white = same, darker
/// = more different, amplified 4×).
fn write_side_by_side(path: &Path, rows: &[&Scored]) -> Result<()> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let (tw, th) = (first.ours.width as usize, first.ours.height as usize);
    let gap = 6usize;
    let width = 3 * tw + 4 * gap;
    let height = rows.len() * (th + gap) + gap;
    let mut img = vec![0x40u8; width * height * 3];
    for (r, s) in rows.iter().enumerate() {
        let y0 = gap + r * (th + gap);
        for y in 0..th {
            for x in 0..tw {
                let i = (y * tw + x) * 4;
                let (p, q) = (
                    rgb(&s.ours.pixels[i..i + 4]),
                    rgb(&s.reference.pixels[i..i + 4]),
                );
                let diff = (0..3).map(|c| (p[c] - q[c]).abs()).fold(0.0, f64::max);
                let d = (255.0 - 4.0 * diff).max(0.0);
                for (col, colour) in [p, q, [d, d, d]].iter().enumerate() {
                    let x0 = gap + col * (tw + gap);
                    let o = ((y0 + y) * width + x0 + x) * 3;
                    for c in 0..3 {
                        img[o + c] = colour[c].round() as u8;
                    }
                }
            }
        }
    }
    let file = std::fs::File::create(path)?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width as u32, height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::High);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&img)?;
    writer.finish()?;
    Ok(())
}
