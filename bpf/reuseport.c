/* reuseport.c: on each in-pod listener's SO_REUSEPORT group — hand a closing listener's queue to the others. */
#include "lib/common.h"

/*
 * During an agent handover the old and the new agent's listeners share one SO_REUSEPORT group per port. When
 * the old agent closes its listener the kernel resets every connection still queued on it (accepted by TCP,
 * not yet by the agent) and every handshake in progress, unless the group can migrate them. A program of
 * this attach type attached to the group (SO_ATTACH_REUSEPORT_EBPF) turns migration on for that group alone,
 * without the netns-wide net.ipv4.tcp_migrate_req that would change it for the pod's own listeners too.
 * Returning SK_PASS without selecting keeps the kernel's choice: the socket by hash, for new connections as
 * for migrated ones (the closing listener is no longer among the candidates).
 */
SEC("sk_reuseport/migrate")
int nm_reuseport_migrate(struct sk_reuseport_md *md)
{
	return SK_PASS;
}
