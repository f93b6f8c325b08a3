//! Reloading by itself (`server.watch_interval_ms` > 0): every interval,
//! one look at the configuration file's time and every served map's files
//! (their fingerprints); when a look differs from the last reload's and
//! the next look is the same (the change has settled: no half-written
//! file), a reload, as SIGHUP does.
//!
//! Comparing with the last look, not with what is loaded, means a style
//! that does not load is tried once per change, not every interval: the
//! next edit (the fix) is the next reload. Polling, not inotify: styles
//! include files and images from many folders, and a few hundred `stat`
//! calls every couple of seconds cost nothing next to rendering.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use render_service::ServiceHandle;

/// Starts the watching thread; it ends when the service shuts down.
pub fn spawn(
    service: ServiceHandle,
    config_file: Option<PathBuf>,
    interval: Duration,
) -> std::io::Result<()> {
    let look = move |service: &ServiceHandle| {
        let config = config_file
            .as_ref()
            .and_then(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok());
        (config, service.inputs_now())
    };
    std::thread::Builder::new()
        .name("watch".into())
        .spawn(move || {
            let mut last: (Option<SystemTime>, Vec<String>) = look(&service);
            let mut changing = None;
            loop {
                std::thread::sleep(interval);
                if service.is_shutting_down() {
                    return;
                }
                let now = look(&service);
                if now == last {
                    changing = None;
                    continue;
                }
                // A change seen for the first time may be a file half
                // written: wait one interval for it to settle.
                if changing.as_ref() != Some(&now) {
                    changing = Some(now);
                    continue;
                }
                changing = None;
                tracing::info!("a watched file changed: reloading");
                if let Err(e) = service.reload() {
                    tracing::error!("{e}");
                }
                // What the reload saw: a failed style waits for its next edit.
                last = look(&service);
            }
        })?;
    Ok(())
}
