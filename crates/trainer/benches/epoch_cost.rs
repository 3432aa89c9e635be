//! Training cost per epoch on real IMDB reviews (classification only), one configuration per process, one JSON line.
//!
//! ```text
//! cargo bench -p trainer --bench epoch_cost -- --strategy heads_only|output_layers:3|all --cache on|off
//!     --batch 8 [--epochs 3] [--reviews 2000] [--test 32] [--max-length 512] [--data-dir ../shared/data]
//!     [--model DIR] [--threads N] [--precision f32|bf16|auto|f32,bf16] [--attention-dropout P]
//!     [--turn BATCHES] [--optimizer adam|adamw] [--dump-batches FILE]
//! ```
//! Relative paths, in flags and environment variables, are taken from the workspace root (cargo runs a bench in
//! its crate's directory).
//!
//! The data: the first `--reviews` reviews of `classification_dataset.xlsx` (or `imdb_50k.csv.gz`), cleaned with
//! the notebook's `clean_text` and tokenized with the model's tokenizer at `--max-length`, are the training split;
//! the next `--test` reviews the test split (scored before and after training, not timed as epochs). The model is
//! `heads::MultiTaskModel::from_pretrained` and the loop `trainer::train_and_evaluate` in separate mode (only the
//! classification task has data); epoch seconds come from `TrainOutcome::epochs`, the one-off encoder pass that
//! fills the feature cache from `TrainOutcome::feature_cache`.
//!
//! Two precisions (`--precision f32,bf16`) train side by side, taking turns: this process trains the first, and a
//! second process of this bench (started with `--second`) the second, each model loaded from the same weights and
//! run on the same batches. Only one of them computes at a time: each hands the other a baton (a line through a
//! pipe) after every `--turn` batches (default 10, in its [`trainer::Observer`]), so both see the same state of the
//! machine, turn by turn, and a VM that speeds up or slows down mid-run moves both alike. Each precision's epoch
//! seconds are the sum of its own steps (the time it held the baton), and every step's seconds are in the output
//! (`step_seconds`), one JSON line per precision, the first's then the second's.
//!
//! The model: `--model`, else `BERTMT_MODEL`, else `data/models/all-MiniLM-L6-v2` under the workspace.
//!
//! `--dump-batches FILE` writes the first epoch's work as JSON for the PyTorch training peer
//! (`xtask/peer/hf_train_peer.py`): every training example's token ids and label, the epoch's batches in the order
//! the loop runs them, and the settings (learning rate, weight decay, dropouts, classes), so the peer trains on the
//! same batches.

use anyhow::{bail, Context, Result};
use datasets::{
    encode_classification, load_classification, pad_id, ClassificationOptions, EncodeOptions, PreparedDataset,
    ProcessedDataset, Target,
};
use heads::{FreezeStrategy, MultiTaskConfig, MultiTaskModel};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;
use tch::Device;
use trainer::{
    epoch_batches, train_and_evaluate, EpochStart, NoObserver, Observer, OptimizerKind, Stage, TaskData, TrainConfig,
    TrainOutcome,
};

