//! Formula weights (`formula-weights-v1`): every tensor of a state dict regenerated bit for bit
//! from its key, its shape and a 64-bit salt, so parity tests of large models need no weight
//! files. Test support (the parity fixtures under `tests/fixtures/formula-weights/` are built
//! this way); nothing in the runtime uses it.
//!
//! The specification is `tests/fixtures/formula-weights/FORMULA.md`:
//! - key seed `fnv1a64(utf8(key)) ^ salt`; element `i` draws `splitmix64(seed ^ i·φ)`, whose top
//!   24 bits give `u_i ∈ [0, 1)` and `v_i = 2u_i − 1`;
//! - a per-role rule turns `u_i`/`v_i` into the value (roles depend on whether the module is a
//!   batch norm, i.e. whether the state dict also has its `running_mean(s)`);
//! - spectral-norm vectors are deterministic functions of the module's `weight_orig`: `weight_v`
//!   scaled to norm `√(n/m)`, `weight_u` one power-iteration step from it, all sums in f64 in
//!   sequential order.
//!
//! Every arithmetic step below is one correctly rounded operation in the stated type (Rust never
//! contracts `a * b + c` into a fused multiply-add), which is what makes the values bit-exact.

use std::collections::{HashMap, HashSet};

use candle_core::{Device, Result, Tensor};
use rayon::prelude::*;

/// The salt of the `shared` fixture set.
pub const SALT_SHARED: u64 = 0;
/// The salt of the `hidden` fixture set.
pub const SALT_HIDDEN: u64 = 0x5EED_5EED_5EED_5EED;

/// FNV-1a, 64 bit.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3))
}

/// The seed of a key's element stream.
pub fn key_seed(key: &str, salt: u64) -> u64 {
    fnv1a64(key.as_bytes()) ^ salt
}

/// One splitmix64 output step.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `r_i`: the raw 64-bit draw of element `i`.
pub fn raw(seed: u64, i: u64) -> u64 {
    splitmix64(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// `u_i ∈ [0, 1 − 2⁻²⁴]` (exact: a 24-bit integer times 2⁻²⁴).
pub fn unit(seed: u64, i: u64) -> f32 {
    (raw(seed, i) >> 40) as f32 * (1.0 / 16_777_216.0)
}

/// `v_i = 2u_i − 1 ∈ [−1, 1 − 2⁻²³]` (exact).
pub fn signed(seed: u64, i: u64) -> f32 {
    2.0 * unit(seed, i) - 1.0
}

/// `0.1f`: f32(0.1), bits `0x3DCCCCCD`.
const TENTH: f32 = 0.1;
/// `0.05f`: f32(0.05), bits `0x3D4CCCCD`.
const TWENTIETH: f32 = 0.05;

/// What a state-dict entry is, which decides its formula (FORMULA.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// `num_batches_tracked`: int64 0.
    Count,
    RunningMean,
    RunningVar,
    /// BigGAN `running_means` `[n_stats, C]`.
    TableMean,
    /// BigGAN `running_vars` `[n_stats, C]`.
    TableVar,
    SnV,
    SnU,
    SnWeight,
    BnWeight,
    Weight,
    BnBias,
    Bias,
    Gamma,
}

impl Role {
    /// The role's name as `KEYS.txt` writes it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Count => "count",
            Role::RunningMean => "running_mean",
            Role::RunningVar => "running_var",
            Role::TableMean => "table_mean",
            Role::TableVar => "table_var",
            Role::SnV => "sn_v",
            Role::SnU => "sn_u",
            Role::SnWeight => "sn_weight",
            Role::BnWeight => "bn_weight",
            Role::Weight => "weight",
            Role::BnBias => "bn_bias",
            Role::Bias => "bias",
            Role::Gamma => "gamma",
        }
    }

    /// The value of element `i` for the elementwise roles (`None` for `Count` and the SN vectors).
    /// `scale` is the `weight`/`sn_weight` factor `f32(2/√fan_in)`.
    fn element(self, seed: u64, i: u64, scale: f32) -> Option<f32> {
        let u = || unit(seed, i);
        let v = || signed(seed, i);
        Some(match self {
            Role::RunningMean | Role::TableMean | Role::BnBias => TENTH * v(),
            Role::RunningVar => 0.75 + 0.5 * u(),
            Role::TableVar => 1.5 + u(),
            Role::SnWeight | Role::Weight => v() * scale,
            Role::BnWeight => 1.0 + 0.25 * v(),
            Role::Bias => TWENTIETH * v(),
            Role::Gamma => 0.5 + 0.25 * v(),
            Role::Count | Role::SnV | Role::SnU => return None,
        })
    }
}

/// `s = f32(2.0 / sqrt(f64(fan_in)))`, fan_in = product of all dims but the first.
pub fn weight_scale(shape: &[usize]) -> f32 {
    let fan_in: usize = shape.iter().skip(1).product();
    (2.0 / (fan_in as f64).sqrt()) as f32
}

/// One state-dict entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub shape: Vec<usize>,
    pub role: Role,
}

impl Entry {
    pub fn elem_count(&self) -> usize {
        self.shape.iter().product()
    }
}

/// One line of `KEYS.txt`: key, shape, dtype, role name and SHA-256 (hex) as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub key: String,
    pub shape: Vec<usize>,
    pub dtype: String,
    pub role: String,
    pub sha256: String,
}

/// Parses `KEYS.txt` into its sections (`# [name] …` lines start one), in file order.
pub fn parse_keys(text: &str) -> Result<Vec<(String, Vec<Listed>)>> {
    let mut sections: Vec<(String, Vec<Listed>)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let bad = |m: &str| candle_core::Error::Msg(format!("KEYS.txt line {}: {m}", n + 1));
        if let Some(rest) = line.strip_prefix("# [") {
            let name = rest.split(']').next().ok_or_else(|| bad("unterminated section name"))?;
            sections.push((name.to_string(), Vec::new()));
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let [key, shape, dtype, role, sha] = cols[..] else { return Err(bad("expected 5 tab-separated columns")) };
        let shape = shape.trim().strip_prefix('[').and_then(|s| s.strip_suffix(']')).ok_or_else(|| bad("shape"))?;
        let shape = shape
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<usize>().map_err(|_| bad("shape dimension")))
            .collect::<Result<Vec<_>>>()?;
        let listed = Listed {
            key: key.to_string(),
            shape,
            dtype: dtype.to_string(),
            role: role.to_string(),
            sha256: sha.to_string(),
        };
        sections.last_mut().ok_or_else(|| bad("entry before the first section"))?.1.push(listed);
    }
    Ok(sections)
}

/// One section of a `KEYS.txt` file (`u2net`, `cgn`, `ensemble`): the entries as listed.
pub fn read_section(path: &std::path::Path, section: &str) -> Result<Vec<Listed>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| candle_core::Error::Msg(format!("cannot read {}: {e}", path.display())))?;
    parse_keys(&text)?
        .into_iter()
        .find(|(name, _)| name == section)
        .map(|(_, entries)| entries)
        .ok_or_else(|| candle_core::Error::Msg(format!("{} has no section [{section}]", path.display())))
}

/// A state dict described by keys and shapes, with each entry's role derived from the key list.
#[derive(Debug, Clone)]
pub struct FormulaDict {
    entries: Vec<Entry>,
}

impl FormulaDict {
    /// Derives the roles (FORMULA.md §3: the first matching rule; a module is a batch norm if the
    /// dict also holds its `running_mean` or `running_means`).
    pub fn new<I, K>(keys: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, Vec<usize>)>,
        K: Into<String>,
    {
        let keys: Vec<(String, Vec<usize>)> = keys.into_iter().map(|(k, s)| (k.into(), s)).collect();
        let all: HashSet<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        let is_bn = |module: &str| {
            all.contains(format!("{module}.running_mean").as_str())
                || all.contains(format!("{module}.running_means").as_str())
        };
        let mut entries = Vec::with_capacity(keys.len());
        for (key, shape) in &keys {
            let (module, leaf) = key.rsplit_once('.').unwrap_or(("", key.as_str()));
            let role = match leaf {
                "num_batches_tracked" => Role::Count,
                "running_mean" => Role::RunningMean,
                "running_var" => Role::RunningVar,
                "running_means" => Role::TableMean,
                "running_vars" => Role::TableVar,
                "weight_v" => Role::SnV,
                "weight_u" => Role::SnU,
                "weight_orig" => Role::SnWeight,
                "weight" if is_bn(module) => Role::BnWeight,
                "weight" if shape.len() >= 2 => Role::Weight,
                "bias" if is_bn(module) => Role::BnBias,
                "bias" => Role::Bias,
                "gamma" => Role::Gamma,
                _ => candle_core::bail!("formula weights: no rule for {key} {shape:?}"),
            };
            entries.push(Entry { key: key.clone(), shape: shape.clone(), role });
        }
        Ok(Self { entries })
    }

