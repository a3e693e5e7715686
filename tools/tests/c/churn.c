/* rset-run guest test: 1000 short threads, then fork, then fork + exec of itself.
 * Usage: churn N | churn exec-child */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int bad, done;

static void *work(void *a) {
    (void)a;
    cpu_set_t set;
    unsigned cpu, node;
    sched_getaffinity(0, sizeof set, &set);
    getcpu(&cpu, &node);
    if (CPU_COUNT(&set) != 1 || !CPU_ISSET(cpu, &set)) atomic_fetch_add(&bad, 1);
    char *small = malloc(100), *big = malloc(2 << 20);
    if (!small || !big) atomic_fetch_add(&bad, 1);
    else { memset(small, 7, 100); memset(big, 7, 2 << 20); if (big[12345] != 7) atomic_fetch_add(&bad, 1); }
    free(small); free(big);
    atomic_fetch_add(&done, 1);
    return NULL;
}

int main(int argc, char **argv) {
    unsigned cpu, node;
    if (argc > 1 && strcmp(argv[1], "exec-child") == 0) {
        sched_yield();
        getcpu(&cpu, &node);
        printf("exec-child %u %u\n", cpu, node);
        return 0;
    }
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    pthread_t t[50];
    for (int i = 0; i < n; i += 50) {
        int k = n - i < 50 ? n - i : 50;
        for (int j = 0; j < k; j++)
            if (pthread_create(&t[j], NULL, work, NULL)) { printf("create failed\n"); return 1; }
        for (int j = 0; j < k; j++) pthread_join(t[j], NULL);
    }
    printf("threads %d bad %d\n", atomic_load(&done), atomic_load(&bad));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char *p = malloc(3 << 20);
        memset(p, 1, 3 << 20);
        pthread_t c;
        pthread_create(&c, NULL, work, NULL);
        pthread_join(c, NULL);
        _exit(p[100] == 1 && atomic_load(&bad) == 0 ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("fork %s\n", WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "ok" : "failed");
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        execl("/proc/self/exe", argv[0], "exec-child", (char *)NULL);
        _exit(127);
    }
    waitpid(pid, &st, 0);
    printf("exec %s\n", WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "ok" : "failed");
    return 0;
}
