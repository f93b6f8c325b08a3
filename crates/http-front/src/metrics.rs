//! `/metrics` in Prometheus' text format (version 0.0.4): the service's
//! counters (`tessera_<name>`, as `tile-client stats` prints them),
//! metatiles rendered by map and zoom, a histogram of metatile render
//! times, and the HTTP front's own: responses by status, tiles from the store, rendered,
//! not modified, stale served, requests given up.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use render_service::RENDER_MS_BUCKETS;

use crate::handler::State;

/// The metrics text. The service's counters come from its scheduler
/// thread (a blocking call, made off the async threads).
pub(crate) async fn render(state: &State) -> String {
    let service = state.service.clone();
    let snapshot = tokio::task::spawn_blocking(move || service.stats())
        .await
        .ok()
        .flatten();
    let mut out = String::new();
    if let Some(snapshot) = snapshot {
        for (name, value) in &snapshot.entries {
            let _ = writeln!(out, "# TYPE tessera_{name} {}", kind_of(name));
            let _ = writeln!(out, "tessera_{name} {value}");
        }
    }
    let renders = state.service.counters().render_counts();
    let _ = writeln!(out, "# TYPE tessera_metatiles_rendered_by_zoom counter");
    for ((map, zoom), count) in &renders.by_map_zoom {
        let _ = writeln!(
            out,
            "tessera_metatiles_rendered_by_zoom{{map=\"{map}\",zoom=\"{zoom}\"}} {count}"
        );
    }
    let _ = writeln!(out, "# TYPE tessera_metatile_render_seconds histogram");
    let mut cumulative = 0;
    for (i, count) in renders.buckets.iter().enumerate() {
        cumulative += count;
        let le = RENDER_MS_BUCKETS
            .get(i)
            .map_or("+Inf".to_owned(), |ms| format!("{}", ms / 1000.0));
        let _ = writeln!(
            out,
            "tessera_metatile_render_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        out,
        "tessera_metatile_render_seconds_sum {}",
        renders.sum_ms / 1000.0
    );
    let _ = writeln!(
        out,
        "tessera_metatile_render_seconds_count {}",
        renders.count
    );
    let counters = &state.counters;
    let _ = writeln!(out, "# TYPE tessera_http_responses_total counter");
    let mut by_status: Vec<(u16, u64)> = counters
        .responses
        .lock()
        .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
        .unwrap_or_default();
    by_status.sort_unstable();
    for (status, count) in by_status {
        let _ = writeln!(
            out,
            "tessera_http_responses_total{{status=\"{status}\"}} {count}"
        );
    }
    for (name, value) in [
        ("http_tiles_from_store_total", &counters.tiles_from_store),
        ("http_tiles_rendered_total", &counters.tiles_rendered),
        (
            "http_tiles_not_modified_total",
            &counters.tiles_not_modified,
        ),
        (
            "http_tiles_stale_served_total",
            &counters.tiles_stale_served,
        ),
        ("http_requests_given_up_total", &counters.requests_given_up),
    ] {
        let _ = writeln!(out, "# TYPE tessera_{name} counter");
        let _ = writeln!(out, "tessera_{name} {}", value.load(Ordering::Relaxed));
    }
    out
}

/// Counters only grow; the rest (queue depths, rates, percentiles) are
/// gauges.
fn kind_of(name: &str) -> &'static str {
    let growing = name.starts_with("tiles_") && !name.ends_with("_per_s")
        || name.starts_with("metatiles_")
        || name.ends_with("_dropped_not_reading")
        || name.ends_with("_evicted")
        || name.ends_with("_closed")
        || name.starts_with("cluster_jobs_")
        || name == "cluster_engine_outages";
    if growing && !name.starts_with("tiles_queued") {
        "counter"
    } else {
        "gauge"
    }
}

#[cfg(test)]
mod tests {
    use super::kind_of;

    #[test]
    fn counters_only_grow_and_gauges_go_both_ways() {
        for counter in [
            "tiles_rendered",
            "metatiles_stopped",
            "cluster_jobs_published",
            "cluster_engine_outages",
        ] {
            assert_eq!(kind_of(counter), "counter", "{counter}");
        }
        for gauge in [
            "tiles_per_s",
            "queued_tiles",
            "connections",
            "cluster_engine_up",
        ] {
            assert_eq!(kind_of(gauge), "gauge", "{gauge}");
        }
    }
}
