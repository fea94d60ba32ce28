//! Native file dialogs (rfd), on a helper thread because they block.

use std::path::PathBuf;

use poll_promise::Promise;

use super::command::DialogKind;

/// Opens the dialog for `kind`; the promise holds the chosen path (None when cancelled).
pub fn spawn(kind: DialogKind) -> Promise<Option<(DialogKind, PathBuf)>> {
    Promise::spawn_thread("intervene-dialog", move || {
        let d = rfd::FileDialog::new();
        let weights = ["bin", "pth", "pt", "safetensors"];
        let picked = match kind {
            DialogKind::ModelFolder => d.set_title("Open a BigGAN-deep folder").pick_folder(),
            DialogKind::ModelFile => {
                d.set_title("Open BigGAN-deep weights").add_filter("weights", &weights).pick_file()
            }
            DialogKind::Components => {
                d.set_title("Open GANSpace components").add_filter("components", &["npz"]).pick_file()
            }
            DialogKind::CaptureDir => d.set_title("Folder for captures").pick_folder(),
            DialogKind::Classifier(_) => {
                d.set_title("Open classifier weights").add_filter("weights", &weights).pick_file()
            }
            DialogKind::RealDir => d.set_title("Folder of real images (or class subfolders)").pick_folder(),
            DialogKind::ImageFile => {
                d.set_title("Open an image to explain").add_filter("images", &["png", "jpg", "jpeg"]).pick_file()
            }
            DialogKind::CgnExportDir => d.set_title("Folder for the counterfactual export").pick_folder(),
            DialogKind::CgnModel => d.set_title("Open a CGN checkpoint").add_filter("weights", &weights).pick_file(),
        };
        picked.map(|p| (kind, p))
    })
}
