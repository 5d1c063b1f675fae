/* jobs.c — long jobs on the threadpool under a global bound (see jobs.h). The slots are one atomic
 * counter; each worker loop keeps a FIFO of the jobs waiting for a slot and an unreferenced async
 * handle through which a worker that freed a slot wakes the loops that have some waiting. */
#include "core/jobs.h"

#include <stdatomic.h>
#include <stdlib.h>

typedef struct pc_jobs_loop {
    uv_loop_t *loop;
    uv_async_t async;
    pc_job *head, *tail;
    atomic_uint waiting;
    struct pc_jobs_loop *next; /* in the registry */
} pc_jobs_loop;

static unsigned limit = 3;
static atomic_uint running;
static uv_mutex_t reg_lock;
static uv_once_t reg_once = UV_ONCE_INIT;
static pc_jobs_loop *registry;
static _Thread_local pc_jobs_loop *current;

static void reg_init(void)
{
    uv_mutex_init(&reg_lock);
}

void pc_jobs_setup(unsigned threads)
{
    limit = threads > 1 ? threads - 1 : 1;
}

unsigned pc_jobs_limit(void)
{
    return limit;
}

static int acquire(void)
{
    unsigned cur = atomic_load(&running);
    do {
        if (cur >= limit)
            return 0;
    } while (!atomic_compare_exchange_weak(&running, &cur, cur + 1));
    return 1;
}

static void drain(pc_jobs_loop *jl);

/* A slot is free again: wake every loop that has jobs waiting (this one drains itself). */
static void release(pc_jobs_loop *self)
{
    atomic_fetch_sub(&running, 1);
    uv_mutex_lock(&reg_lock);
    for (pc_jobs_loop *jl = registry; jl; jl = jl->next)
        if (jl != self && atomic_load(&jl->waiting))
            uv_async_send(&jl->async);
    uv_mutex_unlock(&reg_lock);
}

static void on_work(uv_work_t *req)
{
    pc_job *j = req->data;
    j->work(j);
}

static void on_after(uv_work_t *req, int status)
{
    (void)status; /* never cancelled */
    pc_job *j = req->data;
    pc_jobs_loop *jl = j->owner;
    release(jl);
    j->after(j, 1);
    drain(jl);
}

/* With a slot held: hands j to the threadpool. */
static void submit(pc_jobs_loop *jl, pc_job *j)
{
    j->req.data = j;
    if (uv_queue_work(jl->loop, &j->req, on_work, on_after) != 0) {
        release(jl);
        j->after(j, 0);
    }
}

static void drain(pc_jobs_loop *jl)
{
    while (jl->head) {
        pc_job *j = jl->head;
        int wanted = !j->wanted || j->wanted(j);
        if (wanted && !acquire())
            return;
        jl->head = j->next;
        if (!jl->head)
            jl->tail = NULL;
        atomic_fetch_sub(&jl->waiting, 1);
        if (wanted)
            submit(jl, j);
        else
            j->after(j, 0);
    }
}

static void on_async(uv_async_t *a)
{
    drain(a->data);
}

int pc_jobs_worker_init(uv_loop_t *loop)
{
    uv_once(&reg_once, reg_init);
    pc_jobs_loop *jl = calloc(1, sizeof(*jl));
    if (!jl)
        return -1;
    jl->loop = loop;
    if (uv_async_init(loop, &jl->async, on_async) != 0) {
        free(jl);
        return -1;
    }
    jl->async.data = jl;
    uv_unref((uv_handle_t *)&jl->async); /* waiting jobs alone do not keep the loop running */
    uv_mutex_lock(&reg_lock);
    jl->next = registry;
    registry = jl;
    uv_mutex_unlock(&reg_lock);
    current = jl;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

void pc_jobs_worker_fini(void)
{
    pc_jobs_loop *jl = current;
    if (!jl)
        return;
    current = NULL;
    uv_mutex_lock(&reg_lock);
    for (pc_jobs_loop **pp = &registry; *pp; pp = &(*pp)->next) {
        if (*pp == jl) {
            *pp = jl->next;
            break;
        }
    }
    uv_mutex_unlock(&reg_lock);
    while (jl->head) {
        pc_job *j = jl->head;
        jl->head = j->next;
        j->after(j, 0);
    }
    uv_close((uv_handle_t *)&jl->async, on_closed);
}

int pc_job_start_long(pc_job *j)
{
    pc_jobs_loop *jl = current;
    if (!jl || !j || !j->work || !j->after)
        return -1;
    j->owner = jl;
    j->next = NULL;
    if (jl->tail)
        jl->tail->next = j;
    else
        jl->head = j;
    jl->tail = j;
    atomic_fetch_add(&jl->waiting, 1);
    /* Never inside this call: the caller's state may not be complete yet. */
    uv_async_send(&jl->async);
    return 0;
}
