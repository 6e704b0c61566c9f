build2/src/config.o: src/config.c src/config.h src/util/err.h \
 src/util/log.h src/isolate/cgroup.h src/util/err.h src/isolate/runuid.h \
 src/isolate/seccomp.h src/util/b64url.h
src/config.h:
src/util/err.h:
src/util/log.h:
src/isolate/cgroup.h:
src/util/err.h:
src/isolate/runuid.h:
src/isolate/seccomp.h:
src/util/b64url.h:
