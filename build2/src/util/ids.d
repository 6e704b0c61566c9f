build2/src/util/ids.o: src/util/ids.c src/util/ids.h
src/util/ids.h:
