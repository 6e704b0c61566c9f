build2/src/isolate/nft.o: src/isolate/nft.c src/isolate/nft.h \
 src/util/err.h
src/isolate/nft.h:
src/util/err.h:
