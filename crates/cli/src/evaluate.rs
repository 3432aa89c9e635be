//! `bertmt evaluate`: a trained checkpoint's scores on labelled files, as a run scores its test split (the same
//! reports, the same 95% bootstrap intervals).

use crate::args::CheckpointArgs;
use crate::device;
use crate::predict::load_checkpoint;
use crate::report::evaluation_text;
use anyhow::{bail, Context, Result};
use datasets::{ClassificationOptions, LabelSpec, NerLabels, NerOptions, PrepareOptions, UnknownLabels};
use std::path::PathBuf;
use trainer::{PerTask, Split, Task, TaskData};

/// Arguments of `evaluate`.
#[derive(clap::Args, Debug)]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub model: CheckpointArgs,
    /// Labelled classification examples to score (CSV, TSV, XLSX or JSON lines).
    #[arg(long, value_name = "FILE")]
    pub classification: Option<PathBuf>,
    /// The text column of the classification file (default `text`, then `review`).
    #[arg(long)]
    pub text_column: Option<String>,
    /// The label column of the classification file (default `label`, then `sentiment`).
    #[arg(long)]
    pub label_column: Option<String>,
    /// Labelled NER sentences to score (CoNLL, the Kaggle layout, or JSON lines with `tokens` and `ner_tags`).
    #[arg(long, value_name = "FILE")]
    pub ner: Option<PathBuf>,
    /// The tag of each integer id in a JSON-lines NER file, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub label_names: Option<Vec<String>>,
    /// Print the scores as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &EvaluateArgs) -> Result<()> {
    if args.classification.is_none() && args.ner.is_none() {
        bail!("nothing to evaluate: pass --classification FILE, --ner FILE or both");
    }
    let loaded = load_checkpoint(&args.model)?;
    let (dir, precision, device) = (&loaded.dir, &loaded.precision, loaded.device);
    let (model, tokenizer) = (loaded.predictor.model(), loaded.predictor.tokenizer());
    let prepare = PrepareOptions {
        encode: datasets::EncodeOptions {
            max_length: tokenizer.max_length(),
            case_types: model.config().ner_case_types,
            ..datasets::EncodeOptions::default()
        },
        ..PrepareOptions::default()
    };
    let mut data = PerTask::new();
    for (task, file) in [(Task::Classification, &args.classification), (Task::Ner, &args.ner)] {
        let Some(file) = file else { continue };
        if !model.has_task(task) {
            bail!(
                "the checkpoint at {} has no {} head (it was trained without {} data): it cannot score {}",
                dir.display(),
                task.title(),
                task.title(),
                file.display()
            );
        }
        // The file is read against the model's labels: one it never learnt is an error naming it.
        let labels = model.config().labels(task);
        let dataset = match task {
            Task::Classification => {
                let names: Vec<&str> = labels.iter().map(String::as_str).collect();
                let options = ClassificationOptions {
                    text_column: args.text_column.clone(),
                    label_column: args.label_column.clone(),
                    labels: Some(LabelSpec::new(&names)?),
                    unknown_labels: UnknownLabels::Error,
                    ..ClassificationOptions::default()
                };
                datasets::prepare_classification_test(file, &options, tokenizer.inner(), &prepare)
            }
            Task::Ner => {
                let options = NerOptions {
                    label_names: args.label_names.clone(),
                    labels: Some(NerLabels::new(labels)?),
                    unknown_labels: UnknownLabels::Error,
                    ..NerOptions::default()
                };
                datasets::prepare_ner_test(file, &options, tokenizer.inner(), &prepare)
            }
        }
        .with_context(|| format!("cannot load the {} data {}", task.title(), file.display()))?;
        let converted: u64 = dataset.data().files().iter().map(|f| f.iob1_tags_converted).sum();
        if converted > 0 {
            eprintln!(
                "note: {}: {converted} IOB1 tags (an I- starting an entity) were read as B-, as strict IOB2 scoring \
                 needs; seqeval on the raw file would score them otherwise",
                file.display()
            );
        }
        data.insert(task, dataset);
    }
    let tasks: TaskData<'_> = data.iter().collect();
    let evaluation = trainer::evaluate(model, tasks, Split::Test, args.model.batch_size, None)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&evaluation)?);
    } else {
        println!(
            "Checkpoint: {} on {}, precision {} ({})\n",
            dir.display(),
            device::describe(device),
            precision.precision,
            precision.reason
        );
        print!("{}", evaluation_text(&evaluation));
    }
    Ok(())
}
