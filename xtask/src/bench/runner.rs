//! Running the measurement processes: waiting for a quiet machine, `cargo bench` and Python children, their JSON
//! lines (annotated with the command and the machine's load), and the failures.

use super::machine::{load_average, machine_busy_ticks, own_children_ticks};
use super::{round, Section};
use crate::setup;
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(super) struct Runner<'a> {
    pub(super) env: &'a setup::Environment,
    pub(super) root: PathBuf,
    /// Every JSON line of every process, annotated (the run file's `results`).
    pub(super) results: Vec<Value>,
    /// `[section] command: why`, one per failed process or failed check (the run file's `failures`).
    pub(super) failures: Vec<String>,
    threads: Option<usize>,
    max_load: f64,
    max_wait: Duration,
    /// The 1-minute load average before each section (the run file's `section_loads`).
    pub(super) section_loads: Vec<(Section, f64)>,
}

impl<'a> Runner<'a> {
    pub(super) fn new(
        env: &'a setup::Environment,
        root: PathBuf,
        threads: Option<usize>,
        max_load: f64,
        max_wait: Duration,
    ) -> Self {
        Self {
            env,
            root,
            results: Vec::new(),
            failures: Vec::new(),
            threads,
            max_load,
            max_wait,
            section_loads: Vec::new(),
        }
    }

    /// Waits (polling every 30 s) until the 1-minute load average is below `max_load`, or `max_wait` passed.
    pub(super) fn wait_for_quiet(&mut self, section: Section) {
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

    /// `cargo bench -p package --bench bench -- args`; returns the last JSON line.
    pub(super) fn cargo_bench(
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
    pub(super) fn run(&mut self, section: Section, mut command: Command) -> Option<Value> {
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
