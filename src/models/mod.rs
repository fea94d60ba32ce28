//! Network runtimes, one model per file (or folder for the larger ones).

pub mod biggan;
pub mod cgn_mnist;
pub mod classifier;
pub mod mobilenet_v2;
