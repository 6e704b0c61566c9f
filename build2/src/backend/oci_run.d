build2/src/backend/oci_run.o: src/backend/oci_run.c src/backend/oci_run.h \
 src/backend/backend.h src/config.h src/util/err.h src/util/log.h \
 src/isolate/cgroup.h src/util/err.h src/isolate/nft.h \
 src/isolate/runreg.h src/spec/spec.h src/backend/oci_bundle.h \
 src/isolate/argv0.h src/util/ids.h src/util/log.h
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
src/backend/oci_bundle.h:
src/isolate/argv0.h:
src/util/ids.h:
src/util/log.h:
