/* rset-top guest test: a known hot spot. The main thread allocates and first
 * touches an 8 MiB array (on its node under rset-run --mem local), then THREADS
 * threads (placed by rset-run) read the array over and over for SECONDS, and
 * every 16th access is an atomic add to one shared 64-byte line (offset 0x3040),
 * written from every node. Each thread prints how many accesses it made and
 * from which node, so the test knows the true remote share.
 * Usage: hotspot THREADS SECONDS */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SIZE (8 << 20)
#define LINE_OFFSET 0x3040
static long *array;
static double seconds;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void *worker(void *arg) {
    (void)arg;
    long *line = (long *)((char *)array + LINE_OFFSET);
    long sum = 0, accesses = 0;
    double end = now() + seconds;
    while (now() < end) {
        for (size_t i = 0; i < SIZE / sizeof(long); i += 8 * 16) {
            for (size_t j = 0; j < 8 * 15; j += 8) sum += array[i + j];
            __atomic_fetch_add(line, 1, __ATOMIC_RELAXED);
            accesses += 16;
        }
    }
    unsigned cpu, node;
    syscall(SYS_getcpu, &cpu, &node, NULL);
    printf("thread node %u accesses %ld sum %ld\n", node, accesses, sum);
    fflush(stdout);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: hotspot THREADS SECONDS\n");
        return 2;
    }
    int n = atoi(argv[1]);
    seconds = atof(argv[2]);
    array = malloc(SIZE);
    memset(array, 1, SIZE);
    unsigned cpu, node;
    syscall(SYS_getcpu, &cpu, &node, NULL);
    printf("pid %d array %p line %p home %u\n", getpid(), (void *)array,
           (void *)((char *)array + LINE_OFFSET), node);
    fflush(stdout);
    pthread_t t[64];
    for (int i = 0; i < n && i < 64; i++) pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < n && i < 64; i++) pthread_join(t[i], NULL);
    return 0;
}
