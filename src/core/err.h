/* err.h - an error for people and programs at once: a documented exit
 * code (cli/exitcodes.h, README "Exit codes") and one sentence.  What the
 * operations of src/app (and the worlds below them) fill in instead of
 * printing; the CLI prints it, the --json envelope and the MCP server
 * carry it as {code, name, message}. */
#ifndef DEVBRIDGE_CORE_ERR_H
#define DEVBRIDGE_CORE_ERR_H

#define ERR_MESSAGE_MAX 2048

struct err {
	int code; /* 0 = no error */
	char message[ERR_MESSAGE_MAX];
};

/* Set e (NULL is allowed: nothing is kept) and return `code`, so that
 * `return err_set(e, EXIT_X, "...")` reads like the CLI's cli_error. */
int err_set(struct err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
