// bpf_object_wrap.h: BpfObject, a loaded BPF object file whose maps are pinned under a pin root.
#pragma once

#include <napi.h>

#include <string>

struct bpf_object;
struct bpf_program;

namespace nm {

class BpfObject : public Napi::ObjectWrap<BpfObject> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit BpfObject(const Napi::CallbackInfo& info);
  ~BpfObject() override;

 private:
  bpf_object* Obj(Napi::Env env) const;
  bpf_program* Prog(Napi::Env env, const std::string& name) const;

  Napi::Value Programs(const Napi::CallbackInfo& info);
  Napi::Value Map(const Napi::CallbackInfo& info);
  Napi::Value AttachCgroup(const Napi::CallbackInfo& info);
  Napi::Value AttachNetns(const Napi::CallbackInfo& info);
  Napi::Value ProgramFd(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  bpf_object* obj_ = nullptr;
  std::string path_;
};

}  // namespace nm
