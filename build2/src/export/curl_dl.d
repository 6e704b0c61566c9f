build2/src/export/curl_dl.o: src/export/curl_dl.c src/export/curl_dl.h \
 src/util/err.h
src/export/curl_dl.h:
src/util/err.h:
