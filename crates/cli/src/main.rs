//! `bertmt`: BERT sentence embeddings, training on your own data, and the multi-task notebook, from the command
//! line.

mod args;
mod device;
mod embed;
mod evaluate;
mod predict;
mod report;
mod reproduce;
mod run;
mod serve;
mod shards;
mod train;

use anyhow::Result;
use clap::{Parser, Subcommand};

pub use args::ModelArgs;

#[derive(Parser)]
#[command(name = "bertmt", version, about = "BERT sentence embeddings and multi-task fine-tuning on libtorch")]
struct Cli {
    /// Show progress logs (-v: info, -vv: debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sentence embeddings and their cosine-similarity matrix.
    Embed(embed::EmbedArgs),
    /// Train on your own data: a classifier, a tagger (NER) or both on one encoder, with your own
    /// train/validation/test files; resumable (`--resume`), rerunnable (`--config`).
    Train(Box<train::TrainArgs>),
    /// Score a trained checkpoint on labelled files, as a run scores its test split.
    Evaluate(evaluate::EvaluateArgs),
    /// Sentence class and named entities of texts, from a trained checkpoint.
    Predict(predict::PredictArgs),
    /// Serve embeddings (TEI's `/embed`, OpenAI's `/v1/embeddings`) and, from a trained checkpoint, predictions
    /// (`/predict`) over HTTP, with dynamic batching and Prometheus `/metrics`.
    Serve(Box<serve::ServeArgs>),
    /// Rerun the notebook: the encoder against the reference (Task 1), data and the two-headed model (Task 2),
    /// freezing strategies (Task 3), training with scores before and after (Task 4).
    Reproduce(Box<reproduce::ReproduceArgs>),
}

fn main() {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let result: Result<()> = match cli.command {
        Command::Embed(args) => embed::run(&args),
        Command::Train(args) => train::run(&args),
        Command::Evaluate(args) => evaluate::run(&args),
        Command::Reproduce(args) => reproduce::run(&args),
        Command::Predict(args) => predict::run(&args),
        Command::Serve(args) => serve::run(&args),
    };
    if let Err(error) = result {
        // A run stopped on request (Ctrl-C) saved its state: it says how to continue, and exits as interrupted.
        if let Some(stopped) = error.downcast_ref::<run::Interrupted>() {
            eprintln!("{stopped}");
            std::process::exit(130);
        }
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
