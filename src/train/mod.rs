//! Training: differentiable CPU kernels, optimisers and schedules, image-folder data, the
//! trainable classifiers, the GenInt objective, checkpoints and evaluation. No clap, no egui:
//! the command line and the window call these functions with a [`crate::jobs::Control`].
//!
//! | module | concern |
//! |---|---|
//! | [`ops`] | conv / batch norm / pooling / ReLU as candle custom ops with fast backward passes |
//! | [`optim`] | SGD (momentum, weight decay), Adam, Adadelta with PyTorch's update rules |
//! | [`schedule`] | StepLR, cosine, constant learning rates |
//! | [`nets`] | trainable MNIST CNN, ResNet-18/50, MobileNetV2 with the inference models' keys |
//! | [`data`] | image folders: classes, errors, decoding, caching, seeded orders |
//! | [`augment`] | RandomResizedCrop + flip, evaluation transforms |
//! | [`settings`] | a training run as plain data (`config.json`) |
//! | [`classifier`] | the training loop: GenInt objective, checkpoints, resume, progress |
//! | [`output`] | the output folder: config, weights, checkpoint, metrics |
//! | [`eval`] | top-1 / top-5 / per-class accuracy and confusion matrices |
//! | [`bench`] | training-step workloads for `intervene bench train` |

pub mod augment;
pub mod bench;
pub mod biggan;
pub mod cgn;
pub mod cgn_shape_init;
pub mod classifier;
pub mod cvae;
pub mod data;
pub mod eval;
pub mod gan_common;
pub mod gan_data;
pub mod gan_losses;
pub mod mask_check;
pub mod mask_shape;
pub mod nets;
pub mod ops;
pub mod optim;
pub mod output;
pub mod quality;
pub mod schedule;
pub mod settings;

pub use classifier::{train_classifier, EpochReport, Hooks, TrainSummary};
pub use eval::{evaluate_folders, EvalModel, EvalReport};
pub use settings::{DeviceChoice, Extra, TrainSettings};
