/* CHECK(cond, printf-style message) for the C tests: counts checks and failures, and
 * reports a failure with its place (the first 50, so a broken loop does not flood). */
#ifndef DENET_TEST_CHECK_H
#define DENET_TEST_CHECK_H

#include <stdio.h>

static int failures, checks;

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        checks++;                                                                          \
        if (!(cond) && ++failures <= 50) {                                                 \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                           \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
        }                                                                                  \
    } while (0)

#endif
