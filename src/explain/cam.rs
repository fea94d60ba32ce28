//! Class activation maps, computed exactly as jacobgil/pytorch-grad-cam 1.5.7 does:
//! channel weights from the gradient of the raw target logit at a layer (GradCAM: mean;
//! GradCAM++: α-weighted positive gradients with its 1e-6 eps; HiResCAM and LayerCAM: elementwise
//! products), `cam_raw = Σ_k w_k·A_k`, ReLU + min-max (eps 1e-7), OpenCV INTER_LINEAR resize to the
//! input (half-pixel centres, clamped edges), then a second ReLU + min-max.

/// The CAM methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    GradCam,
    GradCamPlusPlus,
    HiResCam,
    LayerCam,
    /// First principal component of the activations (no gradients; the class does not matter).
    EigenCam,
}

crate::named_enum!(Method, "CAM method", {
    GradCam => "gradcam",
    GradCamPlusPlus => "gradcam++",
    HiResCam => "hirescam",
    LayerCam => "layercam",
    EigenCam => "eigencam",
});

/// Every intermediate of one CAM (what the reference fixtures store).
#[derive(Debug, Clone, PartialEq)]
pub struct Cam {
    /// Channel weights (empty for the elementwise methods).
    pub weights: Vec<f32>,
    /// `(h, w)` before any ReLU.
    pub cam_raw: Vec<f32>,
    pub cam_norm_lowres: Vec<f32>,
    /// `(out_h, out_w)` after the resize, before the second normalisation.
    pub cam_resized: Vec<f32>,
    /// The final map in [0, 1].
    pub map: Vec<f32>,
    pub size: (usize, usize),
    pub out_size: (usize, usize),
}

/// Computes a CAM from one sample's activation and gradient, both `(c, h, w)` row-major.
pub fn compute(
    method: Method,
    act: &[f32],
    grad: &[f32],
    c: usize,
    h: usize,
    w: usize,
    out_h: usize,
    out_w: usize,
) -> Cam {
    let hw = h * w;
    let mut weights = Vec::new();
    let mut cam_raw = vec![0f32; hw];
    match method {
        Method::GradCam | Method::GradCamPlusPlus => {
            weights = (0..c)
                .map(|k| {
                    let g = &grad[k * hw..(k + 1) * hw];
                    match method {
                        Method::GradCam => g.iter().sum::<f32>() / hw as f32,
                        _ => {
                            let s: f32 = act[k * hw..(k + 1) * hw].iter().sum();
                            g.iter()
                                .map(|&gv| {
                                    let g2 = gv * gv;
                                    let g3 = g2 * gv;
                                    let alpha = if gv == 0.0 { 0.0 } else { g2 / (2.0 * g2 + s * g3 + 1e-6) };
                                    gv.max(0.0) * alpha
                                })
                                .sum::<f32>()
                        }
                    }
                })
                .collect();
            for (k, &wk) in weights.iter().enumerate() {
                for (o, &a) in cam_raw.iter_mut().zip(&act[k * hw..(k + 1) * hw]) {
                    *o += wk * a;
                }
            }
        }
        Method::HiResCam => {
            for k in 0..c {
                for i in 0..hw {
                    cam_raw[i] += grad[k * hw + i] * act[k * hw + i];
                }
            }
        }
        Method::LayerCam => {
            for k in 0..c {
                for i in 0..hw {
                    cam_raw[i] += grad[k * hw + i].max(0.0) * act[k * hw + i];
                }
            }
        }
        Method::EigenCam => cam_raw = eigen_projection(act, c, hw),
    }
    let cam_norm_lowres = relu_min_max(&cam_raw);
    let cam_resized = resize_bilinear_cv2(&cam_norm_lowres, h, w, out_h, out_w);
    let map = relu_min_max(&cam_resized);
    Cam { weights, cam_raw, cam_norm_lowres, cam_resized, map, size: (h, w), out_size: (out_h, out_w) }
}

