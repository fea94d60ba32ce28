//! Procedural stand-ins for the DTD textures of wildlife MNIST.
//!
//! The original data set plots each digit with a "striped" texture and its background with a
//! "veined" texture, one DTD image per class (ten of each). DTD is for research use only, so
//! intervene does not ship or fetch it; both families are generated here — license-free and
//! reproducible bit for bit — and a researcher who has the images passes them with
//! `--textures DIR` ([`super::texture_files`]):
//!
//! - **striped(k)**: an oriented sine grating. Class k gets the orientation `k·18°` (± 3°), a
//!   period of 5–11 px, a hue `k/10` and a dark partner colour; the phase is domain-warped by
//!   low-frequency value noise (wavy stripes, as in fabric photos) and the brightness is
//!   modulated by fine noise (grain).
//! - **veined(k)**: marble-like veins. A light, mottled base colour (hue `k/10 + 0.05`) is
//!   crossed by dark veins of the complementary hue: the edges of a Voronoi diagram of
//!   `10 + 3k` seed points (pixels near the bisector of their two nearest seeds, coordinates
//!   warped by noise) plus thinner veins from ridged fBm noise (`1 − |2n − 1|`, sharpened).
//!
//! **Style** ([`TextureStyle`]): `Classic` is the above (data version 1, `wildlife`). Its digit
//! and background barely separate (mean-colour distance over within-region spread ≈ 1.0,
//! against ≈ 2.6 for the authors' DTD data), and the CGN's mask then often took the background
//! for the digit (RESULTS.md §1). `Contrast` (data version 2, `wildlife-v2`) keeps every
//! construction but makes the stripes wide (period 18–30 px, so a stroke reads as mostly one
//! colour) and bright, and the background dark (value 0.3–0.4) and of the opposite hue
//! (`k/10 + 0.5`), with darker veins.
//!
//! Textures are [`TEXTURE_SIZE`]² RGB, the size the original resizes the DTD images to before
//! taking 32×32 crops, and depend only on (class, texture seed); see [`DEFAULT_TEXTURE_SEED`].

use crate::noise::Rng;

/// Side of a texture tile in pixels (the original resizes the DTD images to 150×150).
pub const TEXTURE_SIZE: usize = 150;

/// The texture seed the data sets use unless told otherwise, so that textures stay the same
/// when only the sample seed changes (as the fixed DTD images did).
pub const DEFAULT_TEXTURE_SEED: u64 = 0x7E47_C0DE;

/// Which set of texture parameters (a data version of wildlife MNIST).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TextureStyle {
    /// Version 1: the textures of `wildlife` (kept bit for bit).
    Classic,
    /// Version 2: high digit/background contrast (`wildlife-v2`).
    Contrast,
}

/// A square RGB texture, row-major HWC u8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Texture {
    pub size: usize,
    pub pixels: Vec<u8>,
}

impl Texture {
    /// The RGB value at (row, col).
    pub fn at(&self, row: usize, col: usize) -> [u8; 3] {
        let i = (row * self.size + col) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }
}

/// The twenty textures of wildlife MNIST: the digit's (striped) and the background's (veined),
/// index = class. Made procedurally ([`TextureSet::procedural`]) or read from image files
/// (`texture_files::load_dir`, e.g. the authors' DTD images).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextureSet {
    pub striped: Vec<Texture>,
    pub veined: Vec<Texture>,
}

impl TextureSet {
    /// The procedural set of `style` with texture seed `seed`.
    pub fn procedural(seed: u64, style: TextureStyle) -> Self {
        Self { striped: striped_set(seed, style), veined: veined_set(seed, style) }
    }

