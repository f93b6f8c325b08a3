//! Shows what the render scheduler sees for one screen: the tiles on it and
//! the ring around it, nearest to the centre first, with the metatile each
//! belongs to and the Mapnik scale denominator of the zoom.
//!
//! `cargo run -p tile-math --example viewport_plan -- W,S,E,N ZOOM`
#![allow(clippy::print_stdout, clippy::print_stderr)] // an example prints

use std::process::ExitCode;

use tile_math::{scale_denominator, LngLatBbox, Metatile, Viewport, DEFAULT_METATILE_SIZE};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(bbox), Some(zoom)) = (args.first(), args.get(1)) else {
        eprintln!("usage: viewport_plan W,S,E,N ZOOM");
        return ExitCode::from(2);
    };
    let bbox: LngLatBbox = match bbox.parse() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("viewport_plan: {e}");
            return ExitCode::from(2);
        }
    };
    let viewport = match zoom
        .parse()
        .map_err(|e| format!("{e}"))
        .and_then(|z| Viewport::from_bbox(bbox, z).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("viewport_plan: {e}");
            return ExitCode::from(2);
        }
    };
    let range = viewport.range();
    println!(
        "zoom {}: {} x {} tiles on screen, scale denominator 1:{:.0}",
        viewport.zoom(),
        range.columns(),
        range.rows(),
        scale_denominator(viewport.zoom(), 256, 1.0)
    );
    println!(
        "{:>4}  {:<18} {:>5}  {:>8}  metatile",
        "rank", "tile", "ring", "distance"
    );
    for (rank, tile) in viewport.tiles_by_distance(1).into_iter().enumerate() {
        let ring = viewport.ring_of(tile).unwrap_or(u32::MAX);
        let meta = Metatile::containing(tile, DEFAULT_METATILE_SIZE)
            .map(|m| m.to_string())
            .unwrap_or_default();
        let label = if ring == 0 { "screen" } else { "ring 1" };
        println!(
            "{:>4}  {:<18} {:>6}  {:>8.2}  {meta}",
            rank + 1,
            tile.to_string(),
            label,
            viewport.distance_from_centre(tile)
        );
    }
    ExitCode::SUCCESS
}
