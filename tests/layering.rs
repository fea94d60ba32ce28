//! The layering the project keeps, checked on the source tree: `cli` and `ui` are faces over the
//! library; nothing outside `src/cli/` imports `crate::cli`, and engine modules (everything
//! outside `src/cli/`, `src/ui/` and `src/main.rs`) name neither clap nor egui/eframe.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Lines that are code (not comments), for matching paths like `clap::`.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter(|(_, l)| {
        let t = l.trim_start();
        !(t.starts_with("//") || t.starts_with("*"))
    })
}

#[test]
fn faces_sit_over_the_engine_and_the_engine_names_no_ui_or_cli_crate() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 50, "found the source tree");
    let mut faults = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
        let face = rel.starts_with("cli/") || rel.starts_with("ui/") || rel == "main.rs";
        let text = std::fs::read_to_string(f).unwrap();
        for (i, line) in code_lines(&text) {
            if !rel.starts_with("cli/") && rel != "main.rs" && line.contains("crate::cli") {
                faults.push(format!("src/{rel}:{}: imports crate::cli: {}", i + 1, line.trim()));
            }
            if !face {
                for name in ["clap::", "egui::", "eframe::", "egui_plot::", "egui_extras::"] {
                    if line.contains(name) {
                        faults.push(format!("src/{rel}:{}: engine module names {name}: {}", i + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(faults.is_empty(), "layering broken:\n{}", faults.join("\n"));
}

#[test]
fn the_checker_sees_a_violation() {
    // The matcher itself: a use of clap in engine code is caught, a comment is not.
    let text = "// clap:: in a comment\nuse clap::Parser;\n";
    let hits: Vec<usize> = code_lines(text).filter(|(_, l)| l.contains("clap::")).map(|(i, _)| i).collect();
    assert_eq!(hits, vec![1]);
}
