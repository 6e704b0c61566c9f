build2/src/util/log.o: src/util/log.c src/util/log.h src/util/ids.h
src/util/log.h:
src/util/ids.h:
