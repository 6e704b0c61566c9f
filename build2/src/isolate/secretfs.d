build2/src/isolate/secretfs.o: src/isolate/secretfs.c \
 src/isolate/secretfs.h src/util/err.h src/secrets/broker.h src/config.h \
 src/util/err.h src/util/log.h src/spec/spec.h
src/isolate/secretfs.h:
src/util/err.h:
src/secrets/broker.h:
src/config.h:
src/util/err.h:
src/util/log.h:
src/spec/spec.h:
