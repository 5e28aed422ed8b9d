// main.cc: registers the addon's classes and functions; nothing else lives here.
#include <napi.h>

#include "common.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  nm::InstallLibbpfLogger();
  nm::InitBpfMap(env, exports);
  nm::InitBpfObject(env, exports);
  nm::InitLinkOps(env, exports);
  nm::InitNetnsThread(env, exports);
  nm::InitSysOps(env, exports);
  return exports;
}

NODE_API_MODULE(nodemesh, Init)
