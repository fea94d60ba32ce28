//! What panes ask the application to do. A pane never changes another pane or starts a thread
//! itself: it pushes a [`Command`], and [`super::StudioApp`] applies the queue after the UI
//! pass (file dialogs, jobs on the board, notifications).

use std::path::PathBuf;

use super::job_requests::JobRequest;

/// What a file dialog (or a dropped file) is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogKind {
    ModelFolder,
    ModelFile,
    Components,
    CaptureDir,
    /// A classifier weights file for Explain column k.
    Classifier(usize),
    /// An image to explain.
    ImageFile,
    /// Real images for the strategy sweep.
    RealDir,
    /// The counterfactual export's output folder.
    CgnExportDir,
    /// A CGN checkpoint for the counterfactual mode.
    CgnModel,
}

/// One request from a pane.
#[derive(Debug)]
pub enum Command {
    /// Opens a native file dialog (on a helper thread; the answer comes back as [`Command::Open`]).
    OpenDialog(DialogKind),
    /// A path was chosen or dropped.
    Open(DialogKind, PathBuf),
    /// Queues a background job on the board (refused visibly when its name is already running).
    Start(JobRequest),
    /// Opens a folder in the system's file manager.
    Reveal(PathBuf),
    /// Opens a classifier (a weights file or a training run's folder) in Explain column k.
    OpenClassifier(usize, PathBuf),
    /// Fills the Jobs pane's export form with the steering pane's model, components and class.
    PrepareExport { model: String, components: Option<String>, class: usize },
    /// Opens the Jobs pane's CVAE form on a CVAE (a bundled name or a folder).
    PrepareCvaeExport { model: String },
    /// Asks a job to stop.
    Cancel(String),
    /// Removes finished jobs from the Jobs pane.
    ClearFinishedJobs,
    /// Saves the frame on screen so the CLI regenerates it.
    Capture,
    /// Saves a screenshot of the whole window.
    CaptureWindow,
    /// A line in the status bar.
    Status(String),
    /// An error shown in the window and kept in the log.
    Error { what: String, message: String },
    /// The error on screen is resolved if it is a `what` error (e.g. a frame rendered after a
    /// bad model path). Scoped: the CGN pane renders in the background even in steering mode,
    /// and its frames used to clear the steering pane's model error before anyone saw it.
    ClearError { what: &'static str },
}

/// Where panes push their commands during a frame.
#[derive(Debug, Default)]
pub struct Commands(Vec<Command>);

impl Commands {
    pub fn push(&mut self, c: Command) {
        self.0.push(c);
    }

    pub fn error(&mut self, what: impl Into<String>, message: impl std::fmt::Display) {
        self.0.push(Command::Error { what: what.into(), message: message.to_string() });
    }

    pub fn status(&mut self, s: impl Into<String>) {
        self.0.push(Command::Status(s.into()));
    }

    pub fn take(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.0)
    }
}
