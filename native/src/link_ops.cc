// link_ops.cc: attach/adopt/detach pinned BPF links and describe links and programs by pin or id.
#include "link_ops.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common.h"

namespace nm {

static bool LinkInfo(int fd, struct bpf_link_info* li) {
  *li = {};
  uint32_t len = sizeof(*li);
  return bpf_obj_get_info_by_fd(fd, li, &len) == 0;
}

static uint64_t TargetIno(Napi::Env env, int fd) {
  struct stat st;
  if (fstat(fd, &st)) ThrowErrno(env, errno, "fstat(target)");
  return st.st_ino;
}

// Does the pinned link still hook `prog`'s attach point on this exact target? A cgroup link whose cgroup
// was removed, or a netns link whose netns died, reports id/ino 0 and must be replaced, not updated.
static bool SameHook(const struct bpf_link_info& li, LinkTarget kind, uint64_t ino, enum bpf_attach_type at) {
  if (kind == LinkTarget::kCgroup)
    return li.type == BPF_LINK_TYPE_CGROUP && li.cgroup.cgroup_id == ino && li.cgroup.attach_type == at;
  return li.type == BPF_LINK_TYPE_NETNS && li.netns.netns_ino == ino && li.netns.attach_type == at;
}

AttachResult AttachOrAdopt(Napi::Env env, bpf_program* prog, LinkTarget kind, int targetFd, const std::string& pin) {
  ClearLibbpfLog();
  const uint64_t ino = TargetIno(env, targetFd);
  const enum bpf_attach_type at = bpf_program__expected_attach_type(prog);
  AttachResult r;
  r.programId = 0;

  struct bpf_link* link = bpf_link__open(pin.c_str());
  if (link) {
    struct bpf_link_info li;
    bool ok = LinkInfo(bpf_link__fd(link), &li) && SameHook(li, kind, ino, at) &&
              bpf_link__update_program(link, prog) == 0 && LinkInfo(bpf_link__fd(link), &li);
    if (ok) {
      r.linkId = li.id;
      r.programId = li.prog_id;
      r.adopted = true;
      bpf_link__destroy(link);  // closes our fd only; the pin keeps the link attached
      return r;
    }
    // Foreign or defunct: detach it so the hook never runs two copies, then make room for a fresh pin.
    bpf_link_detach(bpf_link__fd(link));
    bpf_link__destroy(link);
    if (unlink(pin.c_str()) && errno != ENOENT) ThrowErrno(env, errno, "unlink(" + pin + ")");
  } else if (errno != ENOENT) {
    ThrowBpf(env, errno, "bpf_link__open(" + pin + ")");
  }

  link = kind == LinkTarget::kCgroup ? bpf_program__attach_cgroup(prog, targetFd)
                                     : bpf_program__attach_netns(prog, targetFd);
  if (!link) ThrowBpf(env, errno, std::string("attach ") + bpf_program__name(prog));
  if (bpf_link__pin(link, pin.c_str())) {
    int err = errno;
    bpf_link__destroy(link);  // last reference: the kernel detaches it
    ThrowBpf(env, err, "bpf_link__pin(" + pin + ")");
  }
  struct bpf_link_info li;
  if (LinkInfo(bpf_link__fd(link), &li)) {
    r.linkId = li.id;
    r.programId = li.prog_id;
  }
  bpf_link__destroy(link);
  return r;
}

Napi::Object AttachResultToJs(Napi::Env env, const AttachResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("linkId", Napi::Number::New(env, r.linkId));
  o.Set("programId", Napi::Number::New(env, r.programId));
  o.Set("adopted", Napi::Boolean::New(env, r.adopted));
  return o;
}

static std::string ProgName(uint32_t id) {
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) return "";
  struct bpf_prog_info pi = {};
  uint32_t len = sizeof(pi);
  std::string name;
  if (bpf_obj_get_info_by_fd(fd, &pi, &len) == 0) name = pi.name;
  close(fd);
  return name;
}

// linkInfo(pinPath): {id, programId, programName, type, attachType, cgroupId?, netnsIno?} or null if unpinned.
static Napi::Value LinkInfoJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string pin = ArgString(info, 0, "pinPath");
  int fd = bpf_obj_get(pin.c_str());
  if (fd < 0) {
    if (errno == ENOENT) return env.Null();
    ThrowBpf(env, errno, "bpf_obj_get(" + pin + ")");
  }
  struct bpf_link_info li;
  if (!LinkInfo(fd, &li)) {
    int err = errno;
    close(fd);
    ThrowBpf(env, err, "bpf_obj_get_info_by_fd(" + pin + ")");
  }
  close(fd);
  Napi::Object o = Napi::Object::New(env);
  const char* lt = libbpf_bpf_link_type_str(static_cast<enum bpf_link_type>(li.type));
  o.Set("id", Napi::Number::New(env, li.id));
  o.Set("programId", Napi::Number::New(env, li.prog_id));
  o.Set("programName", Napi::String::New(env, ProgName(li.prog_id)));
  o.Set("type", Napi::String::New(env, lt ? lt : "unknown"));
  if (li.type == BPF_LINK_TYPE_CGROUP) {
    const char* a = libbpf_bpf_attach_type_str(static_cast<enum bpf_attach_type>(li.cgroup.attach_type));
    o.Set("attachType", Napi::String::New(env, a ? a : "unknown"));
    o.Set("cgroupId", Napi::BigInt::New(env, static_cast<uint64_t>(li.cgroup.cgroup_id)));
  } else if (li.type == BPF_LINK_TYPE_NETNS) {
    const char* a = libbpf_bpf_attach_type_str(static_cast<enum bpf_attach_type>(li.netns.attach_type));
    o.Set("attachType", Napi::String::New(env, a ? a : "unknown"));
    o.Set("netnsIno", Napi::BigInt::New(env, static_cast<uint64_t>(li.netns.netns_ino)));
  }
  return o;
}

// linkDetach(pinPath): detach the pinned link from its hook and remove the pin. false when nothing pinned.
static Napi::Value LinkDetachJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string pin = ArgString(info, 0, "pinPath");
  int fd = bpf_obj_get(pin.c_str());
  if (fd < 0) {
    if (errno == ENOENT) return Napi::Boolean::New(env, false);
    ThrowBpf(env, errno, "bpf_obj_get(" + pin + ")");
  }
  // a defunct link (its cgroup/netns is gone) is already detached: ENOLINK/EINVAL are fine here
  if (bpf_link_detach(fd) && errno != ENOLINK && errno != EINVAL) {
    int err = errno;
    close(fd);
    ThrowBpf(env, err, "bpf_link_detach(" + pin + ")");
  }
  close(fd);
  if (unlink(pin.c_str()) && errno != ENOENT) ThrowErrno(env, errno, "unlink(" + pin + ")");
  return Napi::Boolean::New(env, true);
}

// programInfo(id): {id, name, type} or null when no such program (e.g. freed after detach).
static Napi::Value ProgramInfoJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id = ArgU32(info, 0, "id");
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) {
    if (errno == ENOENT) return env.Null();
    ThrowBpf(env, errno, "bpf_prog_get_fd_by_id(" + std::to_string(id) + ")");
  }
  struct bpf_prog_info pi = {};
  uint32_t len = sizeof(pi);
  if (bpf_obj_get_info_by_fd(fd, &pi, &len)) {
    int err = errno;
    close(fd);
    ThrowBpf(env, err, "bpf_obj_get_info_by_fd(prog)");
  }
  close(fd);
  Napi::Object o = Napi::Object::New(env);
  const char* t = libbpf_bpf_prog_type_str(static_cast<enum bpf_prog_type>(pi.type));
  o.Set("id", Napi::Number::New(env, pi.id));
  o.Set("name", Napi::String::New(env, pi.name));
  o.Set("type", Napi::String::New(env, t ? t : "unknown"));
  return o;
}

void InitLinkOps(Napi::Env env, Napi::Object exports) {
  exports.Set("linkInfo", Napi::Function::New<LinkInfoJs>(env, "linkInfo"));
  exports.Set("linkDetach", Napi::Function::New<LinkDetachJs>(env, "linkDetach"));
  exports.Set("programInfo", Napi::Function::New<ProgramInfoJs>(env, "programInfo"));
}

}  // namespace nm
