//! The map viewer in a real browser (issue #13): Debian's chromium,
//! headless, driven by `tests/browser/viewer.mjs` (playwright-core, which
//! `scripts/install-deps.sh` installs with npm). The viewer's screenshot
//! must be exactly the stored tiles; a fast pan across 10 screens must
//! leave the abandoned screens' requests cancelled, with the last screen
//! complete.

use std::path::Path;

use crate::support::{decode_rgba, server_command, ServerProcess};

/// The value of a metric line `name value`.
fn metric(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
}

#[test]
fn the_viewer_shows_the_stored_tiles_and_a_fast_pan_cancels_what_it_left() {
    let dir = tempfile::tempdir().unwrap();
    let tiles = dir.path().join("tiles");
    let server = ServerProcess::start(
        server_command()
            .args(["--tile-dir".as_ref(), tiles.as_os_str()])
            .args([
                "--listen",
                "tcp:127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .args(["--threads", "2"]),
    );
    let base = server.http.clone().expect("an HTTP address");
    let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let shot = dir.path().join("viewer.png");
    let out = std::process::Command::new("node")
        .arg(browser.join("viewer.mjs"))
        .arg(&base)
        .arg(&shot)
        .current_dir(&browser)
        .output()
        .expect("node (scripts/install-deps.sh installs the browser test's packages)");
    assert!(
        out.status.success(),
        "the browser script failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    // The screenshot is the stored tiles, pixel for pixel: tile (x, y) of
    // the view has its north-west corner at the window's centre.
    let view = &result["view"];
    let (z, x0, y0) = (
        view["z"].as_u64().unwrap(),
        view["x"].as_i64().unwrap(),
        view["y"].as_i64().unwrap(),
    );
    let screen = decode_rgba(&std::fs::read(&shot).unwrap());
    assert_eq!((screen.width, screen.height), (768, 512));
    let mut compared = 0;
    for ty in y0 - 1..=y0 {
        for tx in x0 - 2..=x0 + 1 {
            let stored = tiles.join(format!("demo/{z}/{tx}/{ty}.png"));
            let tile = decode_rgba(&std::fs::read(&stored).unwrap());
            let (left, top) = ((tx - x0) * 256 + 384, (ty - y0) * 256 + 256);
            for py in 0..256i64 {
                for px in 0..256i64 {
                    let (sx, sy) = (left + px, top + py);
                    if !(0..768).contains(&sx) || !(0..512).contains(&sy) {
                        continue;
                    }
                    let s = ((sy * 768 + sx) * 4) as usize;
                    let t = ((py * 256 + px) * 4) as usize;
                    assert_eq!(
                        screen.pixels[s..s + 3],
                        tile.pixels[t..t + 3],
                        "screen pixel ({sx}, {sy}) is not tile {z}/{tx}/{ty} pixel ({px}, {py})"
                    );
                    compared += 1;
                }
            }
        }
    }
    assert_eq!(
        compared,
        768 * 512,
        "every pixel of the window is a stored tile's"
    );
    if let Ok(keep) = std::env::var("SAVE_VIEWER_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }

    // The fast pan: the last screen loaded in full, requests the browser
    // gave up on were cancelled in the server.
    let metrics = result["metrics"].as_str().unwrap();
    let aborted = result["aborted"].as_u64().unwrap();
    assert!(aborted >= 1, "the pan left no request behind: {result}");
    assert!(
        metric(metrics, "tessera_http_requests_given_up_total") >= 1,
        "{metrics}"
    );
    assert!(
        metric(metrics, "tessera_tiles_cancelled") + metric(metrics, "tessera_metatiles_stopped")
            >= 1,
        "{metrics}"
    );
    assert_eq!(result["pending"], 0, "every request of the pan has ended");
    let ended = server.stop();
    assert!(ended.status.success(), "{}", ended.stderr);
}
