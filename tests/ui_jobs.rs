//! The Jobs pane driven through accesskit: a job started from a pane appears with its
//! progress and a cancel button; starting it again while it runs is refused with a visible
//! "already running" message; cancel ends it as "cancelled" within a second.

use std::time::{Duration, Instant};

use egui_kittest::kittest::Queryable as _;
use egui_kittest::Harness;
use intervene::ui::app::{BottomTab, StudioApp, StudioState};
use intervene::ui::command::Command;
use intervene::ui::job_requests::JobRequest;

/// The studio on the random-weight test model (whatever the bundled default is), with
/// MobileNetV2 explaining it: these tests are about the window, not the weights.
fn tiny() -> StudioState {
    let mut s = StudioState { model: intervene::DEFAULT_BIGGAN.into(), components: None, ..StudioState::default() };
    for slot in &mut s.explain.slots {
        slot.classifier = "mobilenet_v2".into();
    }
    s
}

fn harness(state: StudioState) -> Harness<'static, StudioApp> {
    let cache = std::env::temp_dir().join(format!("intervene-ui-jobs-cache-{}", std::process::id()));
    // SAFETY: set before any thread of this test reads it.
    unsafe { std::env::set_var("INTERVENE_CACHE", &cache) };
    let _ = std::fs::remove_dir_all(&cache);
    Harness::builder()
        .with_size([1280.0, 820.0])
        .wgpu()
        .build_eframe(move |cc| StudioApp::with_creation(cc, state, true))
}

fn step_until(h: &mut Harness<'static, StudioApp>, what: &str, done: impl Fn(&StudioApp) -> bool) {
    let start = Instant::now();
    while !done(h.state()) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what} (error: {:?})",
            h.state().error()
        );
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    h.step();
}

#[test]
fn a_running_job_is_listed_refused_a_second_time_and_cancelled_from_the_jobs_pane() {
    let mut state = tiny();
    // Enough samples that the PCA is still running when we look at it.
    state.pca_samples = 400_000;
    state.bottom_tab = BottomTab::Jobs;
    let model = state.model.clone();
    let class = state.class;
    let mut h = harness(state);
    step_until(&mut h, "the first image", |a| a.shown_image_hash().is_some());
    h.get_by_label("Compute PCA").click();
    step_until(&mut h, "the job on the board", |a| a.board.entries().iter().any(|e| e.phase.is_active()));
    let name = format!("PCA {model} class {class}");
    assert!(
        h.state().board.is_active(&name),
        "jobs: {:?}",
        h.state().board.entries().iter().map(|e| &e.spec.name).collect::<Vec<_>>()
    );

    // The same job again, as a second start from any pane would send it.
    let cfg = intervene::steer::pca_job::default_config(400_000, 80, 0.4, 0);
    let again = JobRequest::Pca { model, class, cfg, out: std::env::temp_dir().join("unused.npz"), cpu: true };
    h.state_mut().send(Command::Start(again));
    h.run_steps(2);
    let err = h.state().error().unwrap_or_default().to_string();
    assert!(err.contains("is already running"), "{err}");
    let _ = h.get_by_label_contains("is already running");

    // The Jobs pane lists it with a cancel button; cancelling ends it quickly.
    h.get_by_label(&format!("Cancel {name}")).click();
    let t = Instant::now();
    step_until(&mut h, "the cancel", |a| !a.board.is_active(&name));
    assert!(t.elapsed() < Duration::from_secs(5), "cancel took {:?}", t.elapsed());
    assert_eq!(h.state().board.get(&name).map(|e| e.phase.to_string()), Some("cancelled".to_string()));
    assert!(h.state().components().is_none(), "a cancelled PCA loads nothing");
    assert!(h.get_all_by_label_contains("cancelled").count() >= 1, "the window says so");
}
