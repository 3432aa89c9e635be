//! Data-parallel training with two real processes on loopback: each parent test runs this test binary twice more,
//! as rank 0 and rank 1 (the torchrun variables, and `TRAINER_TEST_ROLE` naming the role to play: see
//! [`played_role`]). The ranks write their final weights into a directory the parent gives them; the parent trains
//! the same model in one process with the global batch and compares.

mod common;

use common::{classification_data, max_difference, ner_data, tiny_model, weights};
use datasets::PreparedDataset;
use distributed::ProcessGroup;
use heads::FreezeStrategy;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tch::Tensor;
use trainer::{
    train_and_evaluate, Mode, NoObserver, Observer, RunControl, Session, StepRecord, Task, TaskData, TrainConfig,
    TrainError,
};

/// Trains `tasks` as one rank of `group`.
fn train_in_group(
    model: &heads::MultiTaskModel,
    tasks: TaskData<'_>,
    config: &TrainConfig,
    observer: &mut dyn Observer,
    group: &ProcessGroup,
) -> trainer::Result<trainer::TrainOutcome> {
    Session::new(model, tasks, FreezeStrategy::All, config.clone())?
        .in_group(group)
        .train(observer, &RunControl::default())
}

const ROLE: &str = "TRAINER_TEST_ROLE";
const OUT: &str = "TRAINER_TEST_OUT";
/// Examples per rank and step.
const PER_RANK_BATCH: usize = 4;

/// The runs both sides train: (name, mode, with NER data). Combined mode weighs each rank's NER loss by its share
/// of the global batch's labelled tokens, which differ between the slices.
const RUNS: [(&str, Mode, bool); 2] = [("classification", Mode::Separate, false), ("combined", Mode::Combined, true)];

fn config(mode: Mode, batch_size: usize) -> TrainConfig {
    TrainConfig { mode, epochs: 1, batch_size, learning_rate: 1e-3, seed: 11, ..TrainConfig::default() }
}

/// The data of every run: the same on every rank and in the single process.
fn data() -> (PreparedDataset, PreparedDataset) {
    // 77 and 45 examples, 61 and 36 of them for training: the last global batch of 8 is ragged.
    (classification_data(77), ner_data(45))
}

/// The role this process was started to play, when it is a rank process of `test`.
fn played_role(test: &str) -> Option<String> {
    std::env::var(ROLE).ok().filter(|role| role.starts_with(test))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("an ephemeral port")
}

fn spawn_rank(test: &str, role: &str, rank: usize, port: u16, out: &Path) -> Child {
    Command::new(std::env::current_exe().expect("the test binary"))
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(OUT, out)
        .env("WORLD_SIZE", "2")
        .env("RANK", rank.to_string())
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn a rank process")
}

/// Waits for `child` until `deadline`, killing it then; returns (exit status, stdout + stderr).
fn finish(mut child: Child, deadline: Instant) -> (std::process::ExitStatus, String) {
    while child.try_wait().expect("poll a rank").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("a rank's output");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status, text)
}

fn group() -> ProcessGroup {
    ProcessGroup::from_env(Duration::from_secs(20)).expect("a group").expect("WORLD_SIZE=2 is set")
}

fn weights_file(dir: &Path, run: &str, rank: usize) -> PathBuf {
    dir.join(format!("{run}-rank{rank}.ot"))
}

// ---------------------------------------------------------------------------------------------------------------

const SAME_AS_ONE: &str = "two_ranks_with_batch_b_train_as_one_process_with_batch_2b";

#[test]
fn two_ranks_with_batch_b_train_as_one_process_with_batch_2b() {
    if played_role(SAME_AS_ONE).is_some() {
        return rank_trains_every_run();
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let port = free_port();
    let ranks: Vec<Child> = (0..2).map(|rank| spawn_rank(SAME_AS_ONE, SAME_AS_ONE, rank, port, dir.path())).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    for (rank, child) in ranks.into_iter().enumerate() {
        let (status, log) = finish(child, deadline);
        assert!(status.success(), "rank {rank} failed ({status}):\n{log}");
    }

    let (classification, ner) = data();
    for (run, mode, with_ner) in RUNS {
        let model = tiny_model(0.0, 5);
        let tasks = {
            let data = TaskData::new().with(Task::Classification, &classification);
            if with_ner {
                data.with(Task::Ner, &ner)
            } else {
                data
            }
        };
        let config = config(mode, 2 * PER_RANK_BATCH);
        train_and_evaluate(&model, &FreezeStrategy::All, tasks, &config, None, &mut NoObserver).expect("one process");
        let single = weights(&model);

        let load = |rank| {
            let mut saved = Tensor::load_multi(weights_file(dir.path(), run, rank)).expect("a rank's weights");
            saved.sort_by(|a, b| a.0.cmp(&b.0));
            saved
        };
        let (rank0, rank1) = (load(0), load(1));
        let names = |w: &[(String, Tensor)]| w.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&rank0), names(&single), "{run}: the ranks saved other parameters");
        for ((name, a), (_, b)) in rank0.iter().zip(&rank1) {
            assert!(a.equal(b), "{run}: {name} differs between the ranks");
        }
        let difference = max_difference(&rank0, &single);
        assert!(difference < 1e-6, "{run}: the ranks' weights differ from one process's by {difference}");
        // The weights did move: the comparison is not between two untouched models.
        let untouched = weights(&tiny_model(0.0, 5));
        assert!(max_difference(&rank0, &untouched) > 1e-3, "{run}: training changed nothing");
    }
}

/// A rank of [`two_ranks_with_batch_b_train_as_one_process_with_batch_2b`]: trains every run in one group and
/// saves its weights.
fn rank_trains_every_run() {
    let out = PathBuf::from(std::env::var(OUT).expect("the output directory"));
    let group = group();
    let (classification, ner) = data();
    for (run, mode, with_ner) in RUNS {
        // A different initialisation on rank 1: rank 0's weights reach it by the broadcast at the start.
        let model = tiny_model(0.0, if group.rank() == 0 { 5 } else { 6 });
        let tasks = {
            let data = TaskData::new().with(Task::Classification, &classification);
            if with_ner {
                data.with(Task::Ner, &ner)
            } else {
                data
            }
        };
        let config = config(mode, PER_RANK_BATCH);
        train_in_group(&model, tasks, &config, &mut NoObserver, &group).expect("data-parallel training");
        let mut saved = weights(&model);
        saved.sort_by(|a, b| a.0.cmp(&b.0));
        Tensor::save_multi(&saved, weights_file(&out, run, group.rank())).expect("save the weights");
    }
}

// ---------------------------------------------------------------------------------------------------------------

const PEER_KILLED: &str = "a_killed_rank_stops_the_other_with_a_clear_error";

#[test]
fn a_killed_rank_stops_the_other_with_a_clear_error() {
    if let Some(role) = played_role(PEER_KILLED) {
        return rank_until_killed(&role);
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let port = free_port();
    let started = Instant::now();
    let survivor = spawn_rank(PEER_KILLED, &format!("{PEER_KILLED} survivor"), 0, port, dir.path());
    let victim = spawn_rank(PEER_KILLED, &format!("{PEER_KILLED} victim"), 1, port, dir.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    let (victim_status, victim_log) = finish(victim, deadline);
    let (status, log) = finish(survivor, deadline);
    assert!(victim_status.code().is_none(), "rank 1 should have died of SIGKILL ({victim_status}):\n{victim_log}");
    assert!(status.success(), "rank 0 did not report the failure as expected ({status}):\n{log}");
    let seconds: f64 = log
        .lines()
        .find_map(|line| line.split("RESULT failed after ").nth(1)?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("rank 0 printed no RESULT line:\n{log}"));
    // The group's timeout is 20 s; a peer that exits is noticed at once.
    assert!(seconds < 10.0, "rank 0 took {seconds} s to notice the dead peer:\n{log}");
    assert!(started.elapsed() < Duration::from_secs(60));
}

/// Kills its own process (SIGKILL, as the out-of-memory killer or a scheduler would) at the second step.
struct DieAtSecondStep;

impl Observer for DieAtSecondStep {
    fn on_step(&mut self, record: &StepRecord) {
        if record.global_step == 2 {
            let _ = Command::new("kill").args(["-KILL", &std::process::id().to_string()]).status();
            std::thread::sleep(Duration::from_secs(30));
        }
    }
}

/// Rank 1 (`victim`) trains until it kills itself; rank 0 (`survivor`) must get a `Distributed` error.
fn rank_until_killed(role: &str) {
    let group = group();
    let (classification, _) = data();
    let model = tiny_model(0.0, 5);
    let tasks = TaskData::new().with(Task::Classification, &classification);
    let config = config(Mode::Separate, PER_RANK_BATCH);
    let started = Instant::now();
    if role.ends_with("victim") {
        let _ = train_in_group(&model, tasks, &config, &mut DieAtSecondStep, &group);
        panic!("the victim outlived its own SIGKILL");
    }
    match train_in_group(&model, tasks, &config, &mut NoObserver, &group) {
        Err(error @ TrainError::Distributed(_)) => {
            let message = error.to_string();
            assert!(message.starts_with("data-parallel training stopped: "), "{message}");
            println!("RESULT failed after {:.3} s: {message}", started.elapsed().as_secs_f64());
        }
        Err(other) => panic!("expected a collective failure, got: {other}"),
        Ok(_) => panic!("training finished although rank 1 was killed"),
    }
}

// ---------------------------------------------------------------------------------------------------------------

const DISAGREE: &str = "ranks_with_other_settings_or_data_stop_naming_the_difference";

#[test]
fn ranks_with_other_settings_or_data_stop_naming_the_difference() {
    if let Some(role) = played_role(DISAGREE) {
        return rank_that_may_disagree(&role);
    }
    for (case, expected) in
        [("seed", "train.seed"), ("epochs", "train.epochs"), ("data", "data.classification.training")]
    {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        let ranks: Vec<Child> =
            (0..2).map(|rank| spawn_rank(DISAGREE, &format!("{DISAGREE} {case}"), rank, port, dir.path())).collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        for (rank, child) in ranks.into_iter().enumerate() {
            let (status, log) = finish(child, deadline);
            assert!(status.success(), "rank {rank} ({case}) did not stop as expected ({status}):\n{log}");
            assert!(log.contains("RESULT refused") && log.contains(expected), "rank {rank} ({case}):\n{log}");
        }
    }
}

/// Rank 1 changes one thing (`seed`, `epochs` or its data); both ranks must refuse before training.
fn rank_that_may_disagree(role: &str) {
    let group = group();
    let (mut classification, _) = data();
    let mut config = config(Mode::Separate, PER_RANK_BATCH);
    if group.rank() == 1 {
        match role.rsplit(' ').next() {
            Some("seed") => config.seed = 7,
            Some("epochs") => config.epochs = 2,
            _ => classification.sample_train(0.5, 1, 1).expect("a smaller sample"),
        }
    }
    let model = tiny_model(0.0, 5);
    let tasks = TaskData::new().with(Task::Classification, &classification);
    match train_in_group(&model, tasks, &config, &mut NoObserver, &group) {
        Err(TrainError::InvalidConfig(message)) => println!("RESULT refused: {message}"),
        Err(other) => panic!("expected a refusal, got: {other}"),
        Ok(_) => panic!("ranks with different settings trained together"),
    }
}
