//! png8 palettes compared on the same tiles: render-core's quantiser
//! (`render_core::encode::png8_palette`: clusters of the tile's distinct
//! colours) against NeuQuant (`color_quant`, sample factor 30, nearest
//! entry per distinct colour — what render-core used before).
//!
//! Reads the 32-bit PNG tiles under `--tiles DIR` (e.g. written by
//! `render_bench --format png32 --out DIR`), keeps those with more than 256
//! colours (the others get an exact palette either way), and for each
//! quantiser: the median over `--rounds` of the time to make the palettes
//! and indices of all those tiles on one thread, the pooled PSNR (RGB) of
//! the palette image against the tile, the worst tile, and the PNG bytes
//! per tile (both written by render-core's own `png8` writer,
//! `render_core::encode::png8_file`, zlib level 4). With `--json`, one line per quantiser with
//! the run's metadata. Used by `benches/scripts/palette_quality.sh`.

// A benchmark tool reports on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use render_core::encode::png8_file;
use render_core::Compression;

#[derive(Parser, Debug)]
#[command(about = "png8 quantisers: time, PSNR and bytes on the same tiles")]
struct Args {
    /// Folder of 32-bit PNG tiles (searched recursively).
    #[arg(long)]
    tiles: PathBuf,
    /// Make all the palettes this many times per quantiser; the median is shown.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Label for the JSON lines (the tile set).
    #[arg(long, default_value = "")]
    label: String,
    /// Append one JSON line per quantiser to this file, with the run's
    /// metadata (`"runmeta"`: commit, dirty flag, machine, load average).
    #[arg(long)]
    json: Option<PathBuf>,
    /// With `--json`: record a run on a tree with uncommitted changes.
    #[arg(long)]
    allow_dirty: bool,
}

type Quantiser = fn(&[u8]) -> (Vec<[u8; 4]>, Vec<u8>);

const QUANTISERS: [(&str, Quantiser); 2] = [
    ("tessera (clusters of distinct colours)", tessera),
    ("NeuQuant (sample factor 30)", neuquant),
];

fn tessera(rgba: &[u8]) -> (Vec<[u8; 4]>, Vec<u8>) {
    render_core::encode::png8_palette(rgba, 256)
}

fn neuquant(rgba: &[u8]) -> (Vec<[u8; 4]>, Vec<u8>) {
    let quant = color_quant::NeuQuant::new(30, 256, rgba);
    let palette: Vec<[u8; 4]> = quant
        .color_map_rgba()
        .chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect();
    let mut cache = std::collections::HashMap::new();
    let indices = rgba
        .chunks_exact(4)
        .map(|px| {
            *cache
                .entry([px[0], px[1], px[2], px[3]])
                .or_insert_with(|| quant.index_of(px) as u8)
        })
        .collect();
    (palette, indices)
}

struct Tile {
    name: String,
    width: u32,
    height: u32,
    rgba: Vec<u8>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let meta = match &args.json {
        Some(_) => Some(tessera_benches::run_meta(args.allow_dirty)?),
        None => None,
    };
    let mut files = Vec::new();
    collect_pngs(&args.tiles, &mut files)?;
    files.sort();
    let mut tiles = Vec::new();
    for file in &files {
        let tile = read_rgba(file)?;
        let mut colours: Vec<u32> = tile
            .rgba
            .chunks_exact(4)
            .map(|p| u32::from_le_bytes([p[0], p[1], p[2], p[3]]))
            .collect();
        colours.sort_unstable();
        colours.dedup();
        if colours.len() > 256 {
            tiles.push(tile);
        }
    }
    if tiles.is_empty() {
        bail!(
            "no tile under {} has more than 256 colours",
            args.tiles.display()
        );
    }
    println!(
        "{} tiles under {}, {} with more than 256 colours; {} rounds, 1 thread",
        files.len(),
        args.tiles.display(),
        tiles.len(),
        args.rounds
    );
    println!();
    println!("| quantiser | palettes of all tiles, median | per tile | pooled PSNR | worst tile | png8 bytes/tile |");
    println!("|---|---|---|---|---|---|");
    for (label, quantise) in QUANTISERS {
        let mut seconds = Vec::with_capacity(args.rounds);
        let mut results = Vec::new();
        for _ in 0..args.rounds {
            let started = Instant::now();
            results = tiles.iter().map(|t| quantise(&t.rgba)).collect::<Vec<_>>();
            seconds.push(started.elapsed().as_secs_f64());
        }
        seconds.sort_by(f64::total_cmp);
        let median = seconds[seconds.len() / 2];
        let (mut squared, mut samples, mut bytes) = (0f64, 0u64, 0usize);
        let mut worst = (f64::INFINITY, String::new());
        for (tile, (palette, indices)) in tiles.iter().zip(&results) {
            let mut tile_squared = 0f64;
            for (px, &i) in tile.rgba.chunks_exact(4).zip(indices) {
                let entry = palette
                    .get(usize::from(i))
                    .context("index outside the palette")?;
                for c in 0..3 {
                    let d = f64::from(px[c]) - f64::from(entry[c]);
                    tile_squared += d * d;
                }
            }
            let n = tile.rgba.len() as u64 / 4 * 3;
            squared += tile_squared;
            samples += n;
            let p = psnr(tile_squared, n);
            if p < worst.0 {
                worst = (p, tile.name.clone());
            }
            bytes += png8_file(palette, indices, tile.width, tile.height, Compression::Fast)?.len();
        }
        let pooled = psnr(squared, samples);
        let per_tile_ms = median * 1e3 / tiles.len() as f64;
        let bytes_per_tile = bytes as f64 / tiles.len() as f64;
        println!(
            "| {label} | {:.0} ms | {per_tile_ms:.2} ms | {pooled:.2} dB | {:.2} dB ({}) | {bytes_per_tile:.0} |",
            median * 1e3,
            worst.0,
            worst.1
        );
        if let (Some(path), Some(meta)) = (&args.json, &meta) {
            let list: Vec<String> = seconds.iter().map(|s| format!("{s:.6}")).collect();
            let line = format!(
                "{{\"tool\":\"palette_quality\",\"label\":{:?},\"quantiser\":{label:?},\"tiles\":{},\
                 \"quantised_tiles\":{},\"palettes_s_median\":{median:.6},\"palettes_s_sorted\":[{}],\
                 \"pooled_psnr_db\":{pooled:.3},\"worst_psnr_db\":{:.3},\"worst_tile\":{:?},\
                 \"png8_bytes_per_tile\":{bytes_per_tile:.1}}}",
                args.label,
                files.len(),
                tiles.len(),
                list.join(","),
                worst.0,
                worst.1
            );
            tessera_benches::append_stamped(path, &line, meta)?;
        }
    }
    Ok(())
}

fn psnr(squared: f64, samples: u64) -> f64 {
    if squared == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (255.0f64 * 255.0 / (squared / samples as f64)).log10()
}

fn collect_pngs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_pngs(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "png") {
            out.push(path);
        }
    }
    Ok(())
}

fn read_rgba(path: &Path) -> Result<Tile> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::ALPHA);
    let mut reader = decoder.read_info()?;
    let mut buffer = vec![0; reader.output_buffer_size().context("PNG too large")?];
    let info = reader.next_frame(&mut buffer)?;
    buffer.truncate(info.buffer_size());
    if info.color_type != png::ColorType::Rgba || info.bit_depth != png::BitDepth::Eight {
        bail!("{}: not 8-bit RGBA after expansion", path.display());
    }
    Ok(Tile {
        name: path.display().to_string(),
        width: info.width,
        height: info.height,
        rgba: buffer,
    })
}
