build2/src/sink/jsonl.o: src/sink/jsonl.c src/sink/sink.h src/config.h \
 src/util/err.h src/util/log.h src/util/err.h src/util/log.h
src/sink/sink.h:
src/config.h:
src/util/err.h:
src/util/log.h:
src/util/err.h:
src/util/log.h:
