// netns_thread.cc: NetnsThread — a dedicated std::thread that setns()es into pod netns and creates sockets.
//
// setns(CLONE_NEWNET) switches only the calling thread. Doing it on Node's main thread or a libuv pool
// thread would silently move unrelated work (DNS, fs, other sockets) into a pod's namespace, so every
// namespace-switching syscall happens here, on one thread we own, and fds come back as Promises through a
// thread-safe function. Sockets are created CLOEXEC so child processes never inherit a pod's listener.
// The pod netns's policy routing (pod_routing.cc) is set up from here too: netlink sockets and /proc/sys/net
// belong to the namespace of the thread that opens them.
#include <arpa/inet.h>
#include <fcntl.h>
#include <napi.h>
#include <netinet/in.h>
#include <sched.h>
#include <netinet/ip.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common.h"
#include "pod_routing.h"

namespace nm {

namespace {

#ifndef SO_ATTACH_REUSEPORT_EBPF
#define SO_ATTACH_REUSEPORT_EBPF 52
#endif

struct Job {
  enum Kind { kListen, kSocket, kSockets, kRouting } kind;
  int nsfd = -1;  // our own dup, closed by the worker
  int progfd = -1;  // kListen: our own dup of the SO_REUSEPORT group program, closed by the worker
  bool transparent = false;  // kSocket(s): IP_TRANSPARENT, for binding to a client's address
  // kRouting
  bool add = true;
  uint32_t table = 0;
  uint32_t priority = 0;
  RoutingResult routing;
  int family = AF_INET;
  sockaddr_storage addr = {};
  socklen_t addrlen = 0;
  std::string addrText;
  int backlog = 0;
  uint32_t mark = 0;
  bool v6only = false;
  int count = 1;  // kSockets: how many
  Napi::Promise::Deferred deferred;
  // results, written by the worker
  int fd = -1;
  std::vector<int> fds;  // kSockets
  int err = 0;
  std::string what;

  explicit Job(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}

  ~Job() {
    if (progfd >= 0) close(progfd);
  }

