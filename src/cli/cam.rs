//! `intervene cam`: a class activation map of one image.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use candle_core::{DType, Device, Tensor};

use crate::explain::cam::{overlay, Method};
use crate::explain::pipeline::{cam_of, class_name, layer_table, CamOf};
use crate::models::classifier::{self, Arch};
use crate::preprocess::{IMAGENET_MEAN as MEAN, IMAGENET_STD as STD};

/// Explain a classifier's decision on one image with a class activation map.
///
/// The map is pytorch-grad-cam's (1.5.7) to within 1e-4: the gradient of the raw output is taken
/// only down to --layer, weighted per method, ReLU'd, min-max normalised, bilinearly resized
/// (OpenCV INTER_LINEAR) and normalised again. EigenCAM uses no gradient (its sign follows the
/// activations; LAPACK leaves the reference's sign undefined).
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  intervene cam --classifier mobilenet_v2 --image cat.jpg --out overlay.png\n  \
intervene cam --classifier resnet18.pth --input x.npy --method gradcam++ --layer layer3 --class 281 --raw cam.npy")]
pub struct CamArgs {
    /// Weights file (torchvision / authors' key names; any supported format) or a bundled model name (mobilenet_v2).
    #[arg(long, value_name = "PATH_OR_NAME", help_heading = "Model")]
    pub classifier: String,
    /// Architecture; detected from the weight names when omitted.
    #[arg(long, value_parser = super::values::named::<Arch>(), help_heading = "Model")]
    pub arch: Option<Arch>,
    /// An image file. ImageNet models: resized (shorter side 256, antialiased bilinear),
    /// centre-cropped to 224, ImageNet mean/std. mnist-cnn: resized to 32×32, scaled to [−1, 1].
    #[arg(long, value_name = "IMG", help_heading = "Input", conflicts_with = "input")]
    pub image: Option<PathBuf>,
    /// An already-preprocessed float32 [1, 3, H, W] tensor (.npy).
    #[arg(long, value_name = "X.npy", help_heading = "Input")]
    pub input: Option<PathBuf>,
    /// CAM method.
    #[arg(long, value_parser = super::values::named::<Method>(), default_value = "gradcam", help_heading = "CAM")]
    pub method: Method,
    /// Target layer (default: ResNet layer4[-1], MobileNet features.18, MNIST CNN model.8). `--layers` lists them.
    #[arg(long, value_name = "NAME", help_heading = "CAM")]
    pub layer: Option<String>,
    /// Print the classifier's layers with their output shapes and exit.
    #[arg(long, help_heading = "CAM")]
    pub layers: bool,
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

pub fn run(a: CamArgs) -> anyhow::Result<()> {
    let opened = classifier::open(&a.classifier, a.arch, &Device::Cpu)?;
    let num_classes = opened.num_classes;
    let (x, rgb) = match (&a.image, &a.input) {
        (Some(p), _) => {
            let (x, px) = opened.arch.preprocess(&open_rgb(p)?)?;
            (x, Some(px))
        }
        (None, Some(p)) => (crate::imageio::load_npy(p)?, None),
        (None, None) if a.layers => {
            (Tensor::zeros((1, 3, opened.arch.input_size(), opened.arch.input_size()), DType::F32, &Device::Cpu)?, None)
        }
        (None, None) => bail!("give --image IMG or --input X.npy"),
    };
    let (_, _, h, w) = x.dims4().context("the input must be [1, 3, H, W]")?;
    if a.layers {
        for (n, shape) in layer_table(&opened)? {
            println!("{n:<12} {shape:?}");
        }
        return Ok(());
    }
    let class =
        a.class.as_deref().map(|c| crate::classes::resolve(c, num_classes).map_err(anyhow::Error::msg)).transpose()?;
    let CamOf { cam, layer, target, logits } = cam_of(&opened, &x, a.method, a.layer.as_deref(), class)?;
    eprintln!(
        "{:?} {}: target {target} ({}), layer {}",
        opened.arch,
        opened.source.display(),
        class_name(target, num_classes),
        opened.model.stage_names()[layer]
    );
    if let Some(p) = &a.logits {
        crate::imageio::save_npy(&logits, p)?;
    }
    if let Some(p) = &a.raw {
        crate::imageio::save_npy(&Tensor::from_vec(cam.map.clone(), (h, w), &Device::Cpu)?, p)?;
    }
    if let Some(p) = &a.out {
        let img = match rgb {
            Some(px) => px,
            None if opened.arch == Arch::MnistCnn => to_rgb_signed(&x)?,
            None => denormalise(&x)?,
        };
        let px = overlay(&img, &cam.map);
        crate::imageio::save_image(&crate::imageio::RgbImage { width: w, height: h, pixels: px }, p)?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

/// Reads an image file as RGB, naming the file on failure.
fn open_rgb(path: &std::path::Path) -> anyhow::Result<image::RgbImage> {
    Ok(image::open(path).with_context(|| format!("cannot read image {}", path.display()))?.to_rgb8())
}

/// A [−1, 1] tensor back to RGB u8.
fn to_rgb_signed(x: &Tensor) -> anyhow::Result<Vec<u8>> {
    let imgs = crate::imageio::images_from_tensor(x)?;
    Ok(imgs.into_iter().next().map(|i| i.pixels).unwrap_or_default())
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
