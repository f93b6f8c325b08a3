//! Reloading the configuration and the styles while serving (SIGHUP, the
//! `Reload` message, `tile-client reload`).
//!
//! The promise:
//! - **Atomic.** Every map is loaded first, away from the service; then
//!   the whole map table is replaced at once ([`ServiceHandle::swap_maps`]).
//!   A render already running finishes with the map it started with and
//!   its tiles are stored with that generation's stamp, older than the new
//!   cut-off: stale, not fresh (see [`crate::generation`]).
//! - **Only what changed.** A map whose files and settings have the same
//!   fingerprint keeps its loaded style, its workers' warm renderers and
//!   its tiles. A changed map's older tiles become stale: they are
//!   re-rendered when asked (or through `dirty` work).
//! - **A failure keeps the old.** A configuration that does not read or
//!   check changes nothing. A map whose new style or data does not load
//!   keeps serving its old style, and the report (and the log) says why.
//! - **What needs a restart is said.** The `[[map]]` list is reloaded;
//!   other settings (listeners, threads, the store, render settings) keep
//!   their running values and are named in
//!   [`ReloadReport::restart_needed`].
//! - Reloads run one at a time.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use ipc_proto::{MapReload, MapReloadStatus, Reloaded};

use crate::config::ValidConfig;
use crate::generation;
use crate::service::{load_map, publish_cut_off, Prepared, Served, ServiceHandle, ServiceOptions};
use crate::store::TileStore;

/// Reads the configuration again (the file and the command line it was
/// started with); the error is said in the user's terms.
pub type ConfigSource = Box<dyn Fn() -> Result<ValidConfig, String> + Send + Sync>;

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// Each map of the old and the new configuration.
    pub maps: Vec<MapReload>,
    /// Settings that changed but keep their running values until a restart.
    pub restart_needed: Vec<String>,
}

impl ReloadReport {
    /// Whether some map failed to load.
    pub fn has_failures(&self) -> bool {
        self.maps
            .iter()
            .any(|m| m.status == MapReloadStatus::Failed)
    }

    /// The protocol's answer for this report.
    pub fn to_message(&self) -> Reloaded {
        Reloaded {
            error: String::new(),
            maps: self.maps.clone(),
            restart_needed: self.restart_needed.clone(),
        }
    }
}

/// Why nothing was reloaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The configuration could not be read or checked.
    #[error("the configuration did not load, nothing was reloaded: {0}")]
    Config(String),
    /// The service was started without a configuration to reload from
    /// (an embedding application's [`crate::TileService::start_with`]).
    #[error("this server has no configuration to reload from")]
    NoSource,
}

/// Reloads a service from where its configuration came from.
pub struct Reloader {
    source: ConfigSource,
    /// The configuration in effect; locked for a whole reload, so reloads
    /// run one at a time.
    current: Mutex<ValidConfig>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

/// A map of the new table, before the swap.
enum Next {
    /// The running map (and its variant) stays.
    Keep(Served),
    /// A map that was served, loaded again: its cut-off is set at the swap.
    Replace(Box<Prepared>),
    /// A map that was not served.
    Add(Served),
}

impl Reloader {
    /// A reloader for a service started from `current`.
    pub fn new(current: ValidConfig, source: ConfigSource) -> Reloader {
        Reloader {
            source,
            current: Mutex::new(current),
        }
    }

    /// The fingerprints of the served maps' files as they are now (style,
    /// includes, images, data; a `stat` per file), for a file watcher to
    /// compare with its last look.
    pub fn inputs_now(&self, service: &ServiceHandle) -> Vec<String> {
        let options = {
            let current = self
                .current
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            ServiceOptions::from_config(&current)
        };
        service
            .maps()
            .iter()
            .map(|m| {
                generation::fingerprint(&m.source, &options.render, options.scheduler.metatile_size)
            })
            .collect()
    }

    /// Reads the configuration again and reloads what changed.
    pub fn reload(&self, service: &ServiceHandle) -> Result<ReloadReport, ReloadError> {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = (self.source)().map_err(ReloadError::Config)?;
        let restart_needed = settings_that_need_a_restart(&current, &next);
        // The maps are new; everything else runs as it is.
        let mut effective = current.clone();
        effective.raw.maps = next.raw.maps.clone();
        let options = ServiceOptions::from_config(&effective);
        let table = service.maps();
        let mut report = Vec::new();
        let mut prepared = Vec::new();
        for section in &effective.raw.maps {
            let running = table
                .iter()
                .find(|m| m.name == section.name)
                .and_then(|m| table.id_of(&m.name))
                .and_then(|id| table.served(id))
                .cloned();
            let status = if running.is_some() {
                MapReloadStatus::Reloaded
            } else {
                MapReloadStatus::Added
            };
            // Same style file, and its files and settings unchanged: no
            // need to load it again (osm-carto takes a second).
            let same_section = current
                .raw
                .maps
                .iter()
                .any(|m| m.name == section.name && m.style == section.style);
            if let Some(served) = running.as_ref().filter(|_| same_section) {
                let now = generation::fingerprint(
                    &served.map.source,
                    &options.render,
                    options.scheduler.metatile_size,
                );
                if now == served.map.generation.fingerprint {
                    report.push(MapReload {
                        map: section.name.clone(),
                        status: MapReloadStatus::Unchanged,
                        detail: String::new(),
                    });
                    prepared.push(Next::Keep(served.clone()));
                    continue;
                }
            }
            let failed = |detail: String| MapReload {
                map: section.name.clone(),
                status: MapReloadStatus::Failed,
                detail,
            };
            let source = match load_map(&effective, section) {
                Ok(source) => source,
                Err(e) => {
                    report.push(failed(ipc_proto::say_once(&e)));
                    prepared.extend(running.map(Next::Keep));
                    continue;
                }
            };
            let fingerprint =
                generation::fingerprint(&source, &options.render, options.scheduler.metatile_size);
            if let Some(served) = running.as_ref() {
                if served.map.generation.fingerprint == fingerprint {
                    report.push(MapReload {
                        map: section.name.clone(),
                        status: MapReloadStatus::Unchanged,
                        detail: String::new(),
                    });
                    prepared.push(Next::Keep(served.clone()));
                    continue;
                }
            }
            for warning in source.warnings() {
                tracing::warn!(map = %section.name, "{warning}");
            }
            let (root, layout) = effective.store_location(&section.name);
            let store = match TileStore::open(root, layout) {
                Ok(store) => store,
                Err(e) => {
                    report.push(failed(e.to_string()));
                    prepared.extend(running.map(Next::Keep));
                    continue;
                }
            };
            report.push(MapReload {
                map: section.name.clone(),
                status,
                detail: String::new(),
            });
            let loaded = match Prepared::new(section.name.clone(), source, store, &options) {
                Ok(loaded) => loaded,
                Err(e) => {
                    report.pop();
                    report.push(failed(e.to_string()));
                    prepared.extend(running.map(Next::Keep));
                    continue;
                }
            };
            prepared.push(match running {
                Some(_) => Next::Replace(Box::new(loaded)),
                // Nothing of this map runs: its generation is found as at
                // a start.
                None => Next::Add(loaded.into_served(None)),
            });
        }
        for entry in table.iter() {
            if !effective.raw.maps.iter().any(|m| m.name == entry.name) {
                report.push(MapReload {
                    map: entry.name.clone(),
                    status: MapReloadStatus::Removed,
                    detail: String::new(),
                });
            }
        }
        let mut replaced = Vec::new();
        service.swap_maps(|old| {
            // Under the write lock: every render that got an old map took
            // its stamp before this moment.
            let since = SystemTime::now();
            let entries = prepared
                .into_iter()
                .map(|next| match next {
                    Next::Keep(served) | Next::Add(served) => served,
                    Next::Replace(loaded) => {
                        let served = loaded.into_served(Some(since));
                        replaced.push(Arc::clone(&served.map));
                        replaced.push(Arc::clone(&served.hidpi));
                        served
                    }
                })
                .collect();
            old.replaced_by(entries)
        });
        for entry in &replaced {
            publish_cut_off(entry);
            let record = entry.generation_record();
            if let Err(e) = generation::save(&record, &entry.generation) {
                tracing::warn!(
                    map = %entry.name,
                    "cannot record the map's generation in {}: {e}",
                    record.display()
                );
            }
        }
        // What failed stays as it ran; the rest of the new list is in effect.
        effective.raw.maps.retain(|m| {
            !report
                .iter()
                .any(|r| r.map == m.name && r.status == MapReloadStatus::Failed)
                || table.iter().any(|t| t.name == m.name)
        });
        *current = effective;
        let report = ReloadReport {
            maps: report,
            restart_needed,
        };
        log(&report);
        Ok(report)
    }
}

/// One line per map that did not stay as it was, and the settings that
/// wait for a restart.
fn log(report: &ReloadReport) {
    for m in &report.maps {
        match m.status {
            MapReloadStatus::Unchanged => tracing::info!(map = %m.map, "unchanged"),
            MapReloadStatus::Failed => tracing::warn!(
                map = %m.map,
                "reload failed, the old style still serves: {}",
                m.detail
            ),
            status => tracing::info!(map = %m.map, "{}", status.name()),
        }
    }
    if !report.restart_needed.is_empty() {
        tracing::warn!(
            settings = report.restart_needed.join(", "),
            "changed, but take effect only at a restart"
        );
    }
}

/// The settings outside `[[map]]` that differ, as `section.key`.
fn settings_that_need_a_restart(current: &ValidConfig, next: &ValidConfig) -> Vec<String> {
    let table = |config: &ValidConfig| {
        let mut raw = config.raw.clone();
        raw.maps.clear();
        // The effective thread count: `0` (one per core) and the number of
        // cores are the same setting.
        raw.render.threads = config.threads;
        toml::Value::try_from(&raw).ok()
    };
    let (Some(toml::Value::Table(old)), Some(toml::Value::Table(new))) =
        (table(current), table(next))
    else {
        return Vec::new();
    };
    let mut changed = Vec::new();
    for (section, new_value) in &new {
        let old_value = old.get(section);
        match (old_value, new_value) {
            (Some(toml::Value::Table(o)), toml::Value::Table(n)) => {
                let keys = o.keys().chain(n.keys().filter(|k| !o.contains_key(*k)));
                for key in keys {
                    if o.get(key) != n.get(key) {
                        changed.push(format!("{section}.{key}"));
                    }
                }
            }
            (old_value, new_value) if old_value != Some(new_value) => changed.push(section.clone()),
            _ => {}
        }
    }
    changed
}
