//! Trainable layers: parameters are candle `Var`s named exactly as in the PyTorch state dict,
//! created by a [`Builder`] that either initialises them (PyTorch's / torchvision's init rules,
//! from our seeded generator) or reads them from a tensor map (resume, fine-tuning, tests).
//! Batch norm keeps its running statistics beside the parameters, as PyTorch's buffers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Result, Tensor, Var};

use crate::noise::Rng;
use crate::train::ops::{self, ConvCfg};

/// How a fresh parameter is initialised.
#[derive(Debug, Clone, Copy)]
pub enum Init {
    /// `U(−b, b)`.
    Uniform(f64),
    /// `N(0, std²)`.
    Normal(f64),
    Const(f32),
}

impl Init {
    /// PyTorch's default for `Conv2d`/`Linear` weights and biases: `kaiming_uniform_(a=√5)`,
    /// i.e. `U(±1/√fan_in)` (the bias uses the same bound).
    pub fn torch_default(fan_in: usize) -> Self {
        Self::Uniform(1.0 / (fan_in.max(1) as f64).sqrt())
    }
    /// `kaiming_normal_(mode="fan_out", nonlinearity="relu")`: `N(0, 2/fan_out)`.
    pub fn kaiming_fan_out(fan_out: usize) -> Self {
        Self::Normal((2.0 / fan_out.max(1) as f64).sqrt())
    }
}

/// Where parameter values come from.
enum Source<'a> {
    Init(Rng),
    Map(&'a HashMap<String, Tensor>),
}

/// Creates named parameters and batch norms.
pub struct Builder<'a> {
    device: Device,
    source: Source<'a>,
    prefix: Vec<String>,
    pub(crate) vars: Vec<(String, Var)>,
    pub(crate) bns: Vec<Arc<BnBuffers>>,
}

impl<'a> Builder<'a> {
    /// Fresh parameters from `seed`.
    pub fn init(seed: u64, device: &Device) -> Self {
        Self { device: device.clone(), source: Source::Init(Rng::new(seed)), prefix: vec![], vars: vec![], bns: vec![] }
    }

    /// Parameters read from `map` (every key must be present with the right shape).
    pub fn from_map(map: &'a HashMap<String, Tensor>, device: &Device) -> Self {
        Self { device: device.clone(), source: Source::Map(map), prefix: vec![], vars: vec![], bns: vec![] }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Runs `f` with `name` appended to the key prefix.
    pub fn scope<T>(&mut self, name: impl ToString, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.prefix.push(name.to_string());
        let r = f(self);
        self.prefix.pop();
        r
    }

    /// The parameters and batch-norm buffers, for a [`Params`].
    pub fn into_parts(self) -> (Vec<(String, Var)>, Vec<Arc<BnBuffers>>) {
        (self.vars, self.bns)
    }

    /// The parameters created so far, by key.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// Whether parameters are freshly initialised (not read from a map).
    pub fn is_init(&self) -> bool {
        matches!(self.source, Source::Init(_))
    }

    /// The current key prefix (`a.b`), without a leaf.
    pub fn prefix_key(&self) -> String {
        self.prefix.join(".")
    }

    /// The builder's own random generator, for initialisations it does not offer (None when
    /// reading from a map).
    pub fn rng(&mut self) -> Option<&mut Rng> {
        match &mut self.source {
            Source::Init(r) => Some(r),
            Source::Map(_) => None,
        }
    }

    fn key(&self, leaf: &str) -> String {
        let mut k = self.prefix.join(".");
        if !k.is_empty() {
            k.push('.');
        }
        k.push_str(leaf);
        k
    }

    fn values(&mut self, key: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        match &mut self.source {
            Source::Map(m) => stored(m, key, shape)?.to_dtype(DType::F32)?.to_device(&self.device),
            Source::Init(rng) => {
                let n: usize = shape.iter().product();
                let v: Vec<f32> = match init {
                    Init::Uniform(b) => (0..n).map(|_| ((2.0 * rng.uniform() - 1.0) * b) as f32).collect(),
                    Init::Normal(s) => (0..n).map(|_| (rng.normal() * s) as f32).collect(),
                    Init::Const(c) => vec![c; n],
                };
                Tensor::from_vec(v, shape, &self.device)
            }
        }
    }

    /// A trainable parameter `{prefix}.{leaf}`.
    pub fn param(&mut self, leaf: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        let key = self.key(leaf);
        let v = Var::from_tensor(&self.values(&key, shape, init)?)?;
        let t = v.as_tensor().clone();
        self.vars.push((key, v));
        Ok(t)
    }

    /// A convolution `{prefix}.weight` (+ `.bias`), initialised as `init`.
    pub fn conv(&mut self, cin: usize, cout: usize, k: usize, cfg: ConvCfg, bias: bool, init: Init) -> Result<Conv> {
        let per = if cfg.depthwise { 1 } else { cin };
        let w = self.param("weight", &[cout, per, k, k], init)?;
        let b = if bias { Some(self.param("bias", &[cout], Init::torch_default(per * k * k))?) } else { None };
        Ok(Conv { w, b, cfg })
    }

    /// A linear layer `{prefix}.weight (out, in)`, `.bias`.
    pub fn linear(&mut self, cin: usize, cout: usize, w_init: Init, b_init: Init) -> Result<Linear> {
        let w = self.param("weight", &[cout, cin], w_init)?;
        let b = self.param("bias", &[cout], b_init)?;
        Ok(Linear { w, b })
    }

    /// A batch norm (`weight` 1, `bias` 0, `running_mean` 0, `running_var` 1).
    pub fn batch_norm(&mut self, c: usize) -> Result<BatchNorm> {
        let weight = self.param("weight", &[c], Init::Const(1.0))?;
        let bias = self.param("bias", &[c], Init::Const(0.0))?;
        let prefix = self.key("");
        let prefix = prefix.trim_end_matches('.').to_string();
        let (mean, var, tracked) = match &self.source {
            Source::Map(m) => {
                let get = |leaf: &str| running_stat(m, &format!("{prefix}.{leaf}"), c);
                let tracked = m
                    .get(&format!("{prefix}.num_batches_tracked"))
                    .and_then(|t| t.to_dtype(DType::F64).ok()?.flatten_all().ok()?.to_vec1::<f64>().ok())
                    .and_then(|v| v.first().copied())
                    .unwrap_or(0.0) as u64;
                (get("running_mean")?, get("running_var")?, tracked)
            }
            Source::Init(_) => (vec![0.0; c], vec![1.0; c], 0),
        };
        let buf = Arc::new(BnBuffers {
            prefix,
            mean: Mutex::new(mean),
            var: Mutex::new(var),
            tracked: AtomicU64::new(tracked),
        });
        self.bns.push(buf.clone());
        Ok(BatchNorm { weight, bias, buf, eps: 1e-5, momentum: 0.1 })
    }
}

/// A convolution's parameters.
#[derive(Debug, Clone)]
pub struct Conv {
    pub w: Tensor,
    pub b: Option<Tensor>,
    pub cfg: ConvCfg,
}

impl Conv {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::conv2d(x, &self.w, self.b.as_ref(), self.cfg)
    }
    /// The convolution of `x` upsampled ×2 (nearest), as one op.
    pub fn forward_up2(&self, x: &Tensor) -> Result<Tensor> {
        ops::conv2d_up2(x, &self.w, self.b.as_ref(), self.cfg)
    }
}

