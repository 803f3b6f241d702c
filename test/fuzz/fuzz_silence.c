/* fuzz_silence.c - libFuzzer target for the log.log reader of stuck_after =
 * auto (silence.c).
 *
 * Any bytes are a log: never a crash, never a read past the input (the
 * copy has no terminator), and what comes out holds together: usable means
 * two timed lines, no silence is longer than the span it lies in, and auto
 * stays between floor and cap whatever the history says.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "silence.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);
	struct silence_log log;
	struct silence_history h = { 0 };
	struct silence_auto au;
	char text[512];

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	silence_parse_log(buf, size, &log);
	if (log.usable != (log.timed_lines >= 2))
		abort();
	if (log.longest_gap_ms > log.span_ms || log.longest_gap_ms % 1000 || log.span_ms % 1000)
		abort();
	silence_history_add(&h, "0123456789abcdef0123456789abcdef", &log);
	silence_auto_compute(&h, 5 * 60 * 1000ULL, 25 * 60 * 1000ULL, &au);
	if (au.stuck_after_ms < 5 * 60 * 1000ULL || au.stuck_after_ms > 25 * 60 * 1000ULL)
		abort();
	silence_auto_explain(&h, &au, 5 * 60 * 1000ULL, 25 * 60 * 1000ULL, text, sizeof(text));
	silence_report_line(&h, "25m", 25 * 60 * 1000ULL, text, sizeof(text));
	silence_warning(&h, 1000, text, sizeof(text));
	free(buf);
	return 0;
}
