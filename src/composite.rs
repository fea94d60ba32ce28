//! Compositing a CGN's parts into pixels: `x = m'·f + (1 − m')·b`, with the mask `m` reshaped
//! live by a *threshold* τ and a *softness* s (no network re-run needed):
//!
//! `m' = clamp((m − τ)/s + 0.5, 0, 1)`, and `m' = m` exactly at the neutral setting s = 1, τ = 0.5.
//!
//! s → 0 gives a hard mask at τ; larger s keeps more of the original mask's soft edge. Pixels use
//! the same u8 conversion as every export (`imageio::to_u8`). `shaders/compose.wgsl` runs the
//! same arithmetic on the GPU for the window; this CPU path is what exports and tests use.

use crate::imageio::{to_u8, RgbImage};

/// Mask reshaping. `Default` is neutral (the composite of the model itself).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MaskShape {
    pub softness: f32,
    pub threshold: f32,
}

impl Default for MaskShape {
    fn default() -> Self {
        Self { softness: 1.0, threshold: 0.5 }
    }
}

impl MaskShape {
    pub fn is_neutral(&self) -> bool {
        self.softness == 1.0 && self.threshold == 0.5
    }

    /// `m'` for one mask value.
    pub fn apply(&self, m: f32) -> f32 {
        if self.is_neutral() {
            m
        } else {
            ((m - self.threshold) / self.softness.max(1e-6) + 0.5).clamp(0.0, 1.0)
        }
    }
}

/// Planar parts of one image: mask `h·w` in [0, 1], foreground and background `3·h·w` (CHW) in [−1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct PartsImage {
    pub width: usize,
    pub height: usize,
    pub mask: Vec<f32>,
    pub foreground: Vec<f32>,
    pub background: Vec<f32>,
}

/// Which picture of the parts to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Mask = 0,
    Foreground = 1,
    Background = 2,
    Composite = 3,
}

impl PartsImage {
    /// The pixels of `view` under `shape` (CPU path, identical arithmetic to the shader).
    pub fn render(&self, view: View, shape: MaskShape) -> RgbImage {
        let n = self.width * self.height;
        let mut pixels = Vec::with_capacity(n * 3);
        for i in 0..n {
            let m = shape.apply(self.mask[i]);
            for c in 0..3 {
                let (f, b) = (self.foreground[c * n + i], self.background[c * n + i]);
                let v = match view {
                    View::Mask => m * 2.0 - 1.0,
                    View::Foreground => f,
                    View::Background => b,
                    View::Composite => m * f + (1.0 - m) * b,
                };
                pixels.push(to_u8(v));
            }
        }
        RgbImage { width: self.width, height: self.height, pixels }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neutral_shape_is_the_plain_composite_and_extremes_pick_a_part() {
        let p = PartsImage {
            width: 2,
            height: 1,
            mask: vec![0.25, 0.9],
            foreground: vec![0.5, -0.5, 1.0, 0.0, 0.2, -1.0],
            background: vec![-1.0, 1.0, 0.0, 0.3, -0.2, 0.4],
        };
        let x = p.render(View::Composite, MaskShape::default());
        let want: Vec<u8> = (0..2)
            .flat_map(|i| {
                let p = &p;
                (0..3).map(move |c| {
                    to_u8(p.mask[i] * p.foreground[c * 2 + i] + (1.0 - p.mask[i]) * p.background[c * 2 + i])
                })
            })
            .collect();
        assert_eq!(x.pixels, want);
        // A hard threshold above both mask values shows the background, below both the foreground.
        let hard = |t| MaskShape { softness: 1e-6, threshold: t };
        assert_eq!(
            p.render(View::Composite, hard(0.95)).pixels,
            p.render(View::Background, MaskShape::default()).pixels
        );
        assert_eq!(
            p.render(View::Composite, hard(0.1)).pixels,
            p.render(View::Foreground, MaskShape::default()).pixels
        );
    }
}
