// Thin extern "C" bridge to libtorch's own c10d: a TCPStore (created, added to and checked from Rust, which drives
// the rendezvous) plus a Gloo process group on it (CPU tensors). `tch` binds none of it. Tensors arrive as the
// `at::Tensor*` handles that `tch` holds; a collective copies each handle (same TensorImpl, same storage) and writes
// the result into the caller's storage.
//
// No C++ exception crosses this boundary. Every fallible call returns a status (0: success; see the codes below)
// and, on failure, stores a malloc'd message in `*err` that the caller frees with bertmt_c10d_free_message.
//
// Needs -DUSE_C10D_GLOO (ProcessGroupGloo.hpp is empty without it) and the vendored gloo headers (vendor/gloo,
// from pytorch/gloo; libtorch ships none) on the include path.
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStoreBackend.hpp>

#include <ATen/core/grad_mode.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

// Status codes of the fallible calls.
constexpr int kOk = 0;
// Refused before anything was sent to a peer (bad arguments); the group is still usable.
constexpr int kRejected = 1;
// Failed while talking to the peers (or while setting the group up).
constexpr int kFailed = 2;

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  int rank;
  int size;
  std::chrono::milliseconds timeout;
};

void set_err(char** err, const std::string& msg) {
  if (err == nullptr) return;
  char* s = static_cast<char*>(std::malloc(msg.size() + 1));
  if (s != nullptr) std::memcpy(s, msg.c_str(), msg.size() + 1);
  *err = s;
}

// An error found in the arguments, before any communication.
struct Rejected : std::exception {
  std::string message;
  explicit Rejected(std::string m) : message(std::move(m)) {}
  const char* what() const noexcept override { return message.c_str(); }
};

template <typename F>
int guarded(char** err, F&& f) {
  if (err != nullptr) *err = nullptr;
  try {
    f();
    return kOk;
  } catch (const Rejected& e) {
    set_err(err, e.message);
    return kRejected;
  } catch (const c10::Error& e) {
    set_err(err, e.what_without_backtrace());
  } catch (const std::exception& e) {
    set_err(err, e.what());
  } catch (...) {
    set_err(err, "unknown C++ exception");
  }
  return kFailed;
}

// The tensors a collective works on. Gloo reads/writes the raw buffer from data_ptr() and ignores strides (a
// non-contiguous view would silently be reduced as if it were contiguous: a wrong result), so non-contiguous inputs
// go through a contiguous copy that `finish()` writes back into the caller's view.
struct Staged {
  std::vector<at::Tensor> work;      // what gloo sees (the caller's tensor itself when contiguous)
  std::vector<at::Tensor> original;  // the caller's tensors
  void finish() {
    for (size_t i = 0; i < work.size(); ++i)
      if (!work[i].is_same(original[i])) original[i].copy_(work[i]);
  }
};

Staged collect(const at::Tensor* const* ts, size_t n) {
  Staged s;
  s.work.reserve(n);
  s.original.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (ts[i] == nullptr || !ts[i]->defined()) throw Rejected("tensor " + std::to_string(i) + " is undefined");
    const at::Tensor& t = *ts[i];
    if (!t.device().is_cpu() || t.layout() != at::kStrided)
      throw Rejected("tensor " + std::to_string(i) + " is not a dense CPU tensor");
    s.original.push_back(t);
    s.work.push_back(t.is_contiguous() ? t : t.contiguous());
  }
  return s;
}

