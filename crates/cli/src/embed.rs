//! `bertmt embed`: sentence vectors as the model defines them, their first values and the cosine-similarity matrix.
//!
//! The vectors come from `encoder::Embedder`, which follows the model's own sentence-transformers files when it has
//! them (its length limit, pooling, dense layers, normalization): the vectors sentence-transformers gives. Flags
//! given override those settings, and the output says which.

use crate::report::vectors::{render, VectorTable};
use crate::shards::{self, Manifest, Shard, ShardFile};
use crate::{device, ModelArgs};
use anyhow::{bail, Context, Result};
use encoder::{EmbedOverrides, Embedder, Pooling, SentenceEncoder};
use std::path::{Path, PathBuf};
use tch::Tensor;

/// Arguments of `embed`.
#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    /// Texts to embed.
    pub texts: Vec<String>,
    /// Read texts from a file: `.txt` (one a line, blank lines skipped), `.jsonl` (a text field per object; an empty
    /// text is a text), `.csv`, `.tsv` or `.xlsx` (a text column).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// The field (JSON lines) or column (CSV, TSV, XLSX) holding the text.
    #[arg(long, alias = "text-field", default_value = "text")]
    pub text_column: String,
    /// Pool with this mode instead of the model's own (cls, mean, max, mean_sqrt_len_tokens, weightedmean,
    /// lasttoken) [default: the model's sentence-transformers configuration, else mean].
    #[arg(long)]
    pub pooling: Option<Pooling>,
    /// Scale vectors to unit length [default: as the model's configuration says, else not].
    #[arg(long, conflicts_with = "no_normalize")]
    pub normalize: bool,
    /// Do not scale vectors to unit length, even when the model's configuration does.
    #[arg(long)]
    pub no_normalize: bool,
    /// Truncate texts at this many tokens [default: the model's `max_seq_length`, else its positions].
    #[arg(long)]
    pub max_length: Option<usize>,
    /// Texts longer than the limit: `truncate` (the model's own vectors, as sentence-transformers gives them) or
    /// `chunk` (read in overlapping chunks of the limit, their vectors averaged: nothing is cut off).
    #[arg(long, default_value = "truncate")]
    pub long_text: encoder::LongText,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Write the vectors to FILE: `.npy` (float32 [texts, dimension]) or `.jsonl` (one JSON object a text).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Embed only the K-th of N contiguous slices of the input, into `<output>.shard-K-of-N.<ext>` plus a manifest;
    /// `--merge-shards N` joins the N shards into --output. Needs --output.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Join the N shards written by `--shard K/N` runs into --output, in input order (loads no model). Every shard
    /// is checked against its manifest and the others first; any mismatch stops the merge before it writes anything.
    #[arg(long, value_name = "N", value_parser = shards::parse_count, conflicts_with_all = ["shard", "texts", "file"])]
    pub merge_shards: Option<usize>,
    #[command(flatten)]
    pub model: ModelArgs,
}

