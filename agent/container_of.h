/* container_of.h - the struct that embeds a member, from the member.
 *
 * Each libuv handle is embedded in its owner's struct (STYLE.md); a callback
 * gets the handle and recovers its owner with this.
 */
#ifndef LOCKWARDEN_CONTAINER_OF_H
#define LOCKWARDEN_CONTAINER_OF_H

#include <stddef.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#endif
