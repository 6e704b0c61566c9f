build2/src/events/verify.o: src/events/verify.c src/events/verify.h \
 src/util/err.h src/events/canon.h src/events/event.h src/config.h \
 src/util/err.h src/util/log.h src/sink/sink.h src/events/sign.h \
 src/util/b64url.h
src/events/verify.h:
src/util/err.h:
src/events/canon.h:
src/events/event.h:
src/config.h:
src/util/err.h:
src/util/log.h:
src/sink/sink.h:
src/events/sign.h:
src/util/b64url.h:
