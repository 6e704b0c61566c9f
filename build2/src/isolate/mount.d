build2/src/isolate/mount.o: src/isolate/mount.c src/isolate/mount.h \
 src/util/err.h src/isolate/secretfs.h src/util/path.h
src/isolate/mount.h:
src/util/err.h:
src/isolate/secretfs.h:
src/util/path.h:
