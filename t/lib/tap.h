/*
 * Copyright (C) loyalty-edge authors
 *
 * Header-only TAP producer for the C unit tests, run by prove.
 *
 *     int
 *     main(void)
 *     {
 *         ok(1 + 1 == 2, "addition %s", "works");
 *         is_int(f(), 3, "f");
 *         return done_testing();
 *     }
 *
 * plan(n) may be called first instead of counting; main must end with
 * "return done_testing();": the exit status is the number of failed
 * tests (at most 254), or 255 when the plan was not met.
 */

#ifndef _LOYALTY_TAP_H_INCLUDED_
#define _LOYALTY_TAP_H_INCLUDED_


#include <stdarg.h>
#include <stdio.h>
#include <string.h>


#define ok(cond, ...)                                                        \
    tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

#define is_int(got, exp, name)                                               \
    tap_is_int((long long) (got), (long long) (exp), __FILE__, __LINE__,     \
               name)

#define is_str(got, exp, name)                                               \
    tap_is_str(got, exp, __FILE__, __LINE__, name)

#define is_mem(got, glen, exp, elen, name)                                   \
    tap_is_mem(got, glen, exp, elen, __FILE__, __LINE__, name)

#define diag(...)  tap_diag(__VA_ARGS__)


typedef struct {
    int     planned;
    int     run;
    int     failed;
} tap_state_t;


static inline tap_state_t *
tap_state(void)
{
    static tap_state_t  state;

    return &state;
}


static inline void
tap_vdiag(const char *fmt, va_list args)
{
    fflush(stdout);
    fputs("# ", stderr);
    vfprintf(stderr, fmt, args);
    fputc('\n', stderr);
    fflush(stderr);
}


static inline void
tap_diag(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static inline void
tap_diag(const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    tap_vdiag(fmt, args);
    va_end(args);
}


static inline void
plan(int n)
{
    tap_state()->planned = n;
    printf("1..%d\n", n);
    fflush(stdout);
}


static inline int
tap_vok(int pass, const char *file, int line, const char *fmt, va_list args)
{
    tap_state_t  *st;

    st = tap_state();
    st->run++;

    printf("%sok %d - ", pass ? "" : "not ", st->run);
    vprintf(fmt, args);
    putchar('\n');

    if (!pass) {
        st->failed++;
        tap_diag("  Failed test at %s line %d.", file, line);
    }

    fflush(stdout);

    return pass;
}


static inline int
tap_ok(int pass, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static inline int
tap_ok(int pass, const char *file, int line, const char *fmt, ...)
{
    int      rc;
    va_list  args;

    va_start(args, fmt);
    rc = tap_vok(pass, file, line, fmt, args);
    va_end(args);

    return rc;
}


static inline int
tap_is_int(long long got, long long exp, const char *file, int line,
    const char *name)
{
    if (tap_ok(got == exp, file, line, "%s", name)) {
        return 1;
    }

    tap_diag("         got: %lld", got);
    tap_diag("    expected: %lld", exp);

    return 0;
}


static inline int
tap_is_str(const char *got, const char *exp, const char *file, int line,
    const char *name)
{
    int  pass;

    if (got == NULL || exp == NULL) {
        pass = (got == exp);

    } else {
        pass = (strcmp(got, exp) == 0);
    }

    if (tap_ok(pass, file, line, "%s", name)) {
        return 1;
    }

    tap_diag("         got: %s%s%s", got ? "'" : "", got ? got : "NULL",
             got ? "'" : "");
    tap_diag("    expected: %s%s%s", exp ? "'" : "", exp ? exp : "NULL",
             exp ? "'" : "");

    return 0;
}


static inline void
tap_diag_hex(const char *label, const void *p, size_t len)
{
    size_t                i;
    const unsigned char  *s;

    fflush(stdout);
    fprintf(stderr, "# %s (%zu):", label, len);

    s = p;

    for (i = 0; i < len && i < 64; i++) {
        fprintf(stderr, " %02x", s[i]);
    }

    fprintf(stderr, "%s\n", len > 64 ? " ..." : "");
    fflush(stderr);
}


static inline int
tap_is_mem(const void *got, size_t glen, const void *exp, size_t elen,
    const char *file, int line, const char *name)
{
    int  pass;

    pass = (glen == elen && (glen == 0 || memcmp(got, exp, glen) == 0));

    if (tap_ok(pass, file, line, "%s", name)) {
        return 1;
    }

    tap_diag_hex("        got", got, glen);
    tap_diag_hex("   expected", exp, elen);

    return 0;
}


static inline int
done_testing(void)
{
    tap_state_t  *st;

    st = tap_state();

    if (st->planned == 0) {
        printf("1..%d\n", st->run);
        fflush(stdout);

    } else if (st->planned != st->run) {
        tap_diag("Looks like you planned %d tests but ran %d.",
                 st->planned, st->run);
        return 255;
    }

    if (st->failed) {
        tap_diag("Looks like you failed %d test%s of %d.", st->failed,
                 st->failed == 1 ? "" : "s", st->run);
        return st->failed > 254 ? 254 : st->failed;
    }

    return 0;
}


#endif /* _LOYALTY_TAP_H_INCLUDED_ */
