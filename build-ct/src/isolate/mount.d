build-ct/src/isolate/mount.o: src/isolate/mount.c src/isolate/mount.h \
 src/util/err.h src/util/ids.h src/util/log.h
src/isolate/mount.h:
src/util/err.h:
src/util/ids.h:
src/util/log.h:
