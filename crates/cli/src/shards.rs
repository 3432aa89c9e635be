//! `embed --shard K/N` and `embed --merge-shards N`: embedding a large input as N independent jobs (under any batch
//! scheduler, with no coordinator), then joining their outputs in input order.
//!
//! Shard K of N takes the K-th of N contiguous, near-equal slices of the input texts (after blank lines are
//! skipped): texts `floor((K-1) * T / N)` up to `floor(K * T / N)` of `T`. For `--output vectors.npy` it writes
//! `vectors.shard-K-of-N.npy` and then, as its completion mark, `vectors.shard-K-of-N.json`: which slice it holds,
//! the input's SHA-256 and size, and the settings. The merge checks every manifest (all N present, the same input
//! and settings, slices that follow each other and cover the input) and writes `vectors.npy` (or `.jsonl`) exactly as
//! one run over the whole input lays it out.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// One shard of N: `index` in `1..=count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1-based.
    pub index: usize,
    /// How many shards the input is cut into.
    pub count: usize,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let wrong = || format!("`{text}` is not a shard: write K/N with 1 <= K <= N, e.g. 2/8");
        let (index, count) = text.split_once('/').ok_or_else(wrong)?;
        let index: usize = index.trim().parse().map_err(|_| wrong())?;
        let count: usize = count.trim().parse().map_err(|_| wrong())?;
        if index == 0 || index > count {
            return Err(wrong());
        }
        Ok(Self { index, count })
    }
}

impl Shard {
    /// The texts `first..end` of `total` this shard takes.
    pub fn range(self, total: usize) -> std::ops::Range<usize> {
        let bound = |k: usize| k * total / self.count;
        bound(self.index - 1)..bound(self.index)
    }
}

/// What a shard wrote: its completion mark and what the merge checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// 1-based shard number.
    pub shard: usize,
    /// Number of shards.
    pub shards: usize,
    /// Index of the shard's first text in the input.
    pub first: usize,
    /// Texts in the shard.
    pub count: usize,
    /// Texts in the whole input.
    pub total: usize,
    /// SHA-256 of the whole input's texts (each followed by a newline).
    pub input_sha256: String,
    /// The model directory, the pooling and whether vectors were normalised.
    pub settings: String,
}

/// SHA-256 of the texts, each followed by a newline.
pub fn fingerprint(texts: &[String]) -> String {
    let mut hasher = Sha256::new();
    for text in texts {
        hasher.update(text.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `vectors.npy` → `vectors.shard-K-of-N.<extension>`.
pub fn shard_path(output: &Path, shard: Shard, extension: &str) -> PathBuf {
    let stem = output.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    output.with_file_name(format!("{stem}.shard-{}-of-{}.{extension}", shard.index, shard.count))
}

/// The extension of an output file, `npy` or `jsonl`.
pub fn output_format(output: &Path) -> Result<&'static str> {
    match output.extension().and_then(|e| e.to_str()) {
        Some("npy") => Ok("npy"),
        Some("jsonl") => Ok("jsonl"),
        other => bail!("cannot write `.{}`: --output must end in .npy or .jsonl", other.unwrap_or("")),
    }
}

/// Writes the manifest of a shard whose vectors are already in place (atomically, last: it marks completion).
pub fn write_manifest(output: &Path, shard: Shard, manifest: &Manifest) -> Result<PathBuf> {
    let path = shard_path(output, shard, "json");
    atomic_files::write(&path, format!("{}\n", serde_json::to_string_pretty(manifest)?).as_bytes())?;
    Ok(path)
}

/// Joins the N shards of `output` into `output`; returns the number of vectors.
pub fn merge(output: &Path, count: usize) -> Result<usize> {
    if count == 0 {
        bail!("--merge-shards needs the number of shards (at least 1)");
    }
    let format = output_format(output)?;
    let mut manifests = Vec::with_capacity(count);
    for index in 1..=count {
        let shard = Shard { index, count };
        let path = shard_path(output, shard, "json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("shard {index} of {count} is missing or unfinished: cannot read its manifest {}", path.display())
        })?;
        let manifest: Manifest =
            serde_json::from_str(&text).with_context(|| format!("{} is not a shard manifest", path.display()))?;
        if (manifest.shard, manifest.shards) != (index, count) {
            bail!("{} describes shard {}/{}, not {index}/{count}", path.display(), manifest.shard, manifest.shards);
        }
        manifests.push((path, manifest));
    }
    let (first_path, first) = &manifests[0];
    let mut next = 0;
    for (path, manifest) in &manifests {
        if manifest.input_sha256 != first.input_sha256 || manifest.total != first.total {
            bail!("{} and {} come from different inputs", first_path.display(), path.display());
        }
        if manifest.settings != first.settings {
            bail!(
                "{} ({}) and {} ({}) were made with different settings",
                first_path.display(),
                first.settings,
                path.display(),
                manifest.settings
            );
        }
        if manifest.first != next {
            bail!("{} starts at text {}, but the shards before it end at {next}", path.display(), manifest.first);
        }
        next += manifest.count;
    }
    if next != first.total {
        bail!("the shards hold {next} texts, the input {}", first.total);
    }
    let parts: Vec<(PathBuf, &Manifest)> =
        manifests.iter().map(|(_, m)| (shard_path(output, Shard { index: m.shard, count }, format), m)).collect();
    match format {
        "npy" => {
            let mut tensors = Vec::with_capacity(count);
            for (path, manifest) in &parts {
                let tensor = tch::Tensor::read_npy(path).with_context(|| format!("cannot read {}", path.display()))?;
                if tensor.size().first().copied() != Some(manifest.count as i64) {
                    bail!("{} holds {:?} vectors, its manifest says {}", path.display(), tensor.size(), manifest.count);
                }
                tensors.push(tensor);
            }
            let merged = tch::Tensor::f_cat(&tensors, 0).context("the shards' vectors have different widths")?;
            atomic_files::write_via_path(output, |file| -> Result<()> { Ok(merged.write_npy(file)?) })?;
        }
        _ => {
            let mut lines = String::new();
            for (path, manifest) in &parts {
                let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
                let count = text.lines().count();
                if count != manifest.count {
                    bail!("{} holds {count} lines, its manifest says {}", path.display(), manifest.count);
                }
                lines.push_str(&text);
            }
            atomic_files::write(output, lines.as_bytes())?;
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_their_slices_cover_the_input_in_order() {
        assert_eq!("2/8".parse::<Shard>(), Ok(Shard { index: 2, count: 8 }));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        for total in [0, 1, 2, 7, 10, 1001] {
            for count in 1..=7 {
                let mut next = 0;
                for index in 1..=count {
                    let range = Shard { index, count }.range(total);
                    assert_eq!(range.start, next, "{index}/{count} of {total}");
                    assert!(range.len() <= total.div_ceil(count));
                    next = range.end;
                }
                assert_eq!(next, total);
            }
        }
    }

    #[test]
    fn shard_files_sit_beside_the_output() {
        let shard = Shard { index: 2, count: 3 };
        assert_eq!(shard_path(Path::new("out/vectors.npy"), shard, "npy"), Path::new("out/vectors.shard-2-of-3.npy"));
        assert_eq!(shard_path(Path::new("v.jsonl"), shard, "json"), Path::new("v.shard-2-of-3.json"));
    }
}
