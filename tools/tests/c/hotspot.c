/* rset-top guest test: a known hot spot. The main thread allocates and first
 * touches an 8 MiB array (on its node under rset-run --mem local), then THREADS
 * threads (placed by rset-run) read the array over and over, and every 16th
 * access is an atomic add to one shared 64-byte line (offset 0x3040), written
 * from every node. Every 200 ms the main thread prints each thread's node,
 * accesses so far and CPU time so far in ns ("progress NODE:COUNT:CPU_NS ..."),
 * so a test knows the true remote share at any moment, by references and by
 * time (a time-based sampler estimates the latter; under an emulator the two
 * part when the host runs one virtual CPU more than another). The threads
 * stop after SECONDS or when stdin closes.
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
#define MAX_THREADS 64
static long *array;
static double seconds;
static volatile int stop;
static volatile long progress[MAX_THREADS];
static volatile int node_of[MAX_THREADS];
static volatile long cpu_ns[MAX_THREADS];
static volatile long sink;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void *worker(void *arg) {
    long me = (long)arg;
    unsigned cpu, node;
    syscall(SYS_getcpu, &cpu, &node, NULL);
    node_of[me] = (int)node;
    long *line = (long *)((char *)array + LINE_OFFSET);
    long sum = 0, accesses = 0;
    double end = now() + seconds;
    while (!stop && now() < end) {
        for (size_t i = 0; i < SIZE / sizeof(long); i += 8 * 16) {
            for (size_t j = 0; j < 8 * 15; j += 8) sum += array[i + j];
            __atomic_fetch_add(line, 1, __ATOMIC_RELAXED);
            accesses += 16;
        }
        progress[me] = accesses;
        struct timespec c;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c);
        cpu_ns[me] = c.tv_sec * 1000000000L + c.tv_nsec;
    }
    sink = sum;
    return NULL;
}

static void *watch_stdin(void *arg) {
    (void)arg;
    char c;
    while (read(0, &c, 1) > 0) {}
    stop = 1;
    return NULL;
}

static void print_progress(int n) {
    printf("progress");
    for (int i = 0; i < n; i++) printf(" %d:%ld:%ld", node_of[i], progress[i], cpu_ns[i]);
    printf("\n");
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: hotspot THREADS SECONDS\n");
        return 2;
    }
    int n = atoi(argv[1]);
    if (n < 1 || n > MAX_THREADS) n = 1;
    seconds = atof(argv[2]);
    array = malloc(SIZE);
    memset(array, 1, SIZE);
    unsigned cpu, node;
    syscall(SYS_getcpu, &cpu, &node, NULL);
    printf("pid %d array %p line %p home %u\n", getpid(), (void *)array,
           (void *)((char *)array + LINE_OFFSET), node);
    fflush(stdout);
    for (int i = 0; i < n; i++) node_of[i] = -1;
    pthread_t t[MAX_THREADS], in;
    for (long i = 0; i < n; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    pthread_create(&in, NULL, watch_stdin, NULL);
    pthread_detach(in);
    double end = now() + seconds;
    while (!stop && now() < end) {
        usleep(200000);
        print_progress(n);
    }
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    print_progress(n);
    return 0;
}