    /// SHA-256 (hex) of every texture's size and pixels, striped first: identifies the data a
    /// run was trained on, whatever folder the files came from.
    pub fn sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for t in self.striped.iter().chain(&self.veined) {
            h.update((t.size as u64).to_le_bytes());
            h.update(&t.pixels);
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The ten striped textures (digit textures of wildlife MNIST), index = class.
pub fn striped_set(seed: u64, style: TextureStyle) -> Vec<Texture> {
    (0..10).map(|k| striped(k, seed, style)).collect()
}

/// The ten veined textures (backgrounds of wildlife MNIST), index = class.
pub fn veined_set(seed: u64, style: TextureStyle) -> Vec<Texture> {
    (0..10).map(|k| veined(k, seed, style)).collect()
}

/// The striped texture of class `k`.
pub fn striped(k: usize, seed: u64, style: TextureStyle) -> Texture {
    let mut rng = Rng::new(hash3(seed, 0x0577_1BED, k as u64));
    let kf = k as f64;
    let theta = (kf * 18.0 + (rng.uniform() - 0.5) * 6.0).to_radians();
    // The same draws in the same order for both styles; only their mapping differs.
    let (p0, p1) = match style {
        TextureStyle::Classic => (5.0, 6.0),
        TextureStyle::Contrast => (18.0, 12.0),
    };
    let period = p0 + p1 * ((k * 7 % 10) as f64 / 9.0) + rng.uniform() * 0.5;
    let hue = kf / 10.0 + (rng.uniform() - 0.5) * 0.03;
    let (light, dark) = match style {
        TextureStyle::Classic => {
            let light = hsv(hue, 0.55 + 0.2 * rng.uniform(), 0.92);
            (light, hsv(hue + 0.06, 0.85, 0.22 + 0.1 * rng.uniform()))
        }
        TextureStyle::Contrast => {
            let light = hsv(hue, 0.55 + 0.2 * rng.uniform(), 0.95);
            (light, hsv(hue + 0.06, 0.75, 0.6 + 0.1 * rng.uniform()))
        }
    };
    let warp_amp = 0.6 + 0.8 * rng.uniform();
    let (warp_seed, grain_seed) = (rng.next_u64(), rng.next_u64());
    let (c, s) = (theta.cos(), theta.sin());
    render(|x, y| {
        let warp = warp_amp * (fbm(x / 37.0, y / 37.0, warp_seed, 3) - 0.5);
        let phase = std::f64::consts::TAU * ((x * c + y * s) / period + warp);
        let t = 0.5 + 0.5 * (2.5 * phase.sin()).tanh();
        let grain = 0.88 + 0.24 * value_noise(x / 1.7, y / 1.7, grain_seed);
        std::array::from_fn(|i| (dark[i] + (light[i] - dark[i]) * t) * grain)
    })
}

/// The veined texture of class `k`.
pub fn veined(k: usize, seed: u64, style: TextureStyle) -> Texture {
    let mut rng = Rng::new(hash3(seed, 0x007E_14ED, k as u64));
    let kf = k as f64;
    let (base, vein) = match style {
        TextureStyle::Classic => {
            let hue = kf / 10.0 + 0.05;
            let base = hsv(hue, 0.2 + 0.25 * rng.uniform(), 0.7 + 0.2 * rng.uniform());
            (base, hsv(hue + 0.5, 0.55 + 0.2 * rng.uniform(), 0.18 + 0.12 * rng.uniform()))
        }
        TextureStyle::Contrast => {
            let hue = kf / 10.0 + 0.5;
            let base = hsv(hue, 0.35 + 0.25 * rng.uniform(), 0.3 + 0.1 * rng.uniform());
            (base, hsv(hue + 0.5, 0.55 + 0.2 * rng.uniform(), 0.1 + 0.06 * rng.uniform()))
        }
    };
    let n_points = 10 + 3 * k;
    let span = TEXTURE_SIZE as f64;
    let points: Vec<(f64, f64)> = (0..n_points).map(|_| (rng.uniform() * span, rng.uniform() * span)).collect();
    let width = 1.2 + 1.2 * rng.uniform();
    let (warp_seed, ridge_seed, mottle_seed) = (rng.next_u64(), rng.next_u64(), rng.next_u64());
    render(|x, y| {
        let wx = x + 9.0 * (fbm(x / 29.0, y / 29.0, warp_seed, 3) - 0.5);
        let wy = y + 9.0 * (fbm(x / 29.0 + 17.3, y / 29.0 + 5.1, warp_seed, 3) - 0.5);
        let (mut d1, mut d2) = (f64::MAX, f64::MAX);
        for &(px, py) in &points {
            let d = ((wx - px).powi(2) + (wy - py).powi(2)).sqrt();
            if d < d1 {
                d2 = d1;
                d1 = d;
            } else if d < d2 {
                d2 = d;
            }
        }
        // d2 − d1 is twice the distance to the bisector of the two nearest seeds: 0 on an edge.
        let edge = (-(d2 - d1) / width).exp();
        let ridge = (1.0 - (2.0 * fbm(x / 23.0, y / 23.0, ridge_seed, 4) - 1.0).abs()).powi(8);
        let v = edge.max(0.7 * ridge);
        let mottle = 0.85 + 0.3 * fbm(x / 11.0, y / 11.0, mottle_seed, 3);
        std::array::from_fn(|i| base[i] * mottle * (1.0 - v) + vein[i] * v)
    })
}

fn render(f: impl Fn(f64, f64) -> [f64; 3]) -> Texture {
    let n = TEXTURE_SIZE;
    let mut pixels = Vec::with_capacity(n * n * 3);
    for r in 0..n {
        for c in 0..n {
            let rgb = f(c as f64, r as f64);
            pixels.extend(rgb.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8));
        }
    }
    Texture { size: n, pixels }
}

/// HSV (hue in turns, wrapped) → RGB in [0, 1].
fn hsv(h: f64, s: f64, v: f64) -> [f64; 3] {
    let h6 = h.rem_euclid(1.0) * 6.0;
    let f = h6 - h6.floor();
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    match h6 as u32 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash of `x`.
pub(crate) fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A hash of three words (order matters).
pub(crate) fn hash3(a: u64, b: u64, c: u64) -> u64 {
    mix64(mix64(mix64(a) ^ b) ^ c)
}

/// Value noise in [0, 1): smoothstep-interpolated hashes of the integer lattice.
fn value_noise(x: f64, y: f64, seed: u64) -> f64 {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let corner = |dx: i64, dy: i64| {
        let h = hash3(seed, (x0 as i64 + dx) as u64, (y0 as i64 + dy) as u64);
        (h >> 11) as f64 / (1u64 << 53) as f64
    };
    let top = corner(0, 0) + (corner(1, 0) - corner(0, 0)) * sx;
    let bottom = corner(0, 1) + (corner(1, 1) - corner(0, 1)) * sx;
    top + (bottom - top) * sy
}

/// Fractal sum of `octaves` value-noise layers (each twice the frequency, half the weight),
/// normalised to [0, 1).
fn fbm(x: f64, y: f64, seed: u64, octaves: u32) -> f64 {
    let (mut sum, mut norm, mut amp, mut freq) = (0.0, 0.0, 1.0, 1.0);
    for o in 0..octaves {
        sum += amp * value_noise(x * freq, y * freq, seed.wrapping_add(o as u64));
        norm += amp;
        amp *= 0.5;
        freq *= 2.0;
    }
    sum / norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsv_primaries() {
        assert_eq!(hsv(0.0, 1.0, 1.0), [1.0, 0.0, 0.0]);
        assert_eq!(hsv(1.0 / 3.0, 1.0, 1.0).map(|v| (v * 1e9).round()), [0.0, 1e9, 0.0]);
        assert_eq!(hsv(0.5, 0.0, 0.5), [0.5, 0.5, 0.5]);
    }

    #[test]
    fn textures_are_seeded_and_distinct_per_class() {
        let c = TextureStyle::Classic;
        let a = striped(3, 1, c);
        assert_eq!(a, striped(3, 1, c));
        assert_ne!(a, striped(3, 2, c));
        assert_ne!(a, striped(4, 1, c));
        assert_ne!(veined(0, 1, c), veined(1, 1, c));
        assert_ne!(a, striped(3, 1, TextureStyle::Contrast));
        assert_eq!(a.pixels.len(), TEXTURE_SIZE * TEXTURE_SIZE * 3);
    }

    #[test]
    fn stripes_vary_across_and_veins_are_sparse() {
        // Along the stripe direction brightness oscillates: a row/col of a striped texture
        // has a wide range; most of a veined texture is the light base colour.
        let s = striped(0, DEFAULT_TEXTURE_SEED, TextureStyle::Classic);
        let lum = |p: [u8; 3]| p.iter().map(|&v| v as u32).sum::<u32>();
        let row: Vec<u32> = (0..TEXTURE_SIZE).map(|c| lum(s.at(75, c))).collect();
        assert!(row.iter().max().unwrap() - row.iter().min().unwrap() > 200, "stripes too flat");
        let v = veined(5, DEFAULT_TEXTURE_SEED, TextureStyle::Classic);
        let all: Vec<u32> =
            (0..TEXTURE_SIZE * TEXTURE_SIZE).map(|i| lum(v.at(i / TEXTURE_SIZE, i % TEXTURE_SIZE))).collect();
        let mean = all.iter().sum::<u32>() as f64 / all.len() as f64;
        let dark = all.iter().filter(|&&l| (l as f64) < 0.6 * mean).count() as f64 / all.len() as f64;
        assert!(dark > 0.02 && dark < 0.4, "vein fraction {dark}");
    }
}
