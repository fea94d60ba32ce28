//! Element-wise pieces: the fused batch-norm pre-activation (optionally with the nearest ×2
//! upsample).

use rayon::prelude::*;

/// A per-(sample, channel) affine followed by ReLU: `relu(x·scale + shift)`, both `(b, c)`.
#[derive(Debug, Clone, Copy)]
pub struct PreAct<'a> {
    pub scale: &'a [f32],
    pub shift: &'a [f32],
}

impl PreAct<'_> {
    /// Writes `relu(x·a + b)` of one sample's `(c, h, w)` planes into `out`, nearest-upsampled
    /// ×2 to `(c, 2h, 2w)` when `up` (so the convolution's im2col copies whole rows).
    pub(crate) fn apply_sample_up(&self, b: usize, c: usize, h: usize, w: usize, x: &[f32], out: &mut [f32]) {
        let (s, t) = (&self.scale[b * c..(b + 1) * c], &self.shift[b * c..(b + 1) * c]);
        let (oh, ow) = (2 * h, 2 * w);
        out.par_chunks_mut(oh * ow).zip(x.par_chunks(h * w)).enumerate().for_each(|(ch, (o, i))| {
            plane_up(o, i, w, s[ch], t[ch]);
        });
    }

    /// Writes `relu(x·a + b)` of one sample's `(c, hw)` planes into `out`.
    pub(crate) fn apply_sample(&self, b: usize, c: usize, hw: usize, x: &[f32], out: &mut [f32]) {
        let (s, t) = (&self.scale[b * c..(b + 1) * c], &self.shift[b * c..(b + 1) * c]);
        out.par_chunks_mut(hw.max(1)).zip(x.par_chunks(hw.max(1))).enumerate().for_each(|(ch, (o, i))| {
            plane(o, i, s[ch], t[ch]);
        });
    }
}

super::widest! {
    /// `o = relu(i·a + b)` over one plane.
    pub(crate) fn plane(o: &mut [f32], i: &[f32], a: f32, b: f32) {
        for (o, &v) in o.iter_mut().zip(i) {
            *o = (v * a + b).max(0.0);
        }
    }
}

super::widest! {
    /// `relu(i·a + b)` of one `(h, w)` plane (`w` given), nearest-upsampled ×2 into `o (2h, 2w)`.
    fn plane_up(o: &mut [f32], i: &[f32], w: usize, a: f32, b: f32) {
        let ow = 2 * w;
        for (src, out) in i.chunks_exact(w).zip(o.chunks_exact_mut(2 * ow)) {
            let (top, bottom) = out.split_at_mut(ow);
            for (d, &v) in top.chunks_exact_mut(2).zip(src) {
                let r = (v * a + b).max(0.0);
                d[0] = r;
                d[1] = r;
            }
            bottom.copy_from_slice(top);
        }
    }
}
