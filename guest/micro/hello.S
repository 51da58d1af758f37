/* hello: the smoke test and start-up timer. Prints one line and powers off. */
#include "micro.h"
#include "common.S"

	.text
main:
	PRINT "kiln-micro: ready\n"
	ret
