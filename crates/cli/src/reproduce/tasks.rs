//! Tasks 1, 2 and 4 of the notebook: each computes, shows its results through the transcript and returns them
//! typed for `metrics.json`.

use super::data::{summarize, LoadedData, TaskDataSummary};
use super::{ReproduceArgs, Settings, NOTEBOOK_SENTENCES};
use crate::embed::{embed, render};
use crate::report::progress::{Fanout, ProgressBars};
use crate::report::run_dir::RunDirectory;
use crate::report::transcript::Transcript;
use crate::report::{epoch_line, evaluation_text};
use anyhow::{bail, Result};
use distributed::ProcessGroup;
use encoder::reference::{compare, ParityReport, ReferenceOutputs};
use encoder::{Pooling, SentenceEncoder};
use heads::MultiTaskModel;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;
use trainer::{
    evaluate, freezes_encoder, train_and_evaluate, train_and_evaluate_in_group, Evaluation, FeatureCache,
    FeatureCacheReport, Split, TaskData, TrainOutcome,
};

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

    let results = embed(encoder, &NOTEBOOK_SENTENCES, &[Pooling::Cls, Pooling::Mean], false, 8)?;
    transcript.block(&render(&NOTEBOOK_SENTENCES, &results));
    let tables = results
        .iter()
        .map(|r| -> Result<SimilarityTable> {
            Ok(SimilarityTable {
                pooling: r.pooling,
                first_values: Vec::<Vec<f64>>::try_from(
                    r.vectors.narrow(1, 0, r.vectors.size()[1].min(5)).to_kind(tch::Kind::Double),
                )?,
                matrix: match &r.similarity {
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

pub(super) fn task2(
    args: &ReproduceArgs,
    settings: &Settings,
    model: &MultiTaskModel,
    loaded: [&LoadedData; 2],
    started: Instant,
    transcript: &mut Transcript,
) -> Result<(Task2, Option<FeatureCache>)> {
    let mut summaries = Vec::new();
    for (name, loaded) in ["Classification", "NER"].into_iter().zip(loaded) {
        let summary = summarize(loaded, settings.train.batch_size)?;
        let text = format!(
            "{name}: {} ({}), {} rows read, {} examples kept; {}\n  labels: {}\n  train {} / validation {} / test {}; \
             {} examples truncated at 512 tokens; cache: {}\n  one training batch: {}",
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
            summary.cache,
            summary.batch_shapes.iter().map(|(n, s)| format!("{n} {s:?}")).collect::<Vec<_>>().join(", ")
        );
        transcript.block(&text);
        summaries.push(summary);
    }
    let data = TaskData { classification: Some(&loaded[0].dataset), ner: Some(&loaded[1].dataset) };
    // With a frozen encoder its outputs are computed once, here: the untrained scores and Task 4 both use them.
    let config = &settings.train;
    let cache = if freezes_encoder(&settings.strategy) && config.feature_cache {
        let mut spinner = ProgressBars::new(!args.quiet);
        spinner.spinner("running the frozen encoder once over every example");
        let cache = FeatureCache::build(model, data, config.batch_size.max(32), config.feature_cache_half)?;
        spinner.clear();
        let built = cache.report();
        let text = format!(
            "Encoder features of every train, validation and test example computed once in {:.1} s (classification {}, NER {}); \
             the scores below and Task 4's {} training use them",
            built.seconds,
            trainer::features::describe(built.classification),
            trainer::features::describe(built.ner),
            settings.strategy
        );
        transcript.line(&format!("{text}."));
        Some(cache)
    } else {
        None
    };
    transcript.line("The untrained model (pretrained encoder, random heads) on the test sets:");
    let untrained = evaluate(model, data, Split::Test, 32, cache.as_ref())?;
    transcript.block(&evaluation_text(&untrained));
    let mut summaries = summaries.into_iter();
    let (Some(classification), Some(ner)) = (summaries.next(), summaries.next()) else { bail!("missing summary") };
    let feature_cache = cache.as_ref().map(|c| c.report().clone());
    let seconds = started.elapsed().as_secs_f64();
    Ok((Task2 { classification, ner, feature_cache, untrained, seconds }, cache))
}

/// Trains and scores; in a data-parallel run, as one rank of `group`, with the run directory (records, plots,
/// checkpoint) and progress bars on rank 0 only (`run_dir` is `None` on the others).
#[allow(clippy::too_many_arguments)]
pub(super) fn task4(
    args: &ReproduceArgs,
    settings: Settings,
    model: &MultiTaskModel,
    data: TaskData<'_>,
    cache: Option<FeatureCache>,
    run_dir: Option<&Path>,
    group: Option<&ProcessGroup>,
    transcript: &mut Transcript,
) -> Result<Task4> {
    let started = Instant::now();
    let mut run = run_dir.map(RunDirectory::create).transpose()?;
    let mut progress = ProgressBars::new(!args.quiet && run_dir.is_some());
    let outcome = {
        let mut observers: Vec<&mut dyn trainer::Observer> = vec![&mut progress];
        if let Some(run) = &mut run {
            observers.push(run);
        }
        let mut observers = Fanout(observers);
        let (strategy, config) = (&settings.strategy, &settings.train);
        match group {
            Some(group) => train_and_evaluate_in_group(model, strategy, data, config, cache, &mut observers, group)?,
            None => train_and_evaluate(model, strategy, data, config, cache, &mut observers)?,
        }
    };
    progress.clear();
    if let Some(cache) = &outcome.feature_cache {
        transcript.line(&format!(
            "Heads trained on the encoder features cached in Task 2 ({:.1} s; classification {}, NER {})",
            cache.seconds,
            trainer::features::describe(cache.classification),
            trainer::features::describe(cache.ner)
        ));
    }
    transcript.block(&epoch_lines(&outcome));
    let phases = phase_lines(&outcome);
    if !phases.is_empty() {
        transcript.line(&format!("{phases}\n\nSelection: {}.", outcome.selection));
    }
    transcript.line("Metrics before training:");
    transcript.block(&evaluation_text(&outcome.before));
    transcript.line("Metrics after training:");
    transcript.block(&evaluation_text(&outcome.after));
    let (Some(run_dir), Some(run)) = (run_dir, run) else {
        let seconds = started.elapsed().as_secs_f64();
        return Ok(Task4 { settings, outcome, checkpoint: String::new(), seconds });
    };
    let checkpoint = run_dir.join("checkpoint");
    model.save(&checkpoint, &args.model.model, Some(settings.strategy))?;
    run.finish(&outcome)?;
    transcript.line(&format!(
        "Training took {:.1} s ({} values trained); evaluation {:.1} s before, {:.1} s after. Intervals are 95% \
         percentile-bootstrap intervals over the test examples (sentences for NER). Plots: `loss.svg`, \
         `scores.svg`, `confusion_matrix.svg`. Checkpoint: `checkpoint/`.",
        outcome.training_seconds, outcome.trainable_parameters, outcome.before.seconds, outcome.after.seconds,
    ));
    let seconds = started.elapsed().as_secs_f64();
    Ok(Task4 { settings, outcome, checkpoint: checkpoint.display().to_string(), seconds })
}

/// One line per epoch: loss, time, validation scores.
pub(super) fn epoch_lines(outcome: &TrainOutcome) -> String {
    outcome.epochs.iter().map(epoch_line).collect::<Vec<_>>().join("\n")
}

/// Which epoch each phase kept, when there was validation.
pub(super) fn phase_lines(outcome: &TrainOutcome) -> String {
    outcome
        .phases
        .iter()
        .filter_map(|phase| {
            phase.best_metric.map(|metric| {
                format!(
                    "{}: kept epoch {} of {} (validation metric {:.4}){}",
                    phase.phase,
                    phase.kept_epoch,
                    phase.epochs_run,
                    metric,
                    if phase.stopped_early { ", stopped early" } else { "" }
                )
            })
        })
        .collect::<Vec<_>>()
        .join("\n")
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
