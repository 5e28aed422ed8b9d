/* sock.h: connect-time helpers: which sockets are the agent's, which destinations stay alone, listener probe. */
#ifndef NM_LIB_SOCK_H
#define NM_LIB_SOCK_H

#include "common.h"
#include "maps.h"

/*
 * The agent's own upstream sockets live in pod netns too (created there so they carry the pod's IP);
 * redirecting them would loop them back into the agent. They carry SO_MARK 1337; the agent's cgroup id
 * is a second guard for sockets the agent opens without the mark (e.g. from its node netns tooling).
 */
NM_INLINE bool nm_is_agent_socket(struct bpf_sock_addr *ctx)
{
	struct nm_config *cfg = nm_config_get();
	struct bpf_sock *sk = ctx->sk;
	__u32 mark = NM_AGENT_MARK;

	if (cfg && cfg->mark)
		mark = cfg->mark;
	if (sk && (sk->mark == mark || sk->mark == NM_AGENT_MARK_TRANSPARENT))
		return true;
	if (cfg && cfg->agent_cgroup_id && bpf_get_current_cgroup_id() == cfg->agent_cgroup_id)
		return true;
	return false;
}

NM_INLINE bool nm_is_mesh_port(__u16 port)
{
	return port == NM_PORT_OUTBOUND || port == NM_PORT_INBOUND || port == NM_PORT_HBONE;
}

/* 127.0.0.0/8 or 0.0.0.0: local traffic never goes through the mesh. ip in network order. */
NM_INLINE bool nm_is_local4(__u32 ip)
{
	return ip == 0 || (bpf_ntohl(ip) >> 24) == 127;
}

/*
 * Fail-open probe: is the agent's 15001 listener alive in this socket's netns? The listener dies with the
 * agent process, so a crashed agent means connects go direct instead of into a dead port. The lookup runs
 * in the netns of ctx->sk (BPF_F_CURRENT_NETNS), i.e. the pod's.
 */
NM_INLINE bool nm_outbound_listener4(struct bpf_sock_addr *ctx)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;

	t.ipv4.daddr = NM_LOOPBACK4;
	t.ipv4.dport = bpf_htons(NM_PORT_OUTBOUND);
	sk = bpf_sk_lookup_tcp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return false;
	bpf_sk_release(sk);
	return true;
}

NM_INLINE bool nm_outbound_listener6(struct bpf_sock_addr *ctx)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;

	t.ipv6.daddr[3] = bpf_htonl(1); /* ::1 */
	t.ipv6.dport = bpf_htons(NM_PORT_OUTBOUND);
	sk = bpf_sk_lookup_tcp(ctx, &t, sizeof(t.ipv6), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return false;
	bpf_sk_release(sk);
	return true;
}

/*
 * Listener missing: fail open (leave the connect alone) unless the pod is fail-closed, in which case the
 * connect gets EPERM. Returns the sock_addr verdict.
 */
NM_INLINE int nm_no_listener(struct nm_pod *pod)
{
	if (pod->flags & NM_POD_FAIL_CLOSED) {
		__sync_fetch_and_add(&pod->fail_closed_denied, 1);
		nm_stat_inc(NM_STAT_FAIL_CLOSED_DENY);
		return NM_SYS_REJECT;
	}
	__sync_fetch_and_add(&pod->fail_open, 1);
	nm_stat_inc(NM_STAT_FAIL_OPEN);
	return NM_SYS_PROCEED;
}

/* The enrolled pod owning this socket's netns, or NULL (not enrolled, not TCP, or the agent's own). */
NM_INLINE struct nm_pod *nm_pod_for_connect(struct bpf_sock_addr *ctx)
{
	struct nm_pod *pod;
	__u64 netns;

	if (ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP)
		return NULL;
	netns = bpf_get_netns_cookie(ctx);
	pod = bpf_map_lookup_elem(&nm_pods, &netns);
	if (!pod || !(pod->flags & NM_POD_ENROLLED))
		return NULL;
	if (nm_is_agent_socket(ctx)) {
		nm_stat_inc(NM_STAT_EXCLUDED_AGENT);
		return NULL;
	}
	return pod;
}

/* Remember where the app wanted to go, keyed by socket cookie, until sockops sees ESTABLISHED. */
NM_INLINE bool nm_record_sock_dst(struct bpf_sock_addr *ctx, struct nm_addr *orig)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);

	if (bpf_map_update_elem(&nm_sock_dst, &cookie, orig, BPF_ANY)) {
		nm_stat_inc(NM_STAT_MAP_UPDATE_FAILED);
		return false;
	}
	return true;
}

#endif /* NM_LIB_SOCK_H */
