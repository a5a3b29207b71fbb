#define _DEFAULT_SOURCE
#include "fuzz_support.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static long replayed = 0;

static int replay_file(const char *path, fuzz_callback callback) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "cannot open %s\n", path); return 1; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf || (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n)) { fclose(f); free(buf); return 1; }
    fclose(f);
    callback(buf, (size_t)n);
    free(buf);
    replayed++;
    return 0;
}

static int replay(const char *path, fuzz_callback callback) {
    struct stat st;
    if (stat(path, &st) != 0) { fprintf(stderr, "cannot stat %s\n", path); return 1; }
    if (!S_ISDIR(st.st_mode)) return replay_file(path, callback);
    DIR *d = opendir(path);
    if (!d) return 1;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char child[4096];
        snprintf(child, sizeof child, "%s/%s", path, e->d_name);
        rc |= replay(child, callback);
    }
    closedir(d);
    return rc;
}

int replay_inputs(int argc, char **argv, fuzz_callback callback) {
    int rc = 0;
    for (int i = 1; i < argc; i++) rc |= replay(argv[i], callback);
    printf("replayed %ld inputs without a crash\n", replayed);
    return rc;
}
