build2/src/isolate/artifact.o: src/isolate/artifact.c \
 src/isolate/artifact.h src/util/err.h src/isolate/secretfs.h \
 src/util/filekind.h src/util/path.h
src/isolate/artifact.h:
src/util/err.h:
src/isolate/secretfs.h:
src/util/filekind.h:
src/util/path.h:
