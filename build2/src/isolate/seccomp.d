build2/src/isolate/seccomp.o: src/isolate/seccomp.c src/isolate/seccomp.h \
 src/util/err.h build2/gen/seccomp_baseline.inc
src/isolate/seccomp.h:
src/util/err.h:
build2/gen/seccomp_baseline.inc:
