//! The studio window driven through accesskit, headless (wgpu on a software adapter).

use std::time::{Duration, Instant};

use egui_kittest::kittest::Queryable as _;
use egui_kittest::Harness;
use intervene::ui::app::{StudioApp, StudioState};

fn harness(state: StudioState) -> Harness<'static, StudioApp> {
    Harness::builder()
        .with_size([1100.0, 760.0])
        .build_eframe(move |cc| StudioApp::with_state(cc.egui_ctx.clone(), state, true))
}

/// Steps the UI (the worker renders in the background) until `done` holds.
fn step_until(h: &mut Harness<'static, StudioApp>, what: &str, done: impl Fn(&StudioApp) -> bool) {
    let start = Instant::now();
    while !done(h.state()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what} (error shown: {:?})",
            h.state().error()
        );
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    h.step();
}

#[test]
fn opens_on_the_bundled_model_and_seed_buttons_change_the_image() {
    let mut h = harness(StudioState::default());
    step_until(&mut h, "the first image", |a| a.shown_image_hash().is_some());
    assert!(h.state().error().is_none(), "no error: {:?}", h.state().error());
    let first = h.state().shown_image_hash();
    h.get_by_label("Next").click();
    step_until(&mut h, "the next seed's image", |a| a.shown_image_hash() != first);
    assert_eq!(h.state().state.seed, 1);
    h.get_by_label("Prev").click();
    step_until(&mut h, "seed 0 again", |a| a.shown_image_hash() == first);
}

#[test]
fn a_bad_model_path_shows_an_error_and_the_app_keeps_running() {
    let mut state = StudioState::default();
    state.model = "/definitely/not/a/model".into();
    let mut h = harness(state);
    step_until(&mut h, "the error", |a| a.error().is_some());
    assert!(h.state().error().unwrap_or_default().contains("no BigGAN model found"));
    let _ = h.get_by_label_contains("no BigGAN model found");
    // Switching back to the bundled model recovers.
    h.state_mut().state.model = intervene::DEFAULT_BIGGAN.into();
    step_until(&mut h, "an image after recovering", |a| a.shown_image_hash().is_some() && a.error().is_none());
}
