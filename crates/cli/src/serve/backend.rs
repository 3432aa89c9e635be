//! The model behind the server, on its own thread: requests queue, and the thread forms batches of them (up to a
//! token budget and a request count), runs the model once per batch, and answers each request.

use super::metrics::Metrics;
use super::ApiError;
use encoder::{Embedder, Pooling};
use heads::{PredictOptions, Prediction, Predictor};
use std::sync::Arc;
use std::time::Instant;
use tch::{Device, Kind, Tensor};
use tokio::sync::{mpsc, oneshot};

/// What the server runs: a model directory's embedder, or a trained checkpoint (which embeds with its fine-tuned
/// encoder and its head's pooling, and predicts).
pub enum Backend {
    /// Embeddings as the model defines them (its own sentence-transformers settings), before normalization (each
    /// request asks for it or not).
    Embeddings {
        /// The embedder, with normalization turned off.
        embedder: Embedder,
        /// Whether the model's own settings normalize (the default of the OpenAI route).
        normalizes: bool,
    },
    /// A trained checkpoint.
    Checkpoint(Predictor),
}

/// One request's work.
pub enum Work {
    /// Vectors of these texts, normalized or not.
    Embed {
        /// The texts.
        texts: Vec<String>,
        /// Scale to unit length.
        normalize: bool,
    },
    /// Predictions for these texts.
    Predict {
        /// The texts.
        texts: Vec<String>,
    },
}

/// What a request gets back.
pub enum Answer {
    /// One vector per text.
    Vectors(Vec<Vec<f32>>),
    /// One prediction per text.
    Predictions(Vec<Prediction>),
}

/// A queued request.
pub struct Job {
    /// Its work.
    pub work: Work,
    /// Its tokens (the batching budget counts them).
    pub tokens: usize,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Result<Answer, ApiError>>,
}

/// How the model thread forms batches.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Tokens in one batch at most (a request larger than that runs alone).
    pub max_tokens: usize,
    /// Requests in one batch at most.
    pub max_requests: usize,
    /// Texts per forward pass.
    pub forward_batch: usize,
}

impl Backend {
    /// Embeds `texts` (unnormalized): `[texts, dimension]`.
    fn embed(&self, texts: &[&str], batch_size: usize) -> Result<Tensor, ApiError> {
        match self {
            Self::Embeddings { embedder, .. } => {
                embedder.embed(texts, batch_size).map(|e| e.vectors).map_err(|e| ApiError::backend(e.to_string()))
            }
            Self::Checkpoint(predictor) => embed_with_checkpoint(predictor, texts, batch_size),
        }
    }
}

/// Mean (or the head's) pooling of a checkpoint's fine-tuned encoder over `texts`.
fn embed_with_checkpoint(predictor: &Predictor, texts: &[&str], batch_size: usize) -> Result<Tensor, ApiError> {
    let model = predictor.model();
    let tokenizer = predictor.tokenizer();
    let pooling = model.config().pooling;
    let encodings = tokenizer.encode_texts(texts).map_err(|e| ApiError::backend(e.to_string()))?;
    let ids: Vec<&[u32]> = encodings.iter().map(tokenizers::Encoding::get_ids).collect();
    let _guard = tch::no_grad_guard();
    let rows = encoder::run_sorted_batches(&ids, tokenizer.pad_id(), model.device(), batch_size, |input_ids, mask| {
        let hidden = model.encode_t(input_ids, mask, None, false).map_err(|e| ApiError::backend(e.to_string()))?;
        let pooled = encoder::pool(&hidden.to_kind(Kind::Float), mask, pooling).to_device(Device::Cpu);
        Ok::<_, ApiError>((0..pooled.size()[0]).map(|row| pooled.get(row)).collect::<Vec<_>>())
    })?;
    Tensor::f_stack(&rows, 0).map_err(|e| ApiError::backend(e.to_string()))
}

