/* common.h: includes, constants missing from uapi headers, and small helpers shared by every entry file. */
#ifndef NM_LIB_COMMON_H
#define NM_LIB_COMMON_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "../include/nodemesh_abi.h"

/* From <sys/socket.h>/<linux/socket.h>, which do not mix with BPF targets. */
#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif
#ifndef SOCK_STREAM
#define SOCK_STREAM 1
#endif

/* cgroup sock_addr return codes. */
#define NM_SYS_PROCEED 1
#define NM_SYS_REJECT 0

#define NM_INLINE static __always_inline

/*
 * Clang may fuse two adjacent 4-byte ctx stores (user_ip6[0..3], or user_ip4 next to other fields) into
 * one 8-byte store; the verifier rejects that as "invalid bpf_context access". An empty asm with a memory
 * clobber between the stores keeps them separate.
 */
#define nm_barrier() asm volatile("" ::: "memory")

#define NM_LOOPBACK4 bpf_htonl(0x7f000001) /* 127.0.0.1 */

#endif /* NM_LIB_COMMON_H */
