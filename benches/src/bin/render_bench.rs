//! Renders a list of tiles with render-core and prints tiles/s: the tessera
//! side of `benches/scripts/render_vs_mapnik.sh`.
//!
//! As renderd does it: the style is loaded once (not timed), each of N
//! threads has its own `Renderer`, the tiles are grouped into metatiles
//! (8×8 by default) and the threads take metatiles from a shared queue.
//! Every tile of every metatile is rendered and encoded (and written, with
//! `--out`); "wanted" tiles are the ones asked for.
//!
//! ```sh
//! render_bench --style S.xml --zoom 0-5                        # the whole world
//! render_bench --style S.xml --zoom 12-18 --bbox 24.93,60.16,24.95,60.18
//! render_bench --style S.xml --block 8,224,96,8,8 --repeat 10   # rounds, one after another
//! render_bench --style S.xml --zoom 12-18 --bbox ... --print-metatiles   # "x y z" per metatile
//! ```
// A command-line tool: it prints its results.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use render_core::{MapSource, RenderOptions, Renderer, TileEncoder, TileFormat};
use tile_math::{LngLat, Metatile, TileCoord};

#[derive(Parser, Debug)]
#[command(about = "Render a tile set with render-core and print tiles/s")]
struct Args {
    /// Mapnik XML style.
    #[arg(long)]
    style: PathBuf,
    /// Zoom range `MIN-MAX` (with `--bbox`, or the whole world).
    #[arg(long)]
    zoom: Option<String>,
    /// `minlon,minlat,maxlon,maxlat` (default: the world to ±85.0511°, as
    /// generate_tiles.py).
    #[arg(long)]
    bbox: Option<String>,
    /// `z,x0,y0,nx,ny`: a block of tiles.
    #[arg(long)]
    block: Option<String>,
    /// Render the set this many times, one round after another.
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    /// Worker threads, one `Renderer` each.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Metatile size.
    #[arg(long, default_value_t = 8)]
    metatile: u32,
    /// Pixels around each metatile whose features are drawn too (default:
    /// the style's `buffer-size`). renderd and generate_tiles.py use 128
    /// when the style sets none, as openstreetmap-carto does not.
    #[arg(long)]
    buffer: Option<u32>,
    /// `png8` (palette, default), `png`/`png32`, `png8:c=N`.
    #[arg(long, default_value = "png8")]
    format: String,
    /// Write every rendered tile to `OUT/z/x/y.png` (timed, as renderd
    /// writes its metatiles).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write each metatile as one file `OUT/z/x/y.meta` in mod_tile's
    /// metatile format, through a temp file and a rename, as renderd does
    /// (timed). Fairer than `--out` against renderd: one file per metatile.
    #[arg(long)]
    meta_out: Option<PathBuf>,
    /// Append one JSON line with the results to this file, with the run's
    /// metadata (`"runmeta"`: commit, dirty flag, machine, load average).
    #[arg(long)]
    json: Option<PathBuf>,
    /// With `--json`: record a run on a tree with uncommitted changes
    /// (`"dirty": true`) instead of refusing (also `ALLOW_DIRTY=1`).
    #[arg(long)]
    allow_dirty: bool,
    /// Label for the JSON line.
    #[arg(long, default_value = "")]
    label: String,
    /// Print the metatiles as `x y z` lines (render_list's stdin format,
    /// one tile per metatile) and exit.
    #[arg(long)]
    print_metatiles: bool,
    /// PostGIS connections per worker (render-core's `postgis_connections`:
    /// a metatile's queries run on them in parallel, ahead of the drawing);
    /// 0: as tile-server chooses (`postgis_connections_for`: 2 with fewer
    /// threads than cores, else 1).
    #[arg(long, default_value_t = 0)]
    postgis_connections: usize,
    /// Print each metatile's render time (drawing and encoding) to stderr
    /// as `metatile z/x/y: N ms`, to see how work spreads over workers.
    #[arg(long)]
    trace: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let wanted = wanted_tiles(&args)?;
    let metatiles: Vec<Metatile> = wanted
        .iter()
        .map(|t| Metatile::containing(*t, args.metatile))
        .collect::<Result<BTreeSet<_>, _>>()?
        .into_iter()
        .collect();
    if args.print_metatiles {
        let mut out = std::io::stdout().lock();
        for m in &metatiles {
            writeln!(out, "{} {} {}", m.x(), m.y(), m.z())?;
        }
        return Ok(());
    }
    let format = TileFormat::parse(&args.format).context("unknown --format")?;
    // Before any work: a dirty tree is refused here, not after the render.
    let meta = match &args.json {
        Some(_) => Some(tessera_benches::run_meta(args.allow_dirty)?),
        None => None,
    };

