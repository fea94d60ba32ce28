//! The counterfactual (CGN) mode of the studio, driven headless through accesskit: the GPU
//! compositing shader against the CPU path pixel for pixel, class changes, live mask shaping
//! without a network run, and the export job from the window.

mod common;

use common::ui::{harness_sized, step_until, tiny};

use egui_kittest::kittest::Queryable as _;
use intervene::composite::View;
use intervene::ui::app::StudioState;

/// The counterfactual mode on the random-weight test CGN (whatever the bundled default is), with
/// the steering side on the test BigGAN without components (no load message in the status).
fn cgn_state() -> StudioState {
    let mut s = StudioState { cgn_mode: true, show_perf: false, ..tiny() };
    s.cgn.model = intervene::models::cgn::DEFAULT_CGN.into();
    s
}

#[test]
fn the_gpu_composite_shows_exactly_the_cpu_pixels() {
    let mut h = harness_sized(cgn_state(), "ui-cgn", 1280.0, 860.0);
    step_until(&mut h, "the first parts", |a| a.cgn_shown().is_some());
    assert!(h.state().gpu_compose(), "the wgpu pipeline is installed");
    for shape in [Default::default(), intervene::composite::MaskShape { softness: 0.2, threshold: 0.6 }] {
        h.state_mut().state.cgn.mask = shape;
        h.run_steps(3);
        let shot = h.render().expect("a wgpu frame");
        let ppp = h.ctx.pixels_per_point();
        let app = h.state();
        let parts = &app.cgn_shown().unwrap().parts;
        for view in [View::Mask, View::Foreground, View::Background, View::Composite] {
            let cpu = parts.render(view, shape);
            let rect = app.cgn_view_rects()[view as usize];
            let (mut worst, mut off) = (0i32, 0usize);
            for y in 0..parts.height {
                for x in 0..parts.width {
                    // The centre of source pixel (x, y) on screen.
                    let sx = ((rect.min.x + (x as f32 + 0.5) * rect.width() / parts.width as f32) * ppp) as u32;
                    let sy = ((rect.min.y + (y as f32 + 0.5) * rect.height() / parts.height as f32) * ppp) as u32;
                    let gpu = shot.get_pixel(sx, sy);
                    for c in 0..3 {
                        let d = (gpu[c] as i32 - cpu.pixels[(y * parts.width + x) * 3 + c] as i32).abs();
                        worst = worst.max(d);
                        off += usize::from(d != 0);
                    }
                }
            }
            assert!(
                worst <= 1 && off * 1000 <= parts.width * parts.height * 3,
                "{view:?} {shape:?}: worst {worst}, {off} values differ"
            );
        }
    }
}

#[test]
fn classes_change_the_composite_and_mask_shaping_needs_no_network_run() {
    let mut h = harness_sized(cgn_state(), "ui-cgn", 1280.0, 860.0);
    step_until(&mut h, "the first parts", |a| a.cgn_shown().is_some());
    let first = h.state().cgn_composite_hash();
    let version = h.state().cgn_shown().unwrap().request.clone();
    // Moving the threshold slider re-composites the same parts.
    h.state_mut().state.cgn.mask.threshold = 0.8;
    h.state_mut().state.cgn.mask.softness = 0.1;
    h.run_steps(3);
    assert_eq!(h.state().cgn_shown().unwrap().request, version, "no new network request");
    assert_ne!(h.state().cgn_composite_hash(), first);
    h.get_by_label("Neutral mask").click();
    h.run_steps(2);
    assert_eq!(h.state().cgn_composite_hash(), first);
    // A different texture class: a new render, a different composite, the same mask.
    let mask_before = h.state().cgn_shown().unwrap().parts.mask.clone();
    h.state_mut().state.cgn.classes[1].class = 9;
    step_until(&mut h, "the texture change", |a| a.cgn_shown().is_some_and(|r| r.request.classes[1].class == 9));
    assert_ne!(h.state().cgn_composite_hash(), first);
    assert_eq!(h.state().cgn_shown().unwrap().parts.mask, mask_before, "the shape mechanism did not change");
    // Lock: all mechanisms take the shape class.
    h.get_by_label("Lock to one class (the shape's)").click();
    step_until(&mut h, "locked classes", |a| {
        a.cgn_shown().is_some_and(|r| r.request.classes[1].class == r.request.classes[0].class)
    });
}

