/* maps.h: the pinned maps every program shares (layouts in include/nodemesh_abi.h). */
#ifndef NM_LIB_MAPS_H
#define NM_LIB_MAPS_H

#include "common.h"

/*
 * Every entry file includes this header, and `bpftool gen object` links the entry objects into one.
 * The definitions are weak so the linker keeps a single copy of each map instead of reporting
 * duplicate symbols; LIBBPF_PIN_BY_NAME makes libbpf reuse the pins under the agent's pin root, which is
 * what lets a restarted agent keep enrolled pods, counters and in-flight original destinations.
 */

/* netns cookie -> pod. Written LAST on enroll and deleted FIRST on unenroll: it is the "on" switch. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NM_PODS_MAX);
	__type(key, __u64);
	__type(value, struct nm_pod);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_pods SEC(".maps") __weak;

/* socket cookie -> original destination, between connect() and ESTABLISHED. LRU: failed connects age out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NM_SOCK_DST_MAX);
	__type(key, __u64);
	__type(value, struct nm_addr);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_sock_dst SEC(".maps") __weak;

/* {netns cookie, client tuple} -> original destination; consumed by the agent on accept. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NM_TUPLE_DST_MAX);
	__type(key, struct nm_tuple_key);
	__type(value, struct nm_addr);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_tuple_dst SEC(".maps") __weak;

/* {pod ip, family, kind} -> the pod's in-netns listener that sk_lookup assigns inbound flows to. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, NM_STEER_MAX);
	__type(key, struct nm_steer_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_steer SEC(".maps") __weak;

/*
 * The agent's own upstream connections from a client's address, between bind() and the end of connect(): the
 * only way sk_lookup can tell their SYN (locally generated, but reported with the pod interface as ingress)
 * from a client's. Written and deleted by the agent; LRU so an agent killed mid-connect leaves nothing for long.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NM_OWN_FLOWS_MAX);
	__type(key, struct nm_tuple_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_own_flows SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nm_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_config SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NM_STATS_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nm_stats SEC(".maps") __weak;

NM_INLINE void nm_stat_inc(__u32 code)
{
	__u64 *v = bpf_map_lookup_elem(&nm_stats, &code);

	/* per-CPU slot: no atomic needed, preemption is off inside the program */
	if (v)
		*v += 1;
}

NM_INLINE struct nm_config *nm_config_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&nm_config, &zero);
}

#endif /* NM_LIB_MAPS_H */
