//! Palette (png8) encoding settings compared on the same tiles: draws a tile
//! set once with render-core, keeps the tiles that are not a single colour,
//! and encodes them with each of render-core's `Compression` settings (zlib
//! level 4 = `Fast`, the default; 6 = `Balanced`; 9 = `High`), `--rounds`
//! times each. Prints bytes/tile and the median encode time of all the
//! tiles on one thread; with `--json`, one line per setting with the run's
//! metadata. Used by `benches/scripts/palette_encoding.sh`.

// A benchmark tool reports on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use render_core::encode::{encode_png, single_colour};
use render_core::{Compression, MapSource, RenderOptions, Renderer, TileFormat};
use tile_math::{Metatile, TileCoord};

#[derive(Parser, Debug)]
#[command(about = "png8 bytes/tile and encode time for each Compression setting")]
struct Args {
    /// Mapnik XML style.
    #[arg(long)]
    style: PathBuf,
    /// Zoom range `MIN-MAX` over the whole world.
    #[arg(long, default_value = "0-5")]
    zoom: String,
    /// Encode all the tiles this many times per setting; the median is shown.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Append one JSON line per setting to this file, with the run's
    /// metadata (`"runmeta"`: commit, dirty flag, machine, load average).
    #[arg(long)]
    json: Option<PathBuf>,
    /// With `--json`: record a run on a tree with uncommitted changes
    /// (`"dirty": true`) instead of refusing (also `ALLOW_DIRTY=1`).
    #[arg(long)]
    allow_dirty: bool,
}

const SETTINGS: [(Compression, &str); 3] = [
    (Compression::Fast, "zlib level 4 (Fast, default)"),
    (Compression::Balanced, "zlib level 6 (Balanced)"),
    (Compression::High, "zlib level 9 (High)"),
];

fn main() -> Result<()> {
    let args = Args::parse();
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let meta = match &args.json {
        Some(_) => Some(tessera_benches::run_meta(args.allow_dirty)?),
        None => None,
    };
    let (z0, z1) = match args.zoom.split_once('-') {
        Some((a, b)) => (a.parse::<u8>()?, b.parse::<u8>()?),
        None => (args.zoom.parse::<u8>()?, args.zoom.parse::<u8>()?),
    };
    let source = MapSource::load(&args.style)?;
    let mut renderer = Renderer::new(source, RenderOptions::default());
    let size = renderer.options().tile_size;

    // Every tile of the zoom range, drawn once, cut out of its 8×8 metatile.
    let mut metatiles = BTreeSet::new();
    for z in z0..=z1 {
        let n = 1u32 << z;
        for x in 0..n {
            for y in 0..n {
                metatiles.insert(Metatile::containing(TileCoord::new(z, x, y)?, 8)?);
            }
        }
    }
    let (mut all, mut tiles) = (0usize, Vec::<Vec<u8>>::new());
    for meta in &metatiles {
        let image = renderer.draw_metatile(meta)?;
        for tile in meta.tiles() {
            let (dx, dy) = meta.offset_of(tile).context("tile outside its metatile")?;
            let (x0, y0) = ((dx * size) as usize, (dy * size) as usize);
            let row_bytes = size as usize * 4;
            let mut buffer = Vec::with_capacity(row_bytes * size as usize);
            for row in 0..size as usize {
                let start = ((y0 + row) * image.width as usize + x0) * 4;
                buffer.extend_from_slice(&image.premultiplied_rgba[start..start + row_bytes]);
            }
            all += 1;
            if single_colour(&buffer).is_none() {
                tiles.push(buffer);
            }
        }
    }
    if tiles.is_empty() {
        bail!("no tile of z{z0}-{z1} has more than one colour");
    }
    println!(
        "z{z0}-{z1}: {all} tiles, {} not a single colour; png8, {} rounds, 1 thread",
        tiles.len(),
        args.rounds
    );
    println!();
    println!(
        "| palette encoding | bytes/tile (non-flat tiles) | encode time, all of them, median |"
    );
    println!("|---|---|---|");
    let format = TileFormat::Png8 { colours: 256 };
    for (compression, label) in SETTINGS {
        let mut seconds = Vec::with_capacity(args.rounds);
        let mut bytes = 0usize;
        for _ in 0..args.rounds {
            let started = Instant::now();
            bytes = 0;
            for t in &tiles {
                bytes += encode_png(t, size, size, format, compression)?.len();
            }
            seconds.push(started.elapsed().as_secs_f64());
        }
        seconds.sort_by(f64::total_cmp);
        let half = seconds.len() / 2;
        let median = if seconds.len() % 2 == 1 {
            seconds[half]
        } else {
            (seconds[half - 1] + seconds[half]) / 2.0
        };
        let per_tile = bytes as f64 / tiles.len() as f64;
        println!("| {label} | {per_tile:.0} | {:.0} ms |", median * 1000.0);
        if let (Some(path), Some(meta)) = (&args.json, &meta) {
            let list: Vec<String> = seconds.iter().map(|s| format!("{s:.6}")).collect();
            let line = format!(
                "{{\"tool\":\"palette_encoding\",\"setting\":{label:?},\"compression\":\"{compression:?}\",\
                 \"zoom\":\"{z0}-{z1}\",\"tiles\":{all},\"non_flat_tiles\":{},\"bytes_per_tile\":{per_tile:.1},\
                 \"encode_s_median\":{median:.6},\"encode_s_sorted\":[{}]}}",
                tiles.len(),
                list.join(",")
            );
            tessera_benches::append_stamped(path, &line, meta)?;
        }
    }
    Ok(())
}
