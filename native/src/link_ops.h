// link_ops.h: attach-or-adopt of pinned BPF links (cgroup and netns), shared by BpfObject.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

struct bpf_program;

namespace nm {

enum class LinkTarget { kCgroup, kNetns };

struct AttachResult {
  uint32_t linkId = 0;
  uint32_t programId = 0;
  bool adopted = false;
};

// If `pinPath` holds a live link of the right kind on the same target, swaps `prog` into it in place
// (restart path: the hook never runs zero or two programs); otherwise detaches whatever is pinned there,
// attaches `prog` to the target afresh and pins the new link. `targetFd` is a cgroup dir fd or netns fd.
AttachResult AttachOrAdopt(Napi::Env env, bpf_program* prog, LinkTarget kind, int targetFd, const std::string& pinPath);

Napi::Object AttachResultToJs(Napi::Env env, const AttachResult& r);

}  // namespace nm
