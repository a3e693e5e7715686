/* rset-mon guest test: a hot array first touched on one CPU and then read over
 * and over from a thread on another node's CPU; a cold array touched locally.
 * Usage: hot HOME_CPU REMOTE_CPU [PASSES] */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COLD (16 << 20)
#define HOT (4 << 20)
static long *cold, *hot;
static volatile long sink;
static int passes = 60;

static void pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    sched_setaffinity(0, sizeof s, &s);
}

static void *remote(void *a) {
    pin((int)(long)a);
    long s = 0;
    for (int pass = 0; pass < passes; pass++)
        for (size_t i = 0; i < HOT / sizeof(long); i += 8) s += hot[i];
    for (size_t i = 0; i < COLD / sizeof(long); i += 512) s += cold[i];
    sink = s;
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: hot HOME_CPU REMOTE_CPU\n"); return 2; }
    if (argc > 3) passes = atoi(argv[3]);
    pin(atoi(argv[1]));
    cold = malloc(COLD);
    hot = malloc(HOT);
    memset(cold, 1, COLD);
    memset(hot, 2, HOT);
    pthread_t t;
    pthread_create(&t, NULL, remote, (void *)(long)atoi(argv[2]));
    long s = 0;
    for (int pass = 0; pass < 3; pass++)
        for (size_t i = 0; i < COLD / sizeof(long); i += 64) s += cold[i];
    pthread_join(t, NULL);
    printf("hot %p cold %p sum %ld\n", (void *)hot, (void *)cold, s + sink);
    return 0;
}
