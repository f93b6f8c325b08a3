//! Running under systemd (issue #12, packaging): the unit in the repository
//! passes `systemd-analyze verify` without a warning, and the server sends
//! the notifications `Type=notify` waits for.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use crate::support::{server_command, write_small_style, ServerProcess};

const UNIT: &str = include_str!("../systemd/tile-server.service");

#[test]
fn the_unit_verifies_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    // The unit names the installed binary; verify checks that it exists.
    let unit = UNIT.replace(
        "/usr/local/bin/tile-server",
        env!("CARGO_BIN_EXE_tile-server"),
    );
    let path = dir.path().join("tile-server.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (scripts/install-deps.sh installs systemd)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert_eq!(said, "", "systemd-analyze warned");
    // What docs/server.md promises about the unit.
    for line in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "RestartPreventExitStatus=2",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(UNIT.lines().any(|l| l == line), "the unit lacks {line}");
    }
}

/// The next notification, as `KEY=value` lines.
fn next(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = socket
        .recv(&mut buf)
        .expect("no notification within a minute");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn serve_notifying(dir: &Path, notify: &Path) -> ServerProcess {
    let style = write_small_style(dir);
    ServerProcess::start(
        server_command()
            .env("NOTIFY_SOCKET", notify)
            .args(["--style".as_ref(), style.as_os_str()])
            .args(["--tile-dir".as_ref(), dir.join("tiles").as_os_str()])
            .args(["--listen", "tcp:127.0.0.1:0", "--threads", "1"]),
    )
}

#[test]
fn the_server_notifies_ready_reloading_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&notify).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let server = serve_notifying(dir.path(), &notify);
    assert_eq!(next(&socket), "READY=1\nSTATUS=serving");
    server.signal("HUP");
    assert_eq!(next(&socket), "RELOADING=1\nSTATUS=reloading");
    assert_eq!(next(&socket), "READY=1\nSTATUS=serving");
    let ended = server.stop();
    assert!(ended.status.success(), "{}", ended.stderr);
    assert_eq!(
        next(&socket),
        "STOPPING=1\nSTATUS=finishing running renders"
    );
}

#[test]
fn an_abstract_notify_socket_works_too() {
    use std::os::linux::net::SocketAddrExt;
    let dir = tempfile::tempdir().unwrap();
    let name = format!("tessera-test-{}", std::process::id());
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::bind_addr(&address).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let server = serve_notifying(dir.path(), Path::new(&format!("@{name}")));
    assert_eq!(next(&socket), "READY=1\nSTATUS=serving");
    assert!(server.stop().status.success());
}
