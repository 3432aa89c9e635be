//! Data pipeline benchmark: one step per process, one JSON line per run.
//!
//! ```text
//! cargo bench -p datasets --bench pipeline -- --step read-ner [--runs 3]
//!     [--classification FILE] [--ner FILE] [--tokenizer tokenizer.json]
//! ```
//! Relative paths, in flags and environment variables, are taken from the workspace root (cargo runs a bench in
//! its crate's directory).
//!
//! Steps: `read-imdb` (read the review file), `clean-imdb` (read + the notebook's
//! `clean_text`), `read-ner` (stream the NER rows), `group-ner` (read + forward-fill + group
//! into sentences + tag check), `tokenize-imdb` (read + clean + tokenize; needs a tokenizer),
//! `cache-hit` (load the tokenized IMDB dataset from a warm cache; needs a tokenizer; the
//! cache is built first in a child process so that its memory is not counted).
//!
//! Files: `--classification`/`--ner`, or `BENCH_CLASSIFICATION`/`BENCH_NER`, default
//! `../shared/data/classification_dataset.xlsx` and `../shared/data/ner_dataset.xlsx` from the
//! workspace root. Tokenizer: `--tokenizer` or `BENCH_TOKENIZER`, default
//! `data/models/all-MiniLM-L6-v2/tokenizer.json` when it exists. Runs: `--runs` or `BENCH_RUNS`
//! (default 3). Prints `{"step", "impl": "rust", "file", "runs", "seconds" (median),
//! "seconds_all", "peak_rss_mib" (VmHWM), "counts", "check"}`; `check` compares the counts with
//! the real files' known counts (50,000 reviews, 25,000/25,000; 47,959 sentences, 1,048,575
//! tokens) and the process exits 1 on a mismatch.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use datasets::{
    encode_classification, load_classification, load_ner, prepare_classification, read_table, CacheStatus,
    ClassificationOptions, EncodeOptions, NerOptions, PrepareOptions, TestSize, TextEncoding,
};
use serde_json::{json, Value};

type BoxError = Box<dyn std::error::Error>;

struct Args {
    step: String,
    runs: usize,
    classification: PathBuf,
    ner: PathBuf,
    tokenizer: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
}

fn workspace_root() -> PathBuf {
    // crates/datasets -> workspace root
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn parse_args() -> Result<Args, BoxError> {
    let root = workspace_root();
    let env_path = |var: &str, default: PathBuf| std::env::var_os(var).map_or(default, |path| root.join(path));
    let default_tokenizer = root.join("data/models/all-MiniLM-L6-v2/tokenizer.json");
    let mut args = Args {
        step: String::new(),
        runs: std::env::var("BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(3),
        classification: env_path("BENCH_CLASSIFICATION", root.join("../shared/data/classification_dataset.xlsx")),
        ner: env_path("BENCH_NER", root.join("../shared/data/ner_dataset.xlsx")),
        tokenizer: std::env::var_os("BENCH_TOKENIZER")
            .map(|path| root.join(path))
            .or_else(|| default_tokenizer.exists().then_some(default_tokenizer)),
        cache_dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--step" => args.step = value()?,
            "--runs" => args.runs = value()?.parse()?,
            "--classification" => args.classification = root.join(value()?),
            "--ner" => args.ner = root.join(value()?),
            "--tokenizer" => args.tokenizer = Some(root.join(value()?)),
            "--cache-dir" => args.cache_dir = Some(root.join(value()?)),
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if args.step.is_empty() {
        return Err("--step is required: read-imdb, clean-imdb, read-ner, group-ner, tokenize-imdb, cache-hit".into());
    }
    args.runs = args.runs.max(1);
    Ok(args)
}

/// Peak resident set size of this process (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    proc_status_mib("VmHWM:")
}

/// A memory figure from /proc/self/status, in MiB.
fn proc_status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Whether `path` is one of the real files whose counts are known.
fn known(path: &Path, names: &[&str]) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| names.contains(&n))
}

const IMDB_FILES: [&str; 2] = ["classification_dataset.xlsx", "imdb_50k.csv.gz"];
const NER_FILES: [&str; 2] = ["ner_dataset.xlsx", "gmb_ner_dataset.csv.gz"];

fn imdb_counts(data: &datasets::ClassificationData) -> Value {
    let counts = data.class_counts();
    json!({"reviews": data.examples.len(), "negative": counts.first(), "positive": counts.get(1)})
}

fn imdb_ok(counts: &Value) -> bool {
    counts == &json!({"reviews": 50_000, "negative": 25_000, "positive": 25_000})
}

fn ner_ok(counts: &Value) -> bool {
    counts["sentences"] == 47_959 && counts["tokens"] == 1_048_575
}

fn tokenizer(args: &Args) -> Result<Option<tokenizers::Tokenizer>, BoxError> {
    match &args.tokenizer {
        Some(path) => Ok(Some(tokenizers::Tokenizer::from_file(path).map_err(|e| format!("{}: {e}", path.display()))?)),
        None => Ok(None),
    }
}

fn prepare_options(cache_dir: &Path) -> PrepareOptions {
    PrepareOptions {
        test_size: TestSize::Count(100),
        cache_dir: Some(cache_dir.to_path_buf()),
        ..PrepareOptions::default()
    }
}

