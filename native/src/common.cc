// common.cc: argument validation, errno -> JS error conversion and the libbpf log ring.
#include "common.h"

#include <bpf/libbpf.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>

namespace nm {

const char* const kBpfPermHint = "needs CAP_BPF+CAP_NET_ADMIN (or CAP_SYS_ADMIN); running as root?";

Napi::Error ErrnoError(Napi::Env env, int err, const std::string& what, const char* hint) {
  if (err < 0) err = -err;
  const char* name = strerrorname_np(err);
  std::string msg = what + ": " + strerror(err);
  if (hint && *hint) msg += std::string(" (") + hint + ")";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("code", Napi::String::New(env, name ? name : "EUNKNOWN"));
  e.Set("syscall", Napi::String::New(env, what));
  if (hint && *hint) e.Set("hint", Napi::String::New(env, hint));
  return e;
}

void ThrowErrno(Napi::Env env, int err, const std::string& what, const char* hint) {
  throw ErrnoError(env, err, what, hint);
}

void ThrowBpf(Napi::Env env, int err, const std::string& what) {
  if (err < 0) err = -err;
  const char* hint = (err == EPERM || err == EACCES) ? kBpfPermHint : nullptr;
  std::string log = LibbpfLogTail();
  Napi::Error e = ErrnoError(env, err, what, hint);
  if (!log.empty()) e.Set("libbpfLog", Napi::String::New(env, log));
  throw e;
}

void ThrowType(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }

static void Need(const Napi::CallbackInfo& info, size_t i, const char* name, const char* what) {
  if (info.Length() <= i || info[i].IsUndefined())
    ThrowType(info.Env(), std::string("argument '") + name + "' is required (" + what + ")");
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Need(info, i, name, "string");
  if (!info[i].IsString()) ThrowType(info.Env(), std::string("argument '") + name + "' must be a string");
  std::string s = info[i].As<Napi::String>().Utf8Value();
  if (s.empty() || s.find('\0') != std::string::npos)
    ThrowType(info.Env(), std::string("argument '") + name + "' must be a non-empty string without NUL");
  return s;
}

int32_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name, int32_t min, int32_t max) {
  Need(info, i, name, "integer");
  if (!info[i].IsNumber()) ThrowType(info.Env(), std::string("argument '") + name + "' must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (d != static_cast<double>(static_cast<int64_t>(d)) || d < min || d > max)
    ThrowType(info.Env(), std::string("argument '") + name + "' must be an integer in [" + std::to_string(min) +
                              ", " + std::to_string(max) + "]");
  return static_cast<int32_t>(d);
}

uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Need(info, i, name, "integer");
  if (!info[i].IsNumber()) ThrowType(info.Env(), std::string("argument '") + name + "' must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (d != static_cast<double>(static_cast<int64_t>(d)) || d < 0 || d > 4294967295.0)
    ThrowType(info.Env(), std::string("argument '") + name + "' must be an unsigned 32-bit integer");
  return static_cast<uint32_t>(d);
}

bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Need(info, i, name, "boolean");
  if (!info[i].IsBoolean()) ThrowType(info.Env(), std::string("argument '") + name + "' must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i, const char* name, size_t exactLen) {
  Need(info, i, name, "Buffer");
  if (!info[i].IsBuffer()) ThrowType(info.Env(), std::string("argument '") + name + "' must be a Buffer");
  auto b = info[i].As<Napi::Buffer<uint8_t>>();
  if (exactLen && b.Length() != exactLen)
    ThrowType(info.Env(), std::string("argument '") + name + "' must be " + std::to_string(exactLen) +
                              " bytes, got " + std::to_string(b.Length()));
  return b;
}

int ArgFd(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return ArgInt(info, i, name, 0, 0x7fffffff);
}

// libbpf may log from any thread that calls it; only the main thread does in this addon, but keep it safe.
static std::mutex g_log_mu;
static std::string g_log;
static constexpr size_t kLogMax = 8192;

static int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char buf[1024];
  int n = vsnprintf(buf, sizeof(buf), fmt, args);
  if (n <= 0) return 0;
  std::lock_guard<std::mutex> lk(g_log_mu);
  g_log.append(buf);
  if (g_log.size() > kLogMax) g_log.erase(0, g_log.size() - kLogMax);
  return 0;
}

void InstallLibbpfLogger() { libbpf_set_print(LibbpfPrint); }

void ClearLibbpfLog() {
  std::lock_guard<std::mutex> lk(g_log_mu);
  g_log.clear();
}

std::string LibbpfLogTail() {
  std::lock_guard<std::mutex> lk(g_log_mu);
  // the verifier log ends with the interesting part; keep the last ~2KB
  if (g_log.size() > 2048) return g_log.substr(g_log.size() - 2048);
  return g_log;
}

}  // namespace nm
