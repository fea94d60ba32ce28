//! Opens a folder in the desktop's file manager.

use std::path::Path;

use anyhow::Context as _;

/// Hands `path` to the platform's opener (`xdg-open`, `open`, `explorer`) without waiting.
pub fn open_in_file_manager(path: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(path.exists(), "{} does not exist", path.display());
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    let mut child = std::process::Command::new(opener)
        .arg(path)
        .spawn()
        .with_context(|| format!("cannot run {opener} (is a file manager installed?)"))?;
    // Reaped on a helper thread so no zombie stays behind.
    std::thread::spawn(move || child.wait());
    Ok(())
}
