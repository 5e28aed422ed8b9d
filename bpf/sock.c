/* sock.c: cgroup connect4/connect6 — redirect enrolled pods' outbound TCP to the in-pod 15001 listener. */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/sock.h"

char _license[] SEC("license") = "Dual BSD/GPL";

SEC("cgroup/connect4")
int nm_sock4_connect(struct bpf_sock_addr *ctx)
{
	struct nm_addr orig = {};
	struct nm_pod *pod;
	__u32 dip;
	__u16 dport;

	pod = nm_pod_for_connect(ctx);
	if (!pod)
		return NM_SYS_PROCEED;

	dip = ctx->user_ip4;
	dport = bpf_ntohs((__u16)ctx->user_port);
	if (nm_is_local4(dip) || nm_is_mesh_port(dport)) {
		nm_stat_inc(NM_STAT_SKIPPED_DST);
		return NM_SYS_PROCEED;
	}
	if ((pod->flags & NM_POD_DRAINING) || !nm_outbound_listener4(ctx))
		return nm_no_listener(pod);

	orig.ip[0] = dip;
	orig.port = dport;
	orig.family = NM_FAMILY_V4;
	if (!nm_record_sock_dst(ctx, &orig))
		return NM_SYS_PROCEED; /* without a record the agent could not route it: go direct */

	ctx->user_ip4 = NM_LOOPBACK4;
	nm_barrier();
	ctx->user_port = bpf_htons(NM_PORT_OUTBOUND);
	__sync_fetch_and_add(&pod->redirected, 1);
	nm_stat_inc(NM_STAT_REDIRECT4);
	return NM_SYS_PROCEED;
}

/* ::ffff:a.b.c.d — a dual-stack socket dialing IPv4; the kernel turns it into a v4 connect. */
static __always_inline bool nm_is_v4mapped(__u32 a, __u32 b, __u32 c)
{
	return a == 0 && b == 0 && c == bpf_htonl(0x0000ffff);
}

SEC("cgroup/connect6")
int nm_sock6_connect(struct bpf_sock_addr *ctx)
{
	struct nm_addr orig = {};
	struct nm_pod *pod;
	__u32 a, b, c, d;
	__u16 dport;

	pod = nm_pod_for_connect(ctx);
	if (!pod)
		return NM_SYS_PROCEED;

	a = ctx->user_ip6[0];
	b = ctx->user_ip6[1];
	c = ctx->user_ip6[2];
	d = ctx->user_ip6[3];
	dport = bpf_ntohs((__u16)ctx->user_port);
	if (nm_is_mesh_port(dport)) {
		nm_stat_inc(NM_STAT_SKIPPED_DST);
		return NM_SYS_PROCEED;
	}

	if (nm_is_v4mapped(a, b, c)) {
		if (nm_is_local4(d)) {
			nm_stat_inc(NM_STAT_SKIPPED_DST);
			return NM_SYS_PROCEED;
		}
		/* the connection will be IPv4 on the wire, so it lands on the 127.0.0.1 listener */
		if ((pod->flags & NM_POD_DRAINING) || !nm_outbound_listener4(ctx))
			return nm_no_listener(pod);
		orig.ip[0] = d;
		orig.port = dport;
		orig.family = NM_FAMILY_V4;
		if (!nm_record_sock_dst(ctx, &orig))
			return NM_SYS_PROCEED;
		ctx->user_ip6[3] = NM_LOOPBACK4;
		nm_barrier();
		ctx->user_port = bpf_htons(NM_PORT_OUTBOUND);
		__sync_fetch_and_add(&pod->redirected, 1);
		nm_stat_inc(NM_STAT_REDIRECT6);
		return NM_SYS_PROCEED;
	}

	/* :: and ::1 */
	if (a == 0 && b == 0 && c == 0 && (d == 0 || d == bpf_htonl(1))) {
		nm_stat_inc(NM_STAT_SKIPPED_DST);
		return NM_SYS_PROCEED;
	}
	if ((pod->flags & NM_POD_DRAINING) || !nm_outbound_listener6(ctx))
		return nm_no_listener(pod);
	orig.ip[0] = a;
	orig.ip[1] = b;
	orig.ip[2] = c;
	orig.ip[3] = d;
	orig.port = dport;
	orig.family = NM_FAMILY_V6;
	if (!nm_record_sock_dst(ctx, &orig))
		return NM_SYS_PROCEED;

	ctx->user_ip6[0] = 0;
	nm_barrier();
	ctx->user_ip6[1] = 0;
	nm_barrier();
	ctx->user_ip6[2] = 0;
	nm_barrier();
	ctx->user_ip6[3] = bpf_htonl(1);
	nm_barrier();
	ctx->user_port = bpf_htons(NM_PORT_OUTBOUND);
	__sync_fetch_and_add(&pod->redirected, 1);
	nm_stat_inc(NM_STAT_REDIRECT6);
	return NM_SYS_PROCEED;
}
