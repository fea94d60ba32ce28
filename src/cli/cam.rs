//! `intervene cam`: a class activation map of one image.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use candle_core::{DType, Device, Tensor};

use crate::explain::cam::{compute, overlay, Method};
use crate::models::classifier::Staged;
use crate::models::mobilenet_v2::MobileNetV2;

/// Explain a classifier's decision on one image with a class activation map.
///
/// The map is pytorch-grad-cam's (1.5.7) to within 1e-4: the gradient of the raw logit is taken
/// only down to --layer, weighted per method, ReLU'd, min-max normalised, bilinearly resized
/// (OpenCV INTER_LINEAR) and normalised again.
#[derive(clap::Args, Debug)]
pub struct CamArgs {
    /// Weights file (torchvision key names; any supported format).
    #[arg(long, value_name = "PATH", help_heading = "Model")]
    pub classifier: PathBuf,
    /// Architecture; detected from the weight names when omitted.
    #[arg(long, value_enum, help_heading = "Model")]
    pub arch: Option<Arch>,
    /// An image file: resized (shorter side 256, antialiased bilinear), centre-cropped to 224 and
    /// normalised with the ImageNet mean/std.
    #[arg(long, value_name = "IMG", help_heading = "Input", conflicts_with = "input")]
    pub image: Option<PathBuf>,
    /// An already-preprocessed float32 [1, 3, H, W] tensor (.npy).
    #[arg(long, value_name = "X.npy", help_heading = "Input")]
    pub input: Option<PathBuf>,
    /// CAM method.
    #[arg(long, value_enum, default_value = "gradcam", help_heading = "CAM")]
    pub method: Method,
    /// Target layer (default: the last feature layer, e.g. `features.18`).
    #[arg(long, value_name = "NAME", help_heading = "CAM")]
    pub layer: Option<String>,
    /// Target class: index or ImageNet name (default: the top-1 class).
    #[arg(long, value_name = "ID_OR_NAME", help_heading = "CAM")]
    pub class: Option<String>,
    /// Overlay image to write (jet colormap, alpha 0.5, as pytorch-grad-cam's show_cam_on_image).
    #[arg(long, value_name = "OVERLAY.png", help_heading = "Output")]
    pub out: Option<PathBuf>,
    /// The final map at input resolution, float32 [H, W] (.npy).
    #[arg(long, value_name = "CAM.npy", help_heading = "Output")]
    pub raw: Option<PathBuf>,
    /// The classifier's logits, float32 [1, classes] (.npy).
    #[arg(long, value_name = "LOGITS.npy", help_heading = "Output")]
    pub logits: Option<PathBuf>,
}

/// Architectures with a CAM-ready implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    #[value(name = "mobilenet_v2")]
    MobileNetV2,
}

const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

pub fn run(a: CamArgs) -> anyhow::Result<()> {
    let weights = crate::checkpoint::load(&a.classifier)?;
    let arch = match a.arch {
        Some(x) => x,
        None if weights.contains_key("features.18.0.weight") && weights.contains_key("classifier.1.weight") => {
            Arch::MobileNetV2
        }
        None => bail!(
            "cannot tell the architecture of {} from its keys; give --arch (supported: mobilenet_v2)",
            a.classifier.display()
        ),
    };
    let num_classes = weights.get("classifier.1.weight").map_or(1000, |w| w.dims()[0]);
    let model = match arch {
        Arch::MobileNetV2 => {
            MobileNetV2::new(candle_nn::VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu), num_classes)?
        }
    };
    let (x, rgb) = match (&a.image, &a.input) {
        (Some(p), _) => preprocess(p)?,
        (None, Some(p)) => (crate::imageio::load_npy(p)?, None),
        (None, None) => bail!("give --image IMG or --input X.npy"),
    };
    let (_, _, h, w) = x.dims4().context("the input must be [1, 3, H, W]")?;
    let layer = match &a.layer {
        Some(n) => model
            .stage_index(n)
            .with_context(|| format!("no layer '{n}'; layers: {}", model.stage_names().join(", ")))?,
        None => model.default_cam_stage(),
    };
    let class =
        a.class.as_deref().map(|c| crate::classes::resolve(c, num_classes).map_err(anyhow::Error::msg)).transpose()?;
    let ag = model.activation_and_gradient(&x, layer, class)?;
    let (_, c, lh, lw) = ag.act.dims4()?;
    let flat = |t: &Tensor| -> anyhow::Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1::<f32>()?) };
    let cam = compute(a.method, &flat(&ag.act)?, &flat(&ag.grad)?, c, lh, lw, h, w);
    let name = if num_classes == 1000 {
        crate::classes::imagenet()[ag.class].name().to_string()
    } else {
        format!("class {}", ag.class)
    };
    eprintln!("target {} ({name}), layer {}", ag.class, model.stage_names()[layer]);
    if let Some(p) = &a.logits {
        crate::imageio::save_npy(&ag.logits, p)?;
    }
    if let Some(p) = &a.raw {
        crate::imageio::save_npy(&Tensor::from_vec(cam.map.clone(), (h, w), &Device::Cpu)?, p)?;
    }
    if let Some(p) = &a.out {
        let img = match rgb {
            Some(px) => px,
            None => denormalise(&x)?,
        };
        let px = overlay(&img, &cam.map);
        crate::imageio::save_image(&crate::imageio::RgbImage { width: w, height: h, pixels: px }, p)?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

/// torchvision's `Resize(256)` (antialiased bilinear, shorter side 256) + `CenterCrop(224)` +
/// `ToTensor` + `Normalize(ImageNet mean, std)`. Returns the tensor and the cropped RGB pixels.
/// The resize uses a triangle filter like PIL's; PIL's 8-bit intermediate rounding is not
/// reproduced bit for bit.
pub fn preprocess(path: &std::path::Path) -> anyhow::Result<(Tensor, Option<Vec<u8>>)> {
    let img = image::open(path).with_context(|| format!("cannot read image {}", path.display()))?.to_rgb8();
    let (w0, h0) = (img.width() as f64, img.height() as f64);
    let (nw, nh) =
        if w0 <= h0 { (256, (256.0 * h0 / w0).floor() as u32) } else { ((256.0 * w0 / h0).floor() as u32, 256) };
    let r = image::imageops::resize(&img, nw, nh, image::imageops::FilterType::Triangle);
    let (top, left) = (((nh as f64 - 224.0) / 2.0).round() as u32, ((nw as f64 - 224.0) / 2.0).round() as u32);
    let crop = image::imageops::crop_imm(&r, left, top, 224, 224).to_image();
    let px = crop.into_raw();
    let mut v = vec![0f32; 3 * 224 * 224];
    for (i, p) in px.chunks(3).enumerate() {
        for ch in 0..3 {
            v[ch * 224 * 224 + i] = (p[ch] as f32 / 255.0 - MEAN[ch]) / STD[ch];
        }
    }
    Ok((Tensor::from_vec(v, (1, 3, 224, 224), &Device::Cpu)?, Some(px)))
}

/// Back from a normalised tensor to RGB u8 for the overlay.
fn denormalise(x: &Tensor) -> anyhow::Result<Vec<u8>> {
    let (_, _, h, w) = x.dims4()?;
    let v = x.flatten_all()?.to_vec1::<f32>()?;
    let mut px = vec![0u8; h * w * 3];
    for i in 0..h * w {
        for ch in 0..3 {
            px[i * 3 + ch] = ((v[ch * h * w + i] * STD[ch] + MEAN[ch]) * 255.0).clamp(0.0, 255.0) as u8;
        }
    }
    Ok(px)
}
