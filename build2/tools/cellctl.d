build2/tools/cellctl.o: tools/cellctl.c src/config.h src/util/err.h \
 src/util/log.h src/events/canon.h src/events/sign.h src/util/err.h \
 src/events/verify.h src/spec/spec.h src/util/b64url.h src/util/log.h
src/config.h:
src/util/err.h:
src/util/log.h:
src/events/canon.h:
src/events/sign.h:
src/util/err.h:
src/events/verify.h:
src/spec/spec.h:
src/util/b64url.h:
src/util/log.h:
