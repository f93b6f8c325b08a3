//! Progress of `seed` and `expire` on stderr, so that a long run shows how
//! it goes.
//!
//! Contract: on a terminal, one line redrawn in place four times a second;
//! anywhere else (cron, systemd, a pipe) a whole line every `interval`,
//! as render_list prints its progress, so a log shows the run as it goes
//! instead of nothing until the end. An interval of zero prints a line for
//! every update. `seed`'s lines say tiles answered of the total, the
//! share, the rate so far and the time left at that rate; other commands
//! write their own line ([`Progress::update_with`]).

use std::time::{Duration, Instant};

/// How often the line on a terminal is redrawn.
const TERMINAL_REDRAW: Duration = Duration::from_millis(250);

/// Where progress goes, and when a line is due.
#[derive(Debug)]
pub struct Progress {
    total: u64,
    started: Instant,
    last: Instant,
    every: Duration,
    terminal: bool,
}

impl Progress {
    /// Progress of `total` tiles from `started`; `terminal` redraws one
    /// line, otherwise a line is printed every `interval`.
    pub fn new(total: u64, started: Instant, interval: Duration, terminal: bool) -> Self {
        Self {
            total,
            started,
            last: started,
            every: if terminal { TERMINAL_REDRAW } else { interval },
            terminal,
        }
    }

    /// The text to write to stderr now that `answered` tiles are answered,
    /// if a line is due.
    pub fn update(&mut self, answered: u64, now: Instant) -> Option<String> {
        self.update_with(now, |progress| progress.line(answered, now))
    }

    /// Like [`Progress::update`], with a line of the caller's: `line` is
    /// called only when one is due.
    pub fn update_with(
        &mut self,
        now: Instant,
        line: impl FnOnce(&Progress) -> String,
    ) -> Option<String> {
        if now.duration_since(self.last) < self.every {
            return None;
        }
        self.last = now;
        let line = line(self);
        Some(if self.terminal {
            format!("\r{line}   ")
        } else {
            format!("{line}\n")
        })
    }

    /// Seconds from the start to `now`.
    pub fn seconds(&self, now: Instant) -> f64 {
        now.duration_since(self.started).as_secs_f64()
    }

    /// What ends the progress output: the terminal's line is ended.
    pub fn finish(&self) -> &'static str {
        if self.terminal {
            "\n"
        } else {
            ""
        }
    }

    fn line(&self, answered: u64, now: Instant) -> String {
        let seconds = now.duration_since(self.started).as_secs_f64();
        let rate = answered as f64 / seconds.max(1e-9);
        let left = self.total.saturating_sub(answered) as f64;
        let eta = if rate > 0.0 {
            format!("{:.0} s", left / rate)
        } else {
            "unknown".to_owned()
        };
        format!(
            "[seed] {answered}/{} tiles ({:.1}%), {rate:.1} tiles/s, {seconds:.0} s so far, ETA {eta}",
            self.total,
            100.0 * answered as f64 / self.total.max(1) as f64
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_a_terminal_a_whole_line_comes_every_interval() {
        let start = Instant::now();
        let mut progress = Progress::new(1000, start, Duration::from_secs(5), false);
        let at = |s: u64| start + Duration::from_secs(s);
        assert_eq!(progress.update(10, at(1)), None);
        assert_eq!(progress.update(40, at(4)), None);
        assert_eq!(
            progress.update(50, at(5)).as_deref(),
            Some("[seed] 50/1000 tiles (5.0%), 10.0 tiles/s, 5 s so far, ETA 95 s\n")
        );
        // The next one five seconds after that one, not after the start.
        assert_eq!(progress.update(90, at(9)), None);
        assert!(progress.update(100, at(10)).is_some());
        assert_eq!(progress.finish(), "");
    }

    #[test]
    fn a_zero_interval_reports_every_answer_and_a_terminal_redraws_in_place() {
        let start = Instant::now();
        let mut every = Progress::new(3, start, Duration::ZERO, false);
        assert!(every.update(1, start).is_some());
        assert!(every.update(2, start).is_some());
        let mut terminal = Progress::new(3, start, Duration::from_secs(5), true);
        let line = terminal
            .update(1, start + Duration::from_millis(300))
            .unwrap_or_default();
        assert!(
            line.starts_with("\r[seed] 1/3 tiles") && !line.contains('\n'),
            "{line:?}"
        );
        assert_eq!(terminal.finish(), "\n");
    }
}
