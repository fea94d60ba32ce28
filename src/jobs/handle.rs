//! [`Handle`]: one job on its own named thread, with a typed [`Outcome`].

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::control::{is_cancelled_error, Control};

/// How a job ended.
#[derive(Debug)]
pub enum Outcome<T> {
    Done(T),
    /// It stopped because it was asked to (see [`super::Cancelled`]).
    Cancelled,
    Failed(anyhow::Error),
}

impl<T> Outcome<T> {
    /// Sorts a job's result: a [`super::Cancelled`] anywhere in the error chain is a cancel.
    pub fn from_result(r: anyhow::Result<T>) -> Self {
        match r {
            Ok(v) => Self::Done(v),
            Err(e) if is_cancelled_error(&e) => Self::Cancelled,
            Err(e) => Self::Failed(e),
        }
    }

    /// Back to a `Result` (a cancel becomes the [`super::Cancelled`] error).
    pub fn into_result(self) -> anyhow::Result<T> {
        match self {
            Self::Done(v) => Ok(v),
            Self::Cancelled => Err(super::Cancelled.into()),
            Self::Failed(e) => Err(e),
        }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U> {
        match self {
            Self::Done(v) => Outcome::Done(f(v)),
            Self::Cancelled => Outcome::Cancelled,
            Self::Failed(e) => Outcome::Failed(e),
        }
    }
}

/// How much of the machine a job may take from the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    /// Short jobs the user waits for (PCA, component loading).
    #[default]
    Normal,
    /// Long jobs (training, exports): the thread runs at a lower OS priority, so the window
    /// and its render workers keep their frame times.
    Background,
}

/// Lowers the calling thread's scheduling priority (Linux: per-thread nice value).
pub fn lower_current_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread's own id; failure only leaves the priority as is.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

type Slot<T> = Arc<Mutex<Option<Outcome<T>>>>;

/// A job running on a named thread.
pub struct Handle<T> {
    name: String,
    control: Control,
    slot: Slot<T>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Handle<T> {
    /// Starts `job` on a thread named `intervene-{name}`. `on_done` runs on that thread when
    /// the job ends (the window passes `request_repaint`). A panic in the job is a failure.
    pub fn spawn(
        name: &str,
        control: Control,
        priority: Priority,
        job: impl FnOnce(&Control) -> anyhow::Result<T> + Send + 'static,
        on_done: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<Self> {
        let slot: Slot<T> = Arc::default();
        let (s2, c2) = (slot.clone(), control.clone());
        let thread_name: String = format!("intervene-{name}").chars().take(60).collect();
        let thread = std::thread::Builder::new().name(thread_name).spawn(move || {
            if priority == Priority::Background {
                lower_current_thread_priority();
            }
            c2.restart_clock();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&c2))).unwrap_or_else(|p| {
                let msg = p
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| p.downcast_ref::<&str>().copied())
                    .unwrap_or("no message");
                Err(anyhow::anyhow!("the job panicked: {msg}"))
            });
            *s2.lock().unwrap_or_else(|p| p.into_inner()) = Some(Outcome::from_result(r));
            on_done();
        })?;
        Ok(Self { name: name.to_string(), control, slot, thread: Some(thread) })
    }
}

impl<T> Handle<T> {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn control(&self) -> &Control {
        &self.control
    }

    pub fn cancel(&self) {
        self.control.cancel();
    }

    /// Whether the job has ended (its outcome is waiting or was taken).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// The outcome, once, when the job has ended.
    pub fn try_take(&mut self) -> Option<Outcome<T>> {
        let out = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        Some(out)
    }

    /// Waits for the job to end and returns its outcome.
    pub fn join(mut self) -> Outcome<T> {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_else(|| Outcome::Failed(anyhow::anyhow!("job {} ended without a result", self.name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_job_runs_on_a_named_thread_and_returns_its_value() {
        let h = Handle::spawn(
            "answer",
            Control::new(),
            Priority::Normal,
            |_| Ok(std::thread::current().name().map(str::to_string)),
            || {},
        )
        .unwrap();
        match h.join() {
            Outcome::Done(name) => assert_eq!(name.as_deref(), Some("intervene-answer")),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn cancel_ends_a_job_within_a_second_with_a_typed_outcome() {
        let h = Handle::spawn(
            "spin",
            Control::new(),
            Priority::Background,
            |c| loop {
                c.check()?;
                c.advance(1);
                std::thread::sleep(Duration::from_millis(5));
            },
            || {},
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let t = Instant::now();
        h.cancel();
        let out: Outcome<()> = h.join();
        assert!(matches!(out, Outcome::Cancelled), "{out:?}");
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn failures_and_panics_are_failures_not_cancels() {
        let h = Handle::spawn(
            "fail",
            Control::new(),
            Priority::Normal,
            |_| -> anyhow::Result<()> { anyhow::bail!("cancelled by the disk") },
            || {},
        )
        .unwrap();
        assert!(matches!(h.join(), Outcome::Failed(_)), "an error whose text says cancelled is still a failure");
        let h = Handle::spawn(
            "panic",
            Control::new(),
            Priority::Normal,
            |_| -> anyhow::Result<()> { panic!("boom") },
            || {},
        )
        .unwrap();
        match h.join() {
            Outcome::Failed(e) => assert!(e.to_string().contains("boom")),
            o => panic!("{o:?}"),
        }
    }
}