// Waits for every enqueued work (even after one fails: the caller's tensors must not be written once we return),
// then rethrows the first error.
void wait_all(std::vector<c10::intrusive_ptr<c10d::Work>>& works) {
  std::exception_ptr first;
  for (auto& w : works) {
    try {
      // Gloo works run on the group's worker threads and enforce the timeout themselves; wait() rethrows their
      // error (a c10::DistBackendError / c10::Error, or gloo's IoException).
      w->wait();
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  }
  if (first) std::rethrow_exception(first);
}

// Runs `enqueue`, which queues collectives on `staged.work` into the list it is given, waits for all of them (also
// when queueing fails part way) and writes the results back into the caller's tensors.
template <typename Enqueue>
void run_collectives(Staged& staged, Enqueue&& enqueue) {
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  try {
    enqueue(works);
  } catch (...) {
    try {
      wait_all(works);
    } catch (...) {
    }
    throw;
  }
  wait_all(works);
  staged.finish();
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace

// ProcessGroupGloo::setTimeout is defined in its header and calls gloo::Context::setTimeout, which both libtorch_cpu
// and libtorch_cuda export. Called directly, an optimizing compiler inlines it, the linker binds that symbol to the
// first library that defines it (libtorch_cuda, listed first by torch-sys), and the binary then needs libtorch_cuda and
// every CUDA library behind it at run time. Called through the vtable (the empty asm hides the object's dynamic type,
// and build.rs turns off speculative devirtualization, so the call stays indirect), it runs libtorch's own copy and
// the binary needs libtorch_cpu only.
static void set_timeout_via_vtable(c10d::Backend& backend, std::chrono::milliseconds timeout) {
  c10d::Backend* opaque = &backend;
  asm volatile("" : "+r"(opaque));
  opaque->setTimeout(timeout);
}

extern "C" {

typedef struct bertmt_c10d_group bertmt_c10d_group;
typedef struct bertmt_c10d_store bertmt_c10d_store;

void bertmt_c10d_free_message(char* message) { std::free(message); }

// The rendezvous store, on its own: rank 0 hosts it (and is also a client of it), the others are clients. The
// Rust side drives the rendezvous with these calls (so that it can report progress and bound every wait), then
// hands the store to bertmt_c10d_group_new.
struct bertmt_c10d_store {
  c10::intrusive_ptr<c10d::TCPStore> tcp;
};

// Creates the store at master_addr:master_port: as its server (is_server != 0: listening on `listen_fd`, a bound and
// listening TCP socket the store takes over, or binding the port itself when listen_fd < 0) and as a client
// connected to it. Does not wait for the other ranks (waitWorkers = false). `timeout_ms` (> 0) bounds the client's
// connection and is the store's default timeout for its waits. The callers reach the store first with a TCP probe,
// so the connection normally succeeds at once.
int bertmt_c10d_store_new(const char* master_addr, int master_port, int is_server, int world_size, int listen_fd,
                          int64_t timeout_ms, bertmt_c10d_store** out, char** err) {
  if (out != nullptr) *out = nullptr;
  return guarded(err, [&] {
    if (out == nullptr) throw Rejected("no output pointer");
    if (master_addr == nullptr || *master_addr == '\0') throw Rejected("empty master address");
    if (master_port <= 0 || master_port >= 65536) throw Rejected("bad master port " + std::to_string(master_port));
    if (world_size < 1) throw Rejected("bad world size " + std::to_string(world_size));
    if (timeout_ms <= 0) throw Rejected("the timeout must be positive");
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(master_port);
    so.isServer = is_server != 0;
    so.numWorkers = static_cast<size_t>(world_size);
    so.waitWorkers = false;
    so.timeout = std::chrono::milliseconds(timeout_ms);
    if (so.isServer && listen_fd >= 0) so.masterListenFd = listen_fd;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(master_addr), so);
    *out = new bertmt_c10d_store{tcp};
  });
}

// Adds `delta` to the integer at `key` (created at 0) and stores the new value in *value.
int bertmt_c10d_store_add(bertmt_c10d_store* store, const char* key, int64_t delta, int64_t* value, char** err) {
  return guarded(err, [&] {
    if (store == nullptr || key == nullptr || value == nullptr) throw Rejected("null argument");
    *value = store->tcp->add(std::string(key), delta);
  });
}

// *ready = 1 when every one of the `n` keys exists, else 0. Does not wait.
int bertmt_c10d_store_check(bertmt_c10d_store* store, const char* const* keys, size_t n, int* ready, char** err) {
  return guarded(err, [&] {
    if (store == nullptr || ready == nullptr || (keys == nullptr && n > 0)) throw Rejected("null argument");
    std::vector<std::string> list;
    list.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      if (keys[i] == nullptr) throw Rejected("null key");
      list.emplace_back(keys[i]);
    }
    *ready = store->tcp->check(list) ? 1 : 0;
  });
}

void bertmt_c10d_store_free(bertmt_c10d_store* store) {
  try {
    delete store;  // rank 0's server stops once no group holds the store any more
  } catch (...) {
  }
}

// Writes into `buf` (at least 10 bytes) what a TCPStore client sends first: a VALIDATE query with the store's magic
// number, then a PING query with `nonce`, which a TCPStore server answers with the same 4 bytes. The byte layout
// is TCPStore.cpp's (a query type byte, then the value in host order), the constants those of the libtorch this
// bridge is built against. Returns the number of bytes written, or 0 when `cap` is too small.
size_t bertmt_c10d_store_ping_request(uint32_t nonce, uint8_t* buf, size_t cap) {
  constexpr size_t kLen = 2 * (1 + sizeof(uint32_t));
  if (buf == nullptr || cap < kLen) return 0;
  const uint32_t magic = c10d::detail::validationMagicNumber;
  buf[0] = static_cast<uint8_t>(c10d::detail::QueryType::VALIDATE);
  std::memcpy(buf + 1, &magic, sizeof magic);
  buf[5] = static_cast<uint8_t>(c10d::detail::QueryType::PING);
  std::memcpy(buf + 6, &nonce, sizeof nonce);
  return kLen;
}

// Connects the Gloo mesh of `world_size` ranks through `store` (which the group keeps a reference to; the caller
// still frees its handle). Every rank must have joined the store already. `master_addr` picks Gloo's device when
// `interfaces` (comma-separated, GLOO_SOCKET_IFNAME) is null or "": master_addr itself when it is a loopback
// address, else gloo's default device (this machine's hostname, falling back to loopback). `connect_ms` (> 0)
// bounds connecting the mesh; `timeout_ms` (> 0) is every collective's timeout.
int bertmt_c10d_group_new(bertmt_c10d_store* store, int rank, int world_size, const char* master_addr,
                          const char* interfaces, int64_t connect_ms, int64_t timeout_ms, bertmt_c10d_group** out,
                          char** err) {
  if (out != nullptr) *out = nullptr;
  return guarded(err, [&] {
    if (out == nullptr || store == nullptr) throw Rejected("null argument");
    if (master_addr == nullptr || *master_addr == '\0') throw Rejected("empty master address");
    if (world_size < 1 || rank < 0 || rank >= world_size)
      throw Rejected("bad rank " + std::to_string(rank) + " for world size " + std::to_string(world_size));
    if (timeout_ms <= 0 || connect_ms <= 0) throw Rejected("the timeouts must be positive");
    auto timeout = std::chrono::milliseconds(timeout_ms);
    auto connect = std::chrono::milliseconds(connect_ms);

    // Gloo's own rendezvous (each rank's address) goes through the store, waiting at most `connect`.
    store->tcp->setTimeout(connect);
    // The key prefix torch.distributed uses for its default group.
    c10::intrusive_ptr<c10d::Store> prefixed = c10::make_intrusive<c10d::PrefixStore>("default_pg", store->tcp);

    auto opts = c10d::ProcessGroupGloo::Options::create(connect);
    std::vector<std::string> ifaces = split_commas(interfaces != nullptr ? interfaces : "");
    if (!ifaces.empty()) {
      for (const auto& iface : ifaces) opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(iface));
    } else {
      std::string m(master_addr);
      bool loopback = m == "127.0.0.1" || m == "localhost" || m == "::1";
      opts->devices.push_back(loopback ? c10d::ProcessGroupGloo::createDeviceForHostname(m)
                                       : c10d::ProcessGroupGloo::createDefaultDevice());
    }
    opts->threads = 2;
    // Connects the full mesh (unless TORCH_GLOO_LAZY_INIT=1); blocks until every rank connects or `connect` passes.
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, world_size, opts);
    set_timeout_via_vtable(*pg, timeout);
    store->tcp->setTimeout(timeout);
    *out = reinterpret_cast<bertmt_c10d_group*>(new Group{prefixed, pg, rank, world_size, timeout});
  });
}

