/* guest/fc_guest.c: the module parameters cellos-init takes from Firecracker's
 * kernel command line (its virtio-mmio devices), for a driver built as a module. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "fc_guest.h"

static void firecrackers_devices_reach_virtio_mmio(void **state)
{
	const char *cmdline = "console=ttyS0 reboot=k panic=1 pci=off quiet cellos.argv=WyJ0cnVlIl0= "
			      "virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0001000:6 root=/dev/vda\n";
	char out[256] = "";
	size_t n = fc_module_params(cmdline, "virtio_mmio", out, sizeof out);
	assert_string_equal(out, "device=4K@0xd0000000:5 device=4K@0xd0001000:6");
	assert_int_equal(n, strlen(out));
}

static void dashes_and_underscores_are_one_and_other_modules_are_left_alone(void **state)
{
	char out[256] = "";
	fc_module_params("virtio-mmio.device=4K@0xd0000000:5 virtio_blk.x=1 virtio_mmiox.y=2 virtio_mmio.flag",
			 "virtio_mmio", out, sizeof out);
	assert_string_equal(out, "device=4K@0xd0000000:5");
}

static void parameters_already_there_are_kept_and_nothing_overflows(void **state)
{
	char out[40] = "a=1";
	fc_module_params("m.b=2 m.cccccccccccccccccccccccccccccccccccccc=3 m.d=4", "m", out, sizeof out);
	assert_string_equal(out, "a=1 b=2 d=4");
	char empty[8] = "";
	assert_int_equal(fc_module_params("", "m", empty, sizeof empty), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(firecrackers_devices_reach_virtio_mmio),
		cmocka_unit_test(dashes_and_underscores_are_one_and_other_modules_are_left_alone),
		cmocka_unit_test(parameters_already_there_are_kept_and_nothing_overflows),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
