//! Encoder benchmarks: the machine's FMA peak and GEMM ceiling, encoder throughput on the real data, and per-operation
//! profiles of inference and of a training step.
//! One step per process; each prints one JSON line.
//!
//! ```text
//! cargo bench -p encoder --bench throughput -- --step gemm [--reps 5]
//! cargo bench -p encoder --bench throughput -- --step texts --out texts.json [--data-dir ../shared/data]
//!     [--imdb 2000] [--gmb 5000]
//! cargo bench -p encoder --bench throughput -- --step encode --texts texts.json --corpus imdb|gmb
//!     --method sorted|notebook --max-length 256 --batch 32 [--reps 3] [--limit N] [--model DIR]
//!     [--precision f32|bf16|auto]
//! cargo bench -p encoder --bench throughput -- --step profile --texts texts.json --corpus imdb
//!     --max-length 256 --batch 32 [--every 4] [--model DIR]
//! cargo bench -p encoder --bench throughput -- --step profile-training --texts texts.json --corpus imdb
//!     --max-length 512 --batch 8 [--every 10] [--model DIR]
//! ```
//! Relative paths, in flags and environment variables, are taken from the workspace root (cargo runs a bench in
//! its crate's directory).
//!
//! - `gemm`: fp32 `matmul` GFLOP/s through tch on the model's shapes (`[tokens x hidden] @ [hidden x intermediate]`
//!   and back) and BERT-base's `768x768 @ 768x3072`, at libtorch's thread count (`--threads N` changes it); the same
//!   in bf16 where the CPU computes it natively; and the FMA peak of as many threads (see `peak.rs`).
//! - `texts`: the benchmark texts, written once so that every implementation reads the same ones: the first `--imdb`
//!   reviews of `classification_dataset.xlsx` (or `imdb_50k.csv.gz`), cleaned with the notebook's `clean_text`, and
//!   the first `--gmb` sentences of `ner_dataset.xlsx` (or `gmb_ner_dataset.csv.gz`), words joined by spaces.
//! - `encode`: `sorted` is `SentenceEncoder::encode` (length-sorted batches, dynamic padding, mean pooling) with
//!   truncation at `--max-length`; `notebook` is the notebook's way: texts in input order, every batch padded to
//!   `--max-length` (and truncated there). One warm-up, then `--reps` timed passes; `--limit N` takes the first N
//!   texts only. Reports the median pass, sentences/s, real tokens/s, the padding overhead (padded tokens computed /
//!   real tokens - 1) and the FLOPs: per layer and token `2 * (4 h^2 + 2 h i)` (projections and feed-forward) plus
//!   `4 s h` (attention scores and context, `s` the padded length of the token's batch); embeddings, LayerNorm,
//!   GELU and softmax are not counted. `gflops_real` counts real tokens only (useful work), `gflops_computed`
//!   every position the kernels ran on.
//! - `profile`: times the encoder's operations one by one (same weights, same libtorch calls as the model) on every
//!   `--every`-th batch of the `sorted` schedule, next to the model's own forward on the same batches.
//! - `profile-training`: the same for a training step, forward and backward per operation (see
//!   `training_profile.rs`).
//!
//! The model: `--model`, else `BERTMT_MODEL`, else `data/models/all-MiniLM-L6-v2` under the workspace.

use anyhow::{bail, Context, Result};
use encoder::{pool, BertConfig, Pooling, Precision, SentenceEncoder};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

mod peak;
mod training_profile;

struct Args {
    step: String,
    reps: usize,
    threads: Option<i32>,
    data_dir: PathBuf,
    out: Option<PathBuf>,
    texts: Option<PathBuf>,
    imdb: usize,
    gmb: usize,
    corpus: String,
    method: String,
    max_length: usize,
    batch: usize,
    limit: Option<usize>,
    every: usize,
    model: PathBuf,
    precision: Precision,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn parse_args() -> Result<Args> {
    let root = workspace_root();
    let mut args = Args {
        step: String::new(),
        reps: 3,
        threads: None,
        data_dir: root.join("../shared/data"),
        out: None,
        texts: None,
        imdb: 2000,
        gmb: 5000,
        corpus: "imdb".into(),
        method: "sorted".into(),
        max_length: 512,
        batch: 32,
        limit: None,
        every: 4,
        precision: Precision::F32,
        model: std::env::var_os("BERTMT_MODEL")
            .map_or_else(|| root.join("data/models/all-MiniLM-L6-v2"), |dir| root.join(dir)),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--step" => args.step = value()?,
            "--reps" => args.reps = value()?.parse().context("--reps")?,
            "--threads" => args.threads = Some(value()?.parse().context("--threads")?),
            "--data-dir" => args.data_dir = root.join(value()?),
            "--out" => args.out = Some(root.join(value()?)),
            "--texts" => args.texts = Some(root.join(value()?)),
            "--imdb" => args.imdb = value()?.parse().context("--imdb")?,
            "--gmb" => args.gmb = value()?.parse().context("--gmb")?,
            "--corpus" => args.corpus = value()?,
            "--method" => args.method = value()?,
            "--max-length" => args.max_length = value()?.parse().context("--max-length")?,
            "--batch" => args.batch = value()?.parse().context("--batch")?,
            "--limit" => args.limit = Some(value()?.parse().context("--limit")?),
            "--every" => args.every = value()?.parse().context("--every")?,
            "--model" => args.model = root.join(value()?),
            "--precision" => args.precision = value()?.parse().map_err(anyhow::Error::msg).context("--precision")?,
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            other => bail!("unknown argument {other}"),
        }
    }
    if args.step.is_empty() {
        bail!("--step is required: gemm, texts, encode, profile or profile-training");
    }
    args.reps = args.reps.max(1);
    args.every = args.every.max(1);
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    Ok(args)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => xs[n / 2],
        _ => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

fn main() {
    if let Err(error) = run() {
        eprintln!("encoder throughput bench: {error:#}");
        std::process::exit(2);
    }
}

fn run() -> Result<()> {
    let args = parse_args()?;
    if let Some(threads) = args.threads {
        tch::set_num_threads(threads);
    }
    let line = match args.step.as_str() {
        "gemm" => gemm(&args),
        "texts" => write_texts(&args)?,
        "encode" => encode(&args)?,
        "profile" => profile(&args)?,
        "profile-training" => training_profile::profile_training(&args)?,
        other => bail!("unknown step {other}: gemm, texts, encode, profile or profile-training"),
    };
    println!("{line}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// GEMM ceiling

/// `[m x k] @ [k x n]` shapes: the model's feed-forward at 4096 tokens, its attention projection, and BERT-base's.
const SHAPES: [(&str, i64, i64, i64); 4] = [
    ("ffn_in 4096x384 @ 384x1536", 4096, 384, 1536),
    ("ffn_out 4096x1536 @ 1536x384", 4096, 1536, 384),
    ("proj 4096x384 @ 384x384", 4096, 384, 384),
    ("reference 768x768 @ 768x3072", 768, 768, 3072),
];

/// GFLOP/s of `a.matmul(b)` on `SHAPES` in `kind`: one JSON row per shape.
fn gemm_rows(kind: Kind, reps: usize) -> Vec<Value> {
    let mut rows = Vec::new();
    for (name, m, k, n) in SHAPES {
        let a = Tensor::randn([m, k], (kind, Device::Cpu));
        let b = Tensor::randn([k, n], (kind, Device::Cpu));
        let flops = 2.0 * (m * k * n) as f64;
        // Warm-up, and enough calls per repetition for about half a second.
        let start = Instant::now();
        for _ in 0..3 {
            let _ = a.matmul(&b);
        }
        let per_call = start.elapsed().as_secs_f64() / 3.0;
        let calls = ((0.5 / per_call).ceil() as usize).clamp(3, 10_000);
        let rates: Vec<f64> = (0..reps)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..calls {
                    let _ = a.matmul(&b);
                }
                flops * calls as f64 / start.elapsed().as_secs_f64() / 1e9
            })
            .collect();
        rows.push(json!({
            "shape": name, "m": m, "k": k, "n": n, "calls_per_rep": calls,
            "gflops_median": round(median(rates.clone()), 2),
            "gflops_all": rates.iter().map(|&r| round(r, 2)).collect::<Vec<_>>(),
        }));
    }
    rows
}

/// The best median over the model's own shapes (the reference shape is reported, not used).
fn best_model_shape(rows: &[Value]) -> f64 {
    rows.iter()
        .filter(|r| !r["shape"].as_str().unwrap_or("").starts_with("reference"))
        .filter_map(|r| r["gflops_median"].as_f64())
        .fold(f64::NAN, f64::max)
}

fn gemm(args: &Args) -> Value {
    tch::manual_seed(0);
    let _no_grad = tch::no_grad_guard();
    let reps = args.reps.max(3);
    let rows = gemm_rows(Kind::Float, reps);
    let ceiling = best_model_shape(&rows);
    // bf16 only where the CPU computes it natively: emulated, it is ~45x slower and would take many minutes.
    let (native_bf16, hardware) = encoder::native_bf16(Device::Cpu);
    let bf16 = native_bf16.then(|| {
        let rows = gemm_rows(Kind::BFloat16, reps);
        json!({"ceiling_gflops": best_model_shape(&rows), "shapes": rows})
    });
    let threads = usize::try_from(tch::get_num_threads()).unwrap_or(1).max(1);
    json!({
        "bench": "encoder.gemm",
        "threads": tch::get_num_threads(),
        "interop_threads": tch::get_num_interop_threads(),
        "reps": reps,
        "shapes": rows,
        "ceiling_gflops": ceiling,
        "ceiling_definition": "best median GFLOP/s over the model's shapes (ffn_in, ffn_out, proj)",
        "bf16": bf16,
        "bf16_hardware": hardware,
        "fma_peak": peak::fma_peak(threads, reps),
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Texts

fn first_existing(dir: &Path, names: &[&str]) -> Result<PathBuf> {
    if !dir.is_dir() {
        bail!("the data directory {} does not exist (pass --data-dir)", dir.display());
    }
    names
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
        .with_context(|| format!("{} has none of {}: the real data is missing", dir.display(), names.join(", ")))
}

fn write_texts(args: &Args) -> Result<Value> {
    let out = args.out.as_ref().context("--step texts needs --out FILE")?;
    let started = Instant::now();
    let imdb_file = first_existing(&args.data_dir, &["classification_dataset.xlsx", "imdb_50k.csv.gz"])?;
    let reviews = datasets::load_classification(&imdb_file, &datasets::ClassificationOptions::default())
        .with_context(|| format!("cannot read {}", imdb_file.display()))?;
    if reviews.examples.len() < args.imdb {
        bail!("{} has {} reviews, fewer than the {} asked for", imdb_file.display(), reviews.examples.len(), args.imdb);
    }
    let imdb: Vec<&str> = reviews.examples.iter().take(args.imdb).map(|e| e.text.as_str()).collect();
    let gmb_file = first_existing(&args.data_dir, &["ner_dataset.xlsx", "gmb_ner_dataset.csv.gz"])?;
    let ner = datasets::load_ner(&gmb_file, &datasets::NerOptions::default())
        .with_context(|| format!("cannot read {}", gmb_file.display()))?;
    if ner.sentences.len() < args.gmb {
        bail!("{} has {} sentences, fewer than the {} asked for", gmb_file.display(), ner.sentences.len(), args.gmb);
    }
    let gmb: Vec<String> = ner.sentences.iter().take(args.gmb).map(|s| s.words.join(" ")).collect();
    let document = json!({
        "imdb": imdb,
        "gmb": gmb,
        "sources": {
            "imdb": format!("first {} reviews of {}, cleaned with datasets::clean_text", args.imdb, imdb_file.display()),
            "gmb": format!("first {} sentences of {}, words joined by spaces", args.gmb, gmb_file.display()),
        },
    });
    std::fs::write(out, serde_json::to_vec(&document)?).with_context(|| format!("cannot write {}", out.display()))?;
    let chars = |texts: &[&str]| texts.iter().map(|t| t.chars().count()).sum::<usize>();
    let gmb_refs: Vec<&str> = gmb.iter().map(String::as_str).collect();
    Ok(json!({
        "bench": "encoder.texts",
        "threads": tch::get_num_threads(),
        "out": out.display().to_string(),
        "imdb": {"file": imdb_file.display().to_string(), "texts": imdb.len(), "chars": chars(&imdb)},
        "gmb": {"file": gmb_file.display().to_string(), "texts": gmb.len(), "chars": chars(&gmb_refs)},
        "seconds": round(started.elapsed().as_secs_f64(), 3),
    }))
}

fn read_texts(args: &Args) -> Result<Vec<String>> {
    let path = args.texts.as_ref().context("--texts FILE is required (write it with --step texts)")?;
    let document: Value = serde_json::from_slice(
        &std::fs::read(path).with_context(|| format!("cannot read the texts file {}", path.display()))?,
    )
    .with_context(|| format!("{} is not JSON", path.display()))?;
    let texts = document[args.corpus.as_str()]
        .as_array()
        .with_context(|| format!("{} has no `{}` list (corpora: imdb, gmb)", path.display(), args.corpus))?;
    let mut texts: Vec<String> = texts.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect();
    if let Some(limit) = args.limit {
        texts.truncate(limit);
    }
    if texts.is_empty() {
        bail!("no `{}` texts in {}", args.corpus, path.display());
    }
    Ok(texts)
}

fn load_encoder(args: &Args) -> Result<SentenceEncoder> {
    if !args.model.join("config.json").is_file() {
        bail!(
            "no model at {}: run `cargo xtask setup`, or pass --model / set BERTMT_MODEL to a BERT directory",
            args.model.display()
        );
    }
    SentenceEncoder::from_dir(&args.model, Device::Cpu)
        .with_context(|| format!("cannot load the model {}", args.model.display()))?
        .with_max_length(args.max_length)
        .context("--max-length")
}

// ---------------------------------------------------------------------------------------------------------------
// Encode

/// The work of one schedule of batches: real and padded token counts and FLOPs.
#[derive(Default)]
struct Work {
    batches: usize,
    real_tokens: u64,
    padded_tokens: u64,
    flops_real: f64,
    flops_computed: f64,
}

impl Work {
    /// Adds one batch of `lengths` real tokens padded to `padded_to`.
    fn add(&mut self, config: &BertConfig, lengths: &[usize], padded_to: usize) {
        let (h, i, layers) =
            (config.hidden_size as f64, config.intermediate_size as f64, config.num_hidden_layers as f64);
        let per_token = layers * (2.0 * (4.0 * h * h + 2.0 * h * i) + 4.0 * padded_to as f64 * h);
        let real: usize = lengths.iter().sum();
        let padded = lengths.len() * padded_to;
        self.batches += 1;
        self.real_tokens += real as u64;
        self.padded_tokens += padded as u64;
        self.flops_real += per_token * real as f64;
        self.flops_computed += per_token * padded as f64;
    }
}

/// The `sorted` schedule of `SentenceEncoder::encode`: indices sorted by length, longest first (stable), in chunks.
fn sorted_schedule(lengths: &[usize], batch: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&index| std::cmp::Reverse(lengths[index]));
    order.chunks(batch).map(<[usize]>::to_vec).collect()
}

/// The notebook's way: input order, every batch padded to `pad_to`; returns per-batch seconds.
fn notebook_pass(encoder: &SentenceEncoder, texts: &[&str], batch: usize, pad_to: usize) -> Result<Vec<f64>> {
    let _no_grad = tch::no_grad_guard();
    let pad = i64::from(encoder.tokenizer().pad_id());
    let mut seconds = Vec::with_capacity(texts.len().div_ceil(batch));
    for chunk in texts.chunks(batch) {
        let start = Instant::now();
        let encodings = encoder.tokenizer().encode_texts(chunk)?;
        let mut ids = Vec::with_capacity(chunk.len() * pad_to);
        let mut mask = Vec::with_capacity(chunk.len() * pad_to);
        for encoding in &encodings {
            let real = encoding.get_ids();
            ids.extend(real.iter().map(|&id| i64::from(id)));
            ids.extend(std::iter::repeat_n(pad, pad_to - real.len()));
            mask.extend(std::iter::repeat_n(1i64, real.len()));
            mask.extend(std::iter::repeat_n(0i64, pad_to - real.len()));
        }
        let shape = [chunk.len() as i64, pad_to as i64];
        let (ids, mask) = (Tensor::from_slice(&ids).view(shape), Tensor::from_slice(&mask).view(shape));
        let output = encoder.model().forward_t(&ids, Some(&mask), None, false)?;
        let _ = pool(&output.last_hidden_state, &mask, Pooling::Mean);
        seconds.push(start.elapsed().as_secs_f64());
    }
    Ok(seconds)
}

fn encode(args: &Args) -> Result<Value> {
    let owned = read_texts(args)?;
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    let (encoder, precision) = load_encoder(args)?.with_precision(args.precision)?;
    let config = encoder.config().clone();
    let tokenize_start = Instant::now();
    let encodings = encoder.tokenizer().encode_texts(&texts)?;
    let tokenize_seconds = tokenize_start.elapsed().as_secs_f64();
    let lengths: Vec<usize> = encodings.iter().map(|encoding| encoding.get_ids().len()).collect();
    let truncated = encodings.iter().filter(|encoding| !encoding.get_overflowing().is_empty()).count();
    drop(encodings);
    let mut work = Work::default();
    let options = encoder::EncodeOptions { pooling: Pooling::Mean, normalize: false, batch_size: args.batch };
    let mut batch_seconds_median = None;
    let times: Vec<f64> = match args.method.as_str() {
        "sorted" => {
            for indices in sorted_schedule(&lengths, args.batch) {
                let batch_lengths: Vec<usize> = indices.iter().map(|&index| lengths[index]).collect();
                let longest = batch_lengths.iter().copied().max().unwrap_or(0);
                work.add(&config, &batch_lengths, longest);
            }
            // Warm-up: the longest batches.
            let warmup = sorted_schedule(&lengths, args.batch).into_iter().take(2).flatten();
            let warmup: Vec<&str> = warmup.map(|index| texts[index]).collect();
            let _ = encoder.encode(&warmup, &options)?;
            (0..args.reps)
                .map(|_| {
                    let start = Instant::now();
                    encoder.encode(&texts, &options).map(|_| start.elapsed().as_secs_f64())
                })
                .collect::<Result<_, _>>()?
        }
        "notebook" => {
            for chunk in lengths.chunks(args.batch) {
                work.add(&config, chunk, args.max_length);
            }
            notebook_pass(&encoder, &texts[..texts.len().min(2 * args.batch)], args.batch, args.max_length)?;
            let mut all_batches = Vec::new();
            let passes: Vec<f64> = (0..args.reps)
                .map(|_| {
                    notebook_pass(&encoder, &texts, args.batch, args.max_length).map(|batches| {
                        let total = batches.iter().sum();
                        all_batches.extend(batches);
                        total
                    })
                })
                .collect::<Result<_>>()?;
            batch_seconds_median = Some(round(median(all_batches), 5));
            passes
        }
        other => bail!("unknown method {other}: sorted or notebook"),
    };
    let seconds = median(times.clone());
    Ok(json!({
        "bench": "encoder.encode",
        "impl": "rust",
        "corpus": args.corpus,
        "method": args.method,
        "max_length": args.max_length,
        "batch": args.batch,
        "texts": texts.len(),
        "truncated_texts": truncated,
        "threads": tch::get_num_threads(),
        "precision": precision.precision.to_string(),
        "precision_requested": precision.requested.to_string(),
        "precision_reason": precision.reason,
        "reps": args.reps,
        "seconds": round(seconds, 4),
        "seconds_all": times.iter().map(|&t| round(t, 4)).collect::<Vec<_>>(),
        "batch_seconds_median": batch_seconds_median,
        "tokenize_seconds": round(tokenize_seconds, 4),
        "sentences_per_s": round(texts.len() as f64 / seconds, 3),
        "real_tokens": work.real_tokens,
        "padded_tokens": work.padded_tokens,
        "batches": work.batches,
        "real_tokens_per_s": round(work.real_tokens as f64 / seconds, 1),
        "padding_overhead": round(work.padded_tokens as f64 / work.real_tokens as f64 - 1.0, 5),
        "flops_real": work.flops_real,
        "flops_computed": work.flops_computed,
        "gflops_real": round(work.flops_real / seconds / 1e9, 3),
        "gflops_computed": round(work.flops_computed / seconds / 1e9, 3),
        "model": args.model.display().to_string(),
    }))
}

// ---------------------------------------------------------------------------------------------------------------
// Profile

/// Accumulates seconds (and FLOPs, for GEMMs) per operation.
#[derive(Default)]
struct Timer {
    seconds: BTreeMap<&'static str, f64>,
    flops: BTreeMap<&'static str, f64>,
    seconds_of_last: f64,
}

impl Timer {
    fn time<T>(&mut self, name: &'static str, flops: f64, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.seconds_of_last = start.elapsed().as_secs_f64();
        *self.seconds.entry(name).or_default() += self.seconds_of_last;
        *self.flops.entry(name).or_default() += flops;
        out
    }
}

/// The weights of one layer, by their Hugging Face names.
struct LayerWeights {
    query: (Tensor, Tensor),
    key: (Tensor, Tensor),
    value: (Tensor, Tensor),
    attention_out: (Tensor, Tensor),
    attention_norm: (Tensor, Tensor),
    intermediate: (Tensor, Tensor),
    output: (Tensor, Tensor),
    output_norm: (Tensor, Tensor),
}

/// Every weight of the model by role, as the operations use them.
struct ModelWeights {
    layers: Vec<LayerWeights>,
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    embedding_norm: (Tensor, Tensor),
}

impl ModelWeights {
    /// Shallow clones of `encoder`'s weights (they share storage with the model's).
    fn of(encoder: &SentenceEncoder) -> Result<Self> {
        let config = encoder.config();
        let variables = encoder.var_store().variables();
        let get = |name: String| variables.get(&name).map(Tensor::shallow_clone).with_context(|| format!("no {name}"));
        let pair = |prefix: String, a: &str, b: &str| -> Result<(Tensor, Tensor)> {
            Ok((get(format!("{prefix}.{a}"))?, get(format!("{prefix}.{b}"))?))
        };
        let layers: Vec<LayerWeights> = (0..config.num_hidden_layers)
            .map(|l| {
                let p = format!("encoder.layer.{l}");
                Ok(LayerWeights {
                    query: pair(format!("{p}.attention.self.query"), "weight", "bias")?,
                    key: pair(format!("{p}.attention.self.key"), "weight", "bias")?,
                    value: pair(format!("{p}.attention.self.value"), "weight", "bias")?,
                    attention_out: pair(format!("{p}.attention.output.dense"), "weight", "bias")?,
                    attention_norm: pair(format!("{p}.attention.output.LayerNorm"), "weight", "bias")?,
                    intermediate: pair(format!("{p}.intermediate.dense"), "weight", "bias")?,
                    output: pair(format!("{p}.output.dense"), "weight", "bias")?,
                    output_norm: pair(format!("{p}.output.LayerNorm"), "weight", "bias")?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            layers,
            word: get("embeddings.word_embeddings.weight".into())?,
            position: get("embeddings.position_embeddings.weight".into())?,
            token_type: get("embeddings.token_type_embeddings.weight".into())?,
            embedding_norm: pair("embeddings.LayerNorm".into(), "weight", "bias")?,
        })
    }
}

/// Every `every`-th batch of the `sorted` schedule of `texts`, padded: (ids, mask).
fn profiled_batches(
    encoder: &SentenceEncoder,
    texts: &[&str],
    batch: usize,
    every: usize,
) -> Result<Vec<(Tensor, Tensor)>> {
    let encodings = encoder.tokenizer().encode_texts(texts)?;
    let lengths: Vec<usize> = encodings.iter().map(|e| e.get_ids().len()).collect();
    Ok(sorted_schedule(&lengths, batch)
        .into_iter()
        .step_by(every)
        .map(|indices| {
            let ids: Vec<&[u32]> = indices.iter().map(|&index| encodings[index].get_ids()).collect();
            encoder::pad_batch(&ids, encoder.tokenizer().pad_id(), Device::Cpu)
        })
        .collect())
}

fn profile(args: &Args) -> Result<Value> {
    let owned = read_texts(args)?;
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    let encoder = load_encoder(args)?;
    let config = encoder.config().clone();
    let ModelWeights { layers, word, position, token_type, embedding_norm } = ModelWeights::of(&encoder)?;
    let batches = profiled_batches(&encoder, &texts, args.batch, args.every)?;
    let (h, heads) = (config.hidden_size, config.num_attention_heads);
    let head_dim = h / heads;
    let eps = config.layer_norm_eps;
    let _no_grad = tch::no_grad_guard();

    // Warm-up on the first batch; the model's own forward on the profiled batches is timed before and after the
    // operations, so that neither side has the allocator's or the caches' first touch to itself.
    if let Some((ids, mask)) = batches.first() {
        encoder.model().forward_t(ids, Some(mask), None, false)?;
    }
    let model_forward = || -> Result<f64> {
        let start = Instant::now();
        for (ids, mask) in &batches {
            let output = encoder.model().forward_t(ids, Some(mask), None, false)?;
            let _ = pool(&output.last_hidden_state, mask, Pooling::Mean);
        }
        Ok(start.elapsed().as_secs_f64())
    };
    let model_before = model_forward()?;

    let mut timer = Timer::default();
    let start = Instant::now();
    // Seconds of the unpadded batches' attention without and with the mask.
    // (the experiment with the mask, the model's way without it)
    let mut unpadded_attention = (0.0, 0.0);
    let mut unpadded_batches = 0;
    for (ids, mask) in &batches {
        let (b, s) = (ids.size()[0], ids.size()[1]);
        let unpadded = mask.min().int64_value(&[]) == 1;
        unpadded_batches += usize::from(unpadded);
        let tokens = (b * s) as f64;
        let linear_flops = |input: i64, output: i64| 2.0 * tokens * (input * output) as f64;
        let additive = timer.time("mask", 0.0, || encoder::model::additive_attention_mask(mask, Kind::Float));
        let mut hidden = timer.time("embeddings + LayerNorm", 0.0, || {
            let positions = Tensor::arange(s, (Kind::Int64, Device::Cpu)).unsqueeze(0);
            let summed = Tensor::embedding(&word, ids, -1, false, false)
                + Tensor::embedding(&position, &positions, -1, false, false)
                + Tensor::embedding(&token_type, &ids.zeros_like(), -1, false, false);
            summed.layer_norm([h], Some(&embedding_norm.0), Some(&embedding_norm.1), eps, false)
        });
        for layer in &layers {
            let split = |t: Tensor| t.view([b, s, heads, head_dim]).transpose(1, 2);
            let (q, k, v) = timer.time("q/k/v projections (GEMM)", 3.0 * linear_flops(h, h), || {
                (
                    split(hidden.linear(&layer.query.0, Some(&layer.query.1))),
                    split(hidden.linear(&layer.key.0, Some(&layer.key.1))),
                    split(hidden.linear(&layer.value.0, Some(&layer.value.1))),
                )
            });
            // As the model does: no mask for a batch without padding.
            let mask_used = (!unpadded).then_some(&additive);
            let context = timer.time("attention (sdpa)", 4.0 * tokens * (s * h) as f64, || {
                Tensor::scaled_dot_product_attention(&q, &k, &v, mask_used, 0.0, false, None, false)
            });
            if unpadded {
                // An experiment, not part of the sum: the same attention with the (all-zero) mask.
                let start = Instant::now();
                let _ = Tensor::scaled_dot_product_attention(&q, &k, &v, Some(&additive), 0.0, false, None, false);
                unpadded_attention.0 += start.elapsed().as_secs_f64();
                unpadded_attention.1 += timer.seconds_of_last;
            }
            let context = timer.time("merge heads (copy)", 0.0, || context.transpose(1, 2).reshape([b, s, h]));
            let projected = timer.time("attention output (GEMM)", linear_flops(h, h), || {
                context.linear(&layer.attention_out.0, Some(&layer.attention_out.1))
            });
            let attended = timer.time("residual + LayerNorm", 0.0, || {
                (projected + &hidden).layer_norm(
                    [h],
                    Some(&layer.attention_norm.0),
                    Some(&layer.attention_norm.1),
                    eps,
                    false,
                )
            });
            let i = config.intermediate_size;
            let expanded = timer.time("feed-forward in (GEMM)", linear_flops(h, i), || {
                attended.linear(&layer.intermediate.0, Some(&layer.intermediate.1))
            });
            let activated = timer.time("GELU", 0.0, || expanded.gelu("none"));
            let contracted = timer.time("feed-forward out (GEMM)", linear_flops(i, h), || {
                activated.linear(&layer.output.0, Some(&layer.output.1))
            });
            hidden = timer.time("residual + LayerNorm", 0.0, || {
                (contracted + &attended).layer_norm(
                    [h],
                    Some(&layer.output_norm.0),
                    Some(&layer.output_norm.1),
                    eps,
                    false,
                )
            });
        }
        let _ = timer.time("mean pooling", 0.0, || pool(&hidden, mask, Pooling::Mean));
    }
    let parts_seconds = start.elapsed().as_secs_f64() - unpadded_attention.0;
    let model_after = model_forward()?;
    let parts: Vec<Value> = timer
        .seconds
        .iter()
        .map(|(&name, &seconds)| {
            let flops = timer.flops.get(name).copied().unwrap_or(0.0);
            json!({
                "part": name,
                "seconds": round(seconds, 4),
                "share": round(seconds / parts_seconds, 4),
                "gflops": if flops > 0.0 { Some(round(flops / seconds / 1e9, 2)) } else { None },
            })
        })
        .collect();
    let tokens: i64 = batches.iter().map(|(ids, _)| ids.numel() as i64).sum();
    Ok(json!({
        "bench": "encoder.profile",
        "corpus": args.corpus,
        "max_length": args.max_length,
        "batch": args.batch,
        "every": args.every,
        "batches": batches.len(),
        "padded_tokens": tokens,
        "threads": tch::get_num_threads(),
        "model_forward_seconds": round(model_before.min(model_after), 4),
        "model_forward_seconds_before_after": [round(model_before, 4), round(model_after, 4)],
        "unpadded_batches": unpadded_batches,
        "unpadded_attention_seconds_with_mask": round(unpadded_attention.0, 4),
        "unpadded_attention_seconds_without_mask": round(unpadded_attention.1, 4),
        "parts_seconds": round(parts_seconds, 4),
        "parts": parts,
    }))
}
