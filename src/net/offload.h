/*
 * Software offloads for backends that want plain frames (libslirp): completing a partial
 * checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM) and cutting a TCP GSO frame into MSS-sized
 * segments (VIRTIO_NET_HDR_GSO_TCPV4/TCPV6), virtio 1.2 §5.1.6.2. Every offset comes from
 * the guest, so each is checked against the frame.
 */
#ifndef KILN_NET_OFFLOAD_H
#define KILN_NET_OFFLOAD_H

#include <stddef.h>
#include <stdint.h>

/* The fields of struct virtio_net_hdr (§5.1.6), host byte order. */
struct net_hdr {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
    uint16_t num_buffers;
};

#define NET_HDR_F_NEEDS_CSUM 1
#define NET_HDR_F_DATA_VALID 2
#define NET_HDR_GSO_NONE 0
#define NET_HDR_GSO_TCPV4 1
#define NET_HDR_GSO_UDP 3
#define NET_HDR_GSO_TCPV6 4
#define NET_HDR_GSO_ECN 0x80

/* Decodes/encodes the 12 header bytes (little-endian). */
void net_hdr_decode(const uint8_t *p, struct net_hdr *h);
void net_hdr_encode(const struct net_hdr *h, uint8_t *p);

/* Ones'-complement sum of `len` bytes added to `sum` (RFC 1071), folded to 16 bits. */
uint32_t net_csum_add(uint32_t sum, const uint8_t *p, size_t len);
/* Folds a sum to 16 bits and complements it: the value that goes in a header. */
uint16_t net_csum_fold(uint32_t sum);

/*
 * Completes a partial checksum: the 16 bits at csum_start + csum_offset hold the
 * pseudo-header sum; sum everything from csum_start to the end and store the result there.
 * Returns 0 or -EINVAL if the offsets do not fit the frame.
 */
int net_csum_complete(uint8_t *frame, size_t len, uint16_t csum_start, uint16_t csum_offset);

/*
 * Cuts a TCP GSO frame (Ethernet, IPv4 or IPv6, TCP) into segments of at most
 * hdr->gso_size payload bytes, each with its own IP length, IPv4 id and checksum, TCP
 * sequence number and flags, and full TCP checksum, and passes each to `emit` (in `seg`,
 * which must hold NET_GSO_SEG_MAX bytes). Returns the number of segments or -EINVAL if the
 * frame is not what the header says or gso_size is below NET_GSO_MIN_SEG.
 */
#define NET_GSO_SEG_MAX (14 + 4 + 60 + 60 + 65535)
#define NET_GSO_MIN_SEG 32 /* smaller gso_size values are refused */
typedef void (*net_emit_fn)(void *opaque, const uint8_t *frame, size_t len);
int net_gso_segment(const uint8_t *frame, size_t len, const struct net_hdr *hdr, uint8_t *seg,
                    net_emit_fn emit, void *opaque);

#endif