pub fn run(args: &EmbedArgs) -> Result<()> {
    if let Some(count) = args.merge_shards {
        let output =
            args.output.as_ref().context("--merge-shards needs --output: the file the shards were made for")?;
        let _lock = lock_output(output)?;
        let vectors = shards::merge(output, count)?;
        println!("merged {count} shards: {vectors} vectors in {}", output.display());
        return Ok(());
    }
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let output = match (&args.output, args.shard) {
        (Some(output), Some(shard)) => Some(shards::shard_path(output, shard, shards::output_format(output)?)),
        (None, Some(_)) => bail!("--shard needs --output: the shard's vectors go beside it"),
        (output, None) => output.clone(),
    };
    if let (Some(output), Some(file)) = (&output, &args.file) {
        if same_file(output, file) {
            bail!("--output {} is the input --file: choose another output path", output.display());
        }
    }
    // Held until the vectors are written: a second embed to the same output stops at once instead of racing.
    let _lock = output.as_deref().map(lock_output).transpose()?;
    let (all_texts, lines) = collect_texts(&args.texts, args.file.as_deref(), &args.text_column)?;
    let range = args.shard.map_or(0..all_texts.len(), |shard| shard.range(all_texts.len()));
    let texts = &all_texts[range.clone()];
    let device = device::parse(&args.model.device)?;
    let overrides = EmbedOverrides {
        pooling: args.pooling,
        normalize: if args.normalize {
            Some(true)
        } else if args.no_normalize {
            Some(false)
        } else {
            None
        },
        max_length: args.max_length,
        long_text: args.long_text,
    };
    let embedder = Embedder::from_dir(&args.model.model, device, &overrides).with_context(|| {
        format!(
            "cannot load the model at {} (run `cargo xtask setup` for the default model, or pass --model DIR)",
            args.model.model.display()
        )
    })?;
    let (embedder, precision) = embedder.with_precision(args.model.precision)?;
    let info = embedder.info().clone();
    println!(
        "Model: {} on {}, precision {} ({})",
        args.model.model.display(),
        device::describe(device),
        precision.precision,
        precision.reason
    );
    println!("{}", embedder.encoder().config());
    let kind = describe(&info);
    println!(
        "Embeddings: {kind}, {} values, texts {} {} tokens (settings: {}{})\n",
        info.dimension,
        match info.long_text {
            encoder::LongText::Truncate => "truncated at",
            encoder::LongText::Chunk => "read in overlapping chunks of",
        },
        info.max_length,
        if info.source == "defaults" {
            "defaults: the model has no sentence-transformers files"
        } else {
            "the model's sentence-transformers files"
        },
        if info.overridden.is_empty() {
            String::new()
        } else {
            format!("; overridden: {}", info.overridden.join(", "))
        }
    );
    let text_refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // No texts (a shard of an input with fewer texts than shards): no vectors.
    let vectors = if text_refs.is_empty() {
        Tensor::zeros([0, info.dimension], (tch::Kind::Float, tch::Device::Cpu))
    } else {
        let embeddings = embedder.embed(&text_refs, args.batch_size)?;
        if embeddings.truncated > 0 {
            println!(
                "{} of {} texts are longer than {} tokens: {}\n",
                embeddings.truncated,
                text_refs.len(),
                info.max_length,
                match args.long_text {
                    encoder::LongText::Truncate => "truncated (--long-text chunk reads them in chunks)",
                    encoder::LongText::Chunk => "read in overlapping chunks, averaged",
                }
            );
        }
        embeddings.vectors
    };
    print!("{}", render(&text_refs, &[VectorTable::new(kind.clone(), vectors.shallow_clone(), text_refs.len())]));
    if let Some(output) = &output {
        let written = write_vectors(output, &text_refs, &lines[range.clone()], &vectors)?;
        println!("wrote {} vectors ({kind}) to {}", texts.len(), output.display());
        if let (Some(shard), Some(merged)) = (args.shard, &args.output) {
            let model = args.model.model.canonicalize().unwrap_or_else(|_| args.model.model.clone());
            let format = shards::output_format(merged)?;
            let file = ShardFile {
                file: output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                rows: range.len(),
                bytes: written.bytes,
                sha256: written.sha256,
            };
            let manifest = Manifest {
                shard: shard.index,
                shards: shard.count,
                first: range.start,
                count: range.len(),
                total: all_texts.len(),
                input_sha256: shards::fingerprint(&all_texts),
                model: model.display().to_string(),
                settings: format!(
                    "model {}, {kind}, max length {}, long texts {:?}",
                    model.display(),
                    info.max_length,
                    info.long_text
                ),
                pooling: info.pooling.iter().map(ToString::to_string).collect::<Vec<_>>().join("+"),
                normalized: info.normalized,
                max_length: info.max_length,
                precision: precision.precision.to_string(),
                dtype: shards::DTYPE.to_string(),
                dimension: usize::try_from(info.dimension).context("the model's dimension is negative")?,
                files: [(format.to_string(), file)].into_iter().collect(),
            };
            let path = shards::write_manifest(merged, shard, &manifest)?;
            println!(
                "shard {}/{}: texts {}..{} of {} ({}); join the shards with --merge-shards {} --output {}",
                shard.index,
                shard.count,
                range.start,
                range.end,
                all_texts.len(),
                path.display(),
                shard.count,
                merged.display()
            );
        }
    }
    Ok(())
}

