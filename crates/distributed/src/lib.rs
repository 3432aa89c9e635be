//! Data-parallel collectives between processes: an in-place sum of tensors over all ranks
//! ([`ProcessGroup::all_reduce_sum`], e.g. the gradients after each backward pass), a broadcast from one rank
//! ([`ProcessGroup::broadcast`], e.g. the initial weights) and a [`ProcessGroup::barrier`].
//!
//! # Engine
//!
//! The engine is libtorch's own c10d, the code under `torch.distributed`: a `TCPStore` for the rendezvous and a
//! `ProcessGroupGloo` for the collectives, reached through a small C++ bridge (`csrc/c10d_bridge.cpp`) since `tch`
//! binds none of it. Only the Gloo backend is bridged, so tensors must be dense CPU tensors; NCCL (GPU tensors) is
//! not bridged. Non-contiguous tensors are reduced through a contiguous copy written back into the caller's view.
//!
//! # Rendezvous
//!
//! Every rank connects to a `TCPStore` that rank 0 hosts at `MASTER_ADDR:MASTER_PORT`; the ranks exchange their
//! Gloo addresses through it and connect a full mesh of TCP connections. [`ProcessGroup::from_env`] reads the
//! variables that `torchrun` sets:
//!
//! | variable | meaning |
//! |---|---|
//! | `WORLD_SIZE` | number of processes; unset or `1` means a single process (no group) |
//! | `RANK` | this process, `0..WORLD_SIZE` |
//! | `MASTER_ADDR` | address or hostname of rank 0's machine |
//! | `MASTER_PORT` | a free TCP port on that machine |
//! | `GLOO_SOCKET_IFNAME` | optional: the network interface(s) Gloo uses, comma-separated (as in PyTorch) |
//! | `BERTMT_RENDEZVOUS_TIMEOUT` | optional: seconds the ranks wait for one another to form the group (600) |
//!
//! `LOCAL_RANK` and the other torchrun variables are ignored. Without `GLOO_SOCKET_IFNAME`, Gloo listens on
//! `MASTER_ADDR` itself when that is a loopback address, else on the address this machine's hostname resolves to
//! (falling back to loopback): on hosts whose hostname resolves to `127.0.1.1` set `GLOO_SOCKET_IFNAME`.
//!
//! Two processes on one host (`torchrun --nproc-per-node 2 --no-python <program>` sets the same variables):
//!
//! ```text
//! WORLD_SIZE=2 RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 <program> &
//! WORLD_SIZE=2 RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 <program>
//! ```
//!
//! Two hosts, `10.0.0.1` running rank 0 (its port 29500 must be reachable from the other host, as must the ports
//! Gloo picks on both):
//!
//! ```text
//! host 10.0.0.1: WORLD_SIZE=2 RANK=0 MASTER_ADDR=10.0.0.1 MASTER_PORT=29500 GLOO_SOCKET_IFNAME=eth0 <program>
//! host 10.0.0.2: WORLD_SIZE=2 RANK=1 MASTER_ADDR=10.0.0.1 MASTER_PORT=29500 GLOO_SOCKET_IFNAME=eth0 <program>
//! ```
//!
//! Creating the group blocks until every rank has arrived or the rendezvous timeout
//! ([`GroupConfig::rendezvous_timeout`]) has passed. Rank 0 listens on `MASTER_PORT` itself and hosts the store
//! there; the other ranks retry connecting until its store answers, then every rank announces itself in the store
//! and waits for the rest. While waiting, every [`GroupConfig::progress_interval`] (30 s by default) each rank
//! reports who is missing and how long it will still wait ([`RendezvousProgress`], through
//! [`ProcessGroup::connect_with_progress`] or as a `tracing` warning): rank 0, and the others once they reach its
//! store, name the ranks that have not joined; before that, a rank says it is still connecting to
//! `MASTER_ADDR:MASTER_PORT` and why the last attempt failed.
//!
//! # Failures
//!
//! Some failures are known at once and reported without waiting: a `MASTER_ADDR` that does not resolve
//! ([`DistributedError::Unresolvable`]), a `MASTER_PORT` that another program holds on rank 0's machine
//! ([`DistributedError::Listen`]), a program at `MASTER_ADDR:MASTER_PORT` that accepts connections but does not
//! answer as a store within 10 s ([`DistributedError::NotRendezvous`]), a `RANK` started twice or ranks with
//! different `WORLD_SIZE`s ([`DistributedError::Membership`]). At the rendezvous timeout the
//! [`DistributedError::Rendezvous`] error names the address and the ranks that did not join; when rank 0 gives up
//! (or exits), the ranks waiting in its store stop at once.
//!
//! The timeout given at creation bounds every collective. A peer that exits (or is killed)
//! closes its connections, and the collectives of the other ranks fail at once with
//! [`DistributedError::Collective`]; a peer that hangs makes them fail after the timeout. A group whose collective
//! failed is broken for good (every later collective fails too): drop it.
//!
//! # Vendored headers
//!
//! libtorch's `ProcessGroupGloo.hpp` includes gloo headers that the libtorch distribution does not ship, so the 17
//! headers it needs are vendored, unmodified, under `csrc/vendor/gloo` from `pytorch/gloo` (BSD licence, provenance
//! in `csrc/vendor/README.md`), with a hand-written `config.h`. The gloo code itself is the one compiled into
//! `libtorch_cpu.so`; the headers only have to match its class layouts.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use distributed::ProcessGroup;
//! use tch::{Device, Kind, Tensor};
//!
//! # fn main() -> Result<(), distributed::DistributedError> {
//! let weights = [Tensor::randn([3, 4], (Kind::Float, Device::Cpu))];
//! let grads = [Tensor::ones([3, 4], (Kind::Float, Device::Cpu))];
//! if let Some(group) = ProcessGroup::from_env(Duration::from_secs(300))? {
//!     // Every rank starts from rank 0's weights...
//!     group.broadcast(&weights, 0)?;
//!     // ...and, after each backward pass, steps with the gradients averaged over the ranks.
//!     group.all_reduce_sum(&grads)?;
//!     let mean: Vec<Tensor> = grads.iter().map(|grad| grad / group.world_size() as f64).collect();
//! #   drop(mean);
//! }
//! # Ok(())
//! # }
//! ```

use std::ffi::{c_char, c_int, CStr, CString};
use std::fmt;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use tch::{Device, Kind, Tensor};
use torch_sys::C_tensor;

mod rendezvous;

pub use rendezvous::{
    RendezvousProgress, Waiting, DEFAULT_PROGRESS_INTERVAL, DEFAULT_RENDEZVOUS_TIMEOUT, RENDEZVOUS_TIMEOUT_VARIABLE,
};

/// The least time Gloo gets to connect its mesh once every rank has joined the store, however little of the
/// rendezvous timeout is left.
const MIN_MESH_TIME: Duration = Duration::from_secs(5);

/// What went wrong: a bad torchrun variable, a bad argument, a rendezvous that did not complete, or a collective that
/// failed (a peer gone or hung).
#[derive(Debug, thiserror::Error)]
pub enum DistributedError {
    /// A torchrun environment variable is missing or malformed.
    #[error("environment variable {variable} {}: expected {expected}", describe_value(.value))]
    Env {
        /// The variable, e.g. `RANK`.
        variable: &'static str,
        /// Its value; `None` when it is not set.
        value: Option<String>,
        /// What it should hold.
        expected: String,
    },
    /// An argument was refused before anything was sent to a peer; the group (if any) is still usable.
    #[error("{operation}: {message}")]
    Argument {
        /// The call that refused it, e.g. `all_reduce_sum`.
        operation: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// `MASTER_ADDR` does not resolve to an address (reported at once, without waiting).
    #[error("MASTER_ADDR {address:?} (rank {rank}) does not resolve to an address: {message}")]
    Unresolvable {
        /// The address or hostname as given.
        address: String,
        /// This process's rank.
        rank: usize,
        /// The resolver's message.
        message: String,
    },
    /// Rank 0 could not listen on `MASTER_PORT` (reported at once, without waiting).
    #[error("rank 0 cannot listen on MASTER_PORT {port}: {reason}")]
    Listen {
        /// `MASTER_PORT`.
        port: u16,
        /// What happened, e.g. that another program holds the port.
        reason: String,
    },
    /// A program answered at `MASTER_ADDR:MASTER_PORT`, but it is not rank 0's rendezvous store.
    #[error(
        "rank {rank} of {world_size}: {master} answered but is not the training group's rank 0: {reason}; another \
         program listens there, or MASTER_ADDR/MASTER_PORT are not those rank 0 was given"
    )]
    NotRendezvous {
        /// `MASTER_ADDR:MASTER_PORT`.
        master: String,
        /// This process's rank.
        rank: usize,
        /// The number of ranks expected.
        world_size: usize,
        /// What it did instead of answering as a store.
        reason: String,
    },
    /// The ranks that met disagree on the group itself (a rank started twice, different `WORLD_SIZE`s).
    #[error("the process group at {master} cannot be formed: {message}")]
    Membership {
        /// `MASTER_ADDR:MASTER_PORT`.
        master: String,
        /// What differs.
        message: String,
    },
    /// The process group could not be formed: not every rank arrived within the rendezvous timeout, rank 0's store
    /// stopped answering, or Gloo's connections failed.
    #[error("rank {rank} of {world_size} could not form the process group at {master}: {message}")]
    Rendezvous {
        /// `MASTER_ADDR:MASTER_PORT`, where rank 0 hosts the store.
        master: String,
        /// This process's rank.
        rank: usize,
        /// The number of ranks expected.
        world_size: usize,
        /// The rendezvous timeout.
        timeout: Duration,
        /// The ranks known not to have joined: those missing from the store, or rank 0 alone when this rank never
        /// reached it (the others cannot be seen without it); empty when the failure was something else.
        missing: Vec<usize>,
        /// What happened: at the timeout, who did not join within it; else libtorch's message.
        message: String,
    },
    /// A collective failed while talking to the peers; the group is unusable from then on.
    #[error("{operation} failed: {message}")]
    Collective {
        /// The collective, e.g. `all_reduce_sum`.
        operation: &'static str,
        /// Gloo's message and what it means (e.g. that a peer process exited).
        message: String,
    },
}

/// A duration for a person: `450ms`, `1.5s`, `25s`, `9m30s`, `10m`, `1h05m`.
pub(crate) fn describe_duration(duration: Duration) -> String {
    // Whole seconds from 10 s up, rounded to the nearest.
    let seconds = (duration + Duration::from_millis(500)).as_secs();
    if duration < Duration::from_secs(1) {
        format!("{}ms", duration.as_millis())
    } else if duration < Duration::from_secs(10) && duration.subsec_millis() >= 100 {
        format!("{:.1}s", duration.as_secs_f64())
    } else if seconds < 60 {
        format!("{seconds}s")
    } else if seconds < 3600 {
        match seconds % 60 {
            0 => format!("{}m", seconds / 60),
            rest => format!("{}m{rest:02}s", seconds / 60),
        }
    } else {
        format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60)
    }
}

fn describe_value(value: &Option<String>) -> String {
    match value {
        Some(value) => format!("is {value:?}"),
        None => "is not set".to_owned(),
    }
}

/// The result of this crate's operations.
pub type Result<T> = std::result::Result<T, DistributedError>;

/// Where and how to form a process group: what [`ProcessGroup::connect`] takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// Address or hostname of the machine running rank 0, which hosts the rendezvous store.
    pub master_addr: String,
    /// The store's TCP port on that machine.
    pub master_port: u16,
    /// This process, in `0..world_size`.
    pub rank: usize,
    /// The number of processes.
    pub world_size: usize,
    /// Network interfaces for Gloo's connections (`GLOO_SOCKET_IFNAME`); empty: chosen as the crate docs describe.
    pub interfaces: Vec<String>,
    /// Bound on each collective (a peer that hangs makes the others fail after it).
    pub timeout: Duration,
    /// Bound on forming the group (the rendezvous): how long a rank waits for the others to start and join.
    pub rendezvous_timeout: Duration,
    /// How often a rank still waiting at the rendezvous reports who is missing (see
    /// [`ProcessGroup::connect_with_progress`]); [`DEFAULT_PROGRESS_INTERVAL`] by default.
    pub progress_interval: Duration,
    /// Whether the rendezvous store is already hosted at `MASTER_ADDR:MASTER_PORT` by a launcher, so that rank 0 joins
    /// it as the others do instead of hosting it: `torchrun`'s agent does this and says so with
    /// `TORCHELASTIC_USE_AGENT_STORE=True`.
    pub agent_store: bool,
}

impl GroupConfig {
    /// The configuration that the torchrun variables describe (see the crate docs), looked up with `get`; `None` when
    /// `WORLD_SIZE` is unset or `1` (a single process). Every variable is checked here, before any connection.
    ///
    /// `timeout` bounds each collective. The rendezvous timeout is `BERTMT_RENDEZVOUS_TIMEOUT` seconds when that
    /// variable is set, else [`DEFAULT_RENDEZVOUS_TIMEOUT`] (10 minutes) or `timeout` if shorter; progress is
    /// reported every [`DEFAULT_PROGRESS_INTERVAL`].
    pub fn from_vars(get: impl Fn(&str) -> Option<String>, timeout: Duration) -> Result<Option<GroupConfig>> {
        let Some(world) = get("WORLD_SIZE") else { return Ok(None) };
        let world_size = match world.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => return Err(env_error("WORLD_SIZE", Some(world), "a positive integer")),
        };
        if world_size == 1 {
            return Ok(None);
        }
        let rank_expected = format!("an integer in 0..{world_size} (WORLD_SIZE={world_size})");
        let rank = match get("RANK") {
            Some(value) => match value.parse::<usize>() {
                Ok(rank) if rank < world_size => rank,
                _ => return Err(env_error("RANK", Some(value), &rank_expected)),
            },
            None => return Err(env_error("RANK", None, &rank_expected)),
        };
        let master_addr = match get("MASTER_ADDR") {
            Some(addr) if !addr.trim().is_empty() => addr,
            value => return Err(env_error("MASTER_ADDR", value, "the address or hostname of rank 0's machine")),
        };
        let port_expected = "a TCP port number in 1..=65535";
        let master_port = match get("MASTER_PORT") {
            Some(value) => match value.parse::<u16>() {
                Ok(port) if port != 0 => port,
                _ => return Err(env_error("MASTER_PORT", Some(value), port_expected)),
            },
            None => return Err(env_error("MASTER_PORT", None, port_expected)),
        };
        let interfaces = get("GLOO_SOCKET_IFNAME")
            .map(|names| names.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();
        let rendezvous_timeout = match get(RENDEZVOUS_TIMEOUT_VARIABLE) {
            Some(value) => match value.trim().parse::<f64>().ok().and_then(|s| Duration::try_from_secs_f64(s).ok()) {
                Some(limit) if limit >= Duration::from_millis(1) => limit,
                _ => {
                    return Err(env_error(
                        RENDEZVOUS_TIMEOUT_VARIABLE,
                        Some(value),
                        "a positive number of seconds (how long to wait for every rank to join)",
                    ))
                }
            },
            None => DEFAULT_RENDEZVOUS_TIMEOUT.min(timeout),
        };
        Ok(Some(GroupConfig {
            master_addr,
            master_port,
            rank,
            world_size,
            interfaces,
            timeout,
            rendezvous_timeout,
            progress_interval: DEFAULT_PROGRESS_INTERVAL,
            agent_store: get("TORCHELASTIC_USE_AGENT_STORE").is_some_and(|value| value.trim() == "True"),
        }))
    }

    /// `MASTER_ADDR:MASTER_PORT` as one address (IPv6 addresses in brackets).
    pub fn master(&self) -> String {
        if self.master_addr.contains(':') {
            format!("[{}]:{}", self.master_addr, self.master_port)
        } else {
            format!("{}:{}", self.master_addr, self.master_port)
        }
    }
}

fn env_error(variable: &'static str, value: Option<String>, expected: &str) -> DistributedError {
    DistributedError::Env { variable, value, expected: expected.to_owned() }
}

/// A group of processes (ranks) running collectives on CPU tensors through libtorch's Gloo backend.
///
/// Every rank must make the same sequence of collective calls with tensors of the same shapes and dtypes. The group
/// is `Send` but not `Sync`: two threads issuing collectives at once would interleave them differently on different
/// ranks. Dropping it closes its connections (rank 0's also stops the rendezvous store).
pub struct ProcessGroup {
    raw: NonNull<ffi::Group>,
    rank: usize,
    world_size: usize,
    timeout: Duration,
}

// SAFETY: the C++ group has no thread affinity (its worker threads are its own); moving it to another thread and using
// it there is fine. It is not `Sync` (see the type's docs).
unsafe impl Send for ProcessGroup {}

impl fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessGroup")
            .field("rank", &self.rank)
            .field("world_size", &self.world_size)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The dtypes Gloo sums (`Bool` is only broadcast).
const SUMMABLE: [Kind; 8] =
    [Kind::Float, Kind::Double, Kind::Half, Kind::BFloat16, Kind::Int8, Kind::Uint8, Kind::Int, Kind::Int64];

impl ProcessGroup {
    /// Forms the group described by the torchrun variables of this process (see the crate docs); `None` when
    /// `WORLD_SIZE` is unset or `1`. `timeout` bounds every collective; the rendezvous timeout is
    /// `BERTMT_RENDEZVOUS_TIMEOUT` seconds, else 10 minutes or `timeout` if shorter ([`GroupConfig::from_vars`]).
    /// Progress while waiting goes to `tracing` ([`ProcessGroup::connect`]).
    pub fn from_env(timeout: Duration) -> Result<Option<ProcessGroup>> {
        let get = |name: &str| std::env::var_os(name).map(|value| value.to_string_lossy().into_owned());
        match GroupConfig::from_vars(get, timeout)? {
            Some(config) => Ok(Some(Self::connect(&config)?)),
            None => Ok(None),
        }
    }

    /// Forms a group of `world_size` ranks whose rank 0 hosts the rendezvous store at `master_addr:master_port`;
    /// blocks until every rank has arrived or `timeout` has passed. `timeout` also bounds every collective.
    pub fn new(
        master_addr: &str,
        master_port: u16,
        rank: usize,
        world_size: usize,
        timeout: Duration,
    ) -> Result<ProcessGroup> {
        Self::connect(&GroupConfig {
            master_addr: master_addr.to_owned(),
            master_port,
            rank,
            world_size,
            interfaces: Vec::new(),
            timeout,
            rendezvous_timeout: timeout,
            progress_interval: DEFAULT_PROGRESS_INTERVAL,
            agent_store: false,
        })
    }

    /// Forms the group that `config` describes; blocks until every rank has arrived or `config.rendezvous_timeout`
    /// has passed. While it waits, every `config.progress_interval` it logs who is missing and how long is left as
    /// a `tracing` warning (see [`ProcessGroup::connect_with_progress`] to show them otherwise).
    pub fn connect(config: &GroupConfig) -> Result<ProcessGroup> {
        Self::connect_with_progress(config, |progress| tracing::warn!("{progress}"))
    }

    /// Forms the group that `config` describes, as [`ProcessGroup::connect`], calling `on_progress` every
    /// `config.progress_interval` while it waits: which ranks have not joined (rank 0 counts them in its store; the
    /// other ranks say so too once they reach it, and until then that they are still connecting to
    /// `MASTER_ADDR:MASTER_PORT`) and how long is left.
    ///
    /// Fails at once when `MASTER_ADDR` does not resolve ([`DistributedError::Unresolvable`]), when rank 0 cannot
    /// listen on `MASTER_PORT` ([`DistributedError::Listen`], e.g. another program holds it), or when a program
    /// that is not rank 0's store answers there ([`DistributedError::NotRendezvous`]); at the rendezvous timeout
    /// with a [`DistributedError::Rendezvous`] naming the address and the missing ranks.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), distributed::DistributedError> {
    /// use std::time::Duration;
    /// use distributed::{GroupConfig, ProcessGroup};
    ///
    /// let get = |name: &str| std::env::var(name).ok();
    /// if let Some(config) = GroupConfig::from_vars(get, Duration::from_secs(1800))? {
    ///     let group = ProcessGroup::connect_with_progress(&config, |progress| eprintln!("{progress}"))?;
    /// #   drop(group);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn connect_with_progress(
        config: &GroupConfig,
        mut on_progress: impl FnMut(&RendezvousProgress),
    ) -> Result<ProcessGroup> {
        const OPERATION: &str = "process group creation";
        let refuse = |message: String| DistributedError::Argument { operation: OPERATION, message };
        if config.world_size == 0 || config.rank >= config.world_size {
            return Err(refuse(format!("rank {} is not in 0..{}", config.rank, config.world_size)));
        }
        let world_size = c_int::try_from(config.world_size)
            .map_err(|_| refuse(format!("world size {} is too large", config.world_size)))?;
        let rank = c_int::try_from(config.rank).map_err(|_| refuse(format!("rank {} is too large", config.rank)))?;
        if config.master_port == 0 {
            return Err(refuse("master port 0 is not a port to connect to".to_owned()));
        }
        let timeout_ms = timeout_millis(config.timeout).map_err(refuse)?;
        timeout_millis(config.rendezvous_timeout).map_err(|message| refuse(format!("rendezvous {message}")))?;
        if config.progress_interval.is_zero() {
            return Err(refuse("the progress interval is zero".to_owned()));
        }
        let addr = CString::new(config.master_addr.as_str())
            .map_err(|_| refuse(format!("master address {:?} contains a NUL byte", config.master_addr)))?;
        if config.master_addr.trim().is_empty() {
            return Err(refuse("the master address is empty".to_owned()));
        }
        let interfaces = CString::new(config.interfaces.join(","))
            .map_err(|_| refuse(format!("interface names {:?} contain a NUL byte", config.interfaces)))?;

        let master = config.master();
        tracing::debug!(rank = config.rank, world_size = config.world_size, %master, "joining the process group");
        let started = Instant::now();
        let joined = rendezvous::rendezvous(config, &mut on_progress)?;
        // Every rank is in the store: Gloo's mesh follows at once. A rank whose Gloo ports cannot be reached makes
        // it fail after the time left (at least MIN_MESH_TIME).
        let connect = joined.deadline.saturating_duration_since(Instant::now()).max(MIN_MESH_TIME);
        let connect_ms = timeout_millis(connect).map_err(refuse)?;
        let mut raw: *mut ffi::Group = std::ptr::null_mut();
        let mut message: *mut c_char = std::ptr::null_mut();
        // SAFETY: the store is live; the strings are NUL-terminated and outlive the call; `raw` and `message` are
        // valid out-pointers. The group takes its own reference to the store.
        let status = unsafe {
            ffi::bertmt_c10d_group_new(
                joined.store.as_ptr(),
                rank,
                world_size,
                addr.as_ptr(),
                interfaces.as_ptr(),
                connect_ms,
                timeout_ms,
                &mut raw,
                &mut message,
            )
        };
        drop(joined);
        let failure = |message: String| match status {
            ffi::REJECTED => refuse(message),
            _ => DistributedError::Rendezvous {
                master: master.clone(),
                rank: config.rank,
                world_size: config.world_size,
                timeout: config.rendezvous_timeout,
                missing: Vec::new(),
                message: format!("every rank joined, but Gloo's connections failed: {message}"),
            },
        };
        if status != ffi::OK {
            // SAFETY: on failure `message` is null or a malloc'd string from the bridge, ours to free.
            return Err(failure(unsafe { take_message(message) }));
        }
        let Some(raw) = NonNull::new(raw) else {
            return Err(failure("the bridge returned no group".to_owned()));
        };
        tracing::info!(
            rank = config.rank,
            world_size = config.world_size,
            %master,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "process group formed"
        );
        Ok(ProcessGroup { raw, rank: config.rank, world_size: config.world_size, timeout: config.timeout })
    }

    /// This process's rank, in `0..world_size()`.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of ranks in the group.
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// The bound on each collective given at creation.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Replaces each tensor, in place, with its sum over all ranks. The tensors are dense CPU tensors of any shapes,
    /// strides and summable dtypes (floating point or integer); they must not overlap one another. Every rank passes
    /// the same list of shapes and dtypes in the same order. The tensors of each dtype travel together in one
    /// coalesced all-reduce. On a [`DistributedError::Collective`] error their contents are unspecified.
    pub fn all_reduce_sum(&self, tensors: &[Tensor]) -> Result<()> {
        const OPERATION: &str = "all_reduce_sum";
        check_tensors(OPERATION, tensors, true)?;
        let handles = handles(tensors);
        self.call(OPERATION, |message| {
            // SAFETY: `raw` is a live group; `handles` holds `len` live tensor handles for the call's duration. The
            // bridge copies each handle (sharing its storage) and writes the sums into that storage; it keeps none.
            unsafe { ffi::bertmt_c10d_all_reduce_sum(self.raw.as_ptr(), handles.as_ptr(), handles.len(), message) }
        })
    }

    /// Overwrites each tensor, in place, with its value on rank `root` (dense CPU tensors of any shapes, strides and
    /// dtypes, the same list on every rank).
    pub fn broadcast(&self, tensors: &[Tensor], root: usize) -> Result<()> {
        const OPERATION: &str = "broadcast";
        if root >= self.world_size {
            return Err(DistributedError::Argument {
                operation: OPERATION,
                message: format!("root {root} is not a rank of a group of {}", self.world_size),
            });
        }
        check_tensors(OPERATION, tensors, false)?;
        let root = c_int::try_from(root).map_err(|_| DistributedError::Argument {
            operation: OPERATION,
            message: format!("root {root} is too large"),
        })?;
        let handles = handles(tensors);
        self.call(OPERATION, |message| {
            // SAFETY: as in `all_reduce_sum`.
            unsafe { ffi::bertmt_c10d_broadcast(self.raw.as_ptr(), handles.as_ptr(), handles.len(), root, message) }
        })
    }

    /// Returns once every rank has called it.
    pub fn barrier(&self) -> Result<()> {
        self.call("barrier", |message| {
            // SAFETY: `raw` is a live group.
            unsafe { ffi::bertmt_c10d_barrier(self.raw.as_ptr(), message) }
        })
    }

    /// Runs one bridge call and turns its status and message into a result.
    fn call(&self, operation: &'static str, f: impl FnOnce(*mut *mut c_char) -> c_int) -> Result<()> {
        let mut message: *mut c_char = std::ptr::null_mut();
        let status = f(&mut message);
        if status == ffi::OK {
            return Ok(());
        }
        // SAFETY: on failure `message` is null or a malloc'd string from the bridge, ours to free.
        let text = unsafe { take_message(message) };
        if status == ffi::REJECTED {
            return Err(DistributedError::Argument { operation, message: text });
        }
        tracing::debug!(operation, rank = self.rank, error = %text, "collective failed");
        Err(DistributedError::Collective { operation, message: explain(&text, self.timeout) })
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: `raw` came from bertmt_c10d_group_new and is freed exactly once, here.
        unsafe { ffi::bertmt_c10d_group_free(self.raw.as_ptr()) };
        tracing::debug!(rank = self.rank, "process group closed");
    }
}

/// Refuses, before any communication, what the bridge or Gloo would fail on.
fn check_tensors(operation: &'static str, tensors: &[Tensor], sum: bool) -> Result<()> {
    for (index, tensor) in tensors.iter().enumerate() {
        let problem = if !tensor.defined() {
            Some("is undefined".to_owned())
        } else if tensor.device() != Device::Cpu {
            Some(format!("is on {:?}; only CPU tensors are supported (Gloo)", tensor.device()))
        } else if tensor.is_sparse() {
            Some("is sparse; only dense tensors are supported".to_owned())
        } else {
            let kind = tensor.kind();
            let supported = if sum { SUMMABLE.contains(&kind) } else { SUMMABLE.contains(&kind) || kind == Kind::Bool };
            (!supported).then(|| format!("has dtype {kind:?}, which Gloo cannot {}", if sum { "sum" } else { "send" }))
        };
        if let Some(problem) = problem {
            return Err(DistributedError::Argument { operation, message: format!("tensor {index} {problem}") });
        }
    }
    Ok(())
}

fn handles(tensors: &[Tensor]) -> Vec<*const C_tensor> {
    tensors.iter().map(Tensor::as_ptr).collect()
}

fn timeout_millis(timeout: Duration) -> std::result::Result<i64, String> {
    match i64::try_from(timeout.as_millis()) {
        Ok(ms) if ms >= 1 => Ok(ms),
        Ok(_) => Err(format!("timeout {timeout:?} is shorter than 1 ms")),
        Err(_) => Err(format!("timeout {timeout:?} is too long")),
    }
}

/// Gloo's message plus what it means for the caller.
fn explain(message: &str, timeout: Duration) -> String {
    let lower = message.to_ascii_lowercase();
    let gone = ["connection closed by peer", "connection reset by peer", "broken pipe", "connection refused"];
    let meaning = if gone.iter().any(|pattern| lower.contains(pattern)) {
        "a peer process exited or is unreachable; this group cannot be used any more".to_owned()
    } else if lower.contains("timed out") || lower.contains("timeout") {
        format!(
            "a peer did not take part within the {timeout:?} timeout: it hangs, is far slower, or is unreachable; \
             this group cannot be used any more"
        )
    } else {
        "a peer process may have exited, hung, or passed different tensors".to_owned()
    };
    format!("{message} ({meaning})")
}

/// Takes ownership of a message from the bridge.
///
/// # Safety
/// `message` is null or a NUL-terminated string from the bridge's malloc, not freed yet.
unsafe fn take_message(message: *mut c_char) -> String {
    if message.is_null() {
        return "unknown error (the bridge gave no message)".to_owned();
    }
    // SAFETY: per this function's contract.
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned();
    unsafe { ffi::bertmt_c10d_free_message(message) };
    text
}

/// The bridge's C interface (`csrc/c10d_bridge.cpp`).
mod ffi {
    use std::ffi::{c_char, c_int};
    use torch_sys::C_tensor;

    /// The C++ `Group` (a store and a `ProcessGroupGloo`).
    #[repr(C)]
    pub struct Group {
        _opaque: [u8; 0],
    }

    /// The C++ `bertmt_c10d_store` (a `TCPStore`).
    #[repr(C)]
    pub struct Store {
        _opaque: [u8; 0],
    }

    /// Success.
    pub const OK: c_int = 0;
    /// Refused before any communication.
    pub const REJECTED: c_int = 1;

    extern "C" {
        pub fn bertmt_c10d_free_message(message: *mut c_char);
        #[allow(clippy::too_many_arguments)]
        pub fn bertmt_c10d_store_new(
            master_addr: *const c_char,
            master_port: c_int,
            is_server: c_int,
            world_size: c_int,
            listen_fd: c_int,
            timeout_ms: i64,
            out: *mut *mut Store,
            message: *mut *mut c_char,
        ) -> c_int;
        pub fn bertmt_c10d_store_add(
            store: *mut Store,
            key: *const c_char,
            delta: i64,
            value: *mut i64,
            message: *mut *mut c_char,
        ) -> c_int;
        pub fn bertmt_c10d_store_check(
            store: *mut Store,
            keys: *const *const c_char,
            count: usize,
            ready: *mut c_int,
            message: *mut *mut c_char,
        ) -> c_int;
        pub fn bertmt_c10d_store_free(store: *mut Store);
        pub fn bertmt_c10d_store_ping_request(nonce: u32, buf: *mut u8, cap: usize) -> usize;
        #[allow(clippy::too_many_arguments)]
        pub fn bertmt_c10d_group_new(
            store: *mut Store,
            rank: c_int,
            world_size: c_int,
            master_addr: *const c_char,
            interfaces: *const c_char,
            connect_ms: i64,
            timeout_ms: i64,
            out: *mut *mut Group,
            message: *mut *mut c_char,
        ) -> c_int;
        pub fn bertmt_c10d_all_reduce_sum(
            group: *mut Group,
            tensors: *const *const C_tensor,
            count: usize,
            message: *mut *mut c_char,
        ) -> c_int;
        pub fn bertmt_c10d_broadcast(
            group: *mut Group,
            tensors: *const *const C_tensor,
            count: usize,
            root: c_int,
            message: *mut *mut c_char,
        ) -> c_int;
        pub fn bertmt_c10d_barrier(group: *mut Group, message: *mut *mut c_char) -> c_int;
        pub fn bertmt_c10d_group_free(group: *mut Group);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const TIMEOUT: Duration = Duration::from_secs(7);

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    fn env_err(pairs: &[(&str, &str)]) -> (&'static str, Option<String>, String) {
        match GroupConfig::from_vars(vars(pairs), TIMEOUT) {
            Err(DistributedError::Env { variable, value, expected }) => (variable, value, expected),
            other => panic!("expected an Env error for {pairs:?}, got {other:?}"),
        }
    }

    const GOOD: [(&str, &str); 4] =
        [("WORLD_SIZE", "2"), ("RANK", "1"), ("MASTER_ADDR", "10.1.2.3"), ("MASTER_PORT", "29511")];

    /// GOOD with `name` replaced by `value` (removed when `None`).
    fn with(name: &str, value: Option<&'static str>) -> Vec<(&'static str, &'static str)> {
        GOOD.iter().filter_map(|&(k, v)| if k == name { value.map(|value| (k, value)) } else { Some((k, v)) }).collect()
    }

    fn env_err_with(name: &str, value: Option<&'static str>) -> (&'static str, Option<String>, String) {
        env_err(&with(name, value))
    }

    #[test]
    fn single_process_when_world_size_is_unset_or_one() {
        assert_eq!(GroupConfig::from_vars(vars(&[]), TIMEOUT).expect("unset"), None);
        // RANK and the rest are not needed (nor read) for a single process.
        assert_eq!(GroupConfig::from_vars(vars(&[("WORLD_SIZE", "1")]), TIMEOUT).expect("one"), None);
    }

    #[test]
    fn the_torchrun_variables_are_read() {
        let mut pairs = GOOD.to_vec();
        pairs.push(("LOCAL_RANK", "not read"));
        pairs.push(("GLOO_SOCKET_IFNAME", "eth0, eth1,"));
        let config = GroupConfig::from_vars(vars(&pairs), TIMEOUT).expect("valid").expect("two ranks");
        assert_eq!(
            config,
            GroupConfig {
                master_addr: "10.1.2.3".into(),
                master_port: 29511,
                rank: 1,
                world_size: 2,
                interfaces: vec!["eth0".into(), "eth1".into()],
                timeout: TIMEOUT,
                rendezvous_timeout: TIMEOUT,
                progress_interval: DEFAULT_PROGRESS_INTERVAL,
                agent_store: false,
            }
        );
        assert_eq!(config.master(), "10.1.2.3:29511");
        let v6 = GroupConfig { master_addr: "::1".into(), ..config };
        assert_eq!(v6.master(), "[::1]:29511");
    }

    #[test]
    fn torchruns_agent_store_is_joined_not_hosted() {
        let base = [("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500")];
        let read = |extra: Option<&'static str>| {
            let mut pairs = base.to_vec();
            if let Some(value) = extra {
                pairs.push(("TORCHELASTIC_USE_AGENT_STORE", value));
            }
            GroupConfig::from_vars(vars(&pairs), TIMEOUT).expect("valid").expect("two ranks").agent_store
        };
        assert!(read(Some("True")));
        assert!(!read(Some("False")) && !read(None));
    }

