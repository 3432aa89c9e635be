//! What each section builds and measures: the bench targets, the child processes and their arguments, the real data.

use super::runner::Runner;
use super::{Plan, Section};
use crate::setup;
use anyhow::{Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The benchmark texts' file, the data files, and the files of the real data.
const IMDB_FILES: [&str; 2] = ["classification_dataset.xlsx", "imdb_50k.csv.gz"];
const NER_FILES: [&str; 2] = ["ner_dataset.xlsx", "gmb_ner_dataset.csv.gz"];

/// The `cargo bench` targets a section runs (`-p PACKAGE [--no-default-features] --bench NAME`).
fn bench_targets(section: Section) -> &'static [&'static [&'static str]] {
    match section {
        Section::Gemm | Section::Encoder | Section::Peer => &[&["-p", "encoder", "--bench", "throughput"]],
        Section::Training => {
            &[&["-p", "trainer", "--bench", "epoch_cost"], &["-p", "trainer", "--bench", "optimizer_step"]]
        }
        Section::Pipeline => &[
            &["-p", "datasets", "--no-default-features", "--bench", "pipeline"],
            &["-p", "metrics", "--bench", "entity_scoring"],
        ],
        // The encoder bench writes the texts.
        Section::Server => &[&["-p", "encoder", "--bench", "throughput"], &["-p", "bertmt", "--bench", "server_load"]],
    }
}

/// Builds the bench targets of `sections` (each once), so that compiling never overlaps a measurement.
pub(super) fn build(env: &setup::Environment, sections: &[Section]) -> Result<()> {
    let mut builds: Vec<&[&str]> = Vec::new();
    for &section in sections {
        for &target in bench_targets(section) {
            if !builds.contains(&target) {
                builds.push(target);
            }
        }
    }
    for target in &builds {
        let mut command = vec!["bench", "--no-run"];
        command.extend(*target);
        crate::cargo(env, &command, &[]).context("building the benchmarks failed")?;
    }
    Ok(())
}

fn s(text: &str) -> String {
    text.to_owned()
}

fn reps(plan: &Plan) -> String {
    format!("--reps={}", plan.reps)
}

/// The real data files, or why they are missing.
pub(super) struct DataFiles {
    dir: PathBuf,
    imdb: PathBuf,
    ner: PathBuf,
}

pub(super) fn locate_data(dir: &Path) -> std::result::Result<DataFiles, String> {
    if !dir.is_dir() {
        return Err(format!("the real data directory {} does not exist", dir.display()));
    }
    let dir = &std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let find = |names: &[&str]| names.iter().map(|n| dir.join(n)).find(|p| p.is_file());
    let imdb = find(&IMDB_FILES).ok_or_else(|| format!("{} has none of {}", dir.display(), IMDB_FILES.join(", ")))?;
    let ner = find(&NER_FILES).ok_or_else(|| format!("{} has none of {}", dir.display(), NER_FILES.join(", ")))?;
    Ok(DataFiles { dir: dir.to_path_buf(), imdb, ner })
}

/// Writes the benchmark texts once per run (the `texts` step); returns the file and the step's JSON.
pub(super) fn texts(
    runner: &mut Runner,
    section: Section,
    cache: &mut Option<(PathBuf, Value)>,
    files: Option<&DataFiles>,
    plan: &Plan,
    scratch: &Path,
) -> Option<(PathBuf, Value)> {
    if cache.is_none() {
        let files = files?;
        let out = scratch.join("texts.json");
        let args = vec![
            s("--step"),
            s("texts"),
            format!("--out={}", out.display()),
            format!("--data-dir={}", files.dir.display()),
            format!("--imdb={}", plan.imdb),
            format!("--gmb={}", plan.gmb),
        ];
        let info = runner.cargo_bench(section, "encoder", "throughput", false, &args)?;
        *cache = Some((out, info));
    }
    cache.clone()
}

/// Section 1: the FMA peak, libtorch's GEMM (fp32, and bf16 where native) and, with a peer interpreter, numpy's.
pub(super) fn gemm_section(runner: &mut Runner, plan: &Plan, python: Option<&Path>) {
    let ours = runner.cargo_bench(Section::Gemm, "encoder", "throughput", false, &[s("--step"), s("gemm"), reps(plan)]);
    if let (Some(python), Some(ours)) = (python, ours) {
        let mut command = Command::new(python);
        command
            .arg(runner.root.join("xtask/peer/gemm_peer.py"))
            .arg(format!("--threads={}", ours["threads"].as_i64().unwrap_or(1)))
            .arg(format!("--reps={}", plan.reps));
        runner.run(Section::Gemm, command);
    }
}

/// The Python peer of section 5: its interpreter and the libtorch threads it is told to use.
pub(super) struct Peer<'a> {
    pub(super) python: &'a Path,
    pub(super) threads: i64,
}

/// The length-sorted runs that the peer repeats: (corpus, truncation, batch, texts).
fn sorted_runs(plan: &Plan) -> [(&'static str, usize, usize, usize); 3] {
    [("imdb", 256, 32, plan.imdb), ("imdb", 512, 32, plan.imdb), ("gmb", 512, 64, plan.gmb)]
}

/// Section 2; each sorted run at f32 is followed by the same run at `--precision auto` when that resolves to bf16
/// here, and, with a peer, at once by the peers' runs of the same texts, so that all see the same machine (its
/// speed drifts by up to 2x over an hour on a shared VM).
pub(super) fn encoder_section(runner: &mut Runner, plan: &Plan, texts: &Path, peer: Option<&Peer>) {
    let section = Section::Encoder;
    let texts_arg = texts.display().to_string();
    let encode = |corpus: &str, method: &str, max_length: usize, batch: usize, limit: usize, reps: usize| {
        vec![
            s("--precision=f32"),
            s("--step"),
            s("encode"),
            format!("--texts={texts_arg}"),
            format!("--corpus={corpus}"),
            format!("--method={method}"),
            format!("--max-length={max_length}"),
            format!("--batch={batch}"),
            format!("--limit={limit}"),
            format!("--reps={reps}"),
        ]
    };
    for (corpus, max_length, batch, limit) in sorted_runs(plan) {
        let mut args = encode(corpus, "sorted", max_length, batch, limit, plan.reps);
        runner.cargo_bench(section, "encoder", "throughput", false, &args);
        if super::machine::native_bf16() {
            args[0] = s("--precision=auto");
            runner.cargo_bench(section, "encoder", "throughput", false, &args);
        }
        if let Some(peer) = peer {
            peer_run(runner, plan, texts, peer, (corpus, max_length, batch, limit));
        }
    }
    for args in [
        encode("imdb", "notebook", 512, 8, plan.notebook_imdb, plan.notebook_reps),
        encode("gmb", "notebook", 512, 8, plan.notebook_gmb, plan.notebook_reps),
    ] {
        runner.cargo_bench(section, "encoder", "throughput", false, &args);
    }
    let profile = vec![
        s("--step"),
        s("profile"),
        format!("--texts={texts_arg}"),
        s("--corpus=imdb"),
        s("--max-length=256"),
        s("--batch=32"),
        format!("--limit={}", plan.imdb),
        s("--every=4"),
    ];
    runner.cargo_bench(section, "encoder", "throughput", false, &profile);
    // Where a training step's time goes: the settings of section 3's epochs (IMDB at 512, batch 8).
    let training_profile = vec![
        s("--step"),
        s("profile-training"),
        format!("--texts={texts_arg}"),
        s("--corpus=imdb"),
        s("--max-length=512"),
        s("--batch=8"),
        format!("--limit={}", plan.imdb),
        s("--every=10"),
    ];
    runner.cargo_bench(section, "encoder", "throughput", false, &training_profile);
}

/// Section 5 on its own (`--only peer`): the peer's runs, ours taken from the latest earlier run.
pub(super) fn peer_section(runner: &mut Runner, plan: &Plan, texts: &Path, peer: &Peer) {
    for run in sorted_runs(plan) {
        peer_run(runner, plan, texts, peer, run);
    }
}

/// The peers of one sorted run: PyTorch fp32, PyTorch bf16 autocast (only where bf16 is native: emulated it is ~45x
/// slower and would take hours) and ONNX Runtime fp32 with its BERT optimizer.
fn peer_run(runner: &mut Runner, plan: &Plan, texts: &Path, peer: &Peer, run: (&str, usize, usize, usize)) {
    let native_bf16 = super::machine::native_bf16();
    for runtime in ["torch", "torch-bf16", "onnxruntime"] {
        if runtime == "torch-bf16" && !native_bf16 {
            continue;
        }
        peer_runtime_run(runner, plan, texts, peer, run, runtime);
    }
}

fn peer_runtime_run(
    runner: &mut Runner,
    plan: &Plan,
    texts: &Path,
    peer: &Peer,
    run: (&str, usize, usize, usize),
    runtime: &str,
) {
    let (corpus, max_length, batch, limit) = run;
    let mut command = Command::new(peer.python);
    command
        .env("HF_HUB_OFFLINE", "1")
        .arg(runner.root.join("xtask/peer/hf_peer.py"))
        .arg(format!("--runtime={runtime}"))
        .arg(format!("--texts={}", texts.display()))
        .arg(format!("--corpus={corpus}"))
        .arg(format!("--max-length={max_length}"))
        .arg(format!("--batch={batch}"))
        .arg(format!("--limit={limit}"))
        .arg(format!("--reps={}", plan.reps))
        .arg(format!("--threads={}", peer.threads))
        .arg(format!("--model={}", runner.env.model_dir.display()));
    runner.run(Section::Peer, command);
}

/// Section 3: one optimizer step, then epochs by freezing strategy, cache, batch, precision and optimizer. With a
/// peer interpreter, the PyTorch training loop (`xtask/peer/hf_train_peer.py`) runs right after our full
/// fine-tuning run with the recipe's settings, on the batches that run wrote (`--dump-batches`), once per precision
/// of that run, with the same thread count.
pub(super) fn training_section(
    runner: &mut Runner,
    plan: &Plan,
    files: Option<&DataFiles>,
    python: Option<&Path>,
    scratch: &Path,
) {
    // One optimizer step over the whole model: no data needed.
    runner.cargo_bench(Section::Training, "trainer", "optimizer_step", false, &[]);
    let Some(files) = files else { return };
    // (strategy, cache, batch, reviews, epochs, precision, attention dropout, optimizer)
    type Run<'a> = (&'a str, &'a str, usize, usize, usize, &'a str, Option<&'a str>, &'a str);
    let mut runs: Vec<Run> = Vec::new();
    for batch in [8, 32] {
        runs.push(("heads_only", "off", batch, plan.heads_reviews, 1, "f32", None, "adam"));
        runs.push(("heads_only", "on", batch, plan.heads_reviews, plan.cached_epochs, "f32", None, "adam"));
    }
    // Training the encoder costs minutes per epoch here: the notebook's batch size only.
    runs.push(("output_layers:3", "off", 8, plan.encoder_training_reviews, 1, "f32", None, "adam"));
    // Full fine-tuning: the model's own attention dropout at f32 (the former default), then the `finetune`
    // recipe's choices: no attention dropout and AdamW, at f32 and, where the CPU computes it natively, bf16. The two
    // precisions take turns in one run (`epoch_cost --precision f32,bf16`), so the VM's drift moves both alike.
    runs.push(("all", "off", 8, plan.encoder_training_reviews, 1, "f32", None, "adam"));
    let recipe_precisions = if super::machine::native_bf16() { "f32,bf16" } else { "f32" };
    runs.push(("all", "off", 8, plan.encoder_training_reviews, 1, recipe_precisions, Some("0"), "adamw"));
    let batches_file = scratch.join("training-batches.json");
    for (strategy, cache, batch, reviews, epochs, precision, attention_dropout, optimizer) in runs {
        let mut args = vec![
            format!("--strategy={strategy}"),
            format!("--cache={cache}"),
            format!("--batch={batch}"),
            format!("--reviews={reviews}"),
            format!("--epochs={epochs}"),
            format!("--precision={precision}"),
            format!("--optimizer={optimizer}"),
            format!("--data-dir={}", files.dir.display()),
        ];
        if let Some(dropout) = attention_dropout {
            args.push(format!("--attention-dropout={dropout}"));
        }
        // The recipe's settings: the ones the peer repeats.
        let with_peer = python.filter(|_| strategy == "all" && optimizer == "adamw");
        if with_peer.is_some() {
            args.push(format!("--dump-batches={}", batches_file.display()));
        }
        let ours = runner.cargo_bench(Section::Training, "trainer", "epoch_cost", false, &args);
        let (Some(python), Some(ours)) = (with_peer, ours) else { continue };
        let threads = ours["threads"].as_i64().unwrap_or(1);
        for precision in precision.split(',') {
            let mut command = Command::new(python);
            command
                .env("HF_HUB_OFFLINE", "1")
                .arg(runner.root.join("xtask/peer/hf_train_peer.py"))
                .arg(format!("--batches={}", batches_file.display()))
                .arg(format!("--model={}", runner.env.model_dir.display()))
                .arg(format!("--threads={threads}"))
                .arg(format!("--precision={precision}"));
            runner.run(Section::Training, command);
        }
    }
}

/// Section 4: the entity scorer, the datasets pipeline step by step, then (with a peer interpreter) pandas.
pub(super) fn pipeline_section(runner: &mut Runner, plan: &Plan, files: Option<&DataFiles>, python: Option<&Path>) {
    let section = Section::Pipeline;
    runner.cargo_bench(section, "metrics", "entity_scoring", false, &[]);
    let Some(files) = files else { return };
    let file_args = [format!("--classification={}", files.imdb.display()), format!("--ner={}", files.ner.display())];
    for step in ["read-imdb", "clean-imdb", "tokenize-imdb", "read-ner", "group-ner", "cache-hit"] {
        let mut args = vec![s("--step"), s(step), s("--runs"), plan.pipeline_runs.to_string()];
        args.extend(file_args.iter().cloned());
        runner.cargo_bench(section, "datasets", "pipeline", true, &args);
    }
    let Some(python) = python else { return };
    if !super::python::has(python, "import pandas, openpyxl, bs4") {
        let why = format!("{} lacks pandas, openpyxl or beautifulsoup4: the pandas peer is skipped", python.display());
        eprintln!("WARNING: {why}");
        runner.failures.push(format!("[pipeline] {why}"));
        return;
    }
    let script = runner.root.join("crates/datasets/benches/python/pandas_pipeline.py");
    for step in ["read-imdb", "clean-imdb", "read-ner", "group-ner"] {
        let mut command = Command::new(python);
        let runs = if step.ends_with("ner") { plan.pandas_ner_runs } else { plan.pandas_runs };
        command.arg(&script).args(["--step", step, "--runs", &runs.to_string()]).args(&file_args);
        runner.run(section, command);
    }
}

/// Section 6: `bertmt serve` (release build) under 1, 8 and 64 concurrent clients sending one GMB sentence each,
/// against the offline embedder on the same sentences (`crates/cli/benches/server_load.rs`).
/// Where `auto` is bf16, the same at f32 too, at 8 and 64 clients on half the sentences (f32 is 2.5x slower here).
pub(super) fn server_section(runner: &mut Runner, plan: &Plan, texts: &Path) {
    let args = |precision: &str, clients: &str, sentences: usize| {
        vec![
            format!("--texts={}", texts.display()),
            s("--corpus=gmb"),
            format!("--limit={sentences}"),
            format!("--clients={clients}"),
            format!("--precision={precision}"),
            reps(plan),
        ]
    };
    runner.cargo_bench(Section::Server, "bertmt", "server_load", false, &args("auto", "1,8,64", plan.server_sentences));
    if super::machine::native_bf16() {
        let f32_args = args("f32", "8,64", plan.server_sentences / 2);
        runner.cargo_bench(Section::Server, "bertmt", "server_load", false, &f32_args);
    }
}
