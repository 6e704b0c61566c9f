build2/src/secrets/secrets.o: src/secrets/secrets.c src/secrets/broker.h \
 src/config.h src/util/err.h src/util/log.h src/spec/spec.h \
 src/util/err.h
src/secrets/broker.h:
src/config.h:
src/util/err.h:
src/util/log.h:
src/spec/spec.h:
src/util/err.h:
