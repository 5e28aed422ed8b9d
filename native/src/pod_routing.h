// pod_routing.h: the policy routing a pod netns needs so replies to the agent's transparent sockets come back to it.
#pragma once

#include <cstdint>
#include <string>

namespace nm {

// What failed per part, empty when it worked (or, when removing, was already gone).
struct RoutingResult {
  std::string sysctl;
  std::string v4;
  std::string v6;
};

// Runs in the calling thread's network namespace (the netns thread, after setns). add: tcp_fwmark_accept=1,
// "fwmark MARK lookup TABLE" at PRIORITY and "local default dev lo table TABLE", for IPv4 and IPv6; idempotent.
// !add: the rules and routes go (the sysctl stays: it only acts on marked connections, and the pod's own
// value before us is unknown).
RoutingResult ConfigurePodRouting(bool add, uint32_t mark, uint32_t table, uint32_t priority);

}  // namespace nm
