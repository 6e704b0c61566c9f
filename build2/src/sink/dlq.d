build2/src/sink/dlq.o: src/sink/dlq.c src/sink/dlq.h src/util/err.h \
 src/events/canon.h
src/sink/dlq.h:
src/util/err.h:
src/events/canon.h:
