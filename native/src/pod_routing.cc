// pod_routing.cc: rtnetlink (RTM_{NEW,DEL}RULE, RTM_{NEW,DEL}ROUTE) and one sysctl, inside a pod netns.
//
// The agent connects to a pod's application from the client's address (IP_TRANSPARENT, mark
// NM_AGENT_MARK_TRANSPARENT). The application's replies go to that address, which is not the pod's: without
// help they would leave through eth0. net.ipv4.tcp_fwmark_accept makes the application's accepted socket take
// the mark of the SYN that created it (only the agent's connections carry that mark), and a rule sends
// packets with the mark to a table whose only route is "local default dev lo": the replies loop back to the
// agent's socket. Nothing else in the pod is routed differently.
#include "pod_routing.h"

#include <fcntl.h>
#include <linux/fib_rules.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace nm {

namespace {

constexpr int kLoopbackIfindex = 1;

class Msg {
 public:
  Msg(uint16_t type, uint16_t flags, const void* body, size_t len) {
    buf_.resize(NLMSG_LENGTH(len));
    auto* h = reinterpret_cast<nlmsghdr*>(buf_.data());
    h->nlmsg_type = type;
    h->nlmsg_flags = flags;
    h->nlmsg_seq = 1;
    std::memcpy(NLMSG_DATA(h), body, len);
    Fix();
  }

  void U32(uint16_t type, uint32_t v) {
    size_t off = NLMSG_ALIGN(buf_.size());
    buf_.resize(off + RTA_SPACE(sizeof(v)));
    auto* a = reinterpret_cast<rtattr*>(buf_.data() + off);
    a->rta_type = type;
    a->rta_len = RTA_LENGTH(sizeof(v));
    std::memcpy(RTA_DATA(a), &v, sizeof(v));
    Fix();
  }

  const char* data() const { return buf_.data(); }
  size_t size() const { return buf_.size(); }

 private:
  void Fix() { reinterpret_cast<nlmsghdr*>(buf_.data())->nlmsg_len = static_cast<uint32_t>(buf_.size()); }
  std::vector<char> buf_;
};

// Sends one request and reads its ACK; returns 0 or the kernel's (positive) errno.
int Talk(int fd, const Msg& m) {
  sockaddr_nl kernel = {};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, m.data(), m.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) < 0) return errno;
  char reply[4096];
  for (;;) {
    ssize_t n = recv(fd, reply, sizeof(reply), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    for (auto* h = reinterpret_cast<nlmsghdr*>(reply); NLMSG_OK(h, static_cast<unsigned>(n)); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_ERROR) return -reinterpret_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
    }
  }
}

std::string Describe(const char* what, int err) { return std::string(what) + ": " + std::strerror(err); }

std::string Family(int fd, int family, bool add, uint32_t mark, uint32_t table, uint32_t priority) {
  const uint16_t flags = NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0);
  fib_rule_hdr rule = {};
  rule.family = static_cast<uint8_t>(family);
  rule.action = FR_ACT_TO_TBL;
  Msg r(add ? RTM_NEWRULE : RTM_DELRULE, flags, &rule, sizeof(rule));
  r.U32(FRA_FWMARK, mark);
  r.U32(FRA_FWMASK, 0xffffffff);
  r.U32(FRA_TABLE, table);
  r.U32(FRA_PRIORITY, priority);
  int err = Talk(fd, r);
  // EEXIST: an earlier agent made it (idempotent); ENOENT: nothing to remove
  if (err && !(add && err == EEXIST) && !(!add && err == ENOENT)) return Describe(add ? "ip rule add" : "ip rule del", err);

  rtmsg rt = {};
  rt.rtm_family = static_cast<uint8_t>(family);
  rt.rtm_table = RT_TABLE_UNSPEC;  // the table number is in RTA_TABLE (it does not fit in 8 bits)
  rt.rtm_protocol = RTPROT_STATIC;
  rt.rtm_scope = RT_SCOPE_HOST;
  rt.rtm_type = RTN_LOCAL;
  Msg route(add ? RTM_NEWROUTE : RTM_DELROUTE, flags, &rt, sizeof(rt));
  route.U32(RTA_TABLE, table);
  route.U32(RTA_OIF, kLoopbackIfindex);
  err = Talk(fd, route);
  if (err && !(add && err == EEXIST) && !(!add && (err == ESRCH || err == ENOENT))) {
    return Describe(add ? "ip route add local default dev lo" : "ip route del local default", err);
  }
  return "";
}

std::string EnableFwmarkAccept() {
  // /proc/sys/net resolves to the calling thread's network namespace: this thread has setns()ed into the pod's
  int fd = open("/proc/sys/net/ipv4/tcp_fwmark_accept", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return Describe("open /proc/sys/net/ipv4/tcp_fwmark_accept", errno);
  ssize_t n = write(fd, "1\n", 2);
  int err = errno;
  close(fd);
  return n == 2 ? "" : Describe("write /proc/sys/net/ipv4/tcp_fwmark_accept", err);
}

}  // namespace

RoutingResult ConfigurePodRouting(bool add, uint32_t mark, uint32_t table, uint32_t priority) {
  RoutingResult res;
  if (add) res.sysctl = EnableFwmarkAccept();
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) {
    res.v4 = res.v6 = Describe("socket(AF_NETLINK)", errno);
    return res;
  }
  sockaddr_nl local = {};
  local.nl_family = AF_NETLINK;
  if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local))) {
    res.v4 = res.v6 = Describe("bind(AF_NETLINK)", errno);
  } else {
    res.v4 = Family(fd, AF_INET, add, mark, table, priority);
    res.v6 = Family(fd, AF_INET6, add, mark, table, priority);
  }
  close(fd);
  return res;
}

}  // namespace nm
