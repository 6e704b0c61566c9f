build2/src/isolate/nft_netlink.o: src/isolate/nft_netlink.c \
 src/isolate/nft.h src/util/err.h
src/isolate/nft.h:
src/util/err.h:
