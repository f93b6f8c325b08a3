//! The render-node role: a service with warm renderers and no listeners,
//! fed by the cluster's engine (`render_service::cluster`). `--role render`
//! runs only this; `--role both` with an engine runs it beside the front.

use render_service::{ClusterSettings, Reloader, RenderNode, Role, TileService, ValidConfig};
use signal_hook::consts::SIGHUP;
use signal_hook::iterator::Signals;

use crate::{systemd, Stop};

/// A render node and the service that draws for it.
pub(crate) struct RenderPart {
    service: TileService,
    node: RenderNode,
}

impl RenderPart {
    /// Stops claiming, reports the jobs in hand, then stops the service.
    pub(crate) fn shutdown(self) {
        self.node.shutdown();
        self.service.shutdown();
    }
}

/// Loads the maps and starts drawing the engine's jobs.
pub(crate) fn start_render_node(
    config: &ValidConfig,
    cluster: &ClusterSettings,
    reload: Option<render_service::ConfigSource>,
) -> Result<RenderPart, Stop> {
    // The service itself draws locally: the front side is the other role.
    let mut own = config.clone();
    own.cluster = Some(ClusterSettings {
        role: Role::Render,
        ..cluster.clone()
    });
    let service = TileService::start(&own).map_err(|e| Stop {
        status: 2,
        message: ipc_proto::say_once(&e),
    })?;
    if let Some(reload) = reload {
        service
            .handle()
            .set_reloader(Reloader::new(own.clone(), reload));
    }
    let node = RenderNode::start(service.handle(), cluster, own.threads).map_err(|e| Stop {
        status: 1,
        message: ipc_proto::say_once(&e),
    })?;
    for map in service.handle().maps().iter() {
        println!(
            "tile-server: render node {} draws map {:?} (style version {}) into {}",
            node.id(),
            map.name,
            map.style_version,
            map.store.root().display()
        );
    }
    Ok(RenderPart { service, node })
}

/// `--role render`: draws until SIGINT or SIGTERM; SIGHUP reloads the
/// styles (the node then claims the jobs of the new versions).
pub(crate) fn run_render_node(
    config: &ValidConfig,
    cluster: &ClusterSettings,
    reload: render_service::ConfigSource,
    signals: &mut Signals,
) -> Result<(), Stop> {
    let part = start_render_node(config, cluster, Some(reload))?;
    tracing::info!(engine = %cluster.url, "ready");
    println!("tile-server: render node of {}", cluster.url);
    println!("tile-server: ready");
    systemd::notify("READY=1\nSTATUS=rendering");
    for signal in signals.forever() {
        if signal == SIGHUP {
            tracing::info!("SIGHUP: reloading the configuration and the styles");
            if let Err(e) = part.service.handle().reload() {
                tracing::error!("{e}");
            }
            continue;
        }
        println!("tile-server: finishing the jobs in hand, then stopping");
        systemd::notify("STOPPING=1\nSTATUS=finishing the jobs in hand");
        break;
    }
    part.shutdown();
    println!("tile-server: stopped");
    Ok(())
}
