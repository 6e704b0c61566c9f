build2/src/isolate/cellinit.o: src/isolate/cellinit.c \
 src/isolate/cellinit.h src/config.h src/util/err.h src/util/log.h \
 src/isolate/argv0.h src/isolate/caps.h src/util/err.h \
 src/isolate/mount.h src/isolate/seccomp.h src/util/ids.h src/util/log.h
src/isolate/cellinit.h:
src/config.h:
src/util/err.h:
src/util/log.h:
src/isolate/argv0.h:
src/isolate/caps.h:
src/util/err.h:
src/isolate/mount.h:
src/isolate/seccomp.h:
src/util/ids.h:
src/util/log.h:
