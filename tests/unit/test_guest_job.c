/* Tests of cellos-init's job parsing (guest/job.c), and of the job and exit
 * frame as the host writes and checks them (src/backend/vm_job.c,
 * src/util/vm_frame.c): what the host writes, the guest reads. Also the VM size
 * rule (src/backend/vm_limits.c) and the artifact stream's reader. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/vm_job.h"
#include "backend/vm_limits.h"
#include "job.h"
#include "util/vm_frame.h"

static unsigned char keybuf[VM_KEY_BYTES];

static const char *K = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="; /* bytes 0..31 */

static int parse(const char *text, struct job *j, char *why)
{
	memset(j, 0, sizeof *j);
	j->key = keybuf;
	return job_parse(text, strlen(text), j, why, 256);
}

static void test_full_job(void **state)
{
	char text[2048], why[256];
	snprintf(text, sizeof text,
		 "{\"version\":1,\"runId\":\"r-1\",\"key\":\"%s\",\"argv\":[\"/bin/sh\",\"-c\",\"echo hi\"],"
		 "\"env\":[\"PATH=/bin\",\"A=b=c\"],\"workingDirectory\":\"/work\","
		 "\"files\":[{\"path\":\"/run/cellos/secrets/T\",\"data\":\"czNjcmV0\",\"mode\":256}],"
		 "\"mounts\":[{\"device\":\"/dev/vdb\",\"target\":\"/data\"}],\"rootDevice\":\"/dev/vda\","
		 "\"artifacts\":[\"/workspace/out.txt\"],\"end\":\"reset\",\"uid\":100042,\"gid\":100042}",
		 K);
	struct job j;
	assert_int_equal(parse(text, &j, why), 0);
	assert_string_equal(j.run_id, "r-1");
	assert_true(j.have_key);
	for (int i = 0; i < VM_KEY_BYTES; i++)
		assert_int_equal(j.key[i], i);
	assert_string_equal(j.argv[2], "echo hi");
	assert_null(j.argv[3]);
	assert_string_equal(j.env[1], "A=b=c");
	assert_string_equal(j.workdir, "/work");
	assert_int_equal(j.n_files, 1);
	assert_int_equal(j.files[0].len, 6);
	assert_memory_equal(j.files[0].data, "s3cret", 6);
	assert_int_equal(j.files[0].mode, 0400);
	assert_string_equal(j.mounts[0].target, "/data");
	assert_string_equal(j.root_device, "/dev/vda");
	assert_string_equal(j.artifacts[0], "/workspace/out.txt");
	assert_true(j.reset);
	assert_int_equal(j.uid, 100042);
	assert_int_equal(j.gid, 100042);
	job_free(&j);
}

static void test_rejects(void **state)
{
	static const char *bad[] = {
		"{\"version\":2,\"runId\":\"r\",\"key\":\"%s\"}",
		"{\"version\":1,\"key\":\"%s\"}",
		"{\"version\":1,\"runId\":\"r\",\"key\":\"AAAA\"}",
		"{\"version\":1,\"runId\":\"r\",\"key\":\"%s\",\"argv\":[]}",
		"{\"version\":1,\"runId\":\"r\",\"key\":\"%s\",\"argv\":[\"a\\u0000b\"]}",
		"{\"version\":1,\"runId\":\"r\",\"key\":\"%s\",\"env\":[\"NOEQUALS\"]}",
		"{\"version\":1,\"runId\":\"r\",\"key\":\"%s\",\"workingDirectory\":\"rel\"}",
		"{\"version\":1,\"runId\":\"r\",\"key\":\"%s\",\"mounts\":[{\"device\":\"/etc/x\",\"target\":\"/d\"}]}",
		"{\"version\":1,\"runId\":\"r\",\"key\":\"%s\",\"files\":[{\"path\":\"/a\",\"data\":\"!!\",\"mode\":256}]}",
		"{\"version\":1,\"runId\":\"r\",\"key\":\"%s\",\"end\":\"halt\"}",
		"{\"version\":1,\"runId\":\"r\",\"key\":\"%s\",\"network\":{\"address\":\"10.0.2.2\",\"prefix\":30,"
		"\"gateway\":\"10.0.2.1\",\"dns\":5}}",
		"{\"version\":1,\"runId\":\"r\",\"key\":\"%s\",\"uid\":0,\"gid\":0}",
		"{\"version\":1,\"runId\":\"r\",\"key\":\"%s\",\"uid\":5}",
		"{\"version\":1,\"runId\":\"r\",\"runId\":\"s\",\"key\":\"%s\"}",
		"not json",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char text[1024], why[256] = "";
		snprintf(text, sizeof text, bad[i], K);
		struct job j;
		assert_int_equal(parse(text, &j, why), -1);
		assert_true(why[0] != 0);
		job_free(&j);
	}
}

static void test_cmdline(void **state)
{
	const char *argv[] = {"/bin/echo", "a b", "ü", NULL};
	bool too_long;
	char *opt = vm_job_cmdline_argv(argv, &too_long, NULL);
	assert_non_null(opt);
	char cmdline[2048];
	snprintf(cmdline, sizeof cmdline, "console=ttyS0 quiet %s panic=-1\n", opt);
	free(opt);
	struct job j = {0};
	char why[256];
	assert_int_equal(job_argv_from_cmdline(cmdline, &j, why, sizeof why), 1);
	assert_string_equal(j.argv[1], "a b");
	assert_string_equal(j.argv[2], "ü");
	assert_null(j.argv[3]);
	job_free(&j);
	assert_int_equal(job_argv_from_cmdline("console=ttyS0 xcellos.argv=WyJhIl0=", &j, why, sizeof why), 0);
	assert_int_equal(job_argv_from_cmdline("cellos.argv=@@@", &j, why, sizeof why), -1);
	assert_int_equal(job_argv_from_cmdline("cellos.argv=e30=", &j, why, sizeof why), -1); /* {} */

	const char *big[300];
	for (int i = 0; i < 299; i++)
		big[i] = "0123456789";
	big[299] = NULL;
	assert_null(vm_job_cmdline_argv(big, &too_long, NULL));
	assert_true(too_long);
}

/* The host's job archive carries a job the guest parses back identically. */
static void test_host_job_round_trip(void **state)
{
	unsigned char key[VM_KEY_BYTES];
	for (int i = 0; i < VM_KEY_BYTES; i++)
		key[i] = (unsigned char)(0xA0 + i);
	const char *argv[] = {"true", NULL};
	char *envp[] = {"PATH=/bin", NULL};
	struct vm_job_file f = {.path = "/run/cellos/secrets/K", .data = "v", .len = 1, .mode = 0400};
	struct vm_job hj = {.run_id = "run-9", .argv = argv, .envp = envp, .files = &f, .n_files = 1, .key = key,
			    .net_address = "10.0.2.2", .net_prefix = 30, .net_gateway = "10.0.2.1", .net_dns = "100.96.0.1"};
	char path[] = "/tmp/test-guest-job-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(vm_job_write(fd, &hj, true, NULL), 0);
	char buf[8192];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	close(fd);
	assert_true(n > 0);
	buf[n] = 0;
	assert_memory_equal(buf, "070701", 6);
	assert_int_equal(n % 4, 0);
	char *json = memmem(buf, (size_t)n, "cellos/job.json", 15);
	assert_non_null(json);
	json = memchr(json, '{', (size_t)(buf + n - json));
	assert_non_null(json);
	buf[n] = 0;
	struct job j;
	char why[256];
	memset(&j, 0, sizeof j);
	j.key = keybuf;
	assert_int_equal(job_parse(json, strlen(json), &j, why, sizeof why), 0);
	assert_memory_equal(j.key, key, VM_KEY_BYTES);
	assert_string_equal(j.argv[0], "true");
	assert_false(j.reset);
	assert_memory_equal(j.files[0].data, "v", 1);
	assert_string_equal(j.net_address, "10.0.2.2");
	assert_int_equal(j.net_prefix, 30);
	assert_string_equal(j.net_dns, "100.96.0.1");
	job_free(&j);
}

static void test_frame(void **state)
{
	unsigned char key[VM_KEY_BYTES] = {1, 2, 3};
	unsigned char frame[VM_FRAME_BYTES];
	vm_frame_make(key, "run-1", 42, frame);
	assert_memory_equal(frame, "\x2a\0\0\0", 4);
	int32_t st = -1;
	assert_int_equal(vm_frame_check(key, "run-1", frame, sizeof frame, &st), 0);
	assert_int_equal(st, 42);
	assert_int_equal(vm_frame_check(key, "run-2", frame, sizeof frame, &st), -1);
	assert_int_equal(vm_frame_check(key, "run-1", frame, sizeof frame - 1, &st), -1);
	frame[0] = 0; /* a forged status with the old tag */
	assert_int_equal(vm_frame_check(key, "run-1", frame, sizeof frame, &st), -1);
	key[0] ^= 1;
	vm_frame_make(key, "run-1", 0, frame);
	key[0] ^= 1;
	assert_int_equal(vm_frame_check(key, "run-1", frame, sizeof frame, &st), -1);
}

static void test_vm_shape(void **state)
{
	struct vm_shape v;
	vm_shape_of(0, 0, 100000, 256, 1, 128, &v);
	assert_int_equal(v.mem_mib, 256);
	assert_int_equal(v.vcpus, 1);
	assert_int_equal(v.vmm_mem_max, (256 + 128) << 20);
	vm_shape_of(200000000, 250000, 100000, 256, 4, 64, &v); /* 190.7 MiB, 2.5 CPUs */
	assert_int_equal(v.mem_mib, 191);
	assert_int_equal(v.vcpus, 3);
	assert_int_equal(v.vmm_mem_max, (191LL + 64) << 20);
	vm_shape_of(1 << 20, 50000, 100000, 256, 4, 128, &v);
	assert_int_equal(v.mem_mib, 1);
	assert_int_equal(v.vcpus, 1);
}

static void test_artifact_stream(void **state)
{
	/* record 1: 3 bytes "abc"; record 0: errno 40 (ELOOP), no bytes; record 2 cut short */
	unsigned char s[] = {1, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 'a', 'b', 'c',
			     0, 0, 0, 0, 40, 0, 0, 0, 0, 0, 0, 0, 0,
			     2, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 'x'};
	size_t off, size;
	int gerr;
	assert_int_equal(vm_artifact_find(s, sizeof s, 1, &off, &size, &gerr), 0);
	assert_int_equal(size, 3);
	assert_memory_equal(s + off, "abc", 3);
	assert_int_equal(gerr, 0);
	assert_int_equal(vm_artifact_find(s, sizeof s, 0, &off, &size, &gerr), 0);
	assert_int_equal(gerr, 40);
	assert_int_equal(vm_artifact_find(s, sizeof s, 2, &off, &size, &gerr), -1);
	assert_int_equal(vm_artifact_find(s, sizeof s, 7, &off, &size, &gerr), -1);
	assert_int_equal(vm_artifact_find(s, 5, 1, &off, &size, &gerr), -1);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_job),        cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_cmdline),         cmocka_unit_test(test_host_job_round_trip),
		cmocka_unit_test(test_frame),           cmocka_unit_test(test_vm_shape),
		cmocka_unit_test(test_artifact_stream),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
