//! tessera's benchmarks live in `benches/` (criterion) and `scripts/`
//! (side-by-side comparisons with reference tools). This library holds what
//! the bench binaries share: the run metadata of their JSON lines.
//!
//! Run them with `cargo bench -p tessera-benches`; results and the commands
//! that produced them are recorded in `docs/performance.md`.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The static part of a JSON line's `"runmeta"` object (commit, dirty flag and
/// paths, CPU model, cores, kernel, start time), as a JSON object.
///
/// Taken from `RUNMETA`, which `benches/scripts/runmeta.sh` exports once per
/// run, or else computed by `benches/scripts/runmeta.py static` (the one
/// implementation). Fails on a tree with uncommitted changes unless
/// `allow_dirty` (`--allow-dirty`) or `ALLOW_DIRTY=1`; such a run records
/// `"dirty": true`.
pub fn run_meta(allow_dirty: bool) -> Result<String> {
    if let Ok(meta) = std::env::var("RUNMETA") {
        if meta.trim_start().starts_with('{') {
            return Ok(meta.trim().to_owned());
        }
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/runmeta.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script).arg("static");
    if allow_dirty {
        cmd.arg("--allow-dirty");
    }
    let out = cmd
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} static: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// `line` (one JSON object, no newline) with `"runmeta"` appended: `meta` (from
/// [`run_meta`]) plus the load average (1, 5, 15 min) and the Unix time now.
pub fn stamp(line: &str, meta: &str) -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let load = if load.len() == 3 {
        format!("[{}]", load.join(","))
    } else {
        "null".to_owned()
    };
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let body = line.trim_end().strip_suffix('}').unwrap_or(line);
    let meta = meta.trim_end().strip_suffix('}').unwrap_or(meta);
    let sep = if body.trim_end().ends_with('{') {
        ""
    } else {
        ","
    };
    let msep = if meta.trim_end().ends_with('{') {
        ""
    } else {
        ","
    };
    format!("{body}{sep}\"runmeta\":{meta}{msep}\"loadavg\":{load},\"time\":{time:.3}}}}}")
}

/// Appends `line` stamped with [`stamp`] and a newline to `path`.
pub fn append_stamped(path: &Path, line: &str, meta: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(f, "{}", stamp(line, meta))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::stamp;

    #[test]
    fn stamp_appends_the_run_object() {
        let line = stamp(r#"{"tool":"x","n":1}"#, r#"{"commit":"abc","dirty":false}"#);
        let prefix = r#"{"tool":"x","n":1,"runmeta":{"commit":"abc","dirty":false,"loadavg":"#;
        assert!(line.starts_with(prefix), "{line}");
        assert!(
            line.contains(r#","time":"#) && line.ends_with("}}"),
            "{line}"
        );
        let empty = stamp("{}", "{}");
        assert!(empty.starts_with(r#"{"runmeta":{"loadavg":"#), "{empty}");
    }
}
