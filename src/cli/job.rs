//! How the command line runs a job: one Ctrl-C handler for every command, a progress bar fed
//! from the job's [`Control`] (items, rate, ETA, status), and the job's log lines printed above
//! the bar.
//!
//! The first Ctrl-C asks the job to stop at its next check (it leaves complete files only and
//! can be resumed); a second one exits at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::jobs::Control;

/// The control of the job this process runs (Ctrl-C cancels it).
static CURRENT: Mutex<Option<Control>> = Mutex::new(None);
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
static PRESSES: AtomicUsize = AtomicUsize::new(0);

/// Exit status after a cancel (128 + SIGINT, as shells report it).
pub const CANCELLED_EXIT: u8 = 130;

fn install_ctrlc() {
    let r = INSTALLED.get_or_init(|| {
        ctrlc::set_handler(|| {
            if PRESSES.fetch_add(1, Ordering::SeqCst) >= 1 {
                eprintln!("\nintervene: interrupted again, exiting now");
                std::process::exit(CANCELLED_EXIT as i32);
            }
            eprintln!("\nintervene: stopping after the current step (Ctrl-C again to exit at once)");
            if let Some(c) = CURRENT.lock().ok().and_then(|g| g.clone()) {
                c.cancel();
            }
        })
        .map_err(|e| e.to_string())
    });
    if let Err(e) = r {
        tracing::warn!("cannot install the Ctrl-C handler: {e}");
    }
}

/// Makes Ctrl-C cancel `control` (for commands that drive a [`Control`] themselves).
pub fn cancel_on_ctrlc(control: &Control) {
    install_ctrlc();
    if let Ok(mut g) = CURRENT.lock() {
        *g = Some(control.clone());
    }
}

/// Runs `job` on this thread with a progress bar counting `unit`s and Ctrl-C wired to cancel.
/// A cancel comes back as the typed [`crate::jobs::Cancelled`] error (exit status 130).
pub fn run<T>(unit: &str, job: impl FnOnce(&Control) -> anyhow::Result<T>) -> anyhow::Result<T> {
    let control = Control::new();
    cancel_on_ctrlc(&control);
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(&format!("{{spinner}} [{{bar:36}}] {{pos}}/{{len}} {unit}  {{msg}}  eta {{eta}}"))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = {
        let (c, b, stop) = (control.clone(), bar.clone(), stop.clone());
        let unit = unit.to_string();
        std::thread::Builder::new().name("intervene-progress".into()).spawn(move || {
            let mut next_log = 0;
            loop {
                let done = stop.load(Ordering::SeqCst);
                draw(&c, &b, &unit, &mut next_log);
                if done {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let result = job(&control);
    stop.store(true, Ordering::SeqCst);
    if let Ok(t) = ticker {
        let _ = t.join();
    }
    bar.finish_and_clear();
    if let Ok(mut g) = CURRENT.lock() {
        *g = None;
    }
    result
}

fn draw(c: &Control, bar: &ProgressBar, unit: &str, next_log: &mut usize) {
    let (lines, next) = c.log_since(*next_log);
    *next_log = next;
    for l in lines {
        bar.println(l);
    }
    let p = c.progress();
    bar.set_length(p.total);
    bar.set_position(p.done);
    let status = c.status();
    let rate = if p.computed > 0 { format!("{:.1} {unit}/s", p.rate_per_sec()) } else { String::new() };
    bar.set_message(match (status.is_empty(), rate.is_empty()) {
        (true, _) => rate,
        (false, true) => status,
        (false, false) => format!("{rate}  {status}"),
    });
}
