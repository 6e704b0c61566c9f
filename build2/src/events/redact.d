build2/src/events/redact.o: src/events/redact.c src/events/redact.h
src/events/redact.h:
