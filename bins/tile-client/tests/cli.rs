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
