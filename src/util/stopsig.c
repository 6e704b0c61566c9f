#include "util/stopsig.h"

#include <sys/signalfd.h>

void stopsig_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
}

int stopsig_fd(void)
{
	sigset_t set;
	stopsig_set(&set);
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}
