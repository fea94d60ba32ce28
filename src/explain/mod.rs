//! Why a classifier decides, and how good an intervention strategy is: GenInt's log P(x|z)
//! estimate ([`bound`]).

pub mod bound;
pub mod cam;
pub mod sweep;