  void CloseResults() {
    if (fd >= 0) close(fd);
    fd = -1;
    for (int f : fds) close(f);
    fds.clear();
  }
};

struct State;
void CallJs(Napi::Env env, Napi::Function, State* st, Job* job);
using Tsfn = Napi::TypedThreadSafeFunction<State, Job, CallJs>;

struct State {
  std::thread thr;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job*> q;
  bool stopping = false;
  Tsfn tsfn;
  int pending = 0;  // main thread only: jobs whose promise has not settled
  // Who still needs this State, both touched on the JS thread only. Either may go first: close() or the
  // wrapper's destructor releases the TSFN, but when a worker thread's environment is torn down (terminate(),
  // an uncaught exception) Node finalizes the TSFN while the wrapper and its thread may still be alive.
  bool threadJoined = false;
  bool wrapperGone = false;
  bool tsfnGone = false;
};

// Stops the thread and waits for it: jobs are short syscalls; queued ones are rejected with ECANCELED.
void JoinThread(State* st) {
  if (st->threadJoined) return;
  {
    std::lock_guard<std::mutex> lk(st->mu);
    st->stopping = true;
  }
  st->cv.notify_all();
  st->thr.join();
  st->threadJoined = true;
}

// The TSFN's finalizer. Destroying the condition variable while the thread still waits on it would block
// forever (and hang the environment's teardown), so the thread is joined first.
void TsfnFinalized(Napi::Env, void*, State* st) {
  JoinThread(st);
  st->tsfnGone = true;
  if (st->wrapperGone) delete st;
}

const char* HintFor(const Job& j) {
  switch (j.err) {
    case EPERM:
      return "setns and SO_MARK need CAP_SYS_ADMIN and CAP_NET_ADMIN; running as root?";
    case EADDRINUSE:
      return "something in the pod netns already listens on this port without SO_REUSEPORT";
    case EADDRNOTAVAIL:
      return "address not configured in the pod netns: is lo up, is IPv6 enabled?";
    case EAFNOSUPPORT:
      return "the pod netns has this address family disabled";
    case ECANCELED:
      return "the netns thread was closed";
    default:
      return nullptr;
  }
}

int Fail(Job* j, int fd, const std::string& what) {
  j->err = errno;
  j->what = what;
  if (fd >= 0) close(fd);
  return -1;
}

// A transparent upstream socket may bind() to an address that is not the pod's (the client's). The port is
// chosen at that bind (not deferred to connect): the agent registers the exact flow in nm_own_flows before
// connecting, so sk_lookup does not steer its SYN back to the agent.
bool MakeTransparent(Job* j, int fd) {
  int one = 1;
  int level = j->family == AF_INET6 ? SOL_IPV6 : SOL_IP;
  int opt = j->family == AF_INET6 ? IPV6_TRANSPARENT : IP_TRANSPARENT;
  if (setsockopt(fd, level, opt, &one, sizeof(one))) {
    Fail(j, fd, j->family == AF_INET6 ? "setsockopt(IPV6_TRANSPARENT)" : "setsockopt(IP_TRANSPARENT)");
    return false;
  }
  return true;
}

void Run(Job* j) {
  if (setns(j->nsfd, CLONE_NEWNET)) {
    Fail(j, -1, "setns(CLONE_NEWNET)");
    return;
  }
  if (j->kind == Job::kRouting) {
    j->routing = ConfigurePodRouting(j->add, j->mark, j->table, j->priority);
    return;
  }
  if (j->kind == Job::kSockets) {
    // A batch for a socket pool: one queue hop and one setns for `count` sockets; all or nothing.
    for (int i = 0; i < j->count; i++) {
      int fd = socket(j->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
      if (fd < 0) {
        Fail(j, -1, j->family == AF_INET6 ? "socket(AF_INET6)" : "socket(AF_INET)");
        j->CloseResults();
        return;
      }
      if (j->mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &j->mark, sizeof(j->mark))) {
        Fail(j, fd, "setsockopt(SO_MARK)");
        j->CloseResults();
        return;
      }
      if (j->transparent && !MakeTransparent(j, fd)) {
        j->CloseResults();
        return;
      }
      j->fds.push_back(fd);
    }
    return;
  }
  // SOCK_NONBLOCK: libuv expects it on adopted fds; CLOEXEC: never leak pod sockets into children
  int fd = socket(j->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) {
    Fail(j, -1, j->family == AF_INET6 ? "socket(AF_INET6)" : "socket(AF_INET)");
    return;
  }
  int one = 1;
  if (j->mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &j->mark, sizeof(j->mark))) {
    Fail(j, fd, "setsockopt(SO_MARK)");
    return;
  }
  if (j->kind == Job::kListen) {
    // SO_REUSEPORT: a restarted agent binds the same ports while the old one drains
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one))) {
      Fail(j, fd, "setsockopt(SO_REUSEPORT)");
      return;
    }
    if (j->family == AF_INET6) {
      int v = j->v6only ? 1 : 0;
      if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof(v))) {
        Fail(j, fd, "setsockopt(IPV6_V6ONLY)");
        return;
      }
    }
    if (bind(fd, reinterpret_cast<sockaddr*>(&j->addr), j->addrlen)) {
      Fail(j, fd, "bind " + j->addrText);
      return;
    }
    if (listen(fd, j->backlog)) {
      Fail(j, fd, "listen " + j->addrText);
      return;
    }
    // After listen(): the socket is in its port's SO_REUSEPORT group (a new one, or an older agent's), and
    // the program applies to the whole group, so a closing listener's queue migrates to the others.
    if (j->progfd >= 0 && setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &j->progfd, sizeof(j->progfd))) {
      Fail(j, fd, "setsockopt(SO_ATTACH_REUSEPORT_EBPF) " + j->addrText);
      return;
    }
  } else if (j->transparent && !MakeTransparent(j, fd)) {
    return;
  }
  j->fd = fd;
}

void Worker(State* st) {
  for (;;) {
    Job* j;
    bool cancelled;
    {
      std::unique_lock<std::mutex> lk(st->mu);
      st->cv.wait(lk, [st] { return st->stopping || !st->q.empty(); });
      if (st->q.empty()) break;
      j = st->q.front();
      st->q.pop_front();
      cancelled = st->stopping;
    }
    if (cancelled) {
      j->err = ECANCELED;
      j->what = "netns thread";
    } else {
      Run(j);
    }
    close(j->nsfd);
    j->nsfd = -1;
    if (st->tsfn.BlockingCall(j) != napi_ok) {
      // the environment is going away: nobody will take the fds
      j->CloseResults();
      delete j;
    }
  }
}