    #[test]
    fn the_rendezvous_timeout_is_its_own_setting() {
        let rendezvous = |extra: Option<&'static str>, timeout: Duration| {
            let mut pairs = GOOD.to_vec();
            if let Some(value) = extra {
                pairs.push((RENDEZVOUS_TIMEOUT_VARIABLE, value));
            }
            GroupConfig::from_vars(vars(&pairs), timeout).map(|config| config.expect("two ranks"))
        };
        // Unset: 10 minutes, or the collective timeout when shorter.
        let long = Duration::from_secs(1800);
        let config = rendezvous(None, long).expect("default");
        assert_eq!((config.rendezvous_timeout, config.timeout), (DEFAULT_RENDEZVOUS_TIMEOUT, long));
        assert_eq!(DEFAULT_RENDEZVOUS_TIMEOUT, Duration::from_secs(600));
        assert_eq!(rendezvous(None, TIMEOUT).expect("short").rendezvous_timeout, TIMEOUT);
        assert_eq!(config.progress_interval, Duration::from_secs(30));
        // Set: seconds, whole or not, whatever the collective timeout.
        assert_eq!(rendezvous(Some("90"), long).expect("90").rendezvous_timeout, Duration::from_secs(90));
        assert_eq!(rendezvous(Some(" 2.5"), TIMEOUT).expect("2.5").rendezvous_timeout, Duration::from_millis(2500));
        assert_eq!(rendezvous(Some("3600"), TIMEOUT).expect("3600").rendezvous_timeout, Duration::from_secs(3600));
        for bad in ["0", "-5", "ten", "", "inf", "NaN", "1e30"] {
            match rendezvous(Some(bad), long) {
                Err(DistributedError::Env { variable, value, expected }) => {
                    assert_eq!((variable, value.as_deref()), (RENDEZVOUS_TIMEOUT_VARIABLE, Some(bad)));
                    assert!(expected.contains("seconds"), "{expected}");
                }
                other => panic!("{bad:?}: expected an Env error, got {other:?}"),
            }
        }
    }

    #[test]
    fn durations_read_as_a_person_would_write_them() {
        let cases = [
            (Duration::from_millis(450), "450ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_secs(25), "25s"),
            (Duration::from_secs(570), "9m30s"),
            (Duration::from_millis(34_990), "35s"),
            (Duration::from_millis(9_990), "10.0s"),
            (Duration::from_secs(600), "10m"),
            (Duration::from_secs(1800), "30m"),
            (Duration::from_secs(3900), "1h05m"),
        ];
        for (duration, text) in cases {
            assert_eq!(describe_duration(duration), text);
        }
    }

    #[test]
    fn a_missing_rank_is_named() {
        let (variable, value, expected) = env_err_with("RANK", None);
        assert_eq!((variable, value), ("RANK", None));
        assert!(expected.contains("0..2"), "{expected}");
    }

    #[test]
    fn a_rank_outside_the_world_is_named_with_its_value() {
        for bad in ["2", "3", "-1", "one", ""] {
            let (variable, value, expected) = env_err_with("RANK", Some(bad));
            assert_eq!((variable, value.as_deref()), ("RANK", Some(bad)));
            assert!(expected.contains("WORLD_SIZE=2"), "{expected}");
        }
        let error = GroupConfig::from_vars(vars(&with("RANK", Some("3"))), TIMEOUT).expect_err("RANK=3");
        assert_eq!(error.to_string(), "environment variable RANK is \"3\": expected an integer in 0..2 (WORLD_SIZE=2)");
    }

    #[test]
    fn a_bad_port_is_named_with_its_value() {
        for bad in ["abc", "0", "65536", "-5", " 29500"] {
            let (variable, value, _) = env_err_with("MASTER_PORT", Some(bad));
            assert_eq!((variable, value.as_deref()), ("MASTER_PORT", Some(bad)));
        }
        let (variable, value, expected) = env_err_with("MASTER_PORT", None);
        assert_eq!((variable, value), ("MASTER_PORT", None));
        assert!(expected.contains("65535"), "{expected}");
    }

    #[test]
    fn a_missing_or_empty_master_address_is_named() {
        assert_eq!(env_err_with("MASTER_ADDR", None).0, "MASTER_ADDR");
        let (variable, value, _) = env_err_with("MASTER_ADDR", Some("  "));
        assert_eq!((variable, value.as_deref()), ("MASTER_ADDR", Some("  ")));
    }

    #[test]
    fn a_bad_world_size_is_named() {
        for bad in ["0", "two", "", "-2"] {
            let (variable, value, _) = env_err(&[("WORLD_SIZE", bad), ("RANK", "0")]);
            assert_eq!((variable, value.as_deref()), ("WORLD_SIZE", Some(bad)));
        }
    }

    #[test]
    fn bad_arguments_are_refused_before_connecting() {
        // Port 1 on loopback: nothing listens there, so reaching the network would give a Rendezvous error instead.
        let cases = [
            ProcessGroup::new("127.0.0.1", 1, 2, 2, TIMEOUT),
            ProcessGroup::new("127.0.0.1", 1, 0, 0, TIMEOUT),
            ProcessGroup::new("127.0.0.1", 0, 0, 2, TIMEOUT),
            ProcessGroup::new("127.0.0.1", 1, 0, 2, Duration::from_micros(10)),
            ProcessGroup::connect(&GroupConfig {
                master_addr: "127.0.0.1".into(),
                master_port: 1,
                rank: 0,
                world_size: 2,
                interfaces: Vec::new(),
                timeout: TIMEOUT,
                rendezvous_timeout: TIMEOUT,
                progress_interval: Duration::ZERO,
                agent_store: false,
            }),
            ProcessGroup::new("127.0.0.1\0", 1, 0, 2, TIMEOUT),
            ProcessGroup::new("", 1, 0, 2, TIMEOUT),
        ];
        for case in cases {
            match case {
                Err(DistributedError::Argument { operation: "process group creation", .. }) => {}
                other => panic!("expected an Argument error, got {other:?}"),
            }
        }
    }

    #[test]
    fn collective_errors_say_what_they_mean() {
        let closed = explain("[pair.cc:598] Connection closed by peer [127.0.0.1]:4242", TIMEOUT);
        assert!(closed.starts_with("[pair.cc:598] Connection closed by peer"), "{closed}");
        assert!(closed.contains("a peer process exited or is unreachable"), "{closed}");
        let slow = explain("[unbound_buffer.cc:78] Timed out waiting 7000ms for recv operation to complete", TIMEOUT);
        assert!(slow.contains("within the 7s timeout"), "{slow}");
        assert!(!slow.contains("exited or is unreachable"), "{slow}");
    }
}