    /// The dict of one `KEYS.txt` section.
    pub fn from_listed(listed: &[Listed]) -> Result<Self> {
        Self::new(listed.iter().map(|l| (l.key.clone(), l.shape.clone())))
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    /// Generates every entry whose key passes `keep`, as CPU tensors (f32, int64 for counts).
    /// SN vectors are computed from their module's `weight_orig`, which is generated alongside
    /// (and only returned if it passes `keep` too).
    pub fn generate(&self, salt: u64, keep: impl Fn(&str) -> bool) -> Result<HashMap<String, Tensor>> {
        let by_key: HashMap<&str, &Entry> = self.entries.iter().map(|e| (e.key.as_str(), e)).collect();
        let mut out = HashMap::new();
        // Each SN module's vectors are produced together, from one copy of weight_orig.
        let mut sn_done: HashSet<String> = HashSet::new();
        for e in self.entries.iter().filter(|e| keep(&e.key)) {
            match e.role {
                Role::Count => {
                    out.insert(
                        e.key.clone(),
                        Tensor::zeros(e.shape.as_slice(), candle_core::DType::I64, &Device::Cpu)?,
                    );
                }
                Role::SnV | Role::SnU | Role::SnWeight => {
                    let module = e.key.rsplit_once('.').map_or("", |(m, _)| m).to_string();
                    if !sn_done.insert(module.clone()) {
                        continue;
                    }
                    let find = |leaf: &str| {
                        by_key
                            .get(format!("{module}.{leaf}").as_str())
                            .copied()
                            .ok_or_else(|| candle_core::Error::Msg(format!("formula weights: {module} has no {leaf}")))
                    };
                    let (w, v, u) = (find("weight_orig")?, find("weight_v")?, find("weight_u")?);
                    let [wt, vt, ut] = sn_module(w, v, u, salt)?;
                    for (entry, t) in [(w, wt), (v, vt), (u, ut)] {
                        if keep(&entry.key) {
                            out.insert(entry.key.clone(), t);
                        }
                    }
                }
                _ => {
                    out.insert(e.key.clone(), elementwise(e, salt)?);
                }
            }
        }
        Ok(out)
    }
}

/// Values of an elementwise role, computed in parallel chunks.
pub fn elementwise_values(e: &Entry, salt: u64) -> Result<Vec<f32>> {
    let seed = key_seed(&e.key, salt);
    let scale = weight_scale(&e.shape);
    if e.role.element(seed, 0, scale).is_none() {
        candle_core::bail!("formula weights: {} ({}) is not an elementwise role", e.key, e.role.name());
    }
    let mut vals = vec![0f32; e.elem_count()];
    const CHUNK: usize = 1 << 16;
    vals.par_chunks_mut(CHUNK).enumerate().for_each(|(c, chunk)| {
        let base = (c * CHUNK) as u64;
        for (j, x) in chunk.iter_mut().enumerate() {
            *x = e.role.element(seed, base + j as u64, scale).unwrap_or(f32::NAN);
        }
    });
    Ok(vals)
}

fn elementwise(e: &Entry, salt: u64) -> Result<Tensor> {
    Tensor::from_vec(elementwise_values(e, salt)?, e.shape.as_slice(), &Device::Cpu)
}

/// `[weight_orig, weight_v, weight_u]` of one spectrally normalised module (FORMULA.md §3.1).
fn sn_module(w: &Entry, v: &Entry, u: &Entry, salt: u64) -> Result<[Tensor; 3]> {
    let m = *w.shape.first().ok_or_else(|| candle_core::Error::Msg(format!("{}: scalar weight_orig", w.key)))?;
    let n = w.elem_count() / m.max(1);
    if v.elem_count() != n || u.elem_count() != m {
        candle_core::bail!(
            "formula weights: {} {:?} does not fit {} {:?} / {} {:?}",
            w.key,
            w.shape,
            v.key,
            v.shape,
            u.key,
            u.shape
        );
    }
    let wv = elementwise_values(w, salt)?;
    let vv = sn_v_values(&v.key, m, n, salt);
    let uv = sn_u_values(&wv, &vv, m, n);
    Ok([
        Tensor::from_vec(wv, w.shape.as_slice(), &Device::Cpu)?,
        Tensor::from_vec(vv, v.shape.as_slice(), &Device::Cpu)?,
        Tensor::from_vec(uv, u.shape.as_slice(), &Device::Cpu)?,
    ])
}

/// `weight_v`: the key's own `v_j` scaled to norm `√(n/m)` (sum of squares in f64, in order).
pub fn sn_v_values(key: &str, m: usize, n: usize, salt: u64) -> Vec<f32> {
    let seed = key_seed(key, salt);
    let raw: Vec<f64> = (0..n as u64).into_par_iter().map(|j| signed(seed, j) as f64).collect();
    let s = raw.iter().fold(0.0f64, |s, &r| s + r * r);
    let c = (n as f64 / m as f64).sqrt() / s.sqrt();
    raw.iter().map(|&r| (r * c) as f32).collect()
}

/// `weight_u`: `s_i = Σ_j W[i][j]·v[j]` (f64, in order), normalised by `√Σ s_i²` (in order).
pub fn sn_u_values(w: &[f32], v: &[f32], m: usize, n: usize) -> Vec<f32> {
    let s: Vec<f64> = (0..m)
        .into_par_iter()
        .map(|i| w[i * n..(i + 1) * n].iter().zip(v).fold(0.0f64, |acc, (&a, &b)| acc + a as f64 * b as f64))
        .collect();
    let t = s.iter().fold(0.0f64, |t, &x| t + x * x);
    let norm = t.sqrt();
    s.iter().map(|&x| (x / norm) as f32).collect()
}

/// An input tensor: the `v_i` of `key` (FORMULA.md §4).
pub fn input(key: &str, shape: &[usize], salt: u64) -> Result<Tensor> {
    let seed = key_seed(key, salt);
    let n: usize = shape.iter().product();
    let vals: Vec<f32> = (0..n as u64).into_par_iter().map(|i| signed(seed, i)).collect();
    Tensor::from_vec(vals, shape, &Device::Cpu)
}

/// The CGN noise `u = f32((2·v_i) · f32(t))`, shape `(1, n)` (FORMULA.md §4).
pub fn noise(key: &str, n: usize, truncation: f64, salt: u64) -> Result<Tensor> {
    let seed = key_seed(key, salt);
    let t = truncation as f32;
    let vals: Vec<f32> = (0..n as u64).map(|i| (2.0 * signed(seed, i)) * t).collect();
    Tensor::from_vec(vals, (1, n), &Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(x: f32) -> u32 {
        x.to_bits()
    }

    #[test]
    fn fnv_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xCBF29CE484222325);
        assert_eq!(fnv1a64(b"input"), 0x1EBBAE8F5810B65B);
        assert_eq!(fnv1a64(b"u"), 0xAF63E84C860200F0);
        assert_eq!(fnv1a64(b"input_224"), 0x6FC3CA99236DE724);
        assert_eq!(fnv1a64(b"hidden.input"), 0xEFA25B21DB7A524B);
        assert_eq!(fnv1a64(b"stage1.rebnconvin.conv_s1.weight"), 0x36DF6843DC03715F);
    }

    #[test]
    fn stream_test_vectors() {
        let seed = key_seed("input", SALT_SHARED);
        assert_eq!(seed, 0x1EBBAE8F5810B65B);
        let cases: [(u64, u64, u64, u32, u32); 5] = [
            (0, 0x190A9F76A9BD8BF6, 1641119, 0x3DC854F8, 0xBF4DEAC2),
            (1, 0x84DFD6570FCD8C87, 8708054, 0x3F04DFD6, 0x3D1BFAC0),
            (2, 0x6063698A48AEBAFE, 6316905, 0x3EC0C6D2, 0xBE7CE4B8),
            (3, 0xE9DC8B44E30B57FC, 15326347, 0x3F69DC8B, 0x3F53B916),
            (196607, 0x19C28908C0D7EE95, 1688201, 0x3DCE1448, 0xBF4C7AEE),
        ];
        for (i, r, k, u, v) in cases {
            assert_eq!(raw(seed, i), r, "r_{i}");
            assert_eq!(raw(seed, i) >> 40, k, "k_{i}");
            assert_eq!(bits(unit(seed, i)), u, "u_{i}");
            assert_eq!(bits(signed(seed, i)), v, "v_{i}");
        }
        let hidden = key_seed("hidden.input", SALT_HIDDEN);
        assert_eq!(hidden, 0xB14F05CC85970CA6);
        for (i, r, k, v) in [
            (0, 0xC4A497DD646DDB79, 12887191, 0x3F09492E),
            (1, 0x8CA001EF58A07C33, 9216001, 0x3DCA0010),
            (196607, 0x1998560043130AA7, 1677398, 0xBF4CCF54),
        ] {
            assert_eq!(raw(hidden, i), r);
            assert_eq!(raw(hidden, i) >> 40, k);
            assert_eq!(bits(signed(hidden, i)), v);
        }
    }