// In-place sum over the ranks of each tensor (dense CPU tensors, any shapes and strides; every rank passes the same
// list of shapes and dtypes in the same order). The tensors of each dtype go through one allreduce_coalesced (gloo
// flattens them into one buffer), dtypes in the order of their first appearance in the list.
int bertmt_c10d_all_reduce_sum(bertmt_c10d_group* gp, const at::Tensor* const* tensors, size_t n, char** err) {
  return guarded(err, [&] {
    if (gp == nullptr) throw Rejected("no group");
    auto* g = reinterpret_cast<Group*>(gp);
    if (n == 0) return;
    at::NoGradGuard no_grad;
    auto staged = collect(tensors, n);
    std::vector<std::vector<at::Tensor>> by_dtype;
    for (auto& t : staged.work) {
      auto it = by_dtype.begin();
      while (it != by_dtype.end() && (*it)[0].scalar_type() != t.scalar_type()) ++it;
      if (it == by_dtype.end())
        by_dtype.push_back({t});
      else
        it->push_back(t);
    }
    run_collectives(staged, [&](std::vector<c10::intrusive_ptr<c10d::Work>>& works) {
      for (auto& list : by_dtype) {
        if (list.size() == 1) {
          c10d::AllreduceOptions o;
          o.reduceOp = c10d::ReduceOp::SUM;
          o.timeout = g->timeout;
          works.push_back(g->pg->allreduce(list, o));
        } else {
          c10d::AllreduceCoalescedOptions o;
          o.reduceOp = c10d::ReduceOp::SUM;
          o.timeout = g->timeout;
          works.push_back(g->pg->allreduce_coalesced(list, o));
        }
      }
    });
  });
}

