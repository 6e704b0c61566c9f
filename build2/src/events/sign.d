build2/src/events/sign.o: src/events/sign.c src/events/sign.h \
 src/config.h src/util/err.h src/util/log.h src/util/err.h \
 src/events/canon.h src/util/b64url.h src/util/ids.h
src/events/sign.h:
src/config.h:
src/util/err.h:
src/util/log.h:
src/util/err.h:
src/events/canon.h:
src/util/b64url.h:
src/util/ids.h:
