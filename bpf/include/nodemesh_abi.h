/* nodemesh_abi.h: the contract between the BPF programs and userspace (src/datapath/abi.ts mirrors it). */
/*
 * Everything a userspace reader or writer of our pinned maps must agree on lives here: ports, marks,
 * flags, map key/value layouts and stat codes. test/unit/datapath-abi.test.ts compiles this header and
 * compares sizes, offsets and values against abi.ts, so a change on one side alone fails CI.
 *
 * Rules: stat codes and flag bits are never renumbered or reused (dashboards and older agents read them
 * by number); layouts change only together with the pin root version (/sys/fs/bpf/nodemesh/v1), because
 * pinned maps survive agent restarts and libbpf refuses to reuse a pin whose layout differs.
 */
#ifndef NODEMESH_ABI_H
#define NODEMESH_ABI_H

#include <linux/types.h>

/* Well-known ports (ztunnel's numbers) inside each pod netns. */
#define NM_PORT_OUTBOUND 15001
#define NM_PORT_INBOUND 15006
#define NM_PORT_HBONE 15008

/* SO_MARK the agent puts on its own sockets so connect4/6 never redirect them. */
#define NM_AGENT_MARK 1337
/*
 * SO_MARK of the agent's sockets that connect to a pod's application from the client's own address
 * (IP_TRANSPARENT). With tcp_fwmark_accept in the pod netns the application's accepted socket inherits it, and
 * the pod's policy route for this mark delivers the application's replies to the agent over loopback. Never
 * redirected either. Its own value: a rule on NM_AGENT_MARK would loop back the agent's outbound sockets too.
 */
#define NM_AGENT_MARK_TRANSPARENT 1338

/* nm_addr.family */
#define NM_FAMILY_V4 4
#define NM_FAMILY_V6 6

/* nm_pod.flags */
#define NM_POD_ENROLLED (1U << 0)
#define NM_POD_FAIL_CLOSED (1U << 1)
/* The agent stops without a successor: connects are treated as if its listener were gone (fail open/closed). */
#define NM_POD_DRAINING (1U << 2)

/* nm_steer_key.kind: which in-pod listener a steering entry points at. */
#define NM_STEER_INBOUND 1 /* plaintext inbound, 15006 */
#define NM_STEER_HBONE 2   /* reserved: HBONE inbound, 15008 */

/* nm_config.flags: none defined yet; reserved for feature switches. */

/* Map sizes. Changing one changes the pinned map: bump the pin root version. */
#define NM_PODS_MAX 4096
#define NM_SOCK_DST_MAX 65536
#define NM_TUPLE_DST_MAX 65536
#define NM_STEER_MAX 8192
#define NM_STATS_MAX 32
#define NM_OWN_FLOWS_MAX 16384

/*
 * Stat codes: index into the nm_stats PERCPU_ARRAY. Append only; never renumber.
 */
#define NM_STAT_REDIRECT4 0          /* connect4 rewritten to 127.0.0.1:15001 */
#define NM_STAT_REDIRECT6 1          /* connect6 rewritten to [::1]:15001 (or ::ffff:127.0.0.1) */
#define NM_STAT_FAIL_OPEN 2          /* enrolled pod, no 15001 listener: connect left alone */
#define NM_STAT_FAIL_CLOSED_DENY 3   /* enrolled fail-closed pod, no listener: connect refused */
#define NM_STAT_EXCLUDED_AGENT 4     /* agent's own socket (mark or cgroup): left alone */
#define NM_STAT_ORIGDST_RECORDED 5   /* sockops copied cookie -> tuple entry */
#define NM_STAT_ORIGDST_MISSING 6    /* established to 15001 with no recorded destination */
#define NM_STAT_STEER_INBOUND 7      /* sk_lookup assigned a 15006 listener */
#define NM_STAT_STEER_NO_LISTENER 8  /* sk_lookup: pod IP known, listener gone or assign failed */
#define NM_STAT_SKIPPED_DST 9        /* enrolled pod dialed loopback/any/mesh port: left alone */
#define NM_STAT_MAP_UPDATE_FAILED 10 /* a map update failed (map full): redirect skipped or dst lost */
#define NM_STAT_STEER_SAME_POD 11    /* sk_lookup: flow from the pod to itself, not steered */
#define NM_STAT_STEER_OWN_FLOW 12    /* sk_lookup: the agent's own connection to the app from a client address, not steered */
#define NM_STAT__COUNT 13            /* number of defined codes (< NM_STATS_MAX) */

/* An endpoint. v4 lives in ip[0]; ip is in network byte order, port in HOST byte order. */
struct nm_addr {
	__u32 ip[4];
	__u16 port;
	__u8 family; /* NM_FAMILY_V4 | NM_FAMILY_V6 */
	__u8 pad;
};

/* nm_pods value, keyed by the pod's netns cookie (__u64). Counters are updated with atomic adds. */
struct nm_pod {
	__u32 flags; /* NM_POD_* */
	__u32 pad;
	__u64 redirected;
	__u64 fail_open;
	__u64 fail_closed_denied;
};

/* nm_tuple_dst key: the redirected connection as the agent sees it when accepting on 15001. */
struct nm_tuple_key {
	__u64 netns_cookie;
	struct nm_addr src; /* client local ip:port = accepted socket's peer */
	struct nm_addr dst; /* 127.0.0.1:15001 / [::1]:15001 = accepted socket's local address */
};

/*
 * nm_own_flows key: a connection the agent is opening to a pod's application from a client's address
 * (transparent), as sk_lookup sees its SYN. netns_cookie is 0 (pod IPs are unique on a node); src is the
 * client ip:port the agent bound, dst the application's ip:port. Value: __u8, unused.
 */

/* nm_steer key -> listening socket (SOCKHASH). */
struct nm_steer_key {
	__u32 ip[4]; /* pod IP, network order, v4 in ip[0] */
	__u8 family; /* NM_FAMILY_V4 | NM_FAMILY_V6 */
	__u8 kind;   /* NM_STEER_* */
	__u16 pad;
};

/* nm_config[0]: written by the agent at start. */
struct nm_config {
	__u64 agent_cgroup_id; /* cgroup v2 id of the agent: its connects are never redirected */
	__u32 mark;            /* NM_AGENT_MARK */
	__u32 flags;
};

#endif /* NODEMESH_ABI_H */
