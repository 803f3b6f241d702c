/* main.c - parse the command line, load the configuration, open the log,
 * and hand over to the daemon, report or check-config. */
#include <errno.h>
#include <malloc.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "agent.h"
#include "archive.h"
#include "config.h"
#include "envfile.h"
#include "log.h"
#include "report.h"
#include "scan.h"
#include "silence.h"
#include "silence_read.h"
#include "trust.h"

extern char **environ;

enum command { CMD_RUN, CMD_REPORT, CMD_CHECK_CONFIG };

struct args {
	enum command command;
	const char *config_path;
	struct config_overrides over;
	bool once;
	bool json;
	bool sample;
	bool insecure_config;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: lockwarden [run] [-c FILE] [--once] [--dry-run] [--site-root DIR] [-v]\n"
		"       lockwarden report [-c FILE] [--site-root DIR] [--json]\n"
		"       lockwarden check-config [-c FILE] [--site-root DIR] [--dry-run] [--sample]\n"
		"       lockwarden --help | --version\n"
		"\n"
		"Clears App Service deployments stuck behind Kudu's deployment lock (HTTP 409).\n"
		"\n"
		"  run           watch the site and clear stuck deployments (the default)\n"
		"  report        list locks/ and deployments/ with a verdict for each; changes nothing;\n"
		"                exit 0 when nothing claims to run silently, 2 when a deployment\n"
		"                claims to run and every file time is older than stuck_after (a\n"
		"                hint: only the daemon's own watch proves a deployment stuck),\n"
		"                1 when the site cannot be read or is not Kudu's tree\n"
		"  check-config  validate and print the effective configuration\n"
		"                (--sample: print the documented sample file instead)\n"
		"\n"
		"  -c, --config FILE   configuration file (default %s)\n"
		"      --site-root DIR the site folder (beats [site] root and LOCKWARDEN_SITE_ROOT)\n"
		"      --dry-run       log what would be removed, remove nothing, run no hook\n"
		"      --once          watch until nothing runs, a change is seen, or stuck_after passes\n"
		"                      unchanged (then clear it and run the hook), and exit\n"
		"      --json          report as JSON\n"
		"  -v, --verbose       log at debug level\n"
		"      --insecure-config  accept a config file or hook program that others\n"
		"                      could write (for tests; the hook runs as root)\n"
		"\n"
		"Every key can also be set with LOCKWARDEN_<SECTION>_<KEY>, e.g.\n"
		"LOCKWARDEN_POLICY_STUCK_AFTER=20m; the command line beats the environment,\n"
		"which beats the file.\n"
		"\n"
		"Exit codes: 0 ok, 1 runtime failure, 2 report: silent by file times,\n"
		"64 usage error, 78 configuration error. run --once ends with:\n"
		"  0 nothing stuck (nothing runs, or a change was seen); nothing removed\n"
		"  2 stuck, nothing removed because of --dry-run\n"
		"  3 cleared: every leftover removed, and the hook (if any) succeeded\n"
		"  4 partial: something was kept (a sign of life) or could not be removed\n"
		"  5 cleared, but the hook failed, timed out or could not be started\n"
		"  6 the tree is unavailable (site root missing, share not mounted or answering)\n"
		"  7 the tree cannot be read (permissions, I/O)\n"
		"\n"
		"Documentation: man lockwarden, man lockwarden.ini, /usr/share/doc/lockwarden/\n",
		CONFIG_DEFAULT_PATH);
}

