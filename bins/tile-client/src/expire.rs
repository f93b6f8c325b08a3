//! `tile-client expire`: an osm2pgsql expire list sent to the server, as
//! renderd's `render_expired` does it.
//!
//! Contract:
//! - Input: one `z/x/y` tile per line, at any zoom (osm2pgsql `-e`
//!   output), from a file or standard input. Blank lines are skipped. A
//!   line that is not a tile (not three whole numbers separated by `/`, a
//!   tile outside its zoom, not UTF-8, longer than [`MAX_LINE`] bytes) is
//!   reported on stderr with its number and content (the first
//!   [`SHOWN_BAD_LINES`]; the rest are counted), skipped, and makes the
//!   exit status 1 once everything else is done: `render_expired` skips
//!   such lines too, but silently; a corrupt list should not pass
//!   unnoticed in a cron job, nor stop the expiry of the good lines.
//! - Expansion, for every zoom of `--min-zoom..=--max-zoom`: a line's
//!   ancestor at lower zooms, and **all** its descendants at higher zooms
//!   (`render_expired` takes only the north-west one, which is the whole
//!   set when the list's zoom is `--max-zoom` − 3, as
//!   `openstreetmap-tiles-update-expire` runs it, and misses the rest
//!   otherwise). Each is sent as its 8×8 block (renderd's metatile; the
//!   server maps blocks onto its own metatile size).
//! - What the server does with each stored metatile (delete, mark stale,
//!   mark stale and queue a re-render at `dirty` priority) is decided by
//!   `--delete-from` and `--touch-from` as in `render_expired`; the client
//!   never builds a store path, so it works against a remote server too.
//! - Bounded memory, whatever the list's length: lines are read one at a
//!   time (at most [`MAX_LINE`] bytes kept), expanded lazily, and blocks
//!   already sent are remembered exactly up to zoom [`EXACT_MAX_ZOOM`]
//!   (one bit per block: at most 10.7 MiB, of which only the pages where
//!   the list has tiles are ever touched) and, deeper, in a window of the
//!   latest [`RECENT_BLOCKS`] (forgotten when full: a block sent twice is
//!   acted on twice, which is harmless). Batches of at most
//!   [`ipc_proto::MAX_EXPIRE_TILES`] blocks go out with at most
//!   [`WINDOW`] unanswered.
//! - Output: a summary on stdout (metatiles deleted, marked stale, queued
//!   for a re-render, not in the store, failed), and progress on stderr as
//!   `seed` prints it. Exit status 0 when every line was a tile and the
//!   server acted on every metatile, 1 when a line was bad, a metatile
//!   failed or the server refused, 2 for bad usage.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ipc_proto::{Capabilities, MAX_EXPIRE_TILES};
use tile_client::{ExpireAnswer, ExpireOptions, TileClient};
use tile_math::{TileCoord, MAX_ZOOM};

use crate::progress::Progress;

/// The blocks sent: renderd's metatile, 8×8 tiles.
pub const BLOCK_SIZE: u8 = 8;

/// Longest line kept; a longer one is a bad line.
pub const MAX_LINE: usize = 256;

/// Bad lines shown on stderr; the rest are counted.
pub const SHOWN_BAD_LINES: u64 = 20;

/// Deepest zoom whose sent blocks are remembered exactly (one bit each:
/// 8,192 × 8,192 blocks, 8 MiB, at this zoom, allocated zeroed so that
/// the system provides only the pages written to; a list of one region
/// touches a small part).
pub const EXACT_MAX_ZOOM: u8 = 16;

/// Deeper, how many recently sent blocks are remembered.
pub const RECENT_BLOCKS: usize = 131_072;

/// Batches sent and not answered yet, at most.
pub const WINDOW: usize = 4;

/// What `tile-client expire` does, checked.
#[derive(Debug)]
pub struct ExpirePlan {
    /// The list: a file, or `None` for standard input.
    pub input: Option<PathBuf>,
    /// The map; empty: the server's default.
    pub map: String,
    /// The zooms expired.
    pub zooms: RangeInclusive<u8>,
    /// From this zoom up, mark stale only.
    pub touch_from: Option<u8>,
    /// From this zoom up, delete.
    pub delete_from: Option<u8>,
    /// Off a terminal, a progress line this often.
    pub progress_interval: Duration,
}

