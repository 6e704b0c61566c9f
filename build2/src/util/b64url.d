build2/src/util/b64url.o: src/util/b64url.c src/util/b64url.h
src/util/b64url.h:
