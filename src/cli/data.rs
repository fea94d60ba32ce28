//! `intervene data`: build the CGN paper's MNIST variants as image folders.
//!
//! `intervene data build --variant double-colored --out DIR` writes
//! `DIR/{train,test}/{class}/{i}.png` (torchvision `ImageFolder` layout; `i` = index within
//! the split), `DIR/{train,test}/factors.csv` (file, shape, texture, background class of every
//! image) and `DIR/manifest.json` (variant, seeds, counts, source files). The same data in
//! memory, without PNGs: [`crate::data::variants::build`].

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::ValueEnum;
use rayon::prelude::*;

use crate::data::mnist::SourceFile;
use crate::data::texture_files;
use crate::data::textures::{TextureSet, DEFAULT_TEXTURE_SEED};
use crate::data::variants::{self, Split, TestSource, Variant, VariantConfig, VariantSet, SIZE};

/// Data-set jobs.
#[derive(clap::Args, Debug)]
pub struct DataArgs {
    #[command(subcommand)]
    pub command: DataCommand,
}

/// The `data` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum DataCommand {
    /// Build a biased train / de-biased test split of colored, double-colored or wildlife MNIST
    /// as PNG image folders.
    Build(BuildArgs),
}

/// The variant names on the command line.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum VariantArg {
    /// Class-coloured strokes on black (jitter variance 0.02).
    Colored,
    /// Class-coloured background and digit (jitter std 0.01).
    DoubleColored,
    /// Class-linked striped digit and veined background textures (procedural).
    Wildlife,
    /// Wildlife, data version 2: wide bright stripes on a dark background of the opposite hue
    /// (high digit/background contrast; see docs/RESULTS.md §1).
    #[value(name = "wildlife-v2")]
    WildlifeV2,
}

impl From<VariantArg> for Variant {
    fn from(v: VariantArg) -> Self {
        match v {
            VariantArg::Colored => Variant::Colored,
            VariantArg::DoubleColored => Variant::DoubleColored,
            VariantArg::Wildlife => Variant::Wildlife,
            VariantArg::WildlifeV2 => Variant::WildlifeV2,
        }
    }
}

/// Where the test split's digits come from.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestSourceArg {
    /// MNIST training images 50,000–59,999 (the reference code's split).
    Holdout,
    /// The MNIST test file (t10k, 10,000 images).
    T10k,
}

/// `intervene data build`.
#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// Which variant to build.
    #[arg(long, value_enum, value_name = "NAME", help_heading = "Data set")]
    pub variant: VariantArg,
    /// Folder with the MNIST IDX files (raw or .gz) [default: $INTERVENE_DATA/mnist, or
    /// $INTERVENE_DATA/fashion-mnist with --fashion].
    #[arg(long, value_name = "DIR", help_heading = "Data set")]
    pub mnist: Option<PathBuf>,
    /// Use Fashion-MNIST instead of MNIST (same file names; only changes the default folder and
    /// the manifest).
    #[arg(long, help_heading = "Data set")]
    pub fashion: bool,
    /// Seed of colour choices, jitters and crops (the same seed gives the same images on any
    /// machine and thread count).
    #[arg(long, default_value_t = 0, value_name = "S", help_heading = "Data set")]
    pub seed: u64,
    /// Seed of the procedural wildlife textures.
    #[arg(long, default_value_t = DEFAULT_TEXTURE_SEED, value_name = "S", help_heading = "Data set")]
    pub texture_seed: u64,
    /// Wildlife: read the textures from image files instead of making them: DIR/object/ and
    /// DIR/background/ with ten images each, the i-th by file name for class i (the layout of
    /// the CGN authors' DTD textures, mnists/data/textures/; resized to 150×150 as theirs are).
    #[arg(long, value_name = "DIR", help_heading = "Data set")]
    pub textures: Option<PathBuf>,
    /// Digits of the test split.
    #[arg(long, value_enum, default_value = "holdout", value_name = "FROM", help_heading = "Data set")]
    pub test_source: TestSourceArg,
    /// Keep only the first N images of each split (quick looks).
    #[arg(long, value_name = "N", help_heading = "Data set")]
    pub limit: Option<usize>,
    /// Output folder (created; must not already hold a manifest.json unless --overwrite).
    #[arg(long, value_name = "DIR", help_heading = "Output")]
    pub out: PathBuf,
    /// Replace an existing data set in --out.
    #[arg(long, help_heading = "Output")]
    pub overwrite: bool,
}

/// Runs `intervene data …`.
pub fn run(args: DataArgs) -> anyhow::Result<()> {
    match args.command {
        DataCommand::Build(a) => build(a),
    }
}

fn build(a: BuildArgs) -> anyhow::Result<()> {
    let source_name = if a.fashion { "fashion-mnist" } else { "mnist" };
    let mnist_dir = a.mnist.clone().unwrap_or_else(|| crate::data::data_dir().join(source_name));
    let variant: Variant = a.variant.into();
    if a.textures.is_some() && !variant.is_wildlife() {
        bail!("--textures applies to wildlife and wildlife-v2 only ({} has no textures)", variant.name());
    }
    let manifest_path = a.out.join("manifest.json");
    if manifest_path.exists() && !a.overwrite {
        bail!("{} already holds a data set (manifest.json); pass --overwrite to replace it", a.out.display());
    }
    let test_source = match a.test_source {
        TestSourceArg::Holdout => TestSource::Holdout,
        TestSourceArg::T10k => TestSource::T10k,
    };
    let cfg = VariantConfig { variant, seed: a.seed, texture_seed: a.texture_seed };
    let textures = match &a.textures {
        Some(dir) => Some(texture_files::load_dir(dir).context("--textures")?),
        None => None,
    };
    let (train_src, test_src) = variants::source_splits(&mnist_dir, test_source, a.limit)
        .with_context(|| format!("cannot read {source_name} from {}", mnist_dir.display()))?;
    let mut sources: Vec<SourceFile> = train_src.sources.clone();
    for s in &test_src.sources {
        if !sources.contains(s) {
            sources.push(s.clone());
        }
    }

    let total = 2 * (train_src.len() + test_src.len()) as u64;
    let bar = indicatif::ProgressBar::new(total).with_style(
        indicatif::ProgressStyle::with_template("{msg:>16} [{bar:40}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut summaries = serde_json::Map::new();
    for (split, src) in [(Split::Train, &train_src), (Split::Test, &test_src)] {
        bar.set_message(format!("generating {}", split.name()));
        let set = variants::generate_with_textures(&cfg, split, src, textures.as_ref(), &|n| bar.inc(n as u64))?;
        bar.set_message(format!("writing {}", split.name()));
        write_split(&set, &a.out, &|| bar.inc(1))?;
        summaries.insert(split.name().into(), split_summary(&set));
    }
    bar.finish_with_message("done");

    let images = a.textures.as_deref().zip(textures.as_ref());
    let manifest = manifest(&cfg, source_name, test_source, a.limit, &sources, images, summaries);
    let text = serde_json::to_string_pretty(&manifest)? + "\n";
    crate::imageio::write_atomically(&manifest_path, |tmp| Ok(std::fs::write(tmp, &text)?))?;
    eprintln!(
        "wrote {} {} images ({} train, {} test) to {}",
        cfg.variant.name(),
        train_src.len() + test_src.len(),
        train_src.len(),
        test_src.len(),
        a.out.display()
    );
    Ok(())
}

/// Writes `{out}/{split}/{class}/{i}.png` and `{out}/{split}/factors.csv`.
fn write_split(set: &VariantSet, out: &Path, tick: &(dyn Fn() + Sync)) -> anyhow::Result<()> {
    let root = out.join(set.split.name());
    for k in 0..10 {
        let d = root.join(k.to_string());
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    (0..set.len()).into_par_iter().try_for_each(|i| -> anyhow::Result<()> {
        let path = root.join(set.factors[i].shape.to_string()).join(format!("{i}.png"));
        image::save_buffer_with_format(
            &path,
            set.image(i),
            SIZE as u32,
            SIZE as u32,
            image::ExtendedColorType::Rgb8,
            image::ImageFormat::Png,
        )
        .with_context(|| format!("cannot write {}", path.display()))?;
        tick();
        Ok(())
    })?;
    let mut csv = String::from("file,shape,texture,background\n");
    for (i, f) in set.factors.iter().enumerate() {
        let bg = f.background.map(|b| b.to_string()).unwrap_or_default();
        csv += &format!("{}/{i}.png,{},{},{bg}\n", f.shape, f.shape, f.texture);
    }
    let p = root.join("factors.csv");
    std::fs::write(&p, csv).with_context(|| format!("cannot write {}", p.display()))
}

fn split_summary(set: &VariantSet) -> serde_json::Value {
    let mut counts = [0usize; 10];
    for f in &set.factors {
        counts[f.shape as usize] += 1;
    }
    serde_json::json!({
        "count": set.len(),
        "class_counts": counts,
        "class_linked": set.split == Split::Train,
    })
}

fn manifest(
    cfg: &VariantConfig,
    source_name: &str,
    test_source: TestSource,
    limit: Option<usize>,
    sources: &[SourceFile],
    texture_images: Option<(&Path, &TextureSet)>,
    splits: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    let details = match (cfg.variant, texture_images) {
        (Variant::Colored, _) => serde_json::json!({
            "stroke_colors": variants::PALETTE,
            "jitter_variance": variants::COLORED_JITTER_VAR,
            "background": [0, 0, 0],
        }),
        (Variant::DoubleColored, _) => serde_json::json!({
            "background_colors": variants::PALETTE,
            "digit_colors": (0..10).map(|k| variants::PALETTE[variants::object_color_index(k)]).collect::<Vec<_>>(),
            "jitter_std": variants::DOUBLE_COLORED_JITTER_STD,
        }),
        (Variant::Wildlife | Variant::WildlifeV2, Some((dir, set))) => serde_json::json!({
            "digit_textures": format!("images in {}", dir.join(texture_files::OBJECT_DIR).display()),
            "background_textures": format!("images in {}", dir.join(texture_files::BACKGROUND_DIR).display()),
            "textures_sha256": set.sha256(),
            "texture_size": crate::data::textures::TEXTURE_SIZE,
            "crop_padding_reflect": variants::CROP_PADDING,
        }),
        (Variant::Wildlife | Variant::WildlifeV2, None) => serde_json::json!({
            "texture_style": cfg.variant.texture_style(),
            "digit_textures": "procedural striped (intervene::data::textures::striped)",
            "background_textures": "procedural veined (intervene::data::textures::veined)",
            "texture_seed": cfg.texture_seed,
            "texture_size": crate::data::textures::TEXTURE_SIZE,
            "crop_padding_reflect": variants::CROP_PADDING,
        }),
    };
    serde_json::json!({
        "variant": cfg.variant.name(),
        "seed": cfg.seed,
        "source": source_name,
        "source_files": sources,
        "test_source": test_source,
        "limit": limit,
        "image": { "width": SIZE, "height": SIZE, "channels": 3, "format": "png" },
        "digit_mask": "MNIST digit resized to 32x32 (nearest, src = floor(dst*28/32)), digit where v/255 > 0.1",
        "layout": "{split}/{class}/{i}.png; factors in {split}/factors.csv",
        "splits": splits,
        "details": details,
        "generator": format!("intervene {}", env!("CARGO_PKG_VERSION")),
    })
}
