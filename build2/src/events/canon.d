build2/src/events/canon.o: src/events/canon.c src/events/canon.h
src/events/canon.h:
