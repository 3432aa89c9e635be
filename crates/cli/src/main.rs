//! `bertmt`: BERT sentence embeddings and the multi-task notebook, from the command line.

mod device;
mod embed;
mod predict;
mod report;
mod reproduce;
mod shards;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "bertmt", version, about = "BERT sentence embeddings and multi-task fine-tuning on libtorch")]
struct Cli {
    /// Show progress logs (-v: info, -vv: debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// Options shared by every command that loads a model.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// A Hugging Face BERT directory (config.json, model.safetensors or pytorch_model.bin, tokenizer.json or vocab.txt).
    #[arg(long, env = "BERTMT_MODEL", default_value = "data/models/all-MiniLM-L6-v2")]
    pub model: PathBuf,
    /// `cpu`, `cuda`, `cuda:N`, or `auto` (CUDA when available).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Compute precision: `auto` (bf16 where the device computes it natively: CUDA, or a CPU with avx512_bf16;
    /// f32 elsewhere), `f32` or `bf16`. Weights stay f32.
    #[arg(long, default_value = "auto")]
    pub precision: encoder::Precision,
}

#[derive(Subcommand)]
enum Command {
    /// Sentence embeddings and their cosine-similarity matrix.
    Embed(embed::EmbedArgs),
    /// Rerun the notebook: the encoder against the reference (Task 1), data and the two-headed model (Task 2),
    /// freezing strategies (Task 3), training with scores before and after (Task 4).
    Reproduce(Box<reproduce::ReproduceArgs>),
    /// Sentence class and named entities of texts, from a trained checkpoint.
    Predict(predict::PredictArgs),
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
        Command::Reproduce(args) => reproduce::run(&args),
        Command::Predict(args) => predict::run(&args),
    };
    if let Err(error) = result {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
