//! [`Board`]: the window's list of named jobs — queued, running and finished — with one job
//! per name at a time and a bounded number running at once.
//!
//! Results are type-erased on the board and taken back, typed, by whoever started the job
//! ([`Board::take`]); the entry stays listed (state, log, metrics) after that.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::control::Control;
use super::handle::{Handle, Outcome, Priority};

type AnyValue = Box<dyn Any + Send>;
type Pending = Box<dyn FnOnce(&Control) -> anyhow::Result<AnyValue> + Send>;

/// A job with this name is queued or running.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is already running; cancel it or wait for it to finish")]
pub struct AlreadyRunning(pub String);

/// What to start.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// Unique among queued and running jobs (e.g. "PCA goldfish", "train mnist-cnn").
    pub name: String,
    /// The kind shown in the list ("PCA", "sweep", "export", "train", …).
    pub kind: &'static str,
    /// The unit of progress ("samples", "images", "steps").
    pub unit: &'static str,
    pub priority: Priority,
    /// What the job writes (an export folder, a training run, a model folder), for the actions
    /// offered once it is done.
    pub output: Option<std::path::PathBuf>,
}

impl JobSpec {
    pub fn new(kind: &'static str, name: impl Into<String>, unit: &'static str) -> Self {
        Self { name: name.into(), kind, unit, priority: Priority::Normal, output: None }
    }

    /// Names what the job writes.
    pub fn output(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.output = Some(path.into());
        self
    }

    /// Runs at background priority (long jobs: exports, training).
    pub fn background(mut self) -> Self {
        self.priority = Priority::Background;
        self
    }
}

/// Where an entry is in its life.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    Queued,
    Running,
    Done,
    Cancelled,
    Failed(String),
}

impl Phase {
    pub fn is_active(&self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }
}

/// One job on the board.
pub struct Entry {
    pub spec: JobSpec,
    pub control: Control,
    pub phase: Phase,
    submitted: Instant,
    started: Option<Instant>,
    ended: Option<Instant>,
    pending: Option<Pending>,
    handle: Option<Handle<AnyValue>>,
    value: Option<AnyValue>,
    /// The outcome was handed to whoever started the job.
    reported: bool,
}

impl Entry {
    /// Time since it started running (until it ended), or spent waiting while queued.
    pub fn elapsed(&self) -> Duration {
        let from = self.started.unwrap_or(self.submitted);
        self.ended.unwrap_or_else(Instant::now).duration_since(from)
    }
}

/// The jobs of one window.
pub struct Board {
    entries: Vec<Entry>,
    max_running: usize,
    notify: Arc<dyn Fn() + Send + Sync>,
}

impl Board {
    /// `max_running` jobs run at once (the rest wait, in order); `notify` is called from a job's
    /// thread when it ends (the window passes `request_repaint`).
    pub fn new(max_running: usize, notify: impl Fn() + Send + Sync + 'static) -> Self {
        Self { entries: Vec::new(), max_running: max_running.max(1), notify: Arc::new(notify) }
    }

    /// Queues a job; it starts at the next [`Board::poll`] with a free slot. Refused while a job
    /// of the same name is queued or running. A finished entry of that name is replaced.
    pub fn submit<T: Send + 'static>(
        &mut self,
        spec: JobSpec,
        job: impl FnOnce(&Control) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<Control, AlreadyRunning> {
        if self.is_active(&spec.name) {
            return Err(AlreadyRunning(spec.name));
        }
        self.entries.retain(|e| e.spec.name != spec.name);
        let control = Control::new();
        let pending: Pending = Box::new(move |c| job(c).map(|v| Box::new(v) as AnyValue));
        self.entries.push(Entry {
            spec,
            control: control.clone(),
            phase: Phase::Queued,
            submitted: Instant::now(),
            started: None,
            ended: None,
            pending: Some(pending),
            handle: None,
            value: None,
            reported: false,
        });
        self.poll();
        Ok(control)
    }

    /// Collects finished jobs and starts queued ones. Call once per frame.
    pub fn poll(&mut self) {
        for e in &mut self.entries {
            let Some(h) = &mut e.handle else { continue };
            let Some(out) = h.try_take() else { continue };
            e.handle = None;
            e.ended = Some(Instant::now());
            e.phase = match out {
                Outcome::Done(v) => {
                    e.value = Some(v);
                    Phase::Done
                }
                Outcome::Cancelled => Phase::Cancelled,
                Outcome::Failed(err) => {
                    let msg = format!("{err:#}");
                    e.control.log(format!("failed: {msg}"));
                    Phase::Failed(msg)
                }
            };
        }
        let mut running = self.entries.iter().filter(|e| e.phase == Phase::Running).count();
        for e in &mut self.entries {
            if running >= self.max_running {
                break;
            }
            if e.phase != Phase::Queued {
                continue;
            }
            if e.control.is_cancelled() {
                e.pending = None;
                e.phase = Phase::Cancelled;
                e.ended = Some(Instant::now());
                continue;
            }
            let Some(job) = e.pending.take() else { continue };
            let notify = self.notify.clone();
            match Handle::spawn(&e.spec.name, e.control.clone(), e.spec.priority, job, move || notify()) {
                Ok(h) => {
                    e.handle = Some(h);
                    e.phase = Phase::Running;
                    e.started = Some(Instant::now());
                    running += 1;
                }
                Err(err) => {
                    e.phase = Phase::Failed(format!("cannot start a thread for the job: {err}"));
                    e.ended = Some(Instant::now());
                }
            }
        }
    }

    /// Whether a job of this name is queued or running.
    pub fn is_active(&self, name: &str) -> bool {
        self.entries.iter().any(|e| e.spec.name == name && e.phase.is_active())
    }

    /// Whether any job of this kind is queued or running.
    pub fn kind_active(&self, kind: &str) -> bool {
        self.entries.iter().any(|e| e.spec.kind == kind && e.phase.is_active())
    }

    /// The outcome of a finished job, once, typed as it was submitted. `None` while it runs,
    /// after it was taken, or when no such job exists.
    pub fn take<T: 'static>(&mut self, name: &str) -> Option<Outcome<T>> {
        let e = self.entries.iter_mut().find(|e| e.spec.name == name)?;
        if e.phase.is_active() || e.reported {
            return None;
        }
        e.reported = true;
        Some(match &e.phase {
            Phase::Done => match e.value.take().map(|v| v.downcast::<T>()) {
                Some(Ok(v)) => Outcome::Done(*v),
                _ => Outcome::Failed(anyhow::anyhow!("job {name} returned an unexpected type")),
            },
            Phase::Failed(msg) => Outcome::Failed(anyhow::anyhow!("{msg}")),
            _ => Outcome::Cancelled,
        })
    }

    /// Asks a job to stop (a queued one never starts).
    pub fn cancel(&mut self, name: &str) {
        if let Some(e) = self.entries.iter().find(|e| e.spec.name == name) {
            e.control.cancel();
        }
        self.poll();
    }

    /// Removes finished entries from the list.
    pub fn clear_finished(&mut self) {
        self.entries.retain(|e| e.phase.is_active());
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry of this name.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.spec.name == name)
    }

    /// Whether anything is queued or running (the window keeps repainting then).
    pub fn busy(&self) -> bool {
        self.entries.iter().any(|e| e.phase.is_active())
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Queued => f.write_str("queued"),
            Self::Running => f.write_str("running"),
            Self::Done => f.write_str("done"),
            Self::Cancelled => f.write_str("cancelled"),
            Self::Failed(m) => write!(f, "failed: {m}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_until(board: &mut Board, what: &str, f: impl Fn(&Board) -> bool) {
        let t = Instant::now();
        while !f(board) {
            assert!(t.elapsed() < Duration::from_secs(5), "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
            board.poll();
        }
    }

    #[test]
    fn a_name_runs_once_and_a_second_start_is_refused_visibly() {
        let mut b = Board::new(2, || {});
        let gate = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let g2 = gate.clone();
        b.submit(JobSpec::new("PCA", "PCA class 1", "samples"), move |c| {
            while !g2.load(std::sync::atomic::Ordering::SeqCst) {
                c.check()?;
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(7u32)
        })
        .unwrap();
        let err = b.submit(JobSpec::new("PCA", "PCA class 1", "samples"), |_| Ok(8u32)).unwrap_err();
        assert_eq!(err.to_string(), "\"PCA class 1\" is already running; cancel it or wait for it to finish");
        gate.store(true, std::sync::atomic::Ordering::SeqCst);
        wait_until(&mut b, "the job to end", |b| b.get("PCA class 1").unwrap().phase == Phase::Done);
        assert!(matches!(b.take::<u32>("PCA class 1"), Some(Outcome::Done(7))));
        assert!(b.take::<u32>("PCA class 1").is_none(), "taken once");
        b.submit(JobSpec::new("PCA", "PCA class 1", "samples"), |_| Ok(9u32)).unwrap();
    }

    #[test]
    fn jobs_beyond_the_limit_wait_in_order_and_a_cancelled_queued_job_never_runs() {
        let mut b = Board::new(1, || {});
        let ran = Arc::new(std::sync::Mutex::new(Vec::new()));
        for name in ["a", "b", "c"] {
            let r = ran.clone();
            b.submit(JobSpec::new("t", name, "x"), move |_| {
                std::thread::sleep(Duration::from_millis(20));
                r.lock().unwrap().push(name);
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(b.get("a").unwrap().phase, Phase::Running);
        assert_eq!(b.get("b").unwrap().phase, Phase::Queued);
        b.cancel("b");
        wait_until(&mut b, "all to end", |b| !b.busy());
        assert_eq!(*ran.lock().unwrap(), vec!["a", "c"]);
        assert!(matches!(b.take::<()>("b"), Some(Outcome::Cancelled)));
        assert!(b.take::<()>("b").is_none());
    }

    #[test]
    fn failures_are_reported_once_and_stay_listed() {
        let mut b = Board::new(1, || {});
        b.submit(JobSpec::new("t", "bad", "x"), |_| -> anyhow::Result<()> { anyhow::bail!("disk full") }).unwrap();
        wait_until(&mut b, "failure", |b| !b.busy());
        match b.take::<()>("bad") {
            Some(Outcome::Failed(e)) => assert_eq!(e.to_string(), "disk full"),
            o => panic!("{o:?}"),
        }
        assert!(b.take::<()>("bad").is_none());
        assert_eq!(b.get("bad").unwrap().phase.to_string(), "failed: disk full");
        b.clear_finished();
        assert!(b.entries().is_empty());
    }
}
