/* The Linux namespaces a cell can have, as bits: the vocabulary shared by the
 * configuration (CELLOS_SUBPROCESS_UNSHARE), the backends and the cell's init. */
#ifndef CELLOS_NS_H
#define CELLOS_NS_H

enum {
	NS_NET = 1 << 0,
	NS_MNT = 1 << 1,
	NS_PID = 1 << 2,
	NS_IPC = 1 << 3,
	NS_UTS = 1 << 4,
	NS_USER = 1 << 5,
	NS_CGROUP = 1 << 6,
};

#endif
