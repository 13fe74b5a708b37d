//! A plain progress line on stderr for downloads.
//!
//! One line every tenth of the file (every 10 MB when the size is unknown): enough to show a
//! first run is alive, without the carriage-return redraws that garble captured service logs.

use std::time::Instant;

/// Counts bytes of one download and reports at each tenth.
pub(super) struct Progress<'a> {
    name: &'a str,
    total: Option<u64>,
    done: u64,
    next_report: u64,
    started: Instant,
}

impl<'a> Progress<'a> {
    pub(super) fn new(name: &'a str, total: Option<u64>) -> Self {
        eprintln!(
            "hearken: downloading {name} ({})",
            total.map_or("size unknown".into(), mb)
        );
        let mut progress = Self {
            name,
            total,
            done: 0,
            next_report: 0,
            started: Instant::now(),
        };
        progress.next_report = progress.step();
        progress
    }

    fn step(&self) -> u64 {
        self.total.map_or(10_000_000, |t| (t / 10).max(1))
    }

    pub(super) fn advance(&mut self, n: u64) {
        if let Some(line) = self.tick(n) {
            eprintln!("hearken:   {line}");
        }
    }

    /// The line due after `n` more bytes, if a report boundary was crossed.
    fn tick(&mut self, n: u64) -> Option<String> {
        self.done += n;
        if self.done < self.next_report {
            return None;
        }
        let step = self.step();
        self.next_report = self.done - self.done % step + step;
        match self.total {
            Some(t) if self.done < t => Some(format!(
                "{}: {}% ({} of {})",
                self.name,
                self.done * 100 / t,
                mb(self.done),
                mb(t)
            )),
            Some(_) => None,
            None => Some(format!("{}: {}", self.name, mb(self.done))),
        }
    }

    pub(super) fn finish(&self) {
        let secs = self.started.elapsed().as_secs_f64();
        eprintln!(
            "hearken: downloaded {} ({}) in {secs:.1} s",
            self.name,
            mb(self.done)
        );
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_once_per_tenth_and_not_at_the_end() {
        let mut progress = Progress::new("w.whl", Some(1_000_000));
        let lines: Vec<String> = (0..100).filter_map(|_| progress.tick(10_000)).collect();
        assert_eq!(lines.len(), 9, "{lines:?}");
        assert_eq!(lines[0], "w.whl: 10% (0.1 MB of 1.0 MB)");
        assert!(
            progress.tick(250_000).is_none(),
            "past the total is the finish line's job"
        );
    }

    #[test]
    fn a_big_read_reports_once_and_unknown_sizes_report_every_10_mb() {
        let mut progress = Progress::new("w.whl", Some(100));
        assert_eq!(
            progress.tick(35).as_deref(),
            Some("w.whl: 35% (0.0 MB of 0.0 MB)")
        );
        assert!(progress.tick(4).is_none());
        let mut unknown = Progress::new("u.whl", None);
        assert!(unknown.tick(9_999_999).is_none());
        assert_eq!(unknown.tick(1).as_deref(), Some("u.whl: 10.0 MB"));
    }
}
