/* rset-run guest test: N pthreads; each participant (main = 0, then threads in
 * creation order) reports its CPU and node from getcpu, then the node of every
 * page of its own heap block, read with move_pages. Usage: placed NTHREADS BYTES [settle]
 * With `settle`, pages move_pages reports as unreadable (a monitor's sampler has them
 * armed this instant) are asked again, 1 ms apart, for up to 5 s. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static size_t bytes;
static int settle;
static pthread_mutex_t out = PTHREAD_MUTEX_INITIALIZER;

static void report(long i) {
    unsigned cpu, node;
    sched_yield();
    getcpu(&cpu, &node);
    long page = sysconf(_SC_PAGESIZE);
    char *p = malloc(bytes);
    if (!p) { printf("E %ld malloc failed\n", i); return; }
    memset(p, 1, bytes);
    size_t n = (bytes + page - 1) / page;
    void **pages = malloc(n * sizeof *pages);
    int *status = malloc(n * sizeof *status);
    for (size_t k = 0; k < n; k++) pages[k] = p + k * page;
    long r = syscall(SYS_move_pages, 0, n, pages, NULL, status, 0);
    for (int tries = 0; settle && r == 0 && tries < 5000; tries++) {
        int left = 0;
        for (size_t k = 0; k < n; k++) {
            if (status[k] >= 0) continue;
            left = 1;
            r = syscall(SYS_move_pages, 0, 1, &pages[k], NULL, &status[k], 0);
            if (r != 0) break;
        }
        if (!left) break;
        usleep(1000);
    }
    pthread_mutex_lock(&out);
    printf("T %ld %u %u\n", i, cpu, node);
    printf("M %ld %ld", i, ((unsigned long)p) % page == 0 ? 0L : 1L);
    if (r != 0) printf(" move_pages-failed");
    for (size_t k = 0; k < n;) {
        size_t j = k;
        while (j < n && status[j] == status[k]) j++;
        printf(" %dx%zu", status[k], j - k);
        k = j;
    }
    printf("\n");
    fflush(stdout);
    pthread_mutex_unlock(&out);
    free(pages); free(status); free(p);
}

static void *work(void *a) { report((long)a); return NULL; }

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: placed NTHREADS BYTES [settle]\n"); return 2; }
    int n = atoi(argv[1]);
    bytes = strtoul(argv[2], NULL, 0);
    settle = argc > 3 && strcmp(argv[3], "settle") == 0;
    pthread_t *t = malloc(n * sizeof *t);
    report(0);
    for (long i = 1; i <= n; i++) pthread_create(&t[i - 1], NULL, work, (void *)i);
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    return 0;
}
