build2/src/secrets/file.o: src/secrets/file.c src/secrets/broker.h \
 src/config.h src/util/err.h src/util/log.h src/spec/spec.h \
 src/util/err.h src/util/filekind.h
src/secrets/broker.h:
src/config.h:
src/util/err.h:
src/util/log.h:
src/spec/spec.h:
src/util/err.h:
src/util/filekind.h:
