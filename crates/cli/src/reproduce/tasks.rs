//! Tasks 1, 2 and 4 of the notebook: each computes, shows its results through the transcript and returns them
//! typed for `metrics.json`.

use super::data::{summarize, Loaded, TaskDataSummary};
use super::{Plan, NOTEBOOK_SENTENCES};
use crate::report::evaluation_text;
use crate::report::progress::ProgressBars;
use crate::report::run_dir::ClaimedRun;
use crate::report::transcript::Transcript;
use crate::report::vectors::{render, VectorTable};
use crate::run::{fit, Fit};
use anyhow::Result;
use encoder::reference::{compare, ParityReport, ReferenceOutputs};
use encoder::{EncodeOptions, Pooling, ResolvedPrecision, SentenceEncoder};
use heads::MultiTaskModel;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;
use trainer::{Evaluation, FeatureCacheReport, Session, Settings, Split, TrainOutcome};

/// What Task 1 measured.
#[derive(Debug, Serialize)]
pub(super) struct Task1 {
    pub(super) model: String,
    pub(super) config: encoder::BertConfig,
    pub(super) tensors_copied: usize,
    pub(super) parameters_copied: i64,
    pub(super) tensors_skipped: Vec<String>,
    pub(super) parity: Option<ParityReport>,
    pub(super) sentences: Vec<String>,
    pub(super) cosine_similarity: Vec<SimilarityTable>,
    pub(super) seconds: f64,
}

#[derive(Debug, Serialize)]
pub(super) struct SimilarityTable {
    pub(super) pooling: Pooling,
    pub(super) first_values: Vec<Vec<f64>>,
    pub(super) matrix: Vec<Vec<f64>>,
}

#[derive(Debug, Serialize)]
pub(super) struct Task2 {
    pub(super) classification: TaskDataSummary,
    pub(super) ner: TaskDataSummary,
    /// The frozen encoder's outputs, computed here once for the untrained scores and Task 4's training.
    pub(super) feature_cache: Option<FeatureCacheReport>,
    pub(super) untrained: Evaluation,
    pub(super) seconds: f64,
}

#[derive(Debug, Serialize)]
pub(super) struct Task4 {
    pub(super) settings: Settings,
    pub(super) outcome: TrainOutcome,
    pub(super) checkpoint: String,
    pub(super) seconds: f64,
}

pub(super) fn task1(
    encoder: &SentenceEncoder,
    model_dir: &Path,
    started: Instant,
    transcript: &mut Transcript,
) -> Result<Task1> {
    let load = encoder.load_report();
    transcript.line(&format!("Model `{}`:", model_dir.display()));
    transcript.block(&encoder.config().to_string());
    transcript.line(&format!(
        "Weights copied: {} tensors, {} values from {} (skipped: {})",
        load.copied,
        load.parameters,
        load.file.display(),
        if load.skipped.is_empty() { "none".to_string() } else { load.skipped.join(", ") }
    ));

    let parity = parity(encoder, model_dir)?;
    transcript.line(&match &parity {
        Some(p) => format!(
            "Parity with Hugging Face transformers on {} texts ({} tokens, ids match: {}): max absolute difference \
             {:.2e} (token states {:.2e}, CLS {:.2e}, mean {:.2e})",
            p.texts,
            p.tokens,
            p.token_ids_match,
            p.max_abs_diff(),
            p.token_states_max_abs_diff,
            p.cls_max_abs_diff,
            p.mean_max_abs_diff
        ),
        None => "Parity: no reference outputs for this model (they exist for the default model)".to_string(),
    });

    // The notebook's Task 1: the [CLS] state and the masked mean, not normalized, at the model's 512 positions.
    let poolings = [(Pooling::Cls, "CLS"), (Pooling::Mean, "Mean pooling")];
    let vector_tables = poolings
        .iter()
        .map(|&(pooling, title)| -> Result<VectorTable> {
            let options = EncodeOptions { pooling, normalize: false, batch_size: 8 };
            let vectors = encoder.encode(&NOTEBOOK_SENTENCES, &options)?;
            Ok(VectorTable::new(title, vectors, NOTEBOOK_SENTENCES.len()))
        })
        .collect::<Result<Vec<_>>>()?;
    transcript.block(&render(&NOTEBOOK_SENTENCES, &vector_tables));
    let tables = poolings
        .iter()
        .zip(&vector_tables)
        .map(|(&(pooling, _), table)| -> Result<SimilarityTable> {
            Ok(SimilarityTable {
                pooling,
                first_values: Vec::<Vec<f64>>::try_from(
                    table.vectors.narrow(1, 0, table.vectors.size()[1].min(5)).to_kind(tch::Kind::Double),
                )?,
                matrix: match &table.similarity {
                    Some(similarity) => Vec::<Vec<f64>>::try_from(similarity.to_kind(tch::Kind::Double))?,
                    None => Vec::new(),
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
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

pub(super) fn task2<'a>(
    plan: &Plan<'a>,
    model: &'a MultiTaskModel,
    loaded: &'a Loaded,
    started: Instant,
    transcript: &mut Transcript,
) -> Result<(Task2, Session<'a>)> {
    let settings = &plan.config.settings;
    let mut summaries = Vec::new();
    for (name, loaded) in [("Classification", &loaded.classification), ("NER", &loaded.ner)] {
        let summary = summarize(loaded, settings.train.batch_size)?;
        let text = format!(
            "{name}: {} ({}), {} rows read, {} examples kept; {}\n  labels: {}\n  train {} / validation {} / test {}; \
             {} examples truncated at 512 tokens, {} read in windows; cache: {}\n  one training batch: {}",
            summary.file,
            summary.source,
            summary.rows_read,
            summary.examples,
            if summary.dropped.is_empty() { "nothing dropped".to_string() } else { summary.dropped.join("; ") },
            summary.labels.join(", "),
            summary.train,
            summary.validation,
            summary.test,
            summary.truncated_examples,
            summary.windowed_examples,
            summary.cache,
            summary.batch_shapes.iter().map(|(n, s)| format!("{n} {s:?}")).collect::<Vec<_>>().join(", ")
        );
        transcript.block(&text);
        summaries.push(summary);
    }
    let mut session = Session::new(model, loaded.tasks(), settings.strategy, settings.train.clone())?;
    if let Some(group) = plan.group {
        session = session.in_group(group);
    }
    // With a frozen encoder its outputs are computed once, here: the untrained scores and Task 4 both use them.
    let mut spinner = ProgressBars::new(!plan.args.run.quiet && plan.group.is_none_or(|g| g.rank() == 0));
    let feature_cache = session.prepare_features(&mut spinner)?.cloned();
    spinner.clear();
    if let Some(built) = &feature_cache {
        let sizes: Vec<String> = built
            .tasks
            .iter()
            .map(|(task, size)| format!("{} {}", task.title(), trainer::features::describe(*size)))
            .collect();
        transcript.line(&format!(
            "Encoder features of every train, validation and test example computed once in {:.1} s ({}); the \
             scores below and Task 4's {} training use them.",
            built.seconds,
            sizes.join(", "),
            settings.strategy
        ));
    }
    transcript.line("The untrained model (pretrained encoder, random heads) on the test sets:");
    let untrained = session.evaluate(Split::Test)?;
    transcript.block(&evaluation_text(&untrained));
    let mut summaries = summaries.into_iter();
    let (Some(classification), Some(ner)) = (summaries.next(), summaries.next()) else {
        anyhow::bail!("missing summary")
    };
    let seconds = started.elapsed().as_secs_f64();
    Ok((Task2 { classification, ner, feature_cache, untrained, seconds }, session))
}

/// Trains and scores through the one training path; in a data-parallel run, as one rank, with the run directory
/// (records, plots, checkpoint) and progress bars on rank 0 only (`run_dir` is `None` on the others).
pub(super) fn task4(
    plan: &Plan<'_>,
    model: &MultiTaskModel,
    session: &mut Session<'_>,
    run_dir: Option<&ClaimedRun>,
    precision: &ResolvedPrecision,
    transcript: &mut Transcript,
) -> Result<Task4> {
    let started = Instant::now();
    let settings = plan.config.settings.clone();
    let fingerprint = plan.config.fingerprint(precision)?;
    let (outcome, checkpoint) = fit(
        session,
        model,
        Fit {
            model_dir: &plan.args.model.model,
            settings: &settings,
            run: run_dir,
            resume: None,
            fingerprint,
            quiet: plan.args.run.quiet,
            save_state: false,
            resume_command: String::new(),
            scores_before: true,
        },
        transcript,
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let checkpoint = checkpoint.map(|path| path.display().to_string()).unwrap_or_default();
    Ok(Task4 { settings, outcome, checkpoint, seconds })
}

/// Compares with the built-in reference outputs when they were made by this model (same directory name).
pub(super) fn parity(encoder: &SentenceEncoder, model_dir: &Path) -> Result<Option<ParityReport>> {
    let reference = ReferenceOutputs::default_model()?;
    let same_model = model_dir.file_name().and_then(|n| n.to_str()) == Some(reference.model.as_str());
    if !same_model {
        return Ok(None);
    }
    Ok(Some(compare(encoder, &reference)?))
}
