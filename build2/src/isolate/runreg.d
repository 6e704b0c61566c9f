build2/src/isolate/runreg.o: src/isolate/runreg.c src/isolate/runreg.h \
 src/util/err.h src/isolate/cgroup.h src/util/log.h
src/isolate/runreg.h:
src/util/err.h:
src/isolate/cgroup.h:
src/util/log.h:
