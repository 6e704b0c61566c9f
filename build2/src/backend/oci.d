build2/src/backend/oci.o: src/backend/oci.c src/backend/oci_run.h \
 src/backend/backend.h src/config.h src/util/err.h src/util/log.h \
 src/isolate/cgroup.h src/util/err.h src/isolate/nft.h \
 src/isolate/runreg.h src/spec/spec.h
src/backend/oci_run.h:
src/backend/backend.h:
src/config.h:
src/util/err.h:
src/util/log.h:
src/isolate/cgroup.h:
src/util/err.h:
src/isolate/nft.h:
src/isolate/runreg.h:
src/spec/spec.h:
