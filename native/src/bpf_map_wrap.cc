// bpf_map_wrap.cc: BpfMap — lookup/update/delete/iterate a BPF map with caller-provided Buffers.
#include "bpf_map_wrap.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "common.h"

namespace nm {

struct AddonData {
  Napi::FunctionReference mapCtor;
};

static AddonData* Data(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

Napi::Function BpfMap::Define(Napi::Env env) {
  return DefineClass(env, "BpfMap",
                     {
                         StaticMethod<&BpfMap::OpenPinned>("openPinned"),
                         InstanceMethod<&BpfMap::Lookup>("lookup"),
                         InstanceMethod<&BpfMap::Update>("update"),
                         InstanceMethod<&BpfMap::Delete>("delete"),
                         InstanceMethod<&BpfMap::LookupAndDelete>("lookupAndDelete"),
                         InstanceMethod<&BpfMap::Keys>("keys"),
                         InstanceMethod<&BpfMap::Count>("count"),
                         InstanceMethod<&BpfMap::UpdateSocket>("updateSocket"),
                         InstanceMethod<&BpfMap::Close>("close"),
                     });
}

// JS cannot construct a BpfMap directly with a meaningful fd: it comes from BpfObject.map() or openPinned().
// The constructor takes an External<int> so only native code can make one.
BpfMap::BpfMap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfMap>(info) {
  if (info.Length() < 1 || !info[0].IsExternal())
    ThrowType(info.Env(), "BpfMap cannot be constructed directly: use BpfObject.map(name) or BpfMap.openPinned(path)");
  int fd = *info[0].As<Napi::External<int>>().Data();
  Init(info.Env(), fd);
}

BpfMap::~BpfMap() {
  if (fd_ >= 0) close(fd_);
}

void BpfMap::Init(Napi::Env env, int fd) {
  struct bpf_map_info mi = {};
  uint32_t len = sizeof(mi);
  if (bpf_obj_get_info_by_fd(fd, &mi, &len)) {
    int err = errno;
    close(fd);
    ThrowBpf(env, err, "bpf_obj_get_info_by_fd(map)");
  }
  fd_ = fd;
  type_ = mi.type;
  key_size_ = mi.key_size;
  value_size_ = mi.value_size;
  max_entries_ = mi.max_entries;
  id_ = mi.id;
  name_ = mi.name;
  percpu_ = type_ == BPF_MAP_TYPE_PERCPU_ARRAY || type_ == BPF_MAP_TYPE_PERCPU_HASH ||
            type_ == BPF_MAP_TYPE_LRU_PERCPU_HASH || type_ == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
  ncpus_ = percpu_ ? libbpf_num_possible_cpus() : 1;
  if (ncpus_ < 1) ncpus_ = 1;

  Napi::Object self = Value();
  const char* ts = libbpf_bpf_map_type_str(static_cast<enum bpf_map_type>(type_));
  self.Set("name", Napi::String::New(env, name_));
  self.Set("type", Napi::String::New(env, ts ? ts : "unknown"));
  self.Set("id", Napi::Number::New(env, id_));
  self.Set("keySize", Napi::Number::New(env, key_size_));
  self.Set("valueSize", Napi::Number::New(env, value_size_));
  // per-CPU maps read/write one 8-byte-aligned slot per possible CPU
  self.Set("valueBufferSize", Napi::Number::New(env, static_cast<double>(ValueBufSize())));
  self.Set("possibleCpus", Napi::Number::New(env, ncpus_));
  self.Set("maxEntries", Napi::Number::New(env, max_entries_));
}

size_t BpfMap::ValueBufSize() const {
  if (!percpu_) return value_size_;
  return static_cast<size_t>((value_size_ + 7) & ~7u) * ncpus_;
}

Napi::Object BpfMap::NewFromFd(Napi::Env env, int fd) {
  int owned = fd;
  return Data(env)->mapCtor.New({Napi::External<int>::New(env, &owned)});
}

Napi::Value BpfMap::OpenPinned(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) ThrowBpf(info.Env(), errno, "bpf_obj_get(" + path + ")");
  return NewFromFd(info.Env(), fd);
}

int BpfMap::Fd(Napi::Env env) const {
  if (fd_ < 0) throw Napi::Error::New(env, "BpfMap '" + name_ + "' is closed");
  return fd_;
}

Napi::Value BpfMap::Found(Napi::Env env, int rc, const char* call) const {
  if (rc == 0) return Napi::Boolean::New(env, true);
  if (errno == ENOENT) return Napi::Boolean::New(env, false);
  ThrowBpf(env, errno, std::string(call) + "(" + name_ + ")");
}

// lookup(key, out): true when found (value copied into `out`), false when absent.
Napi::Value BpfMap::Lookup(const Napi::CallbackInfo& info) {
  int fd = Fd(info.Env());
  auto key = ArgBuffer(info, 0, "key", key_size_);
  auto out = ArgBuffer(info, 1, "out", ValueBufSize());
  return Found(info.Env(), bpf_map_lookup_elem(fd, key.Data(), out.Data()), "bpf_map_lookup_elem");
}

// update(key, value, flags = BPF_ANY)
Napi::Value BpfMap::Update(const Napi::CallbackInfo& info) {
  int fd = Fd(info.Env());
  auto key = ArgBuffer(info, 0, "key", key_size_);
  auto val = ArgBuffer(info, 1, "value", ValueBufSize());
  uint32_t flags = info.Length() > 2 && !info[2].IsUndefined() ? ArgU32(info, 2, "flags") : uint32_t{BPF_ANY};
  if (bpf_map_update_elem(fd, key.Data(), val.Data(), flags))
    ThrowBpf(info.Env(), errno, "bpf_map_update_elem(" + name_ + ")");
  return info.Env().Undefined();
}

// delete(key): true when an entry was removed, false when there was none.
Napi::Value BpfMap::Delete(const Napi::CallbackInfo& info) {
  int fd = Fd(info.Env());
  auto key = ArgBuffer(info, 0, "key", key_size_);
  return Found(info.Env(), bpf_map_delete_elem(fd, key.Data()), "bpf_map_delete_elem");
}

// lookupAndDelete(key, out): the per-connection hot path. No allocation: both Buffers belong to the caller.
Napi::Value BpfMap::LookupAndDelete(const Napi::CallbackInfo& info) {
  int fd = Fd(info.Env());
  auto key = ArgBuffer(info, 0, "key", key_size_);
  auto out = ArgBuffer(info, 1, "out", ValueBufSize());
  return Found(info.Env(), bpf_map_lookup_and_delete_elem(fd, key.Data(), out.Data()), "bpf_map_lookup_and_delete_elem");
}

// keys(): every key as a Buffer. Entries deleted concurrently may make the walk restart from the first
// key (the kernel's get_next_key semantics), so the result is bounded by max_entries.
Napi::Value BpfMap::Keys(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Fd(env);
  Napi::Array arr = Napi::Array::New(env);
  std::vector<uint8_t> cur(key_size_), next(key_size_);
  bool first = true;
  uint32_t n = 0;
  while (n < max_entries_) {
    if (bpf_map_get_next_key(fd, first ? nullptr : cur.data(), next.data())) {
      if (errno == ENOENT) break;
      ThrowBpf(env, errno, "bpf_map_get_next_key(" + name_ + ")");
    }
    arr.Set(n++, Napi::Buffer<uint8_t>::Copy(env, next.data(), next.size()));
    cur.swap(next);
    first = false;
  }
  return arr;
}

Napi::Value BpfMap::Count(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Fd(env);
  // arrays always hold max_entries slots
  if (type_ == BPF_MAP_TYPE_ARRAY || type_ == BPF_MAP_TYPE_PERCPU_ARRAY) return Napi::Number::New(env, max_entries_);
  std::vector<uint8_t> cur(key_size_), next(key_size_);
  bool first = true;
  uint32_t n = 0;
  while (n < max_entries_) {
    if (bpf_map_get_next_key(fd, first ? nullptr : cur.data(), next.data())) {
      if (errno == ENOENT) break;
      ThrowBpf(env, errno, "bpf_map_get_next_key(" + name_ + ")");
    }
    n++;
    cur.swap(next);
    first = false;
  }
  return Napi::Number::New(env, n);
}

// updateSocket(key, socketFd, flags = BPF_ANY): SOCKHASH/SOCKMAP insert. The map holds a reference to the
// socket, not the fd: closing the fd later removes the entry when the socket is destroyed.
Napi::Value BpfMap::UpdateSocket(const Napi::CallbackInfo& info) {
  int fd = Fd(info.Env());
  if (type_ != BPF_MAP_TYPE_SOCKHASH && type_ != BPF_MAP_TYPE_SOCKMAP)
    ThrowType(info.Env(), "updateSocket() needs a sockhash/sockmap, '" + name_ + "' is not one");
  auto key = ArgBuffer(info, 0, "key", key_size_);
  int sfd = ArgFd(info, 1, "socketFd");
  uint32_t flags = info.Length() > 2 && !info[2].IsUndefined() ? ArgU32(info, 2, "flags") : uint32_t{BPF_ANY};
  uint64_t v64 = static_cast<uint64_t>(sfd);
  uint32_t v32 = static_cast<uint32_t>(sfd);
  const void* val = value_size_ == 8 ? static_cast<const void*>(&v64) : static_cast<const void*>(&v32);
  if (bpf_map_update_elem(fd, key.Data(), val, flags))
    ThrowBpf(info.Env(), errno, "bpf_map_update_elem(" + name_ + ", socket fd " + std::to_string(sfd) + ")");
  return info.Env().Undefined();
}

Napi::Value BpfMap::Close(const Napi::CallbackInfo& info) {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  return info.Env().Undefined();
}

void InitBpfMap(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = BpfMap::Define(env);
  auto* data = new AddonData();
  data->mapCtor = Napi::Persistent(ctor);
  env.SetInstanceData<AddonData>(data);
  exports.Set("BpfMap", ctor);
}

}  // namespace nm
