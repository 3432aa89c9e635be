//! The rendezvous when it cannot complete: every wait reports who is missing and how long is left, every failure
//! says what happened, and nothing that can be known at once waits for the timeout. Ranks run on threads of this
//! process (no group is formed, so no Gloo mesh is needed); each call runs on its own thread and the test gives up
//! on it at a deadline, so a rendezvous that hangs fails the test instead of stalling it.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use distributed::{DistributedError, GroupConfig, ProcessGroup, RendezvousProgress, Waiting};

/// A port nothing listens on right now (the OS picks it; the listener is dropped at once).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port").local_addr().expect("local address").port()
}

fn config(rank: usize, world_size: usize, port: u16, rendezvous: Duration) -> GroupConfig {
    GroupConfig {
        master_addr: "127.0.0.1".into(),
        master_port: port,
        rank,
        world_size,
        interfaces: Vec::new(),
        timeout: Duration::from_secs(20),
        rendezvous_timeout: rendezvous,
        progress_interval: Duration::from_secs(1),
        agent_store: false,
    }
}

/// What one rank's attempt gave: its error (it must fail), when, and the progress it reported.
struct Outcome {
    error: DistributedError,
    elapsed: Duration,
    progress: Vec<(Duration, RendezvousProgress)>,
}

/// What the thread running one attempt sends back: its result, when, and the progress it reported (and when).
type Attempt = (Result<ProcessGroup, DistributedError>, Duration, Vec<(Duration, RendezvousProgress)>);

/// Starts `connect_with_progress(config)` on a thread.
fn start(config: GroupConfig) -> mpsc::Receiver<Attempt> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let started = Instant::now();
        let mut progress = Vec::new();
        let result = ProcessGroup::connect_with_progress(&config, |line| {
            println!("rank {} after {:?}: {line}", config.rank, started.elapsed());
            progress.push((started.elapsed(), line.clone()));
        });
        let _ = sender.send((result, started.elapsed(), progress));
    });
    receiver
}

/// Waits for a started attempt; panics if it has not returned within `limit` or if it formed a group.
fn finish(receiver: mpsc::Receiver<Attempt>, limit: Duration) -> Outcome {
    match receiver.recv_timeout(limit) {
        Ok((Err(error), elapsed, progress)) => {
            println!("failed after {elapsed:?}: {error}");
            Outcome { error, elapsed, progress }
        }
        Ok((Ok(group), _, _)) => panic!("unexpected group {group:?}"),
        Err(_) => panic!("the rendezvous said nothing for {limit:?}: it hangs"),
    }
}

fn run(config: GroupConfig, limit: Duration) -> Outcome {
    finish(start(config), limit)
}

/// Progress lines at about 1 s, 2 s, ...: one per interval, each with less time left than the one before.
fn assert_regular(progress: &[(Duration, RendezvousProgress)], at_least: usize) {
    assert!(progress.len() >= at_least, "{} progress reports, expected at least {at_least}", progress.len());
    for (index, (at, line)) in progress.iter().enumerate() {
        let due = Duration::from_secs(index as u64 + 1);
        assert!(*at >= due - Duration::from_millis(50), "report {index} came at {at:?}, before {due:?}");
        assert!(*at < due + Duration::from_millis(900), "report {index} came at {at:?}, long after {due:?}");
        assert!(line.to_string().contains("; giving up in "), "{line}");
    }
    for pair in progress.windows(2) {
        assert!(pair[1].1.left < pair[0].1.left, "time left does not go down: {pair:?}");
    }
}

#[test]
fn rank_0_alone_reports_the_missing_rank_every_interval_then_names_it() {
    let port = free_port();
    let outcome = run(config(0, 2, port, Duration::from_millis(3500)), Duration::from_secs(20));
    assert_regular(&outcome.progress, 3);
    for (_, line) in &outcome.progress {
        assert_eq!(line.waiting, Waiting::Ranks { missing: vec![1] });
        assert_eq!((line.rank, line.world_size), (0, 2));
        let text = line.to_string();
        assert!(
            text.starts_with(&format!("rank 0 of 2: waiting at 127.0.0.1:{port} for rank 1 (1 of 2 joined)")),
            "{text}"
        );
    }
    match &outcome.error {
        DistributedError::Rendezvous { missing, master, .. } => {
            assert_eq!(missing, &[1]);
            assert_eq!(master, &format!("127.0.0.1:{port}"));
        }
        other => panic!("expected a Rendezvous error, got {other:?}"),
    }
    let text = outcome.error.to_string();
    assert_eq!(
        text,
        format!(
            "rank 0 of 2 could not form the process group at 127.0.0.1:{port}: rank 1 did not join within 3.5s \
             (1 of 2 joined)"
        )
    );
    assert!(outcome.elapsed >= Duration::from_millis(3500), "gave up after {:?}", outcome.elapsed);
    assert!(outcome.elapsed < Duration::from_secs(6), "gave up only after {:?}", outcome.elapsed);
}

#[test]
fn rank_1_with_nothing_at_the_port_says_it_is_still_connecting_then_names_rank_0() {
    let port = free_port();
    let outcome = run(config(1, 2, port, Duration::from_millis(3500)), Duration::from_secs(20));
    assert_regular(&outcome.progress, 3);
    for (_, line) in &outcome.progress {
        match &line.waiting {
            Waiting::RankZero { last_error } => assert!(last_error.contains("connection refused"), "{last_error}"),
            other => panic!("expected RankZero, got {other:?}"),
        }
        let text = line.to_string();
        assert!(
            text.starts_with(&format!("rank 1 of 2: still waiting for rank 0's store at 127.0.0.1:{port} (")),
            "{text}"
        );
    }
    match &outcome.error {
        DistributedError::Rendezvous { missing, .. } => assert_eq!(missing, &[0]),
        other => panic!("expected a Rendezvous error, got {other:?}"),
    }
    let text = outcome.error.to_string();
    assert!(text.contains(&format!("at 127.0.0.1:{port}: rank 0 did not answer there within 3.5s")), "{text}");
    assert!(outcome.elapsed >= Duration::from_millis(3500), "gave up after {:?}", outcome.elapsed);
    assert!(outcome.elapsed < Duration::from_secs(6), "gave up only after {:?}", outcome.elapsed);
}

#[test]
fn ranks_that_reached_the_store_name_the_rank_that_never_came() {
    let port = free_port();
    // Rank 0 waits longer, so that rank 1 reaches its own timeout with rank 0's store still up.
    let zero = start(config(0, 3, port, Duration::from_millis(4500)));
    thread::sleep(Duration::from_millis(200));
    let one = start(config(1, 3, port, Duration::from_millis(3500)));
    for (rank, outcome) in [(0, finish(zero, Duration::from_secs(20))), (1, finish(one, Duration::from_secs(20)))] {
        assert!(!outcome.progress.is_empty(), "rank {rank} reported nothing");
        // Rank 1 may report once before it reaches rank 0's store; from then on both see rank 2 missing.
        let (_, last) = outcome.progress.last().expect("a report");
        assert_eq!(last.waiting, Waiting::Ranks { missing: vec![2] }, "rank {rank}");
        assert!(last.to_string().contains("for rank 2 (2 of 3 joined)"), "{last}");
        match &outcome.error {
            DistributedError::Rendezvous { missing, .. } => assert_eq!(missing, &[2], "rank {rank}"),
            other => panic!("rank {rank}: expected a Rendezvous error, got {other:?}"),
        }
        let text = outcome.error.to_string();
        assert!(
            text.contains(&format!("rank {rank} of 3 could not form the process group at 127.0.0.1:{port}")),
            "{text}"
        );
        let limit = if rank == 0 { "4.5s" } else { "3.5s" };
        assert!(text.ends_with(&format!("rank 2 did not join within {limit} (2 of 3 joined)")), "{text}");
    }
}

/// A program on `port` that accepts connections and says nothing, holding them open.
fn silent_listener() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    port
}

#[test]
fn a_silent_program_at_the_port_is_not_taken_for_rank_0() {
    let port = silent_listener();
    // The timeout is long: the error comes once the program fails to answer (10 s), not at the timeout.
    let started = Instant::now();
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let _ = sender.send(ProcessGroup::new("127.0.0.1", port, 1, 2, Duration::from_secs(60)).map(drop));
    });
    let result = receiver.recv_timeout(Duration::from_secs(20)).expect("no answer for 20 s: the rendezvous hangs");
    let elapsed = started.elapsed();
    let error = result.expect_err("a silent listener is no store");
    let text = error.to_string();
    println!("after {elapsed:?}: {text}");
    assert!(matches!(error, DistributedError::NotRendezvous { .. }), "{error:?}");
    assert!(
        text.starts_with(&format!("rank 1 of 2: 127.0.0.1:{port} answered but is not the training group's rank 0: ")),
        "{text}"
    );
    assert!(text.contains("did not answer the store's ping within 10s"), "{text}");
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
}

#[test]
fn a_silent_program_is_reported_within_a_short_timeout() {
    let port = silent_listener();
    let outcome = run(config(1, 2, port, Duration::from_secs(2)), Duration::from_secs(20));
    assert!(matches!(outcome.error, DistributedError::NotRendezvous { .. }), "{:?}", outcome.error);
    assert!(outcome.error.to_string().contains("did not answer the store's ping within"), "{}", outcome.error);
    assert!(outcome.elapsed < Duration::from_secs(4), "took {:?} for a 2 s timeout", outcome.elapsed);
}

#[test]
fn a_program_that_answers_otherwise_is_not_taken_for_rank_0() {
    // Answers anything with an HTTP error and closes, as a web server would.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buffer = [0u8; 64];
            let _ = stream.read(&mut buffer);
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        }
    });
    let outcome = run(config(1, 2, port, Duration::from_secs(60)), Duration::from_secs(20));
    let text = outcome.error.to_string();
    assert!(matches!(outcome.error, DistributedError::NotRendezvous { .. }), "{text}");
    assert!(text.contains("answered but is not the training group's rank 0"), "{text}");
    assert!(text.contains("\"HTTP\""), "{text}");
    assert!(outcome.elapsed < Duration::from_secs(2), "took {:?}", outcome.elapsed);
}

#[test]
fn an_unresolvable_master_addr_fails_at_once_naming_it() {
    for rank in [0, 1] {
        let port = free_port();
        let started = Instant::now();
        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            let result = ProcessGroup::new("no-such-host.invalid", port, rank, 2, Duration::from_secs(60)).map(drop);
            let _ = sender.send(result);
        });
        let result = receiver.recv_timeout(Duration::from_secs(20)).expect("no answer for 20 s: it waits");
        let elapsed = started.elapsed();
        let error = result.expect_err("the address does not resolve");
        let text = error.to_string();
        println!("rank {rank} after {elapsed:?}: {text}");
        match &error {
            DistributedError::Unresolvable { address, rank: r, .. } => {
                assert_eq!((address.as_str(), *r), ("no-such-host.invalid", rank))
            }
            other => panic!("expected Unresolvable, got {other:?}"),
        }
        assert!(text.starts_with("MASTER_ADDR \"no-such-host.invalid\""), "{text}");
        assert!(elapsed < Duration::from_secs(5), "rank {rank} took {elapsed:?}");
    }
}

#[test]
fn a_port_held_by_another_program_fails_at_once_saying_so() {
    for holder in ["127.0.0.1:0", "0.0.0.0:0"] {
        let held = TcpListener::bind(holder).expect("bind");
        let port = held.local_addr().expect("address").port();
        let started = Instant::now();
        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            let _ = sender.send(ProcessGroup::new("127.0.0.1", port, 0, 2, Duration::from_secs(60)).map(drop));
        });
        let result = receiver.recv_timeout(Duration::from_secs(20)).expect("no answer for 20 s: it waits");
        let elapsed = started.elapsed();
        let error = result.expect_err("the port is taken");
        let text = error.to_string();
        println!("port held on {holder}, after {elapsed:?}: {text}");
        assert!(matches!(error, DistributedError::Listen { port: p, .. } if p == port), "{error:?}");
        assert!(
            text.starts_with(&format!(
                "rank 0 cannot listen on MASTER_PORT {port}: the port is in use by another program"
            )),
            "{text}"
        );
        assert!(!text.contains("within"), "{text}");
        assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
        drop(held);
    }
}

#[test]
fn when_rank_0_gives_up_the_others_stop_at_once_naming_who_was_missing() {
    let port = free_port();
    let zero = start(config(0, 3, port, Duration::from_millis(2500)));
    thread::sleep(Duration::from_millis(200));
    // Rank 1 would wait a minute: it stops when rank 0 does.
    let one = finish(start(config(1, 3, port, Duration::from_secs(60))), Duration::from_secs(20));
    let zero = finish(zero, Duration::from_secs(20));
    assert!(zero.error.to_string().ends_with("rank 2 did not join within 2.5s (2 of 3 joined)"), "{}", zero.error);
    assert!(one.elapsed < Duration::from_secs(4), "rank 1 stopped only after {:?}", one.elapsed);
    match &one.error {
        DistributedError::Rendezvous { missing, .. } => assert_eq!(missing, &[2]),
        other => panic!("expected a Rendezvous error, got {other:?}"),
    }
    let text = one.error.to_string();
    assert!(text.contains("rank 0's store stopped answering"), "{text}");
    assert!(
        text.ends_with("rank 0 exited, having given up waiting or failed; rank 2 had not joined when last seen"),
        "{text}"
    );
}

#[test]
fn a_rank_started_twice_is_named() {
    let port = free_port();
    let zero = start(config(0, 3, port, Duration::from_secs(4)));
    thread::sleep(Duration::from_millis(200));
    let first = start(config(1, 3, port, Duration::from_secs(3)));
    thread::sleep(Duration::from_millis(500));
    let second = finish(start(config(1, 3, port, Duration::from_secs(3))), Duration::from_secs(20));
    let text = second.error.to_string();
    assert!(matches!(second.error, DistributedError::Membership { .. }), "{text}");
    assert!(text.contains("two processes were started with RANK=1"), "{text}");
    assert!(second.elapsed < Duration::from_secs(2), "took {:?}", second.elapsed);
    for outcome in [finish(zero, Duration::from_secs(20)), finish(first, Duration::from_secs(20))] {
        assert!(outcome.error.to_string().contains("rank 2 did not join within"), "{}", outcome.error);
    }
}

#[test]
fn ranks_with_different_world_sizes_are_stopped() {
    let port = free_port();
    let zero = start(config(0, 2, port, Duration::from_secs(3)));
    thread::sleep(Duration::from_millis(200));
    let one = finish(start(config(1, 3, port, Duration::from_secs(3))), Duration::from_secs(20));
    let text = one.error.to_string();
    assert!(matches!(one.error, DistributedError::Membership { .. }), "{text}");
    assert!(text.contains("WORLD_SIZE is 3 on rank 1 but 2 on rank 0"), "{text}");
    assert!(one.elapsed < Duration::from_secs(2), "took {:?}", one.elapsed);
    let zero = finish(zero, Duration::from_secs(20));
    assert!(zero.error.to_string().contains("rank 1 did not join"), "{}", zero.error);
}

#[test]
fn rank_0_behind_an_address_of_another_machine_says_so_at_once() {
    // 192.0.2.0/24 (TEST-NET-1) is never routed: rank 0's own connection cannot reach it.
    let port = free_port();
    let mut config = config(0, 2, port, Duration::from_secs(60));
    config.master_addr = "192.0.2.1".into();
    let outcome = run(config, Duration::from_secs(20));
    let text = outcome.error.to_string();
    assert!(text.contains("rank 0 must run on the machine MASTER_ADDR names"), "{text}");
    assert!(!text.contains("within 1m"), "{text}");
    assert!(outcome.elapsed < Duration::from_secs(7), "took {:?}", outcome.elapsed);
}