impl ExpirePlan {
    /// Checks the options together; the error is for the user (exit 2).
    pub fn new(
        input: &Path,
        map: String,
        (min_zoom, max_zoom): (u8, u8),
        touch_from: Option<u8>,
        delete_from: Option<u8>,
        progress_interval: Duration,
    ) -> Result<ExpirePlan, String> {
        if min_zoom > max_zoom {
            return Err(format!(
                "--min-zoom {min_zoom} is above --max-zoom {max_zoom}"
            ));
        }
        if let (Some(touch), Some(delete)) = (touch_from, delete_from) {
            if touch > delete {
                return Err(format!(
                    "--touch-from {touch} is above --delete-from {delete}: tiles from zoom \
                     {delete} up are deleted, so none would be marked stale"
                ));
            }
        }
        Ok(ExpirePlan {
            input: (input != Path::new("-")).then(|| input.to_path_buf()),
            map,
            zooms: min_zoom..=max_zoom,
            touch_from,
            delete_from,
            progress_interval,
        })
    }

    /// The input, opened (before connecting: a wrong name fails at once).
    pub fn open_input(&self) -> Result<Box<dyn BufRead>, String> {
        match &self.input {
            None => Ok(Box::new(BufReader::new(io::stdin()))),
            Some(path) => File::open(path)
                .map(|file| Box::new(BufReader::new(file)) as Box<dyn BufRead>)
                .map_err(|e| format!("cannot read the expire list {}: {e}", path.display())),
        }
    }

    fn describe_input(&self) -> String {
        self.input
            .as_ref()
            .map_or("standard input".to_owned(), |p| p.display().to_string())
    }
}

/// The tile a line names; `None` for a blank line.
pub fn parse_line(text: &str) -> Result<Option<TileCoord>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let parts: Vec<&str> = text.split('/').collect();
    let numbers: Option<Vec<u32>> = match parts[..] {
        [_, _, _] => parts.iter().map(|p| p.trim().parse::<u32>().ok()).collect(),
        _ => None,
    };
    let Some(&[z, x, y]) = numbers.as_deref() else {
        return Err("not a tile: expected z/x/y, three whole numbers".to_owned());
    };
    let z = u8::try_from(z)
        .ok()
        .filter(|z| *z <= MAX_ZOOM)
        .ok_or_else(|| format!("zoom {z} is out of range (0..={MAX_ZOOM})"))?;
    TileCoord::new(z, x, y).map(Some).map_err(|e| e.to_string())
}

/// The blocks (north-west tile of each aligned `block`×`block` square) a
/// line's tile expires at each zoom of `zooms`: its ancestor's block at
/// zooms up to its own, the blocks of all its descendants deeper. Lazy:
/// a low-zoom tile expands to many blocks.
pub fn blocks(
    tile: TileCoord,
    zooms: RangeInclusive<u8>,
    block: u8,
) -> impl Iterator<Item = TileCoord> {
    let block = u64::from(block.max(1));
    zooms.flat_map(move |z| {
        let (x, y, span) = if z <= tile.z() {
            let up = tile.z() - z;
            (u64::from(tile.x()) >> up, u64::from(tile.y()) >> up, 1)
        } else {
            let down = z - tile.z();
            (
                u64::from(tile.x()) << down,
                u64::from(tile.y()) << down,
                1u64 << down,
            )
        };
        let columns = (x / block)..=((x + span - 1) / block);
        let rows = (y / block)..=((y + span - 1) / block);
        columns.flat_map(move |column| {
            rows.clone().filter_map(move |row| {
                TileCoord::new(z, (column * block) as u32, (row * block) as u32).ok()
            })
        })
    })
}

/// Which blocks were sent already (see the module's contract).
#[derive(Debug, Default)]
pub struct Seen {
    /// Per zoom up to [`EXACT_MAX_ZOOM`], a bit per block, made on first use.
    exact: Vec<Option<Vec<u64>>>,
    /// Deeper blocks sent lately.
    recent: HashSet<TileCoord>,
}

impl Seen {
    /// `true` the first time a block is seen (exactly up to
    /// [`EXACT_MAX_ZOOM`], within the window deeper).
    pub fn first_time(&mut self, block: TileCoord) -> bool {
        let z = block.z();
        if z > EXACT_MAX_ZOOM {
            if self.recent.len() >= RECENT_BLOCKS {
                self.recent.clear();
            }
            return self.recent.insert(block);
        }
        let size = u64::from(BLOCK_SIZE);
        let across = ((1u64 << z) / size).max(1);
        let bit = (u64::from(block.x()) / size) * across + u64::from(block.y()) / size;
        if self.exact.len() <= usize::from(z) {
            self.exact.resize_with(usize::from(z) + 1, || None);
        }
        let words = self.exact[usize::from(z)]
            .get_or_insert_with(|| vec![0; (across * across).div_ceil(64) as usize]);
        let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
        let first = words[word] & mask == 0;
        words[word] |= mask;
        first
    }
}

/// A line that is not a tile: what of it is shown, and why.
#[derive(Debug)]
struct BadLine {
    shown: String,
    why: String,
}

/// Reads lines without ever holding more than [`MAX_LINE`] bytes of one.
struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
    number: u64,
}

impl<R: BufRead> Lines<R> {
    /// The next line's number and text, or why it is unreadable; `None`
    /// at the end.
    fn next_line(&mut self) -> io::Result<Option<(u64, Result<&str, BadLine>)>> {
        self.buf.clear();
        let read = (&mut self.reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut self.buf)?;
        if read == 0 {
            return Ok(None);
        }
        self.number += 1;
        if self.buf.last() != Some(&b'\n') && self.buf.len() > MAX_LINE {
            // Skip the rest of the line, a bounded piece at a time.
            let mut rest = Vec::new();
            loop {
                rest.clear();
                let n = (&mut self.reader).take(4096).read_until(b'\n', &mut rest)?;
                if n == 0 || rest.last() == Some(&b'\n') {
                    break;
                }
            }
            let shown = String::from_utf8_lossy(&self.buf[..40]).into_owned() + "...";
            let why = format!("longer than {MAX_LINE} bytes");
            return Ok(Some((self.number, Err(BadLine { shown, why }))));
        }
        Ok(Some((
            self.number,
            std::str::from_utf8(&self.buf).map_err(|_| BadLine {
                shown: String::from_utf8_lossy(&self.buf).trim_end().to_owned(),
                why: "not UTF-8".to_owned(),
            }),
        )))
    }
}

/// What the run has done so far.
#[derive(Debug, Default)]
struct Totals {
    lines: u64,
    bad: u64,
    blocks_sent: u64,
    deleted: u64,
    touched: u64,
    queued: u64,
    absent: u64,
    failed: u64,
}

/// Batches going out, answers coming in.
struct Sender<'a> {
    client: &'a mut TileClient,
    options: ExpireOptions,
    unanswered: usize,
    totals: Totals,
}

/// Why the run stops early: the server refused a batch.
struct Refused(String);

impl Sender<'_> {
    /// Sends a batch, first waiting for an answer if [`WINDOW`] are out.
    fn send(&mut self, tiles: Vec<TileCoord>) -> anyhow::Result<Result<(), Refused>> {
        if self.unanswered >= WINDOW {
            if let Err(refused) = self.receive()? {
                return Ok(Err(refused));
            }
        }
        self.totals.blocks_sent += tiles.len() as u64;
        self.client.send_expire(tiles, &self.options)?;
        self.unanswered += 1;
        Ok(Ok(()))
    }

    /// Waits for every batch's answer.
    fn finish(&mut self) -> anyhow::Result<Result<(), Refused>> {
        while self.unanswered > 0 {
            if let Err(refused) = self.receive()? {
                return Ok(Err(refused));
            }
        }
        Ok(Ok(()))
    }

    fn receive(&mut self) -> anyhow::Result<Result<(), Refused>> {
        let answer = self.client.next_expire_answer()?;
        self.unanswered -= 1;
        match answer {
            ExpireAnswer::Done(done) => {
                let t = &mut self.totals;
                t.deleted += u64::from(done.deleted);
                t.touched += u64::from(done.touched);
                t.queued += u64::from(done.queued);
                t.absent += u64::from(done.absent);
                if done.failed > 0 {
                    if t.failed == 0 {
                        eprintln!(
                            "tile-client: the server could not expire a metatile: {}",
                            done.error
                        );
                    }
                    t.failed += u64::from(done.failed);
                }
                Ok(Ok(()))
            }
            ExpireAnswer::Rejected(r) => Ok(Err(Refused(format!(
                "the server refused to expire ({:?}): {}",
                r.reason, r.message
            )))),
        }
    }
}

