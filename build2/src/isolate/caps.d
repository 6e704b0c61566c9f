build2/src/isolate/caps.o: src/isolate/caps.c src/isolate/caps.h \
 src/util/err.h
src/isolate/caps.h:
src/util/err.h:
