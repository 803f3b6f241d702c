/* hash.h - FNV-1a, 64 bits: a cheap hash to tell "the same as last time"
 * (the activity fingerprint, a repeated plan). Not for anything an attacker
 * gains by colliding: a collision only delays noticing a change by a scan.
 */
#ifndef LOCKWARDEN_HASH_H
#define LOCKWARDEN_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_FNV1A_INIT UINT64_C(0xcbf29ce484222325)

/* h folded with n bytes at p; start from HASH_FNV1A_INIT. */
uint64_t hash_fnv1a(uint64_t h, const void *p, size_t n);

/* h folded with the 8 bytes of v. */
uint64_t hash_fnv1a_u64(uint64_t h, uint64_t v);

#endif
