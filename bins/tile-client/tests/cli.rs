//! `tile-client` as a user runs it: real process, real arguments, real output.

// Test helpers may unwrap: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

fn tile_client(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tile-client"))
        .args(args)
        .output()
        .unwrap()
}

/// Each file in `tests/mercantile/` holds the command in its first line and,
/// after the comment lines, exactly what mercantile 1.2.1 lists for it
/// (written by `crates/tile-math/tests/mercantile/generate.py`, which also
/// checks the lists against the `mercantile tiles` command line).
#[test]
fn tiles_prints_what_mercantile_prints() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mercantile");
    let mut cases = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let command = text
            .lines()
            .next()
            .unwrap()
            .strip_prefix("# tile-client ")
            .unwrap();
        let args: Vec<&str> = command.split_whitespace().collect();
        let expected: String = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        let out = tile_client(&args);
        assert!(
            out.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            expected,
            "{}",
            path.display()
        );
        cases += 1;
    }
    assert!(cases >= 6, "only {cases} cases found in {}", dir.display());
}

#[test]
fn bad_arguments_exit_2_with_a_clear_message() {
    let cases: &[(&[&str], &str)] = &[
        (&["tiles", "--bbox", "1,2,3", "--zoom", "3"], "4 numbers"),
        (&["tiles", "--bbox", "a,b,c,d", "--zoom", "3"], "not a bbox"),
        (&["tiles", "--bbox", "0,10,1,5", "--zoom", "3"], "north"),
        (&["tiles", "--bbox", "0,0,1,95", "--zoom", "3"], "±90"),
        (
            &["tiles", "--bbox", "0,0,1,1", "--zoom", "31"],
            "out of range",
        ),
        (&["tiles", "--bbox", "0,0,1,1", "--zoom", "5-3"], "inverted"),
        (
            &["tiles", "--bbox", "0,0,1,1", "--zoom", "x"],
            "not a zoom level",
        ),
        (&["tiles", "--bbox", "0,0,1,1"], "--zoom"),
        (&["no-such-command"], "unrecognized subcommand"),
    ];
    for (args, message) in cases {
        let out = tile_client(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(message),
            "{args:?}: expected {message:?} in {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    }
}

#[test]
fn negative_west_edge_is_not_taken_for_a_flag() {
    let out = tile_client(&["tiles", "--bbox", "-10,-10,10,10", "--zoom", "0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"0/0/0\n");
}

/// A server in this process with a one-polygon style, for the commands
/// that need one.
fn small_server(dir: &Path) -> render_service::Server {
    std::fs::write(
        dir.join("square.geojson"),
        r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},
           "geometry":{"type":"Polygon","coordinates":[[[20,55],[30,55],[30,65],[20,65],[20,55]]]}}]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("small.xml"),
        r##"<Map srs="epsg:3857" background-color="#aad3df"><Style name="s"><Rule><PolygonSymbolizer fill="#f2efe9"/></Rule></Style>
<Layer name="l" srs="epsg:4326"><StyleName>s</StyleName><Datasource><Parameter name="type">ogr</Parameter>
<Parameter name="file">square.geojson</Parameter><Parameter name="layer_by_index">0</Parameter></Datasource></Layer></Map>"##,
    )
    .unwrap();
    let toml = format!(
        "[server]\nlisten = [\"unix:{}\"]\n[render]\nthreads = 2\nmetatile = 2\n[store]\ndir = \"{}\"\n[[map]]\nname = \"small\"\nstyle = \"{}\"\n",
        dir.join("s.sock").display(),
        dir.join("tiles").display(),
        dir.join("small.xml").display()
    );
    // Written to a file and reloaded from it, as tile-server does.
    let config_file = dir.join("tessera.toml");
    std::fs::write(&config_file, toml).unwrap();
    let read = |path: &Path| {
        render_service::ServiceConfig::from_file(path)
            .map_err(|e| e.to_string())?
            .validate("test")
            .map_err(|e| e.to_string())
    };
    let config = read(&config_file).unwrap();
    let server = render_service::Server::start(&config).unwrap();
    let reloader = render_service::Reloader::new(config, Box::new(move || read(&config_file)));
    assert!(server.handle().set_reloader(reloader));
    server
}

#[test]
fn reload_prints_each_map_and_fails_when_a_style_does_not_load() {
    let dir = tempfile::tempdir().unwrap();
    let server = small_server(dir.path());
    let addr = format!("unix:{}", dir.path().join("s.sock").display());
    let out = tile_client(&["--server", &addr, "reload"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "small: unchanged\n");

    let style = dir.path().join("small.xml");
    let text = std::fs::read_to_string(&style).unwrap();
    std::fs::write(&style, text.replace("#aad3df", "#ff0000")).unwrap();
    let out = tile_client(&["--server", &addr, "reload"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "small: reloaded\n");

    std::fs::write(&style, "<Map").unwrap();
    let out = tile_client(&["--server", &addr, "reload"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.starts_with("small: failed, the old style still serves: ")
            && stdout.contains("small.xml"),
        "{stdout}"
    );
    server.shutdown();
}

#[test]
fn render_seed_viewport_and_stats_against_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = small_server(dir.path());
    let addr = format!("unix:{}", dir.path().join("s.sock").display());
    let run = |args: &[&str]| {
        let mut all = vec!["--server", addr.as_str()];
        all.extend_from_slice(args);
        tile_client(&all)
    };
    let out = run(&["render", "3/4/2", "3/4/3"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.contains(" done ")).count(),
        2,
        "{stdout}"
    );
    assert!(dir.path().join("tiles/small/3/4/2.png").is_file());

    let out = run(&[
        "seed",
        "--bbox",
        "20,55,30,65",
        "--zoom",
        "0-6",
        "--window",
        "16",
        "--chunk",
        "4",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expected =
        tile_math::tiles_covering(tile_math::LngLatBbox::new(20.0, 55.0, 30.0, 65.0), 0..=6)
            .unwrap()
            .total();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!("seeded {expected} tiles")),
        "{stdout}"
    );
    assert!(stdout.contains("0 failed, 0 cancelled"), "{stdout}");

    let out = run(&[
        "viewport",
        "--bbox",
        "24.9,60.1,25.0,60.2",
        "--zoom",
        "9",
        "--ring",
        "1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = run(&["stats"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().any(|l| l.starts_with("tiles_rendered ")),
        "{stdout}"
    );

    // A refused request: exit status 1 and the reason.
    let out = run(&["render", "--map", "nope", "1/0/0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("UnknownMap"));
    server.shutdown();

    // No server: a clear message and status 1.
    let out = run(&["stats"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("connecting to"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue #12, point 10: through a pipe (as under cron or systemd), `seed`
/// prints whole progress lines as it goes, not only a summary at the end.
/// With `--progress-interval 0` there is one line per answered tile, so
/// the count does not depend on how fast the server is.
#[test]
fn seed_reports_progress_through_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let server = small_server(dir.path());
    let addr = format!("unix:{}", dir.path().join("s.sock").display());
    let expected =
        tile_math::tiles_covering(tile_math::LngLatBbox::new(20.0, 55.0, 30.0, 65.0), 0..=5)
            .unwrap()
            .total();
    let out = tile_client(&[
        "--server",
        &addr,
        "seed",
        "--bbox",
        "20,55,30,65",
        "--zoom",
        "0-5",
        "--progress-interval",
        "0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stderr.contains('\r'),
        "redrawn in place off a terminal: {stderr:?}"
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("[seed] "))
        .collect();
    assert_eq!(lines.len() as u64, expected, "{stderr}");
    for (i, line) in lines.iter().enumerate() {
        let answered = format!("[seed] {}/{expected} tiles (", i + 1);
        assert!(line.starts_with(&answered), "{line}");
        assert!(line.contains("tiles/s") && line.contains("ETA"), "{line}");
    }
    // With the default interval the summary comes at the end, as before.
    let out = tile_client(&[
        "--server",
        &addr,
        "seed",
        "--bbox",
        "20,55,30,65",
        "--zoom",
        "0-5",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("seeded {expected} tiles")),
        "{stdout}"
    );
    server.shutdown();
}
