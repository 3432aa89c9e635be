//! `bertmt serve` under load, against the same model embedding the same texts offline.
//!
//! ```text
//! cargo bench -p bertmt --bench server_load -- --texts texts.json [--corpus gmb] [--limit 2000]
//!     [--clients 1,8,64] [--reps 3] [--model DIR] [--precision auto] [--threads N] [--serve-arg ARG]...
//! ```
//! `texts.json` is the encoder bench's `--step texts` file (the first GMB sentences: one sentence a request).
//! Relative paths are taken from the workspace root.
//!
//! 1. **Offline**: `encoder::Embedder` built from the model directory with no overrides and `embed`'s default batch
//!    size (32), the library call `bertmt embed` makes (without its file reading and printing): one warm-up pass, then
//!    `--reps` timed passes over all the texts; the median pass.
//! 2. **Server**: the release `bertmt serve` binary with its defaults (dynamic batching up to 32 requests / 16,384
//!    tokens, queue of 256), on a free local port. For each client count, that many client threads (each with its own
//!    keep-alive connection) take the next text from a shared counter and POST it alone to `/embed` (TEI's request),
//!    until every text has been sent; one untimed warm-up pass at the first count, then `--reps` timed passes, the
//!    median by throughput. Right before each server pass, one offline pass (as in 1) runs with the server idle: the
//!    VM's speed drifts by 20% and more within minutes, so each server pass is compared with the offline throughput of
//!    the same moment, and `ratio_to_offline` is the median of those ratios. Latency is per request, from just before
//!    the POST to the parsed answer, pooled over the median pass; batch sizes come from the server's own `/metrics`
//!    (the pass's change of its histogram).
//! 3. A check: the server's vector for each of the first 16 texts against the offline one: the largest absolute
//!    difference, and the least cosine similarity (at least 0.9999; a text's batch changes its vector only by rounding).
//!
//! Prints one JSON line per measurement (`mode`: `offline` or `server`), then a summary line with the ratio of the
//! server's throughput at the largest client count to the offline one.
//!
//! The load generator runs on the same cores as the server: its client threads mostly wait on their sockets, but
//! their CPU time is not the server's. The summary records the client processes' CPU seconds per pass.

use anyhow::{bail, Context, Result};
use encoder::{EmbedOverrides, Embedder, Precision};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    texts: PathBuf,
    corpus: String,
    limit: usize,
    clients: Vec<usize>,
    reps: usize,
    model: PathBuf,
    precision: Precision,
    threads: Option<usize>,
    /// Extra arguments for `bertmt serve` (`--serve-arg --batch-size --serve-arg 8`), for trying its settings.
    serve_args: Vec<String>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn parse_args() -> Result<Args> {
    let root = workspace_root();
    let mut texts = None;
    let mut args = Args {
        texts: PathBuf::new(),
        corpus: "gmb".into(),
        limit: 2000,
        clients: vec![1, 8, 64],
        reps: 3,
        model: std::env::var_os("BERTMT_MODEL")
            .map_or_else(|| root.join("data/models/all-MiniLM-L6-v2"), |dir| root.join(dir)),
        precision: Precision::Auto,
        threads: None,
        serve_args: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--texts" => texts = Some(root.join(value()?)),
            "--corpus" => args.corpus = value()?,
            "--limit" => args.limit = value()?.parse().context("--limit")?,
            "--clients" => {
                args.clients = value()?
                    .split(',')
                    .map(|c| c.trim().parse::<usize>().context("--clients takes counts separated by commas"))
                    .collect::<Result<_>>()?
            }
            "--reps" => args.reps = value()?.parse().context("--reps")?,
            "--model" => args.model = root.join(value()?),
            "--precision" => args.precision = value()?.parse().map_err(anyhow::Error::msg).context("--precision")?,
            "--threads" => args.threads = Some(value()?.parse().context("--threads")?),
            "--serve-arg" => args.serve_args.push(value()?),
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            other => bail!("unknown argument {other}"),
        }
    }
    args.texts = texts.context("--texts FILE (the encoder bench's `--step texts` output) is required")?;
    if args.clients.is_empty() || args.clients.contains(&0) {
        bail!("--clients needs positive counts");
    }
    if args.reps == 0 || args.limit == 0 {
        bail!("--reps and --limit must be positive");
    }
    Ok(args)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    if let Some(threads) = args.threads {
        tch::set_num_threads(i32::try_from(threads).context("--threads")?);
    }
    let document: Value = serde_json::from_slice(
        &std::fs::read(&args.texts).with_context(|| format!("cannot read {}", args.texts.display()))?,
    )
    .with_context(|| format!("{} is not JSON", args.texts.display()))?;
    let texts: Vec<String> = document[&args.corpus]
        .as_array()
        .with_context(|| format!("{} has no {:?} list", args.texts.display(), args.corpus))?
        .iter()
        .take(args.limit)
        .map(|t| t.as_str().map(str::to_owned).context("a text that is not a string"))
        .collect::<Result<_>>()?;
    if texts.len() < args.limit {
        bail!("{} has {} {} texts, fewer than --limit {}", args.texts.display(), texts.len(), args.corpus, args.limit);
    }

    let (embedder, precision) = embedder(&args)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let offline = offline(&args, &embedder, &precision, &refs)?;
    println!("{offline}");
    let offline_vectors = offline_vectors(&embedder, &refs[..16.min(refs.len())])?;

    let server = Server::start(&args)?;
    let mut warm = false;
    let mut last = None;
    for &clients in &args.clients {
        if !warm {
            load(&server, &texts, clients)?;
            warm = true;
        }
        let mut passes = Vec::new();
        for _ in 0..args.reps {
            // An offline pass right before each server pass: this VM's speed drifts by 20% and more within
            // minutes, so each server pass is compared with the offline throughput of the same moment.
            let started = Instant::now();
            embedder.embed(&refs, EMBED_BATCH)?;
            let offline_rate = texts.len() as f64 / started.elapsed().as_secs_f64();
            let before = server.batch_histogram()?;
            let cpu_before = own_cpu_seconds();
            let mut pass = load(&server, &texts, clients)?;
            pass.client_cpu_s = own_cpu_seconds() - cpu_before;
            let after = server.batch_histogram()?;
            pass.batches = after.0 - before.0;
            pass.batched_requests = after.1 - before.1;
            pass.offline_rate = offline_rate;
            passes.push(pass);
        }
        passes.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
        let median = &passes[passes.len() / 2];
        let mut ratios: Vec<f64> = passes.iter().map(|pass| pass.rate() / pass.offline_rate).collect();
        ratios.sort_by(f64::total_cmp);
        let mut offline_rates: Vec<f64> = passes.iter().map(|pass| pass.offline_rate).collect();
        offline_rates.sort_by(f64::total_cmp);
        let mut latencies = median.latencies.clone();
        latencies.sort_by(f64::total_cmp);
        let line = json!({
            "bench": "cli.server_load",
            "mode": "server",
            "precision": precision,
            "corpus": args.corpus,
            "clients": clients,
            "texts": texts.len(),
            "reps": args.reps,
            "seconds": round(median.seconds, 3),
            "texts_per_s": round(median.rate(), 1),
            "pass_rates": passes.iter().map(|p| round(p.rate(), 1)).collect::<Vec<_>>(),
            "p50_ms": round(1e3 * quantile(&latencies, 0.50), 2),
            "p99_ms": round(1e3 * quantile(&latencies, 0.99), 2),
            "max_ms": round(1e3 * latencies.last().copied().unwrap_or(f64::NAN), 2),
            "errors": median.errors,
            "mean_batch_requests": round(median.batched_requests / median.batches.max(1.0), 2),
            "client_cpu_s": round(median.client_cpu_s, 2),
            "offline_pass_rates": passes.iter().map(|p| round(p.offline_rate, 1)).collect::<Vec<_>>(),
            "offline_texts_per_s": round(offline_rates[offline_rates.len() / 2], 1),
            "pass_ratios": passes.iter().map(|p| round(p.rate() / p.offline_rate, 3)).collect::<Vec<_>>(),
            "ratio_to_offline": round(ratios[ratios.len() / 2], 3),
        });
        println!("{line}");
        last = Some(line);
    }

    let largest = last.context("no client count ran")?;
    let (max_difference, min_cosine) = server.compare(&texts[..offline_vectors.len()], &offline_vectors)?;
    let server_info = server.info()?;
    drop(server);
    let ratio = largest["ratio_to_offline"].as_f64().unwrap_or(f64::NAN);
    println!(
        "{}",
        json!({
            "bench": "cli.server_load",
            "mode": "summary",
            "precision": precision,
            "corpus": args.corpus,
            "texts": texts.len(),
            "offline_texts_per_s": largest["offline_texts_per_s"],
            "clients": largest["clients"],
            "server_texts_per_s": largest["texts_per_s"],
            "p99_ms": largest["p99_ms"],
            "ratio_to_offline": largest["ratio_to_offline"],
            "target_ratio": 0.8,
            "met": ratio >= 0.8,
            "max_abs_difference_to_offline": max_difference,
            "min_cosine_to_offline": min_cosine,
            // A text's vector depends on its batch's other texts only through rounding (bf16 rounds more).
            // (NaN, from a zero or broken vector, fails.)
            "check": if min_cosine >= MIN_COSINE { "ok" } else { "vectors differ" },
            "server_info": server_info,
        })
    );
    Ok(())
}

/// The embedder as `bertmt embed` builds it: the model's own settings, the precision asked for.
fn embedder(args: &Args) -> Result<(Embedder, String)> {
    let embedder = Embedder::from_dir(&args.model, tch::Device::Cpu, &EmbedOverrides::default())
        .with_context(|| format!("cannot load the model at {}", args.model.display()))?;
    let (embedder, precision) = embedder.with_precision(args.precision)?;
    Ok((embedder, precision.precision.to_string()))
}

/// The least cosine similarity between a text's vector from the server and from `embed` that passes the check.
const MIN_COSINE: f64 = 0.9999;

/// `bertmt embed`'s batch size.
const EMBED_BATCH: usize = 32;

fn offline(args: &Args, embedder: &Embedder, precision: &str, refs: &[&str]) -> Result<Value> {
    embedder.embed(refs, EMBED_BATCH)?;
    let mut seconds = Vec::new();
    for _ in 0..args.reps {
        let started = Instant::now();
        embedder.embed(refs, EMBED_BATCH)?;
        seconds.push(started.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    let median = seconds[seconds.len() / 2];
    // The same texts in groups of 32 in input order, each group one call: what the server's batches cost without
    // the server (each group is padded to its longest text; the whole input sorted by length is not).
    let mut grouped = Vec::new();
    for _ in 0..args.reps {
        let started = Instant::now();
        for group in refs.chunks(EMBED_BATCH) {
            embedder.embed(group, EMBED_BATCH)?;
        }
        grouped.push(started.elapsed().as_secs_f64());
    }
    grouped.sort_by(f64::total_cmp);
    let grouped_median = grouped[grouped.len() / 2];
    Ok(json!({
        "groups_of_32_seconds": round(grouped_median, 3),
        "groups_of_32_texts_per_s": round(refs.len() as f64 / grouped_median, 1),
        "bench": "cli.server_load",
        "mode": "offline",
        "corpus": args.corpus,
        "texts": refs.len(),
        "reps": args.reps,
        "batch": EMBED_BATCH,
        "precision": precision,
        "threads": tch::get_num_threads(),
        "seconds": round(median, 3),
        "pass_seconds": seconds.iter().map(|s| round(*s, 3)).collect::<Vec<_>>(),
        "texts_per_s": round(refs.len() as f64 / median, 1),
    }))
}

fn offline_vectors(embedder: &Embedder, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
    let vectors = embedder.embed(texts, EMBED_BATCH)?.vectors.to_kind(tch::Kind::Float);
    let dimension = usize::try_from(vectors.size()[1])?;
    let values = Vec::<f32>::try_from(vectors.flatten(0, -1))?;
    Ok(values.chunks(dimension).map(<[f32]>::to_vec).collect())
}

/// One load pass.
struct Pass {
    seconds: f64,
    texts: usize,
    latencies: Vec<f64>,
    errors: usize,
    batches: f64,
    batched_requests: f64,
    client_cpu_s: f64,
    /// The offline throughput measured right before the pass.
    offline_rate: f64,
}

impl Pass {
    fn rate(&self) -> f64 {
        (self.texts - self.errors) as f64 / self.seconds
    }
}

/// Sends every text once, from `clients` threads at a time.
fn load(server: &Server, texts: &[String], clients: usize) -> Result<Pass> {
    let texts: Arc<Vec<String>> = Arc::new(texts.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let url = server.url("/embed");
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (texts, next, url) = (Arc::clone(&texts), Arc::clone(&next), url.clone());
            std::thread::spawn(move || -> (Vec<f64>, usize) {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(120)).build();
                let (mut latencies, mut errors) = (Vec::new(), 0);
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(text) = texts.get(index) else { break };
                    let sent = Instant::now();
                    let answer = agent
                        .post(&url)
                        .send_json(json!({ "inputs": text }))
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.into_json::<Vec<Vec<f32>>>().map_err(|e| e.to_string()));
                    match answer {
                        Ok(vectors) if vectors.len() == 1 => latencies.push(sent.elapsed().as_secs_f64()),
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut pass = Pass {
        seconds: 0.0,
        texts: texts.len(),
        latencies: Vec::new(),
        errors: 0,
        batches: 0.0,
        batched_requests: 0.0,
        client_cpu_s: 0.0,
        offline_rate: f64::NAN,
    };
    for worker in workers {
        let (latencies, errors) = worker.join().map_err(|_| anyhow::anyhow!("a client thread panicked"))?;
        pass.latencies.extend(latencies);
        pass.errors += errors;
    }
    pass.seconds = started.elapsed().as_secs_f64();
    Ok(pass)
}

/// The running `bertmt serve`; stopped (SIGTERM, then waited for) when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(args: &Args) -> Result<Self> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bertmt"));
        command
            .args(["serve", "--port", "0", "--device", "cpu", "--precision", &args.precision.to_string()])
            .arg("--model")
            .arg(&args.model)
            .args(&args.serve_args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(threads) = args.threads {
            command.env("OMP_NUM_THREADS", threads.to_string());
        }
        let mut child = command.spawn().context("cannot start bertmt serve")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).context("bertmt serve said nothing")?;
        let Some(address) = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split(':').take(2).collect::<Vec<_>>().get(..2).map(|p| p.join(":")))
        else {
            let _ = child.kill();
            bail!("bertmt serve did not say where it listens: {line:?}");
        };
        // Keep reading its stdout so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in reader.lines() {});
        Ok(Self { child, base: format!("http://{address}") })
    }

    fn url(&self, route: &str) -> String {
        format!("{}{route}", self.base)
    }

    fn info(&self) -> Result<Value> {
        Ok(ureq::get(&self.url("/info")).call()?.into_json()?)
    }

    /// The server's batch histogram so far: (batches run, requests in them).
    fn batch_histogram(&self) -> Result<(f64, f64)> {
        let text = ureq::get(&self.url("/metrics")).call()?.into_string()?;
        let value = |suffix: &str| -> Result<f64> {
            text.lines()
                .find(|l| l.split_whitespace().next().is_some_and(|name| name.ends_with(suffix)))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("/metrics has no {suffix} line"))
        };
        Ok((value("batch_requests_count")?, value("batch_requests_sum")?))
    }

    /// The largest absolute difference and the least cosine similarity between the server's vectors and `expected`.
    fn compare(&self, texts: &[String], expected: &[Vec<f32>]) -> Result<(f64, f64)> {
        let (mut largest, mut least_cosine) = (0f64, 1f64);
        for (text, expected) in texts.iter().zip(expected) {
            let vectors: Vec<Vec<f32>> =
                ureq::post(&self.url("/embed")).send_json(json!({ "inputs": text }))?.into_json()?;
            let got = vectors.first().context("an empty answer")?;
            if got.len() != expected.len() {
                bail!("the server's vector has {} values, the offline one {}", got.len(), expected.len());
            }
            let (mut dot, mut got_norm, mut expected_norm) = (0f64, 0f64, 0f64);
            for (&a, &b) in got.iter().zip(expected) {
                largest = largest.max(f64::from((a - b).abs()));
                dot += f64::from(a) * f64::from(b);
                got_norm += f64::from(a) * f64::from(a);
                expected_norm += f64::from(b) * f64::from(b);
            }
            let cosine = dot / (got_norm.sqrt() * expected_norm.sqrt());
            // NaN (a zero or broken vector) must not vanish in `min`.
            least_cosine = if cosine.is_nan() || least_cosine.is_nan() { f64::NAN } else { least_cosine.min(cosine) };
        }
        Ok((largest, least_cosine))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM: the server drains and exits 0.
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) of this process so far, from `/proc/self/stat` (0 where there is none).
fn own_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the command name (which is in parentheses and may hold spaces): utime is the 12th, stime the 13th.
    let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}
