build2/src/export/export.o: src/export/export.c src/export/curl_dl.h \
 src/util/err.h src/export/export.h src/config.h src/util/err.h \
 src/util/log.h src/events/event.h src/sink/sink.h src/spec/spec.h \
 src/backend/backend.h src/isolate/cgroup.h src/isolate/nft.h \
 src/isolate/runreg.h src/util/log.h
src/export/curl_dl.h:
src/util/err.h:
src/export/export.h:
src/config.h:
src/util/err.h:
src/util/log.h:
src/events/event.h:
src/sink/sink.h:
src/spec/spec.h:
src/backend/backend.h:
src/isolate/cgroup.h:
src/isolate/nft.h:
src/isolate/runreg.h:
src/util/log.h:
