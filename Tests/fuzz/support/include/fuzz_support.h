#ifndef FUZZ_SUPPORT_H
#define FUZZ_SUPPORT_H
#include <stddef.h>
#include <stdint.h>

/* The test callback: one input, return 0. */
typedef int (*fuzz_callback)(const uint8_t *data, size_t size);

/* Replays every file named in argv (directories are walked) through the
 * callback, so the committed corpora run as regression tests in a normal
 * build. Returns 0 when every input could be read. */
int replay_inputs(int argc, char **argv, fuzz_callback callback);

#endif