/// `y = x·Wᵀ + b`.
#[derive(Debug, Clone)]
pub struct Linear {
    pub w: Tensor,
    pub b: Tensor,
}

impl Linear {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::train::ops::linear(x, &self.w, Some(&self.b))
    }
}

/// Running statistics of a batch norm (PyTorch buffers).
#[derive(Debug)]
pub struct BnBuffers {
    pub prefix: String,
    pub mean: Mutex<Vec<f32>>,
    pub var: Mutex<Vec<f32>>,
    pub tracked: AtomicU64,
}

/// Batch norm (eps 1e-5, momentum 0.1): batch statistics while training (and the running
/// averages updated, the variance unbiased as PyTorch), running statistics otherwise.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub buf: Arc<BnBuffers>,
    pub eps: f64,
    pub momentum: f64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl BatchNorm {
    /// `x (b, c[, h, w])`, followed by ReLU when `relu`.
    pub fn forward(&self, x: &Tensor, train: bool, relu: bool) -> Result<Tensor> {
        self.forward_act(x, train, if relu { ops::BnAct::Relu } else { ops::BnAct::Identity })
    }

    /// `x (b, c[, h, w])`, followed by `act` (fused into the normalisation when training).
    pub fn forward_act(&self, x: &Tensor, train: bool, act: ops::BnAct) -> Result<Tensor> {
        if train {
            let (y, s) = ops::batch_norm_train(x, &self.weight, &self.bias, self.eps, act)?;
            self.track(&s);
            return Ok(y);
        }
        let c = self.weight.dim(0)?;
        let mut shape = vec![1usize; x.rank()];
        shape[1] = c;
        let dev = x.device();
        let mean = Tensor::new(lock(&self.buf.mean).as_slice(), dev)?.reshape(shape.as_slice())?;
        let var = Tensor::new(lock(&self.buf.var).as_slice(), dev)?.reshape(shape.as_slice())?;
        let y = x
            .broadcast_sub(&mean)?
            .broadcast_div(&(var + self.eps)?.sqrt()?)?
            .broadcast_mul(&self.weight.reshape(shape.as_slice())?)?
            .broadcast_add(&self.bias.reshape(shape.as_slice())?)?;
        match act {
            ops::BnAct::Identity => Ok(y),
            ops::BnAct::Relu => ops::relu(&y),
            ops::BnAct::Leaky(a) => ops::pointwise::leaky_relu(&y, a),
        }
    }
}