#[test]
fn the_recorded_mask_check_warns_on_an_inverted_shape_class() {
    // The bundled colored CGN ships its check (models/cgn-colored/masks.json): 0, 5, 6, 9 inverted.
    let mut state = cgn_state();
    state.cgn.model = "cgn-colored".into();
    state.cgn.classes[0].class = 0;
    let mut h = harness_sized(state, "ui-cgn", 1280.0, 860.0);
    step_until(&mut h, "the first parts", |a| a.cgn_shown().is_some());
    h.run_steps(2);
    h.get_by_label("Masks: 6 upright, 4 inverted (0, 5, 6, 9); shape 51.5 %, 4 below 50 % (0, 5, 6, 9)");
    let warning = "Class 0's mask is inverted in this CGN: its counterfactuals swap the wrong parts.";
    h.get_by_label(warning);
    h.state_mut().state.cgn.classes[0].class = 1;
    step_until(&mut h, "shape class 1", |a| a.cgn_shown().is_some_and(|r| r.request.classes[0].class == 1));
    h.run_steps(2);
    assert!(h.query_by_label(warning).is_none(), "class 1's mask is upright");
    // wildlife-v2's class 4 passes the frame check, but its masks do not read as a 4
    // (models/cgn-wildlife-v2/masks.json: shape 0 %).
    h.state_mut().state.cgn.model = "cgn-wildlife-v2".into();
    h.state_mut().state.cgn.classes[0].class = 4;
    step_until(&mut h, "wildlife-v2", |a| a.cgn_shown().is_some_and(|r| r.request.model == "cgn-wildlife-v2"));
    h.run_steps(2);
    h.get_by_label(
        "Class 4's mask reads as a 4 only 0 % of the time: its counterfactuals carry little of the digit's shape.",
    );
    // A CGN with no recorded check shows none.
    h.state_mut().state.cgn.model = intervene::models::cgn::DEFAULT_CGN.into();
    step_until(&mut h, "the random CGN", |a| a.cgn_shown().is_some_and(|r| r.masks.is_none()));
    h.run_steps(2);
    assert!(h.query_by_label_contains("Masks:").is_none());
}

#[test]
fn the_export_runs_from_the_window_with_progress() {
    let dir = std::env::temp_dir().join(format!("intervene-ui-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut state = cgn_state();
    state.cgn.export_n = 200;
    state.cgn.export_k = 4;
    state.cgn.export_dir = Some(dir.display().to_string());
    let mut h = harness_sized(state, "ui-cgn", 1280.0, 860.0);
    step_until(&mut h, "the first parts", |a| a.cgn_shown().is_some());
    h.get_by_label("Export counterfactuals").click();
    step_until(&mut h, "the export", |a| !a.export_running() && (a.status().is_some() || a.error().is_some()));
    assert!(
        h.state().status().unwrap_or_default().starts_with("exported 200 images"),
        "{:?} {:?}",
        h.state().status(),
        h.state().error()
    );
    let labels = intervene::jobs::cgn_export::read_labels(&dir.join("labels.csv")).unwrap();
    assert_eq!(labels.len(), 200);
    assert!(labels.iter().all(|(_, f, _)| dir.join(f).is_file()));
}

#[test]
fn the_interpolation_sheet_has_a_row_per_mechanism_from_class_to_class() {
    let dir = std::env::temp_dir().join(format!("intervene-ui-sheet-{}", std::process::id()));
    let mut state = cgn_state();
    state.capture_dir = Some(dir.display().to_string());
    state.cgn.classes[0].other = 8;
    state.cgn.classes[1].other = 1;
    let mut h = harness_sized(state, "ui-cgn", 1280.0, 860.0);
    step_until(&mut h, "the first parts", |a| a.cgn_shown().is_some());
    h.get_by_label("Save interpolation sheet").click();
    step_until(&mut h, "the sheet", |a| a.status().is_some_and(|s| s.starts_with("saved")) || a.error().is_some());
    let path = h.state().status().unwrap().trim_start_matches("saved ").to_string();
    let sheet = image::open(&path).unwrap().to_rgb8();
    assert_eq!((sheet.width(), sheet.height()), (8 * 32, 3 * 32));
    let sheet = &sheet;
    let tile = |r: u32, c: u32| -> Vec<u8> {
        (0..32).flat_map(|y| (0..32).flat_map(move |x| sheet.get_pixel(c * 32 + x, r * 32 + y).0)).collect()
    };
    // Column 0 of every row is the unmixed image; the texture row ends elsewhere; the background
    // row (other = class) stays constant.
    assert_eq!(tile(0, 0), tile(1, 0));
    assert_eq!(tile(1, 0), tile(2, 0));
    assert_ne!(tile(0, 0), tile(0, 7));
    assert_ne!(tile(1, 0), tile(1, 7));
    assert_eq!(tile(2, 0), tile(2, 7));
}

#[test]
fn the_counterfactual_mode_matches_its_snapshot() {
    let mut state = cgn_state();
    state.cgn.export_dir = Some("/data/cf".into()); // shown in the panel: keep the snapshot machine-independent
    let mut h = harness_sized(state, "ui-cgn", 1280.0, 860.0);
    step_until(&mut h, "the first parts", |a| a.cgn_shown().is_some());
    h.run_steps(3);
    h.snapshot("studio_cgn");
}
