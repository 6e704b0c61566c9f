build2/src/sink/noop.o: src/sink/noop.c src/sink/sink.h src/config.h \
 src/util/err.h src/util/log.h src/util/err.h
src/sink/sink.h:
src/config.h:
src/util/err.h:
src/util/log.h:
src/util/err.h:
