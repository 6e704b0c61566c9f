build2/src/isolate/argv0.o: src/isolate/argv0.c src/isolate/argv0.h
src/isolate/argv0.h:
