//! [`Control`]: what a running job shares with whoever watches it (a progress bar, the Jobs
//! pane): a cancel flag, progress counters, log lines and named scalar metrics for curves.
//!
//! A job polls [`Control::check`] between units of work; it returns the typed [`Cancelled`]
//! error, which travels through `anyhow` unchanged, so callers tell a cancel from a failure
//! with [`is_cancelled_error`] instead of comparing message texts.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Log lines kept per job (older ones are dropped; the count of dropped lines is kept).
const MAX_LOG_LINES: usize = 2_000;

/// The job stopped because it was asked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// Whether an error (anywhere in its context chain) is a [`Cancelled`].
pub fn is_cancelled_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<Cancelled>())
}

/// A snapshot of a job's progress.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Items finished, including those found already done on resume.
    pub done: u64,
    /// Items in this run (0 while unknown).
    pub total: u64,
    /// Items this run actually computed (for the rate).
    pub computed: u64,
    pub elapsed: Duration,
}

impl Progress {
    /// Fraction done in [0, 1] (0 while the total is unknown).
    pub fn fraction(&self) -> f32 {
        if self.total == 0 {
            0.0
        } else {
            (self.done as f32 / self.total as f32).min(1.0)
        }
    }

    /// Items computed per second since the start.
    pub fn rate_per_sec(&self) -> f64 {
        self.computed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Time left at the current rate (None until something was computed).
    pub fn eta(&self) -> Option<Duration> {
        let rate = self.rate_per_sec();
        (self.computed > 0 && rate > 0.0 && self.total >= self.done)
            .then(|| Duration::from_secs_f64((self.total - self.done) as f64 / rate))
    }
}

#[derive(Debug, Default)]
struct Journal {
    log: Vec<String>,
    dropped: usize,
    /// Metric name → (step, value) points in arrival order.
    metrics: BTreeMap<String, Vec<[f64; 2]>>,
    /// The latest labelled values (e.g. per-class accuracy), replaced as a whole.
    bars: Option<Bars>,
    status: String,
}

/// A titled set of labelled values, shown as a bar chart (e.g. per-class accuracy).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bars {
    pub title: String,
    pub values: Vec<(String, f64)>,
}

/// Cancel flag, progress, log and metrics of one job; cheap to clone and share across threads.
#[derive(Debug, Clone)]
pub struct Control {
    cancel: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    total: Arc<AtomicU64>,
    computed: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
    started: Arc<Mutex<Instant>>,
    journal: Arc<Mutex<Journal>>,
}

impl Default for Control {
    fn default() -> Self {
        Self::new()
    }
}

impl Control {
    pub fn new() -> Self {
        Self {
            cancel: Arc::default(),
            done: Arc::default(),
            total: Arc::default(),
            computed: Arc::default(),
            written: Arc::default(),
            started: Arc::new(Mutex::new(Instant::now())),
            journal: Arc::default(),
        }
    }

    fn journal(&self) -> MutexGuard<'_, Journal> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }

    // --- cancel -------------------------------------------------------------------------

    /// Asks the job to stop at its next check.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// `Err(Cancelled)` once a cancel was asked for; jobs call it between units of work.
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }

    /// The flag itself, for code that polls an `AtomicBool`.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    // --- progress -----------------------------------------------------------------------

    /// Restarts the clock (the rate and ETA count from here) — called when the job really
    /// starts, e.g. after it waited in a queue.
    pub fn restart_clock(&self) {
        *self.started.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// Sets the number of items of this run.
    pub fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
    }

    /// `n` more items computed.
    pub fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
        self.computed.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` more items found already done (resume): they count as done but not in the rate.
    pub fn skip(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets the absolute position (jobs that know it directly, e.g. a training step).
    pub fn set_done(&self, done: u64) {
        let old = self.done.swap(done, Ordering::Relaxed);
        if done > old {
            self.computed.fetch_add(done - old, Ordering::Relaxed);
        }
    }

    /// Files written by this run (exports), beside the item counts.
    pub fn add_written(&self, n: u64) {
        self.written.fetch_add(n, Ordering::Relaxed);
    }

    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Files written per second since the start.
    pub fn written_per_sec(&self) -> f64 {
        self.written() as f64 / self.progress().elapsed.as_secs_f64().max(1e-9)
    }

    pub fn progress(&self) -> Progress {
        Progress {
            done: self.done.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
            computed: self.computed.load(Ordering::Relaxed),
            elapsed: self.started.lock().unwrap_or_else(|p| p.into_inner()).elapsed(),
        }
    }

    /// Fraction done in [0, 1].
    pub fn fraction(&self) -> f32 {
        self.progress().fraction()
    }

    // --- log, status, metrics -------------------------------------------------------------

    /// Appends a log line (also sent to `tracing` at info level).
    pub fn log(&self, line: impl Into<String>) {
        let line = line.into();
        tracing::info!("{line}");
        let mut j = self.journal();
        j.log.push(line);
        if j.log.len() > MAX_LOG_LINES {
            let extra = j.log.len() - MAX_LOG_LINES;
            j.log.drain(..extra);
            j.dropped += extra;
        }
    }

    /// Log lines with absolute index ≥ `from`, and the index to ask from next time.
    pub fn log_since(&self, from: usize) -> (Vec<String>, usize) {
        let j = self.journal();
        let end = j.dropped + j.log.len();
        let start = from.max(j.dropped) - j.dropped;
        (j.log[start.min(j.log.len())..].to_vec(), end)
    }

    /// The whole log kept.
    pub fn log_lines(&self) -> Vec<String> {
        self.journal().log.clone()
    }

    /// A one-line description of what the job does now ("epoch 3/10", "writing shard 12").
    pub fn set_status(&self, status: impl Into<String>) {
        self.journal().status = status.into();
    }

    pub fn status(&self) -> String {
        self.journal().status.clone()
    }

    /// Records a point of the named curve (e.g. `("loss", step, 0.31)`).
    pub fn metric(&self, name: &str, step: f64, value: f64) {
        let mut j = self.journal();
        match j.metrics.get_mut(name) {
            Some(v) => v.push([step, value]),
            None => {
                j.metrics.insert(name.to_string(), vec![[step, value]]);
            }
        }
    }

    /// Runs `f` on the curves (name → points) without copying them.
    pub fn with_metrics<R>(&self, f: impl FnOnce(&BTreeMap<String, Vec<[f64; 2]>>) -> R) -> R {
        f(&self.journal().metrics)
    }

    /// Replaces the job's labelled values (the latest per-class accuracy, say).
    pub fn set_bars(&self, title: impl Into<String>, values: Vec<(String, f64)>) {
        self.journal().bars = Some(Bars { title: title.into(), values });
    }

    /// The latest labelled values, if the job reported any.
    pub fn bars(&self) -> Option<Bars> {
        self.journal().bars.clone()
    }

    /// The last value of a curve.
    pub fn last_metric(&self, name: &str) -> Option<f64> {
        self.journal().metrics.get(name).and_then(|v| v.last()).map(|p| p[1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_is_typed_and_survives_context() {
        let c = Control::new();
        assert!(c.check().is_ok());
        c.cancel();
        let e: anyhow::Error = anyhow::Error::from(c.check().unwrap_err());
        let e = e.context("unit 3").context("export");
        assert!(is_cancelled_error(&e));
        assert!(!is_cancelled_error(&anyhow::anyhow!("cancelled")), "a message is not a cancel");
    }

    #[test]
    fn progress_rate_counts_only_computed_items() {
        let c = Control::new();
        c.set_total(10);
        c.skip(4);
        c.advance(2);
        let p = c.progress();
        assert_eq!((p.done, p.total, p.computed), (6, 10, 2));
        assert!((p.fraction() - 0.6).abs() < 1e-6);
        assert!(p.eta().is_some());
        c.set_done(9);
        assert_eq!(c.progress().computed, 5);
    }

    #[test]
    fn log_is_bounded_and_readable_incrementally() {
        let c = Control::new();
        for i in 0..(MAX_LOG_LINES + 10) {
            c.log(format!("line {i}"));
        }
        let (lines, next) = c.log_since(0);
        assert_eq!(lines.len(), MAX_LOG_LINES);
        assert_eq!(lines[0], "line 10");
        assert_eq!(next, MAX_LOG_LINES + 10);
        c.log("more");
        assert_eq!(c.log_since(next).0, vec!["more".to_string()]);
    }

    #[test]
    fn metrics_keep_named_curves() {
        let c = Control::new();
        c.metric("loss", 0.0, 2.0);
        c.metric("loss", 1.0, 1.5);
        c.metric("acc", 1.0, 0.5);
        assert_eq!(c.last_metric("loss"), Some(1.5));
        c.with_metrics(|m| {
            assert_eq!(m.len(), 2);
            assert_eq!(m["loss"], vec![[0.0, 2.0], [1.0, 1.5]]);
        });
    }
}
