/* report.h - `lockwarden report`: the manual procedure's inspection.
 *
 * Scans once, decides with nothing watched (policy.c), and prints every
 * entry of locks/ and deployments/ with what it is, its age, its Kudu status
 * or lock holder, and the verdict with the reason. Changes nothing.
 */
#ifndef LOCKWARDEN_REPORT_H
#define LOCKWARDEN_REPORT_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"

/* The version of report --json's layout, its first field (README.md's
 * table "report --json" lists every field). */
#define REPORT_JSON_SCHEMA 1

/* Returns the exit code: 0 nothing stuck, 2 a stuck deployment found,
 * 1 the site could not be read or is not Kudu's tree (neither locks/ nor
 * deployments/: sitekind.h). */
int report_run(const struct config *cfg, bool json, FILE *out);

#endif
