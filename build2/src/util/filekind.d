build2/src/util/filekind.o: src/util/filekind.c src/util/filekind.h
src/util/filekind.h:
