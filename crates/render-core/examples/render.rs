//! Renders the metatile around a tile and writes its tiles as PNG files.
//!
//! `cargo run -p render-core --example render -- STYLE.xml Z/X/Y OUT_DIR [png|png8]`
#![allow(clippy::print_stdout, clippy::print_stderr)] // an example prints

use std::process::ExitCode;

use render_core::{MapSource, RenderOptions, Renderer, TileFormat};
use tile_math::{Metatile, TileCoord};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: render STYLE.xml Z/X/Y OUT_DIR [png|png8]");
        return ExitCode::from(2);
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("render: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let tile: TileCoord = args[1].parse()?;
    let format = args
        .get(3)
        .map_or(Some(TileFormat::Png32), |f| TileFormat::parse(f))
        .ok_or("unknown format")?;
    let started = std::time::Instant::now();
    let source = MapSource::load(&args[0])?;
    for w in source.warnings() {
        eprintln!("warning: {w}");
    }
    let loaded = started.elapsed();
    let mut renderer = Renderer::new(
        source,
        RenderOptions {
            format,
            ..RenderOptions::default()
        },
    );
    let meta = Metatile::containing(tile, 8)?;
    let started = std::time::Instant::now();
    let tiles = renderer.render_metatile(&meta)?;
    let rendered = started.elapsed();
    std::fs::create_dir_all(&args[2])?;
    for t in &tiles {
        let path = format!(
            "{}/{}_{}_{}.png",
            args[2],
            t.tile.z(),
            t.tile.x(),
            t.tile.y()
        );
        std::fs::write(&path, t.png.as_slice())?;
    }
    println!(
        "loaded in {loaded:?}; rendered {meta} ({} tiles) in {rendered:?}",
        tiles.len()
    );
    Ok(())
}
