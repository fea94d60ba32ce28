//! Class names: the ImageNet-1k table (index, WordNet id, names) and class-vector parsing.

use candle_core::{Device, Result, Tensor};

/// `assets/imagenet_classes.tsv`, compiled in so class lookup needs no files.
const IMAGENET_TSV: &str = include_str!("../assets/imagenet_classes.tsv");

/// One ImageNet class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassInfo {
    pub index: usize,
    pub wnid: String,
    /// Comma-separated WordNet lemmas; the first is the display name.
    pub names: String,
}

impl ClassInfo {
    /// The first lemma (`"Siberian husky"`).
    pub fn name(&self) -> &str {
        self.names.split(',').next().unwrap_or(&self.names).trim()
    }
}

/// The 1000 ImageNet classes in index order.
pub fn imagenet() -> &'static [ClassInfo] {
    static TABLE: std::sync::OnceLock<Vec<ClassInfo>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        IMAGENET_TSV
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let mut it = l.splitn(3, '\t');
                Some(ClassInfo {
                    index: it.next()?.parse().ok()?,
                    wnid: it.next()?.to_string(),
                    names: it.next()?.to_string(),
                })
            })
            .collect()
    })
}

/// Resolves a class given as an index, a WordNet id (`n02110185`) or a name (`Siberian husky`,
/// case-insensitive, any of the lemmas). Names only apply to 1000-class models.
pub fn resolve(query: &str, num_classes: usize) -> std::result::Result<usize, String> {
    let q = query.trim();
    if let Ok(i) = q.parse::<usize>() {
        return if i < num_classes {
            Ok(i)
        } else {
            Err(format!(
                "class {i} is out of range: the model has {num_classes} classes (0..{})",
                num_classes.saturating_sub(1)
            ))
        };
    }
    if num_classes != 1000 {
        return Err(format!(
            "'{q}' is not a class index; this model has {num_classes} classes, so names cannot be used"
        ));
    }
    let lower = q.to_lowercase();
    let table = imagenet();
    if let Some(c) = table.iter().find(|c| c.wnid.eq_ignore_ascii_case(q)) {
        return Ok(c.index);
    }
    if let Some(c) = table.iter().find(|c| c.names.split(',').any(|n| n.trim().to_lowercase() == lower)) {
        return Ok(c.index);
    }
    let hints: Vec<String> = table
        .iter()
        .filter(|c| c.names.to_lowercase().contains(&lower))
        .take(8)
        .map(|c| format!("{} ({})", c.index, c.name()))
        .collect();
    if hints.is_empty() {
        Err(format!("no ImageNet class is called '{q}'"))
    } else {
        Err(format!("no ImageNet class is called exactly '{q}'; did you mean: {}", hints.join(", ")))
    }
}

/// Searches class names, wnids and indices for the class picker (case-insensitive substring).
pub fn search(query: &str, limit: usize) -> Vec<&'static ClassInfo> {
    let q = query.trim().to_lowercase();
    imagenet()
        .iter()
        .filter(|c| {
            q.is_empty() || c.names.to_lowercase().contains(&q) || c.wnid.contains(&q) || c.index.to_string() == q
        })
        .take(limit)
        .collect()
}

/// One-hot rows `(b, num_classes)` for the given class indices.
pub fn one_hot(classes: &[usize], num_classes: usize, device: &Device) -> Result<Tensor> {
    let mut v = vec![0f32; classes.len() * num_classes];
    for (row, &c) in classes.iter().enumerate() {
        if c >= num_classes {
            candle_core::bail!("class {c} is out of range for {num_classes} classes");
        }
        v[row * num_classes + c] = 1.0;
    }
    Tensor::from_vec(v, (classes.len(), num_classes), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_index_wnid_and_names() {
        assert_eq!(imagenet().len(), 1000);
        assert_eq!(resolve("207", 1000), Ok(207));
        assert_eq!(resolve("n02110185", 1000), Ok(250));
        assert_eq!(resolve("Siberian Husky", 1000), Ok(250));
        assert_eq!(resolve("golden retriever", 1000), Ok(207));
        assert_eq!(imagenet()[207].name(), "golden retriever");
        assert!(resolve("1000", 1000).unwrap_err().contains("out of range"));
        assert!(resolve("retriever", 1000).unwrap_err().contains("did you mean"));
        assert!(resolve("cat", 10).unwrap_err().contains("10 classes"));
        assert_eq!(resolve("7", 10), Ok(7));
    }

    #[test]
    fn one_hot_rows() {
        let t = one_hot(&[2, 0], 3, &Device::Cpu).unwrap();
        assert_eq!(t.to_vec2::<f32>().unwrap(), vec![vec![0.0, 0.0, 1.0], vec![1.0, 0.0, 0.0]]);
        assert!(one_hot(&[3], 3, &Device::Cpu).is_err());
    }
}
