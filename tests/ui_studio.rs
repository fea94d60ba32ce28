//! The studio window driven through accesskit, headless (wgpu on a software adapter).

mod common;

use common::ui::{harness, step_until, tiny};

use std::time::Duration;

use egui_kittest::kittest::Queryable as _;
use egui_kittest::Harness;
use intervene::ui::app::StudioApp;

/// Waits until the image on screen is the one for the current settings.
fn settle(h: &mut Harness<'static, StudioApp>, what: &str) {
    step_until(h, what, |a| {
        a.shown().is_some_and(|r| r.request.seed == a.state.seed && r.request.class == a.state.class)
    });
    // One more round trip so a request posted in the last frame is answered too.
    for _ in 0..3 {
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    step_until(h, what, |a| a.shown().is_some());
}

#[test]
fn opens_on_the_bundled_model_and_seed_buttons_change_the_image() {
    let mut h = harness(tiny(), "ui-test");
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
    let mut state = tiny();
    state.model = "/definitely/not/a/model".into();
    let mut h = harness(state, "ui-test");
    step_until(&mut h, "the error", |a| a.error().is_some());
    assert!(h.state().error().unwrap_or_default().contains("no BigGAN model found"));
    let _ = h.get_by_label_contains("no BigGAN model found");
    // Switching back to the bundled model recovers.
    h.state_mut().state.model = intervene::DEFAULT_BIGGAN.into();
    step_until(&mut h, "an image after recovering", |a| a.shown_image_hash().is_some() && a.error().is_none());
}

#[test]
fn a_cgn_frame_rendered_in_the_background_keeps_the_steering_error() {
    // The CGN pane renders even in steering mode. Its frames used to clear every error, so a
    // bad BigGAN model's message vanished whenever a CGN frame landed after it (this made
    // the corrupt-weights test below time out under load).
    let mut state = tiny();
    state.model = "/definitely/not/a/model".into();
    let mut h = harness(state, "ui-test");
    step_until(&mut h, "the error and a CGN frame", |a| a.error().is_some() && a.cgn_shown().is_some());
    let seed = h.state().state.cgn.seed + 1;
    h.state_mut().state.cgn.seed = seed;
    step_until(&mut h, "the next CGN frame", |a| a.cgn_shown().is_some_and(|r| r.request.seed == seed));
    let err = h.state().error().unwrap_or_default().to_string();
    assert!(err.contains("no BigGAN model found"), "the steering error stays on screen: {err:?}");
}

#[test]
fn a_corrupt_weights_file_shows_an_error_naming_it() {
    let dir = std::env::temp_dir().join(format!("intervene-ui-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/biggan-deep-tiny-128/config.json"),
        dir.join("config.json"),
    )
    .unwrap();
    std::fs::write(dir.join("model.safetensors"), b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}").unwrap();
    let mut state = tiny();
    state.model = dir.display().to_string();
    let mut h = harness(state, "ui-test");
    step_until(&mut h, "the error", |a| a.error().is_some());
    let err = h.state().error().unwrap_or_default().to_string();
    assert!(err.contains("model.safetensors"), "the error names the file: {err}");
    h.state_mut().state.model = intervene::DEFAULT_BIGGAN.into();
    step_until(&mut h, "recovery", |a| a.shown_image_hash().is_some() && a.error().is_none());
}

#[test]
fn typing_a_class_name_and_picking_it_changes_the_class() {
    let mut h = harness(tiny(), "ui-test");
    step_until(&mut h, "the first image", |a| a.shown_image_hash().is_some());
    let before = h.state().shown_image_hash();
    h.get_by_role_and_label(egui::accesskit::Role::TextInput, "Search").type_text("goldfish");
    h.run_steps(2);
    h.get_by_label("1 goldfish").click();
    h.run_steps(1);
    assert_eq!(h.state().state.class, 1);
    step_until(&mut h, "the goldfish image", |a| a.shown().is_some_and(|r| r.request.class == 1));
    assert_ne!(h.state().shown_image_hash(), before, "a new class renders a new image");
}

#[test]
fn pca_from_the_ui_then_dragging_a_component_slider_changes_the_image_and_capture_regenerates_it() {
    let mut state = tiny();
    state.pca_samples = 600;
    let mut h = harness(state, "ui-test");
    step_until(&mut h, "the first image", |a| a.shown_image_hash().is_some());
    h.get_by_label("Compute PCA").click();
    step_until(&mut h, "the PCA job", |a| a.components().is_some() && !a.job_running());
    assert!(h.state().error().is_none(), "{:?}", h.state().error());
    settle(&mut h, "the unedited image");
    let before = h.state().shown_image_hash();

    // Drag slider PC0 to the right with the pointer, as a user would.
    let label = format!("PC0 ({:.1}%)", 100.0 * h.state().components().unwrap().var_ratio[0]);
    let rect = h.get_by_role_and_label(egui::accesskit::Role::Slider, &label).rect();
    let from = rect.left_center() + egui::vec2(rect.width() * 0.25, 0.0);
    let to = from + egui::vec2(rect.width() * 0.2, 0.0);
    h.event(egui::Event::PointerMoved(from));
    h.event(egui::Event::PointerButton {
        pos: from,
        button: egui::PointerButton::Primary,
        pressed: true,
        modifiers: Default::default(),
    });
    h.step();
    for k in 1..=5 {
        h.event(egui::Event::PointerMoved(from + (to - from) * (k as f32 / 5.0)));
        h.step();
    }
    h.event(egui::Event::PointerButton {
        pos: to,
        button: egui::PointerButton::Primary,
        pressed: false,
        modifiers: Default::default(),
    });
    h.step();
    let strength = h.state().state.sliders[0];
    assert!(strength != 0.0, "the drag moved PC0 (value {strength})");
    step_until(&mut h, "the edited image", |a| {
        a.shown().is_some_and(|r| r.request.edits.iter().any(|e| e.component == 0 && e.strength == strength))
    });
    assert_ne!(h.state().shown_image_hash(), before, "the edit changed the image");

    // Capture writes z.npy + JSON whose command reproduces the pixels through the CLI.
    let dir = std::env::temp_dir().join(format!("intervene-ui-capture-{}", std::process::id()));
    h.state_mut().state.capture_dir = Some(dir.display().to_string());
    h.state_mut().capture();
    let status = h.state().status().unwrap_or_default().to_string();
    assert!(status.starts_with("captured "), "{status}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(status.trim_start_matches("captured ")).unwrap()).unwrap();
    let cmd = json["command"].as_str().unwrap().to_string();
    assert!(cmd.starts_with("intervene steer "), "{cmd}");
    let args: Vec<String> = shell_words(&cmd)[1..].to_vec();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_intervene")).args(&args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let regenerated = args.iter().skip_while(|a| *a != "--out").nth(1).unwrap();
    let shown = image::open(dir.join(json["image"].as_str().unwrap())).unwrap().to_rgb8();
    let again = image::open(regenerated).unwrap().to_rgb8();
    assert_eq!(shown.as_raw(), again.as_raw(), "the CLI regenerates the captured frame bit for bit");
}

#[test]
fn the_window_matches_its_snapshot() {
    let mut h = harness(tiny(), "ui-test");
    step_until(&mut h, "the first image", |a| a.shown_image_hash().is_some());
    h.state_mut().state.show_perf = false; // timings differ run to run
    h.run_steps(3);
    h.snapshot("studio_default");
}

/// Splits a command line written by `capture::command_line` (single-quoted words only).
fn shell_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in s.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            _ => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[test]
fn the_explain_pane_follows_the_frame_and_explains_image_files() {
    let mut state = tiny();
    state.explain.enabled = true;
    state.explain.two = true; // GradCAM and GradCAM++ of the bundled MobileNetV2 side by side
    let mut h = harness(state, "ui-test");
    step_until(&mut h, "the first explanation", |a| a.explained().is_some_and(|e| e.len() == 2));
    let first: Vec<usize> = h.state().explained().unwrap().iter().map(|e| e.target).collect();
    {
        let e = &h.state().explained().unwrap()[0];
        assert_eq!((e.overlay.width, e.overlay.height), (224, 224));
        assert_eq!(e.top5.len(), 5);
        assert!(e.top5.windows(2).all(|w| w[0].2 >= w[1].2), "top-5 sorted");
        assert_eq!(e.layer, "features.18");
        assert!(
            e.layers.iter().any(|(n, s)| n == "features.18" && s == &vec![1, 1280, 7, 7]),
            "layer picker lists shapes"
        );
        assert_eq!(
            h.query_all_by_label_contains(&format!("1. {} ", e.top5[0].1)).count(),
            2,
            "top-1 shown in both columns"
        );
    }
    assert_eq!(first[0], first[1], "both columns explain the top-1 class");
    // A new frame is explained again.
    let overlay = h.state().explained().unwrap()[0].overlay.pixels.clone();
    h.get_by_label("Next").click();
    step_until(&mut h, "the next frame's explanation", |a| {
        !a.explain_busy() && a.explained().is_some_and(|e| e[0].overlay.pixels != overlay)
    });
    // An image file (a photo of a cat) instead of the generated frame.
    let cat = std::env::temp_dir().join(format!("intervene-ui-cat-{}.png", std::process::id()));
    let img = image::RgbImage::from_fn(96, 80, |x, y| image::Rgb([(x * 2) as u8, (y * 3) as u8, 128]));
    img.save(&cat).unwrap();
    h.state_mut().open_path(intervene::ui::command::DialogKind::ImageFile, cat.clone());
    step_until(&mut h, "the file's explanation", |a| {
        !a.explain_busy()
            && a.explained().is_some_and(|e| e[0].overlay.pixels != overlay)
            && a.state.explain.image_file.is_some()
    });
    assert!(h.state().error().is_none(), "{:?}", h.state().error());
}

#[test]
fn the_gpu_heatmap_shows_exactly_the_cpu_overlay() {
    let mut state = tiny();
    state.explain.enabled = true;
    state.explain.alpha = 0.4;
    state.show_perf = false;
    let mut h = Harness::builder()
        .with_size([1600.0, 1000.0])
        .wgpu()
        .build_eframe(move |cc| StudioApp::with_creation(cc, state, true));
    step_until(&mut h, "the explanation", |a| a.explained().is_some_and(|e| !e.is_empty()) && !a.explain_busy());
    h.run_steps(3);
    let shot = h.render().expect("a wgpu frame");
    let ppp = h.ctx.pixels_per_point();
    let app = h.state();
    let e = &app.explained().unwrap()[0];
    let cpu = intervene::explain::cam::overlay_alpha(&e.heat.image, &e.heat.map, 0.4);
    let rect = app.explain_rects()[0];
    let (w, hh) = (e.heat.width, e.heat.height);
    assert!(rect.width() * ppp >= w as f32, "one screen pixel per image pixel at least");
    let (mut worst, mut off) = (0i32, 0usize);
    for y in 0..hh {
        for x in 0..w {
            let sx = ((rect.min.x + (x as f32 + 0.5) * rect.width() / w as f32) * ppp) as u32;
            let sy = ((rect.min.y + (y as f32 + 0.5) * rect.height() / hh as f32) * ppp) as u32;
            let gpu = shot.get_pixel(sx, sy);
            for c in 0..3 {
                let d = (gpu[c] as i32 - cpu[(y * w + x) * 3 + c] as i32).abs();
                worst = worst.max(d);
                off += usize::from(d != 0);
            }
        }
    }
    eprintln!("GPU vs CPU overlay: worst {worst}, {off} of {} values differ", w * hh * 3);
    assert!(worst <= 1 && off * 1000 <= w * hh * 3, "worst {worst}, {off} values differ");
}

#[test]
fn the_strategy_sweep_runs_from_the_window_and_plots_three_curves() {
    let real = std::env::temp_dir().join(format!("intervene-ui-sweep-real-{}", std::process::id()));
    std::fs::create_dir_all(&real).unwrap();
    for i in 0..2u32 {
        image::RgbImage::from_fn(40, 40, |x, y| image::Rgb([(x * 6 + i * 50) as u8, (y * 5) as u8, 90]))
            .save(real.join(format!("{i}.png")))
            .unwrap();
    }
    let mut state = tiny();
    state.pca_samples = 600;
    state.sweep_real = Some(real.display().to_string());
    state.sweep_per_setting = 2;
    let mut h = harness(state, "ui-test");
    step_until(&mut h, "the first image", |a| a.shown_image_hash().is_some());
    h.get_by_label("Compute PCA").click();
    step_until(&mut h, "the PCA job", |a| a.components().is_some() && !a.job_running());
    h.get_by_label("Strategy sweep, log P(x|z)").click();
    h.run_steps(2);
    h.get_by_label("Run sweep").click();
    step_until(&mut h, "the sweep", |a| a.sweep_points().is_some() || a.error().is_some());
    assert!(h.state().error().is_none(), "{:?}", h.state().error());
    let nc = h.state().components().unwrap().num_components();
    let ks = [1, 5, 10, 20, 40, 60, 80].iter().filter(|k| **k <= nc).count();
    let points = h.state().sweep_points().unwrap();
    assert_eq!(points.len(), 5 + ks + 6, "5 truncations, the top-k values the file allows, 6 scales");
    assert!(points.iter().all(|p| p.estimate.is_finite()));
    // The window with the curves is up.
    let _ = h.get_by_label("Save CSV");
}