    fn first3(dict: &FormulaDict, key: &str) -> Vec<u32> {
        let t = dict.generate(SALT_SHARED, |k| k == key).unwrap().remove(key).unwrap();
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().take(3).map(|x| x.to_bits()).collect()
    }

    #[test]
    fn u2net_role_test_vectors() {
        let m = "stage1.rebnconvin";
        let dict = FormulaDict::new([
            (format!("{m}.conv_s1.weight"), vec![64, 3, 3, 3]),
            (format!("{m}.conv_s1.bias"), vec![64]),
            (format!("{m}.bn_s1.weight"), vec![64]),
            (format!("{m}.bn_s1.bias"), vec![64]),
            (format!("{m}.bn_s1.running_mean"), vec![64]),
            (format!("{m}.bn_s1.running_var"), vec![64]),
            (format!("{m}.bn_s1.num_batches_tracked"), vec![]),
            ("outconv.weight".to_string(), vec![1, 6, 1, 1]),
        ])
        .unwrap();
        assert_eq!(bits(weight_scale(&[64, 3, 3, 3])), 0x3EC511A3);
        let want: [(&str, [u32; 3]); 7] = [
            ("conv_s1.weight", [0xBD69AE4B, 0x3DA03F2B, 0x3EC4D003]),
            ("conv_s1.bias", [0x3C9F82CA, 0x3D2169C2, 0x3C2B745A]),
            ("bn_s1.weight", [0x3F81D4D2, 0x3F756A5A, 0x3F49BEEC]),
            ("bn_s1.bias", [0xBC92FC6D, 0xBD980BA3, 0x3C84B89A]),
            ("bn_s1.running_mean", [0x3D9146B7, 0x3D51BCA3, 0x3C21A8B3]),
            ("bn_s1.running_var", [0x3F4234EC, 0x3F761E75, 0x3F693E53]),
            ("", [0x3F47A006, 0xBDC58A54, 0x3F188F30]),
        ];
        for (leaf, w) in want {
            let key = if leaf.is_empty() { "outconv.weight".to_string() } else { format!("{m}.{leaf}") };
            assert_eq!(first3(&dict, &key), w, "{key}");
        }
        let count = dict.generate(SALT_SHARED, |k| k.ends_with("num_batches_tracked")).unwrap();
        let c = count.values().next().unwrap();
        assert_eq!((c.dtype(), c.dims().len(), c.to_scalar::<i64>().unwrap()), (candle_core::DType::I64, 0, 0));
    }

    #[test]
    fn biggan_role_test_vectors() {
        let p = "f_shape.";
        let l0 = format!("{p}generator.layers.0.bn_0");
        let dict = FormulaDict::new([
            (format!("{p}embeddings.weight"), vec![128, 1000]),
            (format!("{p}generator.gen_z.bias"), vec![32768]),
            (format!("{l0}.running_means"), vec![51, 2048]),
            (format!("{l0}.running_vars"), vec![51, 2048]),
            (format!("{p}generator.layers.8.gamma"), vec![1]),
            (format!("{p}generator.bn.running_means"), vec![51, 128]),
            (format!("{p}generator.bn.running_vars"), vec![51, 128]),
            (format!("{p}generator.bn.weight"), vec![128]),
            (format!("{p}generator.bn.bias"), vec![128]),
        ])
        .unwrap();
        let want: [(String, Vec<u32>); 7] = [
            (format!("{p}embeddings.weight"), vec![0x3D2E45F1, 0xBD5F4B99, 0x3D75D6C7]),
            (format!("{p}generator.gen_z.bias"), vec![0x3CD96210, 0x3C421213, 0x3D09A08A]),
            (format!("{l0}.running_means"), vec![0x3CC09853, 0xBD756BD3, 0x3CC3DE47]),
            (format!("{l0}.running_vars"), vec![0x401441A8, 0x4009D588, 0x4016BD38]),
            (format!("{p}generator.layers.8.gamma"), vec![0x3F39A93A]),
            (format!("{p}generator.bn.weight"), vec![0x3F529E5C, 0x3F820EAE, 0x3F928329]),
            (format!("{p}generator.bn.bias"), vec![0x3D67FE80, 0x3CDB2133, 0x3D12C820]),
        ];
        for (key, w) in want {
            assert_eq!(first3(&dict, &key), w, "{key}");
        }
        assert_eq!(dict.get(&format!("{p}generator.bn.weight")).unwrap().role, Role::BnWeight);
        assert_eq!(dict.get(&format!("{p}generator.gen_z.bias")).unwrap().role, Role::Bias);
    }

