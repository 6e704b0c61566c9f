#include "fc_guest.h"

#include <errno.h>
#include <linux/vm_sockets.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int fc_vsock_connect(unsigned port)
{
	struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = port};
	int err = 0;
	for (int tries = 0; tries < 200; tries++) {
		int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof sa) == 0)
			return s;
		err = errno;
		if (s >= 0)
			close(s);
		/* The host listens before boot: a refused or reset connection will
		 * not get better, a transport not there yet will. */
		if (err == ECONNREFUSED || err == ECONNRESET)
			break;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	errno = err;
	return -1;
}

static int same_name(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char x = a[i] == '-' ? '_' : a[i], y = b[i] == '-' ? '_' : b[i];
		if (x != y)
			return 0;
	}
	return 1;
}

size_t fc_module_params(const char *cmdline, const char *module, char *out, size_t size)
{
	size_t len = strlen(out), mlen = strlen(module);
	for (const char *p = cmdline; *p;) {
		while (*p == ' ' || *p == '\n' || *p == '\t')
			p++;
		size_t w = strcspn(p, " \n\t");
		if (w > mlen + 1 && p[mlen] == '.' && same_name(p, module, mlen) && memchr(p, '=', w)) {
			size_t plen = w - mlen - 1;
			if (len + (len ? 1 : 0) + plen < size) {
				if (len)
					out[len++] = ' ';
				memcpy(out + len, p + mlen + 1, plen);
				len += plen;
				out[len] = '\0';
			}
		}
		p += w;
	}
	return len;
}