/* Returns 0, or EX_USAGE after saying why; -1 when --help/--version ended it. */
static int parse_args(int argc, char **argv, struct args *args)
{
	enum { OPT_ONCE = 256, OPT_DRY_RUN, OPT_SITE_ROOT, OPT_JSON, OPT_SAMPLE, OPT_VERSION,
	       OPT_INSECURE_CONFIG };
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "once", no_argument, NULL, OPT_ONCE },
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ "site-root", required_argument, NULL, OPT_SITE_ROOT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "sample", no_argument, NULL, OPT_SAMPLE },
		{ "insecure-config", no_argument, NULL, OPT_INSECURE_CONFIG },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	int first = 1;

	memset(args, 0, sizeof(*args));
	if (argc > 1 && argv[1][0] != '-') {
		if (strcmp(argv[1], "run") == 0)
			args->command = CMD_RUN;
		else if (strcmp(argv[1], "report") == 0)
			args->command = CMD_REPORT;
		else if (strcmp(argv[1], "check-config") == 0)
			args->command = CMD_CHECK_CONFIG;
		else {
			fprintf(stderr, "lockwarden: unknown command '%s' (run, report or check-config)\n",
				argv[1]);
			return EX_USAGE;
		}
		first = 2;
	}
	optind = first;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":c:vh", options, NULL)) != -1) {
		switch (c) {
		case 'c': args->config_path = optarg; break;
		case 'v': args->over.verbose = true; break;
		case OPT_ONCE: args->once = true; break;
		case OPT_DRY_RUN: args->over.dry_run = true; break;
		case OPT_SITE_ROOT: args->over.site_root = optarg; break;
		case OPT_JSON: args->json = true; break;
		case OPT_SAMPLE: args->sample = true; break;
		case OPT_INSECURE_CONFIG: args->insecure_config = true; break;
		case 'h':
			usage(stdout);
			return -1;
		case OPT_VERSION:
			printf("lockwarden %s\n", LOCKWARDEN_VERSION);
			return -1;
		case ':':
			fprintf(stderr, "lockwarden: %s needs a value\n", argv[optind - 1]);
			return EX_USAGE;
		default:
			fprintf(stderr, "lockwarden: unknown option '%s'\n", argv[optind - 1]);
			fprintf(stderr, "try 'lockwarden --help'\n");
			return EX_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "lockwarden: unexpected argument '%s'\n", argv[optind]);
		return EX_USAGE;
	}
	if (args->once && args->command != CMD_RUN) {
		fprintf(stderr, "lockwarden: --once goes with run\n");
		return EX_USAGE;
	}
	if (args->sample && args->command != CMD_CHECK_CONFIG) {
		fprintf(stderr, "lockwarden: --sample goes with check-config\n");
		return EX_USAGE;
	}
	if (args->json && args->command != CMD_REPORT) {
		fprintf(stderr, "lockwarden: --json goes with report\n");
		return EX_USAGE;
	}
	return 0;
}

/* Every json line and journal entry names the instance, as the archive
 * and the claims do (after envfile_import: the app settings may set
 * WEBSITE_INSTANCE_ID). */
static void set_log_instance(void)
{
	char host[256] = "", id[32];
	gethostname(host, sizeof(host) - 1);
	archive_instance_id(getenv("WEBSITE_INSTANCE_ID"), host, id, sizeof(id));
	log_set_instance(id);
}

/* Valid but unwise settings, told by check-config and at start alike. */
static void warn_config(const struct config *cfg)
{
	char warnings[CONFIG_WARNINGS_MAX][CONFIG_ERROR_MAX];
	size_t n = config_warnings(cfg, warnings, CONFIG_WARNINGS_MAX);

	for (size_t i = 0; i < n; i++)
		log_warning("configuration: %s", warnings[i]);
}

/* LOCKWARDEN_ variables that are no setting (config_env_warnings): warnings
 * for the daemon, errors for check-config. Returns how many. */
static size_t warn_env(enum log_level level)
{
	char lines[CONFIG_ENV_WARNINGS_MAX][CONFIG_ERROR_MAX];
	size_t n = config_env_warnings(environ, lines, CONFIG_ENV_WARNINGS_MAX);

	for (size_t i = 0; i < n && i < CONFIG_ENV_WARNINGS_MAX; i++)
		log_msg(level, "configuration: %s", lines[i]);
	if (n > CONFIG_ENV_WARNINGS_MAX)
		log_msg(level, "configuration: and %zu more such variables",
			n - CONFIG_ENV_WARNINGS_MAX);
	return n;
}

/* check-config: a fixed stuck_after against the longest silence seen in the
 * site's completed deployments (silence.h). A warning, never an error: the
 * site may not be mounted where check-config runs. */
static void warn_history(const struct config *cfg)
{
	struct silence_history h = { 0 };
	char msg[CONFIG_ERROR_MAX];
	int r;

	if (cfg->policy_stuck_after == CONFIG_DURATION_AUTO)
		return;
	r = silence_read_site_within(cfg->site_root,
				     scan_hang_limit_ms(cfg->scan_rescan_interval), &h);
	if (r < 0) {
		log_info("configuration: cannot read the site %s (%s): stuck_after is not compared "
			 "with the silences of its past deployments", cfg->site_root,
			 r == -ETIMEDOUT ? "it did not answer in time" : strerror(-r));
		return;
	}
	if (silence_warning(&h, cfg->policy_stuck_after, msg, sizeof(msg)))
		log_warning("configuration: %s", msg);
}

#define MAIN_MMAP_THRESHOLD_BYTES (512 * 1024)

int main(int argc, char **argv)
{
	struct args args;
	struct config cfg;
	char err[CONFIG_ERROR_MAX];
	int r;

	/* A scan's snapshot array grows up to 1.8 MiB (site.h) and lives
	 * until the next scan: a fixed threshold keeps such arrays in their
	 * own mappings, given back when freed. glibc's default threshold
	 * rises to the size of the first one freed, after which each lands in
	 * a worker thread's heap, and the peak memory becomes the sum of every
	 * size an array grew through. Below it (the archive's notes, made
	 * again every scan) the heap reuses the same room. */
#ifndef __SANITIZE_ADDRESS__
	if (mallopt(M_MMAP_THRESHOLD, MAIN_MMAP_THRESHOLD_BYTES) != 1)
		fprintf(stderr, "lockwarden: warning: mallopt(M_MMAP_THRESHOLD) failed\n");
#endif /* under AddressSanitizer malloc is its own, and mallopt says no */

	r = parse_args(argc, argv, &args);
	if (r != 0)
		return r < 0 ? 0 : r;

	if (args.sample) {
		config_print_sample(stdout);
		return 0;
	}
	log_open();
	/* An SSH session lacks the app settings; a file it cannot use is
	 * logged and left aside (envfile.h). */
	envfile_import();
	/* report runs nothing, so it reads whatever config it is given. */
	bool strict = !args.insecure_config && args.command != CMD_REPORT;
	if (strict && trust_check_config_file(args.config_path, err, sizeof(err)) < 0) {
		fprintf(stderr, "lockwarden: configuration error: %s\n", err);
		return EX_CONFIG;
	}
	r = config_load(&cfg, args.config_path, environ, &args.over, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "lockwarden: configuration error: %s\n", err);
		return EX_CONFIG;
	}
	log_set_level(cfg.log_level);
	log_set_format_named(cfg.log_format);
	set_log_instance();
	if (strict && trust_check_hook(cfg.hook_command, err, sizeof(err)) < 0) {
		fprintf(stderr, "lockwarden: configuration error: %s\n", err);
		config_free(&cfg);
		return EX_CONFIG;
	}

	if (args.command != CMD_REPORT)
		warn_config(&cfg);

	switch (args.command) {
	case CMD_CHECK_CONFIG: {
		size_t unknown = warn_env(LOG_LEVEL_ERROR);

		warn_history(&cfg);
		config_print(&cfg, stdout);
		config_free(&cfg);
		return unknown ? EX_CONFIG : 0;
	}
	case CMD_REPORT:
		r = report_run(&cfg, args.json, stdout);
		config_free(&cfg);
		return r;
	case CMD_RUN:
		warn_env(LOG_LEVEL_WARNING);
		break;
	}
	struct agent_options opt = {
		.config_path = args.config_path,
		.over = args.over,
		.once = args.once,
		.insecure_config = args.insecure_config,
	};
	return agent_run(&cfg, &opt);
}
