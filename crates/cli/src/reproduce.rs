//! `bertmt reproduce`: the notebook's tasks in order, printed and written to a run directory.

use crate::embed::{embed, load_encoder, render};
use crate::{device, ModelArgs};
use anyhow::{Context, Result};
use encoder::reference::{compare, ParityReport, ReferenceOutputs};
use encoder::{Pooling, SentenceEncoder};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The sentences of the notebook's Task 1 demonstration.
pub const NOTEBOOK_SENTENCES: [&str; 3] =
    ["Fetch Rewards is a great app!", "I love eating apples.", "I do enjoy oranges!"];

/// The reference outputs committed with the encoder crate (made by `transformers` on the default model).
const REFERENCE_FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../encoder/tests/fixtures/parity.safetensors");

/// Arguments of `reproduce`.
#[derive(clap::Args, Debug)]
pub struct ReproduceArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Where run directories are created.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Name of this run's directory (default: reproduce-<UTC time>).
    #[arg(long)]
    pub name: Option<String>,
}

/// What Task 1 measured.
#[derive(Debug, Serialize)]
struct Task1 {
    model: String,
    config: encoder::BertConfig,
    tensors_copied: usize,
    parameters_copied: i64,
    tensors_skipped: Vec<String>,
    parity: Option<ParityReport>,
    sentences: Vec<String>,
    cosine_similarity: Vec<SimilarityTable>,
    seconds: f64,
}

#[derive(Debug, Serialize)]
struct SimilarityTable {
    pooling: Pooling,
    first_values: Vec<Vec<f64>>,
    matrix: Vec<Vec<f64>>,
}

#[derive(Debug, Serialize)]
struct Metrics {
    device: String,
    task1: Task1,
}

pub fn run(args: &ReproduceArgs) -> Result<()> {
    let device = device::parse(&args.model.device)?;
    let run_dir = args.runs_dir.join(args.name.clone().unwrap_or_else(|| format!("reproduce-{}", utc_stamp())));
    std::fs::create_dir_all(&run_dir).with_context(|| format!("cannot create {}", run_dir.display()))?;
    let mut report = String::from("# Reproduction of the notebook\n\n");

    println!("== Task 1: a BERT sentence encoder, checked against the reference ==");
    let started = Instant::now();
    let encoder = load_encoder(&args.model.model, device)?;
    let task1 = task1(&encoder, &args.model.model, started, &mut report)?;

    let metrics = Metrics { device: device::describe(device), task1 };
    write_atomic(&run_dir.join("metrics.json"), &serde_json::to_string_pretty(&metrics)?)?;
    write_atomic(&run_dir.join("report.md"), &report)?;
    println!("\nwrote {} and {}", run_dir.join("report.md").display(), run_dir.join("metrics.json").display());
    Ok(())
}

fn task1(encoder: &SentenceEncoder, model_dir: &Path, started: Instant, report: &mut String) -> Result<Task1> {
    let load = encoder.load_report();
    println!("Model: {}", model_dir.display());
    println!("{}", encoder.config());
    println!(
        "Weights copied: {} tensors, {} values from {} (skipped: {})",
        load.copied,
        load.parameters,
        load.file.display(),
        if load.skipped.is_empty() { "none".to_string() } else { load.skipped.join(", ") }
    );

    let parity = parity(encoder, model_dir)?;
    match &parity {
        Some(p) => println!(
            "Parity with Hugging Face transformers ({} texts, {} tokens, ids match: {}): max |difference| \
             token states {:.2e}, CLS {:.2e}, mean {:.2e}",
            p.texts, p.tokens, p.token_ids_match, p.token_states_max_abs_diff, p.cls_max_abs_diff, p.mean_max_abs_diff
        ),
        None => println!("Parity: no reference outputs for this model (they exist for the default model)"),
    }

    let results = embed(encoder, &NOTEBOOK_SENTENCES, &[Pooling::Cls, Pooling::Mean], false, 8)?;
    let rendered = render(&NOTEBOOK_SENTENCES, &results);
    println!("\n{rendered}");
    let tables = results
        .iter()
        .map(|r| -> Result<SimilarityTable> {
            Ok(SimilarityTable {
                pooling: r.pooling,
                first_values: Vec::<Vec<f64>>::try_from(r.vectors.narrow(1, 0, 5).to_kind(tch::Kind::Double))?,
                matrix: Vec::<Vec<f64>>::try_from(r.similarity.to_kind(tch::Kind::Double))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;

    let _ = writeln!(report, "## Task 1: sentence encoder\n");
    let _ = writeln!(report, "Model `{}`:\n\n```\n{}\n```\n", model_dir.display(), encoder.config());
    if let Some(p) = &parity {
        let _ = writeln!(
            report,
            "Parity with Hugging Face `transformers` on {} texts ({} tokens): max absolute difference {:.2e} \
             (token states {:.2e}, CLS {:.2e}, mean {:.2e}).\n",
            p.texts,
            p.tokens,
            p.max_abs_diff(),
            p.token_states_max_abs_diff,
            p.cls_max_abs_diff,
            p.mean_max_abs_diff
        );
    }
    let _ = writeln!(report, "```\n{rendered}```\n");
    Ok(Task1 {
        model: model_dir.display().to_string(),
        config: encoder.config().clone(),
        tensors_copied: load.copied,
        parameters_copied: load.parameters,
        tensors_skipped: load.skipped.clone(),
        parity,
        sentences: NOTEBOOK_SENTENCES.iter().map(|s| s.to_string()).collect(),
        cosine_similarity: tables,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Compares with the committed reference when it was made by this model (same directory name and texts).
fn parity(encoder: &SentenceEncoder, model_dir: &Path) -> Result<Option<ParityReport>> {
    let fixture = Path::new(REFERENCE_FIXTURE);
    if !fixture.is_file() {
        return Ok(None);
    }
    let reference = ReferenceOutputs::read(fixture)?;
    let same_model = model_dir.file_name().and_then(|n| n.to_str()) == Some(reference.model.as_str());
    if !same_model {
        return Ok(None);
    }
    Ok(Some(compare(encoder, &reference)?))
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
pub fn write_atomic(path: &Path, content: &str) -> Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, content).with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("cannot write {}", path.display()))
}

/// `YYYYMMDD-HHMMSS` in UTC.
fn utc_stamp() -> String {
    let seconds =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}-{:02}{:02}{:02}", rest / 3600, rest % 3600 / 60, rest % 60)
}