/// Blocks per batch: as many as fit the server's frame limit, at most
/// [`MAX_EXPIRE_TILES`].
fn batch_capacity(max_frame: u32, map: &str) -> usize {
    // Frame head 6, request id 8, map 2 + its bytes, zooms 4, block 1,
    // count 4; 9 bytes a tile.
    let fixed = 6 + 8 + 2 + map.len() + 4 + 1 + 4;
    ((max_frame as usize).saturating_sub(fixed) / 9).clamp(1, MAX_EXPIRE_TILES)
}

/// Runs `tile-client expire` on a connected client; `input` is the plan's
/// list, opened.
pub fn run(
    client: &mut TileClient,
    plan: &ExpirePlan,
    input: Box<dyn BufRead>,
) -> anyhow::Result<ExitCode> {
    if !client.welcome().capabilities.contains(Capabilities::EXPIRE) {
        anyhow::bail!("this server cannot expire tiles (it does not announce Expire)");
    }
    let capacity = batch_capacity(client.welcome().max_frame, &plan.map);
    let options = ExpireOptions {
        map: plan.map.clone(),
        touch_from: plan.touch_from,
        delete_from: plan.delete_from,
        block_size: BLOCK_SIZE,
    };
    let mut sender = Sender {
        client,
        options,
        unanswered: 0,
        totals: Totals::default(),
    };
    // An empty batch first: a wrong map is told now, even for an empty
    // list, before anything is read.
    let probe = match sender.send(Vec::new())? {
        Ok(()) => sender.finish()?,
        refused => refused,
    };
    if let Err(Refused(why)) = probe {
        eprintln!("tile-client: {why}");
        return Ok(ExitCode::from(1));
    }
    let started = Instant::now();
    let mut progress = Progress::new(
        0,
        started,
        plan.progress_interval,
        io::stderr().is_terminal(),
    );
    let mut lines = Lines {
        reader: input,
        buf: Vec::with_capacity(MAX_LINE + 1),
        number: 0,
    };
    let mut seen = Seen::default();
    let mut batch: Vec<TileCoord> = Vec::with_capacity(capacity.min(4096));
    let mut refused = None;
    'lines: while let Some((number, line)) = lines.next_line()? {
        let parsed = match line {
            Ok(text) => parse_line(text).map_err(|why| BadLine {
                shown: text.trim_end().to_owned(),
                why,
            }),
            Err(unreadable) => Err(unreadable),
        };
        let tile = match parsed {
            Ok(Some(tile)) => tile,
            Ok(None) => continue,
            Err(BadLine { shown, why }) => {
                sender.totals.bad += 1;
                if sender.totals.bad <= SHOWN_BAD_LINES {
                    eprintln!("tile-client: line {number}: {shown:?}: {why}; skipped");
                }
                continue;
            }
        };
        sender.totals.lines += 1;
        for block in blocks(tile, plan.zooms.clone(), BLOCK_SIZE) {
            if !seen.first_time(block) {
                continue;
            }
            batch.push(block);
            if batch.len() >= capacity {
                if let Err(why) = sender.send(std::mem::take(&mut batch))? {
                    refused = Some(why);
                    break 'lines;
                }
            }
        }
        let now = Instant::now();
        if let Some(text) =
            progress.update_with(now, |p| progress_line(&sender.totals, p.seconds(now)))
        {
            eprint!("{text}");
        }
    }
    if refused.is_none() && !batch.is_empty() {
        refused = sender.send(batch)?.err();
    }
    if refused.is_none() {
        refused = sender.finish()?.err();
    }
    eprint!("{}", progress.finish());
    if let Some(Refused(why)) = refused {
        eprintln!("tile-client: {why}");
        return Ok(ExitCode::from(1));
    }
    let t = &sender.totals;
    if t.bad > SHOWN_BAD_LINES {
        eprintln!(
            "tile-client: {} more bad lines not shown",
            t.bad - SHOWN_BAD_LINES
        );
    }
    let map = if plan.map.is_empty() {
        "the default map".to_owned()
    } else {
        format!("map {}", plan.map)
    };
    println!(
        "read {} tiles ({} bad lines skipped) from {}; sent {} blocks of {BLOCK_SIZE}x{BLOCK_SIZE} \
         tiles at zooms {}-{} of {map}",
        t.lines,
        t.bad,
        plan.describe_input(),
        t.blocks_sent,
        plan.zooms.start(),
        plan.zooms.end()
    );
    println!("deleted: {} metatiles", t.deleted);
    println!("marked stale: {} metatiles", t.touched);
    println!(
        "queued for re-render (and marked stale): {} metatiles",
        t.queued
    );
    println!("not in the store: {} metatiles", t.absent);
    println!("failed: {} metatiles", t.failed);
    Ok(if t.bad + t.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn progress_line(t: &Totals, seconds: f64) -> String {
    format!(
        "[expire] {} tiles read, {} blocks sent: {} deleted, {} marked stale, {} queued, {} not in \
         the store; {:.0} tiles/s, {seconds:.0} s so far",
        t.lines,
        t.blocks_sent,
        t.deleted,
        t.touched,
        t.queued,
        t.absent,
        t.lines as f64 / seconds.max(1e-9)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(z: u8, x: u32, y: u32) -> TileCoord {
        TileCoord::new(z, x, y).unwrap()
    }

    fn listed(tile: TileCoord, zooms: RangeInclusive<u8>) -> Vec<String> {
        blocks(tile, zooms, 8).map(|b| b.to_string()).collect()
    }

    #[test]
    fn lines_are_tiles_or_say_why_not() {
        assert_eq!(
            parse_line("17/72817/37800\n"),
            Ok(Some(t(17, 72817, 37800)))
        );
        assert_eq!(parse_line("  3/1/2 \r\n"), Ok(Some(t(3, 1, 2))));
        assert_eq!(parse_line(" \n"), Ok(None));
        for (line, why) in [
            ("3/1", "expected z/x/y"),
            ("3/1/2/4", "expected z/x/y"),
            ("3_1_2", "expected z/x/y"),
            ("a/b/c", "expected z/x/y"),
            ("-1/0/0", "expected z/x/y"),
            ("31/0/0", "zoom 31 is out of range"),
            ("300/0/0", "zoom 300 is out of range"),
            ("3/8/0", "outside zoom 3"),
        ] {
            let err = parse_line(line).unwrap_err();
            assert!(err.contains(why), "{line}: {err}");
        }
    }

    #[test]
    fn ancestors_below_the_lines_zoom_descendants_above() {
        // A z17 tile at zooms 12-14: one ancestor block a zoom.
        assert_eq!(
            listed(t(17, 72817, 37800), 12..=14),
            ["12/2272/1176", "13/4544/2360", "14/9096/4720"]
        );
        // A z10 tile at zooms 10-14: its block, then its descendants'.
        let below = listed(t(10, 9, 17), 10..=14);
        assert_eq!(
            below[..3],
            ["10/8/16", "11/16/32", "12/32/64"],
            "2x2 and 4x4 descendants fit a block"
        );
        assert_eq!(below[3], "13/72/136", "8x8: exactly one block");
        // 16x16 descendants at zoom 14: four blocks.
        assert_eq!(
            below[4..],
            ["14/144/272", "14/144/280", "14/152/272", "14/152/280"]
        );
        // Clipped to the world at low zooms, never outside it.
        assert_eq!(
            listed(t(0, 0, 0), 0..=3),
            ["0/0/0", "1/0/0", "2/0/0", "3/0/0"]
        );
        assert_eq!(blocks(t(0, 0, 0), 5..=5, 8).count(), 16);
        // The deepest zoom at its limit does not overflow.
        assert_eq!(
            listed(t(30, (1 << 30) - 1, 0), 30..=30),
            ["30/1073741816/0"]
        );
    }

    #[test]
    fn render_expireds_north_west_child_is_among_the_descendants() {
        // render_expired shifts a tile to --max-zoom's north-west child and
        // takes its metatile; with the list at max-zoom - 3 that is all.
        let tile = t(15, 18204, 9450);
        let ours = listed(tile, 18..=18);
        assert_eq!(ours, [format!("18/{}/{}", 18204 << 3, 9450 << 3)]);
    }

    #[test]
    fn seen_blocks_are_remembered_exactly_up_to_z16_then_in_a_window() {
        let mut seen = Seen::default();
        assert!(
            seen.first_time(t(16, 65528, 65528)),
            "the last block of z16"
        );
        assert!(!seen.first_time(t(16, 65528, 65528)));
        assert!(seen.first_time(t(14, 16376, 8)));
        assert!(!seen.first_time(t(14, 16376, 8)));
        assert!(seen.first_time(t(14, 16368, 8)), "the block beside it");
        assert!(seen.first_time(t(0, 0, 0)));
        assert!(!seen.first_time(t(0, 0, 0)));
        // Deeper: remembered until the window is full.
        assert!(seen.first_time(t(20, 8, 8)));
        assert!(!seen.first_time(t(20, 8, 8)));
        for i in 0..RECENT_BLOCKS as u32 {
            seen.first_time(t(21, 16 + 8 * i, 0));
        }
        assert!(seen.recent.len() <= RECENT_BLOCKS);
        // The exact part stays exact whatever happened deeper.
        assert!(!seen.first_time(t(14, 16376, 8)));
    }

    #[test]
    fn long_lines_and_bad_bytes_are_bad_lines_in_bounded_memory() {
        let mut input = b"1/0/0\n".to_vec();
        input.extend(std::iter::repeat_n(b'7', 100_000));
        input.extend(b"\n\xff\xfe/0/0\n2/1/1");
        let mut lines = Lines {
            reader: &input[..],
            buf: Vec::new(),
            number: 0,
        };
        let (n, line) = lines.next_line().unwrap().unwrap();
        assert_eq!((n, line.unwrap()), (1, "1/0/0\n"));
        let (n, line) = lines.next_line().unwrap().unwrap();
        let BadLine { shown, why } = line.unwrap_err();
        assert_eq!(n, 2);
        assert!(
            shown.len() < 50 && why.contains("longer than 256"),
            "{shown} {why}"
        );
        assert!(lines.buf.capacity() < 1024, "the long line was not kept");
        let (n, line) = lines.next_line().unwrap().unwrap();
        assert_eq!((n, line.unwrap_err().why.as_str()), (3, "not UTF-8"));
        let (n, line) = lines.next_line().unwrap().unwrap();
        assert_eq!(
            (n, line.unwrap()),
            (4, "2/1/1"),
            "a last line without a newline"
        );
        assert!(lines.next_line().unwrap().is_none());
    }

    #[test]
    fn checks_of_the_options() {
        let plan = |min, max, touch, delete| {
            ExpirePlan::new(
                Path::new("-"),
                String::new(),
                (min, max),
                touch,
                delete,
                Duration::from_secs(5),
            )
        };
        assert!(plan(0, 20, None, None).unwrap().input.is_none());
        let err = plan(13, 12, None, None).unwrap_err();
        assert_eq!(err, "--min-zoom 13 is above --max-zoom 12");
        let err = plan(0, 20, Some(15), Some(12)).unwrap_err();
        assert!(
            err.starts_with("--touch-from 15 is above --delete-from 12"),
            "{err}"
        );
        assert!(plan(0, 20, Some(12), Some(12)).is_ok());
    }

    #[test]
    fn batches_fit_the_frame() {
        assert_eq!(batch_capacity(1 << 20, "osm"), MAX_EXPIRE_TILES);
        let small = batch_capacity(4096, "osm");
        assert_eq!(small, (4096 - 28) / 9);
        assert_eq!(batch_capacity(10, "osm"), 1);
    }
}
