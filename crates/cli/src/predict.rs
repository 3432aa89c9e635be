//! `bertmt predict`: the sentence class and the named entities of texts, from a saved multi-task checkpoint.
//!
//! The predictions come from `heads::pipeline::predict` (the class on the cleaned text, the entities on the raw text's
//! words, one tag per word from its first sub-token, read in strict IOB2); this module loads the checkpoint, collects
//! the texts and presents the predictions (JSON lines or console text).

use crate::args::CheckpointArgs;
use crate::device;
use anyhow::{bail, Context, Result};
use heads::checkpoint::CHECKPOINT_FILE;
use heads::{Aggregation, PredictOptions, Prediction, Predictor};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::run::CHECKPOINT_DIR as RUN_CHECKPOINT_DIR;

/// Arguments of `predict`.
#[derive(clap::Args, Debug)]
pub struct PredictArgs {
    /// Texts to tag and classify.
    pub texts: Vec<String>,
    /// Read texts from a file, one a line (blank lines skipped).
    #[arg(long)]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub model: CheckpointArgs,
    /// How a word's tag comes from its sub-tokens: `first` (as the model trains), `average` (of their
    /// probabilities) or `max` (the surest sub-token).
    #[arg(long, default_value = "first")]
    pub aggregation: Aggregation,
    /// Tokens shared by consecutive windows of a text longer than the model [default: a quarter of its length].
    #[arg(long)]
    pub stride: Option<usize>,
    /// Print one JSON object a line instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &PredictArgs) -> Result<()> {
    let texts = collect_texts(&args.texts, args.file.as_deref())?;
    let loaded = load_checkpoint(&args.model)?;
    let (dir, precision, device) = (&loaded.dir, &loaded.precision, loaded.device);
    let options =
        PredictOptions { batch_size: args.model.batch_size, aggregation: args.aggregation, stride: args.stride };
    let predictions = loaded.predictor.predict(&texts, &options)?;
    if args.json {
        for prediction in &predictions {
            println!("{}", serde_json::to_string(prediction)?);
        }
    } else {
        println!(
            "Checkpoint: {} on {}, precision {} ({})\n",
            dir.display(),
            device::describe(device),
            precision.precision,
            precision.reason
        );
        print!("{}", render(&predictions));
    }
    Ok(())
}

/// A checkpoint loaded to run.
pub struct LoadedCheckpoint {
    /// The checkpoint directory (a run directory's `checkpoint/` when given the run).
    pub dir: PathBuf,
    /// The model and its tokenizer, at its precision, on its device.
    pub predictor: Predictor,
    /// The precision it computes in, and why.
    pub precision: encoder::ResolvedPrecision,
    /// The device it runs on.
    pub device: tch::Device,
}

/// Loads the checkpoint `args` name onto its device, at its precision, with its tokenizer.
pub fn load_checkpoint(args: &CheckpointArgs) -> Result<LoadedCheckpoint> {
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let device = device::parse(&args.device)?;
    let dir = resolve_checkpoint(&args.checkpoint)?;
    let predictor = Predictor::from_checkpoint(&dir, device)
        .with_context(|| format!("cannot load the checkpoint at {}", dir.display()))?;
    let (predictor, precision) = predictor.with_precision(args.precision)?;
    Ok(LoadedCheckpoint { dir, predictor, precision, device })
}

/// The checkpoint directory: `path` when it holds `checkpoint.json`, else the `checkpoint/` of a run directory.
pub(crate) fn resolve_checkpoint(path: &Path) -> Result<PathBuf> {
    if !path.exists() {
        bail!("no checkpoint at {}: the directory does not exist", path.display());
    }
    if !path.is_dir() {
        bail!("{} is not a checkpoint directory", path.display());
    }
    if path.join(CHECKPOINT_FILE).is_file() {
        return Ok(path.to_path_buf());
    }
    let nested = path.join(RUN_CHECKPOINT_DIR);
    if nested.is_dir() {
        return Ok(nested);
    }
    bail!(
        "{} is not a checkpoint: it has no {CHECKPOINT_FILE} (nor a {RUN_CHECKPOINT_DIR}/ directory, as run directories do)",
        path.display()
    )
}

/// The console view: each text, its class and its entities.
pub fn render(predictions: &[Prediction]) -> String {
    let mut out = String::new();
    for (index, prediction) in predictions.iter().enumerate() {
        let _ = writeln!(out, "{}. \"{}\"", index + 1, prediction.text);
        if let Some(class) = &prediction.class {
            let _ = writeln!(out, "   class: {} ({:.2})", class.label, class.probability);
        }
        if let Some(entities) = &prediction.entities {
            let entities: Vec<String> = entities
                .iter()
                .map(|e| format!("{} [{}] (words {}-{})", e.text, e.entity_type, e.start_word, e.end_word))
                .collect();
            let entities = if entities.is_empty() { "none".to_string() } else { entities.join(", ") };
            let _ = writeln!(out, "   entities: {entities}");
        }
    }
    out
}

/// The texts of the arguments then of `file` (one a line); blank texts are skipped.
fn collect_texts(args: &[String], file: Option<&Path>) -> Result<Vec<String>> {
    let mut texts: Vec<String> = args.iter().filter(|text| !text.trim().is_empty()).cloned().collect();
    if let Some(file) = file {
        let content = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        texts.extend(content.lines().filter(|line| !line.trim().is_empty()).map(str::to_string));
    }
    if texts.is_empty() {
        bail!("no texts to predict: pass them as arguments or with --file (one a line, blank lines skipped)");
    }
    Ok(texts)
}
