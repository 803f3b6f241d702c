/* fuzz_config.c - libFuzzer target for the configuration parser.
 *
 * The input is an ini file; its last line, when it starts with "ENV:", is
 * taken as one LOCKWARDEN_* environment variable instead. config_load must
 * succeed or fail with a one-line message, never crash or leak, and what it
 * accepts must print (check-config) and load back to the same values.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int write_memfd(const char *name, const void *data, size_t size, char *path, size_t path_size)
{
	int fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	if (size && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return -1;
	}
	snprintf(path, path_size, "/proc/self/fd/%d", fd);
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64], err[CONFIG_ERROR_MAX], env_var[512] = "";
	char *env[2] = { NULL, NULL };
	struct config cfg, again;
	size_t file_size = size;

	/* An "ENV:NAME=value" last line becomes the environment. */
	const uint8_t *nl = size ? memrchr(data, '\n', size) : NULL;
	size_t last = nl ? (size_t)(nl - data) + 1 : 0;
	if (size - last > 4 && size - last < sizeof(env_var) && memcmp(data + last, "ENV:", 4) == 0 &&
	    !memchr(data + last, '\0', size - last)) {
		memcpy(env_var, data + last + 4, size - last - 4);
		env_var[size - last - 4] = '\0';
		env[0] = env_var;
		file_size = last;
	}
	int fd = write_memfd("config", data, file_size, path, sizeof(path));
	if (fd < 0)
		return 0;
	if (config_load(&cfg, path, env, NULL, err, sizeof(err)) == 0) {
		/* What was accepted prints as a file that loads back the same. */
		char *printed = NULL;
		size_t printed_size = 0;
		FILE *out = open_memstream(&printed, &printed_size);
		if (out) {
			config_print(&cfg, out);
			fclose(out);
			char path2[64];
			int fd2 = write_memfd("printed", printed, printed_size, path2, sizeof(path2));
			char *no_env[1] = { NULL };
			if (fd2 >= 0) {
				if (config_load(&again, path2, no_env, NULL, err, sizeof(err)) != 0)
					abort();
				if (strcmp(again.site_root, cfg.site_root) != 0 ||
				    strcmp(again.hook_command, cfg.hook_command) != 0 ||
				    again.policy_stuck_after != cfg.policy_stuck_after ||
				    again.policy_quiet_period != cfg.policy_quiet_period ||
				    again.hook_timeout != cfg.hook_timeout)
					abort();
				config_free(&again);
				close(fd2);
			}
			free(printed);
		}
		config_free(&cfg);
	} else if (memchr(err, '\n', strnlen(err, sizeof(err)))) {
		abort(); /* an error is one line */
	}
	close(fd);
	return 0;
}
