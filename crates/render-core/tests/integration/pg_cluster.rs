//! A throwaway PostgreSQL cluster with PostGIS for the PostGIS test.
//!
//! `PgCluster::start` makes a new cluster in a temp dir (`initdb --no-sync`,
//! trust authentication), starts it listening only on a Unix socket in that
//! dir (no TCP port, so nothing to collide with), creates the `postgis`
//! extension in the `postgres` database and hands back a libpq conninfo.
//! Dropping it stops the server (`pg_ctl stop -m immediate`) and deletes
//! the dir. Run as root (CI), the server runs as the `postgres` user, since
//! PostgreSQL refuses to run as root. Every step is bounded by `timeout`.
//!
//! Nothing is skipped: without the server binaries or PostGIS (both installed
//! by `scripts/install-deps.sh`), or if the cluster does not come up, the
//! test fails and says why. `TESSERA_TEST_PG` (a conninfo) uses an existing
//! database instead; `tests/postgis.sh --keep` makes one to poke at.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct PgCluster {
    /// libpq connection string of the database to use.
    pub conninfo: String,
    /// `None` for a database named by `TESSERA_TEST_PG` (not ours to stop).
    _server: Option<Server>,
}

struct Server {
    bindir: PathBuf,
    /// `pg_ctl start -o` options (to start it again after `stop`).
    options: String,
    /// `Some("postgres")` when we are root.
    run_as: Option<&'static str>,
    dir: tempfile::TempDir,
}

/// The newest `/usr/lib/postgresql/<major>/bin` with an `initdb` (Debian's
/// layout), or `PG_BINDIR`, or `pg_config --bindir`.
fn bindir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BINDIR") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let bin = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    bin.join("initdb").exists().then_some(bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

impl Server {
    /// `timeout seconds <bindir>/tool`, as the cluster's owner, in its dir.
    fn command(&self, seconds: u32, tool: &str) -> Command {
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--", "timeout"]);
                c
            }
            None => Command::new("timeout"),
        };
        cmd.arg(seconds.to_string())
            .arg(self.bindir.join(tool))
            .current_dir(self.dir.path());
        cmd
    }

    /// `tool args...` from the bindir, as the cluster's owner, within
    /// `seconds`, in the cluster's dir; panics with its output on failure.
    fn run(&self, seconds: u32, tool: &str, args: &[&str]) -> String {
        let out = match self.command(seconds, tool).args(args).output() {
            Ok(out) => out,
            Err(e) => panic!("PostGIS test cluster: could not run {tool}: {e}"),
        };
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            panic!(
                "PostGIS test cluster: {tool} {args:?} failed ({}; exit 124 = timed out after \
                 {seconds} s):\n{text}\nserver.log:\n{log}",
                out.status
            );
        }
        text
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    fn start(&self) {
        let data = self.path("data");
        self.run(
            60,
            "pg_ctl",
            &[
                "-D",
                &data,
                "-l",
                &self.path("server.log"),
                "-w",
                "-t",
                "30",
                "-o",
                &self.options,
                "start",
            ],
        );
    }
}

impl PgCluster {
    /// A database with PostGIS: `TESSERA_TEST_PG`'s, or a new cluster's.
    pub fn start() -> PgCluster {
        if let Ok(conninfo) = std::env::var("TESSERA_TEST_PG") {
            return PgCluster {
                conninfo,
                _server: None,
            };
        }
        let Some(bindir) = bindir() else {
            panic!(
                "PostGIS test: PostgreSQL's server binaries (initdb) were not found in \
                 /usr/lib/postgresql/*/bin, PG_BINDIR or pg_config --bindir; run \
                 scripts/install-deps.sh (Debian: postgresql, postgresql-15-postgis-3)"
            );
        };
        let dir = tempfile::Builder::new()
            .prefix("tessera-pg")
            .tempdir_in("/tmp") // short: the socket path must fit in 107 bytes
            .unwrap_or_else(|e| panic!("PostGIS test cluster: temp dir: {e}"));
        let run_as = is_root().then_some("postgres");
        if let Some(user) = run_as {
            let status = Command::new("chown")
                .arg(format!("{user}:"))
                .arg(dir.path())
                .status();
            assert!(
                status.as_ref().is_ok_and(|s| s.success()),
                "PostGIS test cluster: chown {user}: {}: {status:?} (is there a `{user}` \
                 user? the postgresql package makes it)",
                dir.path().display()
            );
        }
        let mut server = Server {
            bindir,
            options: String::new(),
            run_as,
            dir,
        };
        let data = server.path("data");
        let socket_dir = server.path("");
        let socket_dir = socket_dir.trim_end_matches('/');
        server.run(
            60,
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        server.options = format!(
            "-c listen_addresses='' -k {socket_dir} -p 5432 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off"
        );
        server.start();
        server.run(
            60,
            "psql",
            &[
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                socket_dir,
                "-p",
                "5432",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                "CREATE EXTENSION postgis",
            ],
        );
        PgCluster {
            conninfo: format!("dbname=postgres host={socket_dir} port=5432 user=postgres"),
            _server: Some(server),
        }
    }
}

impl PgCluster {
    /// Stops the server (fast shutdown: open connections are cut), as a
    /// database restart begins. Panics for a `TESSERA_TEST_PG` database,
    /// which is not ours to stop.
    pub fn stop(&self) {
        let Some(server) = &self._server else {
            panic!("PostGIS test: cannot stop the TESSERA_TEST_PG database");
        };
        let data = server.path("data");
        server.run(
            60,
            "pg_ctl",
            &["-D", &data, "stop", "-m", "fast", "-w", "-t", "30"],
        );
    }

    /// Starts the server again after `stop`.
    pub fn start_again(&self) {
        let Some(server) = &self._server else {
            panic!("PostGIS test: cannot start the TESSERA_TEST_PG database");
        };
        server.start();
    }
}

/// Stops the server if it was started (also when a later step failed);
/// the TempDir then removes the cluster's files.
impl Drop for Server {
    fn drop(&mut self) {
        let data = self.path("data");
        if !Path::new(&data).join("postmaster.pid").exists() {
            return;
        }
        // Not `run`: no panic while dropping (maybe during a panic).
        let _ = self
            .command(30, "pg_ctl")
            .args(["-D", &data, "stop", "-m", "immediate", "-w", "-t", "20"])
            .output();
    }
}