struct Args {
    strategy: String,
    cache: bool,
    batch: usize,
    epochs: usize,
    reviews: usize,
    test: usize,
    max_length: usize,
    data_dir: PathBuf,
    model: PathBuf,
    threads: Option<i32>,
    /// One precision, or two that train side by side, taking turns.
    precisions: Vec<encoder::Precision>,
    /// Batches per turn when two precisions take turns.
    turn: usize,
    /// This process is the second of two that take turns (started by the first).
    second: bool,
    attention_dropout: Option<f64>,
    adamw: bool,
    dump_batches: Option<PathBuf>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn parse_args() -> Result<Args> {
    let root = workspace_root();
    let mut args = Args {
        strategy: "heads_only".into(),
        cache: false,
        batch: 8,
        epochs: 3,
        reviews: 2000,
        test: 32,
        max_length: 512,
        data_dir: root.join("../shared/data"),
        model: std::env::var_os("BERTMT_MODEL")
            .map_or_else(|| root.join("data/models/all-MiniLM-L6-v2"), |dir| root.join(dir)),
        threads: None,
        precisions: vec![encoder::Precision::F32],
        turn: 10,
        second: false,
        attention_dropout: None,
        adamw: false,
        dump_batches: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--strategy" => args.strategy = value()?,
            "--cache" => {
                args.cache = match value()?.as_str() {
                    "on" => true,
                    "off" => false,
                    other => bail!("--cache takes on or off, not {other}"),
                }
            }
            "--batch" => args.batch = value()?.parse().context("--batch")?,
            "--epochs" => args.epochs = value()?.parse().context("--epochs")?,
            "--reviews" => args.reviews = value()?.parse().context("--reviews")?,
            "--test" => args.test = value()?.parse().context("--test")?,
            "--max-length" => args.max_length = value()?.parse().context("--max-length")?,
            "--data-dir" => args.data_dir = root.join(value()?),
            "--model" => args.model = root.join(value()?),
            "--threads" => args.threads = Some(value()?.parse().context("--threads")?),
            "--precision" => {
                args.precisions = value()?
                    .split(',')
                    .map(|name| name.parse().map_err(anyhow::Error::msg))
                    .collect::<Result<_>>()
                    .context("--precision")?;
            }
            "--second" => args.second = true,
            "--turn" => args.turn = value()?.parse().context("--turn")?,
            "--attention-dropout" => args.attention_dropout = Some(value()?.parse().context("--attention-dropout")?),
            "--optimizer" => {
                args.adamw = match value()?.as_str() {
                    "adam" => false,
                    "adamw" => true,
                    other => bail!("--optimizer takes adam or adamw, not {other}"),
                }
            }
            "--dump-batches" => args.dump_batches = Some(root.join(value()?)),
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            other => bail!("unknown argument {other}"),
        }
    }
    if args.reviews == 0 || args.test == 0 || args.epochs == 0 || args.turn == 0 {
        bail!("--reviews, --test, --epochs and --turn must be at least 1");
    }
    if args.precisions.len() > 2 || args.precisions.first() == args.precisions.get(1) {
        bail!("--precision takes one precision, or two different ones separated by a comma (f32,bf16)");
    }
    Ok(args)
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(xs[n / 2]),
        _ => Some((xs[n / 2 - 1] + xs[n / 2]) / 2.0),
    }
}

fn round(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// The first `reviews + test` reviews, tokenized, split into the first `reviews` (train) and the rest (test).
fn dataset(args: &Args, tokenizer: &tokenizers::Tokenizer) -> Result<(PreparedDataset, PathBuf)> {
    if !args.data_dir.is_dir() {
        bail!("the data directory {} does not exist (pass --data-dir)", args.data_dir.display());
    }
    let file = ["classification_dataset.xlsx", "imdb_50k.csv.gz"]
        .iter()
        .map(|name| args.data_dir.join(name))
        .find(|path| path.is_file())
        .with_context(|| {
            format!("{} has no classification_dataset.xlsx or imdb_50k.csv.gz", args.data_dir.display())
        })?;
    let loaded = load_classification(&file, &ClassificationOptions::default())
        .with_context(|| format!("cannot read {}", file.display()))?;
    let wanted = args.reviews + args.test;
    if loaded.examples.len() < wanted {
        bail!("{} has {} reviews, fewer than the {wanted} asked for", file.display(), loaded.examples.len());
    }
    let options = EncodeOptions { max_length: args.max_length, ..EncodeOptions::default() };
    let (examples, stats) = encode_classification(tokenizer, &loaded.examples[..wanted], &options)?;
    let data = ProcessedDataset::new(examples, loaded.label_names, pad_id(tokenizer)?).with_stats(stats);
    let prepared =
        PreparedDataset::from_split(data, (0..args.reviews).collect(), Vec::new(), (args.reviews..wanted).collect())?;
    Ok((prepared, file))
}

/// The first epoch's batches, examples and settings, for the PyTorch peer.
fn dump_batches(
    path: &Path,
    dataset: &PreparedDataset,
    config: &TrainConfig,
    model: &MultiTaskModel,
    optimizer: OptimizerKind,
) -> Result<()> {
    let batches = epoch_batches(config, trainer::Task::Classification, dataset, 1)?;
    let mut examples = Vec::with_capacity(dataset.train().len());
    let mut labels = Vec::with_capacity(dataset.train().len());
    // Indices into the dump's own example list.
    let mut position = std::collections::HashMap::with_capacity(dataset.train().len());
    for &index in dataset.train() {
        let example = &dataset.examples()[index];
        let Target::Class(label) = example.target else { bail!("example {index} is not a classification example") };
        position.insert(index, examples.len());
        examples.push(&example.input_ids);
        labels.push(label);
    }
    let batches: Vec<Vec<usize>> = batches.iter().map(|batch| batch.iter().map(|i| position[i]).collect()).collect();
    let encoder = &model.config().encoder;
    let weight_decay = match optimizer {
        OptimizerKind::Adam { weight_decay } | OptimizerKind::AdamW { weight_decay } => weight_decay,
    };
    let dump = json!({
        "examples": examples,
        "labels": labels,
        "batches": batches,
        "pad_id": dataset.data().pad_id(),
        "classes": dataset.label_names().len(),
        "learning_rate": config.learning_rate,
        "optimizer": if matches!(optimizer, OptimizerKind::AdamW { .. }) { "adamw" } else { "adam" },
        "weight_decay": weight_decay,
        "attention_dropout": encoder.attention_probs_dropout_prob,
        "hidden_dropout": encoder.hidden_dropout_prob,
        "head_dropout": model.config().head_dropout,
        "pooling": model.config().pooling.to_string(),
        "max_grad_norm": config.max_grad_norm,
    });
    std::fs::write(path, serde_json::to_vec(&dump)?).with_context(|| format!("cannot write {}", path.display()))
}

/// The link between two processes that take turns: the baton is a line `turn` through a pipe, and a process that
/// has finished says `done` (or its pipe closes) and is no longer waited for. The first process writes to the
/// second's stdin and reads its stdout, where the second's own JSON line arrives too.
enum Baton {
    First { to_second: Option<ChildStdin>, from_second: BufReader<ChildStdout>, second_done: bool, lines: Vec<String> },
    Second { first_done: bool },
}

impl Baton {
    /// Blocks until it is this process's turn, or the other has finished.
    fn wait_for_turn(&mut self) {
        match self {
            Self::First { from_second, second_done, lines, .. } => {
                while !*second_done {
                    let mut line = String::new();
                    match from_second.read_line(&mut line) {
                        Ok(0) | Err(_) => *second_done = true,
                        Ok(_) => match line.trim() {
                            "turn" => return,
                            "done" => *second_done = true,
                            other => lines.push(other.to_string()),
                        },
                    }
                }
            }
            Self::Second { first_done } => {
                let mut line = String::new();
                if !*first_done
                    && !matches!(std::io::stdin().read_line(&mut line), Ok(n) if n > 0 && line.trim() == "turn")
                {
                    *first_done = true;
                }
            }
        }
    }

    /// Gives the other process its turn (for good when `finished`).
    fn hand_over(&mut self, finished: bool) {
        let word = if finished { "done" } else { "turn" };
        match self {
            Self::First { to_second, .. } => {
                if let Some(pipe) = to_second {
                    if writeln!(pipe, "{word}").and_then(|()| pipe.flush()).is_err() || finished {
                        *to_second = None;
                    }
                }
            }
            Self::Second { .. } => {
                let mut stdout = std::io::stdout().lock();
                // A closed pipe means the first process is gone: nobody waits for the word.
                let _ = writeln!(stdout, "{word}").and_then(|()| stdout.flush());
            }
        }
    }
}

/// The observer of one of two processes that take turns: it times each batch from the moment the previous one ended
/// (or the turn came), hands the baton over after every `turn` batches, and for good once its epochs are over (or
/// when it is dropped, should the training fail).
struct TakingTurns<'a> {
    baton: &'a mut Baton,
    turn: usize,
    batches: usize,
    finished: bool,
    resumed: Instant,
    /// Seconds of each batch, by epoch.
    step_seconds: Vec<Vec<f64>>,
}

impl<'a> TakingTurns<'a> {
    fn new(baton: &'a mut Baton, turn: usize) -> Self {
        Self { baton, turn, batches: 0, finished: false, resumed: Instant::now(), step_seconds: Vec::new() }
    }

    fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            self.baton.hand_over(true);
        }
    }
}

impl Observer for TakingTurns<'_> {
    fn on_stage(&mut self, stage: Stage) {
        if stage == Stage::EvaluatingAfter {
            self.finish();
        }
    }

    fn on_epoch_start(&mut self, _start: &EpochStart) {
        self.step_seconds.push(Vec::new());
        self.resumed = Instant::now();
    }

    fn on_batch(&mut self, _loss: f64, _examples: usize) {
        let seconds = self.resumed.elapsed().as_secs_f64();
        if let Some(epoch) = self.step_seconds.last_mut() {
            epoch.push(seconds);
        }
        self.batches += 1;
        if self.batches.is_multiple_of(self.turn) {
            self.baton.hand_over(false);
            self.baton.wait_for_turn();
        }
        self.resumed = Instant::now();
    }
}

impl Drop for TakingTurns<'_> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// One precision's training, as measured.
struct Measured {
    precision: encoder::ResolvedPrecision,
    outcome: TrainOutcome,
    total_seconds: f64,
    /// Seconds of each batch by epoch, when the precision took turns with another.
    step_seconds: Option<Vec<Vec<f64>>>,
}

fn main() {
    if let Err(error) = run() {
        eprintln!("trainer epoch_cost bench: {error:#}");
        std::process::exit(2);
    }
}

/// The second precision's process: killed if this one stops early (an error), so it does not go on alone.
struct SecondProcess(std::process::Child);

impl Drop for SecondProcess {
    fn drop(&mut self) {
        // Once it has been waited for, killing it is a no-op.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run() -> Result<()> {
    let args = parse_args()?;
    if let Some(threads) = args.threads {
        tch::set_num_threads(threads);
    }
    let strategy: FreezeStrategy = args.strategy.parse().context("--strategy")?;
    if !args.model.join("config.json").is_file() {
        bail!(
            "no model at {}: run `cargo xtask setup`, or pass --model / set BERTMT_MODEL to a BERT directory",
            args.model.display()
        );
    }
    // Two precisions: this process trains the first and starts a second process for the second. (Two threads of
    // one process would not do: libgomp shortens its workers' spinning when two threads' OpenMP pools outnumber
    // the cores, which made both trainings 5-10% slower in a trial.)
    let mut second = None;
    let mut baton = match (args.precisions.len() > 1, args.second) {
        (false, _) => None,
        (true, true) => Some(Baton::Second { first_done: false }),
        (true, false) => {
            // The same arguments, plus `--second`.
            let exe = std::env::current_exe().context("cannot locate this bench's executable")?;
            let mut child = Command::new(exe)
                .args(std::env::args_os().skip(1))
                .arg("--second")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .context("cannot start the second precision's process")?;
            let (Some(to_second), Some(from_second)) = (child.stdin.take(), child.stdout.take()) else {
                bail!("the second precision's process has no pipes");
            };
            second = Some(SecondProcess(child));
            let from_second = BufReader::new(from_second);
            Some(Baton::First { to_second: Some(to_second), from_second, second_done: false, lines: Vec::new() })
        }
    };
    let requested = if args.second { args.precisions[1] } else { args.precisions[0] };
    let tokenizer_file = args.model.join("tokenizer.json");
    let tokenizer = tokenizers::Tokenizer::from_file(&tokenizer_file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", tokenizer_file.display()))?;
    let (dataset, file) = dataset(&args, &tokenizer)?;
    let mut model_config = MultiTaskConfig::for_pretrained(
        &args.model,
        dataset.label_names().to_vec(),
        // No NER data: the NER head exists but never trains.
        vec!["O".into(), "B-per".into(), "I-per".into()],
        encoder::Pooling::Mean,
    )?;
    if let Some(dropout) = args.attention_dropout {
        model_config.encoder.attention_probs_dropout_prob = dropout;
    }
    let precision = requested.resolve(Device::Cpu);
    let mut model = MultiTaskModel::from_pretrained_config(&args.model, model_config.clone(), Device::Cpu)?;
    model.set_precision(precision.precision)?;
    let optimizer = if args.adamw { OptimizerKind::AdamW { weight_decay: 0.01 } } else { OptimizerKind::default() };
    let config = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch,
        feature_cache: args.cache,
        optimizer,
        ..TrainConfig::default()
    };
    if let Some(path) = args.dump_batches.as_ref().filter(|_| !args.second) {
        dump_batches(path, &dataset, &config, &model, optimizer)?;
    }
    let data = TaskData::new().with(trainer::Task::Classification, &dataset);
    let started = Instant::now();
    let (outcome, step_seconds) = match &mut baton {
        None => (train_and_evaluate(&model, &strategy, data, &config, None, &mut NoObserver)?, None),
        Some(baton) => {
            // Both are loaded: the second hands the first the baton, and the first starts.
            if args.second {
                baton.hand_over(false);
            }
            baton.wait_for_turn();
            let mut turns = TakingTurns::new(baton, args.turn);
            let outcome = train_and_evaluate(&model, &strategy, data, &config, None, &mut turns)?;
            (outcome, Some(std::mem::take(&mut turns.step_seconds)))
        }
    };
    let measured = Measured { precision, outcome, total_seconds: started.elapsed().as_secs_f64(), step_seconds };
    println!("{}", report(&args, &strategy, &dataset, &file, &model_config, &measured));
    // The second process's line follows the first's.
    if let (Some(mut child), Some(Baton::First { from_second, mut lines, .. })) = (second, baton) {
        let rest: Vec<String> = from_second.lines().collect::<std::io::Result<_>>()?;
        let status = child.0.wait()?;
        lines.extend(rest);
        for line in lines.iter().filter(|line| line.starts_with('{')) {
            println!("{line}");
        }
        if !status.success() {
            bail!("the second precision's process exited with {status}");
        }
    }
    Ok(())
}

/// One precision's JSON line.
fn report(
    args: &Args,
    strategy: &FreezeStrategy,
    dataset: &PreparedDataset,
    file: &Path,
    model_config: &MultiTaskConfig,
    m: &Measured,
) -> serde_json::Value {
    let outcome = &m.outcome;
    // Taking turns, an epoch's wall time includes the other precision's steps: its own steps are what it cost.
    let epoch_seconds: Vec<f64> = match &m.step_seconds {
        Some(steps) => steps.iter().map(|epoch| epoch.iter().sum()).collect(),
        None => outcome.epochs.iter().map(|e| e.seconds).collect(),
    };
    let later = median(epoch_seconds.iter().skip(1).copied().collect());
    let first = epoch_seconds.first().copied();
    let per_epoch = later.or(first);
    let train_tokens: usize = dataset.train().iter().map(|&i| dataset.examples()[i].len()).sum();
    let accuracy = |e: &trainer::Evaluation| e.classification.as_ref().map(|c| c.report.accuracy);
    json!({
        "bench": "trainer.epoch",
        "strategy": strategy.to_string(),
        "strategy_arg": args.strategy,
        "feature_cache": args.cache,
        "batch": args.batch,
        "reviews": args.reviews,
        "test": args.test,
        "max_length": args.max_length,
        "train_tokens": train_tokens,
        "truncated_reviews": dataset.data().stats().truncated_examples,
        "file": file.display().to_string(),
        "threads": tch::get_num_threads(),
        "precision": m.precision.precision.to_string(),
        "precision_reason": m.precision.reason,
        "taking_turns": (args.precisions.len() > 1)
            .then(|| args.precisions.iter().map(ToString::to_string).collect::<Vec<_>>()),
        "turn_batches": (args.precisions.len() > 1).then_some(args.turn),
        "attention_dropout": model_config.encoder.attention_probs_dropout_prob,
        "optimizer": if args.adamw { "adamw" } else { "adam" },
        "trainable_parameters": outcome.trainable_parameters,
        "epochs": outcome.epochs.iter().zip(&epoch_seconds).map(|(e, &seconds)| json!({
            "epoch": e.epoch, "seconds": round(seconds), "examples": e.examples, "steps": e.batches,
            "cached": e.cached, "mean_loss": round(e.mean_loss),
            "forward_seconds": round(e.timing.forward), "backward_seconds": round(e.timing.backward),
            "optimizer_seconds": round(e.timing.optimizer),
        })).collect::<Vec<_>>(),
        "step_seconds": m.step_seconds.as_ref().map(|epochs| epochs.iter()
            .map(|steps| steps.iter().map(|&s| round(s)).collect::<Vec<_>>()).collect::<Vec<_>>()),
        "cache_fill_seconds": outcome.feature_cache.as_ref().map(|c| round(c.seconds)),
        "first_epoch_seconds": first.map(round),
        "later_epochs_median_seconds": later.map(round),
        "epoch_seconds": per_epoch.map(round),
        "examples_per_s": per_epoch.map(|s| (args.reviews as f64 / s * 100.0).round() / 100.0),
        "eval_before_seconds": outcome.before.as_ref().map(|before| round(before.seconds)),
        "eval_after_seconds": round(outcome.after.seconds),
        "accuracy_before": outcome.before.as_ref().map(accuracy),
        "accuracy_after": accuracy(&outcome.after),
        "total_seconds": round(m.total_seconds),
    })
}
