build-ct/src/isolate/seccomp.o: src/isolate/seccomp.c \
 src/isolate/seccomp.h src/util/err.h
src/isolate/seccomp.h:
src/util/err.h:
