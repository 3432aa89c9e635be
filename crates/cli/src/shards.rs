//! `embed --shard K/N` and `embed --merge-shards N`: embedding a large input as N independent jobs (under any batch
//! scheduler, with no coordinator), then joining their outputs in input order.
//!
//! Shard K of N takes the K-th of N contiguous, near-equal slices of the input texts (after blank lines are
//! skipped): texts `floor((K-1) * T / N)` up to `floor(K * T / N)` of `T`. For `--output vectors.npy` it writes
//! `vectors.shard-K-of-N.npy` and then, as its completion mark, `vectors.shard-K-of-N.json`: which slice it holds,
//! the input's SHA-256 and size, the model and its settings (pooling, normalization, length limit, precision), the
//! value type and dimension, and the data file's rows, length and SHA-256 (one entry per format: `.npy` and `.jsonl`
//! shards of the same run share the manifest).
//!
//! The merge checks, before it writes anything: every manifest (all N present, the same input, model, settings,
//! precision, value type and dimension; slices that follow each other with no gap or overlap and cover the input)
//! and every data file against its manifest (its format, a `.npy` header of float32 rows of the manifest's
//! dimension with all its bytes present, a `.jsonl` whose every line is whole, the row count, the length and the
//! SHA-256). It then writes `vectors.npy` (or `.jsonl`) exactly as one run over the whole input lays it out.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The most shards an input may be cut into (`--shard K/N`, `--merge-shards N`).
pub const MAX_SHARDS: usize = 100_000;

/// The value type of every vector file `embed` writes (`.npy` `<f4`; `.jsonl` numbers read from float32).
pub const DTYPE: &str = "float32";

/// One shard of N: `index` in `1..=count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1-based.
    pub index: usize,
    /// How many shards the input is cut into, at most [`MAX_SHARDS`].
    pub count: usize,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let wrong = || format!("`{text}` is not a shard: write K/N with 1 <= K <= N <= {MAX_SHARDS}, e.g. 2/8");
        let (index, count) = text.split_once('/').ok_or_else(wrong)?;
        let index: usize = index.trim().parse().map_err(|_| wrong())?;
        let count: usize = count.trim().parse().map_err(|_| wrong())?;
        if count > MAX_SHARDS {
            return Err(format!("`{text}`: {count} shards are more than the {MAX_SHARDS} an input may be cut into"));
        }
        if index == 0 || index > count {
            return Err(wrong());
        }
        Ok(Self { index, count })
    }
}

impl Shard {
    /// The texts `first..end` of `total` this shard takes (computed without overflow for any sizes).
    pub fn range(self, total: usize) -> std::ops::Range<usize> {
        let bound = |k: usize| {
            let bound = k as u128 * total as u128 / self.count.max(1) as u128;
            // At most `total`, since k <= count.
            usize::try_from(bound).unwrap_or(total).min(total)
        };
        bound(self.index.saturating_sub(1))..bound(self.index)
    }
}

/// Parses the N of `--merge-shards N`: a number of shards, 1 to [`MAX_SHARDS`].
pub fn parse_count(text: &str) -> std::result::Result<usize, String> {
    let count: usize =
        text.trim().parse().map_err(|_| format!("`{text}` is not a number of shards (1 to {MAX_SHARDS})"))?;
    check_count(count).map_err(|error| error.to_string())?;
    Ok(count)
}

fn check_count(count: usize) -> Result<()> {
    if count == 0 {
        bail!("--merge-shards needs the number of shards (at least 1)");
    }
    if count > MAX_SHARDS {
        bail!("--merge-shards {count}: an input is cut into at most {MAX_SHARDS} shards");
    }
    Ok(())
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
    /// The model directory (absolute).
    pub model: String,
    /// The settings in words: the model directory, the pooling and whether vectors were normalized, the length
    /// limit.
    pub settings: String,
    /// The pooling modes, `+`-joined (`mean`, `cls+max`).
    pub pooling: String,
    /// Whether the vectors have unit length.
    pub normalized: bool,
    /// Tokens read per text.
    pub max_length: usize,
    /// The precision the encoder ran at: `f32` or `bf16`.
    pub precision: String,
    /// The value type written: [`DTYPE`].
    pub dtype: String,
    /// Values per vector.
    pub dimension: usize,
    /// The shard's data files, by format (`npy`, `jsonl`).
    pub files: BTreeMap<String, ShardFile>,
}

/// A shard's data file, as it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardFile {
    /// Its name (in the output's directory).
    pub file: String,
    /// Vectors in it.
    pub rows: usize,
    /// Its length in bytes.
    pub bytes: u64,
    /// Its SHA-256.
    pub sha256: String,
}

/// The length and SHA-256 of what a writer wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Bytes written.
    pub bytes: u64,
    /// Their SHA-256, in hex.
    pub sha256: String,
}

impl Manifest {
    /// Whether `other` describes the same run of the same shard (everything but the data files).
    fn same_run(&self, other: &Manifest) -> bool {
        Manifest { files: BTreeMap::new(), ..self.clone() } == Manifest { files: BTreeMap::new(), ..other.clone() }
    }
}

/// SHA-256 of the texts, each followed by a newline.
pub fn fingerprint(texts: &[String]) -> String {
    let mut hasher = Sha256::new();
    for text in texts {
        hasher.update(text.as_bytes());
        hasher.update(b"\n");
    }
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
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
///
/// `manifest.files` holds the data file just written. The entry of the other format is kept when the manifest
/// already there describes the same run (same input, slice, model and settings); any other manifest is replaced.
pub fn write_manifest(output: &Path, shard: Shard, manifest: &Manifest) -> Result<PathBuf> {
    let path = shard_path(output, shard, "json");
    let mut manifest = manifest.clone();
    let previous = std::fs::read_to_string(&path).ok().and_then(|text| serde_json::from_str::<Manifest>(&text).ok());
    if let Some(previous) = previous.filter(|previous| previous.same_run(&manifest)) {
        for (format, file) in previous.files {
            manifest.files.entry(format).or_insert(file);
        }
    }
    atomic_files::write(&path, format!("{}\n", serde_json::to_string_pretty(&manifest)?).as_bytes())?;
    Ok(path)
}

/// A writer that counts and hashes what goes through it.
struct Hashing<W> {
    inner: W,
    bytes: u64,
    hasher: Sha256,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Self { inner, bytes: 0, hasher: Sha256::new() }
    }

    fn written(self) -> Written {
        Written { bytes: self.bytes, sha256: hex(&self.hasher.finalize()) }
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `bytes` to `path` atomically; returns their length and SHA-256.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<Written> {
    atomic_files::write(path, bytes)?;
    let mut hasher = Sha256::new();
    hasher.update(bytes);
    Ok(Written { bytes: bytes.len() as u64, sha256: hex(&hasher.finalize()) })
}

/// The `.npy` header of a `[rows, cols]` little-endian float32 array, laid out as `tch` lays it out: format 1.0,
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (rows,cols,), }`, padded with spaces and a newline to a
/// multiple of 16 bytes.
pub fn npy_header(rows: usize, cols: usize) -> Vec<u8> {
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows},{cols},), }}");
    let pad = 16 - (NPY_MAGIC.len() + 5 + dict.len()) % 16;
    dict.extend(std::iter::repeat_n(' ', pad % 16));
    dict.push('\n');
    let mut header = NPY_MAGIC.to_vec();
    header.extend_from_slice(&[1, 0]);
    // At most a few dozen bytes: two bytes hold its length.
    header.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    header.extend_from_slice(dict.as_bytes());
    header
}

/// Writes `values` (`rows × cols` float32, row-major) to `path` as `.npy`, atomically; returns the file's length
/// and SHA-256. Errors name `path`.
pub fn write_npy(path: &Path, rows: usize, cols: usize, values: &[f32]) -> Result<Written> {
    if rows.checked_mul(cols) != Some(values.len()) {
        bail!("cannot write {}: {} values are not {rows} rows of {cols}", path.display(), values.len());
    }
    let mut written = None;
    atomic_files::write_with(path, |file| {
        let mut out = Hashing::new(std::io::BufWriter::new(file));
        out.write_all(&npy_header(rows, cols))?;
        for chunk in values.chunks(16 * 1024) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|value| value.to_le_bytes()).collect();
            out.write_all(&bytes)?;
        }
        out.flush()?;
        written = Some(out.written());
        Ok(())
    })?;
    written.context("the vectors were not written")
}

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// The shape and data offset of a `.npy` file of float32 rows, its length checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NpyLayout {
    /// Vectors (the first dimension).
    pub rows: usize,
    /// Values per vector (the second dimension).
    pub cols: usize,
    /// Where the values start.
    pub data_offset: u64,
}

/// Reads and checks the header of the `.npy` file `path` of length `length`: the magic string, format 1, 2 or 3,
/// a dictionary with `descr` `'<f4'` (little-endian float32), `fortran_order` `False` and a two-dimensional
/// `shape`, and exactly `rows × cols × 4` bytes of values after it. `Tensor::read_npy` trusts the declared shape; this
/// does not.
pub fn read_npy_layout(reader: &mut impl Read, path: &Path, length: u64) -> Result<NpyLayout> {
    let name = path.display();
    let mut magic = [0u8; 8];
    reader.read_exact(&mut magic).with_context(|| format!("{name} is not a .npy file: it is shorter than a header"))?;
    if &magic[..6] != NPY_MAGIC {
        bail!("{name} is not a .npy file: it does not start with \\x93NUMPY");
    }
    let (length_bytes, max_header) = match magic[6] {
        1 => (2, u64::from(u16::MAX)),
        2 | 3 => (4, 1 << 20),
        major => bail!("{name} is a .npy file of format {major}.{}, which this reader does not know", magic[7]),
    };
    let mut declared = [0u8; 4];
    reader.read_exact(&mut declared[..length_bytes]).with_context(|| format!("{name} is cut inside its header"))?;
    let header_length = u64::from(u32::from_le_bytes(declared));
    let data_offset = 8 + length_bytes as u64 + header_length;
    if header_length > max_header || data_offset > length {
        bail!("{name} is cut inside its header: it declares a {header_length}-byte header in a {length}-byte file");
    }
    let mut dict = vec![0u8; header_length as usize];
    reader.read_exact(&mut dict).with_context(|| format!("{name} is cut inside its header"))?;
    let dict = String::from_utf8(dict).with_context(|| format!("the header of {name} is not text"))?;
    let header =
        parse_npy_dict(&dict).with_context(|| format!("the header of {name} is not a .npy header: {dict:?}"))?;
    match header.descr.as_str() {
        "<f4" => {}
        descr => bail!(
            "{name} holds {} values ('{descr}'), not the little-endian float32 ('<f4') that embed writes",
            describe_descr(descr)
        ),
    }
    if header.fortran_order {
        bail!("{name} is stored in Fortran (column-major) order; embed writes row-major (fortran_order False)");
    }
    let &[rows, cols] = header.shape.as_slice() else {
        bail!("{name} has shape {:?}; embed writes two dimensions (vectors, values)", header.shape);
    };
    let data = (rows as u128) * (cols as u128) * 4;
    let present = u128::from(length - data_offset);
    if present < data {
        bail!(
            "{name} is cut short: its header declares {rows} × {cols} float32 values ({data} bytes), but only \
             {present} bytes follow the header"
        );
    }
    if present > data {
        bail!("{name} holds {} bytes more than the {rows} × {cols} float32 values its header declares", present - data);
    }
    Ok(NpyLayout { rows, cols, data_offset })
}

/// The fields of a `.npy` header dictionary.
#[derive(Debug, PartialEq)]
struct NpyDict {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Parses `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 16), }` (as numpy and tch write it).
fn parse_npy_dict(text: &str) -> Result<NpyDict> {
    let inner = text
        .trim_end_matches(['\n', ' ', '\0'])
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .context("it is not a dictionary")?;
    let (mut descr, mut fortran_order, mut shape) = (None, None, None);
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let (key, after) = quoted(rest).context("a key is not a quoted string")?;
        let after = after.trim_start().strip_prefix(':').context("a key without a value")?.trim_start();
        let (value, after) = if after.starts_with('(') {
            let end = after.find(')').context("a tuple is not closed")?;
            (&after[..=end], &after[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim(), &after[end..])
        };
        match key {
            "descr" => match quoted(value) {
                Some((text, tail)) if tail.trim().is_empty() => descr = Some(text.to_string()),
                _ => bail!("`descr` {value} is not a quoted string"),
            },
            "fortran_order" => {
                fortran_order = Some(match value {
                    "False" => false,
                    "True" => true,
                    _ => bail!("`fortran_order` is {value}, not True or False"),
                })
            }
            "shape" => {
                let items = value.trim_start_matches('(').trim_end_matches(')');
                let dims: std::result::Result<Vec<usize>, _> =
                    items.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::parse).collect();
                shape = Some(dims.map_err(|_| anyhow::anyhow!("`shape` {value} is not a tuple of sizes"))?);
            }
            other => bail!("unknown key `{other}`"),
        }
        rest = after.trim_start();
        match rest.strip_prefix(',') {
            Some(after_comma) => rest = after_comma.trim_start(),
            None if rest.is_empty() => {}
            None => bail!("entries are not separated by commas"),
        }
    }
    Ok(NpyDict {
        descr: descr.context("no `descr`")?,
        fortran_order: fortran_order.context("no `fortran_order`")?,
        shape: shape.context("no `shape`")?,
    })
}

/// `'descr' rest` → (`descr`, ` rest`), with single or double quotes.
fn quoted(text: &str) -> Option<(&str, &str)> {
    let quote = text.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let body = &text[1..];
    let end = body.find(quote)?;
    Some((&body[..end], &body[end + 1..]))
}

/// `<f8` → `float64`, for messages.
fn describe_descr(descr: &str) -> String {
    let order = match descr.chars().next() {
        Some('>') => "big-endian ",
        _ => "",
    };
    let kind = descr.trim_start_matches(['<', '>', '|', '=']);
    let name = match kind {
        "f2" => "float16",
        "f4" => "float32",
        "f8" => "float64",
        "i1" => "int8",
        "i2" => "int16",
        "i4" => "int32",
        "i8" => "int64",
        "u1" => "uint8",
        "b1" => "bool",
        _ => "unknown",
    };
    format!("{order}{name}")
}

/// A shard as the merge found it: where its files are and what its manifest says.
struct Part {
    manifest_path: PathBuf,
    data_path: PathBuf,
    manifest: Manifest,
    file: ShardFile,
    /// Where the vectors start in the data file (after a `.npy` header; 0 for JSON lines).
    data_offset: u64,
}

/// Joins the N shards of `output` into `output`; returns the number of vectors.
///
/// Every shard is checked (see the module documentation) before anything is written; a mismatch is an error naming
/// the shard file and what differs, and leaves `output` as it was.
pub fn merge(output: &Path, count: usize) -> Result<usize> {
    check_count(count)?;
    let format = output_format(output)?;
    // The manifests one by one: a missing one stops the merge before anything is held for the others.
    let mut parts: Vec<Part> = Vec::new();
    for index in 1..=count {
        let shard = Shard { index, count };
        let manifest_path = shard_path(output, shard, "json");
        let text = std::fs::read_to_string(&manifest_path).with_context(|| {
            format!(
                "shard {index} of {count} is missing or unfinished: cannot read its manifest {}",
                manifest_path.display()
            )
        })?;
        let manifest: Manifest = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a shard manifest of this bertmt (rerun shard {index}/{count} to write one)",
                manifest_path.display()
            )
        })?;
        if (manifest.shard, manifest.shards) != (index, count) {
            bail!(
                "{} describes shard {}/{}, not {index}/{count}",
                manifest_path.display(),
                manifest.shard,
                manifest.shards
            );
        }
        let data_path = shard_path(output, shard, format);
        let Some(file) = manifest.files.get(format).cloned() else {
            let written: Vec<String> = manifest.files.values().map(|file| file.file.clone()).collect();
            bail!(
                "shard {index} of {count} has no .{format} vectors: its manifest {} records {} (the last run of \
                 this shard wrote another format or input); rerun shard {index}/{count} with --output {}",
                manifest_path.display(),
                if written.is_empty() { "no data file".to_string() } else { written.join(", ") },
                output.display()
            );
        };
        let expected_name = data_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if file.file != expected_name {
            bail!("{} describes {}, not {}", manifest_path.display(), file.file, data_path.display());
        }
        parts.push(Part { manifest_path, data_path, manifest, file, data_offset: 0 });
    }
    check_agreement(&parts)?;
    for part in &mut parts {
        part.data_offset = check_data(part, format)?;
    }
    let total = parts[0].manifest.total;
    let dimension = parts[0].manifest.dimension;
    atomic_files::write_with(output, |file| {
        let mut out = std::io::BufWriter::new(file);
        if format == "npy" {
            out.write_all(&npy_header(total, dimension))?;
        }
        for part in &parts {
            copy_checked(part, &mut out)?;
        }
        out.flush()
    })?;
    Ok(total)
}

/// Checks that every shard comes from the same input, model and settings as the first, and that their slices
/// follow each other and cover the input.
fn check_agreement(parts: &[Part]) -> Result<()> {
    let first = &parts[0];
    let (a, one) = (first.data_path.display(), &first.manifest);
    if one.dtype != DTYPE {
        bail!("{} records {} values; embed writes and merges {DTYPE}", first.manifest_path.display(), one.dtype);
    }
    let mut next = 0usize;
    for part in parts {
        let (b, m) = (part.data_path.display(), &part.manifest);
        if m.input_sha256 != one.input_sha256 || m.total != one.total {
            bail!(
                "{b} and {a} come from different inputs: {} texts with SHA-256 {} against {} texts with SHA-256 {}",
                m.total,
                m.input_sha256,
                one.total,
                one.input_sha256
            );
        }
        let differences = [
            ("model", m.model.clone(), one.model.clone()),
            ("pooling", m.pooling.clone(), one.pooling.clone()),
            ("normalization", normalized(m.normalized), normalized(one.normalized)),
            ("length limit (tokens)", m.max_length.to_string(), one.max_length.to_string()),
            ("precision", m.precision.clone(), one.precision.clone()),
            ("value type", m.dtype.clone(), one.dtype.clone()),
            ("dimension", m.dimension.to_string(), one.dimension.to_string()),
            ("settings", m.settings.clone(), one.settings.clone()),
        ];
        for (what, theirs, ours) in differences {
            if theirs != ours {
                bail!(
                    "{b} and {a} were made with different settings: {what} {theirs} against {ours}; rerun shard \
                     {}/{} with the settings of the others",
                    m.shard,
                    m.shards
                );
            }
        }
        if m.first > next {
            bail!(
                "the texts {next}..{} are in no shard: {b} starts at text {}, the shards before it end at {next}",
                m.first,
                m.first
            );
        }
        if m.first < next {
            bail!("{b} overlaps the shards before it: it starts at text {}, they end at {next}", m.first);
        }
        if part.file.rows != m.count {
            bail!(
                "{} says {b} holds {} vectors and that the shard has {} texts",
                part.manifest_path.display(),
                part.file.rows,
                m.count
            );
        }
        next = m
            .first
            .checked_add(m.count)
            .with_context(|| format!("{} describes more texts than can be counted", part.manifest_path.display()))?;
    }
    if next != one.total {
        bail!(
            "the shards hold texts 0..{next}, the input has {}: the texts {next}..{} are in no shard",
            one.total,
            one.total
        );
    }
    Ok(())
}

fn normalized(normalized: bool) -> String {
    if normalized { "normalized" } else { "not normalized" }.to_string()
}

/// Checks a shard's data file against its manifest: its structure (a checked `.npy` header, whole JSON lines), its
/// row count and dimension, its length and SHA-256. Returns where its vectors start.
fn check_data(part: &Part, format: &str) -> Result<u64> {
    let path = &part.data_path;
    let name = path.display();
    let manifest = part.manifest_path.display();
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {name}, which {manifest} describes"))?;
    let length = file.metadata().with_context(|| format!("cannot read {name}"))?.len();
    let mut reader = HashingReader::new(BufReader::new(file));
    let (rows, data_offset) = if format == "npy" {
        let layout = read_npy_layout(&mut reader, path, length)?;
        if layout.cols != part.manifest.dimension {
            bail!(
                "{name} holds vectors of {} values, its manifest {manifest} says {}",
                layout.cols,
                part.manifest.dimension
            );
        }
        std::io::copy(&mut reader, &mut std::io::sink()).with_context(|| format!("cannot read {name}"))?;
        (layout.rows, layout.data_offset)
    } else {
        (check_jsonl(&mut reader, path, part.manifest.dimension)?, 0)
    };
    if rows != part.file.rows {
        bail!("{name} holds {rows} vectors, its manifest {manifest} says {}", part.file.rows);
    }
    let (bytes, sha256) = reader.finish();
    if bytes != part.file.bytes || bytes != length {
        bail!(
            "{name} is {bytes} bytes long, its manifest {manifest} says {}: the file changed after its manifest was \
             written (a rerun killed before it finished?); rerun shard {}/{}",
            part.file.bytes,
            part.manifest.shard,
            part.manifest.shards
        );
    }
    if sha256 != part.file.sha256 {
        bail!(
            "{name} is not the file its manifest {manifest} describes (its SHA-256 differs): it changed after the \
             manifest was written (a rerun killed before it finished?); rerun shard {}/{}",
            part.manifest.shard,
            part.manifest.shards
        );
    }
    Ok(data_offset)
}

/// Checks that every line of a JSON-lines shard is whole and holds a vector of `dimension` numbers; returns the
/// number of lines.
fn check_jsonl(reader: &mut impl BufRead, path: &Path, dimension: usize) -> Result<usize> {
    let name = path.display();
    let mut line = Vec::new();
    let mut rows = 0usize;
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line).with_context(|| format!("cannot read {name}"))?;
        if read == 0 {
            return Ok(rows);
        }
        rows += 1;
        if line.last() != Some(&b'\n') {
            bail!("{name} is cut inside its last line (line {rows} has no end): the shard is incomplete");
        }
        let record: serde_json::Value =
            serde_json::from_slice(&line).with_context(|| format!("line {rows} of {name} is not a JSON record"))?;
        let values = record
            .get("embedding")
            .and_then(serde_json::Value::as_array)
            .with_context(|| format!("line {rows} of {name} has no `embedding` array"))?;
        if values.len() != dimension || !values.iter().all(serde_json::Value::is_number) {
            bail!(
                "line {rows} of {name} holds an embedding of {} values, its manifest says {dimension} numbers",
                values.len()
            );
        }
    }
}

/// A reader that counts and hashes what is read through it.
struct HashingReader<R> {
    inner: R,
    bytes: u64,
    hasher: Sha256,
}

impl<R> HashingReader<R> {
    fn new(inner: R) -> Self {
        Self { inner, bytes: 0, hasher: Sha256::new() }
    }

    fn finish(self) -> (u64, String) {
        (self.bytes, hex(&self.hasher.finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for HashingReader<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        if let Ok(buffer) = self.inner.fill_buf() {
            let taken = amount.min(buffer.len());
            self.hasher.update(&buffer[..taken]);
            self.bytes += taken as u64;
        }
        self.inner.consume(amount);
    }
}

/// Copies a checked shard's vectors (after any header) into `out`, checking that the file is still the one checked.
fn copy_checked(part: &Part, out: &mut impl Write) -> std::io::Result<()> {
    let changed = || {
        std::io::Error::other(format!("{} changed while it was merged: run the merge again", part.data_path.display()))
    };
    let mut reader = HashingReader::new(BufReader::new(std::fs::File::open(&part.data_path)?));
    std::io::copy(&mut (&mut reader).take(part.data_offset), &mut std::io::sink())?;
    std::io::copy(&mut reader, out)?;
    let (bytes, sha256) = reader.finish();
    if bytes != part.file.bytes || sha256 != part.file.sha256 {
        return Err(changed());
    }
    Ok(())
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
    fn sizes_are_checked_at_the_boundary_and_slices_never_overflow() {
        let huge = format!("1/{}", usize::MAX / 3);
        let error = huge.parse::<Shard>().unwrap_err();
        assert!(error.contains("100000"), "{error}");
        assert_eq!(
            format!("{MAX_SHARDS}/{MAX_SHARDS}").parse::<Shard>(),
            Ok(Shard { index: MAX_SHARDS, count: MAX_SHARDS })
        );
        for bad in ["0", "1000000000000", "100001", "-1", "x", ""] {
            assert!(parse_count(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_count("8"), Ok(8));
        // The arithmetic holds for any sizes, even those the parser refuses.
        for count in [usize::MAX / 3, usize::MAX - 1, usize::MAX] {
            for index in [1, 2, count / 2, count] {
                let range = Shard { index, count }.range(11);
                assert!(range.start <= range.end && range.end <= 11, "{index}/{count}: {range:?}");
            }
            assert_eq!(Shard { index: count, count }.range(usize::MAX).end, usize::MAX);
        }
    }

    fn npy_file(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v.npy");
        std::fs::write(&path, bytes).expect("write");
        (dir, path)
    }

    fn layout(bytes: &[u8]) -> Result<NpyLayout> {
        let (_dir, path) = npy_file(bytes);
        read_npy_layout(&mut std::io::Cursor::new(bytes), &path, bytes.len() as u64)
    }

    /// A `.npy` file with `dict` as its header (padded as numpy pads it) and `data` after it.
    fn numpy_style(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut dict = dict.to_string();
        while !(10 + dict.len() + 1).is_multiple_of(64) {
            dict.push(' ');
        }
        dict.push('\n');
        let mut bytes = NPY_MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        bytes.extend_from_slice(dict.as_bytes());
        bytes.extend_from_slice(data);
        bytes
    }

    #[test]
    fn npy_files_are_written_as_tch_writes_them_and_read_back_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let values: Vec<f32> = (0..48).map(|i| i as f32 * 0.25 - 3.0).collect();
        let ours = dir.path().join("ours.npy");
        let written = write_npy(&ours, 3, 16, &values).expect("write");
        let theirs = dir.path().join("theirs.npy");
        tch::Tensor::from_slice(&values).view([3, 16]).write_npy(&theirs).expect("tch writes");
        let bytes = std::fs::read(&ours).expect("read");
        assert_eq!(bytes, std::fs::read(&theirs).expect("read"), "the same bytes as before");
        assert_eq!(written.bytes, bytes.len() as u64);
        assert_eq!(written.sha256, hex(&Sha256::digest(&bytes)));
        let read = layout(&bytes).expect("a valid file");
        assert_eq!((read.rows, read.cols), (3, 16));
        assert_eq!(bytes.len() as u64 - read.data_offset, 3 * 16 * 4);
        assert!(tch::Tensor::read_npy(&ours)
            .expect("tch reads")
            .equal(&tch::Tensor::from_slice(&values).view([3, 16])));
        // Empty shards (more shards than texts) have zero rows.
        let empty = dir.path().join("empty.npy");
        write_npy(&empty, 0, 16, &[]).expect("write");
        assert_eq!(layout(&std::fs::read(&empty).expect("read")).expect("valid").rows, 0);
        assert!(write_npy(&empty, 2, 16, &values).is_err(), "48 values are not 2 × 16");
        // numpy's own layout: spaces after commas, a 64-byte aligned header.
        let data = vec![0u8; 2 * 3 * 4];
        let numpy = numpy_style("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", &data);
        assert_eq!(layout(&numpy).map(|l| (l.rows, l.cols)).expect("numpy's header"), (2, 3));
    }

    #[test]
    fn the_npy_reader_refuses_what_is_not_float32_rows_of_the_declared_length() {
        let valid = {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("v.npy");
            write_npy(&path, 4, 16, &[0.5; 64]).expect("write");
            std::fs::read(&path).expect("read")
        };
        let header = valid.len() - 4 * 16 * 4;
        let error = |bytes: &[u8]| format!("{:#}", layout(bytes).unwrap_err());
        // Cut after its header, or inside its values, or with bytes after them.
        let cut = error(&valid[..header]);
        assert!(cut.contains("v.npy is cut short") && cut.contains("4 × 16") && cut.contains("only 0 bytes"), "{cut}");
        assert!(error(&valid[..valid.len() - 1]).contains("cut short"));
        let mut longer = valid.clone();
        longer.extend_from_slice(&[0; 4]);
        assert!(error(&longer).contains("4 bytes more"), "{}", error(&longer));
        assert!(error(&valid[..header - 5]).contains("cut inside its header"), "{}", error(&valid[..header - 5]));
        assert!(error(&valid[..3]).contains("not a .npy file"));
        assert!(error(b"PK\x03\x04 a zip file, not npy").contains("not a .npy file"));
        // Another value type, order or rank.
        let data = vec![0u8; 2 * 3 * 8];
        let float64 = error(&numpy_style("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", &data));
        assert!(float64.contains("float64") && float64.contains("'<f8'"), "{float64}");
        let big_endian = error(&numpy_style("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", &data));
        assert!(big_endian.contains("big-endian float32"), "{big_endian}");
        let fortran = error(&numpy_style("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", &data));
        assert!(fortran.contains("Fortran"), "{fortran}");
        let flat = error(&numpy_style("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", &data));
        assert!(flat.contains("shape [6]"), "{flat}");
        for broken in [
            "{'descr': '<f4', 'shape': (2, 3), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }",
            "{'descr': '<f4' 'fortran_order': False, 'shape': (2, 3), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'extra': 1}",
            "not a dictionary",
        ] {
            assert!(error(&numpy_style(broken, &data)).contains("not a .npy header"), "{broken}");
        }
        // A shape whose size overflows is cut short, not an allocation.
        let huge = numpy_style("{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551615, 16), }", &[]);
        assert!(error(&huge).contains("cut short"));
    }

    #[test]
    fn json_lines_must_be_whole_vectors_of_the_dimension() {
        let path = Path::new("v.jsonl");
        let check = |text: &str| check_jsonl(&mut std::io::Cursor::new(text.as_bytes()), path, 2);
        let line = "{\"text\":\"a\",\"embedding\":[0.5,1.0]}\n";
        assert_eq!(check("").expect("empty"), 0);
        assert_eq!(check(&line.repeat(3)).expect("whole"), 3);
        let cut = format!("{}{}", line, &line[..line.len() - 6]);
        let error = format!("{:#}", check(&cut).unwrap_err());
        assert!(error.contains("v.jsonl is cut inside its last line (line 2"), "{error}");
        let no_newline = &line[..line.len() - 1];
        assert!(format!("{:#}", check(no_newline).unwrap_err()).contains("cut inside its last line"));
        let wrong_width = "{\"embedding\":[0.5]}\n";
        assert!(format!("{:#}", check(wrong_width).unwrap_err()).contains("1 values"));
        assert!(format!("{:#}", check("{\"text\":\"a\"}\n").unwrap_err()).contains("no `embedding`"));
        assert!(format!("{:#}", check("[1, 2\n").unwrap_err()).contains("line 1 of v.jsonl is not a JSON record"));
    }

    #[test]
    fn shard_files_sit_beside_the_output() {
        let shard = Shard { index: 2, count: 3 };
        assert_eq!(shard_path(Path::new("out/vectors.npy"), shard, "npy"), Path::new("out/vectors.shard-2-of-3.npy"));
        assert_eq!(shard_path(Path::new("v.jsonl"), shard, "json"), Path::new("v.shard-2-of-3.json"));
    }
}
