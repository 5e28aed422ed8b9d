// common.h: argument validation, errno -> JS error conversion and libbpf log capture shared by every wrap.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace nm {

// Hint attached to EPERM/EACCES from bpf(2): the usual cause is missing capabilities.
extern const char* const kBpfPermHint;

// A JS Error carrying `errno` (negative, as Node's own errors), `code` ('EPERM'), `syscall` and `hint`.
Napi::Error ErrnoError(Napi::Env env, int err, const std::string& what, const char* hint = nullptr);
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const std::string& what, const char* hint = nullptr);
// Same, but for bpf(2)/libbpf failures: adds kBpfPermHint on EPERM/EACCES and the tail of libbpf's log.
[[noreturn]] void ThrowBpf(Napi::Env env, int err, const std::string& what);
[[noreturn]] void ThrowType(Napi::Env env, const std::string& msg);

// Argument accessors: throw a TypeError naming the argument when it is missing or of the wrong type.
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name);
int32_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name, int32_t min, int32_t max);
uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* name);
bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* name);
Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i, const char* name, size_t exactLen);
int ArgFd(const Napi::CallbackInfo& info, size_t i, const char* name);

// libbpf writes warnings (verifier logs, pin mismatches) through a print callback; we keep the tail so
// load errors can say *why* instead of just "Invalid argument".
void InstallLibbpfLogger();
void ClearLibbpfLog();
std::string LibbpfLogTail();

// Registration hooks, one per *_wrap.cc / ops file; main.cc calls them.
void InitBpfObject(Napi::Env env, Napi::Object exports);
void InitBpfMap(Napi::Env env, Napi::Object exports);
void InitLinkOps(Napi::Env env, Napi::Object exports);
void InitNetnsThread(Napi::Env env, Napi::Object exports);
void InitSysOps(Napi::Env env, Napi::Object exports);

}  // namespace nm
