//! `tile-server`: the warm tile render server, a thin `main` over
//! render-service: parse arguments, build the configuration, start the
//! server, reload on SIGHUP, wait for SIGINT or SIGTERM, shut down
//! gracefully.
//!
//! `--role render --queue redis://…` makes it a render node of a cluster
//! ([`cluster`]): no listeners, jobs from the engine.
//!
//! With no arguments it serves the demo map, which it carries inside the
//! binary ([`demo`]), on tcp:127.0.0.1:7420. `--check-config` loads
//! everything and prints the effective configuration ([`check`]).
//!
//! Exit status: 0 after a clean shutdown (or a configuration that checks
//! out), 1 when the server failed (a port in use, a tile directory that
//! cannot be made), 2 for a bad command line or configuration, a style or
//! data that does not load, or an unreadable secret file.

// A binary talks to its user on stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod check;
mod cluster;
mod demo;
mod systemd;
mod watch;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use http_front::HttpServer;
use ipc_proto::say_once;
use render_service::{ConfigOverrides, Reloader, Role, Server, ServiceConfig, ValidConfig};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// The warm tile render server.
#[derive(Debug, Clone, Parser)]
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
    /// Layout of tile files: {map}, {z}, {x}, {y}, e.g. '{map}/{z}/{x}/{y}.png'
    /// (the default) or '{z}_{x}_{y}.png' (one map, straight into the tile
    /// dir, as the legacy application reads); or 'mod_tile': one .meta file
    /// per metatile in <tile dir>/<map>/, as renderd writes them.
    #[arg(long)]
    tile_layout: Option<String>,
    /// Where to serve the framed protocol: tcp:HOST:PORT or unix:PATH
    /// (repeatable; replaces the configured list).
    #[arg(long)]
    listen: Vec<String>,
    /// Where to serve the legacy line protocol (tcp:HOST:PORT).
    #[arg(long)]
    legacy_listen: Option<String>,
    /// Where to serve renderd's socket protocol, for Apache's mod_tile,
    /// render_list and render_expired: unix:PATH or loopback tcp:HOST:PORT
    /// (repeatable; replaces the configured list).
    #[arg(long)]
    renderd_listen: Vec<String>,
    /// Where to serve tiles over HTTP for web maps, HOST:PORT (repeatable;
    /// replaces the configured list): /{map}/{z}/{x}/{y}.png, /{map}.json,
    /// /metrics, /health and a map viewer at /.
    #[arg(long)]
    http_listen: Vec<String>,
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
    /// Load every style and print the effective configuration as TOML;
    /// exit 0 if everything loads, 2 if not.
    #[arg(long)]
    check_config: bool,
    /// In a cluster: `front` (take requests, publish jobs to the engine),
    /// `render` (draw the engine's jobs into the shared tile directory) or
    /// `both` (the default; without --queue, one machine does everything).
    #[arg(long, value_name = "ROLE")]
    role: Option<String>,
    /// The engine a cluster shares: redis://HOST:PORT[/DB].
    #[arg(long, value_name = "URL")]
    queue: Option<String>,
}

/// Why the program ends early: its exit status and what to say.
struct Stop {
    status: u8,
    message: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    match configure(args.clone()) {
        Ok((config, check_only, _demo)) if check_only => check::check_config(&config),
        // `_demo` lives until the server has stopped: a temporary demo
        // folder is removed when it is dropped.
        Ok((config, _, demo)) => match run(
            &config,
            args.config.clone(),
            reload_source(args, demo.as_ref()),
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(stop) => {
                eprintln!("tile-server: {}", stop.message);
                ExitCode::from(stop.status)
            }
        },
        Err(stop) => {
            eprintln!("tile-server: {}", stop.message);
            ExitCode::from(stop.status)
        }
    }
}

/// Logs to stderr, in colour only on a terminal (and not with `NO_COLOR`);
/// `RUST_LOG` sets the level (default `info`).
fn init_logging() {
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
}

/// The checked configuration, whether only to check it, and the demo's
/// folder when the built-in configuration serves the demo.
fn configure(args: Args) -> Result<(ValidConfig, bool, Option<demo::DemoFolder>), Stop> {
    let bad = |message: String| Stop { status: 2, message };
    let (config, origin, demo) = match &args.config {
        Some(path) => match ServiceConfig::from_file(path) {
            Ok(config) => (config, path.display().to_string(), None),
            Err(e) => return Err(bad(say_once(&e))),
        },
        None => {
            // `--style` replaces the demo: no need to unpack it then.
            let demo = match &args.style {
                Some(_) => None,
                None => Some(demo::unpack().map_err(|e| Stop {
                    status: 1,
                    message: format!("cannot unpack the demo map: {e}"),
                })?),
            };
            let folder = demo.as_ref().map_or(PathBuf::new(), |d| d.path().into());
            let config = ServiceConfig::builtin_default(&folder);
            (config, "built-in default".to_owned(), demo)
        }
    };
    match with_overrides(config, &args, &origin) {
        Ok(config) => Ok((config, args.check_config, demo)),
        Err(message) => Err(bad(message)),
    }
}

/// Applies the command line's overrides to a configuration and checks it;
/// an error is blamed on the flag when a flag is at fault.
fn with_overrides(
    mut config: ServiceConfig,
    args: &Args,
    origin: &str,
) -> Result<ValidConfig, String> {
    let overrides = ConfigOverrides {
        style: args.style.clone(),
        tile_dir: args.tile_dir.clone(),
        tile_layout: args.tile_layout.clone(),
        listen: args.listen.clone(),
        legacy_listen: args.legacy_listen.clone(),
        renderd_listen: args.renderd_listen.clone(),
        threads: args.threads,
        metatile: args.metatile,
        secret_file: args.secret_file.clone(),
        format: args.format.clone(),
        fifo: args.fifo,
        http_listen: args.http_listen.clone(),
        role: args.role.clone(),
        queue: args.queue.clone(),
    };
    config.apply(&overrides);
    match config.validate(origin) {
        Ok(config) => Ok(config),
        Err(e) => Err(say_once(&overrides.blame(e))),
    }
}

/// A listener that could not start: the machine is at fault (status 1).
fn server_failed_to_start(e: &http_front::HttpError) -> Stop {
    Stop {
        status: 1,
        message: say_once(e),
    }
}

/// How a reload reads the configuration again: the same file and the same
/// command line (the built-in configuration: the same demo folder).
fn reload_source(args: Args, demo: Option<&demo::DemoFolder>) -> render_service::ConfigSource {
    let demo_dir = demo.map(|d| d.path().to_path_buf());
    Box::new(move || {
        let base = match &args.config {
            Some(path) => ServiceConfig::from_file(path).map_err(|e| say_once(&e))?,
            None => ServiceConfig::builtin_default(demo_dir.as_deref().unwrap_or(Path::new(""))),
        };
        let origin = args
            .config
            .as_ref()
            .map_or("built-in default".to_owned(), |p| p.display().to_string());
        with_overrides(base, &args, &origin)
    })
}

fn run(
    config: &ValidConfig,
    config_file: Option<PathBuf>,
    reload: render_service::ConfigSource,
) -> Result<(), Stop> {
    let failed = |message: String| Stop { status: 1, message };
    // Signals are registered before anything starts, so an early Ctrl-C is
    // not lost, and a SIGHUP does not kill the server (its default).
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| failed(format!("cannot handle signals: {e}")))?;
    // A render node has no listeners; `both` with an engine runs one
    // beside the front.
    let node = match &config.cluster {
        Some(cluster) if cluster.role == Role::Render => {
            return cluster::run_render_node(config, cluster, reload, &mut signals);
        }
        Some(cluster) if cluster.role == Role::Both => {
            Some(cluster::start_render_node(config, cluster, None)?)
        }
        _ => None,
    };
    let server = Server::start(config).map_err(|e| Stop {
        status: if e.is_configuration() { 2 } else { 1 },
        message: say_once(&e),
    })?;
    server
        .handle()
        .set_reloader(Reloader::new(config.clone(), reload));
    let interval = config.raw.server.watch_interval_ms;
    if interval > 0 {
        watch::spawn(
            server.handle().clone(),
            config_file,
            Duration::from_millis(interval),
        )
        .map_err(|e| failed(format!("cannot start the file watcher: {e}")))?;
    }
    let http = if config.http_listen.is_empty() {
        None
    } else {
        Some(
            HttpServer::start(config, server.handle().clone())
                .map_err(|e| server_failed_to_start(&e))?,
        )
    };
    for endpoint in server.endpoints() {
        println!("tile-server: listening on {endpoint}");
    }
    if let Some(endpoint) = server.legacy_endpoint() {
        println!("tile-server: legacy line protocol on {endpoint}");
    }
    for endpoint in server.renderd_endpoints() {
        println!("tile-server: renderd protocol on {endpoint}");
    }
    for (map, section) in server.handle().maps().iter().zip(&config.raw.maps) {
        println!(
            "tile-server: map {:?} ({}) -> tiles in {}",
            map.name,
            section.style.display(),
            map.store.root().display()
        );
    }
    for address in http.iter().flat_map(HttpServer::addresses) {
        println!("tile-server: http on http://{address}/ (the map viewer)");
    }
    // Said once everything is in place: every map loaded, every listener
    // (framed, legacy, HTTP) bound and accepting.
    let names: Vec<String> = server
        .handle()
        .maps()
        .iter()
        .map(|m| m.name.clone())
        .collect();
    tracing::info!(maps = names.join(","), "ready");
    println!("tile-server: ready");
    systemd::notify("READY=1\nSTATUS=serving");
    let signal_name = |signal: i32| {
        if signal == SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        }
    };
    for signal in signals.forever() {
        if signal == SIGHUP {
            // The reload logs each map; a configuration that does not load
            // changes nothing and is said here.
            tracing::info!("SIGHUP: reloading the configuration and the styles");
            systemd::notify("RELOADING=1\nSTATUS=reloading");
            let status = match server.handle().reload() {
                Ok(report) if report.has_failures() => {
                    "serving; the last reload kept an old style (see the log)"
                }
                Ok(_) => "serving",
                Err(e) => {
                    tracing::error!("{e}");
                    "serving; the last reload failed (see the log)"
                }
            };
            systemd::notify(&format!("READY=1\nSTATUS={status}"));
            continue;
        }
        println!(
            "tile-server: {}: finishing running renders, cancelling the queue \
             (a second signal exits at once)",
            signal_name(signal)
        );
        systemd::notify("STOPPING=1\nSTATUS=finishing running renders");
        break;
    }
    // Graceful shutdown can take as long as the slowest client's write
    // timeout; an operator who asks twice gets out now.
    std::thread::Builder::new()
        .name("second signal".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().find(|s| *s != SIGHUP) {
                eprintln!(
                    "tile-server: second {}: exiting without waiting",
                    signal_name(signal)
                );
                std::process::exit(128 + signal);
            }
        })
        .map_err(|e| failed(format!("cannot start a thread: {e}")))?;
    // HTTP stops taking requests first; the service's shutdown then answers
    // the renders its requests wait for; then HTTP's last answers go out.
    if let Some(http) = &http {
        http.stop_accepting();
    }
    server.shutdown();
    if let Some(node) = node {
        node.shutdown();
    }
    if let Some(http) = http {
        http.shutdown();
    }
    println!("tile-server: stopped");
    Ok(())
}
