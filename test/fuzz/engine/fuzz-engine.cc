// The fuzz engine's native half: LLVM's libFuzzer (Debian's libclang-rt-14-dev, linked statically) drives a
// JavaScript target. Coverage comes from the JavaScript side as 8-bit edge counters in one Uint8Array that the
// instrumented code increments; libFuzzer reads them as an inline-counter module. String comparisons the
// instrumented code makes are fed to libFuzzer's table of recent compares, so its mutations can try them.
//
// Two modes. Sync: libFuzzer runs on the JavaScript thread and calls the target directly (fastest; for
// targets that finish within the call). Async: libFuzzer runs on its own thread and hands each input to the
// event loop through a thread-safe function, waiting until the target says it is done (for targets that need
// I/O or timers).
//
// A watchdog thread here, not libFuzzer's SIGALRM, bounds the time per input: the alarm goes to whichever
// thread the kernel picks, and libFuzzer ignores it on any thread but its own, which in async mode is never the
// one stuck in JavaScript.
#include <napi.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

extern "C" {
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*user_cb)(const uint8_t *data, size_t size));
void __sanitizer_cov_8bit_counters_init(uint8_t *start, uint8_t *stop);
void __sanitizer_cov_pcs_init(const uintptr_t *pcs_beg, const uintptr_t *pcs_end);
void __sanitizer_weak_hook_strcmp(void *caller_pc, const char *s1, const char *s2, int result);
}

namespace {

// Exit codes the runner reads (libFuzzer's own: 77 crash from a deadly signal, -rss_limit_mb: 78 via -oom_exitcode).
constexpr int kExitTimeout = 70;
constexpr int kExitEngine = 71;

napi_env g_env = nullptr;
Napi::FunctionReference g_target;
Napi::ThreadSafeFunction g_tsfn;
std::vector<uintptr_t> g_pcs;
std::vector<std::string> g_args;
std::vector<char *> g_argv;
std::string g_artifact_prefix;
unsigned long long g_execs = 0;

// The input being run, for the watchdog. Held under g_mu from the start to the end of each run, so the
// watchdog never reads an input libFuzzer has already let go of.
std::mutex g_mu;
std::condition_variable g_cv;
const uint8_t *g_cur = nullptr;
size_t g_cur_size = 0;
std::chrono::steady_clock::time_point g_cur_start;
bool g_running = false;
unsigned g_timeout_ms = 0;

void Fail(const char *what) {
  fprintf(stderr, "fuzz-engine: %s\n", what);
  fflush(stderr);
  _exit(kExitEngine);
}

// libFuzzer ends a finished run with exit(0) from whichever thread runs it; in async mode that races the
// JavaScript thread through static destructors. Leave at once instead, saying how many inputs ran.
void OnExit(int status, void *) {
  fprintf(stderr, "fuzz-engine: %llu executions\n", g_execs);
  fflush(stdout);
  fflush(stderr);
  _exit(status);
}

uint64_t Fnv1a(const uint8_t *data, size_t size) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < size; i++) h = (h ^ data[i]) * 1099511628211ULL;
  return h;
}

void Watchdog() {
  std::unique_lock<std::mutex> lock(g_mu);
  for (;;) {
    g_cv.wait_for(lock, std::chrono::milliseconds(100));
    if (!g_running) continue;
    auto ran = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - g_cur_start).count();
    if (ran < static_cast<long long>(g_timeout_ms)) continue;
    char name[64];
    snprintf(name, sizeof name, "timeout-%016llx", static_cast<unsigned long long>(Fnv1a(g_cur, g_cur_size)));
    std::string path = g_artifact_prefix + name;
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    bool saved = fd >= 0 && write(fd, g_cur, g_cur_size) == static_cast<ssize_t>(g_cur_size);
    if (fd >= 0) close(fd);
    fprintf(stderr, "fuzz-engine: TIMEOUT: input %llu (%zu bytes) ran for %lld ms, over the %u ms bound; %s %s\n", g_execs, g_cur_size, static_cast<long long>(ran),
            g_timeout_ms, saved ? "saved to" : "could not save it to", path.c_str());
    fprintf(stderr, "fuzz-engine: %llu executions\n", g_execs);
    fflush(stderr);
    _exit(kExitTimeout);
  }
}

void BeginInput(const uint8_t *data, size_t size) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_cur = data;
  g_cur_size = size;
  g_cur_start = std::chrono::steady_clock::now();
  g_running = true;
  g_execs++;
}

void EndInput() {
  std::lock_guard<std::mutex> lock(g_mu);
  g_running = false;
  g_cur = nullptr;
}

int SyncCallback(const uint8_t *data, size_t size) {
  BeginInput(data, size);
  int code = 0;
  {
    Napi::Env env(g_env);
    Napi::HandleScope scope(env);
    try {
      Napi::Value r = g_target.Call({Napi::Buffer<uint8_t>::Copy(env, data, size)});
      if (r.IsNumber()) code = r.As<Napi::Number>().Int32Value();
    } catch (const Napi::Error &e) {
      fprintf(stderr, "fuzz-engine: the target's wrapper threw: %s\n", e.Message().c_str());
      Fail("a target wrapper must catch what its target throws");
    }
  }
  EndInput();
  return code;
}

struct Job {
  const uint8_t *data;
  size_t size;
  std::promise<int> done;
  bool answered = false;
};

void CallJs(Napi::Env env, Napi::Function fn, Job *job) {
  try {
    Napi::Function done = Napi::Function::New(env, [job](const Napi::CallbackInfo &info) {
      if (job->answered) return;
      job->answered = true;
      job->done.set_value(info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0);
    });
    fn.Call({Napi::Buffer<uint8_t>::Copy(env, job->data, job->size), done});
  } catch (const Napi::Error &e) {
    fprintf(stderr, "fuzz-engine: the target's wrapper threw: %s\n", e.Message().c_str());
    Fail("a target wrapper must catch what its target throws");
  }
}

int AsyncCallback(const uint8_t *data, size_t size) {
  BeginInput(data, size);
  Job job{data, size, {}};
  std::future<int> answer = job.done.get_future();
  if (g_tsfn.BlockingCall(&job, CallJs) != napi_ok) Fail("could not reach the JavaScript thread");
  int code = answer.get();
  EndInput();
  return code;
}

void SetArgs(const Napi::Array &args) {
  g_args.clear();
  g_args.emplace_back("fuzz-engine");
  for (uint32_t i = 0; i < args.Length(); i++) g_args.push_back(args.Get(i).As<Napi::String>().Utf8Value());
  g_argv.clear();
  for (auto &a : g_args) g_argv.push_back(a.data());
  g_argv.push_back(nullptr);
}

/** registerCounters(counters: Uint8Array): one inline-counter module with a PC table of the same length. */
Napi::Value RegisterCounters(const Napi::CallbackInfo &info) {
  Napi::Uint8Array counters = info[0].As<Napi::Uint8Array>();
  uint8_t *start = counters.Data();
  size_t n = counters.ElementLength();
  if (n == 0 || !g_pcs.empty()) throw Napi::Error::New(info.Env(), "registerCounters: call once, with a non-empty array");
  // libFuzzer wants one {pc, flags} pair per counter; the "pc" is just the edge id plus one.
  g_pcs.resize(2 * n);
  for (size_t i = 0; i < n; i++) {
    g_pcs[2 * i] = i + 1;
    g_pcs[2 * i + 1] = 0;
  }
  __sanitizer_cov_8bit_counters_init(start, start + n);
  __sanitizer_cov_pcs_init(g_pcs.data(), g_pcs.data() + g_pcs.size());
  return info.Env().Undefined();
}

/** traceStrCmp(a, b, id): two strings a comparison found unequal; libFuzzer may splice `b` into inputs. */
Napi::Value TraceStrCmp(const Napi::CallbackInfo &info) {
  std::string a = info[0].As<Napi::String>().Utf8Value();
  std::string b = info[1].As<Napi::String>().Utf8Value();
  uintptr_t id = info[2].As<Napi::Number>().Uint32Value();
  __sanitizer_weak_hook_strcmp(reinterpret_cast<void *>(id), a.c_str(), b.c_str(), a == b ? 0 : 1);
  return info.Env().Undefined();
}

void StartWatchdog(const Napi::Object &opts) {
  g_artifact_prefix = opts.Get("artifactPrefix").As<Napi::String>().Utf8Value();
  g_timeout_ms = opts.Get("timeoutMs").As<Napi::Number>().Uint32Value();
  on_exit(OnExit, nullptr);
  std::thread(Watchdog).detach();
}

/** runSync(target, libFuzzerArgs, {artifactPrefix, timeoutMs}): never returns (libFuzzer exits the process). */
Napi::Value RunSync(const Napi::CallbackInfo &info) {
  g_env = info.Env();
  g_target = Napi::Persistent(info[0].As<Napi::Function>());
  SetArgs(info[1].As<Napi::Array>());
  StartWatchdog(info[2].As<Napi::Object>());
  int argc = static_cast<int>(g_args.size());
  char **argv = g_argv.data();
  int rc = LLVMFuzzerRunDriver(&argc, &argv, SyncCallback);
  exit(rc);
}

/** runAsync(target(data, done), libFuzzerArgs, {artifactPrefix, timeoutMs}): libFuzzer on its own thread. */
Napi::Value RunAsync(const Napi::CallbackInfo &info) {
  g_tsfn = Napi::ThreadSafeFunction::New(info.Env(), info[0].As<Napi::Function>(), "fuzz-engine", 0, 1);
  SetArgs(info[1].As<Napi::Array>());
  StartWatchdog(info[2].As<Napi::Object>());
  std::thread([] {
    int argc = static_cast<int>(g_args.size());
    char **argv = g_argv.data();
    int rc = LLVMFuzzerRunDriver(&argc, &argv, AsyncCallback);
    exit(rc);
  }).detach();
  return info.Env().Undefined();
}

/** executions(): inputs run so far. */
Napi::Value Executions(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), static_cast<double>(g_execs));
}

/** exitNow(code): leaves at once (after a finding the target already saved and reported). */
Napi::Value ExitNow(const Napi::CallbackInfo &info) {
  fprintf(stderr, "fuzz-engine: %llu executions\n", g_execs);
  fflush(stdout);
  fflush(stderr);
  _exit(info[0].As<Napi::Number>().Int32Value());
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("registerCounters", Napi::Function::New(env, RegisterCounters));
  exports.Set("traceStrCmp", Napi::Function::New(env, TraceStrCmp));
  exports.Set("runSync", Napi::Function::New(env, RunSync));
  exports.Set("runAsync", Napi::Function::New(env, RunAsync));
  exports.Set("executions", Napi::Function::New(env, Executions));
  exports.Set("exitNow", Napi::Function::New(env, ExitNow));
  return exports;
}

}  // namespace

NODE_API_MODULE(fuzz_engine, Init)
