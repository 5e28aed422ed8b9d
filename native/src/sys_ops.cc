// sys_ops.cc: small syscalls the datapath needs that Node lacks: netns fds, socket cookies, bpffs mount,
// handing memory back after a burst.
#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <linux/nsfs.h>
#include <malloc.h>
#include <napi.h>
// The one use of V8's own API in the addon (relieveMemory): its headers do not build with -Wextra.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <v8.h>
#pragma GCC diagnostic pop
#include <sched.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <unordered_map>
#include <utility>

#include "common.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif
#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace nm {

// openNetns(path) -> fd of a network namespace (O_RDONLY|O_CLOEXEC). The caller closes it with closeFd.
static Napi::Value OpenNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0, "path");
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) {
      // the usual cause is a pod torn down between CNI ADD and enrollment: say that, not "No such file"
      Napi::Error e = ErrnoError(env, err, "open(" + path + ")", "is the pod sandbox still running?");
      e.Set("message", Napi::String::New(env, "network namespace " + path +
                                                  " does not exist: is the pod sandbox still running?"));
      throw e;
    }
    ThrowErrno(env, err, "open network namespace " + path);
  }
  int type = ioctl(fd, NS_GET_NSTYPE);
  if (type != CLONE_NEWNET) {
    close(fd);
    ThrowErrno(env, EINVAL, path + " is not a network namespace",
               "expected /run/netns/NAME or /proc/PID/ns/net");
  }
  return Napi::Number::New(env, fd);
}

static Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  if (close(fd) && errno != EINTR) ThrowErrno(info.Env(), errno, "close(" + std::to_string(fd) + ")");
  return info.Env().Undefined();
}

// dupFd(fd) -> a new fd for the same open file (close-on-exec). A data-plane worker thread serves a pod's
// listeners through its own copies: each event loop closes only its own fd, the socket lives on.
static Napi::Value DupFd(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) ThrowErrno(info.Env(), errno, "fcntl(" + std::to_string(fd) + ", F_DUPFD_CLOEXEC)");
  return Napi::Number::New(info.Env(), copy);
}

// fdInode(fd) -> bigint: for a netns fd this is the netns inode, the id bpf_link_info reports.
static Napi::Value FdInode(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  struct stat st;
  if (fstat(fd, &st)) ThrowErrno(info.Env(), errno, "fstat");
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(st.st_ino));
}

static Napi::Value SockOptU64(const Napi::CallbackInfo& info, int opt, const char* what) {
  int fd = ArgFd(info, 0, "socketFd");
  uint64_t v = 0;
  socklen_t len = sizeof(v);
  if (getsockopt(fd, SOL_SOCKET, opt, &v, &len)) ThrowErrno(info.Env(), errno, what);
  return Napi::BigInt::New(info.Env(), v);
}

// socketNetnsCookie(fd) -> bigint: the socket's netns cookie, what bpf_get_netns_cookie() returns for it.
static Napi::Value SocketNetnsCookie(const Napi::CallbackInfo& info) {
  return SockOptU64(info, SO_NETNS_COOKIE, "getsockopt(SO_NETNS_COOKIE)");
}

static Napi::Value SocketCookie(const Napi::CallbackInfo& info) {
  return SockOptU64(info, SO_COOKIE, "getsockopt(SO_COOKIE)");
}

// mountBpffs(target): mount -t bpf bpf TARGET (mode 0700: pins are the agent's business only).
static Napi::Value MountBpffs(const Napi::CallbackInfo& info) {
  std::string target = ArgString(info, 0, "target");
  if (mount("bpf", target.c_str(), "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700"))
    ThrowErrno(info.Env(), errno, "mount -t bpf bpf " + target, errno == EPERM ? "needs CAP_SYS_ADMIN" : nullptr);
  return info.Env().Undefined();
}

static Napi::Value NumPossibleCpus(const Napi::CallbackInfo& info) {
  int n = libbpf_num_possible_cpus();
  if (n < 0) ThrowErrno(info.Env(), -n, "libbpf_num_possible_cpus");
  return Napi::Number::New(info.Env(), n);
}

static Napi::Value LibbpfVersion(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), libbpf_version_string());
}

// FdLedger: raw fds a thread holds outside any libuv handle (pooled sockets, listener copies waiting for a
// server, netns fds). A worker thread's environment can be torn down without running any more JavaScript
// (worker.terminate() of a stuck thread); handles are closed then, raw fds are not, and a leaked socket or
// netns fd pins the pod's network namespace. The destructor, run by that teardown, closes what is still here,
// but only an fd that is still the file it adopted: should a bug close one behind the ledger's back, the
// number may belong to another thread by then.
class FdLedger : public Napi::ObjectWrap<FdLedger> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FdLedger",
                       {
                           InstanceMethod<&FdLedger::Adopt>("adopt"),
                           InstanceMethod<&FdLedger::Release>("release"),
                           InstanceMethod<&FdLedger::Close>("close"),
                           InstanceAccessor<&FdLedger::Size>("size"),
                       });
  }

  explicit FdLedger(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FdLedger>(info) {}

  ~FdLedger() override {
    for (const auto& [fd, id] : fds_) {
      struct stat st;
      if (fstat(fd, &st) == 0 && st.st_dev == id.first && st.st_ino == id.second) close(fd);
    }
  }

 private:
  // adopt(fd): the ledger closes it unless it is released or closed through the ledger first
  Napi::Value Adopt(const Napi::CallbackInfo& info) {
    int fd = ArgFd(info, 0, "fd");
    struct stat st;
    if (fstat(fd, &st)) ThrowErrno(info.Env(), errno, "fstat(" + std::to_string(fd) + ") to adopt it");
    fds_[fd] = {st.st_dev, st.st_ino};
    return info.Env().Undefined();
  }

  // release(fd) -> whether it was held: from now on a handle (or the caller) owns it
  Napi::Value Release(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), fds_.erase(ArgFd(info, 0, "fd")) > 0);
  }

  // close(fd): closes it, held or not, ignoring "not open"; the ledger forgets it first
  Napi::Value Close(const Napi::CallbackInfo& info) {
    int fd = ArgFd(info, 0, "fd");
    fds_.erase(fd);
    close(fd);
    return info.Env().Undefined();
  }

  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fds_.size()); }

  std::unordered_map<int, std::pair<dev_t, ino_t>> fds_;
};

// relieveMemory() -> whether glibc returned pages. A burst of short-lived connections (a handshake flood)
// leaves two kinds of memory behind once it is over. V8 grew its old generation with objects that outlived
// the small young generation, and an idle process runs no major GC to shrink it again:
// LowMemoryNotification() runs a full, compacting one on the calling thread's isolate. OpenSSL's and the
// sockets' native buffers were freed into glibc's heap, which returns only its top to the kernel:
// malloc_trim(0) releases every free page of every arena (a worker thread's too).
static Napi::Value RelieveMemory(const Napi::CallbackInfo& info) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate != nullptr) isolate->LowMemoryNotification();
  return Napi::Boolean::New(info.Env(), malloc_trim(0) == 1);
}

// bindAddress(fd, ip) -> port: binds an unconnected TCP socket to ip with a port the kernel picks (a
// transparent socket may take an address that is not local) and returns that port. No namespace switch needed:
// the socket already belongs to its netns.
static Napi::Value BindAddress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  std::string ip = ArgString(info, 1, "ip");
  sockaddr_storage ss = {};
  socklen_t len;
  if (ip.find(':') == std::string::npos) {
    auto* sa = reinterpret_cast<sockaddr_in*>(&ss);
    sa->sin_family = AF_INET;
    if (inet_pton(AF_INET, ip.c_str(), &sa->sin_addr) != 1) ThrowType(env, "argument 'ip' is not an IP address: " + ip);
    len = sizeof(*sa);
  } else {
    auto* sa = reinterpret_cast<sockaddr_in6*>(&ss);
    sa->sin6_family = AF_INET6;
    if (inet_pton(AF_INET6, ip.c_str(), &sa->sin6_addr) != 1) ThrowType(env, "argument 'ip' is not an IP address: " + ip);
    len = sizeof(*sa);
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len)) ThrowErrno(env, errno, "bind " + ip, errno == EADDRNOTAVAIL ? "the socket is not transparent, or the family is wrong" : nullptr);
  len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len)) ThrowErrno(env, errno, "getsockname");
  uint16_t port = ss.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port) : ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return Napi::Number::New(env, port);
}

// flock(fd, exclusive) -> true when the lock was taken, false when another holder prevents it (never waits).
// Locks on an open file belong to that open file: closing the fd (or the process dying) releases them.
static Napi::Value Flock(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  bool exclusive = ArgBool(info, 1, "exclusive");
  for (;;) {
    if (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0) return Napi::Boolean::New(info.Env(), true);
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) return Napi::Boolean::New(info.Env(), false);
    ThrowErrno(info.Env(), errno, "flock(" + std::to_string(fd) + ")");
  }
}

void InitSysOps(Napi::Env env, Napi::Object exports) {
  exports.Set("flock", Napi::Function::New<Flock>(env, "flock"));
  exports.Set("bindAddress", Napi::Function::New<BindAddress>(env, "bindAddress"));
  exports.Set("FdLedger", FdLedger::Define(env));
  exports.Set("openNetns", Napi::Function::New<OpenNetns>(env, "openNetns"));
  exports.Set("closeFd", Napi::Function::New<CloseFd>(env, "closeFd"));
  exports.Set("dupFd", Napi::Function::New<DupFd>(env, "dupFd"));
  exports.Set("fdInode", Napi::Function::New<FdInode>(env, "fdInode"));
  exports.Set("socketNetnsCookie", Napi::Function::New<SocketNetnsCookie>(env, "socketNetnsCookie"));
  exports.Set("socketCookie", Napi::Function::New<SocketCookie>(env, "socketCookie"));
  exports.Set("mountBpffs", Napi::Function::New<MountBpffs>(env, "mountBpffs"));
  exports.Set("numPossibleCpus", Napi::Function::New<NumPossibleCpus>(env, "numPossibleCpus"));
  exports.Set("libbpfVersion", Napi::Function::New<LibbpfVersion>(env, "libbpfVersion"));
  exports.Set("relieveMemory", Napi::Function::New<RelieveMemory>(env, "relieveMemory"));
}

}  // namespace nm
