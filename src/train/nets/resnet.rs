//! ResNet-18/50 for training, torchvision layout (`torchvision/models/resnet.py`: `conv1`,
//! `bn1`, `layer1..4.{i}.{conv,bn}{1,2[,3]}`, `downsample.{0,1}`, `fc`; stride on the 3×3 conv),
//! so the weights open in [`crate::models::resnet`] unchanged. torchvision's initialisation:
//! convolutions `kaiming_normal_(fan_out, relu)`, batch norms 1/0, `fc` PyTorch's default.

use candle_core::{Result, Tensor};

use super::layers::{BatchNorm, Builder, Conv, Init, Linear};
use super::Mode;
use crate::train::ops::{self, BnAct, ConvCfg, Pool};

fn conv(b: &mut Builder, name: &str, cin: usize, cout: usize, k: usize, stride: usize) -> Result<Conv> {
    b.scope(name, |s| s.conv(cin, cout, k, ConvCfg::new(stride, k / 2), false, Init::kaiming_fan_out(cout * k * k)))
}

fn bn(b: &mut Builder, name: &str, c: usize) -> Result<BatchNorm> {
    b.scope(name, |s| s.batch_norm(c))
}

struct Block {
    convs: Vec<(Conv, BatchNorm)>,
    down: Option<(Conv, BatchNorm)>,
}

impl Block {
    fn new(b: &mut Builder, cin: usize, planes: usize, stride: usize, bottleneck: bool) -> Result<Self> {
        let cout = if bottleneck { planes * 4 } else { planes };
        let convs = if bottleneck {
            vec![
                (conv(b, "conv1", cin, planes, 1, 1)?, bn(b, "bn1", planes)?),
                (conv(b, "conv2", planes, planes, 3, stride)?, bn(b, "bn2", planes)?),
                (conv(b, "conv3", planes, cout, 1, 1)?, bn(b, "bn3", cout)?),
            ]
        } else {
            vec![
                (conv(b, "conv1", cin, planes, 3, stride)?, bn(b, "bn1", planes)?),
                (conv(b, "conv2", planes, planes, 3, 1)?, bn(b, "bn2", planes)?),
            ]
        };
        let down = if stride != 1 || cin != cout {
            Some(b.scope("downsample", |d| Ok((conv(d, "0", cin, cout, 1, stride)?, bn(d, "1", cout)?)))?)
        } else {
            None
        };
        Ok(Self { convs, down })
    }

    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = x.clone();
        let last = self.convs.len() - 1;
        for (i, (c, n)) in self.convs.iter().enumerate() {
            h = n.forward_conv(c, &h, train, if i < last { BnAct::Relu } else { BnAct::Identity })?;
        }
        let skip = match &self.down {
            Some((c, n)) => n.forward_conv(c, x, train, BnAct::Identity)?,
            None => x.clone(),
        };
        ops::add_relu(&h, &skip)
    }
}

pub struct ResNet {
    conv1: Conv,
    bn1: BatchNorm,
    blocks: Vec<Block>,
    fc: Linear,
}

impl ResNet {
    /// `blocks` per layer ([2,2,2,2] ResNet-18, [3,4,6,3] with bottlenecks ResNet-50).
    pub fn new(b: &mut Builder, blocks: [usize; 4], bottleneck: bool, num_classes: usize) -> Result<Self> {
        let conv1 = conv(b, "conv1", 3, 64, 7, 2)?;
        let bn1 = bn(b, "bn1", 64)?;
        let mut all = Vec::new();
        let mut cin = 64;
        for (li, &n) in blocks.iter().enumerate() {
            let planes = 64 << li;
            for bi in 0..n {
                let stride = if bi == 0 && li > 0 { 2 } else { 1 };
                all.push(b.scope(format!("layer{}", li + 1), |l| {
                    l.scope(bi, |s| Block::new(s, cin, planes, stride, bottleneck))
                })?);
                cin = if bottleneck { planes * 4 } else { planes };
            }
        }
        let fc = b.scope("fc", |f| f.linear(cin, num_classes, Init::torch_default(cin), Init::torch_default(cin)))?;
        Ok(Self { conv1, bn1, blocks: all, fc })
    }

    /// `(b, 3, h, w)` normalised → logits.
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let h = self.bn1.forward_conv(&self.conv1, x, mode.train, BnAct::Relu)?;
        let mut h = ops::max_pool2d(&h, Pool { k: 3, stride: 2, padding: 1 })?;
        for b in &self.blocks {
            h = b.forward(&h, mode.train)?;
        }
        self.fc.forward(&h.mean((2, 3))?)
    }
}
