//! tessera in renderd's place, with Debian's own mod_tile 0.6.1 tools
//! (issue #12, point 5): Apache 2 with `libapache2-mod-tile` serving the
//! `.meta` files tessera writes and having missing tiles rendered through
//! tessera's renderd socket; `render_list` seeding through tessera;
//! `render_expired` touching, deleting and re-rendering. Each test starts
//! its own servers on a private folder, a free port and its own sockets,
//! and stops them. `scripts/install-deps.sh` installs the tools.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use ipc_proto::{RenderdCommand, RenderdVersion};
use tile_math::{tiles_covering, LngLatBbox, TileCoord};

use crate::renderd::{meta_path, request, tessera_tiles, tile_from_meta, RenderdClient};
use crate::support::{server_command, t, ServerProcess};

const APACHE: &str = "/usr/sbin/apache2";
const MOD_TILE: &str = "/usr/lib/apache2/modules/mod_tile.so";

/// Fails (never skips) when a tool the test drives is missing.
fn need(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: run scripts/install-deps.sh (it installs Debian's {package})"
    );
}

/// A folder the web server's user (www-data) can read: Apache's children
/// run as that user and read the `.meta` files and the socket.
fn shared_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// tile-server serving the demo map as `demo` in the mod_tile layout under
/// `dir/tiles`, renderd's protocol on `dir/renderd.sock` (mode 0666, as
/// mod_tile needs), the framed protocol on `dir/tessera.sock` and HTTP on
/// a free loopback port.
fn serve(dir: &Path) -> ServerProcess {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/demo/demo.xml");
    let config = dir.join("tessera.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = [\"unix:{}\"]\nrenderd_listen = [\"unix:{}\"]\n\
             renderd_socket_mode = \"0666\"\n[http]\nlisten = [\"127.0.0.1:0\"]\n\
             [render]\nthreads = 2\n\
             [store]\ndir = \"{}\"\nlayout = \"mod_tile\"\n\
             [[map]]\nname = \"demo\"\nstyle = \"{}\"\n",
            dir.join("tessera.sock").display(),
            dir.join("renderd.sock").display(),
            dir.join("tiles").display(),
            demo.display()
        ),
    )
    .unwrap();
    ServerProcess::start(server_command().args(["--config".as_ref(), config.as_os_str()]))
}

