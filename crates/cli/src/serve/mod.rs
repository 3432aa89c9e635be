//! `bertmt serve`: embeddings (and, from a trained checkpoint, predictions) over HTTP, with the request and response
//! shapes clients already speak: Hugging Face TEI's `/embed`, OpenAI's `/v1/embeddings`, plus `/predict`, `/health`,
//! `/info` and Prometheus `/metrics`.
//!
//! Requests join a bounded queue; one model thread forms batches of them (a token budget and a request count), runs
//! the model once per batch and answers each (`backend.rs`). A full queue answers 429 with `Retry-After`, so memory
//! stays bounded. Errors are JSON `{"error", "error_type"}`, as TEI's. SIGTERM or Ctrl-C stops accepting requests,
//! answers those in flight, and exits 0.

mod backend;
mod metrics;

use crate::device;
use anyhow::{bail, Context, Result};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use backend::{Answer, Backend, BatchLimits, Job, Work};
use encoder::{BertTokenizer, EmbedOverrides, Embedder};
use heads::{Aggregation, PredictOptions, Predictor};
use metrics::Metrics;
use serde::Deserialize;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Arguments of `serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// A Hugging Face BERT directory to serve embeddings of (as its sentence-transformers files define them)
    /// [default: $BERTMT_MODEL, else data/models/all-MiniLM-L6-v2].
    #[arg(long, conflicts_with = "checkpoint")]
    pub model: Option<PathBuf>,
    /// A trained checkpoint (or a run directory holding `checkpoint/`) instead: embeddings from its fine-tuned
    /// encoder, and `/predict`.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// `cpu`, `cuda`, `cuda:N`, or `auto` (CUDA when available).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Compute precision: `auto` (bf16 where the device computes it natively), `f32` or `bf16`.
    #[arg(long, default_value = "auto")]
    pub precision: encoder::Precision,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Tokens in one batch the model runs at most (a longer request runs alone).
    #[arg(long, default_value_t = 16384)]
    pub max_batch_tokens: usize,
    /// Requests in one batch the model runs at most.
    #[arg(long, default_value_t = 32)]
    pub max_batch_requests: usize,
    /// Texts in one forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Requests waiting for the model at most; more are answered 429 with `Retry-After`.
    #[arg(long, default_value_t = 256)]
    pub max_queue: usize,
    /// Texts in one request at most (more: 413).
    #[arg(long, default_value_t = 64)]
    pub max_client_batch_size: usize,
    /// Bytes in one request body at most (more: 413).
    #[arg(long, default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Truncate texts longer than the model when a request does not say (`truncate`); otherwise they are refused
    /// with 413, as TEI does.
    #[arg(long)]
    pub auto_truncate: bool,
    /// `/predict`: how a word's tag comes from its sub-tokens (first, average, max).
    #[arg(long, default_value = "first")]
    pub aggregation: Aggregation,
}

/// An error answer: its status, its message and its kind (TEI's `error_type`).
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), kind }
    }

    /// A request that cannot be served as given (422).
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation", message)
    }

    /// A request too large (413).
    fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "Validation", message)
    }

    /// The model failed (500).
    pub fn backend(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Backend", message)
    }

    fn from_rejection(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let kind = if status == StatusCode::PAYLOAD_TOO_LARGE { "Validation" } else { "Deserialize" };
        Self::new(status, kind, rejection.body_text())
    }
}

impl From<encoder::EncoderError> for ApiError {
    fn from(error: encoder::EncoderError) -> Self {
        Self::backend(error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.message, "error_type": self.kind }));
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            (self.status, [(header::RETRY_AFTER, "1")], body).into_response()
        } else {
            (self.status, body).into_response()
        }
    }
}

/// One text or several, as TEI and OpenAI accept them: a string or a list of strings (read from the JSON value, so
/// that any other shape gets a message saying what was expected).
#[derive(Debug, Deserialize)]
#[serde(transparent)]
struct Inputs(serde_json::Value);

impl Inputs {
    fn texts(self, field: &str) -> Result<Vec<String>, ApiError> {
        let wrong =
            |found: &str| ApiError::validation(format!("`{field}` must be a string or a list of strings, not {found}"));
        match self.0 {
            serde_json::Value::String(text) => Ok(vec![text]),
            serde_json::Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    serde_json::Value::String(text) => Ok(text),
                    serde_json::Value::Number(_) => Err(wrong("a list of numbers (token ids are not accepted)")),
                    serde_json::Value::Array(_) => Err(wrong(
                        "a list of lists (token ids, as LangChain's OpenAIEmbeddings sends unless given \
                         check_embedding_ctx_length=False: this server reads text and tokenizes it itself)",
                    )),
                    _ => Err(wrong("a list holding something else")),
                })
                .collect(),
            serde_json::Value::Number(_) => Err(wrong("a number")),
            serde_json::Value::Null => Err(wrong("null")),
            _ => Err(wrong("an object or a boolean")),
        }
    }
}

#[derive(Debug, Deserialize)]
struct EmbedRequest {
    inputs: Inputs,
    #[serde(default = "yes")]
    normalize: bool,
    #[serde(default)]
    truncate: Option<bool>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
struct OpenAiRequest {
    input: Inputs,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    encoding_format: Option<EncodingFormat>,
    /// OpenAI's way to ask for shortened vectors: accepted when it is the model's dimension.
    #[serde(default)]
    dimensions: Option<i64>,
}

/// How `/v1/embeddings` writes each vector: JSON numbers, or (what the official `openai` clients ask for unless told
/// otherwise) base64 of the little-endian f32 bytes.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum EncodingFormat {
    #[default]
    Float,
    Base64,
}

/// A vector as OpenAI's `encoding_format` asks for it.
fn encode_vector(vector: Vec<f32>, format: EncodingFormat) -> serde_json::Value {
    match format {
        EncodingFormat::Float => json!(vector),
        EncodingFormat::Base64 => {
            use base64::Engine as _;
            let bytes: Vec<u8> = vector.iter().flat_map(|value| value.to_le_bytes()).collect();
            json!(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
    }
}

#[derive(Debug, Deserialize)]
struct PredictRequest {
    inputs: Inputs,
    #[serde(default)]
    truncate: Option<bool>,
}

/// What the handlers share.
struct AppState {
    queue: mpsc::Sender<Job>,
    tokenizer: BertTokenizer,
    metrics: Arc<Metrics>,
    info: serde_json::Value,
    max_client_batch_size: usize,
    auto_truncate: bool,
    normalizes: bool,
    model_name: String,
}

impl AppState {
    /// The texts of a request, checked: at least one, at most `max_client_batch_size`, each within the model's length
    /// unless truncated. Returns them with the tokens they will take.
    fn texts(&self, inputs: Inputs, field: &str, truncate: Option<bool>) -> Result<(Vec<String>, usize), ApiError> {
        let texts = inputs.texts(field)?;
        if texts.is_empty() {
            return Err(ApiError::validation(format!("`{field}` cannot be empty")));
        }
        if texts.len() > self.max_client_batch_size {
            return Err(ApiError::too_large(format!(
                "batch size {} > maximum allowed batch size {}",
                texts.len(),
                self.max_client_batch_size
            )));
        }
        let truncate = truncate.unwrap_or(self.auto_truncate);
        let max_length = self.tokenizer.max_length();
        let mut tokens = 0;
        for text in &texts {
            let count = self.tokenizer.count_tokens(text).map_err(|e| ApiError::validation(e.to_string()))?;
            if count > max_length && !truncate {
                return Err(ApiError::too_large(format!(
                    "Input validation error: `inputs` must have less than {max_length} tokens. Given: {count} (send \
                     \"truncate\": true to cut it)"
                )));
            }
            tokens += count.min(max_length);
        }
        Ok((texts, tokens))
    }

    /// Queues `work` and waits for its answer; a full queue is 429.
    async fn submit(&self, work: Work, tokens: usize) -> Result<Answer, ApiError> {
        let (reply, answer) = oneshot::channel();
        match self.queue.try_send(Job { work, tokens, reply }) {
            Ok(()) => self.metrics.enqueued(),
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Overloaded",
                    "the model's queue is full: retry after a second",
                ))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Unhealthy", "the model thread has stopped"))
            }
        }
        answer.await.map_err(|_| ApiError::backend("the model thread dropped the request"))?
    }
}

/// Counts and times an answer.
fn respond(state: &AppState, route: &str, started: Instant, result: Result<Response, ApiError>) -> Response {
    let response = result.unwrap_or_else(IntoResponse::into_response);
    state.metrics.answered(route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

async fn embed(State(state): State<Arc<AppState>>, payload: Result<Json<EmbedRequest>, JsonRejection>) -> Response {
    let started = Instant::now();
    let result = async {
        let Json(request) = payload.map_err(ApiError::from_rejection)?;
        let (texts, tokens) = state.texts(request.inputs, "inputs", request.truncate)?;
        match state.submit(Work::Embed { texts, normalize: request.normalize }, tokens).await? {
            Answer::Vectors(vectors) => Ok(Json(vectors).into_response()),
            Answer::Predictions(_) => Err(ApiError::backend("the model answered with predictions")),
        }
    }
    .await;
    respond(&state, "/embed", started, result)
}

async fn openai_embeddings(
    State(state): State<Arc<AppState>>,
    payload: Result<Json<OpenAiRequest>, JsonRejection>,
) -> Response {
    let started = Instant::now();
    let result = async {
        let Json(request) = payload.map_err(ApiError::from_rejection)?;
        let dimension = state.info["dimension"].as_i64().unwrap_or_default();
        if let Some(dimensions) = request.dimensions.filter(|&d| d != dimension) {
            return Err(ApiError::validation(format!(
                "dimensions is {dimensions}, but this model gives vectors of {dimension} values: leave it out or ask \
                 for {dimension}"
            )));
        }
        let (texts, tokens) = state.texts(request.input, "input", None)?;
        match state.submit(Work::Embed { texts, normalize: state.normalizes }, tokens).await? {
            Answer::Vectors(vectors) => {
                let data: Vec<serde_json::Value> = vectors
                    .into_iter()
                    .enumerate()
                    .map(|(index, embedding)| {
                        let embedding = encode_vector(embedding, request.encoding_format.unwrap_or_default());
                        json!({ "object": "embedding", "embedding": embedding, "index": index })
                    })
                    .collect();
                let model = request.model.unwrap_or_else(|| state.model_name.clone());
                Ok(Json(json!({
                    "object": "list",
                    "data": data,
                    "model": model,
                    "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
                }))
                .into_response())
            }
            Answer::Predictions(_) => Err(ApiError::backend("the model answered with predictions")),
        }
    }
    .await;
    respond(&state, "/v1/embeddings", started, result)
}

async fn predict(State(state): State<Arc<AppState>>, payload: Result<Json<PredictRequest>, JsonRejection>) -> Response {
    let started = Instant::now();
    let result = async {
        let Json(request) = payload.map_err(ApiError::from_rejection)?;
        let (texts, tokens) = state.texts(request.inputs, "inputs", request.truncate.or(Some(true)))?;
        match state.submit(Work::Predict { texts }, tokens).await? {
            Answer::Predictions(predictions) => Ok(Json(predictions).into_response()),
            Answer::Vectors(_) => Err(ApiError::backend("the model answered with vectors")),
        }
    }
    .await;
    respond(&state, "/predict", started, result)
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    let started = Instant::now();
    let result = if state.queue.is_closed() {
        Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Unhealthy", "the model thread has stopped"))
    } else {
        Ok(StatusCode::OK.into_response())
    };
    respond(&state, "/health", started, result)
}

async fn info(State(state): State<Arc<AppState>>) -> Response {
    let started = Instant::now();
    respond(&state, "/info", started, Ok(Json(state.info.clone()).into_response()))
}

async fn metrics_route(State(state): State<Arc<AppState>>) -> Response {
    let text = state.metrics.render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

async fn not_found() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        "no such route: /health, /info, /metrics, /embed, /v1/embeddings, /predict",
    )
    .into_response()
}

/// The routes over `state`, with the body limit.
fn router(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/info", get(info))
        .route("/metrics", get(metrics_route))
        .route("/embed", post(embed))
        .route("/v1/embeddings", post(openai_embeddings))
        .route("/predict", post(predict))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// Resolves when SIGTERM or Ctrl-C arrives.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    eprintln!("shutting down: answering the requests in flight");
}

/// What the server says about the model it loaded.
struct Loaded {
    tokenizer: BertTokenizer,
    precision: encoder::ResolvedPrecision,
    model_name: String,
    kind: &'static str,
    dimension: i64,
    max_length: usize,
    pooling: Vec<encoder::Pooling>,
    normalizes: bool,
    tasks: Vec<String>,
}

/// Loads the checkpoint or the model directory `args` names, at its precision.
fn load_backend(args: &ServeArgs, device: tch::Device) -> Result<(Backend, Loaded)> {
    let (backend, tokenizer, precision, model_name, kind) = match &args.checkpoint {
        Some(path) => {
            let dir = crate::predict::resolve_checkpoint(path)?;
            let predictor = Predictor::from_checkpoint(&dir, device)
                .with_context(|| format!("cannot load the checkpoint at {}", dir.display()))?;
            let (predictor, precision) = predictor.with_precision(args.precision)?;
            let tokenizer = predictor.tokenizer().clone();
            (Backend::Checkpoint(predictor), tokenizer, precision, dir.display().to_string(), "checkpoint")
        }
        None => {
            let model = args.model.clone().unwrap_or_else(|| {
                std::env::var_os("BERTMT_MODEL").map_or_else(|| "data/models/all-MiniLM-L6-v2".into(), PathBuf::from)
            });
            // The server normalizes per request (TEI's `normalize`), so the embedder gives the vectors before it.
            let normalizes = encoder::SentenceTransformersConfig::read(&model)
                .with_context(|| format!("cannot read the model at {}", model.display()))?
                .is_some_and(|config| config.normalizes());
            let overrides = EmbedOverrides { normalize: Some(false), ..EmbedOverrides::default() };
            let embedder = Embedder::from_dir(&model, device, &overrides)
                .with_context(|| format!("cannot load the model at {}", model.display()))?;
            let (embedder, precision) = embedder.with_precision(args.precision)?;
            let tokenizer = embedder.encoder().tokenizer().clone();
            (
                Backend::Embeddings { embedder, normalizes },
                tokenizer,
                precision,
                model.display().to_string(),
                "embedding",
            )
        }
    };
    let (dimension, max_length, pooling, normalizes) = backend::describe(&backend);
    let tasks = match &backend {
        Backend::Checkpoint(predictor) => predictor.model().tasks().iter().map(ToString::to_string).collect(),
        Backend::Embeddings { .. } => Vec::new(),
    };
    let loaded = Loaded { tokenizer, precision, model_name, kind, dimension, max_length, pooling, normalizes, tasks };
    Ok((backend, loaded))
}

pub fn run(args: &ServeArgs) -> Result<()> {
    for (name, value) in [
        ("--max-batch-tokens", args.max_batch_tokens),
        ("--max-batch-requests", args.max_batch_requests),
        ("--batch-size", args.batch_size),
        ("--max-queue", args.max_queue),
        ("--max-client-batch-size", args.max_client_batch_size),
        ("--max-body-bytes", args.max_body_bytes),
    ] {
        if value == 0 {
            bail!("{name} must be at least 1");
        }
    }
    let device = device::parse(&args.device)?;
    let metrics = Arc::new(Metrics::new());
    let (queue, jobs) = mpsc::channel(args.max_queue);
    let limits = BatchLimits {
        max_tokens: args.max_batch_tokens,
        max_requests: args.max_batch_requests,
        forward_batch: args.batch_size,
    };
    let predict_options = PredictOptions { batch_size: args.batch_size, aggregation: args.aggregation, stride: None };
    let model_metrics = Arc::clone(&metrics);
    // The model is loaded on the thread that runs it: libtorch's OpenMP pool belongs to the thread that computes,
    // and with a second pool (the loading thread's) libgomp counts more threads than cores and stops spin-waiting,
    // so every operation of every batch woke sleeping threads (measured under 64 clients: the cores a quarter idle,
    // batches 1.45x their offline time; one client half as fast).
    let (loaded_sender, loaded) = std::sync::mpsc::channel();
    let load_args = args.clone();
    let model_thread = std::thread::Builder::new()
        .name("model".into())
        .spawn(move || match load_backend(&load_args, device) {
            Ok((backend, description)) => {
                let _ = loaded_sender.send(Ok(description));
                backend::serve_jobs(backend, jobs, limits, model_metrics, predict_options);
            }
            Err(error) => {
                let _ = loaded_sender.send(Err(error));
            }
        })
        .context("cannot start the model thread")?;
    let Loaded { tokenizer, precision, model_name, kind, dimension, max_length, pooling, normalizes, tasks } =
        loaded.recv().map_err(|_| anyhow::anyhow!("the model thread stopped while loading the model"))??;
    let info = json!({
        "model_id": model_name,
        "model_type": kind,
        "tasks": tasks,
        "dimension": dimension,
        "max_input_length": max_length,
        "pooling": pooling,
        "normalize": normalizes,
        "precision": precision.precision,
        "device": device::describe(device),
        "max_batch_tokens": args.max_batch_tokens,
        "max_batch_requests": args.max_batch_requests,
        "max_client_batch_size": args.max_client_batch_size,
        "max_queue": args.max_queue,
        "version": env!("CARGO_PKG_VERSION"),
    });
    let state = Arc::new(AppState {
        queue,
        tokenizer,
        metrics,
        info,
        max_client_batch_size: args.max_client_batch_size,
        auto_truncate: args.auto_truncate,
        normalizes,
        model_name: model_name.clone(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    let address = format!("{}:{}", args.host, args.port);
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&address).await.with_context(|| format!("cannot listen on {address}"))?;
        let local = listener.local_addr()?;
        println!(
            "serving {model_name} ({kind}, {dimension} values, precision {}) on http://{local}: /health /info /metrics /embed /v1/embeddings{}",
            precision.precision,
            if kind == "checkpoint" { " /predict" } else { "" }
        );
        axum::serve(listener, router(state, args.max_body_bytes))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("the server stopped")?;
        anyhow::Ok(())
    })?;
    // Every handler is done and the queue's senders are gone: the model thread ends once it has answered all.
    model_thread.join().map_err(|_| anyhow::anyhow!("the model thread panicked"))?;
    println!("stopped");
    Ok(())
}
