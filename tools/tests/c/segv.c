/* rset-mon guest test: a program with its own SIGSEGV handler, which it uses on
 * purpose (a guard page), while it also works on a heap array the monitor
 * watches. Its output must be the same with and without rset-mon record. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static sigjmp_buf env;
static char *guard;
static volatile int caught, stray;

static void handler(int sig, siginfo_t *si, void *ctx) {
    (void)sig; (void)ctx;
    if ((char *)si->si_addr >= guard && (char *)si->si_addr < guard + 4096) caught++;
    else { stray++; signal(SIGSEGV, SIG_DFL); return; }
    siglongjmp(env, 1);
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    guard = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    size_t n = (8 << 20) / sizeof(long);
    long *a = malloc(n * sizeof *a);
    for (size_t i = 0; i < n; i++) a[i] = (long)i;
    long sum = 0;
    for (int round = 0; round < 40; round++) {
        for (size_t i = 0; i < n; i += 8) sum += a[i];
        if (round % 10 == 0 && sigsetjmp(env, 1) == 0) {
            guard[round] = 1; /* faults: the handler jumps back */
            printf("not caught\n");
        }
    }
    struct sigaction now;
    sigaction(SIGSEGV, NULL, &now);
    printf("caught %d stray %d handler-kept %d sum %ld\n", caught, stray,
           now.sa_sigaction == handler, sum);
    return 0;
}