    #[test]
    fn spectral_norm_test_vector() {
        let m = "f_shape.generator.layers.12.conv_3";
        let dict = FormulaDict::new([
            (format!("{m}.bias"), vec![128]),
            (format!("{m}.weight_orig"), vec![128, 64, 1, 1]),
            (format!("{m}.weight_u"), vec![128]),
            (format!("{m}.weight_v"), vec![64]),
        ])
        .unwrap();
        assert_eq!(first3(&dict, &format!("{m}.weight_orig")), [0xBE0B5490, 0x3D6DC8A8, 0xBE5D8958]);
        // The intermediate f64 values of §6, recomputed the same way as sn_v_values/sn_u_values.
        let seed = key_seed(&format!("{m}.weight_v"), SALT_SHARED);
        let s = (0..64u64).map(|j| signed(seed, j) as f64).fold(0.0, |s, r| s + r * r);
        assert_eq!(s.to_bits(), 0x4035_9b7c_4aba_0cbc, "S = {s:e}"); // 0x1.59b7c4aba0cbcp+4
        let c = (64f64 / 128f64).sqrt() / s.sqrt();
        assert_eq!(c.to_bits(), 0x3fc3_78a4_8569_a1af, "c"); // 0x1.378a48569a1afp-3
        assert_eq!(first3(&dict, &format!("{m}.weight_v")), [0xBD969362, 0x3DFCD34E, 0xBCAC4ABD]);
        assert_eq!(first3(&dict, &format!("{m}.weight_u")), [0x3DE619DE, 0x3E0B3AF4, 0x3CF547E2]);
        let g = dict.generate(SALT_SHARED, |_| true).unwrap();
        let w: Vec<f32> = g[&format!("{m}.weight_orig")].flatten_all().unwrap().to_vec1().unwrap();
        let v: Vec<f32> = g[&format!("{m}.weight_v")].to_vec1().unwrap();
        let s0 = w[..64].iter().zip(&v).fold(0.0f64, |a, (&x, &y)| a + x as f64 * y as f64);
        assert_eq!(s0.to_bits(), 0x3fc1_21cf_df7e_4146, "s_0"); // 0x1.121cfdf7e4146p-3
        let t = (0..128)
            .map(|i| w[i * 64..(i + 1) * 64].iter().zip(&v).fold(0.0f64, |a, (&x, &y)| a + x as f64 * y as f64))
            .fold(0.0f64, |t, s| t + s * s);
        assert_eq!(t.to_bits(), 0x3ff6_b4c4_2146_8e6a, "T"); // 0x1.6b4c421468e6ap+0
        let u: Vec<f32> = g[&format!("{m}.weight_u")].to_vec1().unwrap();
        // σ as the reference computes it (f32 matrix–vector product, f32 dot).
        let wv: Vec<f32> = (0..128).map(|i| w[i * 64..(i + 1) * 64].iter().zip(&v).map(|(a, b)| a * b).sum()).collect();
        let sigma: f32 = u.iter().zip(&wv).map(|(a, b)| a * b).sum();
        assert!((sigma - 1.191_273_4).abs() < 1e-5, "sigma {sigma}");
    }

    #[test]
    fn noise_and_input() {
        // u = f32((2v)·f32(0.5)) is exactly v for t = 0.5.
        let u = noise("u", 128, 0.5, SALT_SHARED).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let seed = key_seed("u", SALT_SHARED);
        assert!(u.iter().enumerate().all(|(i, &x)| x == signed(seed, i as u64)));
        let x = input("input", &[1, 3, 256, 256], SALT_SHARED).unwrap().flatten_all().unwrap();
        assert_eq!(x.get(196607).unwrap().to_scalar::<f32>().unwrap().to_bits(), 0xBF4C7AEE);
        assert_eq!(bits(0.37f32), 0x3EBD70A4);
    }

    #[test]
    fn roles_reject_unknown_leaves() {
        assert!(FormulaDict::new([("a.running_avg", vec![3])]).is_err());
        assert!(FormulaDict::new([("lin.weight", vec![3])]).is_err()); // rank-1 weight outside a BN
    }
}