/// EigenCAM's map (pytorch-grad-cam's `get_2d_projection`): the activations as `hw × c` rows
/// (NaN → 0), columns centred, projected on their first right singular vector: `X·v₁ = σ₁·u₁`.
///
/// A singular vector's sign is arbitrary (LAPACK's choice is an artefact of its algorithm, so
/// the reference can come out either way); we orient the map so it correlates positively with
/// the centred channel sum, i.e. it is high where the layer is most active.
pub fn eigen_projection(act: &[f32], c: usize, hw: usize) -> Vec<f32> {
    use crate::steer::linalg::{sym_eig, Mat};
    let mut x = vec![0f64; hw * c];
    for k in 0..c {
        let col: Vec<f64> = (0..hw).map(|i| act[k * hw + i]).map(|v| if v.is_nan() { 0.0 } else { v as f64 }).collect();
        let mean = col.iter().sum::<f64>() / hw as f64;
        for i in 0..hw {
            x[i * c + k] = col[i] - mean;
        }
    }
    // u₁ from the smaller Gram matrix: X·Xᵀ (hw × hw) or Xᵀ·X (c × c), then p = X·v₁.
    let p: Vec<f64> = if hw <= c {
        let mut g = Mat::zeros(hw, hw);
        for i in 0..hw {
            for j in 0..=i {
                let d: f64 = (0..c).map(|k| x[i * c + k] * x[j * c + k]).sum();
                g.data[i * hw + j] = d;
                g.data[j * hw + i] = d;
            }
        }
        let (vals, vecs) = sym_eig(&g);
        let s1 = vals.first().copied().unwrap_or(0.0).max(0.0).sqrt();
        vecs.row(0).iter().map(|u| u * s1).collect()
    } else {
        let mut g = Mat::zeros(c, c);
        for i in 0..hw {
            let r = &x[i * c..(i + 1) * c];
            for a in 0..c {
                for b in 0..=a {
                    g.data[a * c + b] += r[a] * r[b];
                }
            }
        }
        for a in 0..c {
            for b in 0..a {
                g.data[b * c + a] = g.data[a * c + b];
            }
        }
        let (_, vecs) = sym_eig(&g);
        let v = vecs.row(0);
        (0..hw).map(|i| (0..c).map(|k| x[i * c + k] * v[k]).sum()).collect()
    };
    let sums: Vec<f64> = (0..hw).map(|i| x[i * c..(i + 1) * c].iter().sum()).collect();
    let sign = if p.iter().zip(&sums).map(|(a, b)| a * b).sum::<f64>() < 0.0 { -1.0 } else { 1.0 };
    p.iter().map(|v| (sign * v) as f32).collect()
}

/// `c = max(x, 0); c −= min(c); c /= 1e-7 + max(c)` (pytorch-grad-cam's `scale_cam_image`).
pub fn relu_min_max(x: &[f32]) -> Vec<f32> {
    let r: Vec<f32> = x.iter().map(|v| v.max(0.0)).collect();
    let mn = r.iter().copied().fold(f32::INFINITY, f32::min);
    let shifted: Vec<f32> = r.iter().map(|v| v - mn).collect();
    let mx = shifted.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    shifted.iter().map(|v| v / (1e-7 + mx)).collect()
}

/// OpenCV `resize(..., INTER_LINEAR)` of a float image: half-pixel centres,
/// `src = (dst + 0.5)·(in/out) − 0.5` clamped to the image, no antialiasing.
pub fn resize_bilinear_cv2(x: &[f32], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    let coords = |n_in: usize, n_out: usize| -> Vec<(usize, usize, f32)> {
        (0..n_out)
            .map(|d| {
                let s = ((d as f64 + 0.5) * (n_in as f64 / n_out as f64) - 0.5).clamp(0.0, (n_in - 1) as f64);
                let i0 = s.floor() as usize;
                let i1 = (i0 + 1).min(n_in - 1);
                (i0, i1, (s - i0 as f64) as f32)
            })
            .collect()
    };
    let (ys, xs) = (coords(h, oh), coords(w, ow));
    let mut out = vec![0f32; oh * ow];
    for (oy, &(y0, y1, fy)) in ys.iter().enumerate() {
        for (ox, &(x0, x1, fx)) in xs.iter().enumerate() {
            let top = x[y0 * w + x0] * (1.0 - fx) + x[y0 * w + x1] * fx;
            let bot = x[y1 * w + x0] * (1.0 - fx) + x[y1 * w + x1] * fx;
            out[oy * ow + ox] = top * (1.0 - fy) + bot * fy;
        }
    }
    out
}

/// pytorch-grad-cam's `show_cam_on_image`: `0.5·jet(map) + 0.5·img`, divided by its max,
/// as RGB u8. `img` is RGB u8 `(h, w, 3)`; the map `(h, w)` in [0, 1].
pub fn overlay(img: &[u8], map: &[f32]) -> Vec<u8> {
    overlay_alpha(img, map, 0.5)
}

/// The blend before the final scaling: `alpha·jet(map) + (1 − alpha)·img` in [0, 1] per channel,
/// and its maximum (the divisor of the final step).
pub fn blend(img: &[u8], map: &[f32], alpha: f32) -> (Vec<f32>, f32) {
    let mut f: Vec<f32> = Vec::with_capacity(img.len());
    for (px, &m) in img.chunks(3).zip(map) {
        let (r, g, b) = jet((m * 255.0) as u8);
        for (c, &v) in [r, g, b].iter().zip(px) {
            f.push(alpha * (*c as f32 / 255.0) + (1.0 - alpha) * (v as f32 / 255.0));
        }
    }
    let mx = f.iter().copied().fold(0f32, f32::max).max(1e-12);
    (f, mx)
}

/// [`overlay`] with the heatmap weight `alpha` (GenInt's figures use 0.4). `shaders/heatmap.wgsl`
/// draws the same pixels on the GPU.
pub fn overlay_alpha(img: &[u8], map: &[f32], alpha: f32) -> Vec<u8> {
    let (f, mx) = blend(img, map, alpha);
    f.iter().map(|v| (255.0 * v / mx) as u8).collect()
}

/// OpenCV's COLORMAP_JET for one 8-bit value, as RGB.
pub fn jet(v: u8) -> (u8, u8, u8) {
    let x = v as f32 / 255.0;
    let ch = |c: f32| ((1.5 - (4.0 * x - c).abs()).clamp(0.0, 1.0) * 255.0).round() as u8;
    (ch(3.0), ch(2.0), ch(1.0))
}
