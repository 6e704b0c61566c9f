build-ct/tests/unit/test_seccomp.o: tests/unit/test_seccomp.c \
 src/isolate/argv0.h src/isolate/caps.h src/util/err.h \
 src/isolate/seccomp.h
src/isolate/argv0.h:
src/isolate/caps.h:
src/util/err.h:
src/isolate/seccomp.h:
