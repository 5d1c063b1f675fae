/* jobs.h — long jobs on the threadpool under a global bound. A scan, a body hash of a large message
 * or a regular expression over a body may hold a threadpool thread for long; at most
 * threadpool_size - 1 of them run at once across all workers, so that one thread always stays free
 * for short work (the upstream's address lookup, an fsync). The others wait in order on their own
 * loop and start as slots free up, whichever worker freed them.
 *
 * Threads: pc_jobs_setup on the main thread before the workers start; everything else on a worker's
 * loop thread, for that loop (pc_jobs_worker_init made its queue). */
#ifndef PC_JOBS_H
#define PC_JOBS_H

#include <uv.h>

typedef struct pc_job pc_job;

struct pc_job {
    void (*work)(pc_job *j);           /* on the threadpool */
    void (*after)(pc_job *j, int ran); /* on the loop; ran is 0 when work never started */
    int (*wanted)(pc_job *j);          /* optional, on the loop before work starts: 0 drops it */
    /* the module's own */
    uv_work_t req;
    struct pc_jobs_loop *owner;
    pc_job *next;
};

/* threads: the threadpool's size; at most threads - 1 long jobs run at once (at least 1). */
void pc_jobs_setup(unsigned threads);
unsigned pc_jobs_limit(void);
/* This worker thread's queue for loop. 0 or -1. */
int pc_jobs_worker_init(uv_loop_t *loop);
/* After the loop has stopped: jobs still waiting get after(j, 0); the queue's handle is closed
 * (run the loop once more for its close callback). */
void pc_jobs_worker_fini(void);
/* Starts j now if a slot is free, else queues it. after() is always called exactly once, later,
 * never inside this call. 0, or -1 when this thread has no queue (after() is then not called). */
int pc_job_start_long(pc_job *j);

#endif
