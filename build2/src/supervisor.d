build2/src/supervisor.o: src/supervisor.c src/supervisor.h src/config.h \
 src/util/err.h src/util/log.h src/events/event.h src/config.h \
 src/sink/sink.h src/util/err.h src/spec/spec.h src/backend/backend.h \
 src/isolate/cgroup.h src/isolate/nft.h src/isolate/runreg.h \
 src/spec/spec.h src/export/export.h src/events/event.h \
 src/isolate/artifact.h src/isolate/runuid.h src/isolate/secretfs.h \
 src/secrets/broker.h src/util/ids.h
src/supervisor.h:
src/config.h:
src/util/err.h:
src/util/log.h:
src/events/event.h:
src/config.h:
src/sink/sink.h:
src/util/err.h:
src/spec/spec.h:
src/backend/backend.h:
src/isolate/cgroup.h:
src/isolate/nft.h:
src/isolate/runreg.h:
src/spec/spec.h:
src/export/export.h:
src/events/event.h:
src/isolate/artifact.h:
src/isolate/runuid.h:
src/isolate/secretfs.h:
src/secrets/broker.h:
src/util/ids.h:
