build2/src/backend/stub.o: src/backend/stub.c src/backend/backend.h \
 src/config.h src/util/err.h src/util/log.h src/isolate/cgroup.h \
 src/util/err.h src/isolate/nft.h src/isolate/runreg.h src/spec/spec.h \
 src/isolate/artifact.h src/isolate/cellinit.h src/isolate/netdev.h \
 src/isolate/seccomp.h src/util/ids.h src/util/log.h
src/backend/backend.h:
src/config.h:
src/util/err.h:
src/util/log.h:
src/isolate/cgroup.h:
src/util/err.h:
src/isolate/nft.h:
src/isolate/runreg.h:
src/spec/spec.h:
src/isolate/artifact.h:
src/isolate/cellinit.h:
src/isolate/netdev.h:
src/isolate/seccomp.h:
src/util/ids.h:
src/util/log.h:
