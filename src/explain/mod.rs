//! Why a classifier decides, and how good an intervention strategy is.
//!
//! | module | concern |
//! |---|---|
//! | [`cam`] | the GradCAM family and EigenCAM from an activation and its gradient |
//! | [`pipeline`] | explaining an image: classifier cache, preprocessing, CAM, top-5 (CLI and window) |
//! | [`bound`] | GenInt's log P(x|z) estimate |
//! | [`folders`] | image folders per class, penultimate features of image files |
//! | [`sweep`] | GenInt's intervention-strategy sweep (Figure 6) as a job |

pub mod bound;
pub mod cam;
pub mod folders;
pub mod pipeline;
pub mod sweep;
