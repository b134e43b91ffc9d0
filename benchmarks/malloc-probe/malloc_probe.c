// malloc-probe: glibc heap figures of a running process, on request, without a debugger.
//
// Loaded into relay-server with LD_PRELOAD (see benchmarks/README.md, `relay-bench soak`),
// it starts one thread that checks every 100 ms for $MALLOC_PROBE_DIR/request. When the
// file appears it reads mallinfo2() (summed over every arena), calls malloc_trim(0) (free
// pages go back to the kernel), reads mallinfo2() and VmRSS again, and writes the figures
// to $MALLOC_PROBE_DIR/reply. It runs on a thread of its own, so it takes the allocator's
// locks like any other caller: calling malloc_stats() or malloc_trim() from gdb instead
// stops every thread, possibly inside malloc, and hung the relay in a soak run.
//
// With MALLOC_PROBE_TRIM_SECONDS=N it also calls malloc_trim(0) every N seconds: what a
// relay that trimmed its heap on a timer would hold (RESULTS.md, "Soak").
//
// "in use" (uordblks + hblkhd) is what the program holds; "free" (fordblks) is memory
// malloc keeps for reuse, which counts in RSS until it is trimmed. A leak grows "in use";
// fragmentation and high-water marks grow "free" and RSS only.
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char request_path[4096], reply_path[4096], reply_tmp_path[4096];

static long rss_kib(void) {
    FILE *status = fopen("/proc/self/status", "r");
    if (!status) return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, status)) {
        if (strncmp(line, "VmRSS:", 6) == 0) { kib = strtol(line + 6, NULL, 10); break; }
    }
    fclose(status);
    return kib;
}

static void print_info(FILE *out, const char *when) {
    struct mallinfo2 info = mallinfo2();
    fprintf(out, "%s: in_use_bytes=%zu free_bytes=%zu arena_bytes=%zu mmap_bytes=%zu rss_kib=%ld\n", when,
            info.uordblks + info.hblkhd, info.fordblks, info.arena, info.hblkhd, rss_kib());
}

static long trim_ticks;  // 100 ms ticks between timed trims; 0: none

static void *probe(void *unused) {
    (void)unused;
    for (long tick = 1;; tick++) {
        usleep(100 * 1000);
        if (trim_ticks > 0 && tick % trim_ticks == 0) malloc_trim(0);
        if (access(request_path, F_OK) != 0) continue;
        unlink(request_path);
        FILE *out = fopen(reply_tmp_path, "w");
        if (!out) continue;
        print_info(out, "before_trim");
        int released = malloc_trim(0);
        print_info(out, "after_trim");
        fprintf(out, "malloc_trim_released=%d\n", released);
        fclose(out);
        rename(reply_tmp_path, reply_path);
    }
    return NULL;
}

__attribute__((constructor)) static void start_probe(void) {
    const char *dir = getenv("MALLOC_PROBE_DIR");
    if (!dir || !*dir) dir = "/nonexistent";
    const char *trim = getenv("MALLOC_PROBE_TRIM_SECONDS");
    if (trim && *trim) trim_ticks = (long)(strtod(trim, NULL) * 10);
    snprintf(request_path, sizeof request_path, "%s/request", dir);
    snprintf(reply_path, sizeof reply_path, "%s/reply", dir);
    snprintf(reply_tmp_path, sizeof reply_tmp_path, "%s/reply.tmp", dir);
    pthread_t thread;
    if (pthread_create(&thread, NULL, probe, NULL) == 0) pthread_detach(thread);
}
