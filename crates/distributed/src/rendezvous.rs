//! Forming a group: the steps before Gloo's mesh, each bounded by the rendezvous timeout and none of them silent.
//!
//! 1. `MASTER_ADDR` is resolved; an address that does not resolve is an error at once.
//! 2. Rank 0 listens on `MASTER_PORT` itself (a port held by another program is an error at once) and hands the
//!    socket to the `TCPStore` it hosts; the other ranks try to connect until rank 0's store answers its ping,
//!    and a program there that is not a store is an error as soon as it fails to answer. Under `torchrun`
//!    (`TORCHELASTIC_USE_AGENT_STORE=True`) its agent hosts the store, and rank 0 joins it as the others do.
//! 3. Every rank announces itself in the store (`bertmt/rank/<rank>`) and waits until all have.
//!
//! While a rank waits, every `progress_interval` it reports who is missing and how long is left
//! ([`RendezvousProgress`]); at the deadline the error names the address and the missing ranks.

use std::ffi::{c_char, c_int, CString};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::{describe_duration, ffi, take_message, timeout_millis, DistributedError, GroupConfig, Result};

/// The rendezvous timeout when [`RENDEZVOUS_TIMEOUT_VARIABLE`] is not set (or the collective timeout, if shorter):
/// 10 minutes, as `torchrun`'s default join timeout.
pub const DEFAULT_RENDEZVOUS_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The environment variable that sets the rendezvous timeout, in seconds (see [`GroupConfig::from_vars`]).
pub const RENDEZVOUS_TIMEOUT_VARIABLE: &str = "BERTMT_RENDEZVOUS_TIMEOUT";

/// How often a rank that is still waiting for the others reports it, by default.
pub const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_secs(30);

/// How long a program at `MASTER_ADDR:MASTER_PORT` may take to answer a store's ping before it is judged not to be
/// rank 0's store (a store answers within milliseconds).
const ANSWER_TIME: Duration = Duration::from_secs(10);

/// The longest single TCP connection attempt (an address that drops packets makes each attempt last this long).
const CONNECT_ATTEMPT: Duration = Duration::from_secs(5);

/// The pause between two connection attempts to rank 0.
const CONNECT_PAUSE: Duration = Duration::from_millis(250);

/// The pause between two looks at which ranks have joined.
const STORE_POLL: Duration = Duration::from_millis(50);

/// The store key holding rank 0's `WORLD_SIZE`.
const WORLD_SIZE_KEY: &str = "bertmt/world_size";

/// What a rank still waiting to form the group reports every `progress_interval`
/// ([`ProcessGroup::connect_with_progress`](crate::ProcessGroup::connect_with_progress)). Its `Display` is one line
/// for a person, e.g. `rank 0 of 3: waiting at 10.0.0.1:29500 for rank 2 (2 of 3 joined); giving up in 9m30s`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RendezvousProgress {
    /// This process's rank.
    pub rank: usize,
    /// The number of ranks expected.
    pub world_size: usize,
    /// `MASTER_ADDR:MASTER_PORT`.
    pub master: String,
    /// What it is waiting for.
    pub waiting: Waiting,
    /// How long it has waited so far.
    pub elapsed: Duration,
    /// How long it will still wait before giving up.
    pub left: Duration,
}

/// What a rank is waiting for at the rendezvous.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// (A rank other than 0.) Rank 0's store has not answered at `MASTER_ADDR:MASTER_PORT` yet; which other ranks
    /// have joined cannot be known before it does.
    RankZero {
        /// Why the last attempt failed, e.g. `connection refused: nothing listens there yet`.
        last_error: String,
    },
    /// The store is up and these ranks have not joined it yet.
    Ranks {
        /// The missing ranks, in order.
        missing: Vec<usize>,
    },
}

impl fmt::Display for RendezvousProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (rank, world_size, master) = (self.rank, self.world_size, &self.master);
        match &self.waiting {
            Waiting::RankZero { last_error } => {
                write!(f, "rank {rank} of {world_size}: still waiting for rank 0's store at {master} ({last_error})")?
            }
            Waiting::Ranks { missing } => write!(
                f,
                "rank {rank} of {world_size}: waiting at {master} for {} ({} of {world_size} joined)",
                describe_ranks(missing),
                world_size.saturating_sub(missing.len())
            )?,
        }
        write!(f, "; giving up in {}", describe_duration(self.left))
    }
}

/// `rank 2`, `ranks 1, 3`, `ranks 1-5, 9`: consecutive ranks as ranges.
pub(crate) fn describe_ranks(ranks: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut index = 0;
    while index < ranks.len() {
        let start = ranks[index];
        let mut end = start;
        while index + 1 < ranks.len() && ranks[index + 1] == end + 1 {
            index += 1;
            end += 1;
        }
        parts.push(if end > start { format!("{start}-{end}") } else { start.to_string() });
        index += 1;
    }
    let noun = if ranks.len() == 1 { "rank" } else { "ranks" };
    format!("{noun} {}", parts.join(", "))
}

/// The store this process joined once every rank has joined it: what Gloo's mesh is built on.
pub(crate) struct JoinedStore {
    pub(crate) store: Store,
    /// When the rendezvous must be over.
    pub(crate) deadline: Instant,
}

/// Runs the rendezvous that `config` describes (see the module docs), reporting through `on_progress`.
pub(crate) fn rendezvous(
    config: &GroupConfig,
    on_progress: &mut dyn FnMut(&RendezvousProgress),
) -> Result<JoinedStore> {
    let mut clock = Clock::start(config, on_progress);
    let addresses = resolve(config)?;
    let store = if config.rank == 0 && !config.agent_store {
        let listener = listen(config, &addresses)?;
        reaches_itself(config, &addresses, &clock)?;
        Store::create(config, Some(listener), clock.left()).map_err(|message| clock.failed(message, Vec::new()))?
    } else {
        wait_for_rank_zero(config, &addresses, &mut clock)?;
        Store::create(config, None, clock.left()).map_err(|message| {
            clock.failed(format!("{message} (rank 0's store answered a moment before: did rank 0 exit?)"), Vec::new())
        })?
    };
    join(config, &store, &mut clock)?;
    Ok(JoinedStore { store, deadline: clock.deadline })
}

/// `MASTER_ADDR:MASTER_PORT` as socket addresses; an error at once when the name does not resolve.
fn resolve(config: &GroupConfig) -> Result<Vec<SocketAddr>> {
    let unresolved = |message: String| DistributedError::Unresolvable {
        address: config.master_addr.clone(),
        rank: config.rank,
        message,
    };
    let addresses: Vec<SocketAddr> = (config.master_addr.as_str(), config.master_port)
        .to_socket_addrs()
        .map_err(|error| unresolved(error.to_string()))?
        .collect();
    if addresses.is_empty() {
        return Err(unresolved("it resolves to no address".to_owned()));
    }
    tracing::debug!(rank = config.rank, master = %config.master(), ?addresses, "MASTER_ADDR resolved");
    Ok(addresses)
}

/// Rank 0's listening socket on `MASTER_PORT`, on every interface: IPv4 only when `MASTER_ADDR` resolves to IPv4
/// addresses only (an IPv6 socket would not take IPv4 connections on hosts with `bindv6only`), else IPv6 and IPv4
/// where the host allows, else IPv4.
fn listen(config: &GroupConfig, addresses: &[SocketAddr]) -> Result<TcpListener> {
    let port = config.master_port;
    let refused = |error: io::Error| DistributedError::Listen {
        port,
        reason: if error.kind() == io::ErrorKind::AddrInUse {
            "the port is in use by another program (another run still going, or an unrelated service): stop it or \
             choose another MASTER_PORT for every rank"
                .to_owned()
        } else {
            error.to_string()
        },
    };
    if addresses.iter().all(SocketAddr::is_ipv4) {
        return TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).map_err(refused);
    }
    match TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)) {
        Ok(listener) => Ok(listener),
        Err(error) if error.kind() == io::ErrorKind::AddrInUse => Err(refused(error)),
        // No IPv6 on this host.
        Err(_) => TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).map_err(refused),
    }
}

/// Rank 0 connects to its own store through `MASTER_ADDR`, as the others will: an address that does not lead back
/// to this machine would otherwise stall the store's own connection until the timeout.
fn reaches_itself(config: &GroupConfig, addresses: &[SocketAddr], clock: &Clock<'_>) -> Result<()> {
    let attempt = clock.left().min(CONNECT_ATTEMPT).max(Duration::from_millis(1));
    let mut last = String::new();
    for address in addresses {
        match TcpStream::connect_timeout(address, attempt) {
            Ok(_) => return Ok(()),
            Err(error) if matches!(error.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) => {
                last = format!("no answer within {}", describe_duration(attempt))
            }
            Err(error) => last = error.to_string(),
        }
    }
    Err(clock.failed(
        format!(
            "rank 0 listens on port {} but cannot reach it through MASTER_ADDR={} ({last}): rank 0 must run on the \
             machine MASTER_ADDR names",
            config.master_port, config.master_addr
        ),
        Vec::new(),
    ))
}

/// What a connection attempt to rank 0 found.
enum Probe {
    /// Rank 0's store answered its ping.
    Store,
    /// Nothing answered (the reason, for the progress lines).
    Unreachable(String),
    /// A program answered, but not as a store (the reason).
    Foreign(String),
}

/// Tries to reach rank 0's store until it answers or the deadline passes, reporting every interval.
fn wait_for_rank_zero(config: &GroupConfig, addresses: &[SocketAddr], clock: &mut Clock<'_>) -> Result<()> {
    let nonce = std::process::id() ^ 0x6265_7274; // any value; the store echoes it
    loop {
        match probe(addresses, nonce, clock.left()) {
            Probe::Store => return Ok(()),
            Probe::Foreign(reason) => {
                return Err(DistributedError::NotRendezvous {
                    master: config.master(),
                    rank: config.rank,
                    world_size: config.world_size,
                    reason,
                })
            }
            Probe::Unreachable(last_error) => {
                if clock.expired() {
                    return Err(clock.failed(
                        format!(
                            "rank 0 did not answer there within {} (last attempt: {last_error}): is it running, on \
                             the machine MASTER_ADDR names, with the same MASTER_PORT?",
                            clock.limit()
                        ),
                        vec![0],
                    ));
                }
                if clock.report_due() {
                    clock.report(Waiting::RankZero { last_error });
                }
                clock.sleep(CONNECT_PAUSE);
            }
        }
    }
}

/// One attempt at each address: the first that accepts is asked for the store's ping.
fn probe(addresses: &[SocketAddr], nonce: u32, left: Duration) -> Probe {
    let attempt = left.min(CONNECT_ATTEMPT).max(Duration::from_millis(1));
    let mut last = String::from("no attempt");
    for address in addresses {
        match TcpStream::connect_timeout(address, attempt) {
            Ok(stream) => return ping(stream, nonce, left.min(ANSWER_TIME).max(Duration::from_millis(1))),
            Err(error) => last = describe_connect_error(&error, attempt),
        }
    }
    Probe::Unreachable(last)
}

/// Sends what a `TCPStore` client sends first (a validation and a ping) and checks that the ping comes back.
fn ping(mut stream: TcpStream, nonce: u32, answer_time: Duration) -> Probe {
    let mut request = [0u8; 16];
    // SAFETY: `request` has room for `request.len()` bytes.
    let length = unsafe { ffi::bertmt_c10d_store_ping_request(nonce, request.as_mut_ptr(), request.len()) };
    let request = &request[..length];
    let mut reply = [0u8; 4];
    let exchange = stream
        .set_read_timeout(Some(answer_time))
        .and_then(|()| stream.set_write_timeout(Some(answer_time)))
        .and_then(|()| stream.write_all(request))
        .and_then(|()| stream.read_exact(&mut reply));
    match exchange {
        Ok(()) if reply == nonce.to_ne_bytes() => Probe::Store,
        Ok(()) => Probe::Foreign(format!(
            "it answered the store's ping with {:?} instead of echoing it",
            String::from_utf8_lossy(&reply)
        )),
        Err(error) if matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
            Probe::Foreign(format!(
                "it accepted the connection but did not answer the store's ping within {}",
                describe_duration(answer_time)
            ))
        }
        // Rank 0 exiting, or its store starting or stopping, closes connections too: not a verdict, try again.
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ) =>
        {
            Probe::Unreachable(
                "it accepted the connection, then closed it without answering the store's ping".to_owned(),
            )
        }
        Err(error) => Probe::Unreachable(error.to_string()),
    }
}

fn describe_connect_error(error: &io::Error, attempt: Duration) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused: nothing listens there yet".to_owned(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            format!("no answer within {}: a firewall, or the wrong address?", describe_duration(attempt))
        }
        _ => error.to_string(),
    }
}

/// Announces this rank in the store and waits until every rank has, reporting the missing ones every interval.
fn join(config: &GroupConfig, store: &Store, clock: &mut Clock<'_>) -> Result<()> {
    // The missing ranks as last seen, for the error if rank 0's store goes away.
    let mut last_seen: Vec<usize> = Vec::new();
    let lost = |clock: &Clock<'_>, message: String, last_seen: &[usize]| {
        if config.rank == 0 {
            return clock.failed(format!("its own store failed: {message}"), last_seen.to_vec());
        }
        let mut text =
            format!("rank 0's store stopped answering ({message}): rank 0 exited, having given up waiting or failed");
        if !last_seen.is_empty() {
            text.push_str(&format!("; {} had not joined when last seen", describe_ranks(last_seen)));
        }
        clock.failed(text, last_seen.to_vec())
    };
    let world = i64::try_from(config.world_size).unwrap_or(i64::MAX);
    if config.rank == 0 {
        let total = store.add(WORLD_SIZE_KEY, world).map_err(|message| lost(clock, message, &[]))?;
        if total != world {
            return Err(DistributedError::Membership {
                master: config.master(),
                message: format!(
                    "another process wrote its WORLD_SIZE in the store before this rank 0 did: two processes were \
                     started with RANK=0 (or the store at {} is another run's)",
                    config.master()
                ),
            });
        }
    } else {
        // Rank 0 writes its WORLD_SIZE right after starting the store: 0 means not yet.
        loop {
            let theirs = store.add(WORLD_SIZE_KEY, 0).map_err(|message| lost(clock, message, &[]))?;
            if theirs == world {
                break;
            }
            if theirs != 0 {
                return Err(DistributedError::Membership {
                    master: config.master(),
                    message: format!(
                        "WORLD_SIZE is {} on rank {} but {theirs} on rank 0: start every rank with the same \
                         WORLD_SIZE",
                        config.world_size, config.rank
                    ),
                });
            }
            if clock.expired() {
                let message = format!(
                    "rank 0 did not write its WORLD_SIZE in the store there within {}: is the program at that \
                     address bertmt's rank 0?",
                    clock.limit()
                );
                return Err(clock.failed(message, Vec::new()));
            }
            if clock.report_due() {
                clock.report(Waiting::RankZero {
                    last_error: "a store answers there, but rank 0 has not written its WORLD_SIZE in it yet".to_owned(),
                });
            }
            clock.sleep(STORE_POLL);
        }
    }
    let keys: Vec<CString> = (0..config.world_size).map(rank_key).collect();
    let announced = store.add_key(&keys[config.rank], 1).map_err(|message| lost(clock, message, &[]))?;
    if announced > 1 {
        return Err(DistributedError::Membership {
            master: config.master(),
            message: format!(
                "rank {} has already joined: two processes were started with RANK={}",
                config.rank, config.rank
            ),
        });
    }
    tracing::debug!(rank = config.rank, master = %config.master(), "joined the store; waiting for the other ranks");
    let missing = |store: &Store| -> std::result::Result<Vec<usize>, String> {
        let mut missing = Vec::new();
        for (rank, key) in keys.iter().enumerate() {
            if !store.check(std::slice::from_ref(key))? {
                missing.push(rank);
            }
        }
        Ok(missing)
    };
    loop {
        if store.check(&keys).map_err(|message| lost(clock, message, &last_seen))? {
            return Ok(());
        }
        let expired = clock.expired();
        if expired || clock.report_due() {
            last_seen = missing(store).map_err(|message| lost(clock, message, &last_seen))?;
            if last_seen.is_empty() {
                // Every rank joined since the first look.
                return Ok(());
            }
            if expired {
                let joined = config.world_size - last_seen.len();
                let message = format!(
                    "{} did not join within {} ({joined} of {} joined)",
                    describe_ranks(&last_seen),
                    clock.limit(),
                    config.world_size
                );
                return Err(clock.failed(message, last_seen));
            }
            clock.report(Waiting::Ranks { missing: last_seen.clone() });
        }
        clock.sleep(STORE_POLL);
    }
}

fn rank_key(rank: usize) -> CString {
    CString::new(format!("bertmt/rank/{rank}")).expect("a key without NUL bytes")
}

/// The rendezvous's deadline and its progress reports.
struct Clock<'a> {
    config: &'a GroupConfig,
    started: Instant,
    deadline: Instant,
    next_report: Instant,
    on_progress: &'a mut dyn FnMut(&RendezvousProgress),
}

impl<'a> Clock<'a> {
    fn start(config: &'a GroupConfig, on_progress: &'a mut dyn FnMut(&RendezvousProgress)) -> Clock<'a> {
        let started = Instant::now();
        Clock {
            config,
            started,
            deadline: started + config.rendezvous_timeout,
            next_report: started + config.progress_interval,
            on_progress,
        }
    }

    fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Sleeps `pause`, or until the deadline or the next report if sooner.
    fn sleep(&self, pause: Duration) {
        let now = Instant::now();
        let mut until = (now + pause).min(self.deadline);
        if self.next_report > now {
            until = until.min(self.next_report);
        }
        std::thread::sleep(until.saturating_duration_since(now));
    }

    /// The rendezvous timeout, for a person.
    fn limit(&self) -> String {
        describe_duration(self.config.rendezvous_timeout)
    }

    /// Whether a progress report is due.
    fn report_due(&self) -> bool {
        Instant::now() >= self.next_report
    }

    /// Reports `waiting`, and schedules the next report an interval later.
    fn report(&mut self, waiting: Waiting) {
        let now = Instant::now();
        while self.next_report <= now {
            self.next_report += self.config.progress_interval;
        }
        let progress = RendezvousProgress {
            rank: self.config.rank,
            world_size: self.config.world_size,
            master: self.config.master(),
            waiting,
            elapsed: now - self.started,
            left: self.deadline.saturating_duration_since(now),
        };
        tracing::debug!(%progress, "rendezvous progress");
        (self.on_progress)(&progress);
    }

    /// The rendezvous error: `message` says why, `missing` the ranks known not to have joined.
    fn failed(&self, message: String, missing: Vec<usize>) -> DistributedError {
        DistributedError::Rendezvous {
            master: self.config.master(),
            rank: self.config.rank,
            world_size: self.config.world_size,
            timeout: self.config.rendezvous_timeout,
            missing,
            message,
        }
    }
}

/// A client of rank 0's `TCPStore` (on rank 0 also its server), through the bridge.
pub(crate) struct Store {
    raw: NonNull<ffi::Store>,
}

impl Store {
    /// With a `listener` (rank 0): the store served on its socket; without: a client of the store already there. Waits at most
    /// `timeout` to connect (the callers reached the store already, so this is normally at once).
    fn create(
        config: &GroupConfig,
        listener: Option<TcpListener>,
        timeout: Duration,
    ) -> std::result::Result<Store, String> {
        let addr = CString::new(config.master_addr.as_str()).map_err(|_| "the master address contains a NUL byte")?;
        let world_size = c_int::try_from(config.world_size).map_err(|_| "the world size is too large")?;
        let timeout_ms = timeout_millis(timeout.max(Duration::from_millis(1)))?;
        // Rank 0 hosts the store unless a launcher does (then it is a client, as the others).
        let hosts = listener.is_some();
        let listen_fd = listener.map_or(-1, into_fd);
        let mut raw: *mut ffi::Store = std::ptr::null_mut();
        let mut message: *mut c_char = std::ptr::null_mut();
        // SAFETY: `addr` is NUL-terminated and outlives the call; `raw` and `message` are valid out-pointers; the
        // bridge takes `listen_fd` (a listening socket this process owns, or -1) over.
        let status = unsafe {
            ffi::bertmt_c10d_store_new(
                addr.as_ptr(),
                c_int::from(config.master_port),
                c_int::from(hosts),
                world_size,
                listen_fd,
                timeout_ms,
                &mut raw,
                &mut message,
            )
        };
        if status != ffi::OK {
            // SAFETY: on failure `message` is null or a malloc'd string from the bridge, ours to free.
            return Err(unsafe { take_message(message) });
        }
        NonNull::new(raw).map(|raw| Store { raw }).ok_or_else(|| "the bridge returned no store".to_owned())
    }

    fn add(&self, key: &str, delta: i64) -> std::result::Result<i64, String> {
        let key = CString::new(key).map_err(|_| "a key with a NUL byte".to_owned())?;
        self.add_key(&key, delta)
    }

    fn add_key(&self, key: &CString, delta: i64) -> std::result::Result<i64, String> {
        let mut value = 0i64;
        let mut message: *mut c_char = std::ptr::null_mut();
        // SAFETY: `raw` is a live store; `key` is NUL-terminated; the out-pointers are valid.
        let status =
            unsafe { ffi::bertmt_c10d_store_add(self.raw.as_ptr(), key.as_ptr(), delta, &mut value, &mut message) };
        if status != ffi::OK {
            // SAFETY: as in `create`.
            return Err(unsafe { take_message(message) });
        }
        Ok(value)
    }

    /// Whether every key exists.
    fn check(&self, keys: &[CString]) -> std::result::Result<bool, String> {
        let pointers: Vec<*const c_char> = keys.iter().map(|key| key.as_ptr()).collect();
        let mut ready: c_int = 0;
        let mut message: *mut c_char = std::ptr::null_mut();
        // SAFETY: `raw` is a live store; `pointers` holds `len` NUL-terminated keys alive for the call.
        let status = unsafe {
            ffi::bertmt_c10d_store_check(self.raw.as_ptr(), pointers.as_ptr(), pointers.len(), &mut ready, &mut message)
        };
        if status != ffi::OK {
            // SAFETY: as in `create`.
            return Err(unsafe { take_message(message) });
        }
        Ok(ready != 0)
    }

    pub(crate) fn as_ptr(&self) -> *mut ffi::Store {
        self.raw.as_ptr()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: `raw` came from bertmt_c10d_store_new and is freed exactly once, here.
        unsafe { ffi::bertmt_c10d_store_free(self.raw.as_ptr()) };
    }
}

#[cfg(unix)]
fn into_fd(listener: TcpListener) -> c_int {
    std::os::fd::IntoRawFd::into_raw_fd(listener)
}

/// Elsewhere the store binds the port itself (just released: another program could take it in between).
#[cfg(not(unix))]
fn into_fd(listener: TcpListener) -> c_int {
    drop(listener);
    -1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_are_listed_as_ranges() {
        assert_eq!(describe_ranks(&[2]), "rank 2");
        assert_eq!(describe_ranks(&[1, 3]), "ranks 1, 3");
        assert_eq!(describe_ranks(&[1, 2, 3, 4, 5, 9]), "ranks 1-5, 9");
        assert_eq!(describe_ranks(&[0, 1, 4, 5, 7]), "ranks 0-1, 4-5, 7");
    }

    #[test]
    fn a_progress_line_says_who_is_missing_and_how_long_is_left() {
        let progress = RendezvousProgress {
            rank: 0,
            world_size: 4,
            master: "10.0.0.1:29500".into(),
            waiting: Waiting::Ranks { missing: vec![2, 3] },
            elapsed: Duration::from_secs(30),
            left: Duration::from_secs(570),
        };
        assert_eq!(
            progress.to_string(),
            "rank 0 of 4: waiting at 10.0.0.1:29500 for ranks 2-3 (2 of 4 joined); giving up in 9m30s"
        );
        let connecting = RendezvousProgress {
            rank: 1,
            waiting: Waiting::RankZero { last_error: "connection refused: nothing listens there yet".into() },
            ..progress
        };
        assert_eq!(
            connecting.to_string(),
            "rank 1 of 4: still waiting for rank 0's store at 10.0.0.1:29500 (connection refused: nothing listens \
             there yet); giving up in 9m30s"
        );
    }
}
