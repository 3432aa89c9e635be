//! `cargo xtask bench`: runs the benchmark binaries (release profile) one process per measurement, collects their
//! JSON lines into `runs/bench/<UTC stamp>.json` with the machine's facts, and writes the tables with their targets to
//! `docs/benchmarks.md`.
//!
//! Sections: 1 `gemm` (fp32 GEMM ceiling), 2 `encoder` (throughput on the real data, ours and the notebook's way,
//! and a per-operation profile), 3 `training` (epoch cost by freezing strategy, with and without the feature cache),
//! 4 `pipeline` (the datasets pipeline and the entity scorer; the pandas script with `--peer`), 5 `peer` (Hugging
//! Face `transformers` on the same texts, with `--peer`).
//!
//! Timing is only meaningful on a quiet machine: before each section the runner waits until the 1-minute load
//! average is below `--max-load`, and for every process it records the load before it and the CPU that *other*
//! processes used while it ran (from `/proc/stat`, minus the CPU time of the benchmark's own process tree).

use crate::setup;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Options of `cargo xtask bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Also run the Python peers: Hugging Face `transformers` (section 5) and the pandas pipeline (section 4). The
    /// first use creates a venv in the per-user cache (`peer-venv`, about 2.7 GB download);
    /// `BERTMT_PEER_PYTHON=/path/to/python` uses an interpreter that has torch and transformers instead.
    #[arg(long)]
    pub peer: bool,
    /// Run one section only (its block of docs/benchmarks.md is replaced, the others are kept).
    #[arg(long, value_enum)]
    pub only: Option<Section>,
    /// Try it out: one repetition and a tenth of the texts; writes runs/bench/ only, not docs/benchmarks.md.
    #[arg(long)]
    pub quick: bool,
    /// The real data (classification_dataset.xlsx, ner_dataset.xlsx, ...); default `../shared/data` from the workspace.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Timed repetitions per measurement (default 3; 1 with --quick).
    #[arg(long)]
    pub reps: Option<usize>,
    /// libtorch threads for our binaries and the peer (default: libtorch's own choice, passed on to the peer).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Before each section, wait until the 1-minute load average is below this (0 to not wait).
    #[arg(long, default_value_t = 0.8)]
    pub max_load: f64,
    /// The longest wait for a quiet machine, in minutes; after it the section runs and its load is recorded.
    #[arg(long, default_value_t = 60)]
    pub max_wait_minutes: u64,
    /// Run nothing: rewrite docs/benchmarks.md from an earlier run's `runs/bench/<stamp>.json`.
    #[arg(long, value_name = "RUN_JSON")]
    pub render: Option<PathBuf>,
}

/// A section of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    /// 1. fp32 GEMM GFLOP/s on the model's shapes.
    Gemm,
    /// 2. Encoder throughput on the real data.
    Encoder,
    /// 3. Training cost per epoch.
    Training,
    /// 4. Data pipeline and entity scoring.
    Pipeline,
    /// 5. Hugging Face transformers on the same texts.
    Peer,
}

impl Section {
    fn key(self) -> &'static str {
        match self {
            Self::Gemm => "gemm",
            Self::Encoder => "encoder",
            Self::Training => "training",
            Self::Pipeline => "pipeline",
            Self::Peer => "peer",
        }
    }

    fn heading(self) -> &'static str {
        match self {
            Self::Gemm => "## 1. Machine ceiling: fp32 GEMM",
            Self::Encoder => "## 2. Encoder throughput on the real data",
            Self::Training => "## 3. Training cost per epoch",
            Self::Pipeline => "## 4. Data pipeline and entity scoring",
            Self::Peer => "## 5. Python peer: Hugging Face transformers",
        }
    }

    fn needs_data(self) -> bool {
        !matches!(self, Self::Gemm)
    }
}

/// Sizes of one run: the full benchmark or `--quick`.
struct Plan {
    reps: usize,
    imdb: usize,
    gmb: usize,
    notebook_imdb: usize,
    notebook_gmb: usize,
    notebook_reps: usize,
    heads_reviews: usize,
    encoder_training_reviews: usize,
    cached_epochs: usize,
    pipeline_runs: usize,
    pandas_runs: usize,
    /// pandas takes minutes per GMB step: one run each.
    pandas_ner_runs: usize,
}

impl Plan {
    fn new(args: &BenchArgs) -> Self {
        let reps = args.reps.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
        if args.quick {
            Self {
                reps,
                imdb: 200,
                gmb: 500,
                notebook_imdb: 200,
                notebook_gmb: 100,
                notebook_reps: 1,
                heads_reviews: 200,
                encoder_training_reviews: 48,
                cached_epochs: 3,
                pipeline_runs: reps,
                pandas_runs: 1,
                pandas_ner_runs: 1,
            }
        } else {
            Self {
                reps,
                imdb: 2000,
                gmb: 5000,
                notebook_imdb: 2000,
                // Padded to 512, every GMB sentence costs the same: 1,000 give its rate as well as 5,000 would.
                notebook_gmb: 1000,
                notebook_reps: 1,
                heads_reviews: 2000,
                encoder_training_reviews: 2000,
                cached_epochs: 3,
                pipeline_runs: reps,
                pandas_runs: reps,
                pandas_ner_runs: 1,
            }
        }
    }
}

/// The benchmark texts' file, the data files, and the files of the real data.
const IMDB_FILES: [&str; 2] = ["classification_dataset.xlsx", "imdb_50k.csv.gz"];
const NER_FILES: [&str; 2] = ["ner_dataset.xlsx", "gmb_ner_dataset.csv.gz"];
/// Python packages of the peer venv.
const PEER_REQUIREMENTS: &[&str] = &["torch==2.13.0", "transformers", "pandas", "openpyxl", "beautifulsoup4"];

/// Runs `cargo xtask bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    let root = setup::project_root();
    if let Some(file) = &args.render {
        return render(&root, file);
    }
    let env = setup::ensure()?;
    let plan = Plan::new(&args);
    let stamp = utc_stamp(SystemTime::now());
    let command_line = format!(
        "cargo xtask {}",
        std::env::args()
            .skip(1)
            .map(|a| if a.contains(' ') { format!("'{a}'") } else { a })
            .collect::<Vec<_>>()
            .join(" ")
    );
    let peer = args.peer || args.only == Some(Section::Peer);
    let sections: Vec<Section> = match args.only {
        Some(section) => vec![section],
        None => vec![Section::Gemm, Section::Encoder, Section::Training, Section::Pipeline],
    };

    // The real data: missing data skips the sections that need it, loudly.
    let data_dir = args.data_dir.clone().unwrap_or_else(|| root.join("../shared/data"));
    let data = locate_data(&data_dir);
    if let Err(why) = &data {
        let skipped: Vec<&str> = sections.iter().filter(|s| s.needs_data()).map(|s| s.key()).collect();
        if !skipped.is_empty() {
            eprintln!("WARNING: {why}: skipping sections {} (pass --data-dir)", skipped.join(", "));
        }
    }

    // Build everything first, so that compiling never overlaps a measurement.
    let mut builds: Vec<Vec<&str>> = Vec::new();
    for section in &sections {
        let targets: &[&[&str]] = match section {
            Section::Gemm | Section::Encoder | Section::Peer => &[&["-p", "encoder", "--bench", "throughput"]],
            Section::Training => {
                &[&["-p", "trainer", "--bench", "epoch_cost"], &["-p", "trainer", "--bench", "optimizer_step"]]
            }
            Section::Pipeline => &[
                &["-p", "datasets", "--no-default-features", "--bench", "pipeline"],
                &["-p", "metrics", "--bench", "entity_scoring"],
            ],
        };
        for target in targets {
            if !builds.iter().any(|b| b.as_slice() == *target) {
                builds.push(target.to_vec());
            }
        }
    }
    for target in &builds {
        let mut command = vec!["bench", "--no-run"];
        command.extend(target);
        crate::cargo(&env, &command, &[]).context("building the benchmarks failed")?;
    }

    let peer_python = if peer { Some(peer_python()?) } else { None };
    let scratch = std::env::temp_dir().join(format!("bertmt-bench-{stamp}-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("cannot create {}", scratch.display()))?;
    let mut runner = Runner {
        env: &env,
        root: root.clone(),
        results: Vec::new(),
        failures: Vec::new(),
        threads: args.threads,
        max_load: args.max_load,
        max_wait: Duration::from_secs(args.max_wait_minutes * 60),
        section_loads: Vec::new(),
    };
    let mut texts: Option<(PathBuf, Value)> = None;
    let mut skipped: Vec<(Section, String)> = Vec::new();

    for &section in &sections {
        let files = match (&data, section.needs_data()) {
            (Err(why), true) => {
                skipped.push((section, why.clone()));
                continue;
            }
            (Ok(files), _) => Some(files),
            (Err(_), false) => None,
        };
        eprintln!("\n== bench section {} ==", section.key());
        runner.wait_for_quiet(section);
        match section {
            Section::Gemm => {
                runner.cargo_bench(section, "encoder", "throughput", false, &[s("--step"), s("gemm"), reps(&plan)]);
            }
            Section::Encoder | Section::Peer => {
                let Some((file, info)) = runner.texts(section, &mut texts, files, &plan, &scratch) else { continue };
                let threads = args.threads.map(|t| t as i64).or_else(|| info["threads"].as_i64()).unwrap_or(1);
                let peer = peer_python.as_deref().map(|python| Peer { python, threads });
                match (section, &peer) {
                    (Section::Peer, Some(peer)) => peer_section(&mut runner, &plan, &file, peer),
                    (Section::Peer, None) => {}
                    _ => {
                        if peer.is_some() {
                            // The peer's runs are interleaved with ours (see `encoder_section`).
                            let load = runner.section_loads.last().map_or(0.0, |(_, l)| *l);
                            runner.section_loads.push((Section::Peer, load));
                        }
                        encoder_section(&mut runner, &plan, &file, peer.as_ref());
                    }
                }
            }
            Section::Training => training_section(&mut runner, &plan, files),
            Section::Pipeline => pipeline_section(&mut runner, &plan, files, peer_python.as_deref()),
        }
    }
    // Best effort: the scratch directory only holds the texts file.
    let _ = std::fs::remove_dir_all(&scratch);

    let machine = machine_facts(&env, &runner.results, &root);
    let record = json!({
        "stamp": stamp,
        "date": iso_date(SystemTime::now()),
        "command": command_line,
        "quick": args.quick,
        "peer_python": peer_python.as_ref().map(|p| p.display().to_string()),
        "data_dir": data_dir.display().to_string(),
        "max_load": args.max_load,
        "section_loads": runner.section_loads.iter().map(|(s, l)| json!({"section": s.key(), "load_before": l})).collect::<Vec<_>>(),
        "skipped": skipped.iter().map(|(s, why)| json!({"section": s.key(), "why": why})).collect::<Vec<_>>(),
        "failures": runner.failures,
        "machine": machine,
        "results": runner.results,
    });
    let out_dir = root.join("runs/bench");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    let name = if args.quick { format!("{stamp}-quick") } else { stamp.clone() };
    let json_path = out_dir.join(format!("{name}.json"));
    std::fs::write(&json_path, serde_json::to_string_pretty(&record)?)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    eprintln!("\nresults: {}", json_path.display());

    let blocks = Report { record: &record, root: &root, stamp: &stamp }.blocks();
    if args.quick {
        let path = out_dir.join(format!("{name}.md"));
        let mut text = format!("# Quick benchmark run {stamp} (not for reporting: fewer texts and repetitions)\n\n");
        for (key, block) in &blocks {
            let heading = all_sections().into_iter().find(|s| s.key() == key).map_or("## Machine", |s| s.heading());
            let _ = write!(text, "{heading}\n\n{block}\n");
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("tables (quick run, docs/benchmarks.md left alone): {}", path.display());
    } else {
        let path = root.join("docs/benchmarks.md");
        update_docs(&path, &blocks)?;
        eprintln!("tables: {}", path.display());
    }
    for (section, why) in &skipped {
        eprintln!("skipped section {}: {why}", section.key());
    }
    if !runner.failures.is_empty() {
        bail!("{} benchmark run(s) failed:\n  {}", runner.failures.len(), runner.failures.join("\n  "));
    }
    Ok(())
}

/// `--render`: the tables of an earlier run, written to docs/benchmarks.md.
fn render(root: &Path, file: &Path) -> Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let record: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    if record["quick"] == true {
        bail!("{} is a --quick run: its numbers are not for docs/benchmarks.md", file.display());
    }
    let stamp = record["stamp"].as_str().context("the run file has no stamp")?.to_owned();
    let blocks = Report { record: &record, root, stamp: &stamp }.blocks();
    let path = root.join("docs/benchmarks.md");
    update_docs(&path, &blocks)?;
    eprintln!("tables of run {stamp}: {}", path.display());
    Ok(())
}

fn all_sections() -> [Section; 5] {
    [Section::Gemm, Section::Encoder, Section::Training, Section::Pipeline, Section::Peer]
}

fn s(text: &str) -> String {
    text.to_owned()
}

fn reps(plan: &Plan) -> String {
    format!("--reps={}", plan.reps)
}

/// The real data files, or why they are missing.
struct DataFiles {
    dir: PathBuf,
    imdb: PathBuf,
    ner: PathBuf,
}

fn locate_data(dir: &Path) -> std::result::Result<DataFiles, String> {
    if !dir.is_dir() {
        return Err(format!("the real data directory {} does not exist", dir.display()));
    }
    let dir = &std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let find = |names: &[&str]| names.iter().map(|n| dir.join(n)).find(|p| p.is_file());
    let imdb = find(&IMDB_FILES).ok_or_else(|| format!("{} has none of {}", dir.display(), IMDB_FILES.join(", ")))?;
    let ner = find(&NER_FILES).ok_or_else(|| format!("{} has none of {}", dir.display(), NER_FILES.join(", ")))?;
    Ok(DataFiles { dir: dir.to_path_buf(), imdb, ner })
}

// ---------------------------------------------------------------------------------------------------------------
// Sections

/// The Python peer of section 5: its interpreter and the libtorch threads it is told to use.
struct Peer<'a> {
    python: &'a Path,
    threads: i64,
}

/// The length-sorted runs that the peer repeats: (corpus, truncation, batch, texts).
fn sorted_runs(plan: &Plan) -> [(&'static str, usize, usize, usize); 3] {
    [("imdb", 256, 32, plan.imdb), ("imdb", 512, 32, plan.imdb), ("gmb", 512, 64, plan.gmb)]
}

/// Section 2; with a peer, each of our sorted runs is followed at once by the peer's run of the same texts, so that
/// both see the same machine (its speed drifts by up to 2x over an hour on a shared VM).
fn encoder_section(runner: &mut Runner, plan: &Plan, texts: &Path, peer: Option<&Peer>) {
    let section = Section::Encoder;
    let texts_arg = texts.display().to_string();
    let encode = |corpus: &str, method: &str, max_length: usize, batch: usize, limit: usize, reps: usize| {
        vec![
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
        runner.cargo_bench(
            section,
            "encoder",
            "throughput",
            false,
            &encode(corpus, "sorted", max_length, batch, limit, plan.reps),
        );
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
}

/// Section 5 on its own (`--only peer`): the peer's runs, ours taken from the latest earlier run.
fn peer_section(runner: &mut Runner, plan: &Plan, texts: &Path, peer: &Peer) {
    for run in sorted_runs(plan) {
        peer_run(runner, plan, texts, peer, run);
    }
}

fn peer_run(runner: &mut Runner, plan: &Plan, texts: &Path, peer: &Peer, run: (&str, usize, usize, usize)) {
    let (corpus, max_length, batch, limit) = run;
    let mut command = Command::new(peer.python);
    command
        .arg(runner.root.join("xtask/peer/hf_peer.py"))
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

fn training_section(runner: &mut Runner, plan: &Plan, files: Option<&DataFiles>) {
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
    // recipe's choices one at a time: no attention dropout, AdamW, bf16.
    runs.push(("all", "off", 8, plan.encoder_training_reviews, 1, "f32", None, "adam"));
    runs.push(("all", "off", 8, plan.encoder_training_reviews, 1, "f32", Some("0"), "adamw"));
    runs.push(("all", "off", 8, plan.encoder_training_reviews, 1, "bf16", Some("0"), "adamw"));
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
        runner.cargo_bench(Section::Training, "trainer", "epoch_cost", false, &args);
    }
}

fn pipeline_section(runner: &mut Runner, plan: &Plan, files: Option<&DataFiles>, python: Option<&Path>) {
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
    if !python_has(python, "import pandas, openpyxl, bs4") {
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

// ---------------------------------------------------------------------------------------------------------------
// Running processes

struct Runner<'a> {
    env: &'a setup::Environment,
    root: PathBuf,
    results: Vec<Value>,
    failures: Vec<String>,
    threads: Option<usize>,
    max_load: f64,
    max_wait: Duration,
    section_loads: Vec<(Section, f64)>,
}

impl Runner<'_> {
    /// Waits (polling every 30 s) until the 1-minute load average is below `max_load`, or `max_wait` passed.
    fn wait_for_quiet(&mut self, section: Section) {
        let started = Instant::now();
        let mut load = load_average();
        while self.max_load > 0.0 && load >= self.max_load && started.elapsed() < self.max_wait {
            eprintln!(
                "waiting for a quiet machine: 1-minute load {load:.2} >= {:.2} (next look in 30 s, waited {:.0} s)",
                self.max_load,
                started.elapsed().as_secs_f64()
            );
            std::thread::sleep(Duration::from_secs(30));
            load = load_average();
        }
        if self.max_load > 0.0 && load >= self.max_load {
            eprintln!("WARNING: the load is still {load:.2} after {:?}: measuring anyway (recorded)", self.max_wait);
        }
        self.section_loads.push((section, load));
    }

    /// Writes the benchmark texts once per run (the `texts` step); returns the file and the step's JSON.
    fn texts(
        &mut self,
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
            let info = self.cargo_bench(section, "encoder", "throughput", false, &args)?;
            *cache = Some((out, info));
        }
        cache.clone()
    }

    /// `cargo bench -p package --bench bench -- args`; returns the last JSON line.
    fn cargo_bench(
        &mut self,
        section: Section,
        package: &str,
        bench: &str,
        no_default_features: bool,
        args: &[String],
    ) -> Option<Value> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command.args(["bench", "--quiet", "-p", package]);
        if no_default_features {
            command.arg("--no-default-features");
        }
        command.args(["--bench", bench, "--"]);
        // The bench binaries take `--key value`, not `--key=value`.
        for arg in args {
            match arg.split_once('=') {
                Some((key, value)) if key.starts_with("--") => command.args([key, value]),
                _ => command.arg(arg),
            };
        }
        if let Some(threads) = self.threads {
            if package != "datasets" && package != "metrics" {
                command.args(["--threads".to_owned(), threads.to_string()]);
            }
        }
        self.run(section, command)
    }

    /// Runs one measurement process, collects its JSON lines (annotated with the command and the machine's load),
    /// and records a failure when it exits badly or prints nothing.
    fn run(&mut self, section: Section, mut command: Command) -> Option<Value> {
        command
            .current_dir(&self.root)
            .env("LIBTORCH", &self.env.libtorch)
            .env("BERTMT_MODEL", &self.env.model_dir)
            .env("BERTMT_DEFAULT_DATA", &self.env.default_data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let shown = show(&command);
        eprintln!("-> {shown}");
        let load_before = load_average();
        let busy_before = machine_busy_ticks();
        let children_before = own_children_ticks();
        let started = Instant::now();
        let outcome = (|| -> Result<(std::process::ExitStatus, Vec<String>)> {
            let mut child = command.spawn().with_context(|| format!("cannot start {shown}"))?;
            let stdout = child.stdout.take().context("no stdout")?;
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let line = line?;
                println!("{line}");
                lines.push(line);
            }
            Ok((child.wait()?, lines))
        })();
        let wall = started.elapsed().as_secs_f64();
        let own = own_children_ticks().saturating_sub(children_before);
        let busy = machine_busy_ticks().saturating_sub(busy_before);
        // Cores used by other processes while this one ran (ticks are USER_HZ = 100 per second).
        let other_load = (busy.saturating_sub(own)) as f64 / 100.0 / wall.max(1e-9);
        let (status, lines) = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                let why = format!("[{}] {shown}: {error:#}", section.key());
                eprintln!("FAILED: {why}");
                self.failures.push(why);
                return None;
            }
        };
        let mut last = None;
        for line in lines.iter().filter(|l| l.trim_start().starts_with('{')) {
            match serde_json::from_str::<Value>(line) {
                Ok(mut value) => {
                    if let Some(object) = value.as_object_mut() {
                        object.insert("section".into(), json!(section.key()));
                        object.insert("command".into(), json!(shown));
                        object.insert("wall_seconds".into(), json!(round(wall, 3)));
                        object.insert("load_before".into(), json!(load_before));
                        object.insert("other_cpu_load".into(), json!(round(other_load, 3)));
                        object.insert("exit_code".into(), json!(status.code()));
                    }
                    if value["check"].as_str().is_some_and(|c| c != "ok" && c != "unknown file") {
                        self.failures.push(format!("[{}] {shown}: counts check {}", section.key(), value["check"]));
                    }
                    self.results.push(value.clone());
                    last = Some(value);
                }
                Err(error) => eprintln!("WARNING: not JSON ({error}): {line}"),
            }
        }
        if !status.success() || last.is_none() {
            let why = format!(
                "[{}] {shown}: exited with {status}{}",
                section.key(),
                if last.is_none() { ", no JSON line" } else { "" }
            );
            eprintln!("FAILED: {why}");
            self.failures.push(why);
            if !status.success() {
                return None;
            }
        }
        last
    }
}

/// The command as it could be typed (program, arguments).
fn show(command: &Command) -> String {
    let program = command.get_program().to_string_lossy().into_owned();
    let program = if program.ends_with("/cargo") { "cargo".into() } else { program };
    std::iter::once(program)
        .chain(command.get_args().map(|a| a.to_string_lossy().into_owned()))
        .map(|a| if a.contains(' ') { format!("'{a}'") } else { a })
        .collect::<Vec<_>>()
        .join(" ")
}

fn python_has(python: &Path, import: &str) -> bool {
    Command::new(python).args(["-c", import]).output().is_ok_and(|o| o.status.success())
}

/// The peer's interpreter: `BERTMT_PEER_PYTHON`, else a venv in the per-user cache (created once).
fn peer_python() -> Result<PathBuf> {
    if let Some(python) = std::env::var_os("BERTMT_PEER_PYTHON").filter(|p| !p.is_empty()) {
        let python = PathBuf::from(python);
        if !python_has(&python, "import torch, transformers") {
            bail!("BERTMT_PEER_PYTHON={} cannot import torch and transformers", python.display());
        }
        return Ok(python);
    }
    let venv = setup::cache_root()?.join("peer-venv");
    let python = venv.join("bin/python");
    let marker = venv.join(".complete");
    if !marker.exists() {
        eprintln!(
            "creating the Python peer's venv {} ({}: about 2.7 GB download, several minutes; \
             BERTMT_PEER_PYTHON=/path/to/python reuses an interpreter that has them)",
            venv.display(),
            PEER_REQUIREMENTS.join(" ")
        );
        if venv.exists() {
            std::fs::remove_dir_all(&venv)
                .with_context(|| format!("cannot remove the incomplete {}", venv.display()))?;
        }
        let system_python = std::env::var_os("PYTHON").unwrap_or_else(|| OsString::from("python3"));
        let status = Command::new(&system_python).args(["-m", "venv"]).arg(&venv).status();
        if !status.is_ok_and(|s| s.success()) {
            bail!("cannot create a venv with {:?} -m venv (install python3-venv)", system_python);
        }
        let status = Command::new(venv.join("bin/pip"))
            .args(["install", "--disable-pip-version-check"])
            .args(PEER_REQUIREMENTS)
            .status();
        if !status.is_ok_and(|s| s.success()) {
            bail!("pip install {} failed (is PyPI reachable?)", PEER_REQUIREMENTS.join(" "));
        }
        std::fs::write(&marker, PEER_REQUIREMENTS.join("\n"))?;
    }
    Ok(python)
}

// ---------------------------------------------------------------------------------------------------------------
// Machine facts

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().and_then(|l| l.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// Busy CPU ticks of the whole machine (user, nice, system, irq, softirq, steal) from /proc/stat.
fn machine_busy_ticks() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else { return 0 };
    let fields: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| fields.get(i)).sum()
}

/// CPU ticks of this process's waited-for children and their descendants (cutime + cstime of /proc/self/stat).
fn own_children_ticks() -> u64 {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 16 and 17 (1-based) of the whole line: cutime, cstime; `fields[0]` is field 3.
    [13, 14].iter().filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok())).sum()
}

fn machine_facts(env: &setup::Environment, results: &[Value], root: &Path) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_owned()))
        .unwrap_or_else(|| "unknown".into());
    let processors = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let flags = cpuinfo.lines().find_map(|l| l.strip_prefix("flags")).unwrap_or("");
    let simd: Vec<&str> = ["avx2", "fma", "avx512f", "avx512_bf16", "amx_tile"]
        .into_iter()
        .filter(|f| flags.split_whitespace().any(|x| x == *f))
        .collect();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| round(kb / 1024.0 / 1024.0, 1));
    let threads = results.iter().find_map(|r| r["threads"].as_i64());
    let peer_versions = results.iter().find_map(|r| r.get("versions").cloned());
    let libtorch_version = std::fs::read_to_string(env.libtorch.join("version.py"))
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| l.strip_prefix("__version__ = ").map(|v| v.trim_matches(['\'', '"']).to_owned()))
        })
        .unwrap_or_else(|| setup::TORCH_VERSION.into());
    json!({
        "cpu": cpu,
        "logical_cpus": processors,
        "available_parallelism": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "simd": simd,
        "memory_gib": memory_gib,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()).ok(),
        "libtorch_threads": threads,
        "versions": {
            "rustc": command_output("rustc", &["-V"]),
            "tch": lock_version(root, "tch"),
            "libtorch": libtorch_version,
            "tokenizers": lock_version(root, "tokenizers"),
            "peer": peer_versions,
        },
        "model": env.model_dir.display().to_string(),
    })
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// A package's version in Cargo.lock.
fn lock_version(root: &Path, package: &str) -> Option<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).ok()?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{package}\"") {
            return lines.next()?.strip_prefix("version = ").map(|v| v.trim_matches('"').to_owned());
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------------------------
// Dates without a date crate

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's civil_from_days).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn utc_parts(time: SystemTime) -> (i64, u32, u32, u64, u64, u64) {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rest = secs % 86_400;
    (y, m, d, rest / 3600, rest % 3600 / 60, rest % 60)
}

/// `20250131T120501Z`.
fn utc_stamp(time: SystemTime) -> String {
    let (y, m, d, hh, mm, ss) = utc_parts(time);
    format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z")
}

/// `2025-01-31 12:05 UTC`.
fn iso_date(time: SystemTime) -> String {
    let (y, m, d, hh, mm, _) = utc_parts(time);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02} UTC")
}

fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

// ---------------------------------------------------------------------------------------------------------------
// The report

struct Report<'a> {
    record: &'a Value,
    root: &'a Path,
    stamp: &'a str,
}

fn f(value: &Value, digits: usize) -> String {
    value.as_f64().map_or_else(|| "—".into(), |x| format!("{x:.digits$}"))
}

fn num(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "—".into()
    }
}

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1}%", 100.0 * x)
    } else {
        "—".into()
    }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "**met**",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

impl Report<'_> {
    fn results(&self) -> impl Iterator<Item = &Value> {
        self.record["results"].as_array().into_iter().flatten()
    }

    fn find(&self, predicate: impl Fn(&Value) -> bool) -> Option<&Value> {
        self.results().find(|r| predicate(r))
    }

    /// The most recent earlier full run with a result matching `predicate`: (stamp, result).
    fn previous(&self, predicate: impl Fn(&Value) -> bool) -> Option<(String, Value)> {
        let dir = self.root.join("runs/bench");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| n.ends_with("Z.json") && n.as_str() < format!("{}.json", self.stamp).as_str())
            .collect();
        names.sort();
        names.iter().rev().find_map(|name| {
            let record: Value = serde_json::from_str(&std::fs::read_to_string(dir.join(name)).ok()?).ok()?;
            let found = record["results"].as_array()?.iter().find(|r| predicate(r))?.clone();
            Some((record["stamp"].as_str().unwrap_or(name).to_owned(), found))
        })
    }

    /// The machine block and one block per section that ran (in `section_loads`, which skipped sections lack).
    fn blocks(&self) -> Vec<(String, String)> {
        let mut blocks = vec![("machine".to_owned(), self.machine_block())];
        for section in all_sections() {
            let ran = self.record["section_loads"]
                .as_array()
                .is_some_and(|loads| loads.iter().any(|l| l["section"] == section.key()));
            if ran {
                blocks.push((section.key().to_owned(), self.section_block(section)));
            }
        }
        blocks
    }

    fn measured_line(&self, section: Section) -> String {
        let loads: Vec<String> =
            self.results().filter(|r| r["section"] == section.key()).map(|r| f(&r["other_cpu_load"], 2)).collect();
        let section_load = self.record["section_loads"]
            .as_array()
            .and_then(|l| l.iter().find(|x| x["section"] == section.key()))
            .map_or_else(|| "—".into(), |x| f(&x["load_before"], 2));
        format!(
            "Measured {} (run `{}`, `runs/bench/{}.json`) with `{}`. 1-minute load average before the section: {}; \
             CPU used by other processes during each measurement (cores, in order): {}.\n\n",
            self.record["date"].as_str().unwrap_or("?"),
            self.stamp,
            self.stamp,
            self.record["command"].as_str().unwrap_or("?"),
            section_load,
            if loads.is_empty() { "—".into() } else { loads.join(", ") },
        )
    }

    fn machine_block(&self) -> String {
        let m = &self.record["machine"];
        let v = &m["versions"];
        let peer = &v["peer"];
        let mut out = String::new();
        let _ = writeln!(out, "| | |\n|---|---|");
        let _ = writeln!(
            out,
            "| CPU | {} ({} logical CPUs; {}) |",
            m["cpu"].as_str().unwrap_or("?"),
            m["logical_cpus"],
            m["simd"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        );
        let _ = writeln!(out, "| Memory | {} GiB |", f(&m["memory_gib"], 1));
        let _ = writeln!(out, "| Kernel | {} |", m["kernel"].as_str().unwrap_or("?"));
        let _ = writeln!(out, "| libtorch threads (`tch::get_num_threads()`) | {} |", m["libtorch_threads"]);
        let _ = writeln!(
            out,
            "| Versions | {}; tch {}; libtorch {}; tokenizers {} |",
            v["rustc"].as_str().unwrap_or("?"),
            v["tch"].as_str().unwrap_or("?"),
            v["libtorch"].as_str().unwrap_or("?"),
            v["tokenizers"].as_str().unwrap_or("?")
        );
        if peer.is_object() {
            let _ = writeln!(
                out,
                "| Peer | Python {}, torch {}, transformers {} (`{}`) |",
                peer["python"].as_str().unwrap_or("?"),
                peer["torch"].as_str().unwrap_or("?"),
                peer["transformers"].as_str().unwrap_or("?"),
                self.record["peer_python"].as_str().unwrap_or("?")
            );
        }
        let _ = writeln!(out, "| Model | {} |", m["model"].as_str().unwrap_or("?"));
        let _ = writeln!(
            out,
            "| Last run | {} (`{}`) |",
            self.record["date"].as_str().unwrap_or("?"),
            self.record["command"].as_str().unwrap_or("?")
        );
        out
    }

    fn section_block(&self, section: Section) -> String {
        let mut out = self.measured_line(section);
        match section {
            Section::Gemm => self.gemm(&mut out),
            Section::Encoder => self.encoder(&mut out),
            Section::Training => {
                self.training(&mut out);
                self.optimizer_step(&mut out);
            }
            Section::Pipeline => self.pipeline(&mut out),
            Section::Peer => self.peer(&mut out),
        }
        let failures: Vec<&str> = self.record["failures"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|f| f.starts_with(&format!("[{}]", section.key())))
            .collect();
        if !failures.is_empty() {
            let _ = writeln!(out, "\nFailed runs: {}", failures.join("; "));
        }
        out
    }

    /// The GEMM ceiling of this run or of the latest earlier one: (GFLOP/s, where from).
    fn ceiling(&self) -> Option<(f64, String)> {
        let is_gemm = |r: &Value| r["bench"] == "encoder.gemm";
        if let Some(r) = self.find(is_gemm) {
            return r["ceiling_gflops"].as_f64().map(|c| (c, "section 1 of this run".into()));
        }
        let (stamp, r) = self.previous(is_gemm)?;
        r["ceiling_gflops"].as_f64().map(|c| (c, format!("section 1 of run {stamp}")))
    }

    fn gemm(&self, out: &mut String) {
        let Some(r) = self.find(|r| r["bench"] == "encoder.gemm") else {
            out.push_str("No result (see the failures in the run file).\n");
            return;
        };
        let _ = writeln!(out, "`Tensor::matmul` of random fp32 matrices, {} threads; median of {} repetitions of about 0.5 s each after 3 warm-up calls.\n", r["threads"], r["reps"]);
        let _ = writeln!(out, "| shape `[m x k] @ [k x n]` | GFLOP/s (median) | all repetitions |\n|---|---:|---|");
        for shape in r["shapes"].as_array().into_iter().flatten() {
            let all: Vec<String> = shape["gflops_all"].as_array().into_iter().flatten().map(|x| f(x, 1)).collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                shape["shape"].as_str().unwrap_or("?"),
                f(&shape["gflops_median"], 1),
                all.join(", ")
            );
        }
        let _ = writeln!(
            out,
            "\nCeiling used in section 2: **{} GFLOP/s** ({}).",
            f(&r["ceiling_gflops"], 1),
            r["ceiling_definition"].as_str().unwrap_or("")
        );
    }

    fn encoder(&self, out: &mut String) {
        let rows: Vec<&Value> =
            self.results().filter(|r| r["bench"] == "encoder.encode" && r["impl"] == "rust").collect();
        if rows.is_empty() {
            out.push_str("No result (see the failures in the run file).\n");
            return;
        }
        let ceiling = self.ceiling();
        let _ = writeln!(
            out,
            "`sorted` = `SentenceEncoder::encode` (length-sorted batches, dynamic padding, mean pooling); `notebook` = the \
             notebook's way (input order, every batch padded to 512). Tokenization is inside the timed pass. FLOPs per \
             layer and token: `2*(4h^2 + 2hi)` + attention `4sh` (`s` = padded length of the token's batch); GFLOP/s \
             (real) counts real tokens only, (computed) every padded position. Ceiling: {}.\n",
            ceiling.as_ref().map_or_else(|| "none measured yet".into(), |(c, from)| format!("{c:.1} GFLOP/s from {from}"))
        );
        let _ = writeln!(out, "| corpus | method | trunc. | batch | texts | truncated | reps | s (median) | sentences/s | real tokens/s | padding overhead | GFLOP/s real | % of ceiling | GFLOP/s computed |");
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in &rows {
            let share =
                ceiling.as_ref().and_then(|(c, _)| r["gflops_real"].as_f64().map(|g| g / c)).unwrap_or(f64::NAN);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r["corpus"].as_str().unwrap_or("?"),
                r["method"].as_str().unwrap_or("?"),
                r["max_length"],
                r["batch"],
                r["texts"],
                r["truncated_texts"],
                r["reps"],
                f(&r["seconds"], 1),
                f(&r["sentences_per_s"], 2),
                f(&r["real_tokens_per_s"], 0),
                r["padding_overhead"].as_f64().map_or_else(|| "—".into(), pct),
                f(&r["gflops_real"], 1),
                pct(share),
                f(&r["gflops_computed"], 1),
            );
        }
        let pick = |corpus: &str, method: &str, trunc: i64| {
            rows.iter().find(|r| r["corpus"] == corpus && r["method"] == method && r["max_length"] == trunc)
        };
        let rate = |r: Option<&&Value>| r.and_then(|r| r["sentences_per_s"].as_f64()).unwrap_or(f64::NAN);
        let _ = writeln!(
            out,
            "\nSpeed-ups (sentences/s; the notebook's way timed on the first {} IMDB / {} GMB texts):\n",
            pick("imdb", "notebook", 512).map_or_else(|| "—".into(), |r| r["texts"].to_string()),
            pick("gmb", "notebook", 512).map_or_else(|| "—".into(), |r| r["texts"].to_string())
        );
        let _ = writeln!(
            out,
            "- IMDB, both truncated at 512 (the fair pair): ours {} x the notebook's way.",
            num(rate(pick("imdb", "sorted", 512)) / rate(pick("imdb", "notebook", 512)), 2)
        );
        let _ = writeln!(
            out,
            "- IMDB, ours truncated at 256 vs the notebook's way at 512 (different work): {} x.",
            num(rate(pick("imdb", "sorted", 256)) / rate(pick("imdb", "notebook", 512)), 2)
        );
        let _ = writeln!(
            out,
            "- GMB: ours (batch 64) {} x the notebook's way (batch 8, padded to 512).",
            num(rate(pick("gmb", "sorted", 512)) / rate(pick("gmb", "notebook", 512)), 2)
        );

        let _ = writeln!(out, "\nTargets:\n");
        for trunc in [256, 512] {
            let r = pick("imdb", "sorted", trunc);
            let share = match (r.and_then(|r| r["gflops_real"].as_f64()), &ceiling) {
                (Some(g), Some((c, _))) => g / c,
                _ => f64::NAN,
            };
            let _ = writeln!(
                out,
                "- Encoder forward at batch 32, IMDB truncated at {trunc} (sequences >= 128): {} of the GEMM ceiling, target >= 75%: {}.",
                pct(share),
                verdict(share.is_finite().then_some(share >= 0.75))
            );
        }
        for trunc in [256, 512] {
            let overhead = pick("imdb", "sorted", trunc).and_then(|r| r["padding_overhead"].as_f64());
            let _ = writeln!(
                out,
                "- Padding overhead, IMDB truncated at {trunc}, batch 32: {}, target <= 10%: {}.",
                overhead.map_or_else(|| "—".into(), pct),
                verdict(overhead.map(|o| o <= 0.10))
            );
        }
        if let Some(p) = self.find(|r| r["bench"] == "encoder.profile") {
            let before_after: Vec<String> =
                p["model_forward_seconds_before_after"].as_array().into_iter().flatten().map(|x| f(x, 2)).collect();
            let _ = writeln!(
                out,
                "\nWhere the time goes (IMDB truncated at {}, batch {}, every {}th batch of the sorted schedule: {} batches, \
                 {} padded tokens). The operations are timed one by one with the model's weights and the same libtorch \
                 calls; their sum is {} s against {} s for the model's own forward on the same batches (timed before and \
                 after the operations). GFLOP/s here count every position the kernel ran on.\n",
                p["max_length"],
                p["batch"],
                p["every"],
                p["batches"],
                p["padded_tokens"],
                f(&p["parts_seconds"], 2),
                before_after.join(" and "),
            );
            let _ = writeln!(out, "| operation | seconds | share | GFLOP/s |\n|---|---:|---:|---:|");
            let mut parts: Vec<&Value> = p["parts"].as_array().into_iter().flatten().collect();
            parts.sort_by(|a, b| b["seconds"].as_f64().unwrap_or(0.0).total_cmp(&a["seconds"].as_f64().unwrap_or(0.0)));
            for part in parts {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    part["part"].as_str().unwrap_or("?"),
                    f(&part["seconds"], 3),
                    part["share"].as_f64().map_or_else(|| "—".into(), pct),
                    f(&part["gflops"], 1)
                );
            }
            let _ = writeln!(
                out,
                "\nOn the {} profiled batches without padding, the attention took {} s with an all-zero mask and {} s \
                 without one: the model passes no mask when a batch has no padding (as Hugging Face does).",
                p["unpadded_batches"],
                f(&p["unpadded_attention_seconds_with_mask"], 3),
                f(&p["unpadded_attention_seconds_without_mask"], 3)
            );
        }
    }

    fn training(&self, out: &mut String) {
        let rows: Vec<&Value> = self.results().filter(|r| r["bench"] == "trainer.epoch").collect();
        if rows.is_empty() {
            out.push_str("No result (see the failures in the run file).\n");
            return;
        }
        let _ = writeln!(
            out,
            "`trainer::train_and_evaluate` (separate mode, classification only) on the first N cleaned IMDB \
             reviews tokenized at 512 (train split), the next {} reviews as the test split (scored before and after, \
             not part of the epochs). Epoch seconds from `TrainOutcome.epochs`, split into forward (batching, forward \
             pass, loss), backward and optimizer (clipping, update, clearing gradients) by `EpochRecord.timing`; with \
             the cache, the one-off encoder pass is the fill time, and the per-epoch figure is the median of the epochs \
             after the first.\n",
            rows[0]["test"]
        );
        let _ = writeln!(out, "| strategy | precision | attention dropout | optimizer | feature cache | batch | reviews | train tokens | epochs | cache fill s | first epoch s | later epochs s (median) | forward s | backward s | optimizer s | examples/s | trainable values |");
        let _ = writeln!(out, "|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in &rows {
            let first = &r["epochs"][0];
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r["strategy_arg"].as_str().or(r["strategy"].as_str()).unwrap_or("?"),
                r["precision"].as_str().unwrap_or("f32"),
                f(&r["attention_dropout"], 2),
                r["optimizer"].as_str().unwrap_or("adam"),
                if r["feature_cache"] == true { "on" } else { "off" },
                r["batch"],
                r["reviews"],
                r["train_tokens"],
                r["epochs"].as_array().map_or(0, Vec::len),
                f(&r["cache_fill_seconds"], 1),
                f(&r["first_epoch_seconds"], 3),
                f(&r["later_epochs_median_seconds"], 4),
                f(&first["forward_seconds"], 1),
                f(&first["backward_seconds"], 1),
                f(&first["optimizer_seconds"], 1),
                match (r["reviews"].as_f64(), r["epoch_seconds"].as_f64()) {
                    (Some(n), Some(s)) if n / s < 100.0 => num(n / s, 2),
                    (Some(n), Some(s)) => num(n / s, 0),
                    _ => "—".into(),
                },
                r["trainable_parameters"],
            );
        }
        let _ = writeln!(
            out,
            "\nTarget: heads-only epochs after the first with the cache at least 50x faster than uncached epochs.\n"
        );
        for batch in [8, 32] {
            let pick = |cache: bool| {
                rows.iter()
                    .find(|r| r["strategy"] == "heads_only" && r["feature_cache"] == cache && r["batch"] == batch)
            };
            let uncached = pick(false).and_then(|r| r["epoch_seconds"].as_f64());
            let cached = pick(true).and_then(|r| r["later_epochs_median_seconds"].as_f64());
            let speedup = match (uncached, cached) {
                (Some(u), Some(c)) if c > 0.0 => u / c,
                _ => f64::NAN,
            };
            let fill = pick(true).and_then(|r| r["cache_fill_seconds"].as_f64());
            let _ = writeln!(
                out,
                "- batch {batch}: uncached epoch {} s, cached epoch {} s (after a one-off fill of {} s): {} x, {}.",
                uncached.map_or_else(|| "—".into(), |x| num(x, 1)),
                cached.map_or_else(|| "—".into(), |x| num(x, 4)),
                fill.map_or_else(|| "—".into(), |x| num(x, 1)),
                num(speedup, 0),
                verdict(speedup.is_finite().then_some(speedup >= 50.0))
            );
        }
        // Full fine-tuning: each variant against the former default (f32, the model's attention dropout, Adam),
        // measured in the same run.
        let finetune = |precision: &str, dropout_zero: bool| {
            rows.iter().find(|r| {
                r["strategy"] == "all"
                    && r["precision"].as_str().unwrap_or("f32") == precision
                    && (r["attention_dropout"].as_f64() == Some(0.0)) == dropout_zero
            })
        };
        let seconds = |r: Option<&&Value>| r.and_then(|r| r["epoch_seconds"].as_f64());
        if let Some(baseline) = seconds(finetune("f32", false)) {
            let _ = writeln!(
                out,
                "\nFull fine-tuning (`all`, batch 8), epoch time against f32 with the model's attention dropout (the \
                 former default), same run. Targets: at least 2x at f32, and a further 1.6x with bf16 where the CPU \
                 has avx512_bf16.\n"
            );
            let f32_fast = seconds(finetune("f32", true));
            let bf16_fast = seconds(finetune("bf16", true));
            if let Some(fast) = f32_fast {
                let ratio = baseline / fast;
                let _ = writeln!(
                    out,
                    "- f32, attention dropout 0, AdamW: {} s against {} s, {} x (target 2x: {}).",
                    num(fast, 1),
                    num(baseline, 1),
                    num(ratio, 2),
                    verdict(Some(ratio >= 2.0))
                );
            }
            if let (Some(fast), Some(bf16)) = (f32_fast, bf16_fast) {
                let ratio = fast / bf16;
                let _ = writeln!(
                    out,
                    "- bf16 (same settings): {} s, {} x over f32 with the same settings and {} x over the former \
                     default (target a further 1.6x: {}).",
                    num(bf16, 1),
                    num(ratio, 2),
                    num(baseline / bf16, 2),
                    verdict(Some(ratio >= 1.6))
                );
            }
        }
    }

    /// The optimizer step on its own (`trainer.optimizer`): the fused update against the former per-op one.
    fn optimizer_step(&self, out: &mut String) {
        let Some(r) = self.find(|r| r["bench"] == "trainer.optimizer") else { return };
        let _ = writeln!(
            out,
            "\nOne AdamW step over all {} values ({} tensors) of {} (`trainer::Adam`, `crates/trainer/benches/\
             optimizer_step.rs`, median of {} steps, {} threads): libtorch's fused kernel {} ms against {} ms for the \
             former update written as one libtorch call per elementwise operation, same process: {} x. Clipping the \
             global gradient norm: {} ms.",
            r["values"],
            r["tensors"],
            r["model"].as_str().unwrap_or("the model"),
            r["steps"],
            r["threads"],
            f(&r["fused_ms"], 1),
            f(&r["per_op_ms"], 1),
            f(&r["speedup"], 2),
            f(&r["clip_ms"], 1),
        );
    }

    fn pipeline(&self, out: &mut String) {
        let step = |implementation: &str, name: &str| self.find(|r| r["impl"] == implementation && r["step"] == name);
        if let Some(r) = self.find(|r| r["bench"] == "metrics.entity_scoring") {
            let strict = r["strict_iob2_median_s"].as_f64().unwrap_or(f64::NAN);
            let _ = writeln!(
                out,
                "Entity scoring (`metrics::entity_report`, {} sentences x {} tags, median of {}): strict IOB2 {} s, default \
                 mode {} s; target well under a second: {}.\n",
                r["sentences"], r["tags_per_sentence"], r["runs"], num(strict, 3), f(&r["default_median_s"], 3),
                verdict(strict.is_finite().then_some(strict < 1.0))
            );
        }
        let rust_rows: Vec<&Value> =
            self.results().filter(|r| r["impl"] == "rust" && r.get("step").is_some()).collect();
        if rust_rows.is_empty() {
            out.push_str("No pipeline result (see the failures in the run file).\n");
            return;
        }
        let _ = writeln!(
            out,
            "The datasets crate's `pipeline` bench (built with `--no-default-features`, so without libtorch), one step per \
             process (peak memory = VmHWM of that process), median of the runs; the pandas script \
             (`crates/datasets/benches/python/pandas_pipeline.py`, the notebook's code) on the same files{}. \
             `read-ner` in Rust streams the rows without keeping them; pandas builds the DataFrame.\n",
            if step("pandas", "read-imdb").is_some() { "" } else { " was not run (`--peer` runs it)" }
        );
        let _ = writeln!(out, "| step | Rust s | Rust peak MiB | Rust check | pandas s | pandas peak MiB | speed-up | memory ratio (pandas/Rust) |");
        let _ = writeln!(out, "|---|---:|---:|---|---:|---:|---:|---:|");
        for name in ["read-imdb", "clean-imdb", "tokenize-imdb", "read-ner", "group-ner", "cache-hit"] {
            let (rust, pandas) = (step("rust", name), step("pandas", name));
            let get = |r: Option<&Value>, key: &str| r.and_then(|r| r[key].as_f64()).unwrap_or(f64::NAN);
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} | {} | {} |",
                num(get(rust, "seconds"), 3),
                num(get(rust, "peak_rss_mib"), 0),
                rust.and_then(|r| r["check"].as_str()).unwrap_or("—"),
                num(get(pandas, "seconds"), 2),
                num(get(pandas, "peak_rss_mib"), 0),
                num(get(pandas, "seconds") / get(rust, "seconds"), 1),
                num(get(pandas, "peak_rss_mib") / get(rust, "peak_rss_mib"), 1),
            );
        }
        let seconds = |implementation: &str, names: &[&str]| -> f64 {
            names.iter().map(|n| step(implementation, n).and_then(|r| r["seconds"].as_f64()).unwrap_or(f64::NAN)).sum()
        };
        let ratio = |names: &[&str]| seconds("pandas", names) / seconds("rust", names);
        let full = ratio(&["clean-imdb", "group-ner"]);
        let _ = writeln!(out, "\nTargets:\n");
        let _ = writeln!(
            out,
            "- Read + clean + group of both files (clean-imdb + group-ner) >= 15x faster than pandas: {} x, {}.",
            num(full, 1),
            verdict(full.is_finite().then_some(full >= 15.0))
        );
        for (name, file) in [("read-imdb", "IMDB"), ("read-ner", "GMB")] {
            let read = ratio(&[name]);
            let _ = writeln!(
                out,
                "- Reading the {file} file >= 20x faster than `read_excel`: {} x, {}.",
                num(read, 1),
                verdict(read.is_finite().then_some(read >= 20.0))
            );
        }
        let lower: Vec<bool> = ["read-imdb", "clean-imdb", "read-ner", "group-ner"]
            .iter()
            .filter_map(|n| {
                let rust = step("rust", n)?["peak_rss_mib"].as_f64()?;
                let pandas = step("pandas", n)?["peak_rss_mib"].as_f64()?;
                Some(rust < pandas)
            })
            .collect();
        let _ = writeln!(
            out,
            "- Lower peak memory than pandas on every step: {}.",
            verdict((!lower.is_empty()).then(|| lower.iter().all(|&x| x)))
        );
        let hit = step("rust", "cache-hit").and_then(|r| r["seconds"].as_f64());
        let _ = writeln!(
            out,
            "- Cache hit < 1 s: {} s, {}.",
            hit.map_or_else(|| "—".into(), |x| num(x, 3)),
            verdict(hit.map(|h| h < 1.0))
        );
    }

    fn peer(&self, out: &mut String) {
        let peers: Vec<&Value> =
            self.results().filter(|r| r["bench"] == "encoder.encode" && r["impl"] == "hf").collect();
        if peers.is_empty() {
            out.push_str("No peer result (see the failures in the run file).\n");
            return;
        }
        let _ = writeln!(
            out,
            "Hugging Face `BertModel` ({} attention, `torch.inference_mode()`, `torch.set_num_threads({})`) on the same texts \
             (the JSON file our `texts` step wrote), batched the same way (`xtask/peer/hf_peer.py`); ours from section 2.\n",
            peers[0]["attn_implementation"].as_str().unwrap_or("?"),
            peers[0]["threads"]
        );
        let _ = writeln!(out, "| corpus | trunc. | batch | texts | ours sentences/s | peer sentences/s | ours / peer | ours real tokens/s | peer real tokens/s | same real tokens | peer GFLOP/s real |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|");
        let mut verdicts = Vec::new();
        for p in &peers {
            let matches = |r: &Value| {
                r["bench"] == "encoder.encode"
                    && r["impl"] == "rust"
                    && r["method"] == "sorted"
                    && r["corpus"] == p["corpus"]
                    && r["max_length"] == p["max_length"]
                    && r["batch"] == p["batch"]
                    && r["texts"] == p["texts"]
            };
            let (ours, from) = match self.find(matches) {
                Some(r) => (Some(r.clone()), String::new()),
                None => match self.previous(matches) {
                    Some((stamp, r)) => (Some(r), format!(" (ours from run {stamp})")),
                    None => (None, String::new()),
                },
            };
            let rate = |r: Option<&Value>| r.and_then(|r| r["sentences_per_s"].as_f64()).unwrap_or(f64::NAN);
            let ratio = rate(ours.as_ref()) / rate(Some(p));
            verdicts.push(format!(
                "{} at {}, batch {}: {} x, {}{from}",
                p["corpus"].as_str().unwrap_or("?"),
                p["max_length"],
                p["batch"],
                num(ratio, 2),
                verdict(ratio.is_finite().then_some(ratio >= 1.0))
            ));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                p["corpus"].as_str().unwrap_or("?"),
                p["max_length"],
                p["batch"],
                p["texts"],
                num(rate(ours.as_ref()), 2),
                f(&p["sentences_per_s"], 2),
                num(ratio, 2),
                ours.as_ref().map_or_else(|| "—".into(), |r| f(&r["real_tokens_per_s"], 0)),
                f(&p["real_tokens_per_s"], 0),
                ours.as_ref().map_or("—", |r| if r["real_tokens"] == p["real_tokens"] { "yes" } else { "NO" }),
                f(&p["gflops_real"], 1),
            );
        }
        let _ = writeln!(out, "\nTarget: ours / peer >= 1.0x.\n");
        for line in verdicts {
            let _ = writeln!(out, "- {line}");
        }
    }
}

/// Replaces the blocks between `<!-- bench:KEY -->` and `<!-- /bench:KEY -->` in `path` (creating the file from a
/// template when missing); everything outside the blocks (hand-written notes) is kept.
fn update_docs(path: &Path, blocks: &[(String, String)]) -> Result<()> {
    let mut text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => template(),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    for (key, block) in blocks {
        let (open, close) = (format!("<!-- bench:{key} -->"), format!("<!-- /bench:{key} -->"));
        let replacement = format!("{open}\n{block}\n{close}");
        match (text.find(&open), text.find(&close)) {
            (Some(start), Some(end)) if end > start => text.replace_range(start..end + close.len(), &replacement),
            _ => {
                let heading = all_sections().into_iter().find(|s| s.key() == key).map_or("## Machine", |s| s.heading());
                let _ = write!(text, "\n{heading}\n\n{replacement}\n");
            }
        }
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn template() -> String {
    let mut text = String::from(
        "# Benchmarks\n\n\
         Written by `cargo xtask bench` (`xtask/src/bench.rs`) from the JSON of its runs in `runs/bench/`. Each block \
         below says when, with which command and under what load it was measured; `cargo xtask bench --only SECTION` \
         replaces one block and keeps the others. The notes at the end are written by hand and kept.\n\n\
         ## Machine\n\n<!-- bench:machine -->\nnot measured yet\n<!-- /bench:machine -->\n",
    );
    for section in all_sections() {
        let key = section.key();
        let _ =
            write!(text, "\n{}\n\n<!-- bench:{key} -->\nnot measured yet\n<!-- /bench:{key} -->\n", section.heading());
    }
    text.push_str("\n## Notes\n\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        let time = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(utc_stamp(time), "20240229T123456Z");
        assert_eq!(iso_date(time), "2024-02-29 12:34 UTC");
    }

    #[test]
    fn docs_blocks_are_replaced_and_notes_kept() {
        let dir = std::env::temp_dir().join(format!("bertmt-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let path = dir.join("benchmarks.md");
        update_docs(&path, &[("gemm".into(), "first".into())]).expect("written");
        let mut text = std::fs::read_to_string(&path).expect("readable");
        assert!(text.contains("<!-- bench:gemm -->\nfirst\n<!-- /bench:gemm -->"));
        assert!(text.contains("<!-- bench:training -->\nnot measured yet"));
        text.push_str("A hand-written note.\n");
        std::fs::write(&path, text).expect("written");
        update_docs(&path, &[("gemm".into(), "second".into()), ("machine".into(), "facts".into())]).expect("written");
        let text = std::fs::read_to_string(&path).expect("readable");
        assert!(text.contains("<!-- bench:gemm -->\nsecond\n<!-- /bench:gemm -->") && !text.contains("first"));
        assert!(text.contains("<!-- bench:machine -->\nfacts\n"));
        assert!(text.ends_with("A hand-written note.\n"));
        std::fs::remove_dir_all(&dir).expect("removed");
    }

    #[test]
    fn proc_figures_parse() {
        assert!(load_average() >= 0.0);
        assert!(machine_busy_ticks() > 0);
        let _ = own_children_ticks();
    }
}
