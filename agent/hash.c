/* hash.c - FNV-1a. */
#include "hash.h"

uint64_t hash_fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

uint64_t hash_fnv1a_u64(uint64_t h, uint64_t v)
{
	return hash_fnv1a(h, &v, sizeof(v));
}
