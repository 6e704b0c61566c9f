build2/src/events/event.o: src/events/event.c src/events/event.h \
 src/config.h src/util/err.h src/util/log.h src/sink/sink.h \
 src/util/err.h src/events/canon.h src/events/redact.h src/events/sign.h \
 src/sink/dlq.h src/util/ids.h src/util/log.h
src/events/event.h:
src/config.h:
src/util/err.h:
src/util/log.h:
src/sink/sink.h:
src/util/err.h:
src/events/canon.h:
src/events/redact.h:
src/events/sign.h:
src/sink/dlq.h:
src/util/ids.h:
src/util/log.h:
