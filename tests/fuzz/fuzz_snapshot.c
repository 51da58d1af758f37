/*
 * The snapshot loader (snapshot/snapshot.c, snapshot_parse) on state files the fuzzer
 * writes. Each input is parsed as it is (magic, checksum, lengths) and again with its CRC-32
 * trailer recomputed, so that mutations reach the section and field checks behind the
 * checksum. To be listed in tests/fuzz/meson.build's fuzz_targets (with zlib) at merge;
 * corpus/snapshot/ holds a real state file (2 vCPUs, virtio-blk and virtio-rng) as the seed.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "snapshot/snapshot.h"

static void parse_once(const uint8_t *data, size_t size)
{
    struct snapshot snap;
    char err[256];
    if (snapshot_parse(data, size, &snap, err, sizeof(err)) == 0)
        snapshot_free(&snap);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse_once(data, size);
    if (size < 4 || size > (1u << 20))
        return 0;
    uint8_t *copy = malloc(size);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    uint32_t crc = (uint32_t)crc32(0L, copy, (uInt)(size - 4));
    for (int i = 0; i < 4; i++)
        copy[size - 4 + i] = (uint8_t)(crc >> (8 * i));
    parse_once(copy, size);
    free(copy);
    return 0;
}
