build2/src/isolate/netdev.o: src/isolate/netdev.c src/isolate/netdev.h \
 src/util/err.h
src/isolate/netdev.h:
src/util/err.h:
