//! The Jobs pane driven through accesskit: a job started from a pane appears with its
//! progress and a cancel button; starting it again while it runs is refused with a visible
//! "already running" message; cancel ends it as "cancelled" within a second.

mod common;

use common::ui::{harness, step_until, tiny};

use std::time::{Duration, Instant};

use egui_kittest::kittest::Queryable as _;
use egui_kittest::Harness;
use intervene::ui::app::{BottomTab, StudioApp, StudioState};
use intervene::ui::command::Command;
use intervene::ui::job_requests::JobRequest;

#[test]
fn a_running_job_is_listed_refused_a_second_time_and_cancelled_from_the_jobs_pane() {
    let mut state = tiny();
    // Enough samples that the PCA is still running when we look at it.
    state.pca_samples = 400_000;
    state.bottom_tab = BottomTab::Jobs;
    let model = state.model.clone();
    let class = state.class;
    let mut h = harness(state, "ui-jobs");
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

/// The studio in a window tall enough for the Jobs pane's launcher and a job's details,
/// stepped until its first image.
fn tall_window(state: StudioState) -> Harness<'static, StudioApp> {
    let mut h = Harness::builder()
        .with_size([1400.0, 1500.0])
        .wgpu()
        .build_eframe(move |cc| StudioApp::with_creation(cc, state, true));
    step_until(&mut h, "the first image", |a| a.shown_image_hash().is_some());
    h
}

/// A tiny image folder: `classes` class folders of `per_class` 32×32 images, each class a
/// different flat colour with a class-dependent bar (learnable in one epoch).
fn colour_folders(dir: &std::path::Path, classes: usize, per_class: usize) {
    for c in 0..classes {
        let d = dir.join(c.to_string());
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..per_class {
            let img = image::RgbImage::from_fn(32, 32, |x, y| {
                let on = if c == 0 { x < 16 } else { y < 16 };
                let v = if on { 220 } else { 30 } as u8;
                image::Rgb([v, (i * 7 % 40) as u8, 255 - v])
            });
            img.save(d.join(format!("{i:03}.png"))).unwrap();
        }
    }
}

#[test]
fn an_export_and_a_training_run_start_from_the_jobs_pane_and_open_where_they_belong() {
    let root = std::env::temp_dir().join(format!("intervene-ui-launch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let mut state = tiny();
    state.bottom_tab = BottomTab::Jobs;
    let model = state.model.clone();
    let mut h = tall_window(state);

    // The steering pane's request fills the export form with the open model and class.
    h.state_mut().send(Command::PrepareExport { model: model.clone(), components: None, class: 3 });
    h.run_steps(2);
    let out = root.join("export");
    {
        let f = &mut h.state_mut().panes.jobs.launcher.export;
        assert_eq!((f.model.as_str(), f.classes.as_str(), f.observational), (model.as_str(), "3", true));
        f.classes = "1,3".into();
        f.per_class = 2;
        f.out = out.display().to_string();
    }
    h.run_steps(2);
    h.get_by_label("Start export").click();
    let name = format!("GenInt export to {}", out.file_name().unwrap().to_string_lossy());
    step_until(&mut h, "the export", |a| a.board.get(&name).is_some_and(|e| !e.phase.is_active()));
    assert_eq!(
        h.state().board.get(&name).map(|e| e.phase.to_string()),
        Some("done".to_string()),
        "{:?}",
        h.state().error()
    );
    assert!(out.join("manifest.jsonl").is_file());
    let mut pngs: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|d| d.path().is_dir())
        .flat_map(|d| {
            std::fs::read_dir(d.path()).unwrap().flatten().map(|f| f.file_name().to_string_lossy().into_owned())
        })
        .collect();
    pngs.sort();
    assert_eq!(pngs, ["00000000.png", "00000001.png", "00000002.png", "00000003.png"]);
    assert!(h.state().status().unwrap_or_default().contains("wrote 4 images"), "{:?}", h.state().status());
    let p = h.state().board.get(&name).unwrap().control.progress();
    assert_eq!((p.done, p.total), (4, 4), "progress counts images");
    h.get_by_label("Use in the sweep").click();
    h.run_steps(2);
    assert_eq!(h.state().state.sweep_real.as_deref(), Some(out.display().to_string().as_str()));

    // Training: a two-class folder, one epoch, curves and per-class accuracy, then Explain.
    let data = root.join("data");
    colour_folders(&data, 2, 16);
    let run = root.join("run");
    h.state_mut().panes.jobs.launcher.form = intervene::ui::panes::launch::Form::Train;
    h.run_steps(2);
    {
        let f = &mut h.state_mut().panes.jobs.launcher.train;
        f.data = data.display().to_string();
        f.eval = data.display().to_string();
        f.epochs = 1;
        f.batch = 8;
        f.out = run.display().to_string();
    }
    h.run_steps(2);
    h.get_by_label("Start training").click();
    let name = "train run".to_string();
    step_until(&mut h, "the training run", |a| a.board.get(&name).is_some_and(|e| !e.phase.is_active()));
    let e = h.state().board.get(&name).unwrap();
    assert_eq!(e.phase.to_string(), "done", "{:?}", h.state().error());
    assert!(e.control.with_metrics(|m| m.get("loss").is_some_and(|p| p.len() == 4)), "a loss point per step");
    let bars = e.control.bars().expect("per-class accuracy");
    assert_eq!(bars.values.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(), ["0", "1"]);
    assert!(run.join("config.json").is_file() && run.join("metrics.jsonl").is_file());
    // For a look at the pane (not compared): the window as rendered, in the temp folder.
    if let Ok(img) = h.render() {
        let _ = img.save(std::env::temp_dir().join("intervene-ui-jobs-launcher.png"));
    }
    h.get_by_label("Open in Explain (right)").click();
    h.run_steps(2);
    let app = h.state();
    assert!(app.state.explain.enabled && app.state.explain.two);
    assert_eq!(app.state.explain.slots[1].classifier, run.display().to_string());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn the_bundled_cvae_opens_its_form_and_writes_both_sets_from_the_jobs_pane() {
    let out = std::env::temp_dir().join(format!("intervene-ui-cvae-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut state = tiny();
    state.bottom_tab = BottomTab::Jobs;
    let mut h = tall_window(state);
    // The bundled-models menu's click on the CVAE: the Jobs pane's CVAE form, on that model.
    let entry = intervene::bundled::index().into_iter().find(|e| e.kind == intervene::bundled::Kind::Cvae).unwrap();
    h.state_mut().open_bundled(&entry);
    h.run_steps(3);
    assert_eq!(h.state().panes.jobs.launcher.form, intervene::ui::panes::launch::Form::CvaeExport);
    {
        let f = &mut h.state_mut().panes.jobs.launcher.cvae;
        assert_eq!(f.model, entry.name);
        f.per_class = 2;
        f.out = out.display().to_string();
    }
    h.run_steps(2);
    let _ = h.get_by_label_contains("intervene export cvae --model");
    h.get_by_label("Start CVAE sets").click();
    let name = format!("CVAE sets to {}", out.file_name().unwrap().to_string_lossy());
    step_until(&mut h, "the sets", |a| a.board.get(&name).is_some_and(|e| !e.phase.is_active()));
    assert_eq!(h.state().board.get(&name).map(|e| e.phase.to_string()), Some("done".into()), "{:?}", h.state().error());
    for arm in ["observational", "interventional"] {
        for d in 0..10 {
            assert_eq!(std::fs::read_dir(out.join(arm).join(d.to_string())).unwrap().count(), 2, "{arm}/{d}");
        }
    }
    assert!(h.state().status().unwrap_or_default().contains("wrote 40 of 40"), "{:?}", h.state().status());
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_generator_training_starts_from_the_jobs_pane_plots_its_losses_and_stops_resumably() {
    let root = std::env::temp_dir().join(format!("intervene-ui-gen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let data = root.join("data");
    colour_folders(&data, 2, 16);
    let run = root.join("run");
    let mut state = tiny();
    state.bottom_tab = BottomTab::Jobs;
    let mut h = tall_window(state);
    // The launcher open on the generator form (as the Jobs pane's "New job" opens it).
    h.state_mut().panes.jobs.launcher_open = true;
    h.state_mut().state.show_perf = true;
    h.state_mut().panes.jobs.launcher.form = intervene::ui::panes::launch::Form::TrainGenerator;
    h.run_steps(2);
    // A wrong data name is refused on the form, before any job exists.
    h.state_mut().panes.jobs.launcher.generator.data = "no-such-data".into();
    h.run_steps(2);
    h.get_by_label("Start generator training").click();
    h.run_steps(2);
    let _ = h.get_by_label_contains("not a data set name");
    assert!(h.state().board.entries().is_empty());
    {
        let f = &mut h.state_mut().panes.jobs.launcher.generator;
        f.data = data.display().to_string();
        f.steps = 100_000;
        f.batch = 4;
        f.ch = 4;
        f.pca_samples = 0;
        f.out = run.display().to_string();
    }
    h.run_steps(2);
    let line = h.state().panes.jobs.launcher.generator.command_line();
    assert!(line.starts_with("intervene train biggan --data ") && line.contains("--ch 4 --pca-samples 0"), "{line}");
    let _ = h.get_by_label_contains("Same as: intervene train biggan");
    // For a look at the form (not compared): the window as rendered, in the temp folder.
    if let Ok(img) = h.render() {
        let _ = img.save(std::env::temp_dir().join("intervene-ui-gen-train-form.png"));
    }
    h.get_by_label("Start generator training").click();
    let name = "train run".to_string();
    // Live losses: a point per step on the job's control, the pane's curves.
    step_until(&mut h, "three training steps", |a| {
        a.board.get(&name).is_some_and(|e| e.control.with_metrics(|m| m.get("loss_d").is_some_and(|p| p.len() >= 3)))
    });
    h.get_by_label(&format!("Cancel {name}")).click();
    step_until(&mut h, "the cancel", |a| !a.board.is_active(&name));
    assert_eq!(h.state().board.get(&name).map(|e| e.phase.to_string()), Some("cancelled".to_string()));
    // What was trained is kept: a checkpoint and settings that --resume (or resume here) takes.
    assert!(run.join("checkpoint.safetensors").is_file() && run.join("train.json").is_file());
    // The run's sample sheet is shown beside its curves as soon as the folder holds one.
    let sheet = run.join("samples.png");
    if !sheet.is_file() {
        image::RgbImage::from_pixel(40, 20, image::Rgb([200, 30, 30])).save(&sheet).unwrap();
    }
    h.state_mut().panes.jobs.select(&name);
    step_until(&mut h, "the sheet preview", |a| a.panes.jobs.preview.shown() == Some(sheet.as_path()));
    let _ = h.get_by_label_contains("Latest samples (samples.png)");
    if let Ok(img) = h.render() {
        let _ = img.save(std::env::temp_dir().join("intervene-ui-gen-train-preview.png"));
    }
    let _ = std::fs::remove_dir_all(&root);
}