/// Serves jobs until every sender is gone: waits for one, takes what else is queued up to the limits, runs the
/// embedding jobs of the batch in one call and the prediction jobs in another, and answers each.
pub fn serve_jobs(
    backend: Backend,
    mut queue: mpsc::Receiver<Job>,
    limits: BatchLimits,
    metrics: Arc<Metrics>,
    predict_options: PredictOptions,
) {
    let mut held: Option<Job> = None;
    loop {
        let first = match held.take() {
            Some(job) => job,
            None => match queue.blocking_recv() {
                Some(job) => job,
                None => return,
            },
        };
        metrics.dequeued();
        let mut tokens = first.tokens;
        let mut jobs = vec![first];
        while jobs.len() < limits.max_requests {
            match queue.try_recv() {
                Ok(job) => {
                    metrics.dequeued();
                    if tokens + job.tokens > limits.max_tokens {
                        held = Some(job);
                        break;
                    }
                    tokens += job.tokens;
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        metrics.batch(jobs.len(), tokens);
        let (embeds, predicts): (Vec<Job>, Vec<Job>) =
            jobs.into_iter().partition(|job| matches!(job.work, Work::Embed { .. }));
        run_embeds(&backend, embeds, limits.forward_batch);
        run_predicts(&backend, predicts, &predict_options);
        tracing::debug!(seconds = started.elapsed().as_secs_f64(), tokens, "batch served");
    }
}

fn run_embeds(backend: &Backend, jobs: Vec<Job>, forward_batch: usize) {
    if jobs.is_empty() {
        return;
    }
    let texts: Vec<&str> = jobs
        .iter()
        .flat_map(|job| match &job.work {
            Work::Embed { texts, .. } => texts.iter().map(String::as_str).collect::<Vec<_>>(),
            Work::Predict { .. } => Vec::new(),
        })
        .collect();
    // The whole batch's vectors in two calls (normalized only when a request asks for it), then each request takes
    // its rows: a few tensor operations per request cost as much as a tenth of the batch's forward pass.
    let vectors = backend.embed(&texts, forward_batch).and_then(|vectors| {
        let normalized = jobs
            .iter()
            .any(|job| matches!(job.work, Work::Embed { normalize: true, .. }))
            .then(|| rows_of(&encoder::l2_normalize(&vectors)))
            .transpose()?;
        let plain = rows_of(&vectors)?;
        if plain.len() != texts.len() {
            return Err(ApiError::backend(format!("{} vectors for {} texts", plain.len(), texts.len())));
        }
        Ok((plain, normalized))
    });
    match vectors {
        Ok((plain, normalized)) => {
            let (mut plain, mut normalized) = (plain.into_iter(), normalized.map(Vec::into_iter));
            for job in jobs {
                let Work::Embed { texts, normalize } = &job.work else { continue };
                let count = texts.len();
                // Both iterators advance together, so that each request takes its own rows from either.
                let plain_rows: Vec<Vec<f32>> = plain.by_ref().take(count).collect();
                let normalized_rows: Option<Vec<Vec<f32>>> =
                    normalized.as_mut().map(|rows| rows.by_ref().take(count).collect());
                let rows = match (normalize, normalized_rows) {
                    (true, Some(rows)) => rows,
                    _ => plain_rows,
                };
                let _ = job.reply.send(Ok(Answer::Vectors(rows)));
            }
        }
        Err(error) => {
            for job in jobs {
                let _ = job.reply.send(Err(error.clone()));
            }
        }
    }
}

/// `[texts, dimension]` vectors as rows of f32.
fn rows_of(vectors: &Tensor) -> Result<Vec<Vec<f32>>, ApiError> {
    let dimension = usize::try_from(vectors.size()[1]).map_err(|e| ApiError::backend(e.to_string()))?;
    let values = Vec::<f32>::try_from(vectors.to_kind(Kind::Float).to_device(Device::Cpu).flatten(0, -1))
        .map_err(|e| ApiError::backend(e.to_string()))?;
    Ok(values.chunks(dimension.max(1)).map(<[f32]>::to_vec).collect())
}

fn run_predicts(backend: &Backend, jobs: Vec<Job>, options: &PredictOptions) {
    if jobs.is_empty() {
        return;
    }
    let Backend::Checkpoint(predictor) = backend else {
        for job in jobs {
            let _ = job.reply.send(Err(ApiError::validation(
                "this server runs a model without task heads: serve a \
                trained checkpoint (`bertmt serve --checkpoint runs/NAME`) to predict",
            )));
        }
        return;
    };
    let texts: Vec<&str> = jobs
        .iter()
        .flat_map(|job| match &job.work {
            Work::Predict { texts } => texts.iter().map(String::as_str).collect::<Vec<_>>(),
            Work::Embed { .. } => Vec::new(),
        })
        .collect();
    match predictor.predict(&texts, options) {
        Ok(predictions) => {
            let mut predictions = predictions.into_iter();
            for job in jobs {
                let Work::Predict { texts } = &job.work else { continue };
                let part: Vec<Prediction> = predictions.by_ref().take(texts.len()).collect();
                let _ = job.reply.send(Ok(Answer::Predictions(part)));
            }
        }
        Err(error) => {
            let error = ApiError::backend(error.to_string());
            for job in jobs {
                let _ = job.reply.send(Err(error.clone()));
            }
        }
    }
}

/// What `/info` says about the backend.
pub fn describe(backend: &Backend) -> (i64, usize, Vec<Pooling>, bool) {
    match backend {
        Backend::Embeddings { embedder, normalizes } => {
            let info = embedder.info();
            (info.dimension, info.max_length, info.pooling.clone(), *normalizes)
        }
        Backend::Checkpoint(predictor) => {
            let config = predictor.model().config();
            (config.encoder.hidden_size, predictor.tokenizer().max_length(), vec![config.pooling], false)
        }
    }
}