/// `mean pooling, normalized`, `cls pooling, 1 dense layer`, ...
fn describe(info: &encoder::EmbedderInfo) -> String {
    let pooling = info.pooling.iter().map(ToString::to_string).collect::<Vec<_>>().join("+");
    let mut parts = vec![format!("{pooling} pooling")];
    if info.dense_layers > 0 {
        parts.push(format!("{} dense layer{}", info.dense_layers, if info.dense_layers == 1 { "" } else { "s" }));
    }
    if info.normalized {
        parts.push("normalized".into());
    }
    parts.join(", ")
}

/// Loads a model directory, saying which directory failed.
pub fn load_encoder(dir: &Path, device: tch::Device) -> Result<SentenceEncoder> {
    SentenceEncoder::from_dir(dir, device).with_context(|| {
        format!(
            "cannot load the model at {} (run `cargo xtask setup` for the default model, or pass --model DIR)",
            dir.display()
        )
    })
}

/// The texts of the arguments, then of `file`, with where each came from (`None` for an argument; the line or row
/// in the file).
fn collect_texts(args: &[String], file: Option<&Path>, column: &str) -> Result<(Vec<String>, Vec<Option<u64>>)> {
    let mut texts: Vec<String> = args.to_vec();
    let mut lines: Vec<Option<u64>> = vec![None; args.len()];
    if let Some(file) = file {
        let name = file.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
        if name.ends_with(".txt") || name.ends_with(".text") || !name.contains('.') {
            let content = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
            for (index, line) in content.lines().enumerate() {
                if !line.trim().is_empty() {
                    texts.push(line.to_string());
                    lines.push(Some(index as u64 + 1));
                }
            }
        } else {
            // A table or JSON lines: every row is a text, an empty one included (as sentence-transformers embeds it).
            datasets::read_table(file, None, datasets::TextEncoding::Auto, &[column], |row, cells| {
                let text = cells.first_mut().and_then(Option::take).map(|c| c.into_owned()).unwrap_or_default();
                texts.push(text);
                lines.push(Some(row));
                Ok(())
            })
            .with_context(|| format!("cannot read the texts of {} (field or column `{column}`)", file.display()))?;
        }
    }
    if texts.is_empty() {
        bail!("no texts to embed: pass them as arguments or with --file (.txt one a line, .jsonl, .csv, .tsv, .xlsx)");
    }
    Ok((texts, lines))
}

/// Takes the advisory lock of `output` (on `.<name>.lock` beside it; the system releases it when the process ends,
/// however it ends), or says that another process holds it. With the lock held, no other process is writing
/// `output`, so partial files of it are a killed writer's: they are removed.
fn lock_output(output: &Path) -> Result<std::fs::File> {
    let name = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let path = output.with_file_name(format!(".{name}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot create the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            atomic_files::remove_partials(output, std::time::Duration::ZERO);
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another process is writing {} (it holds {}): wait for it, or choose another --output",
            output.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(error).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Whether two paths name the same file (the same file once both exist; equal paths otherwise).
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Writes the vectors: `.npy` (float32), or JSON lines with each text, the line (or row) of the input file it came
/// from, and its vector. Returns the file's length and SHA-256; errors name the file.
fn write_vectors(path: &Path, texts: &[&str], sources: &[Option<u64>], vectors: &Tensor) -> Result<shards::Written> {
    match shards::output_format(path)? {
        "npy" => {
            let &[rows, cols] = vectors.size().as_slice() else {
                bail!(
                    "cannot write {}: the vectors have shape {:?}, not [texts, dimension]",
                    path.display(),
                    vectors.size()
                );
            };
            let values = Vec::<f32>::try_from(vectors.to_kind(tch::Kind::Float).contiguous().view([-1]))
                .with_context(|| format!("cannot write {}: the vectors cannot be read back", path.display()))?;
            shards::write_npy(path, usize::try_from(rows)?, usize::try_from(cols)?, &values)
        }
        _ => {
            let mut lines = String::new();
            for (i, (text, source)) in texts.iter().zip(sources).enumerate() {
                let row: Vec<f32> = Vec::try_from(vectors.get(i as i64).to_kind(tch::Kind::Float))?;
                let record = match source {
                    Some(line) => serde_json::json!({ "line": line, "text": text, "embedding": row }),
                    None => serde_json::json!({ "text": text, "embedding": row }),
                };
                lines.push_str(&serde_json::to_string(&record)?);
                lines.push('\n');
            }
            shards::write_bytes(path, lines.as_bytes())
        }
    }
}
