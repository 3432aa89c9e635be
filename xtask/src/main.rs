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
    /// Set up, then run the whole test suite (formatting, clippy and documentation checks included).
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
    /// Train on your own data (release build). `cargo xtask train --help` lists the options.
    #[command(disable_help_flag = true)]
    Train {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Score a trained checkpoint on labelled files (release build).
    #[command(disable_help_flag = true)]
    Evaluate {
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
            cargo(&env, &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"], &[])
                .context("clippy found problems: `cargo clippy --workspace --all-targets -- -D warnings` lists them")?;
            // The libraries' documentation: every link resolves (the binaries' doc comments are their --help).
            cargo(
                &env,
                &[
                    "doc",
                    "--workspace",
                    "--no-deps",
                    "--quiet",
                    "--exclude",
                    "bertmt",
                    "--exclude",
                    "xtask",
                    "--config",
                    "build.rustdocflags=[\"-D\", \"warnings\"]",
                ],
                &[],
            )
            .context(
                "the libraries' documentation has broken links or markup: `cargo doc --workspace --no-deps` lists them",
            )?;
            cargo(&env, &["test", "--workspace"], &args)
        }
        Task::Reproduce { args } => run_cli(&setup::ensure()?, "reproduce", &args),
        Task::Embed { args } => run_cli(&setup::ensure()?, "embed", &args),
        Task::Predict { args } => run_cli(&setup::ensure()?, "predict", &args),
        Task::Train { args } => run_cli(&setup::ensure()?, "train", &args),
        Task::Evaluate { args } => run_cli(&setup::ensure()?, "evaluate", &args),
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
    // Ctrl-C reaches bertmt too (the terminal signals the whole foreground group): a training run then stops after
    // its current step and saves its state. This process waits for it instead of leaving it behind.
    if let Err(error) = ctrlc::set_handler(|| {}) {
        eprintln!("warning: cannot wait through Ctrl-C ({error}): a training run may finish saving after this exits");
    }
    let status = cargo_status(env, &["run", "--release", "--quiet", "--package", "bertmt"], &full)?;
    if !status.success() {
        // bertmt said what went wrong; its exit code (1, or 130 for a run stopped by Ctrl-C) is ours.
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}

/// Runs cargo with `LIBTORCH` and the default model and data locations set.
fn cargo(env: &setup::Environment, command: &[&str], args: &[OsString]) -> Result<()> {
    let status = cargo_status(env, command, args)?;
    if !status.success() {
        bail!("cargo {} failed ({status})", command.join(" "));
    }
    Ok(())
}

/// [`cargo`], returning how it exited.
fn cargo_status(env: &setup::Environment, command: &[&str], args: &[OsString]) -> Result<std::process::ExitStatus> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    Command::new(cargo)
        .current_dir(setup::project_root())
        .args(command)
        .args(args)
        .env("LIBTORCH", &env.libtorch)
        .env("BERTMT_MODEL", &env.model_dir)
        .env("BERTMT_DEFAULT_DATA", &env.default_data_dir)
        .status()
        .with_context(|| format!("cannot start cargo {}", command.join(" ")))
}
