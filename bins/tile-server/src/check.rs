//! `--check-config`: everything the server would load before it serves,
//! without serving.
//!
//! Contract: every map's style and data are loaded as at start (each map,
//! even after one has failed, so one run names every problem); the secret
//! file, if any, is read. Warnings and errors go to stderr, one line each;
//! the effective configuration goes to stdout as TOML that reads back as
//! the same configuration. The result is the exit status: 0 when it all
//! loads, 2 when anything does not.

use std::process::ExitCode;

use ipc_proto::{say_once, Secret};
use render_service::ValidConfig;

/// Runs the check; returns the exit status.
pub fn check_config(config: &ValidConfig) -> ExitCode {
    let mut problems = 0;
    for map in &config.raw.maps {
        match render_service::service::load_map(config, map) {
            Ok(source) => {
                for warning in source.warnings() {
                    eprintln!("tile-server: map `{}`: warning: {warning}", map.name);
                }
            }
            Err(e) => {
                eprintln!("tile-server: {}", say_once(&e));
                problems += 1;
            }
        }
    }
    if let Some(path) = &config.raw.server.secret_file {
        if let Err(e) = Secret::from_file(path) {
            eprintln!("tile-server: secret file: {}", say_once(&e));
            problems += 1;
        }
    }
    match config.effective_toml() {
        Ok(text) => print!("{text}"),
        Err(e) => {
            eprintln!("tile-server: {}", say_once(&e));
            problems += 1;
        }
    }
    if problems == 0 {
        eprintln!(
            "tile-server: configuration OK ({} map{} loaded)",
            config.raw.maps.len(),
            if config.raw.maps.len() == 1 { "" } else { "s" }
        );
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}
