//! `bertmt embed`: sentence vectors, their first values and the cosine-similarity matrix.

use crate::shards::{self, Manifest, Shard};
use crate::{device, ModelArgs};
use anyhow::{bail, Context, Result};
use encoder::{cosine_similarity_matrix, EncodeOptions, Pooling, SentenceEncoder};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// Arguments of `embed`.
#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    /// Texts to embed.
    pub texts: Vec<String>,
    /// Read texts from a file, one a line (blank lines skipped).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Pooling for the printed similarities and the output file; both are shown when not given.
    #[arg(long)]
    pub pooling: Option<Pooling>,
    /// Scale vectors to unit length.
    #[arg(long)]
    pub normalize: bool,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Write the vectors to FILE: `.npy` (float32 [texts, hidden]) or `.jsonl` (one JSON object a text).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Embed only the K-th of N contiguous slices of the input, into `<output>.shard-K-of-N.<ext>` plus a manifest;
    /// `--merge-shards N` joins the N shards into --output. Needs --output.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Join the N shards written by `--shard K/N` runs into --output, in input order (loads no model).
    #[arg(long, value_name = "N", conflicts_with_all = ["shard", "texts", "file"])]
    pub merge_shards: Option<usize>,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// The console shows the vectors and similarities of at most this many texts.
const SHOWN_TEXTS: usize = 20;

/// The console shows this many leading values of each vector (fewer when the model is narrower).
const SHOWN_VALUES: i64 = 5;

