build2/src/backend/backend.o: src/backend/backend.c src/backend/backend.h \
 src/config.h src/util/err.h src/util/log.h src/isolate/cgroup.h \
 src/util/err.h src/isolate/nft.h src/isolate/runreg.h src/spec/spec.h \
 src/util/log.h
src/backend/backend.h:
src/config.h:
src/util/err.h:
src/util/log.h:
src/isolate/cgroup.h:
src/util/err.h:
src/isolate/nft.h:
src/isolate/runreg.h:
src/spec/spec.h:
src/util/log.h:
