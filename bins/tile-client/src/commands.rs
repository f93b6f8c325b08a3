//! The subcommands of `tile-client`, each a function from parsed arguments
//! to an exit code.

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufWriter, IsTerminal, Write};
use std::ops::RangeInclusive;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use ipc_proto::{
    Capabilities, Delivery, Endpoint, FailureKind, MapReloadStatus, Priority, Secret, TilePayload,
};
use tile_client::{Event, RequestOptions, TileClient};
use tile_math::{tiles_covering, LngLatBbox, TileCoord, Viewport};

use crate::expire::{self, ExpirePlan};
use crate::progress::Progress;
use crate::{Cli, Command, LeftBehind, RequestArgs};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let Cli {
        server,
        secret_file,
        command,
    } = cli;
    if let Command::Tiles { bbox, zoom } = command {
        return print_tiles(bbox, zoom);
    }
    if let Command::Expire {
        input,
        map,
        min_zoom,
        max_zoom,
        touch_from,
        delete_from,
        progress_interval,
    } = command
    {
        // The options and the list are checked before connecting.
        let plan = ExpirePlan::new(
            &input,
            map,
            (min_zoom, max_zoom),
            touch_from,
            delete_from,
            Duration::from_secs_f64(progress_interval),
        );
        let opened = plan.and_then(|plan| Ok((plan.open_input()?, plan)));
        let (list, plan) = match opened {
            Ok(opened) => opened,
            Err(why) => {
                eprintln!("tile-client: {why}");
                return Ok(ExitCode::from(2));
            }
        };
        let mut client = connect(&server, secret_file.as_deref())?;
        return expire::run(&mut client, &plan, list);
    }
    let mut client = connect(&server, secret_file.as_deref())?;
    match command {
        Command::Render { tiles, request } => render(&mut client, tiles, &request),
        Command::Seed {
            bbox,
            zoom,
            window,
            chunk,
            progress_interval,
            request,
        } => {
            let plan = SeedPlan {
                bbox,
                zoom,
                window,
                chunk,
                progress_interval: Duration::from_secs_f64(progress_interval),
            };
            seed(&mut client, &plan, &request)
        }
        Command::Viewport {
            bbox,
            zoom,
            ring,
            request,
        } => viewport(&mut client, bbox, zoom, ring, &request),
        Command::Pan {
            bbox,
            zoom,
            steps,
            interval,
            left_behind,
            backlog_zoom,
            json,
            request,
        } => {
            let plan = PanPlan {
                bbox,
                zoom,
                steps,
                interval,
                left_behind,
                backlog_zoom,
                json,
            };
            pan(&mut client, &plan, &request)
        }
        Command::Stats => {
            for (name, value) in client.stats()? {
                println!("{name} {value}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Maps => {
            for name in client.list_maps()? {
                println!("{name}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Reload => reload(&mut client),
        Command::Tiles { .. } | Command::Expire { .. } => unreachable!("handled above"),
    }
}

/// Connects, with the shared secret when a file is given.
fn connect(server: &Endpoint, secret_file: Option<&Path>) -> anyhow::Result<TileClient> {
    // Both errors name the file or the server already.
    let secret = match secret_file {
        Some(path) => Some(Secret::from_file(path)?),
        None => None,
    };
    Ok(TileClient::connect(server, secret.as_ref(), "tile-client")?)
}

/// `reload`: one line per map, then the settings that wait for a restart.
fn reload(client: &mut TileClient) -> anyhow::Result<ExitCode> {
    if !client.welcome().capabilities.contains(Capabilities::RELOAD) {
        anyhow::bail!(
            "this server cannot reload (it does not announce Reload); restart it instead"
        );
    }
    let answer = client.reload()?;
    if !answer.error.is_empty() {
        eprintln!("tile-client: {}", answer.error);
        return Ok(ExitCode::from(1));
    }
    let mut failed = false;
    for m in &answer.maps {
        if m.status == MapReloadStatus::Failed {
            failed = true;
            println!(
                "{}: failed, the old style still serves: {}",
                m.map, m.detail
            );
        } else {
            println!("{}: {}", m.map, m.status.name());
        }
    }
    if !answer.restart_needed.is_empty() {
        println!(
            "changed, but only at a restart: {}",
            answer.restart_needed.join(", ")
        );
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn options(args: &RequestArgs, default_priority: Priority) -> RequestOptions {
    RequestOptions {
        map: args.map.clone(),
        priority: args.priority.map_or(default_priority, Priority::from),
        delivery: if args.inline {
            Delivery::InlinePng
        } else {
            Delivery::StorePath
        },
        force: args.force,
        deadline_ms: None,
    }
}

/// Tallies final answers.
#[derive(Debug, Default)]
struct Tally {
    done: u64,
    cached: u64,
    failed: u64,
    cancelled: u64,
    rejected: u64,
}

impl Tally {
    fn record(&mut self, event: &Event) {
        match event {
            Event::Done(d) => {
                self.done += 1;
                if d.cached {
                    self.cached += 1;
                }
            }
            Event::Failed(_) => self.failed += 1,
            Event::Cancelled { .. } => self.cancelled += 1,
            Event::Rejected(_) => self.rejected += 1,
            Event::BatchDone(_) => {}
        }
    }

    fn exit_code(&self) -> ExitCode {
        if self.failed + self.cancelled + self.rejected == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    }
}

fn describe(event: &Event) -> Option<String> {
    Some(match event {
        Event::Done(d) => {
            let what = match &d.payload {
                TilePayload::Path(p) => p.clone(),
                TilePayload::Png(bytes) => format!("{} bytes of PNG", bytes.len()),
            };
            let how = if d.cached {
                "from store".to_owned()
            } else {
                format!("rendered, {} ms/tile", d.render_ms)
            };
            format!("{} done {what} ({how})", d.tile)
        }
        Event::Failed(f) => format!("{} failed ({:?}): {}", f.tile, f.kind, f.message),
        Event::Cancelled { tile, .. } => format!("{tile} cancelled"),
        Event::Rejected(r) => format!(
            "request {} refused ({:?}): {}",
            r.request_id, r.reason, r.message
        ),
        Event::BatchDone(_) => return None,
    })
}

/// Reads events until every request in `open` has ended, printing each.
fn stream_until_done(
    client: &mut TileClient,
    mut open: Vec<u64>,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    while !open.is_empty() {
        let event = client
            .next_event()?
            .ok_or_else(|| anyhow::anyhow!("the server closed the connection"))?;
        tally.record(&event);
        if let Some(line) = describe(&event) {
            println!("{line}");
        }
        if event.ends_request() {
            open.retain(|id| *id != event.request_id());
        }
    }
    Ok(())
}

fn render(
    client: &mut TileClient,
    tiles: Vec<TileCoord>,
    args: &RequestArgs,
) -> anyhow::Result<ExitCode> {
    let id = client.request_tiles(tiles, &options(args, Priority::Explicit))?;
    let mut tally = Tally::default();
    stream_until_done(client, vec![id], &mut tally)?;
    Ok(tally.exit_code())
}

fn viewport(
    client: &mut TileClient,
    bbox: LngLatBbox,
    zoom: u8,
    ring: u32,
    args: &RequestArgs,
) -> anyhow::Result<ExitCode> {
    let view = Viewport::from_bbox(bbox, zoom)?;
    client.set_viewport(zoom, bbox)?;
    let on_screen: Vec<TileCoord> = view.tiles_by_distance(0);
    let around: Vec<TileCoord> = view
        .tiles_by_distance(ring)
        .into_iter()
        .filter(|t| view.ring_of(*t) != Some(0))
        .collect();
    let mut open = vec![client.request_tiles(on_screen, &options(args, Priority::Viewport))?];
    if !around.is_empty() {
        open.push(client.request_tiles(around, &options(args, Priority::Neighbour))?);
    }
    let mut tally = Tally::default();
    stream_until_done(client, open, &mut tally)?;
    Ok(tally.exit_code())
}

/// The drag `tile-client pan` plays.
pub struct PanPlan {
    bbox: LngLatBbox,
    zoom: u8,
    steps: u32,
    interval: f64,
    left_behind: LeftBehind,
    backlog_zoom: Option<u8>,
    json: bool,
}

fn pan(client: &mut TileClient, plan: &PanPlan, args: &RequestArgs) -> anyhow::Result<ExitCode> {
    let PanPlan {
        bbox,
        zoom,
        steps,
        interval,
        left_behind,
        backlog_zoom,
        json,
    } = *plan;
    // The backlog scenario: a whole zoom of bulk work queued first.
    let backlog = match backlog_zoom {
        Some(z) => {
            let world = LngLatBbox::new(-180.0, -85.0511, 180.0, 85.0511);
            let bulk = options(args, Priority::Bulk);
            let bulk = RequestOptions {
                priority: Priority::Bulk,
                ..bulk
            };
            let total = tiles_covering(world, z..=z)?.total();
            Some((client.request_bbox(world, z..=z, &bulk)?, total))
        }
        None => None,
    };
    let width = if bbox.crosses_antimeridian() {
        bbox.east + 360.0 - bbox.west
    } else {
        bbox.east - bbox.west
    };
    let wrap = |lng: f64| (lng + 180.0).rem_euclid(360.0) - 180.0;
    let mut screens = Vec::new();
    let mut last_move = Instant::now();
    for step in 0..=steps {
        if step > 0 {
            std::thread::sleep(Duration::from_secs_f64(interval.max(0.0)));
        }
        let shift = width * f64::from(step);
        let screen = LngLatBbox::new(
            wrap(bbox.west + shift),
            bbox.south,
            wrap(bbox.east + shift),
            bbox.north,
        );
        let view = Viewport::from_bbox(screen, zoom)?;
        client.set_viewport(zoom, screen)?;
        if step > 0 && matches!(left_behind, LeftBehind::Cancel) {
            client.cancel_outside_viewport(0)?;
        }
        let tiles = view.tiles_by_distance(0);
        let count = tiles.len();
        last_move = Instant::now();
        let id = client.request_tiles(tiles, &options(args, Priority::Viewport))?;
        screens.push((id, count));
    }
    let last_id = screens.last().map_or(0, |s| s.0);
    let backlog_id = backlog.map(|b| b.0);
    let mut tallies: HashMap<u64, Tally> = HashMap::new();
    let mut open: Vec<u64> = screens.iter().map(|s| s.0).collect();
    let mut last_screen_s = None;
    // The backlog may end during the drag (cancelled by
    // `--left-behind cancel`, which drops work at other zooms too).
    let mut backlog_open = backlog.is_some();
    while !open.is_empty() {
        let event = client
            .next_event()?
            .ok_or_else(|| anyhow::anyhow!("the server closed the connection"))?;
        let id = event.request_id();
        tallies.entry(id).or_default().record(&event);
        if event.ends_request() {
            open.retain(|open_id| *open_id != id);
            if id == last_id {
                last_screen_s = Some(last_move.elapsed().as_secs_f64());
            }
            if Some(id) == backlog_id {
                backlog_open = false;
            }
        }
    }
    // The backlog is not waited for: cancel what is left and count.
    let mut backlog_report = String::new();
    if let Some((id, total)) = backlog {
        client.cancel(vec![id])?;
        while backlog_open {
            let event = client
                .next_event()?
                .ok_or_else(|| anyhow::anyhow!("the server closed the connection"))?;
            if event.request_id() != id {
                continue;
            }
            if let Event::Rejected(r) = &event {
                anyhow::bail!("the backlog was refused ({:?}): {}", r.reason, r.message);
            }
            tallies.entry(id).or_default().record(&event);
            backlog_open = !event.ends_request();
        }
        let t = tallies.remove(&id).unwrap_or_default();
        backlog_report = format!(
            ",\"backlog_tiles\":{total},\"backlog_rendered\":{},\"backlog_refused\":{},\"backlog_cancelled\":{}",
            t.done, t.failed, t.cancelled
        );
    }
    let last = tallies.remove(&last_id).unwrap_or_default();
    let earlier: Vec<&Tally> = tallies
        .iter()
        .filter(|(id, _)| Some(**id) != backlog_id)
        .map(|(_, t)| t)
        .collect();
    let earlier_cancelled: u64 = earlier.iter().map(|t| t.cancelled).sum();
    let earlier_done: u64 = earlier.iter().map(|t| t.done).sum();
    let seconds = last_screen_s.unwrap_or(f64::NAN);
    let screen_tiles = screens.last().map_or(0, |s| s.1);
    if json {
        println!(
            "{{\"zoom\":{zoom},\"steps\":{steps},\"interval_s\":{interval},\"screen_tiles\":{screen_tiles},\"last_screen_s\":{seconds:.4},\"last_screen_done\":{},\"earlier_done\":{earlier_done},\"earlier_cancelled\":{earlier_cancelled}{backlog_report}}}",
            last.done
        );
    } else {
        println!(
            "last screen ({screen_tiles} tiles) complete {seconds:.3} s after the last move; earlier screens: {earlier_done} tiles done, {earlier_cancelled} cancelled{}",
            backlog_report.replace(",\"", "; ").replace("\":", " ")
        );
    }
    Ok(last.exit_code())
}

/// Seeding state: what is outstanding and what waits for a retry.
struct Seeder {
    /// Tiles of each open request, to retry them if the request is refused.
    open: HashMap<u64, Vec<TileCoord>>,
    outstanding: usize,
    /// Tiles refused as busy, with when to try again.
    retries: VecDeque<(Instant, TileCoord)>,
    backoff: Duration,
    tally: Tally,
}

/// What `tile-client seed` renders, and how.
pub struct SeedPlan {
    bbox: LngLatBbox,
    zoom: RangeInclusive<u8>,
    window: usize,
    chunk: usize,
    /// Off a terminal, a progress line this often.
    progress_interval: Duration,
}

fn seed(client: &mut TileClient, plan: &SeedPlan, args: &RequestArgs) -> anyhow::Result<ExitCode> {
    let (window, chunk) = (plan.window, plan.chunk);
    let mut cover = tiles_covering(plan.bbox, plan.zoom.clone())?;
    let total = cover.total();
    let options = options(args, Priority::Bulk);
    let (window, chunk) = (window.max(1), chunk.clamp(1, window.max(1)));
    let mut state = Seeder {
        open: HashMap::new(),
        outstanding: 0,
        retries: VecDeque::new(),
        backoff: Duration::from_millis(100),
        tally: Tally::default(),
    };
    let started = Instant::now();
    let mut progress = Progress::new(
        total,
        started,
        plan.progress_interval,
        io::stderr().is_terminal(),
    );
    let mut exhausted = false;
    loop {
        // Top up the window: retries that are due first, then new tiles.
        while state.outstanding + chunk <= window || (state.outstanding < window && exhausted) {
            let now = Instant::now();
            let mut batch = Vec::with_capacity(chunk);
            while batch.len() < chunk && state.retries.front().is_some_and(|(due, _)| *due <= now) {
                if let Some((_, tile)) = state.retries.pop_front() {
                    batch.push(tile);
                }
            }
            while batch.len() < chunk && !exhausted {
                match cover.next() {
                    Some(tile) => batch.push(tile),
                    None => exhausted = true,
                }
            }
            if batch.is_empty() {
                break;
            }
            state.outstanding += batch.len();
            let id = client.request_tiles(batch.clone(), &options)?;
            state.open.insert(id, batch);
        }
        if state.outstanding == 0 {
            match state.retries.front() {
                None if exhausted => break,
                // Everything left is waiting for a retry: wait for the first.
                Some((due, _)) => {
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    continue;
                }
                None => continue,
            }
        }
        let event = client
            .next_event()?
            .ok_or_else(|| anyhow::anyhow!("the server closed the connection"))?;
        if handle_seed_event(&mut state, event) {
            let answered = state.tally.done + state.tally.failed + state.tally.cancelled;
            if let Some(text) = progress.update(answered, Instant::now()) {
                eprint!("{text}");
            }
        }
    }
    eprint!("{}", progress.finish());
    let seconds = started.elapsed().as_secs_f64();
    let t = &state.tally;
    println!(
        "seeded {total} tiles in {seconds:.2} s: {:.1} tiles/s ({} done, {} from the store, {} failed, {} cancelled)",
        t.done as f64 / seconds.max(1e-9),
        t.done,
        t.cached,
        t.failed,
        t.cancelled
    );
    Ok(t.exit_code())
}

/// Takes one event into the seed's state; `true` when it answered a tile
/// for good (done, failed, cancelled).
fn handle_seed_event(state: &mut Seeder, event: Event) -> bool {
    match &event {
        Event::Failed(f) if f.kind == FailureKind::Busy => {
            // Not a final failure for the seed: back off and ask again.
            state.outstanding -= 1;
            state
                .retries
                .push_back((Instant::now() + state.backoff, f.tile));
            state.backoff = (state.backoff * 2).min(Duration::from_secs(5));
            return false;
        }
        Event::Rejected(r) => {
            if let Some(tiles) = state.open.remove(&r.request_id) {
                state.outstanding -= tiles.len();
                if r.reason == ipc_proto::RejectReason::QueueFull {
                    let wait = Duration::from_millis(u64::from(r.retry_after_ms.unwrap_or(500)));
                    let due = Instant::now() + wait;
                    state.retries.extend(tiles.into_iter().map(|t| (due, t)));
                    return false;
                }
                state.tally.failed += tiles.len() as u64;
                eprintln!(
                    "tile-client: request refused ({:?}): {}",
                    r.reason, r.message
                );
                return true;
            }
            return false;
        }
        Event::BatchDone(b) => {
            state.open.remove(&b.request_id);
            return false;
        }
        Event::Done(_) => state.backoff = Duration::from_millis(100),
        Event::Failed(f) => eprintln!(
            "tile-client: {} failed ({:?}): {}",
            f.tile, f.kind, f.message
        ),
        Event::Cancelled { .. } => {}
    }
    state.outstanding -= 1;
    state.tally.record(&event);
    true
}

fn print_tiles(bbox: LngLatBbox, zoom: RangeInclusive<u8>) -> anyhow::Result<ExitCode> {
    let cover = match tiles_covering(bbox, zoom) {
        Ok(cover) => cover,
        Err(err) => {
            eprintln!("tile-client: {err}");
            return Ok(ExitCode::from(2));
        }
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for tile in cover {
        if let Err(err) = writeln!(out, "{tile}") {
            return finish_output(err);
        }
    }
    if let Err(err) = out.flush() {
        return finish_output(err);
    }
    Ok(ExitCode::SUCCESS)
}

/// A reader that stops early (`| head`) is not an error; anything else is.
fn finish_output(err: io::Error) -> anyhow::Result<ExitCode> {
    if err.kind() == io::ErrorKind::BrokenPipe {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(err).context("writing to standard output")
    }
}
