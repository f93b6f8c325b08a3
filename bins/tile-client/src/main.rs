//! `tile-client`: talks to tile-server, and does tile math at the command line.
//!
//! Exit status: 0 when every tile is done, 1 when any tile failed or was
//! refused (or the server could not be reached, or an expire list had a
//! bad line), 2 for bad usage.

// A binary talks to its user on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod commands;
mod expire;
mod progress;

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use ipc_proto::{Endpoint, Priority};
use tile_math::{LngLatBbox, TileCoord, MAX_ZOOM};

/// Client for tessera's tile-server, and Web Mercator tile math.
#[derive(Debug, Parser)]
#[command(name = "tile-client", version, about)]
struct Cli {
    /// The server: tcp:HOST:PORT, unix:PATH or HOST:PORT.
    #[arg(long, global = true, default_value = "tcp:127.0.0.1:7420", value_parser = parse_endpoint)]
    server: Endpoint,
    /// A file holding the server's shared secret.
    #[arg(long, global = true)]
    secret_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Render tiles and print each completion.
    Render {
        /// Tiles as Z/X/Y.
        #[arg(required = true, value_parser = parse_tile)]
        tiles: Vec<TileCoord>,
        #[command(flatten)]
        request: RequestArgs,
    },
    /// Render every tile of a bbox over a zoom range (like renderd's
    /// render_list), keeping a bounded window of tiles outstanding.
    Seed {
        /// W,S,E,N in degrees.
        #[arg(long, value_parser = parse_bbox, allow_hyphen_values = true)]
        bbox: LngLatBbox,
        /// One zoom (`12`) or a range (`0-5`).
        #[arg(long, value_parser = parse_zoom_range)]
        zoom: RangeInclusive<u8>,
        /// Most tiles outstanding at once.
        #[arg(long, default_value_t = 4096)]
        window: usize,
        /// Tiles per request.
        #[arg(long, default_value_t = 256)]
        chunk: usize,
        /// When stderr is not a terminal (cron, systemd, a pipe): print a
        /// progress line every this many seconds; 0: after every tile.
        #[arg(long, default_value_t = 5.0, value_parser = parse_seconds)]
        progress_interval: f64,
        #[command(flatten)]
        request: RequestArgs,
    },
    /// Send a viewport and render what is on screen and around it; exits when
    /// every tile is answered.
    Viewport {
        /// W,S,E,N in degrees.
        #[arg(long, value_parser = parse_bbox, allow_hyphen_values = true)]
        bbox: LngLatBbox,
        /// The zoom shown.
        #[arg(long, value_parser = parse_zoom)]
        zoom: u8,
        /// Rings of neighbour tiles to prefetch.
        #[arg(long, default_value_t = 1)]
        ring: u32,
        #[command(flatten)]
        request: RequestArgs,
    },
    /// Play a drag: each step the next screen east, `interval` seconds apart,
    /// and report how long the last screen took after the last move.
    Pan {
        /// The first screen, W,S,E,N in degrees.
        #[arg(long, value_parser = parse_bbox, allow_hyphen_values = true)]
        bbox: LngLatBbox,
        /// The zoom shown.
        #[arg(long, value_parser = parse_zoom)]
        zoom: u8,
        /// Screens after the first.
        #[arg(long, default_value_t = 9)]
        steps: u32,
        /// Seconds between moves.
        #[arg(long, default_value_t = 0.02)]
        interval: f64,
        /// What to do with screens the user has left.
        #[arg(long, value_enum, default_value_t = LeftBehind::Cancel)]
        left_behind: LeftBehind,
        /// Before the drag, queue the whole world at this zoom as bulk work
        /// (the backlog scenario; z9 is 262,144 tiles).
        #[arg(long, value_parser = parse_zoom)]
        backlog_zoom: Option<u8>,
        /// Print one JSON line instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        request: RequestArgs,
    },
    /// Print the server's counters.
    Stats,
    /// Print the names of the server's maps, the default first.
    Maps,
    /// Make the server read its configuration and styles again (as SIGHUP
    /// does) and print what happened to each map. Exit status 1 if a map
    /// failed to load (the old one still serves) or nothing was reloaded.
    Reload,
    /// Expire tiles whose data changed, as renderd's render_expired does:
    /// read an osm2pgsql expire list (`z/x/y` lines, any zoom), expand it
    /// to every zoom of --min-zoom..--max-zoom, and have the server delete
    /// (from --delete-from), mark stale (from --touch-from) or mark stale
    /// and re-render at dirty priority (below both) every metatile it has
    /// stored. Bad lines are reported and skipped (exit status 1).
    Expire {
        /// The expire list, or `-` for standard input.
        #[arg(default_value = "-")]
        input: PathBuf,
        /// The map (default: the server's first map); a map named without
        /// `@2x` is expired with its high-DPI variant.
        #[arg(long, default_value = "")]
        map: String,
        /// The lowest zoom expired.
        #[arg(long, default_value_t = 0, value_parser = parse_zoom)]
        min_zoom: u8,
        /// The highest zoom expired (render_expired's default too).
        #[arg(long, default_value_t = 20, value_parser = parse_zoom)]
        max_zoom: u8,
        /// From this zoom up, mark stored tiles stale (they are drawn again
        /// when next asked for) instead of re-rendering them now.
        #[arg(long, value_parser = parse_zoom)]
        touch_from: Option<u8>,
        /// From this zoom up, delete stored tiles.
        #[arg(long, value_parser = parse_zoom)]
        delete_from: Option<u8>,
        /// When stderr is not a terminal (cron, systemd, a pipe): print a
        /// progress line every this many seconds; 0: after every line.
        #[arg(long, default_value_t = 5.0, value_parser = parse_seconds)]
        progress_interval: f64,
    },
    /// Print the tiles covering a bbox, one `z/x/y` per line, in the order
    /// of mercantile's `tiles` (west part first across the antimeridian, then
    /// zoom by zoom, column by column, north to south). Needs no server.
    Tiles {
        /// The bbox as W,S,E,N in degrees; W > E crosses the antimeridian.
        #[arg(long, value_parser = parse_bbox, allow_hyphen_values = true)]
        bbox: LngLatBbox,
        /// One zoom (`12`) or an inclusive range (`0-5`).
        #[arg(long, value_parser = parse_zoom_range)]
        zoom: RangeInclusive<u8>,
    },
}

/// What happens to the tiles of screens the user has scrolled away from.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum LeftBehind {
    /// Cancel them (`CancelOutsideViewport`).
    Cancel,
    /// Keep them, ranked below the current screen.
    Demote,
}

#[derive(Debug, clap::Args)]
struct RequestArgs {
    /// The map (default: the server's first map).
    #[arg(long, default_value = "")]
    map: String,
    /// Priority class.
    #[arg(long, value_enum)]
    priority: Option<PriorityArg>,
    /// Render even if the store has a fresh tile.
    #[arg(long)]
    force: bool,
    /// Receive the PNG bytes instead of paths.
    #[arg(long)]
    inline: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PriorityArg {
    Viewport,
    Neighbour,
    Explicit,
    Bulk,
    Dirty,
}

impl From<PriorityArg> for Priority {
    fn from(p: PriorityArg) -> Priority {
        match p {
            PriorityArg::Viewport => Priority::Viewport,
            PriorityArg::Neighbour => Priority::Neighbour,
            PriorityArg::Explicit => Priority::Explicit,
            PriorityArg::Bulk => Priority::Bulk,
            PriorityArg::Dirty => Priority::Dirty,
        }
    }
}

fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    s.parse().map_err(|e: ipc_proto::Error| e.to_string())
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => Ok(seconds),
        _ => Err(format!("{s:?} is not a number of seconds (0 or more)")),
    }
}

fn parse_tile(s: &str) -> Result<TileCoord, String> {
    s.parse()
        .map_err(|e: tile_math::tile::ParseTileError| e.to_string())
}

fn parse_bbox(s: &str) -> Result<LngLatBbox, String> {
    s.parse()
}

fn parse_zoom(s: &str) -> Result<u8, String> {
    let z: u8 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a zoom level (a whole number 0-{MAX_ZOOM})"))?;
    if z > MAX_ZOOM {
        return Err(format!("zoom {z} is out of range (0-{MAX_ZOOM})"));
    }
    Ok(z)
}

/// Parses `Z` or `A-B` into a zoom range, checking `A <= B <= 30`.
fn parse_zoom_range(s: &str) -> Result<RangeInclusive<u8>, String> {
    let (min, max) = match s.split_once('-') {
        Some((a, b)) => (parse_zoom(a)?, parse_zoom(b)?),
        None => (parse_zoom(s)?, parse_zoom(s)?),
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
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("tile-client: {}", ipc_proto::say_once(err.as_ref()));
            ExitCode::from(1)
        }
    }
}
