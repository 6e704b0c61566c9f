build2/bench/bench_events.o: bench/bench_events.c src/config.h \
 src/util/err.h src/util/log.h src/events/event.h src/sink/sink.h \
 src/util/err.h src/events/sign.h src/util/ids.h src/util/log.h
src/config.h:
src/util/err.h:
src/util/log.h:
src/events/event.h:
src/sink/sink.h:
src/util/err.h:
src/events/sign.h:
src/util/ids.h:
src/util/log.h:
