//! Real groups of two (and three) ranks on loopback: a test runs the test binary again as one child process per rank,
//! each running the same test, told its role through `DISTRIBUTED_TEST_ROLE` (which makes the test play that role
//! instead, see [`played_rank_role`]) and its rank through the torchrun variables. The children print `RESULT ...` lines; the
//! parent checks their exit codes and those lines, and kills them if they outlive a deadline.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use distributed::{DistributedError, GroupConfig, ProcessGroup};
use tch::{Device, Kind, Tensor};

const ROLE: &str = "DISTRIBUTED_TEST_ROLE";
const CPU: Device = Device::Cpu;

// ---------------------------------------------------------------------------------------------------------------
// The parent side.

/// A port nothing listens on right now (the OS picks it; the listener is dropped at once).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// One child process, its output collected by two reader threads; killed when dropped if still running.
struct RankProcess {
    name: String,
    child: Child,
    lines: Receiver<String>,
    log: Arc<Mutex<String>>,
    status: Option<ExitStatus>,
}

impl RankProcess {
    fn spawn(role: &str, name: &str, env: &[(&str, String)], removed: &[&str]) -> RankProcess {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut command = Command::new(exe);
        command
            .args([test_of(role), "--exact", "--nocapture", "--test-threads=1"])
            .env(ROLE, role)
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for variable in [
            "WORLD_SIZE",
            "RANK",
            "LOCAL_RANK",
            "MASTER_ADDR",
            "MASTER_PORT",
            "GLOO_SOCKET_IFNAME",
            distributed::RENDEZVOUS_TIMEOUT_VARIABLE,
        ] {
            command.env_remove(variable);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        for key in removed {
            command.env_remove(key);
        }
        let mut child = command.spawn().expect("spawn a rank process");
        let log = Arc::new(Mutex::new(String::new()));
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stdout_log = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(mut line) = line else { break };
                // libtest prints "test <name> ... " without a newline before the first line of the test.
                if let Some(start) = line.find("RESULT ") {
                    line.drain(..start);
                }
                stdout_log.lock().expect("log lock").push_str(&format!("{line}\n"));
                let _ = sender.send(line);
            }
        });
        let mut stderr = child.stderr.take().expect("piped stderr");
        let stderr_log = Arc::clone(&log);
        thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            stderr_log.lock().expect("log lock").push_str(&format!("--- stderr ---\n{text}"));
        });
        RankProcess { name: name.to_owned(), child, lines, log, status: None }
    }

    fn spawn_rank(role: &str, rank: usize, port: u16) -> RankProcess {
        RankProcess::spawn_rank_of(role, rank, 2, port, &[])
    }

    /// Rank `rank` of `world_size`, with `extra` variables.
    fn spawn_rank_of(role: &str, rank: usize, world_size: usize, port: u16, extra: &[(&str, String)]) -> RankProcess {
        let mut env = vec![
            ("WORLD_SIZE", world_size.to_string()),
            ("RANK", rank.to_string()),
            ("LOCAL_RANK", rank.to_string()),
            ("MASTER_ADDR", "127.0.0.1".to_owned()),
            ("MASTER_PORT", port.to_string()),
        ];
        env.extend(extra.iter().cloned());
        RankProcess::spawn(role, &format!("rank {rank}"), &env, &[])
    }

    fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// Waits for a stdout line starting with `prefix`, or panics at `deadline`.
    fn wait_line(&mut self, prefix: &str, deadline: Instant, all: &mut [&mut RankProcess]) -> String {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    fail(all, &format!("{} printed no {prefix:?} line in time", self.name), Some(self))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    fail(all, &format!("{} exited without printing {prefix:?}", self.name), Some(self))
                }
            }
        }
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("poll a child");
        }
        self.status
    }
}

impl Drop for RankProcess {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Kills every child and panics with their output.
fn fail(ranks: &mut [&mut RankProcess], why: &str, extra: Option<&mut RankProcess>) -> ! {
    let mut report = format!("{why}\n");
    let extra_log = extra.map(|rank| {
        let _ = rank.child.kill();
        format!("=== {} ===\n{}", rank.name, rank.log())
    });
    for rank in ranks.iter_mut() {
        let _ = rank.child.kill();
        let _ = rank.child.wait();
        report.push_str(&format!("=== {} ===\n{}", rank.name, rank.log()));
    }
    if let Some(extra_log) = extra_log {
        report.push_str(&extra_log);
    }
    panic!("{report}");
}

/// Waits for every child to exit successfully before `deadline`; returns their logs.
fn expect_success(ranks: &mut [&mut RankProcess], deadline: Instant) -> Vec<String> {
    loop {
        let statuses: Vec<Option<ExitStatus>> = ranks.iter_mut().map(|rank| rank.try_wait()).collect();
        if let Some(index) = statuses.iter().position(|s| s.is_some_and(|s| !s.success())) {
            let why = format!("{} failed: {:?}", ranks[index].name, statuses[index]);
            fail(ranks, &why, None);
        }
        if statuses.iter().all(Option::is_some) {
            // The reader threads finish once the pipes close; give them a moment.
            thread::sleep(Duration::from_millis(100));
            return ranks.iter().map(|rank| rank.log()).collect();
        }
        if Instant::now() > deadline {
            fail(ranks, "the ranks did not finish before the deadline", None);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn assert_line(log: &str, line: &str) {
    assert!(log.lines().any(|l| l == line), "no line {line:?} in:\n{log}");
}

#[test]
fn collectives_give_exact_results_on_both_ranks() {
    if played_rank_role() {
        return;
    }
    let port = free_port();
    let mut rank0 = RankProcess::spawn_rank("collectives", 0, port);
    let mut rank1 = RankProcess::spawn_rank("collectives", 1, port);
    let logs = expect_success(&mut [&mut rank0, &mut rank1], Instant::now() + Duration::from_secs(60));
    for (rank, log) in logs.iter().enumerate() {
        assert_line(log, &format!("RESULT rank {rank} of 2"));
        assert_line(log, "RESULT all_reduce_sum exact");
        assert_line(log, "RESULT broadcast exact");
        assert_line(log, "RESULT bad arguments refused, group still usable");
        assert_line(log, "RESULT barrier returned");
    }
}

#[test]
fn a_killed_peer_fails_the_collective_within_seconds_not_at_the_timeout() {
    if played_rank_role() {
        return;
    }
    let port = free_port();
    let mut rank0 = RankProcess::spawn_rank("killed_peer", 0, port);
    let mut rank1 = RankProcess::spawn_rank("killed_peer", 1, port);
    let deadline = Instant::now() + Duration::from_secs(60);
    rank1.wait_line("RESULT ready", deadline, &mut [&mut rank0]);
    rank0.wait_line("RESULT entering all_reduce_sum", deadline, &mut [&mut rank1]);
    // Rank 0 is now blocked in an all-reduce that rank 1 never joins.
    thread::sleep(Duration::from_millis(500));
    rank1.child.kill().expect("SIGKILL rank 1");
    let killed = Instant::now();
    // The group's timeout is 20 s: an error well before it comes from the closed connection.
    let line = rank0.wait_line("RESULT collective error", killed + Duration::from_secs(8), &mut [&mut rank1]);
    let after_kill = killed.elapsed();
    println!("rank 0, {after_kill:?} after rank 1 was killed: {line}");
    assert!(after_kill < Duration::from_secs(5), "rank 0 saw the dead peer only {after_kill:?} after the kill");
    assert!(line.contains("a peer process exited or is unreachable"), "{line}");
    let logs = expect_success(&mut [&mut rank0], killed + Duration::from_secs(15));
    assert_line(&logs[0], "RESULT later collectives fail at once");
    assert_line(&logs[0], "RESULT group dropped");
}

#[test]
fn a_hung_peer_fails_the_collective_at_the_timeout() {
    if played_rank_role() {
        return;
    }
    let port = free_port();
    let mut rank0 = RankProcess::spawn_rank("hung_peer", 0, port);
    let mut rank1 = RankProcess::spawn_rank("hung_peer", 1, port);
    let deadline = Instant::now() + Duration::from_secs(60);
    rank1.wait_line("RESULT ready", deadline, &mut [&mut rank0]);
    let logs = expect_success(&mut [&mut rank0], deadline);
    drop(rank1);
    let line = logs[0].lines().find(|l| l.starts_with("RESULT collective error")).expect("an error line");
    println!("rank 0: {line}");
    assert!(line.contains("timeout"), "{line}");
    assert_line(&logs[0], "RESULT failed after the timeout, not before");
}

#[test]
fn from_env_reads_this_process_environment() {
    if played_rank_role() {
        return;
    }
    let port = free_port().to_string();
    let bad_rank = [
        ("WORLD_SIZE", "2".to_owned()),
        ("RANK", "2".to_owned()),
        ("MASTER_ADDR", "127.0.0.1".to_owned()),
        ("MASTER_PORT", port.clone()),
    ];
    let mut bad = RankProcess::spawn("from_env", "bad RANK", &bad_rank, &[]);
    let single = [("RANK", "0".to_owned()), ("MASTER_PORT", "abc".to_owned())];
    let mut alone = RankProcess::spawn("from_env", "no WORLD_SIZE", &single, &["WORLD_SIZE"]);
    let logs = expect_success(&mut [&mut bad, &mut alone], Instant::now() + Duration::from_secs(60));
    assert_line(&logs[0], "RESULT Env RANK Some(\"2\")");
    assert_line(&logs[1], "RESULT single process");
}

#[test]
fn ranks_that_start_late_are_reported_until_they_join() {
    if played_rank_role() {
        return;
    }
    // Three ranks started one after the other, each once the previous one has said what it waits for.
    let port = free_port();
    let deadline = Instant::now() + Duration::from_secs(60);
    let spawn = |rank| {
        let limit = [(distributed::RENDEZVOUS_TIMEOUT_VARIABLE, "45".to_owned())];
        RankProcess::spawn_rank_of("late", rank, 3, port, &limit)
    };
    let mut rank1 = spawn(1);
    let line = rank1.wait_line("RESULT progress rank 1 of 3: still waiting for rank 0's store", deadline, &mut []);
    assert!(line.contains(&format!("at 127.0.0.1:{port} (connection refused")), "{line}");
    let mut rank0 = spawn(0);
    let waiting_for_2 = format!("waiting at 127.0.0.1:{port} for rank 2 (2 of 3 joined); giving up in ");
    let line = rank0.wait_line("RESULT progress rank 0 of 3", deadline, &mut [&mut rank1]);
    assert!(line.contains(&waiting_for_2), "{line}");
    // Once rank 1 reaches rank 0's store, it too sees who is missing.
    rank1.wait_line(&format!("RESULT progress rank 1 of 3: {waiting_for_2}"), deadline, &mut [&mut rank0]);
    let mut rank2 = spawn(2);
    let logs = expect_success(&mut [&mut rank0, &mut rank1, &mut rank2], deadline);
    for (rank, log) in logs.iter().enumerate() {
        assert_line(log, &format!("RESULT rank {rank} of 3"));
        assert_line(log, "RESULT sum 3");
    }
    // Rank 2 found everyone there: it had nothing to report.
    assert!(!logs[2].contains("RESULT progress"), "{}", logs[2]);
}

#[test]
fn a_rendezvous_without_peers_fails_at_the_timeout_naming_the_master() {
    let timeout = Duration::from_secs(1);
    for rank in [0, 1] {
        // Rank 0 hosts the store and waits for rank 1; rank 1 finds no store to connect to.
        let port = free_port();
        let started = Instant::now();
        let result = ProcessGroup::new("127.0.0.1", port, rank, 2, timeout);
        let elapsed = started.elapsed();
        match result {
            Err(error @ DistributedError::Rendezvous { .. }) => {
                let text = error.to_string();
                println!("rank {rank} after {elapsed:?}: {text}");
                assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
                assert!(text.contains(&format!("rank {rank} of 2")), "{text}");
                assert!(text.contains("1s"), "{text}");
            }
            other => panic!("rank {rank}: expected a Rendezvous error, got {other:?}"),
        }
        assert!(elapsed >= timeout / 2, "rank {rank} gave up after {elapsed:?}, before the timeout");
        assert!(elapsed < Duration::from_secs(8), "rank {rank} took {elapsed:?} for a 1 s timeout");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The child side.

/// The test that starts rank processes of `role`; they run it again, and it plays the role.
fn test_of(role: &str) -> &'static str {
    match role {
        "collectives" => "collectives_give_exact_results_on_both_ranks",
        "killed_peer" => "a_killed_peer_fails_the_collective_within_seconds_not_at_the_timeout",
        "hung_peer" => "a_hung_peer_fails_the_collective_at_the_timeout",
        "from_env" => "from_env_reads_this_process_environment",
        "late" => "ranks_that_start_late_are_reported_until_they_join",
        other => panic!("unknown role {other}"),
    }
}

/// In a rank process (`DISTRIBUTED_TEST_ROLE` set): plays the role and says so, and the test skips its parent part.
fn played_rank_role() -> bool {
    let Ok(role) = std::env::var(ROLE) else { return false };
    match role.as_str() {
        "collectives" => collectives(),
        "killed_peer" => killed_peer(),
        "hung_peer" => hung_peer(),
        "from_env" => from_env(),
        "late" => late(),
        other => panic!("unknown role {other}"),
    }
    true
}

fn result(line: &str) {
    println!("RESULT {line}");
}

fn join(timeout: Duration) -> ProcessGroup {
    let started = Instant::now();
    let group = ProcessGroup::from_env(timeout).expect("group").expect("WORLD_SIZE=2");
    println!("group formed in {:?}", started.elapsed());
    result(&format!("rank {} of {}", group.rank(), group.world_size()));
    group
}

/// Rank `rank`'s inputs: f32 and f64 and i64 tensors of several shapes, with values whose sums are exact.
struct Inputs {
    matrix: Tensor, // f32 [3, 4]
    vector: Tensor, // f64 [5]
    base: Tensor,   // f32 [4, 6]; its column 2 is reduced as a non-contiguous view
    counts: Tensor, // i64 [2, 3]
    scalar: Tensor, // f32 []
    block: Tensor,  // f64 [2, 3], its transpose reduced
}

impl Inputs {
    fn of(rank: usize) -> Inputs {
        let r = rank as f64;
        Inputs {
            matrix: Tensor::arange(12, (Kind::Float, CPU)).view([3, 4]) * (r + 1.0) + 0.125,
            vector: (Tensor::arange(5, (Kind::Double, CPU)) + 0.1) * (r + 1.5),
            base: Tensor::arange(24, (Kind::Float, CPU)).view([4, 6]) * (10.0 * r + 1.0) - 3.0,
            counts: Tensor::arange(6, (Kind::Int64, CPU)).view([2, 3]) * (rank as i64 + 7),
            scalar: Tensor::from(0.75f32 + rank as f32),
            block: Tensor::arange(6, (Kind::Double, CPU)).view([2, 3]) / 3.0 + r,
        }
    }

    /// The list handed to `all_reduce_sum`: views of this rank's tensors (sharing their storage).
    fn list(&self) -> Vec<Tensor> {
        vec![
            self.matrix.shallow_clone(),
            self.vector.shallow_clone(),
            self.base.select(1, 2), // a column: stride 6
            self.counts.shallow_clone(),
            self.scalar.shallow_clone(),
            self.block.tr(), // transposed: [3, 2], strides [1, 3]
        ]
    }
}

fn assert_equal(name: &str, actual: &Tensor, expected: &Tensor) {
    assert_eq!(actual.kind(), expected.kind(), "{name}: dtype");
    assert!(actual.equal(expected), "{name}: got {actual} expected {expected}");
}

fn collectives() {
    let group = join(Duration::from_secs(20));
    let rank = group.rank();

    let mine = Inputs::of(rank);
    let (zero, one) = (Inputs::of(0), Inputs::of(1));
    group.all_reduce_sum(&mine.list()).expect("all_reduce_sum");
    // The sums land in this rank's own tensors (through the views for the non-contiguous ones).
    assert_equal("matrix", &mine.matrix, &(&zero.matrix + &one.matrix));
    assert_equal("vector", &mine.vector, &(&zero.vector + &one.vector));
    assert_equal("counts", &mine.counts, &(&zero.counts + &one.counts));
    assert_equal("scalar", &mine.scalar, &(&zero.scalar + &one.scalar));
    assert_equal("block", &mine.block, &(&zero.block + &one.block));
    // Only the reduced column of `base` changed.
    let expected_base = Inputs::of(rank).base;
    expected_base.select(1, 2).copy_(&(zero.base.select(1, 2) + one.base.select(1, 2)));
    assert_equal("base", &mine.base, &expected_base);
    group.all_reduce_sum(&[]).expect("an empty list is a no-op");
    result("all_reduce_sum exact");

    let weights = if rank == 0 {
        Tensor::arange(6, (Kind::Float, CPU)) * 1.5 + 0.25
    } else {
        Tensor::zeros([6], (Kind::Float, CPU))
    };
    let table = Tensor::full([3, 4], rank as f64 + 2.0, (Kind::Double, CPU));
    let flags = Tensor::from_slice(&[rank == 0, rank != 0]);
    group.broadcast(&[weights.shallow_clone(), table.tr(), flags.shallow_clone()], 0).expect("broadcast from 0");
    assert_equal("weights", &weights, &(Tensor::arange(6, (Kind::Float, CPU)) * 1.5 + 0.25));
    assert_equal("table", &table, &Tensor::full([3, 4], 2.0, (Kind::Double, CPU)));
    assert_equal("flags", &flags, &Tensor::from_slice(&[true, false]));
    let from_one = Tensor::from_slice(&[rank as i64 * 100 + 5]);
    group.broadcast(&[from_one.shallow_clone()], 1).expect("broadcast from 1");
    assert_equal("from_one", &from_one, &Tensor::from_slice(&[105i64]));
    result("broadcast exact");

    // Refused before anything is sent, so the group stays usable.
    match group.broadcast(&[weights.shallow_clone()], 2) {
        Err(DistributedError::Argument { operation: "broadcast", message }) => assert!(message.contains("root 2")),
        other => panic!("root 2: {other:?}"),
    }
    match group.all_reduce_sum(&[Tensor::from_slice(&[1.0f32]), flags.shallow_clone()]) {
        Err(DistributedError::Argument { operation: "all_reduce_sum", message }) => {
            assert!(message.contains("tensor 1") && message.contains("Bool"), "{message}")
        }
        other => panic!("bool sum: {other:?}"),
    }
    let after = Tensor::from_slice(&[rank as f32 + 1.0]);
    group.all_reduce_sum(&[after.shallow_clone()]).expect("all_reduce_sum after refusals");
    assert_equal("after", &after, &Tensor::from_slice(&[3.0f32]));
    result("bad arguments refused, group still usable");

    group.barrier().expect("barrier");
    result("barrier returned");
}

/// Rank 1 is killed by the parent while rank 0 waits in an all-reduce.
fn killed_peer() {
    let group = join(Duration::from_secs(20));
    let warmup = Tensor::ones([1024], (Kind::Float, CPU));
    group.all_reduce_sum(&[warmup.shallow_clone()]).expect("a first all-reduce");
    if group.rank() == 1 {
        result("ready");
        thread::sleep(Duration::from_secs(60));
        panic!("rank 1 was not killed");
    }
    result("entering all_reduce_sum");
    let started = Instant::now();
    let outcome = group.all_reduce_sum(&[Tensor::ones([1024], (Kind::Float, CPU))]);
    let elapsed = started.elapsed();
    match outcome {
        Err(DistributedError::Collective { operation: "all_reduce_sum", message }) => {
            result(&format!("collective error after {elapsed:?}: {message}"));
        }
        other => panic!("expected a Collective error, got {other:?}"),
    }
    let started = Instant::now();
    match group.barrier() {
        Err(DistributedError::Collective { operation: "barrier", .. }) => {}
        other => panic!("a barrier after the failure: {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2), "the barrier took {:?}", started.elapsed());
    result("later collectives fail at once");
    drop(group);
    result("group dropped");
}

/// Rank 1 stops taking part (it sleeps) while rank 0 all-reduces with a 3 s timeout.
fn hung_peer() {
    let timeout = Duration::from_secs(3);
    let group = join(timeout);
    if group.rank() == 1 {
        result("ready");
        thread::sleep(Duration::from_secs(60));
        panic!("rank 1 was not killed");
    }
    let started = Instant::now();
    let outcome = group.all_reduce_sum(&[Tensor::ones([16], (Kind::Float, CPU))]);
    let elapsed = started.elapsed();
    match outcome {
        Err(DistributedError::Collective { operation: "all_reduce_sum", message }) => {
            result(&format!("collective error after {elapsed:?}: {message}"));
        }
        other => panic!("expected a Collective error, got {other:?}"),
    }
    assert!(elapsed >= timeout - Duration::from_millis(100), "failed after {elapsed:?}, before the {timeout:?}");
    assert!(elapsed < timeout * 3, "failed only after {elapsed:?}");
    result("failed after the timeout, not before");
}

/// Joins with progress every 0.5 s printed as `RESULT progress ...`, then sums ones over the group.
fn late() {
    let get = |name: &str| std::env::var(name).ok();
    // The collective timeout is short; the rendezvous timeout is the one the parent set (BERTMT_RENDEZVOUS_TIMEOUT).
    let mut config = GroupConfig::from_vars(get, Duration::from_secs(10)).expect("variables").expect("WORLD_SIZE=3");
    assert_eq!(config.rendezvous_timeout, Duration::from_secs(45));
    config.progress_interval = Duration::from_millis(500);
    let group = ProcessGroup::connect_with_progress(&config, |progress| result(&format!("progress {progress}")))
        .expect("a group");
    result(&format!("rank {} of {}", group.rank(), group.world_size()));
    let ones = Tensor::ones([4], (Kind::Float, CPU));
    group.all_reduce_sum(&[ones.shallow_clone()]).expect("all_reduce_sum");
    assert_equal("ones", &ones, &Tensor::full([4], 3.0, (Kind::Float, CPU)));
    result("sum 3");
}

fn from_env() {
    match ProcessGroup::from_env(Duration::from_secs(5)) {
        Ok(None) => result("single process"),
        Ok(Some(group)) => panic!("unexpected group {group:?}"),
        Err(DistributedError::Env { variable, value, .. }) => result(&format!("Env {variable} {value:?}")),
        Err(other) => panic!("unexpected error {other}"),
    }
}
