/* nss_none.c - linked into the static build only (make static).
 *
 * libuv's unix/core.c, which every libuv program links whole, holds
 * uv_os_get_passwd() and uv_os_homedir(), and they call getpwuid_r(). In a
 * statically linked glibc program getpwuid_r() goes through NSS, which
 * loads its modules (libnss_*.so) with dlopen at run time: the very shared
 * libraries a static binary is meant to do without, found or not in
 * whatever image it lands in. lockwarden calls neither function. This
 * definition takes the place of glibc's, so that none of the NSS machinery
 * is even linked (the link would warn, and make static turns warnings into
 * errors), and a call, were one ever added, fails plainly with ENOENT.
 */
#include <errno.h>
#include <pwd.h>
#include <stddef.h>
#include <sys/types.h>

int getpwuid_r(uid_t uid, struct passwd *pwd, char *buf, size_t buflen, struct passwd **result);

int getpwuid_r(uid_t uid, struct passwd *pwd, char *buf, size_t buflen, struct passwd **result)
{
	(void)uid;
	(void)pwd;
	(void)buf;
	(void)buflen;
	*result = NULL;
	return ENOENT;
}