/// Apache 2 with Debian's mod_tile, on a free loopback port, configured
/// from a renderd.conf as a mod_tile deployment is: tiles of `demo` under
/// `/tiles/`, from tessera's tile directory and renderd socket.
struct Apache {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Apache {
    fn start(dir: &Path) -> Apache {
        need(APACHE, "apache2");
        need(MOD_TILE, "libapache2-mod-tile");
        let root = dir.join("apache");
        std::fs::create_dir_all(root.join("htdocs")).unwrap();
        let renderd_conf = root.join("renderd.conf");
        let tiles = dir.join("tiles");
        let socket = dir.join("renderd.sock");
        std::fs::write(
            &renderd_conf,
            format!(
                "[renderd]\nsocketname={}\ntile_dir={}\n\n\
                 [demo]\nURI=/tiles/\nXML=/unused/by/mod_tile.xml\nHOST=localhost\n\
                 TILEDIR={}\nMAXZOOM=20\n",
                socket.display(),
                tiles.display(),
                tiles.display()
            ),
        )
        .unwrap();
        let port = free_port();
        let log = root.join("error.log");
        let modules = "/usr/lib/apache2/modules";
        let conf = root.join("apache.conf");
        std::fs::write(
            &conf,
            format!(
                "ServerRoot {root}\nServerName localhost\nListen 127.0.0.1:{port}\n\
                 PidFile {root}/apache.pid\nErrorLog {log}\nLogLevel warn tile:info\n\
                 User www-data\nGroup www-data\n\
                 LoadModule mpm_prefork_module {modules}/mod_mpm_prefork.so\n\
                 StartServers 1\nMinSpareServers 1\nMaxSpareServers 2\n\
                 LoadModule authz_core_module {modules}/mod_authz_core.so\n\
                 LoadModule tile_module {MOD_TILE}\n\
                 DocumentRoot {root}/htdocs\n\
                 LoadTileConfigFile {renderd_conf}\n\
                 ModTileRenderdSocketName {socket}\nModTileTileDir {tiles}\n\
                 ModTileRequestTimeout 60\nModTileMissingRequestTimeout 60\n\
                 ModTileMaxLoadOld 1000\nModTileMaxLoadMissing 1000\n",
                root = root.display(),
                log = log.display(),
                renderd_conf = renderd_conf.display(),
                socket = socket.display(),
                tiles = tiles.display(),
            ),
        )
        .unwrap();
        // A process group of its own: Apache signals its whole group when
        // it stops, which would otherwise be the test's.
        let mut child = Command::new(APACHE)
            .process_group(0)
            .args(["-f".as_ref(), conf.as_os_str()])
            .arg("-DFOREGROUND")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                let mut stderr = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
                panic!(
                    "apache2 exited ({status}): {stderr}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < until, "apache2 did not listen within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Apache { child, port, log }
    }

    fn get(&self, path: &str) -> (u32, String, Vec<u8>) {
        http_get(&format!("127.0.0.1:{}", self.port), path)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// `GET path` over HTTP/1.0 from `host:port`: the status, the headers and
/// the body.
fn http_get(address: &str, path: &str) -> (u32, String, Vec<u8>) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, head, response[split + 4..].to_vec())
}

impl Drop for Apache {
    fn drop(&mut self) {
        // SIGTERM to the parent stops its children too; it removes its
        // PID file and mod_tile's shared-memory files as it ends.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let until = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn apache_mod_tile_serves_what_tessera_wrote_and_has_missing_tiles_rendered_through_it() {
    let dir = shared_tempdir();
    let server = serve(dir.path());
    let apache = Apache::start(dir.path());
    // A tile tessera rendered (through its own protocol) and stored in a
    // .meta file: Apache serves the very bytes tessera rendered.
    let rendered = t(3, 4, 2);
    let (png, cached) = tessera_tiles(dir.path(), vec![rendered])
        .remove(&rendered)
        .unwrap();
    assert!(!cached);
    let (status, head, body) = apache.get("/tiles/3/4/2.png");
    assert_eq!(status, 200, "{head}\n{}", apache.log());
    assert!(head.contains("Content-Type: image/png"), "{head}");
    assert!(
        body == png,
        "Apache served other bytes than tessera rendered"
    );
    // A tile nobody rendered: mod_tile asks tessera through the renderd
    // socket (RenderPrio), waits for Done and serves it from the new file.
    let missing = t(6, 36, 18);
    let meta = meta_path(&dir.path().join("tiles"), "demo", missing);
    assert!(!meta.exists());
    let (status, head, body) = apache.get("/tiles/6/36/18.png");
    assert_eq!(status, 200, "{head}\n{}", apache.log());
    assert!(body.starts_with(b"\x89PNG"));
    assert!(body == tile_from_meta(&meta, missing));
    let (from_tessera, cached) = tessera_tiles(dir.path(), vec![missing])
        .remove(&missing)
        .unwrap();
    assert!(
        cached && from_tessera == body,
        "tessera reads the same tile back"
    );
    assert!(
        apache
            .log()
            .contains("Requesting style(demo) z(6) x(36) y(18) from renderer"),
        "{}",
        apache.log()
    );
    drop(apache);
    let ended = server.stop();
    assert!(ended.status.success(), "{}", ended.stderr);
}

/// `render_list` with the arguments given, to its end; its stdout.
fn render_list(dir: &Path, args: &[&str]) -> String {
    need("/usr/bin/render_list", "renderd");
    let socket = dir.join("renderd.sock");
    let tiles = dir.join("tiles");
    let out = Command::new("render_list")
        .args(["-s".as_ref(), socket.as_os_str()])
        .args(["-t".as_ref(), tiles.as_os_str()])
        .args(["-m", "demo", "-l", "1000"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "render_list {args:?}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("rendering failed"), "{stdout}");
    stdout
}

/// `render_expired` with the arguments given, fed `expired` (z/x/y lines).
fn render_expired(dir: &Path, expired: &str, args: &[&str]) -> String {
    need("/usr/bin/render_expired", "renderd");
    let socket = dir.join("renderd.sock");
    let tiles = dir.join("tiles");
    let mut child = Command::new("render_expired")
        .args(["-s".as_ref(), socket.as_os_str()])
        .args(["-t".as_ref(), tiles.as_os_str()])
        .args(["-m", "demo", "-n", "1"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(expired.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "render_expired {args:?}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("rendering failed"), "{stdout}");
    stdout
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

fn world(zooms: std::ops::RangeInclusive<u8>) -> Vec<TileCoord> {
    tiles_covering(LngLatBbox::new(-180.0, -85.0511, 180.0, 85.0511), zooms)
        .unwrap()
        .collect()
}

#[test]
fn render_list_seeds_through_tessera_and_tessera_reads_the_meta_files_back() {
    let dir = shared_tempdir();
    let server = serve(dir.path());
    let out = render_list(dir.path(), &["-a", "-z", "0", "-Z", "5", "-n", "2"]);
    // 1 + 1 + 1 + 1 + 4 + 16 metatiles: one request, one file each.
    assert!(
        out.contains("Meta tiles rendered: Rendered 24 tiles"),
        "{out}"
    );
    let tiles = world(0..=5);
    assert_eq!(tiles.len(), 1365);
    let tile_dir = dir.path().join("tiles");
    let mut metas: Vec<PathBuf> = tiles
        .iter()
        .map(|tile| meta_path(&tile_dir, "demo", *tile))
        .collect();
    metas.sort();
    metas.dedup();
    assert_eq!(metas.len(), 24);
    // tessera's own lookups read every tile back from those files, as
    // stored (nothing rendered again), byte for byte.
    let from_tessera = tessera_tiles(dir.path(), tiles.clone());
    for tile in &tiles {
        let png = tile_from_meta(&meta_path(&tile_dir, "demo", *tile), *tile);
        assert_eq!(from_tessera[tile], (png, true), "{tile}");
    }
    // render_list finds them current (planet-import-complete is not newer)
    // and asks for nothing; with -f it asks for all again.
    let before = modified(&metas[23]);
    let out = render_list(dir.path(), &["-a", "-z", "0", "-Z", "5"]);
    assert!(
        out.contains("Meta tiles rendered: Rendered 0 tiles"),
        "{out}"
    );
    assert_eq!(modified(&metas[23]), before);
    let out = render_list(dir.path(), &["-a", "-f", "-z", "5", "-Z", "5"]);
    assert!(
        out.contains("Meta tiles rendered: Rendered 16 tiles"),
        "{out}"
    );
    assert!(modified(&metas[23]) > before);
    let ended = server.stop();
    assert!(ended.status.success(), "{}", ended.stderr);
}

#[test]
fn render_expired_touches_deletes_and_rerenders_meta_files() {
    let dir = shared_tempdir();
    let server = serve(dir.path());
    render_list(dir.path(), &["-a", "-z", "0", "-Z", "4", "-n", "2"]);
    let tile_dir = dir.path().join("tiles");
    // render_expired works from zoom 3 (below it, mod_tile's whole world
    // is one metatile per zoom and it leaves them alone).
    let (z4_tile, z3_tile) = (t(4, 9, 5), t(3, 4, 2));
    let z4 = meta_path(&tile_dir, "demo", z4_tile);
    let z3 = meta_path(&tile_dir, "demo", z3_tile);
    // Touch from zoom 4: the file is marked expired as renderd's store
    // does (its time set back 20 years), and tessera counts it stale.
    let out = render_expired(dir.path(), "4/9/5\n", &["-z", "4", "-Z", "4", "-T", "4"]);
    assert!(out.contains("Total meta tiles touched: 1"), "{out}");
    let nineteen_years = Duration::from_secs(19 * 365 * 24 * 3600);
    assert!(modified(&z4) < SystemTime::now() - nineteen_years);
    let again = tessera_tiles(dir.path(), vec![z4_tile]);
    assert!(!again[&z4_tile].1, "a touched tile is rendered again");
    assert!(modified(&z4) > SystemTime::now() - Duration::from_secs(3600));
    // The expired z4 tile expanded up to zoom 3: z4 touched, z3 rendered
    // again through tessera's renderd socket.
    let z3_before = modified(&z3);
    let out = render_expired(dir.path(), "4/9/5\n", &["-z", "3", "-Z", "4", "-T", "4"]);
    assert!(
        out.contains("Meta tiles rendered: Rendered 1 tiles"),
        "{out}"
    );
    assert!(out.contains("Total meta tiles touched: 1"), "{out}");
    assert!(modified(&z3) > z3_before, "z3 rendered again");
    tile_from_meta(&z3, z3_tile);
    // Delete from zoom 4: the file is gone; asked again, tessera renders
    // it anew.
    let out = render_expired(dir.path(), "4/9/5\n", &["-z", "4", "-Z", "4", "-d", "4"]);
    assert!(out.contains("Total meta tiles deleted: 1"), "{out}");
    assert!(!z4.exists());
    let mut renderd = RenderdClient::connect(&dir.path().join("renderd.sock"));
    let asked = request(RenderdVersion::V2, RenderdCommand::Render, z4_tile, "demo");
    renderd.send(&asked);
    assert_eq!(
        renderd.answer().unwrap().command(),
        Some(RenderdCommand::Done)
    );
    tile_from_meta(&z4, z4_tile);
    let ended = server.stop();
    assert!(ended.status.success(), "{}", ended.stderr);
}

#[test]
fn tesseras_own_http_front_serves_tiles_out_of_meta_files() {
    let dir = shared_tempdir();
    let server = serve(dir.path());
    let address = server
        .http
        .clone()
        .expect("serves HTTP")
        .trim_start_matches("http://")
        .to_owned();
    let tile = t(5, 17, 9);
    let meta = meta_path(&dir.path().join("tiles"), "demo", tile);
    // Rendered on demand, then from the .meta file: the tile's own bytes
    // both times, never the whole metatile file.
    for round in ["rendered", "stored"] {
        let (status, head, body) = http_get(&address, "/demo/5/17/9.png");
        assert_eq!(status, 200, "{round}: {head}");
        assert!(body == tile_from_meta(&meta, tile), "{round}");
    }
    let ended = server.stop();
    assert!(ended.status.success(), "{}", ended.stderr);
}