/// Vectors of one pooling, with what the console shows of them.
pub struct PooledEmbeddings {
    /// The pooling.
    pub pooling: Pooling,
    /// `[texts, hidden]`.
    pub vectors: Tensor,
    /// `[texts, texts]` cosine similarities, computed only when they are shown (at most 20 texts): a matrix for
    /// every input would grow with the square of their number.
    pub similarity: Option<Tensor>,
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
    let all_texts = collect_texts(&args.texts, args.file.as_deref())?;
    let range = args.shard.map_or(0..all_texts.len(), |shard| shard.range(all_texts.len()));
    let texts = &all_texts[range.clone()];
    let device = device::parse(&args.model.device)?;
    let (encoder, precision) = load_encoder(&args.model.model, device)?.with_precision(args.model.precision)?;
    println!(
        "Model: {} on {}, precision {} ({})",
        args.model.model.display(),
        device::describe(device),
        precision.precision,
        precision.reason
    );
    println!("{}\n", encoder.config());
    let poolings = match args.pooling {
        Some(pooling) => vec![pooling],
        None => vec![Pooling::Cls, Pooling::Mean],
    };
    let text_refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let results = embed(&encoder, &text_refs, &poolings, args.normalize, args.batch_size)?;
    for result in &results {
        check_finite(&result.vectors, result.pooling, &text_refs)?;
    }
    print!("{}", render(&text_refs, &results));
    if let Some(output) = &output {
        let chosen = results.last().context("no pooling computed")?;
        write_vectors(output, &text_refs, &chosen.vectors)?;
        println!("wrote {} vectors ({} pooling) to {}", texts.len(), chosen.pooling, output.display());
        if let (Some(shard), Some(merged)) = (args.shard, &args.output) {
            let model = args.model.model.canonicalize().unwrap_or_else(|_| args.model.model.clone());
            let manifest = Manifest {
                shard: shard.index,
                shards: shard.count,
                first: range.start,
                count: range.len(),
                total: all_texts.len(),
                input_sha256: shards::fingerprint(&all_texts),
                settings: format!(
                    "model {}, {} pooling{}",
                    model.display(),
                    chosen.pooling,
                    if args.normalize { ", normalized" } else { "" }
                ),
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

/// Loads a model directory, saying which directory failed.
pub fn load_encoder(dir: &Path, device: tch::Device) -> Result<SentenceEncoder> {
    SentenceEncoder::from_dir(dir, device).with_context(|| {
        format!(
            "cannot load the model at {} (run `cargo xtask setup` for the default model, or pass --model DIR)",
            dir.display()
        )
    })
}

/// Encodes `texts` once per pooling (no texts: `[0, hidden]` vectors).
pub fn embed(
    encoder: &SentenceEncoder,
    texts: &[&str],
    poolings: &[Pooling],
    normalize: bool,
    batch_size: usize,
) -> Result<Vec<PooledEmbeddings>> {
    poolings
        .iter()
        .map(|&pooling| {
            // No texts (a shard of an input with fewer texts than shards): no vectors.
            let vectors = if texts.is_empty() {
                Tensor::zeros([0, encoder.config().hidden_size], (tch::Kind::Float, tch::Device::Cpu))
            } else {
                encoder.encode(texts, &EncodeOptions { pooling, normalize, batch_size })?
            };
            let similarity = (texts.len() <= SHOWN_TEXTS).then(|| cosine_similarity_matrix(&vectors));
            Ok(PooledEmbeddings { pooling, vectors, similarity })
        })
        .collect()
}

/// The console view: the first 5 values of each vector, then the similarity matrices.
pub fn render(texts: &[&str], results: &[PooledEmbeddings]) -> String {
    let mut out = String::new();
    for result in results {
        let _ = writeln!(
            out,
            "--- {} embeddings (first 5 of {} values) ---",
            name(result.pooling),
            result.vectors.size()[1]
        );
        let shown_values = SHOWN_VALUES.min(result.vectors.size()[1]);
        for (i, text) in texts.iter().enumerate().take(SHOWN_TEXTS) {
            let row: Vec<f64> =
                Vec::try_from(result.vectors.get(i as i64).narrow(0, 0, shown_values).to_kind(tch::Kind::Double))
                    .unwrap_or_default();
            let values: Vec<String> = row.iter().map(|v| format!("{v:+.6}")).collect();
            let _ = writeln!(out, "{:>3}. {:<50} [{}, ...]", i + 1, shorten(text, 50), values.join(", "));
        }
        if texts.len() > SHOWN_TEXTS {
            let _ = writeln!(out, "     ... {} more (use --output to get them all)", texts.len() - SHOWN_TEXTS);
        }
        let _ = writeln!(out);
    }
    for result in results {
        let Some(similarity) = &result.similarity else { break };
        let _ = writeln!(out, "--- Cosine similarity, {} ---", name(result.pooling));
        let _ = write!(out, "     ");
        for j in 0..texts.len() {
            let _ = write!(out, "{:>8}", j + 1);
        }
        let _ = writeln!(out);
        for i in 0..texts.len() {
            let _ = write!(out, "{:>3}. ", i + 1);
            for j in 0..texts.len() {
                let _ = write!(out, "{:>8.4}", similarity.double_value(&[i as i64, j as i64]));
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out);
    }
    out
}

fn name(pooling: Pooling) -> &'static str {
    match pooling {
        Pooling::Cls => "CLS",
        Pooling::Mean => "Mean pooling",
    }
}

fn shorten(text: &str, width: usize) -> String {
    let quoted = format!("\"{text}\"");
    if quoted.chars().count() <= width {
        return quoted;
    }
    let cut: String = quoted.chars().take(width - 4).collect();
    format!("{cut}...\"")
}

fn collect_texts(args: &[String], file: Option<&Path>) -> Result<Vec<String>> {
    let mut texts: Vec<String> = args.to_vec();
    if let Some(file) = file {
        let content = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        texts.extend(content.lines().filter(|line| !line.trim().is_empty()).map(str::to_string));
    }
    if texts.is_empty() {
        bail!("no texts to embed: pass them as arguments or with --file (one a line)");
    }
    Ok(texts)
}

/// Refuses vectors with NaN or infinite values, naming the first text they came from.
fn check_finite(vectors: &Tensor, pooling: Pooling, texts: &[&str]) -> Result<()> {
    let bad_rows = vectors.isfinite().all_dim(1, false).logical_not().nonzero();
    let count = bad_rows.size()[0];
    if count == 0 {
        return Ok(());
    }
    let first = usize::try_from(bad_rows.int64_value(&[0, 0])).unwrap_or(0);
    bail!(
        "the model produced NaN or infinite {} vectors for {count} of {} texts (first: text {}, {}); nothing was \
         written. The model's weights or its config.json (e.g. layer_norm_eps) are damaged",
        name(pooling),
        texts.len(),
        first + 1,
        shorten(texts.get(first).copied().unwrap_or(""), 50)
    )
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

fn write_vectors(path: &Path, texts: &[&str], vectors: &Tensor) -> Result<()> {
    match shards::output_format(path)? {
        "npy" => atomic_files::write_via_path(path, |file| Ok(vectors.to_kind(tch::Kind::Float).write_npy(file)?)),
        _ => {
            let mut lines = String::new();
            for (i, text) in texts.iter().enumerate() {
                let row: Vec<f32> = Vec::try_from(vectors.get(i as i64).to_kind(tch::Kind::Float))?;
                lines.push_str(&serde_json::to_string(&serde_json::json!({ "text": text, "embedding": row }))?);
                lines.push('\n');
            }
            Ok(atomic_files::write(path, lines.as_bytes())?)
        }
    }
}