void CallJs(Napi::Env env, Napi::Function, State* st, Job* job) {
  if (env == nullptr) {  // TSFN finalizing with calls still queued
    job->CloseResults();
    delete job;
    return;
  }
  if (job->err == 0 && job->kind == Job::kRouting) {
    Napi::Object o = Napi::Object::New(env);
    const RoutingResult& r = job->routing;
    o.Set("sysctl", r.sysctl.empty() ? env.Null() : Napi::String::New(env, r.sysctl));
    o.Set("v4", r.v4.empty() ? env.Null() : Napi::String::New(env, r.v4));
    o.Set("v6", r.v6.empty() ? env.Null() : Napi::String::New(env, r.v6));
    job->deferred.Resolve(o);
  } else if (job->err == 0 && job->kind == Job::kSockets) {
    Napi::Array fds = Napi::Array::New(env, job->fds.size());
    for (uint32_t i = 0; i < job->fds.size(); i++) fds.Set(i, Napi::Number::New(env, job->fds[i]));
    job->deferred.Resolve(fds);
  } else if (job->err == 0) {
    job->deferred.Resolve(Napi::Number::New(env, job->fd));
  } else {
    Napi::Error e = ErrnoError(env, job->err, job->what, HintFor(*job));
    job->deferred.Reject(e.Value());
  }
  delete job;
  if (--st->pending == 0) st->tsfn.Unref(env);
}

}  // namespace

