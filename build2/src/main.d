build2/src/main.o: src/main.c src/config.h src/util/err.h src/util/log.h \
 src/events/event.h src/config.h src/sink/sink.h src/util/err.h \
 src/export/export.h src/events/event.h src/spec/spec.h \
 src/secrets/broker.h src/spec/spec.h src/supervisor.h src/util/ids.h
src/config.h:
src/util/err.h:
src/util/log.h:
src/events/event.h:
src/config.h:
src/sink/sink.h:
src/util/err.h:
src/export/export.h:
src/events/event.h:
src/spec/spec.h:
src/secrets/broker.h:
src/spec/spec.h:
src/supervisor.h:
src/util/ids.h:
