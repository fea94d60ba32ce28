//! The studio window in a headless harness (wgpu on a software adapter), shared by the UI tests.

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use intervene::ui::app::{StudioApp, StudioState};

/// The studio on the random-weight test model and ImageNet class 207 (whatever the bundled
/// default is), with MobileNetV2 explaining it: these tests are about the window, not the weights.
pub fn tiny() -> StudioState {
    let mut s =
        StudioState { model: intervene::DEFAULT_BIGGAN.into(), components: None, class: 207, ..StudioState::default() };
    for slot in &mut s.explain.slots {
        slot.classifier = "mobilenet_v2".into();
    }
    s
}

/// The PCA cache of this test process: a fresh folder (named by the first `tag`), out of the
/// user's, made and pointed to once. The tests of a binary run in parallel and share it: clearing
/// it per test deleted another test's components between its PCA job's write and read.
static CACHE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// A `width × height` window on `state`, with PCA results cached in [`CACHE`].
pub fn harness_sized(state: StudioState, tag: &str, width: f32, height: f32) -> Harness<'static, StudioApp> {
    CACHE.get_or_init(|| {
        let cache = std::env::temp_dir().join(format!("intervene-{tag}-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&cache);
        // SAFETY: runs once, inside the first harness's construction, before this process starts
        // any studio (the only reader of the variable).
        unsafe { std::env::set_var("INTERVENE_CACHE", &cache) };
        cache
    });
    Harness::builder()
        .with_size([width, height])
        .wgpu()
        .build_eframe(move |cc| StudioApp::with_creation(cc, state, true))
}

/// A 1280 × 820 window on `state`.
pub fn harness(state: StudioState, tag: &str) -> Harness<'static, StudioApp> {
    harness_sized(state, tag, 1280.0, 820.0)
}

/// Steps the UI (workers render in the background) until `done` holds; fails after two
/// minutes, naming what it waited for and the error the window shows.
pub fn step_until(h: &mut Harness<'static, StudioApp>, what: &str, done: impl Fn(&StudioApp) -> bool) {
    let start = Instant::now();
    while !done(h.state()) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what} (error shown: {:?})",
            h.state().error()
        );
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    h.step();
}