/// Runs one step once; returns the counts and whether they match the known ones (`None`: unknown file).
fn run_step(args: &Args, tok: Option<&tokenizers::Tokenizer>) -> Result<(Value, Option<bool>), BoxError> {
    let imdb_known = known(&args.classification, &IMDB_FILES);
    let ner_known = known(&args.ner, &NER_FILES);
    match args.step.as_str() {
        "read-imdb" | "clean-imdb" => {
            let options =
                ClassificationOptions { clean: args.step == "clean-imdb", ..ClassificationOptions::default() };
            let data = load_classification(&args.classification, &options)?;
            let counts = imdb_counts(&data);
            let ok = imdb_known.then(|| imdb_ok(&counts));
            Ok((counts, ok))
        }
        "read-ner" => {
            let mut rows = 0u64;
            let mut sentences = 0u64;
            read_table(&args.ner, None, TextEncoding::Auto, &["Sentence #", "Word", "Tag"], |_, cells| {
                rows += 1;
                sentences += u64::from(cells.first().is_some_and(Option::is_some));
                Ok(())
            })?;
            let counts = json!({"tokens": rows, "sentences": sentences});
            let ok = ner_known.then(|| ner_ok(&counts));
            Ok((counts, ok))
        }
        "group-ner" => {
            let data = load_ner(&args.ner, &NerOptions::default())?;
            let counts = json!({
                "sentences": data.sentences.len(),
                "tokens": data.token_count(),
                "tags": data.labels.len(),
                "dropped_sentences": data.dropped_sentences.total(),
            });
            let ok = ner_known.then(|| ner_ok(&counts));
            Ok((counts, ok))
        }
        "tokenize-imdb" => {
            let tok = tok.ok_or("no tokenizer")?;
            let data = load_classification(&args.classification, &ClassificationOptions::default())?;
            let (encoded, stats) = encode_classification(tok, &data.examples, &EncodeOptions::default())?;
            let mut counts = imdb_counts(&data);
            counts["tokens"] = json!(stats.tokens);
            counts["truncated"] = json!(stats.truncated_examples);
            let ok = imdb_known.then(|| imdb_ok(&imdb_counts(&data)) && encoded.len() == 50_000);
            Ok((counts, ok))
        }
        "cache-build" | "cache-hit" => {
            let tok = tok.ok_or("no tokenizer")?;
            let dir = args.cache_dir.as_deref().ok_or("no cache dir")?;
            let ds = prepare_classification(
                &args.classification,
                &ClassificationOptions::default(),
                tok,
                &prepare_options(dir),
            )?;
            if args.step == "cache-hit" && ds.cache().status != CacheStatus::Hit {
                return Err(format!("expected a cache hit, got: {}", ds.cache()).into());
            }
            let counts = json!({
                "examples": ds.examples().len(),
                "tokens": ds.data().stats().tokens,
                "train": ds.train().len(),
                "test": ds.test().len(),
                "cache": ds.cache().status.to_string(),
            });
            let ok = imdb_known.then_some(ds.examples().len() == 50_000);
            Ok((counts, ok))
        }
        other => Err(format!("unknown step {other}").into()),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("pipeline bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<bool, BoxError> {
    // Resident memory before any work: the binary and its libraries (libtorch, when the
    // default `tch` feature links it, accounts for about 110 MiB of it).
    let startup_rss = proc_status_mib("VmRSS:");
    let mut args = parse_args()?;
    let needs_tokenizer = matches!(args.step.as_str(), "tokenize-imdb" | "cache-hit" | "cache-build");
    let tok = if needs_tokenizer { tokenizer(&args)? } else { None };
    let file = if args.step.contains("ner") { &args.ner } else { &args.classification };
    let file = file.display().to_string();
    if needs_tokenizer && tok.is_none() {
        println!(
            "{}",
            json!({"step": args.step, "impl": "rust", "file": file, "skipped": "no tokenizer (--tokenizer or BENCH_TOKENIZER)"})
        );
        return Ok(true);
    }
    // The cache is built by a child process, so its memory and time are not counted here.
    let _cache_guard = if args.step == "cache-hit" && args.cache_dir.is_none() {
        let dir = tempfile::tempdir()?;
        let mut child = std::process::Command::new(std::env::current_exe()?);
        child.args(["--step", "cache-build", "--runs", "1", "--cache-dir"]).arg(dir.path());
        child.arg("--classification").arg(&args.classification);
        if let Some(t) = &args.tokenizer {
            child.arg("--tokenizer").arg(t);
        }
        let status = child.stdout(std::process::Stdio::null()).status()?;
        if !status.success() {
            return Err("building the cache failed".into());
        }
        args.cache_dir = Some(dir.path().to_path_buf());
        Some(dir)
    } else {
        None
    };
    let mut times = Vec::with_capacity(args.runs);
    let mut last = (Value::Null, None);
    for _ in 0..args.runs {
        let start = Instant::now();
        last = run_step(&args, tok.as_ref())?;
        times.push(start.elapsed().as_secs_f64());
    }
    let (counts, ok) = last;
    let check = match ok {
        Some(true) => "ok",
        Some(false) => "MISMATCH",
        None => "unknown file",
    };
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    println!(
        "{}",
        json!({
            "step": args.step,
            "impl": "rust",
            "file": file,
            "runs": args.runs,
            "seconds": round(median(times.clone())),
            "seconds_all": times.iter().map(|&t| round(t)).collect::<Vec<_>>(),
            "peak_rss_mib": round(peak_rss_mib()),
            "startup_rss_mib": round(startup_rss),
            "libtorch_linked": cfg!(feature = "tch"),
            "counts": counts,
            "check": check,
        })
    );
    Ok(ok != Some(false))
}
