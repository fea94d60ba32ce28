//! Everything long runs as a job: PCA, the strategy sweep, exports, training, downloads. The
//! same engine serves the command line (a progress bar, Ctrl-C) and the window (the Jobs pane).
//!
//! | piece | what it gives |
//! |---|---|
//! | [`Control`] | cancel (typed [`Cancelled`]), progress (items, rate, ETA), log lines, named metrics |
//! | [`Handle`] | one job on a named thread with a typed [`Outcome`] |
//! | [`Board`] | the window's list: one job per name, a bounded number running, the rest queued |
//! | [`units`] | jobs made of idempotent units: shards, resume, atomic files, claimed folders |
//!
//! Jobs made of units follow one rule: each unit writes a fixed set of files that depends only
//! on the job's settings and the unit's index. That gives
//! - **atomic files**: each file is written to a temporary name and renamed, so a file that
//!   exists is complete ([`crate::imageio::write_atomically`]);
//! - **resume**: a unit whose files all exist is skipped; a killed run redoes at most the units
//!   it was in the middle of, and never duplicates anything;
//! - **shards**: `--shard I/N` takes the units with `index % N == I`, so N machines (a Slurm
//!   array) produce exactly the single-machine set between them.
//!
//! | module | job |
//! |---|---|
//! | [`cgn_export`] | counterfactual data sets from a CGN (`intervene export cgn`) |
//! | [`genint_export`] | GenInt's intervened data sets from BigGAN (`intervene export genint`) |
//! | [`transfer`] | GenInt's transfer step: AdaIN of intervened images onto real ones (`intervene export transfer`) |
//! | [`image_sink`] | image encoding and atomic writes (files, WebDataset shards) on a writer thread |

pub mod board;
pub mod cgn_export;
pub mod control;
pub mod cvae_export;
pub mod genint_export;
pub mod handle;
pub mod image_sink;
pub mod transfer;
pub mod units;

pub use board::{AlreadyRunning, Board, Entry, JobSpec, Phase};
pub use control::{is_cancelled_error, Bars, Cancelled, Control, Progress};
pub use handle::{Handle, Outcome, Priority};
pub use units::{claim_directory, run, Job, Shard, Summary};
