build2/src/spec/spec.o: src/spec/spec.c src/spec/spec.h src/util/err.h
src/spec/spec.h:
src/util/err.h:
