/* Tests of the pure parts of the cgroup module: the effective limits and their
 * file formats, and where a cell's leaves go on pure v2, hybrid and v1 hosts,
 * with and without CELLOS_CGROUP_PARENT. The host layouts are given as the text
 * of /proc/self/mountinfo and /proc/self/cgroup, so every layout is tested here,
 * whatever this machine is. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "isolate/cgroup_host.h"
#include "isolate/cgroup_limits.h"

/* ---- host layouts ---- */

/* Debian 12 with systemd in hybrid mode (and this CI machine): v1 controllers,
 * cpu and cpuacct separate, a controller-less v2 at /sys/fs/cgroup/unified. */
static const char hybrid_mi[] =
	"22 27 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
	"31 22 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
	"32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
	"33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
	"34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
	"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
	"39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
	"40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
	"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
static const char hybrid_self[] =
	"9:name=systemd:/\n"
	"8:pids:/\n"
	"6:freezer:/\n"
	"4:memory:/process_api/a4c9\n"
	"3:cpuset:/\n"
	"2:cpuacct:/\n"
	"1:cpu:/\n"
	"0::/\n";

/* A pure v2 host under systemd. */
static const char v2_mi[] =
	"24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
	"26 24 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
static const char v2_self[] = "0::/user.slice/user-1000.slice/session-3.scope\n";

/* Older distributions: cpu and cpuacct co-mounted, no v2 at all. */
static const char v1_mi[] =
	"31 22 0:28 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n"
	"32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
	"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
	"36 31 0:33 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
	"39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n";
static const char v1_self[] = "5:pids:/system.slice/ci.service\n"
			      "3:memory:/system.slice/ci.service\n"
			      "2:cpu,cpuacct:/system.slice/ci.service\n"
			      "0::/system.slice/ci.service\n";

/* A container without a cgroup namespace: the host's hierarchies bind-mounted
 * from the container's own cgroup. */
static const char container_mi[] =
	"700 690 0:29 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n"
	"701 690 0:36 /docker/abc /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids\n";
static const char container_self[] = "8:pids:/docker/abc/job\n"
				     "4:memory:/elsewhere\n";

static struct cgroup_host *host(const char *mi, const char *self)
{
	struct cgroup_host *h = malloc(sizeof *h);
	assert_non_null(h);
	cgroup_host_parse(h, mi, self);
	return h;
}

/* Where the leaf of hierarchy `which` goes; NULL when that is an error. */
static char *parent_of(const struct cgroup_host *h, int which, const char *parent, bool *mapped)
{
	static char out[4096];
	struct err e = {0};
	bool m = false;
	if (cgroup_leaf_parent(h, which, parent, out, sizeof out, &m, &e) < 0) {
		assert_true(e.msg[0] != '\0');
		return NULL;
	}
	if (mapped)
		*mapped = m;
	return out;
}

/* ---- limits ---- */

static void limits_spec_cpu_wins_over_env(void **state)
{
	struct cgroup_limits l;
	cgroup_limits_resolve(&l, 0, 20000, 50000, 70000, 100000, 0);
	assert_int_equal(l.cpu_quota, 20000);
	assert_int_equal(l.cpu_period, 50000);
	assert_false(l.cpu_from_env);
	assert_false(l.cpu_raised);
	assert_int_equal(cgroup_limits_ctrls(&l), CG_CPU);
}

static void limits_env_cpu_when_spec_silent(void **state)
{
	struct cgroup_limits l;
	cgroup_limits_resolve(&l, 1 << 20, 0, 0, 70000, 200000, 8);
	assert_int_equal(l.cpu_quota, 70000);
	assert_int_equal(l.cpu_period, 200000);
	assert_true(l.cpu_from_env);
	assert_int_equal(l.memory_max, 1 << 20);
	assert_int_equal(l.pids_max, 8);
	assert_int_equal(cgroup_limits_ctrls(&l), CG_MEMORY | CG_PIDS | CG_CPU);
}

static void limits_none(void **state)
{
	struct cgroup_limits l;
	cgroup_limits_resolve(&l, 0, 0, 100000, 0, 0, 0);
	assert_int_equal(cgroup_limits_ctrls(&l), 0);
	assert_int_equal(l.cpu_quota, 0);
	assert_int_equal(cgroup_pids_max_value(&l), 0);
}

static void limits_quota_raised_to_kernel_minimum(void **state)
{
	struct cgroup_limits l;
	cgroup_limits_resolve(&l, 0, 1, 100000, 0, 0, 0);
	assert_int_equal(l.cpu_quota, CG_CPU_QUOTA_MIN);
	assert_true(l.cpu_raised);
	cgroup_limits_resolve(&l, 0, 0, 0, 999, 1000, 0);
	assert_int_equal(l.cpu_quota, 1000);
	assert_true(l.cpu_raised && l.cpu_from_env);
	cgroup_limits_resolve(&l, 0, 1000, 1000, 0, 0, 0);
	assert_false(l.cpu_raised);
}

static void limits_default_period(void **state)
{
	struct cgroup_limits l;
	cgroup_limits_resolve(&l, 0, 30000, 0, 0, 0, 0);
	assert_int_equal(l.cpu_period, 100000);
}

static void cpu_max_format(void **state)
{
	char buf[64];
	struct cgroup_limits l;
	cgroup_limits_resolve(&l, 0, 20000, 100000, 0, 0, 0);
	cgroup_format_cpu_max(&l, buf, sizeof buf);
	assert_string_equal(buf, "20000 100000");
	cgroup_limits_resolve(&l, 0, 250000, 1000000, 0, 0, 0); /* more than one CPU */
	cgroup_format_cpu_max(&l, buf, sizeof buf);
	assert_string_equal(buf, "250000 1000000");
	cgroup_limits_resolve(&l, 0, 10, 100000, 0, 0, 0);
	cgroup_format_cpu_max(&l, buf, sizeof buf);
	assert_string_equal(buf, "1000 100000");
	cgroup_limits_resolve(&l, 0, 0, 0, 0, 0, 0);
	cgroup_format_cpu_max(&l, buf, sizeof buf);
	assert_string_equal(buf, "max 100000");
}

static void pids_max_counts_the_init(void **state)
{
	struct cgroup_limits l;
	cgroup_limits_resolve(&l, 0, 0, 0, 0, 0, 64);
	assert_int_equal(cgroup_pids_max_value(&l), 65);
}

/* ---- parsing ---- */

static void parse_hybrid(void **state)
{
	struct cgroup_host *h = host(hybrid_mi, hybrid_self);
	assert_int_equal(h->n_mounts, 7);
	assert_true(h->v2 >= 0);
	assert_string_equal(h->mounts[h->v2].mnt, "/sys/fs/cgroup/unified");
	assert_string_equal(h->mounts[h->v1[CG_IDX_MEMORY]].mnt, "/sys/fs/cgroup/memory");
	assert_string_equal(h->mounts[h->v1[CG_IDX_PIDS]].mnt, "/sys/fs/cgroup/pids");
	/* "cpu" is the cpu controller only: not cpuacct, not cpuset. */
	assert_string_equal(h->mounts[h->v1[CG_IDX_CPU]].mnt, "/sys/fs/cgroup/cpu");
	assert_string_equal(h->own_v2, "/");
	assert_string_equal(h->own_v1[CG_IDX_MEMORY], "/process_api/a4c9");
	assert_string_equal(h->own_v1[CG_IDX_CPU], "/");
	free(h);
}

static void parse_pure_v2(void **state)
{
	struct cgroup_host *h = host(v2_mi, v2_self);
	assert_int_equal(h->n_mounts, 1);
	assert_string_equal(h->mounts[h->v2].mnt, "/sys/fs/cgroup");
	for (int i = 0; i < CG_NCTRL; i++)
		assert_int_equal(h->v1[i], -1);
	assert_string_equal(h->own_v2, "/user.slice/user-1000.slice/session-3.scope");
	free(h);
}

static void parse_comounted_cpu(void **state)
{
	struct cgroup_host *h = host(v1_mi, v1_self);
	assert_int_equal(h->v2, -1);
	assert_string_equal(h->mounts[h->v1[CG_IDX_CPU]].mnt, "/sys/fs/cgroup/cpu,cpuacct");
	assert_int_equal(h->mounts[h->v1[CG_IDX_CPU]].ctrls, CG_CPU);
	assert_string_equal(h->own_v1[CG_IDX_CPU], "/system.slice/ci.service");
	free(h);
}

static void parse_escaped_mount_point(void **state)
{
	struct cgroup_host *h = host("41 31 0:38 / /mnt/my\\040cgroups rw - cgroup2 cgroup2 rw\n", "0::/a b\n");
	assert_string_equal(h->mounts[h->v2].mnt, "/mnt/my cgroups");
	assert_string_equal(parent_of(h, -1, NULL, NULL), "/mnt/my cgroups/a b");
	free(h);
}

static void parse_prefers_the_usual_mount(void **state)
{
	/* A second (e.g. read-only test) mount of the same v2 hierarchy, listed first. */
	struct cgroup_host *h = host("50 1 0:38 / /tmp/ro-cg rw - cgroup2 cgroup2 rw\n"
				     "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
				     "0::/\n");
	assert_string_equal(h->mounts[h->v2].mnt, "/sys/fs/cgroup/unified");
	assert_int_equal(h->n_mounts, 2);
	free(h);
}

static void parse_ignores_garbage(void **state)
{
	struct cgroup_host *h = host("not a mountinfo line\n\n- - -\n", "garbage\n::\n");
	assert_int_equal(h->n_mounts, 0);
	assert_int_equal(h->v2, -1);
	assert_null(parent_of(h, -1, NULL, NULL));
	assert_null(parent_of(h, CG_IDX_MEMORY, NULL, NULL));
	free(h);
}

/* ---- placement without CELLOS_CGROUP_PARENT ---- */

static void own_cgroup_hybrid(void **state)
{
	struct cgroup_host *h = host(hybrid_mi, hybrid_self);
	bool mapped = true;
	assert_string_equal(parent_of(h, -1, NULL, &mapped), "/sys/fs/cgroup/unified");
	assert_false(mapped);
	assert_string_equal(parent_of(h, CG_IDX_MEMORY, NULL, NULL), "/sys/fs/cgroup/memory/process_api/a4c9");
	assert_string_equal(parent_of(h, CG_IDX_PIDS, NULL, NULL), "/sys/fs/cgroup/pids");
	assert_string_equal(parent_of(h, CG_IDX_CPU, NULL, NULL), "/sys/fs/cgroup/cpu");
	free(h);
}

static void own_cgroup_pure_v2(void **state)
{
	struct cgroup_host *h = host(v2_mi, v2_self);
	assert_string_equal(parent_of(h, -1, NULL, NULL), "/sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope");
	assert_null(parent_of(h, CG_IDX_MEMORY, NULL, NULL)); /* no v1 memory: v2 carries it */
	free(h);
	h = host(v2_mi, "0::/\n"); /* root cgroup (or a cgroup namespace's root) */
	assert_string_equal(parent_of(h, -1, NULL, NULL), "/sys/fs/cgroup");
	free(h);
}

static void own_cgroup_bind_mounted_subtree(void **state)
{
	struct cgroup_host *h = host(container_mi, container_self);
	assert_string_equal(parent_of(h, CG_IDX_PIDS, NULL, NULL), "/sys/fs/cgroup/pids/job");
	/* Our memory cgroup is outside what is mounted: no leaf there. */
	assert_null(parent_of(h, CG_IDX_MEMORY, NULL, NULL));
	assert_null(parent_of(h, -1, NULL, NULL));
	free(h);
}

/* ---- placement with CELLOS_CGROUP_PARENT ---- */

static void parent_v2_on_hybrid(void **state)
{
	struct cgroup_host *h = host(hybrid_mi, hybrid_self);
	bool mapped = true;
	assert_string_equal(parent_of(h, -1, "/sys/fs/cgroup/unified/ci/cells", &mapped),
			    "/sys/fs/cgroup/unified/ci/cells");
	assert_false(mapped);
	/* The same relative path in the v1 hierarchies (the caller falls back to
	 * the own cgroup where that directory does not exist). */
	assert_string_equal(parent_of(h, CG_IDX_MEMORY, "/sys/fs/cgroup/unified/ci/cells", &mapped),
			    "/sys/fs/cgroup/memory/ci/cells");
	assert_true(mapped);
	assert_string_equal(parent_of(h, CG_IDX_CPU, "/sys/fs/cgroup/unified/ci/cells/", &mapped),
			    "/sys/fs/cgroup/cpu/ci/cells");
	free(h);
}

static void parent_v1_maps_to_the_others(void **state)
{
	struct cgroup_host *h = host(hybrid_mi, hybrid_self);
	bool mapped = true;
	assert_string_equal(parent_of(h, CG_IDX_MEMORY, "/sys/fs/cgroup/memory/cells", &mapped),
			    "/sys/fs/cgroup/memory/cells");
	assert_false(mapped);
	assert_string_equal(parent_of(h, CG_IDX_PIDS, "/sys/fs/cgroup/memory/cells", &mapped),
			    "/sys/fs/cgroup/pids/cells");
	assert_true(mapped);
	assert_string_equal(parent_of(h, -1, "/sys/fs/cgroup/memory/cells", &mapped),
			    "/sys/fs/cgroup/unified/cells");
	assert_true(mapped);
	/* A hierarchy's root as the parent. */
	assert_string_equal(parent_of(h, CG_IDX_CPU, "/sys/fs/cgroup/pids", &mapped), "/sys/fs/cgroup/cpu");
	/* A parent in a hierarchy we make no leaf in (name=systemd): mapped too. */
	assert_string_equal(parent_of(h, CG_IDX_MEMORY, "/sys/fs/cgroup/systemd/x", &mapped),
			    "/sys/fs/cgroup/memory/x");
	assert_true(mapped);
	free(h);
}

static void parent_v1_comounted(void **state)
{
	struct cgroup_host *h = host(v1_mi, v1_self);
	bool mapped = true;
	/* The cpu,cpuacct mount holds the cpu controller: used as given. */
	assert_string_equal(parent_of(h, CG_IDX_CPU, "/sys/fs/cgroup/cpu,cpuacct/batch", &mapped),
			    "/sys/fs/cgroup/cpu,cpuacct/batch");
	assert_false(mapped);
	assert_string_equal(parent_of(h, CG_IDX_MEMORY, "/sys/fs/cgroup/cpu,cpuacct/batch", &mapped),
			    "/sys/fs/cgroup/memory/batch");
	assert_true(mapped);
	assert_null(parent_of(h, -1, "/sys/fs/cgroup/memory/batch", NULL)); /* no v2 here */
	free(h);
}

static void parent_pure_v2(void **state)
{
	struct cgroup_host *h = host(v2_mi, v2_self);
	bool mapped = true;
	assert_string_equal(parent_of(h, -1, "/sys/fs/cgroup/cellos.slice", &mapped), "/sys/fs/cgroup/cellos.slice");
	assert_false(mapped);
	free(h);
}

static void parent_outside_any_hierarchy(void **state)
{
	struct cgroup_host *h = host(hybrid_mi, hybrid_self);
	assert_null(parent_of(h, -1, "/tmp/not-a-cgroup", NULL));
	/* /sys/fs/cgroup itself is the tmpfs holding the mounts, not a hierarchy. */
	assert_null(parent_of(h, CG_IDX_MEMORY, "/sys/fs/cgroup/memoryx", NULL));
	free(h);
}

static void parent_in_bind_mounted_subtree(void **state)
{
	struct cgroup_host *h = host(container_mi, container_self);
	bool mapped = true;
	/* /sys/fs/cgroup/memory/x is /docker/abc/x in the hierarchy; in pids it is
	 * mounted at /sys/fs/cgroup/pids too. */
	assert_string_equal(parent_of(h, CG_IDX_PIDS, "/sys/fs/cgroup/memory/x", &mapped), "/sys/fs/cgroup/pids/x");
	assert_true(mapped);
	free(h);
}

/* ---- this host ---- */

/* The statfs() fast path and the mountinfo parse put the leaves in the same
 * places on this machine (hybrid in CI). */
static void fast_path_agrees_with_mountinfo(void **state)
{
	struct cgroup_host *fast = malloc(sizeof *fast), *slow = malloc(sizeof *slow);
	assert_non_null(fast);
	assert_non_null(slow);
	struct err e = {0};
	assert_int_equal(cgroup_host_load(fast, true, &e), 0);
	assert_int_equal(cgroup_host_load(slow, false, &e), 0);
	assert_true(slow->v2 >= 0);
	for (int which = -1; which < CG_NCTRL; which++) {
		char a[4096], b[4096], ra[4096], rb[4096];
		bool m;
		int rs = cgroup_leaf_parent(slow, which, NULL, b, sizeof b, &m, &e);
		int rf = cgroup_leaf_parent(fast, which, NULL, a, sizeof a, &m, &e);
		assert_int_equal(rf, rs);
		if (rs == 0) {
			assert_non_null(realpath(a, ra));
			assert_non_null(realpath(b, rb));
			assert_string_equal(ra, rb);
		}
	}
	free(fast);
	free(slow);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(limits_spec_cpu_wins_over_env),
		cmocka_unit_test(limits_env_cpu_when_spec_silent),
		cmocka_unit_test(limits_none),
		cmocka_unit_test(limits_quota_raised_to_kernel_minimum),
		cmocka_unit_test(limits_default_period),
		cmocka_unit_test(cpu_max_format),
		cmocka_unit_test(pids_max_counts_the_init),
		cmocka_unit_test(parse_hybrid),
		cmocka_unit_test(parse_pure_v2),
		cmocka_unit_test(parse_comounted_cpu),
		cmocka_unit_test(parse_escaped_mount_point),
		cmocka_unit_test(parse_prefers_the_usual_mount),
		cmocka_unit_test(parse_ignores_garbage),
		cmocka_unit_test(own_cgroup_hybrid),
		cmocka_unit_test(own_cgroup_pure_v2),
		cmocka_unit_test(own_cgroup_bind_mounted_subtree),
		cmocka_unit_test(parent_v2_on_hybrid),
		cmocka_unit_test(parent_v1_maps_to_the_others),
		cmocka_unit_test(parent_v1_comounted),
		cmocka_unit_test(parent_pure_v2),
		cmocka_unit_test(parent_outside_any_hierarchy),
		cmocka_unit_test(parent_in_bind_mounted_subtree),
		cmocka_unit_test(fast_path_agrees_with_mountinfo),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
