build2/src/export/url.o: src/export/url.c src/export/export.h \
 src/config.h src/util/err.h src/util/log.h src/events/event.h \
 src/sink/sink.h src/util/err.h src/spec/spec.h
src/export/export.h:
src/config.h:
src/util/err.h:
src/util/log.h:
src/events/event.h:
src/sink/sink.h:
src/util/err.h:
src/spec/spec.h:
