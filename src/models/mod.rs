//! Network runtimes, one model per file (or folder for the larger ones).

pub mod adain;
pub mod biggan;
pub mod cgn;
pub mod cgn_ensemble;
pub mod cgn_imagenet;
pub mod cgn_mnist;
pub mod classifier;
pub mod mnist_cnn;
pub mod mobilenet_v2;
pub mod resnet;
pub mod staged;
pub mod u2net;
pub mod vgg19;
