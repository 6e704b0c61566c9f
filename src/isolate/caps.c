#include "isolate/caps.h"

#include <errno.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int get_caps(struct __user_cap_data_struct data[2], struct err *e)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	if (syscall(SYS_capget, &hdr, data) < 0)
		return err_sys(e, errno, "read the capability sets");
	return 0;
}

int caps_drop_bounding(struct err *e)
{
	struct __user_cap_data_struct data[2] = {{0}};
	if (get_caps(data, e) < 0)
		return -1;
	/* An unprivileged supervisor without a user namespace has nothing to drop
	 * and no right to touch the bounding set; NO_NEW_PRIVS (caps_drop_all) is
	 * what keeps its workload from gaining anything. */
	if (!data[0].permitted && !data[1].permitted)
		return 0;
	/* Dropping from the bounding set needs CAP_SETPCAP, which caps_drop_all
	 * takes away. An empty bounding set is what keeps an execve by uid 0 (or of
	 * a file with capabilities) from granting any. */
	for (int cap = 0;; cap++) {
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0)
			continue;
		if (errno == EINVAL)
			break; /* past the kernel's last capability */
		return err_sys(e, errno, "drop capability %d from the bounding set", cap);
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return err_sys(e, errno, "clear the ambient capabilities");
	/* Belt and braces, locked so the workload cannot undo them: uid 0 is not
	 * special at execve, and ambient capabilities can never be raised again. */
	unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
			     SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED | SECBIT_KEEP_CAPS_LOCKED;
	if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) < 0)
		return err_sys(e, errno, "set securebits");
	return 0;
}

int caps_drop_all(struct err *e)
{
	/* Capability 0 still in the bounding set: the first half was not done. */
	if (prctl(PR_CAPBSET_READ, 0, 0, 0, 0) > 0 && caps_drop_bounding(e) < 0)
		return -1;
	struct __user_cap_data_struct data[2] = {{0}};
	if (get_caps(data, e) < 0)
		return -1;
	if (data[0].permitted || data[1].permitted || data[0].inheritable || data[1].inheritable) {
		struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
		memset(data, 0, 2 * sizeof data[0]);
		if (syscall(SYS_capset, &hdr, data) < 0)
			return err_sys(e, errno, "clear the capability sets");
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return err_sys(e, errno, "clear the ambient capabilities");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return err_sys(e, errno, "set no_new_privs");
	return 0;
}
