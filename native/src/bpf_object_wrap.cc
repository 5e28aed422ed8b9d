// bpf_object_wrap.cc: BpfObject — open+load an object with pin_root_path, hand out maps, attach programs.
#include "bpf_object_wrap.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "bpf_map_wrap.h"
#include "common.h"
#include "link_ops.h"

namespace nm {

Napi::Function BpfObject::Define(Napi::Env env) {
  return DefineClass(env, "BpfObject",
                     {
                         InstanceMethod<&BpfObject::Programs>("programs"),
                         InstanceMethod<&BpfObject::Map>("map"),
                         InstanceMethod<&BpfObject::AttachCgroup>("attachCgroup"),
                         InstanceMethod<&BpfObject::AttachNetns>("attachNetns"),
                         InstanceMethod<&BpfObject::ProgramFd>("programFd"),
                         InstanceMethod<&BpfObject::Close>("close"),
                     });
}

// new BpfObject(objectPath, pinRoot): maps marked LIBBPF_PIN_BY_NAME are reused from <pinRoot>/<name> when
// pinned (same layout) or created and pinned there — that is what carries state across agent restarts.
BpfObject::BpfObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfObject>(info) {
  Napi::Env env = info.Env();
  path_ = ArgString(info, 0, "objectPath");
  std::string pinRoot = ArgString(info, 1, "pinRoot");
  ClearLibbpfLog();
  if (access(path_.c_str(), R_OK))
    ThrowErrno(env, errno, "open BPF object " + path_, "build it with \"npm run build:bpf\"");
  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pinRoot.c_str());
  bpf_object* obj = bpf_object__open_file(path_.c_str(), &opts);
  if (!obj) ThrowBpf(env, errno, "bpf_object__open_file(" + path_ + ")");
  if (bpf_object__load(obj)) {
    int err = errno;
    bpf_object__close(obj);
    ThrowBpf(env, err, "bpf_object__load(" + path_ + ")");
  }
  obj_ = obj;
}

BpfObject::~BpfObject() {
  if (obj_) bpf_object__close(obj_);
}

bpf_object* BpfObject::Obj(Napi::Env env) const {
  if (!obj_) throw Napi::Error::New(env, "BpfObject " + path_ + " is closed");
  return obj_;
}

bpf_program* BpfObject::Prog(Napi::Env env, const std::string& name) const {
  bpf_program* p = bpf_object__find_program_by_name(Obj(env), name.c_str());
  if (!p) ThrowType(env, "no BPF program named '" + name + "' in " + path_);
  return p;
}

// programs(): [{name, section, type, attachType, id}]
Napi::Value BpfObject::Programs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array arr = Napi::Array::New(env);
  bpf_program* p;
  uint32_t i = 0;
  bpf_object__for_each_program(p, Obj(env)) {
    Napi::Object o = Napi::Object::New(env);
    struct bpf_prog_info pi = {};
    uint32_t len = sizeof(pi);
    const char* t = libbpf_bpf_prog_type_str(bpf_program__type(p));
    const char* a = libbpf_bpf_attach_type_str(bpf_program__expected_attach_type(p));
    o.Set("name", Napi::String::New(env, bpf_program__name(p)));
    o.Set("section", Napi::String::New(env, bpf_program__section_name(p)));
    o.Set("type", Napi::String::New(env, t ? t : "unknown"));
    o.Set("attachType", Napi::String::New(env, a ? a : "unknown"));
    o.Set("id", Napi::Number::New(env, bpf_obj_get_info_by_fd(bpf_program__fd(p), &pi, &len) == 0 ? pi.id : 0));
    arr.Set(i++, o);
  }
  return arr;
}

// map(name): a BpfMap on a dup of the map fd, so it stays valid independently of this object.
Napi::Value BpfObject::Map(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "name");
  bpf_map* m = bpf_object__find_map_by_name(Obj(env), name.c_str());
  if (!m) ThrowType(env, "no BPF map named '" + name + "' in " + path_);
  int fd = fcntl(bpf_map__fd(m), F_DUPFD_CLOEXEC, 3);
  if (fd < 0) ThrowErrno(env, errno, "dup(map " + name + ")");
  return BpfMap::NewFromFd(env, fd);
}

// attachCgroup(programName, cgroupPath, pinPath) -> {linkId, programId, adopted}
Napi::Value BpfObject::AttachCgroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_program* p = Prog(env, ArgString(info, 0, "programName"));
  std::string cg = ArgString(info, 1, "cgroupPath");
  std::string pin = ArgString(info, 2, "pinPath");
  int cgfd = open(cg.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cgfd < 0) ThrowErrno(env, errno, "open cgroup " + cg, "is cgroupRoot a cgroup v2 directory?");
  AttachResult r;
  try {
    r = AttachOrAdopt(env, p, LinkTarget::kCgroup, cgfd, pin);
  } catch (...) {
    close(cgfd);
    throw;
  }
  close(cgfd);
  return AttachResultToJs(env, r);
}

// attachNetns(programName, netnsFd, pinPath) -> {linkId, programId, adopted}; for sk_lookup programs.
Napi::Value BpfObject::AttachNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_program* p = Prog(env, ArgString(info, 0, "programName"));
  int nsfd = ArgFd(info, 1, "netnsFd");
  std::string pin = ArgString(info, 2, "pinPath");
  return AttachResultToJs(env, AttachOrAdopt(env, p, LinkTarget::kNetns, nsfd, pin));
}

// programFd(programName) -> a close-on-exec copy of the loaded program's fd, owned by the caller (e.g. to
// attach it to sockets with SO_ATTACH_REUSEPORT_EBPF on the netns thread).
Napi::Value BpfObject::ProgramFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_program* p = Prog(env, ArgString(info, 0, "programName"));
  int fd = fcntl(bpf_program__fd(p), F_DUPFD_CLOEXEC, 3);
  if (fd < 0) ThrowErrno(env, errno, std::string("dup(program ") + bpf_program__name(p) + ")");
  return Napi::Number::New(env, fd);
}

// close(): releases program and map fds. Pinned maps and links stay (detaching is an explicit step).
Napi::Value BpfObject::Close(const Napi::CallbackInfo& info) {
  if (obj_) bpf_object__close(obj_);
  obj_ = nullptr;
  return info.Env().Undefined();
}

void InitBpfObject(Napi::Env env, Napi::Object exports) { exports.Set("BpfObject", BpfObject::Define(env)); }

}  // namespace nm
