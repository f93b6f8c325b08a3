//! `tile-client`: talks to tile-server, and does tile math at the command line.
//!
//! Exit status: 0 on success, 1 when the work failed, 2 for bad usage.
// A binary talks to its user on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{self, BufWriter, Write};
use std::ops::RangeInclusive;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tile_math::{tiles_covering, LngLatBbox, MAX_ZOOM};

/// Client for tessera's tile-server, and Web Mercator tile math.
#[derive(Debug, Parser)]
#[command(name = "tile-client", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the tiles covering a bbox, one `z/x/y` per line, in the order
    /// of mercantile's `tiles` (west part first across the antimeridian, then
    /// zoom by zoom, column by column, north to south).
    Tiles {
        /// The bbox as W,S,E,N in degrees; W > E crosses the antimeridian.
        #[arg(long, value_parser = parse_bbox, allow_hyphen_values = true)]
        bbox: LngLatBbox,
        /// One zoom (`12`) or an inclusive range (`0-5`).
        #[arg(long, value_parser = parse_zoom_range)]
        zoom: RangeInclusive<u8>,
    },
}

fn parse_bbox(s: &str) -> Result<LngLatBbox, String> {
    s.parse()
}

/// Parses `Z` or `A-B` into a zoom range, checking `A <= B <= 30`.
fn parse_zoom_range(s: &str) -> Result<RangeInclusive<u8>, String> {
    let zoom = |part: &str| -> Result<u8, String> {
        let z: u8 = part
            .trim()
            .parse()
            .map_err(|_| format!("{part:?} is not a zoom level (a whole number 0-{MAX_ZOOM})"))?;
        if z > MAX_ZOOM {
            return Err(format!("zoom {z} is out of range (0-{MAX_ZOOM})"));
        }
        Ok(z)
    };
    let (min, max) = match s.split_once('-') {
        Some((a, b)) => (zoom(a)?, zoom(b)?),
        None => (zoom(s)?, zoom(s)?),
    };
    if min > max {
        return Err(format!(
            "zoom range {s:?} is inverted: the first zoom must not exceed the second"
        ));
    }
    Ok(min..=max)
}

fn main() -> ExitCode {
    // clap prints its own message and exits with status 2 on bad usage.
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("tile-client: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Tiles { bbox, zoom } => print_tiles(bbox, zoom),
    }
}

fn print_tiles(bbox: LngLatBbox, zoom: RangeInclusive<u8>) -> anyhow::Result<ExitCode> {
    let cover = match tiles_covering(bbox, zoom) {
        Ok(cover) => cover,
        Err(err) => {
            eprintln!("tile-client: {err}");
            return Ok(ExitCode::from(2));
        }
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for tile in cover {
        if let Err(err) = writeln!(out, "{tile}") {
            return finish_output(err);
        }
    }
    if let Err(err) = out.flush() {
        return finish_output(err);
    }
    Ok(ExitCode::SUCCESS)
}

/// A reader that stops early (`| head`) is not an error; anything else is.
fn finish_output(err: io::Error) -> anyhow::Result<ExitCode> {
    if err.kind() == io::ErrorKind::BrokenPipe {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(err).context("writing to standard output")
    }
}
