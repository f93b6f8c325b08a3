//! systemd's service notifications (`Type=notify`): `READY=1` once every
//! map has loaded and every listener is bound, `RELOADING=1` while a SIGHUP
//! reload runs, `STOPPING=1` when shutdown begins, each with a `STATUS=`
//! line for `systemctl status`.
//!
//! Only when systemd asked for them (`NOTIFY_SOCKET` is set); a failure to
//! notify is logged at debug level and changes nothing else: the server
//! works the same under any supervisor.

use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends one notification (`KEY=value` lines), if systemd listens.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&path, state) {
        tracing::debug!("systemd notification {state:?} not sent: {e}");
    }
}

fn send(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    let bytes = path.as_encoded_bytes();
    // An address starting with '@' is in the abstract namespace.
    let address = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
        None => SocketAddr::from_pathname(path)?,
    };
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(state.as_bytes(), &address)?;
    Ok(())
}