    let started = Instant::now();
    let source = MapSource::load(&args.style)?;
    let load_s = started.elapsed().as_secs_f64();
    for w in source.warnings() {
        eprintln!("warning: {w}");
    }
    let options = RenderOptions {
        format,
        buffer: args.buffer,
        postgis_connections: match args.postgis_connections {
            0 => render_core::postgis_connections_for(
                args.threads.max(1),
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            ),
            n => n,
        },
        ..RenderOptions::default()
    };
    // Workers share the cache of single-colour tiles, as a server's do.
    let encoder = TileEncoder::new(options.compression);
    let mut renderers: Vec<Renderer> = (0..args.threads.max(1))
        .map(|_| Renderer::with_encoder(source.clone(), options.clone(), encoder.clone()))
        .collect();

    let bytes = Mutex::new((0u64, 0u64)); // (tiles, bytes)
    let started = Instant::now();
    for _ in 0..args.repeat {
        let next = AtomicUsize::new(0);
        let outcome: Vec<Result<()>> = std::thread::scope(|s| {
            let workers: Vec<_> = renderers
                .iter_mut()
                .map(|renderer| {
                    let (next, metatiles, bytes) = (&next, &metatiles, &bytes);
                    let out = args.out.as_deref();
                    let meta_out = args.meta_out.as_deref();
                    let trace = args.trace;
                    s.spawn(move || -> Result<()> {
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(meta) = metatiles.get(i) else {
                                return Ok(());
                            };
                            let one = Instant::now();
                            let tiles = renderer.render_metatile(meta)?;
                            if trace {
                                eprintln!(
                                    "metatile {}/{}/{}: {:.0} ms",
                                    meta.z(),
                                    meta.x(),
                                    meta.y(),
                                    one.elapsed().as_secs_f64() * 1e3
                                );
                            }
                            if let Some(dir) = meta_out {
                                write_meta(dir, meta, &tiles)?;
                            }
                            let (mut n, mut b) = (0u64, 0u64);
                            for t in &tiles {
                                n += 1;
                                b += t.png.len() as u64;
                                if let Some(dir) = out {
                                    write_tile(dir, t.tile, &t.png)?;
                                }
                            }
                            let mut total = bytes.lock().unwrap_or_else(|e| e.into_inner());
                            total.0 += n;
                            total.1 += b;
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|_| bail!("a worker panicked")))
                .collect()
        });
        for r in outcome {
            r?;
        }
    }
    let wall_s = started.elapsed().as_secs_f64();
    let (rendered, total_bytes) = *bytes.lock().unwrap_or_else(|e| e.into_inner());
    let wanted_total = wanted.len() as u64 * u64::from(args.repeat);
    let bytes_mean = total_bytes as f64 / rendered.max(1) as f64;
    println!(
        "{label}: {threads} thread(s), {metas} metatiles x{repeat}, {rendered} tiles rendered \
         ({wanted} wanted) in {wall_s:.3} s = {rps:.0} tiles/s ({wps:.0} wanted tiles/s); \
         {bytes_mean:.0} bytes/tile; style loaded in {load_s:.3} s; {pg} PostGIS connection(s) per worker",
        label = if args.label.is_empty() {
            "render_bench"
        } else {
            &args.label
        },
        threads = args.threads,
        metas = metatiles.len(),
        repeat = args.repeat,
        wanted = wanted_total,
        rps = rendered as f64 / wall_s,
        wps = wanted_total as f64 / wall_s,
        pg = options.postgis_connections,
    );
    if let (Some(path), Some(meta)) = (&args.json, &meta) {
        let line = format!(
            "{{\"tool\":\"tessera\",\"label\":{label:?},\"threads\":{threads},\"format\":{format:?},\
             \"metatiles\":{metas},\"repeat\":{repeat},\"tiles_rendered\":{rendered},\
             \"tiles_wanted\":{wanted_total},\"wall_s\":{wall_s:.6},\"bytes_per_tile\":{bytes_mean:.1},\
             \"load_s\":{load_s:.6},\"postgis_connections\":{pg}}}",
            label = args.label,
            threads = args.threads,
            format = args.format,
            metas = metatiles.len(),
            repeat = args.repeat,
            pg = options.postgis_connections,
        );
        tessera_benches::append_stamped(path, &line, meta)?;
    }
    Ok(())
}

fn write_tile(dir: &Path, tile: TileCoord, png: &[u8]) -> Result<()> {
    let folder = dir.join(tile.z().to_string()).join(tile.x().to_string());
    std::fs::create_dir_all(&folder)?;
    std::fs::write(folder.join(format!("{}.png", tile.y())), png)?;
    Ok(())
}

/// Writes a metatile as mod_tile does (`metatile.h`): `META`, count, x, y,
/// z (i32, little-endian), then count × (offset, size) with entry
/// `(x % N) * N + (y % N)`, then the PNGs; into a temp file, then renamed.
fn write_meta(dir: &Path, meta: &Metatile, tiles: &[render_core::RenderedTile]) -> Result<()> {
    let n = meta.size();
    let count = (n * n) as usize;
    let mut entries = vec![(0u32, 0u32); count];
    let mut offset = 20 + 8 * count;
    let mut body: Vec<u8> = Vec::new();
    for t in tiles {
        let i = ((t.tile.x() % n) * n + (t.tile.y() % n)) as usize;
        entries[i] = (u32::try_from(offset)?, u32::try_from(t.png.len())?);
        offset += t.png.len();
        body.extend_from_slice(&t.png);
    }
    let mut file = Vec::with_capacity(offset);
    file.extend_from_slice(b"META");
    for v in [n * n, meta.x(), meta.y(), u32::from(meta.z())] {
        file.extend_from_slice(&v.to_le_bytes());
    }
    for (o, len) in entries {
        file.extend_from_slice(&o.to_le_bytes());
        file.extend_from_slice(&len.to_le_bytes());
    }
    file.extend_from_slice(&body);
    let folder = dir.join(meta.z().to_string()).join(meta.x().to_string());
    std::fs::create_dir_all(&folder)?;
    let path = folder.join(format!("{}.meta", meta.y()));
    let tmp = folder.join(format!("{}.meta.tmp", meta.y()));
    std::fs::write(&tmp, &file)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

/// The tiles asked for: a block, or generate_tiles.py's loops over a bbox.
fn wanted_tiles(args: &Args) -> Result<Vec<TileCoord>> {
    if let Some(block) = &args.block {
        let v: Vec<u32> = block
            .split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .context("--block z,x0,y0,nx,ny")?;
        let [z, x0, y0, nx, ny] = v[..] else {
            bail!("--block takes z,x0,y0,nx,ny");
        };
        let mut tiles = Vec::new();
        for x in x0..x0 + nx {
            for y in y0..y0 + ny {
                tiles.push(TileCoord::new(u8::try_from(z)?, x, y)?);
            }
        }
        return Ok(tiles);
    }
    let zoom = args.zoom.as_deref().context("give --zoom or --block")?;
    let (z0, z1) = match zoom.split_once('-') {
        Some((a, b)) => (a.parse::<u8>()?, b.parse::<u8>()?),
        None => (zoom.parse::<u8>()?, zoom.parse::<u8>()?),
    };
    let bbox: Vec<f64> = args
        .bbox
        .as_deref()
        .unwrap_or("-180,-85.0511,180,85.0511")
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .context("--bbox minlon,minlat,maxlon,maxlat")?;
    let [west, south, east, north] = bbox[..] else {
        bail!("--bbox takes minlon,minlat,maxlon,maxlat");
    };
    // generate_tiles.py (and mapnik_baseline.py): from the pixel of the
    // north-west corner to that of the south-east corner, inclusive.
    let mut tiles = Vec::new();
    for z in z0..=z1 {
        let n = 1u64 << z;
        let (x0, y0) = pixel_tile(west, north, z);
        let (x1, y1) = pixel_tile(east, south, z);
        for x in x0..=x1 {
            for y in y0..=y1 {
                if x >= 0 && y >= 0 && (x as u64) < n && (y as u64) < n {
                    tiles.push(TileCoord::new(z, x as u32, y as u32)?);
                }
            }
        }
    }
    Ok(tiles)
}

/// The tile of a point as generate_tiles.py's GoogleProjection computes it
/// (`int(px / 256)` on a 256 px tile grid).
fn pixel_tile(lon: f64, lat: f64, z: u8) -> (i64, i64) {
    let size = 256.0 * f64::from(1u32 << z);
    let px = (lon + 180.0) / 360.0 * size;
    let m = LngLat::new(lon, lat.clamp(-85.0511, 85.0511))
        .to_mercator(true)
        .map_or(0.0, |m| m.y);
    let py = (0.5 - m / 40_075_016.685_578_49) * size;
    // Python's int() truncates towards zero.
    ((px / 256.0).trunc() as i64, (py / 256.0).trunc() as i64)
}
