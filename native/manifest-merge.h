/* The join of a listing with the previous manifest's block (manifest-merge.c), for unchanged-dir.c too. */
#ifndef XB_MANIFEST_MERGE_H
#define XB_MANIFEST_MERGE_H
#include <stddef.h>
#include <stdint.h>

/* Index rows: 8 int32 per manifest line (manifest-merge.c's top comment). */
#define STRIDE 8

/* Bytes of the dumpdir of the records kept (`keep` NULL: all). */
size_t xb_dumpdir_length(const unsigned char *rec, uint32_t count, const unsigned char *keep);

/*
 * mergeBlock's join (manifest-merge.c's top comment): m[i] = line * 2 + same or -1 per record, the
 * dumpdir into `dump` (xb_dumpdir_length bytes of room); returns the dumpdir's length. `keep` NULL:
 * every record is kept; `data` NULL: no previous block.
 */
size_t xb_merge_join(const unsigned char *rec, uint32_t count, const unsigned char *keep, const unsigned char *data, const int32_t *index,
                     int32_t first, int32_t end, int32_t *m, unsigned char *dump);

#endif
