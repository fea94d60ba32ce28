//! Training-step workloads for `intervene bench train` (compute only: one batch of random
//! inputs reused, as `shared/reference/TRAINING.md` measures), each with a PyTorch twin in
//! `tools/reference/pt_train_bench.py`:
//!
//! | workload | step |
//! |---|---|
//! | `mnist-cnn` | CGN MNIST classifier, 32×32×3, batch 64, CE, Adadelta |
//! | `resnet18` | ResNet-18 (1000 classes), 64×64, batch 32, CE, SGD momentum 0.9 + weight decay |
//! | `cgn-gan` | CGN MNIST generator + MLP discriminator, batch 16: a G step (LSGAN + mask entropy; no VGG Gram loss) and a D step, Adam 2e-4 (0.5, 0.999) |

use std::time::Instant;

use candle_core::{DType, Device, Result, Tensor};

use super::nets::cgn_mnist::{binary_entropy, mse_to, CgnDiscriminator, CgnGenerator};
use super::nets::{Builder, Mode, Net, Params, TrainArch};
use super::optim::{Optimizer, OptimizerKind};
use crate::noise::Rng;

/// The measured workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    MnistCnn,
    ResNet18,
    CgnGan,
}

// In its own scope: the macro's `Result` is std's, not candle's imported here.
mod names {
    crate::named_enum!(super::Workload, "workload", { MnistCnn => "mnist-cnn", ResNet18 => "resnet18", CgnGan => "cgn-gan" });
}

impl Workload {
    pub fn name(self) -> &'static str {
        crate::named::Named::name(self)
    }
    pub fn batch(self) -> usize {
        match self {
            Self::MnistCnn => 64,
            Self::ResNet18 => 32,
            Self::CgnGan => 16,
        }
    }
}

fn uniform(rng: &mut Rng, shape: &[usize], lo: f64, hi: f64) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(|_| (lo + (hi - lo) * rng.uniform()) as f32).collect::<Vec<_>>(), shape, &Device::Cpu)
}

fn labels(rng: &mut Rng, n: usize, classes: u64) -> Result<Tensor> {
    Tensor::from_vec((0..n).map(|_| rng.below(classes) as u32).collect::<Vec<_>>(), n, &Device::Cpu)
}

/// One prepared workload: `step()` runs one optimiser step of every network involved.
pub struct Prepared {
    step: Box<dyn FnMut() -> Result<f32>>,
}

impl Prepared {
    pub fn step(&mut self) -> Result<f32> {
        (self.step)()
    }
}

fn classifier(arch: TrainArch, classes: usize, x_shape: [usize; 4], opt: OptimizerKind, lr: f64) -> Result<Prepared> {
    let mut rng = Rng::new(7);
    let net = Net::init(arch, classes, 1, &Device::Cpu)?;
    let lo = if arch == TrainArch::MnistCnn { -1.0 } else { -2.0 };
    let x = uniform(&mut rng, &x_shape, lo, -lo)?;
    let y = labels(&mut rng, x_shape[0], classes as u64)?;
    let mut opt = Optimizer::new(opt, net.vars());
    Ok(Prepared {
        step: Box::new(move || {
            let logits = net.forward(&x, Mode { train: true, seed: 0 })?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            let grads = loss.backward()?;
            opt.step(&grads, lr)?;
            loss.to_scalar::<f32>()
        }),
    })
}

fn gan() -> Result<Prepared> {
    let b = 16;
    let mut rng = Rng::new(11);
    let mut gb = Builder::init(1, &Device::Cpu);
    let g = CgnGenerator::new(&mut gb)?;
    let gp = Params { vars: gb.vars, bns: gb.bns };
    let mut db = Builder::init(2, &Device::Cpu);
    let d = CgnDiscriminator::new(&mut db)?;
    let dp = Params { vars: db.vars, bns: db.bns };
    let adam = OptimizerKind::Adam { beta1: 0.5, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
    let mut opt_g = Optimizer::new(adam, gp.vars.clone());
    let mut opt_d = Optimizer::new(adam, dp.vars.clone());
    let x_real = uniform(&mut rng, &[b, 3, 32, 32], -1.0, 1.0)?;
    let y_real = labels(&mut rng, b, 10)?;
    let mut k = 0u64;
    Ok(Prepared {
        step: Box::new(move || {
            k += 1;
            let mut r = Rng::new(k);
            let u =
                Tensor::from_vec((0..b * 32).map(|_| r.normal() as f32).collect::<Vec<_>>(), (b, 32), &Device::Cpu)?;
            let y = labels(&mut r, b, 10)?;
            let mut shift = |_| (r.below(32) as usize, r.below(32) as usize);
            let shifts = [(0..b).map(&mut shift).collect::<Vec<_>>(), (0..b).map(&mut shift).collect()];
            // Generator step.
            let gen = g.forward(&u, &y, &shifts, true)?;
            let validity = d.forward(&gen.x, &y, true, 2 * k)?;
            let loss_g = (mse_to(&validity, 1.0)? + (binary_entropy(&gen.mask)? * 0.1)?)?;
            opt_g.step(&loss_g.backward()?, 2e-4)?;
            // Discriminator step.
            let real = mse_to(&d.forward(&x_real, &y_real, true, 2 * k + 1)?, 1.0)?;
            let fake = mse_to(&d.forward(&gen.x.detach(), &y, true, 2 * k + 2)?, 0.0)?;
            let loss_d = ((real + fake)? * 0.5)?;
            opt_d.step(&loss_d.backward()?, 2e-4)?;
            Ok(loss_g.to_dtype(DType::F32)?.to_scalar::<f32>()? + loss_d.to_scalar::<f32>()?)
        }),
    })
}

/// Builds a workload (random weights and inputs).
pub fn prepare(w: Workload) -> Result<Prepared> {
    match w {
        Workload::MnistCnn => classifier(TrainArch::MnistCnn, 10, [64, 3, 32, 32], OptimizerKind::adadelta(), 1.0),
        Workload::ResNet18 => classifier(
            TrainArch::ResNet18,
            1000,
            [32, 3, 64, 64],
            OptimizerKind::Sgd { momentum: 0.9, weight_decay: 1e-4 },
            0.1,
        ),
        Workload::CgnGan => gan(),
    }
}

/// Seconds per step of `steps` timed steps after `warmup` untimed ones.
pub fn time_steps(p: &mut Prepared, warmup: usize, steps: usize) -> Result<Vec<f64>> {
    for _ in 0..warmup {
        std::hint::black_box(p.step()?);
    }
    let mut out = Vec::with_capacity(steps);
    for _ in 0..steps {
        let t = Instant::now();
        std::hint::black_box(p.step()?);
        out.push(t.elapsed().as_secs_f64());
    }
    Ok(out)
}

/// The median of a sample.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}