impl BatchNorm {
    /// `conv` applied to `x`, then this batch norm and `act`: while training on the CPU one
    /// fused op ([`ops::conv_bn`]) when the convolution has no bias, else the two layers.
    pub fn forward_conv(&self, conv: &Conv, x: &Tensor, train: bool, act: ops::BnAct) -> Result<Tensor> {
        if !train || conv.b.is_some() || conv.cfg.depthwise {
            return self.forward_act(&conv.forward(x)?, train, act);
        }
        let (y, s) = ops::conv_bn_train(x, &conv.w, &self.weight, &self.bias, conv.cfg, self.eps, act)?;
        self.track(&s);
        Ok(y)
    }

    /// Folds a batch's statistics into the running averages (PyTorch's momentum rule, the
    /// variance unbiased).
    fn track(&self, s: &ops::BatchStats) {
        let m = self.momentum as f32;
        let unbias = s.n as f32 / (s.n.max(2) - 1) as f32;
        for (r, v) in lock(&self.buf.mean).iter_mut().zip(&s.mean) {
            *r = m * v + (1.0 - m) * *r;
        }
        for (r, v) in lock(&self.buf.var).iter_mut().zip(&s.var) {
            *r = m * (v * unbias) + (1.0 - m) * *r;
        }
        self.buf.tracked.fetch_add(1, Ordering::Relaxed);
    }
}

/// The tensor `key` of a state dict, which must have `shape`.
fn stored<'m>(map: &'m HashMap<String, Tensor>, key: &str, shape: &[usize]) -> Result<&'m Tensor> {
    let t = map.get(key).ok_or_else(|| candle_core::Error::Msg(format!("missing tensor {key}")))?;
    if t.dims() != shape {
        candle_core::bail!("{key}: shape {:?}, expected {shape:?}", t.dims());
    }
    Ok(t)
}

/// A batch norm's running statistic `key` (`c` values) from a state dict.
fn running_stat(map: &HashMap<String, Tensor>, key: &str, c: usize) -> Result<Vec<f32>> {
    let t = map.get(key).ok_or_else(|| candle_core::Error::Msg(format!("missing tensor {key}")))?;
    if t.elem_count() != c {
        candle_core::bail!("{key}: {} values, expected {c}", t.elem_count());
    }
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
}

/// Everything a trainable network holds: parameters (optimised) and batch-norm buffers, by
/// their PyTorch state-dict keys.
pub struct Params {
    pub vars: Vec<(String, Var)>,
    pub bns: Vec<Arc<BnBuffers>>,
}

impl Params {
    /// The full state dict (parameters, `running_mean`/`running_var`, `num_batches_tracked` as
    /// int64), keyed as PyTorch, sorted by key.
    pub fn state_dict(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out: Vec<(String, Tensor)> = Vec::new();
        for (k, v) in &self.vars {
            out.push((k.clone(), v.as_tensor().to_device(&Device::Cpu)?.detach()));
        }
        for b in &self.bns {
            let mean = lock(&b.mean).clone();
            let var = lock(&b.var).clone();
            let n = mean.len();
            out.push((format!("{}.running_mean", b.prefix), Tensor::from_vec(mean, n, &Device::Cpu)?));
            out.push((format!("{}.running_var", b.prefix), Tensor::from_vec(var, n, &Device::Cpu)?));
            let t = b.tracked.load(Ordering::Relaxed) as i64;
            out.push((format!("{}.num_batches_tracked", b.prefix), Tensor::new(t, &Device::Cpu)?));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Loads, from a state dict, the parameters and running statistics whose keys `keep`
    /// accepts: the inverse of [`Params::state_dict`] for those keys. `num_batches_tracked` is
    /// left as it is: it counts this network's own training steps. Every accepted key must be in
    /// `map` with this network's shape. Returns the number of tensors loaded.
    pub fn load_where(&self, map: &HashMap<String, Tensor>, keep: impl Fn(&str) -> bool) -> Result<usize> {
        let mut loaded = 0;
        for (k, v) in self.vars.iter().filter(|(k, _)| keep(k)) {
            let t = v.as_tensor();
            v.set(&stored(map, k, t.dims())?.to_dtype(t.dtype())?.to_device(t.device())?)?;
            loaded += 1;
        }
        for b in &self.bns {
            for (leaf, buf) in [("running_mean", &b.mean), ("running_var", &b.var)] {
                let key = format!("{}.{leaf}", b.prefix);
                if !keep(&key) {
                    continue;
                }
                let mut values = lock(buf);
                *values = running_stat(map, &key, values.len())?;
                loaded += 1;
            }
        }
        Ok(loaded)
    }

    /// Number of trainable values.
    pub fn count(&self) -> usize {
        self.vars.iter().map(|(_, v)| v.as_tensor().elem_count()).sum()
    }
}
