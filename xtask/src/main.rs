//! `cargo xtask`: the project runner. It builds without libtorch; it installs what the project needs
//! (libtorch, the default model, the default data) and then drives cargo with the right environment.

mod bench;
mod setup;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Set-up, tests and the main commands of the project")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install libtorch, the default model and the default data (idempotent; fast once done).
    Setup,
    /// Set up, then run the whole test suite (formatting check included).
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Rerun the notebook end to end (release build). `cargo xtask reproduce --help` lists the options.
    #[command(disable_help_flag = true)]
    Reproduce {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Sentence embeddings and their cosine-similarity matrix (release build).
    #[command(disable_help_flag = true)]
    Embed {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Benchmarks (release build): GEMM ceiling, encoder throughput, training cost, data pipeline; `--peer` adds the
    /// Python peers. Writes runs/bench/<UTC stamp>.json and docs/benchmarks.md.
    Bench(bench::BenchArgs),
    /// Sentence class and named entities of texts from a trained checkpoint (release build).
    #[command(disable_help_flag = true)]
    Predict {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

fn main() {
    if let Err(error) = run(Cli::parse()) {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Task::Setup => setup::ensure().map(|_| ()),
        Task::Test { args } => {
            let env = setup::ensure()?;
            cargo(&env, &["fmt", "--all", "--", "--check"], &[])
                .context("formatting check failed: run `cargo fmt --all`")?;
            cargo(&env, &["test", "--workspace"], &args)
        }
        Task::Reproduce { args } => run_cli(&setup::ensure()?, "reproduce", &args),
        Task::Embed { args } => run_cli(&setup::ensure()?, "embed", &args),
        Task::Predict { args } => run_cli(&setup::ensure()?, "predict", &args),
        Task::Bench(args) => bench::run(args),
    }
}

/// Runs the `bertmt` binary (release) with the set-up's model and data as defaults. The first build takes minutes:
/// it shows cargo's progress and says so; later builds (after a change) stay quiet.
fn run_cli(env: &setup::Environment, subcommand: &str, args: &[OsString]) -> Result<()> {
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| setup::project_root().join("target"), PathBuf::from);
    if target_dir.join("release/bertmt").is_file() {
        cargo(env, &["build", "--release", "--quiet", "--package", "bertmt"], &[])?;
    } else {
        eprintln!(
            "Building bertmt in release mode for the first time: about 5 to 10 minutes on 2 cores (later runs start at \
             once)."
        );
        cargo(env, &["build", "--release", "--package", "bertmt"], &[])?;
    }
    let mut full: Vec<OsString> = vec!["--".into(), subcommand.into()];
    full.extend(args.iter().cloned());
    cargo(env, &["run", "--release", "--quiet", "--package", "bertmt"], &full)
}

/// Runs cargo with `LIBTORCH` and the default model and data locations set.
fn cargo(env: &setup::Environment, command: &[&str], args: &[OsString]) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(setup::project_root())
        .args(command)
        .args(args)
        .env("LIBTORCH", &env.libtorch)
        .env("BERTMT_MODEL", &env.model_dir)
        .env("BERTMT_DEFAULT_DATA", &env.default_data_dir)
        .status()
        .with_context(|| format!("cannot start cargo {}", command.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", command.join(" "));
    }
    Ok(())
}