// In-place broadcast of each tensor from `root`.
int bertmt_c10d_broadcast(bertmt_c10d_group* gp, const at::Tensor* const* tensors, size_t n, int root, char** err) {
  return guarded(err, [&] {
    if (gp == nullptr) throw Rejected("no group");
    auto* g = reinterpret_cast<Group*>(gp);
    if (root < 0 || root >= g->size)
      throw Rejected("root " + std::to_string(root) + " is not a rank of a group of " + std::to_string(g->size));
    at::NoGradGuard no_grad;
    auto staged = collect(tensors, n);
    run_collectives(staged, [&](std::vector<c10::intrusive_ptr<c10d::Work>>& works) {
      for (auto& t : staged.work) {
        std::vector<at::Tensor> one{t};
        c10d::BroadcastOptions o;
        o.rootRank = root;
        o.rootTensor = 0;
        o.timeout = g->timeout;
        works.push_back(g->pg->broadcast(one, o));
      }
    });
  });
}

int bertmt_c10d_barrier(bertmt_c10d_group* gp, char** err) {
  return guarded(err, [&] {
    if (gp == nullptr) throw Rejected("no group");
    auto* g = reinterpret_cast<Group*>(gp);
    c10d::BarrierOptions o;
    o.timeout = g->timeout;
    std::vector<c10::intrusive_ptr<c10d::Work>> works{g->pg->barrier(o)};
    wait_all(works);
  });
}

void bertmt_c10d_group_free(bertmt_c10d_group* gp) {
  auto* g = reinterpret_cast<Group*>(gp);
  if (g == nullptr) return;
  try {
    delete g;  // ~ProcessGroupGloo stops and joins its worker threads; rank 0's TCPStore closes its server
  } catch (...) {
  }
}

}  // extern "C"
