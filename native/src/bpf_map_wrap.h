// bpf_map_wrap.h: BpfMap, a JS handle on one BPF map fd (owned dup), Buffer-in/Buffer-out operations.
#pragma once

#include <napi.h>

#include <string>

namespace nm {

class BpfMap : public Napi::ObjectWrap<BpfMap> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Wraps `fd` (ownership passes to the new object) in a JS BpfMap.
  static Napi::Object NewFromFd(Napi::Env env, int fd);

  explicit BpfMap(const Napi::CallbackInfo& info);
  ~BpfMap() override;

 private:
  static Napi::Value OpenPinned(const Napi::CallbackInfo& info);
  void Init(Napi::Env env, int fd);
  int Fd(Napi::Env env) const;
  size_t ValueBufSize() const;
  // The answer of a map call where ENOENT means "no such entry": true on success, false on ENOENT, throws otherwise.
  Napi::Value Found(Napi::Env env, int rc, const char* call) const;

  Napi::Value Lookup(const Napi::CallbackInfo& info);
  Napi::Value Update(const Napi::CallbackInfo& info);
  Napi::Value Delete(const Napi::CallbackInfo& info);
  Napi::Value LookupAndDelete(const Napi::CallbackInfo& info);
  Napi::Value Keys(const Napi::CallbackInfo& info);
  Napi::Value Count(const Napi::CallbackInfo& info);
  Napi::Value UpdateSocket(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  int fd_ = -1;
  uint32_t type_ = 0;
  uint32_t key_size_ = 0;
  uint32_t value_size_ = 0;
  uint32_t max_entries_ = 0;
  uint32_t id_ = 0;
  bool percpu_ = false;
  int ncpus_ = 1;
  std::string name_;
};

}  // namespace nm
