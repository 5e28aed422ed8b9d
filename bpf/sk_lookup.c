/* sk_lookup.c: per pod netns — steer inbound TCP for the pod's IPs to the agent's in-pod 15006 listener. */
#include "lib/common.h"
#include "lib/maps.h"

/*
 * Runs when the pod's netns looks for a listener for a new inbound connection (established flows never
 * reach it). Steering keeps the original local address, so the agent reads the intended ip:port from the
 * accepted socket itself. Not steered: the agent's own ports, addresses that are not the pod's (loopback,
 * Service VIPs), and the agent's own upstream hop to the app, which it opens from inside the pod: from the
 * pod's own IP (a same-pod flow), or from the client's address (transparent), registered in nm_own_flows for
 * the duration of its connect. Steering those would loop them back into the agent. ingress_ifindex cannot
 * tell them apart: for locally generated packets to a local address the kernel reports the device that holds
 * the address, not loopback.
 */
/* Is this the SYN of one of the agent's own transparent connections (nm_own_flows)? Ports: remote_port is
 * network order, local_port host order; nm_addr.port is host order. */
static __always_inline bool nm_own_flow(struct bpf_sk_lookup *ctx)
{
	struct nm_tuple_key key = {};

	if (ctx->family == AF_INET) {
		key.src.ip[0] = ctx->remote_ip4;
		key.src.family = NM_FAMILY_V4;
		key.dst.ip[0] = ctx->local_ip4;
		key.dst.family = NM_FAMILY_V4;
	} else {
		key.src.ip[0] = ctx->remote_ip6[0];
		key.src.ip[1] = ctx->remote_ip6[1];
		key.src.ip[2] = ctx->remote_ip6[2];
		key.src.ip[3] = ctx->remote_ip6[3];
		key.src.family = NM_FAMILY_V6;
		key.dst.ip[0] = ctx->local_ip6[0];
		key.dst.ip[1] = ctx->local_ip6[1];
		key.dst.ip[2] = ctx->local_ip6[2];
		key.dst.ip[3] = ctx->local_ip6[3];
		key.dst.family = NM_FAMILY_V6;
	}
	key.src.port = bpf_ntohs(ctx->remote_port);
	key.dst.port = (__u16)ctx->local_port;
	return bpf_map_lookup_elem(&nm_own_flows, &key) != NULL;
}

SEC("sk_lookup")
int nm_sk_lookup(struct bpf_sk_lookup *ctx)
{
	struct nm_steer_key key = {};
	struct bpf_sock *sk;
	bool same_pod;
	long err;

	if (ctx->protocol != IPPROTO_TCP)
		return SK_PASS;
	if (ctx->local_port == NM_PORT_OUTBOUND || ctx->local_port == NM_PORT_INBOUND ||
	    ctx->local_port == NM_PORT_HBONE)
		return SK_PASS;

	key.kind = NM_STEER_INBOUND;
	if (ctx->family == AF_INET) {
		key.family = NM_FAMILY_V4;
		key.ip[0] = ctx->local_ip4;
		same_pod = ctx->remote_ip4 == ctx->local_ip4;
	} else if (ctx->family == AF_INET6) {
		key.family = NM_FAMILY_V6;
		key.ip[0] = ctx->local_ip6[0];
		key.ip[1] = ctx->local_ip6[1];
		key.ip[2] = ctx->local_ip6[2];
		key.ip[3] = ctx->local_ip6[3];
		same_pod = ctx->remote_ip6[0] == key.ip[0] && ctx->remote_ip6[1] == key.ip[1] &&
			   ctx->remote_ip6[2] == key.ip[2] && ctx->remote_ip6[3] == key.ip[3];
	} else {
		return SK_PASS;
	}

	if (nm_own_flow(ctx)) {
		nm_stat_inc(NM_STAT_STEER_OWN_FLOW);
		return SK_PASS;
	}

	/* a missing entry means "not a pod IP" or "listener closed" (the sockhash drops closed sockets):
	 * both fall through to the normal lookup, i.e. straight to the app — fail open */
	sk = bpf_map_lookup_elem(&nm_steer, &key);
	if (!sk)
		return SK_PASS;
	if (same_pod) {
		bpf_sk_release(sk);
		nm_stat_inc(NM_STAT_STEER_SAME_POD);
		return SK_PASS;
	}
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	if (err) {
		nm_stat_inc(NM_STAT_STEER_NO_LISTENER);
		return SK_PASS;
	}
	nm_stat_inc(NM_STAT_STEER_INBOUND);
	return SK_PASS;
}
