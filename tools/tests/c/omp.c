/* rset-run guest test: OpenMP threads report where they run, in two parallel
 * regions. Built with gcc -fopenmp. */
#define _GNU_SOURCE
#include <omp.h>
#include <sched.h>
#include <stdio.h>

int main(void) {
    for (int region = 0; region < 2; region++) {
#pragma omp parallel
        {
            unsigned cpu, node;
            sched_yield();
            getcpu(&cpu, &node);
#pragma omp critical
            printf("T %d %u %u %d\n", omp_get_thread_num(), cpu, node, omp_get_num_threads());
        }
    }
    return 0;
}