class NetnsThread : public Napi::ObjectWrap<NetnsThread> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NetnsThread",
                       {
                           InstanceMethod<&NetnsThread::Listen>("listen"),
                           InstanceMethod<&NetnsThread::Socket>("socket"),
                           InstanceMethod<&NetnsThread::Sockets>("sockets"),
                           InstanceMethod<&NetnsThread::PodRouting>("podRouting"),
                           InstanceMethod<&NetnsThread::Close>("close"),
                       });
  }

  explicit NetnsThread(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NetnsThread>(info) {
    Napi::Env env = info.Env();
    st_ = new State();
    // State lives until both this wrapper and the TSFN are gone (queued completions may outlive the wrapper).
    st_->tsfn = Tsfn::New(env, "nodemesh-netns", 0, 1, st_, TsfnFinalized);
    st_->tsfn.Unref(env);  // an idle thread must not keep the process alive
    st_->thr = std::thread(Worker, st_);
  }

  ~NetnsThread() override { Stop(); }

 private:
  void Stop() {
    if (!st_) return;
    JoinThread(st_);
    st_->wrapperGone = true;
    if (st_->tsfnGone)
      delete st_;  // the environment is being torn down and already finalized the TSFN
    else
      st_->tsfn.Release();  // its finalizer frees State once the queued completions have run
    st_ = nullptr;
  }

  State* Live(Napi::Env env) {
    if (!st_) throw Napi::Error::New(env, "NetnsThread is closed");
    return st_;
  }

  static int Family(const Napi::CallbackInfo& info, size_t i) {
    int f = ArgInt(info, i, "family", 4, 6);
    if (f != 4 && f != 6) ThrowType(info.Env(), "argument 'family' must be 4 or 6");
    return f == 4 ? AF_INET : AF_INET6;
  }

  Napi::Value Enqueue(Napi::Env env, Job* j, int nsfd) {
    State* st = Live(env);
    j->nsfd = fcntl(nsfd, F_DUPFD_CLOEXEC, 3);
    if (j->nsfd < 0) {
      int err = errno;
      delete j;
      ThrowErrno(env, err, "dup(netnsFd)");
    }
    Napi::Promise p = j->deferred.Promise();
    if (st->pending++ == 0) st->tsfn.Ref(env);
    {
      std::lock_guard<std::mutex> lk(st->mu);
      st->q.push_back(j);
    }
    st->cv.notify_one();
    return p;
  }

  // An optional trailing boolean (absent: false).
  static bool OptBool(const Napi::CallbackInfo& info, size_t i, const char* name) {
    return info.Length() > i && !info[i].IsUndefined() ? ArgBool(info, i, name) : false;
  }

  // listen(netnsFd, family, ip, port, backlog, mark, v6only[, reuseportProgFd]) -> Promise<fd>
  Napi::Value Listen(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int nsfd = ArgFd(info, 0, "netnsFd");
    int family = Family(info, 1);
    std::string ip = ArgString(info, 2, "ip");
    int port = ArgInt(info, 3, "port", 0, 65535);
    int backlog = ArgInt(info, 4, "backlog", 1, 65535);
    uint32_t mark = ArgU32(info, 5, "mark");
    bool v6only = ArgBool(info, 6, "v6only");
    int progfd = info.Length() > 7 && !info[7].IsUndefined() ? ArgFd(info, 7, "reuseportProgFd") : -1;
    Job* j = new Job(env);
    if (progfd >= 0) {
      j->progfd = fcntl(progfd, F_DUPFD_CLOEXEC, 3);
      if (j->progfd < 0) {
        int err = errno;
        delete j;
        ThrowErrno(env, err, "dup(reuseportProgFd)");
      }
    }
    j->kind = Job::kListen;
    j->family = family;
    j->backlog = backlog;
    j->mark = mark;
    j->v6only = v6only;
    if (family == AF_INET) {
      auto* sa = reinterpret_cast<sockaddr_in*>(&j->addr);
      sa->sin_family = AF_INET;
      sa->sin_port = htons(port);
      if (inet_pton(AF_INET, ip.c_str(), &sa->sin_addr) != 1) {
        delete j;
        ThrowType(env, "argument 'ip' is not an IPv4 address: " + ip);
      }
      j->addrlen = sizeof(*sa);
      j->addrText = ip + ":" + std::to_string(port);
    } else {
      auto* sa = reinterpret_cast<sockaddr_in6*>(&j->addr);
      sa->sin6_family = AF_INET6;
      sa->sin6_port = htons(port);
      if (inet_pton(AF_INET6, ip.c_str(), &sa->sin6_addr) != 1) {
        delete j;
        ThrowType(env, "argument 'ip' is not an IPv6 address: " + ip);
      }
      j->addrlen = sizeof(*sa);
      j->addrText = "[" + ip + "]:" + std::to_string(port);
    }
    return Enqueue(env, j, nsfd);
  }

  // socket(netnsFd, family, mark[, transparent]) -> Promise<fd>: unconnected, nonblocking TCP socket in the pod netns
  Napi::Value Socket(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int nsfd = ArgFd(info, 0, "netnsFd");
    int family = Family(info, 1);
    uint32_t mark = ArgU32(info, 2, "mark");
    bool transparent = OptBool(info, 3, "transparent");
    Job* j = new Job(env);
    j->kind = Job::kSocket;
    j->family = family;
    j->mark = mark;
    j->transparent = transparent;
    return Enqueue(env, j, nsfd);
  }

  // sockets(netnsFd, family, mark, count[, transparent]) -> Promise<fd[]>: `count` sockets as socket() makes them, in one job
  Napi::Value Sockets(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int nsfd = ArgFd(info, 0, "netnsFd");
    int family = Family(info, 1);
    uint32_t mark = ArgU32(info, 2, "mark");
    int count = ArgInt(info, 3, "count", 1, 1024);
    bool transparent = OptBool(info, 4, "transparent");
    Job* j = new Job(env);
    j->kind = Job::kSockets;
    j->family = family;
    j->mark = mark;
    j->count = count;
    j->transparent = transparent;
    return Enqueue(env, j, nsfd);
  }

  // podRouting(netnsFd, add, mark, table, priority) -> Promise<{sysctl, v4, v6}>: each null when it worked, else
  // what failed (see pod_routing.h). Never rejects for those: the caller decides per family.
  Napi::Value PodRouting(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int nsfd = ArgFd(info, 0, "netnsFd");
    bool add = ArgBool(info, 1, "add");
    uint32_t mark = ArgU32(info, 2, "mark");
    uint32_t table = ArgU32(info, 3, "table");
    uint32_t priority = ArgU32(info, 4, "priority");
    Job* j = new Job(env);
    j->kind = Job::kRouting;
    j->add = add;
    j->mark = mark;
    j->table = table;
    j->priority = priority;
    return Enqueue(env, j, nsfd);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop();
    return info.Env().Undefined();
  }

  State* st_ = nullptr;
};

void InitNetnsThread(Napi::Env env, Napi::Object exports) { exports.Set("NetnsThread", NetnsThread::Define(env)); }

}  // namespace nm
