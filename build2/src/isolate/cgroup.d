build2/src/isolate/cgroup.o: src/isolate/cgroup.c src/isolate/cgroup.h \
 src/util/err.h src/util/ids.h src/util/log.h
src/isolate/cgroup.h:
src/util/err.h:
src/util/ids.h:
src/util/log.h:
