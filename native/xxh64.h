/* xxh64 (seed 0) for the xbfs addon: one-shot and streaming (see xxh64.c). */
#ifndef XB_XXH64_H
#define XB_XXH64_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint64_t total;
  uint64_t v[4];
  uint8_t mem[32];
  uint32_t buffered;
  uint32_t pad;
} xb_xxh64_state; /* 80 bytes: JavaScript allocates XXH64_STATE_SIZE (src/util/xxh.ts) */

uint64_t xb_xxh64(const void *data, size_t len);
void xb_xxh64_init(xb_xxh64_state *s);
void xb_xxh64_update(xb_xxh64_state *s, const void *data, size_t len);
uint64_t xb_xxh64_digest(const xb_xxh64_state *s);

#endif
