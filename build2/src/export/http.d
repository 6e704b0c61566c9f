build2/src/export/http.o: src/export/http.c src/export/curl_dl.h \
 src/util/err.h src/export/export.h src/config.h src/util/err.h \
 src/util/log.h src/events/event.h src/sink/sink.h src/spec/spec.h \
 src/util/ids.h src/util/log.h
src/export/curl_dl.h:
src/util/err.h:
src/export/export.h:
src/config.h:
src/util/err.h:
src/util/log.h:
src/events/event.h:
src/sink/sink.h:
src/spec/spec.h:
src/util/ids.h:
src/util/log.h:
