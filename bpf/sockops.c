/* sockops.c: on ESTABLISHED, re-key a redirected socket's original destination by {netns, 4-tuple}. */
#include "lib/common.h"
#include "lib/maps.h"

/*
 * Why a second map: the agent only sees the accepted socket (its peer is the client's local ip:port), not
 * the client's socket cookie. The client's ACTIVE_ESTABLISHED callback runs in tcp_finish_connect before
 * the final ACK is sent, so the tuple entry exists before the agent's accept() can return. The netns
 * cookie keeps pods apart: every pod uses the same 127.0.0.1:15001.
 */

/* sockops port encodings differ: local_port is host order, remote_port is the __be16 shifted into the
 * upper half of the u32 on little-endian, which bpf_ntohl() turns back into the host-order port. */
static __always_inline void nm_fill_tuple4(struct bpf_sock_ops *skops, struct nm_tuple_key *key)
{
	key->src.ip[0] = skops->local_ip4;
	key->src.port = (__u16)skops->local_port;
	key->src.family = NM_FAMILY_V4;
	key->dst.ip[0] = skops->remote_ip4;
	key->dst.port = (__u16)bpf_ntohl(skops->remote_port);
	key->dst.family = NM_FAMILY_V4;
}

static __always_inline void nm_fill_tuple6(struct bpf_sock_ops *skops, struct nm_tuple_key *key)
{
	key->src.ip[0] = skops->local_ip6[0];
	key->src.ip[1] = skops->local_ip6[1];
	key->src.ip[2] = skops->local_ip6[2];
	key->src.ip[3] = skops->local_ip6[3];
	key->src.port = (__u16)skops->local_port;
	key->src.family = NM_FAMILY_V6;
	key->dst.ip[0] = skops->remote_ip6[0];
	key->dst.ip[1] = skops->remote_ip6[1];
	key->dst.ip[2] = skops->remote_ip6[2];
	key->dst.ip[3] = skops->remote_ip6[3];
	key->dst.port = (__u16)bpf_ntohl(skops->remote_port);
	key->dst.family = NM_FAMILY_V6;
}

SEC("sockops")
int nm_sockops(struct bpf_sock_ops *skops)
{
	struct nm_tuple_key key = {};
	struct nm_addr *orig;
	__u64 cookie;

	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
		return 1;

	cookie = bpf_get_socket_cookie(skops);
	orig = bpf_map_lookup_elem(&nm_sock_dst, &cookie);
	if (!orig) {
		/* someone reached 15001 without going through connect4/6 (or the LRU evicted the entry) */
		if (bpf_ntohl(skops->remote_port) == NM_PORT_OUTBOUND) {
			__u64 netns = bpf_get_netns_cookie(skops);

			if (bpf_map_lookup_elem(&nm_pods, &netns))
				nm_stat_inc(NM_STAT_ORIGDST_MISSING);
		}
		return 1;
	}

	key.netns_cookie = bpf_get_netns_cookie(skops);
	if (skops->family == AF_INET) {
		nm_fill_tuple4(skops, &key);
	} else if (skops->family == AF_INET6) {
		/* a dual-stack socket that dialed ::ffff:a.b.c.d is IPv4 on the wire; the agent accepts it on
		 * the 127.0.0.1 listener and sees v4 addresses, so key it as v4 */
		if (skops->remote_ip6[0] == 0 && skops->remote_ip6[1] == 0 &&
		    skops->remote_ip6[2] == bpf_htonl(0x0000ffff))
			nm_fill_tuple4(skops, &key);
		else
			nm_fill_tuple6(skops, &key);
	} else {
		return 1;
	}

	if (bpf_map_update_elem(&nm_tuple_dst, &key, orig, BPF_ANY))
		nm_stat_inc(NM_STAT_MAP_UPDATE_FAILED);
	else
		nm_stat_inc(NM_STAT_ORIGDST_RECORDED);
	bpf_map_delete_elem(&nm_sock_dst, &cookie);
	return 1;
}
