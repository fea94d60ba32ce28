//! Do an MNIST CGN's masks draw their class's digit? The shape half of the mask check.
//!
//! The frame check ([`super::mask_check`]) tells a digit mask from an inverted one, but a
//! class-blind blob in the middle of the image passes it too: the shipped wildlife-v2 CGN has
//! eight "upright" classes, yet its masks read as their digit only 29 % of the time (RESULTS §1,
//! `docs/results/cgn-mask-shape.jsonl`).
//! A mask is 1 on the digit and 0 elsewhere, like an MNIST digit zero-padded to 32×32, so the
//! *shape judge*, an MNIST-CNN trained on plain MNIST ([`SHAPE_JUDGE`], shipped in `models/`),
//! reads each mask as a digit; the share it reads as the mask's class is the class's shape score.
//! The authors' released CGNs score 78–90 %.
//!
//! The mask goes to the judge as a PNG would (8 bits, grey in all three channels, [−1, 1]), so
//! the score equals `intervene eval` on the masks written as images, which is how
//! `tools/results/cgn_mask_digits.py` computes it independently.

use std::path::Path;

use candle_core::{DType, Tensor};

use crate::train::eval::EvalModel;

/// The bundled shape judge (`models/index.json`).
pub const SHAPE_JUDGE: &str = "mnist-cnn-mnist";

/// An MNIST digit classifier that reads masks.
pub struct ShapeJudge {
    model: EvalModel,
    /// Where it came from (the bundled name or the path given).
    pub name: String,
}

impl ShapeJudge {
    /// A classifier training folder or weights file with 10 outputs.
    pub fn open(path: &Path, name: &str) -> anyhow::Result<Self> {
        let model = EvalModel::open(&path.display().to_string(), None, &candle_core::Device::Cpu)?;
        anyhow::ensure!(
            model.classes.len() == 10 && model.transform.size() == 32,
            "{}: a shape judge reads 32×32 masks as the 10 MNIST digits, but this classifier has {} classes at {}×{}",
            path.display(),
            model.classes.len(),
            model.transform.size(),
            model.transform.size()
        );
        Ok(Self { model, name: name.to_string() })
    }

    /// The bundled judge, or `None` when `models/` does not have it (the check then reports
    /// frames only).
    pub fn bundled() -> anyhow::Result<Option<Self>> {
        match crate::bundled::find(SHAPE_JUDGE) {
            Some(e) => Ok(Some(Self::open(&e.dir(), SHAPE_JUDGE)?)),
            None => Ok(None),
        }
    }

    /// The digit each mask of `(n, 1, 32, 32)` (values in [0, 1]) reads as.
    pub fn read(&self, masks: &Tensor) -> anyhow::Result<Vec<usize>> {
        let (n, c, h, w) = masks.dims4()?;
        anyhow::ensure!(
            c == 1 && h == 32 && w == 32,
            "the shape judge reads (n, 1, 32, 32) masks, not {:?}",
            masks.dims()
        );
        // 8 bits as a PNG holds them (`cgn_mask_digits.py`: rint(mask·255)), then [−1, 1].
        let x = (masks.to_dtype(DType::F32)?.clamp(0f32, 1f32)? * 255.0)?.round()?;
        let x = ((x / 127.5)? - 1.0)?.repeat((1, 3, 1, 1))?;
        let logits = self.model.opened.model.logits(&x)?.to_device(&candle_core::Device::Cpu)?;
        let pred = logits.argmax(1)?.to_vec1::<u32>()?;
        debug_assert_eq!(pred.len(), n);
        // The judge's outputs are the digits by index only if its classes are named 0..9 in order.
        Ok(pred.iter().map(|&p| self.digit(p as usize)).collect())
    }

    /// The digit output `p` stands for (a training folder names its classes; a bare weights
    /// file counts them).
    fn digit(&self, p: usize) -> usize {
        self.model.classes.names.get(p).and_then(|n| n.parse().ok()).unwrap_or(p)
    }
}
