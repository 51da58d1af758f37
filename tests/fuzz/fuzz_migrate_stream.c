/*
 * The live-migration receiver's record parser (migrate/stream.c, migrate_rx_feed) on
 * streams the fuzzer writes: header, setup, page runs, passes, state, end, in any order and
 * with any lengths and page numbers. Inputs whose first byte is even have it replaced by a
 * valid stream header, so that mutations spend their time on the records (a stream with
 * its own header starts with 'K', which is odd). A stream that gets
 * to END has its state parsed as the destination would (snapshot_parse). Guest RAM is
 * capped at 64 MiB; corpus/migrate_stream/ holds a whole small migration as the seed.
 */
#include <stdlib.h>
#include <string.h>

#include "migrate/stream.h"
#include "snapshot/snapshot.h"

#define FUZZ_MAX_RAM (64ULL << 20)

static void feed(const uint8_t *data, size_t size)
{
    struct migrate_rx rx;
    char err[256];
    migrate_rx_init(&rx, FUZZ_MAX_RAM);
    if (migrate_rx_feed(&rx, data, size, err, sizeof(err)) == 0) {
        struct snapshot snap;
        if (snapshot_parse(rx.state, rx.state_len, &snap, err, sizeof(err)) == 0)
            snapshot_free(&snap);
    }
    migrate_rx_free(&rx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || (data[0] & 1)) {
        feed(data, size);
        return 0;
    }
    uint8_t *stream = malloc(MIGRATE_HEADER_SIZE + size - 1);
    if (!stream)
        return 0;
    migrate_header_put(stream);
    memcpy(stream + MIGRATE_HEADER_SIZE, data + 1, size - 1);
    feed(stream, MIGRATE_HEADER_SIZE + size - 1);
    free(stream);
    return 0;
}
