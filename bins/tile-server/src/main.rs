//! `tile-server`: the warm tile render server, a thin `main` over
//! render-service: parse arguments, build the configuration, start the
//! server, wait for SIGINT or SIGTERM, shut down gracefully.
//!
//! With no arguments it serves the bundled demo map on tcp:127.0.0.1:7420.
//! Exit status: 0 after a clean shutdown, 1 when the server failed, 2 for a
//! bad command line or configuration.

// A binary talks to its user on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use render_service::{ConfigOverrides, Server, ServiceConfig};
use signal_hook::consts::{SIGINT, SIGTERM};

/// The warm tile render server.
#[derive(Debug, Parser)]
#[command(name = "tile-server", version, about)]
struct Args {
    /// A TOML configuration file (default: the built-in one, which serves
    /// the demo map).
    #[arg(long)]
    config: Option<PathBuf>,
    /// A Mapnik-XML style: serve this one map, named `default`.
    #[arg(long)]
    style: Option<PathBuf>,
    /// Where tiles are stored.
    #[arg(long)]
    tile_dir: Option<PathBuf>,
    /// Layout of tile files, e.g. '{z}/{x}/{y}.png' or '{z}_{x}_{y}.png'.
    #[arg(long)]
    tile_layout: Option<String>,
    /// Where to serve the framed protocol: tcp:HOST:PORT or unix:PATH
    /// (repeatable; replaces the configured list).
    #[arg(long)]
    listen: Vec<String>,
    /// Where to serve the legacy line protocol (tcp:HOST:PORT).
    #[arg(long)]
    legacy_listen: Option<String>,
    /// Render threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Metatile size N (N×N tiles rendered at once).
    #[arg(long)]
    metatile: Option<u32>,
    /// A file holding the shared secret clients must prove they know.
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// Tile format: png, png8, png256 or png8:c=N.
    #[arg(long)]
    format: Option<String>,
    /// Serve first come, first served: no priority classes, viewports
    /// ignored (the original program's order; for comparisons).
    #[arg(long)]
    fifo: bool,
    /// Print the effective configuration and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let (mut config, origin) = match &args.config {
        Some(path) => match ServiceConfig::from_file(path) {
            Ok(config) => (config, path.display().to_string()),
            Err(e) => {
                eprintln!("tile-server: {e}");
                return ExitCode::from(2);
            }
        },
        None => (
            ServiceConfig::builtin_default(),
            "built-in default".to_owned(),
        ),
    };
    config.apply(&ConfigOverrides {
        style: args.style,
        tile_dir: args.tile_dir,
        tile_layout: args.tile_layout,
        listen: args.listen,
        legacy_listen: args.legacy_listen,
        threads: args.threads,
        metatile: args.metatile,
        secret_file: args.secret_file,
        format: args.format,
        fifo: args.fifo,
    });
    let config = match config.validate(&origin) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("tile-server: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        println!("{:#?}", config.raw);
        return ExitCode::SUCCESS;
    }
    match run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tile-server: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(config: &render_service::ValidConfig) -> anyhow::Result<()> {
    // Signals are registered before anything starts, so an early Ctrl-C is
    // not lost.
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let server = Server::start(config)?;
    for endpoint in server.endpoints() {
        println!("tile-server: listening on {endpoint}");
    }
    if let Some(endpoint) = server.legacy_endpoint() {
        println!("tile-server: legacy line protocol on {endpoint}");
    }
    for map in server.handle().maps() {
        println!(
            "tile-server: map {:?} -> tiles in {}",
            map.name,
            map.store.root().display()
        );
    }
    let signal_name = |signal: i32| {
        if signal == SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        }
    };
    if let Some(signal) = signals.forever().next() {
        println!(
            "tile-server: {}: finishing running renders, cancelling the queue \
             (a second signal exits at once)",
            signal_name(signal)
        );
    }
    // Graceful shutdown can take as long as the slowest client's write
    // timeout; an operator who asks twice gets out now.
    std::thread::Builder::new()
        .name("second signal".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                eprintln!(
                    "tile-server: second {}: exiting without waiting",
                    signal_name(signal)
                );
                std::process::exit(128 + signal);
            }
        })?;
    server.shutdown();
    println!("tile-server: stopped");
    Ok(())
}
