build2/src/isolate/runuid.o: src/isolate/runuid.c src/isolate/runuid.h \
 src/util/err.h
src/isolate/runuid.h:
src/util/err.h:
