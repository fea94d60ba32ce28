//! The studio under load: frame times of the real window logic while a classifier trains in
//! the background, against the same frames with no job running.
//!
//! `cargo bench --bench ui_under_load [-- --json]` (`tools/bench.sh` runs it). The app runs
//! headless (egui_kittest without a renderer): each frame is one full pass of the studio's
//! logic and UI, the part that blocks input. A new seed every 4 frames keeps the steering
//! renderer busy, as dragging does. The training job is `train classifier --arch mnist-cnn`
//! from the Jobs pane's launcher, on a synthetic two-class folder, started the way the window
//! starts it (background priority, one compute thread). Reported per condition: frame time p50 /
//! p99 / max, and how long a new seed takes to reach the screen (p50 / p99). Goal: frame p99 <
//! 33 ms for the tiny default model. Under `cargo test` (no `--bench`) it runs a few frames.

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use intervene::ui::app::{StudioApp, StudioState};
use intervene::ui::command::Command;
use intervene::ui::job_requests::JobRequest;

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * p).round() as usize]
}

/// A two-class folder of 32×32 images (enough for many epochs of steps).
fn folder(dir: &std::path::Path) {
    for c in 0..2 {
        let d = dir.join(c.to_string());
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..256u32 {
            let img = image::RgbImage::from_fn(32, 32, |x, y| {
                let on = if c == 0 { x < 16 } else { y < 16 };
                image::Rgb([if on { 200 } else { 40 }, (i * 13 % 200) as u8, 90])
            });
            img.save(d.join(format!("{i:03}.png"))).unwrap();
        }
    }
}

struct Measured {
    frames_ms: Vec<f64>,
    latency_ms: Vec<f64>,
}

fn measure(h: &mut Harness<'static, StudioApp>, frames: usize) -> Measured {
    let (mut frames_ms, mut latency_ms) = (Vec::new(), Vec::new());
    let mut asked: Option<(Instant, Option<u64>)> = None;
    for f in 0..frames {
        if f % 4 == 0 && asked.is_none() {
            h.state_mut().state.seed += 1;
            asked = Some((Instant::now(), h.state().shown_image_hash()));
        }
        let t = Instant::now();
        h.step();
        frames_ms.push(t.elapsed().as_secs_f64() * 1e3);
        if let Some((t0, before)) = asked {
            if h.state().shown_image_hash() != before {
                latency_ms.push(t0.elapsed().as_secs_f64() * 1e3);
                asked = None;
            }
        }
        // A 60 Hz display: the next frame starts a vsync later.
        std::thread::sleep(Duration::from_millis(16));
    }
    Measured { frames_ms, latency_ms }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let json = std::env::args().any(|a| a == "--json");
    let frames = if bench { 600 } else { 8 };
    let root = std::env::temp_dir().join(format!("intervene-ui-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    folder(&root.join("data"));
    let state = StudioState { model: intervene::DEFAULT_BIGGAN.into(), components: None, ..StudioState::default() };
    let model = state.model.clone();
    let mut h =
        Harness::builder().with_size([1280.0, 820.0]).build_eframe(move |cc| StudioApp::with_creation(cc, state, true));
    let start = Instant::now();
    while h.state().shown_image_hash().is_none() {
        assert!(start.elapsed() < Duration::from_secs(120), "no first frame: {:?}", h.state().error());
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    let idle = measure(&mut h, frames);

    let mut form = intervene::ui::panes::train_form::TrainForm {
        data: root.join("data").display().to_string(),
        epochs: 1000,
        out: root.join("run").display().to_string(),
        ..Default::default()
    };
    form.resume = false;
    let settings = form.settings().expect("training settings");
    let name = format!("train {}", "run");
    h.state_mut().send(Command::Start(JobRequest::TrainClassifier {
        settings: Box::new(settings),
        out: root.join("run"),
        resume: false,
    }));
    let start = Instant::now();
    while h.state().board.get(&name).is_none_or(|e| e.control.progress().done < 2) {
        assert!(start.elapsed() < Duration::from_secs(120), "the training job did not start: {:?}", h.state().error());
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    let loaded = measure(&mut h, frames);
    let steps = h.state().board.get(&name).map_or(0, |e| e.control.progress().done);
    h.state_mut().send(Command::Cancel(name));
    h.run_steps(2);

    for (load, m) in [("idle", &idle), ("training mnist-cnn", &loaded)] {
        let lat = |p| if m.latency_ms.is_empty() { f64::NAN } else { percentile(&m.latency_ms, p) };
        if json {
            println!(
                "{}",
                serde_json::json!({"model": model, "load": load, "frames": m.frames_ms.len(),
                    "frame_p50_ms": percentile(&m.frames_ms, 0.5), "frame_p99_ms": percentile(&m.frames_ms, 0.99),
                    "frame_max_ms": percentile(&m.frames_ms, 1.0), "new_seed_p50_ms": lat(0.5), "new_seed_p99_ms": lat(0.99),
                    "train_steps": if load == "idle" { 0 } else { steps }})
            );
        } else {
            println!(
                "ui {model}, {load}: frame p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} frames; new seed on screen p50 {:.0} ms, p99 {:.0} ms",
                percentile(&m.frames_ms, 0.5),
                percentile(&m.frames_ms, 0.99),
                percentile(&m.frames_ms, 1.0),
                m.frames_ms.len(),
                lat(0.5),
                lat(0.99)
            );
        }
    }
    if !json {
        println!("(the training job ran {steps} steps meanwhile)");
    }
    let _ = std::fs::remove_dir_all(&root);
}
