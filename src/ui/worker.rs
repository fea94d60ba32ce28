//! The render worker: networks never run on the UI thread.
//!
//! The UI posts requests into a one-slot mailbox; a newer request replaces an older one that
//! has not started (stale requests are dropped), and the previous image stays on screen until
//! the new result arrives.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A job result with how long it took.
pub struct Finished<R> {
    pub id: u64,
    pub result: anyhow::Result<R>,
    pub elapsed: Duration,
}

struct Shared<Q, R> {
    pending: Option<(u64, Q)>,
    done: Option<Finished<R>>,
    quit: bool,
}

/// A named background thread that runs the newest request with `render`.
pub struct Worker<Q, R> {
    shared: Arc<(Mutex<Shared<Q, R>>, Condvar)>,
    next_id: u64,
    handle: Option<JoinHandle<()>>,
}

impl<Q: Send + 'static, R: Send + 'static> Worker<Q, R> {
    /// Starts the thread. `render` owns the model state; `notify` is called after each result
    /// (the UI passes `ctx.request_repaint`).
    pub fn spawn(
        name: &str,
        mut render: impl FnMut(Q) -> anyhow::Result<R> + Send + 'static,
        notify: impl Fn() + Send + 'static,
    ) -> std::io::Result<Self> {
        let shared = Arc::new((Mutex::new(Shared { pending: None, done: None, quit: false }), Condvar::new()));
        let s2 = Arc::clone(&shared);
        let handle = std::thread::Builder::new().name(name.to_string()).spawn(move || loop {
            let (id, req) = {
                let (lock, cv) = &*s2;
                let Ok(mut g) = lock.lock() else { return };
                loop {
                    if g.quit {
                        return;
                    }
                    if let Some(p) = g.pending.take() {
                        break p;
                    }
                    g = match cv.wait(g) {
                        Ok(g) => g,
                        Err(_) => return,
                    };
                }
            };
            let t = Instant::now();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| render(req)))
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the renderer panicked; see the log")));
            let fin = Finished { id, result, elapsed: t.elapsed() };
            if let Ok(mut g) = s2.0.lock() {
                g.done = Some(fin);
            }
            notify();
        })?;
        Ok(Self { shared, next_id: 0, handle: Some(handle) })
    }

    /// Posts a request, replacing any that has not started yet. Returns its id.
    pub fn request(&mut self, q: Q) -> u64 {
        self.next_id += 1;
        let (lock, cv) = &*self.shared;
        if let Ok(mut g) = lock.lock() {
            g.pending = Some((self.next_id, q));
        }
        cv.notify_one();
        self.next_id
    }

    /// Takes the newest finished result, if any.
    pub fn poll(&self) -> Option<Finished<R>> {
        self.shared.0.lock().ok()?.done.take()
    }

    /// Whether a request is waiting or running.
    pub fn busy(&self, last_shown: u64) -> bool {
        last_shown < self.next_id
    }
}

impl<Q, R> Drop for Worker<Q, R> {
    fn drop(&mut self) {
        if let Ok(mut g) = self.shared.0.lock() {
            g.quit = true;
        }
        self.shared.1.notify_all();
        // Don't join: a long forward would block closing the window; the thread exits after it.
        drop(self.handle.take());
    }
}
