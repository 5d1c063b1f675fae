/* test_jobs.c — long jobs on the threadpool (core/jobs.c) on real libuv loops in two threads: never
 * more than threadpool_size - 1 at once across both, so a short job still gets a thread while
 * they block; every job's after() runs exactly once, on its own loop; a job no longer wanted is
 * dropped without running; jobs still waiting at a worker's end get after(ran = 0). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "core/jobs.h"

#define THREADS 3 /* the threadpool: long jobs get at most 2 */

static atomic_int now_running, max_running, ran_total;
static uv_sem_t gate; /* long jobs wait here until the test opens it */
static atomic_int gate_open;

typedef struct tjob {
    pc_job j;
    uv_thread_t owner;
    int after_calls;
    int ran;
    int unwanted;
    int wrong_thread;
} tjob;

static void long_work(pc_job *j)
{
    (void)j;
    int n = atomic_fetch_add(&now_running, 1) + 1;
    int m = atomic_load(&max_running);
    while (n > m && !atomic_compare_exchange_weak(&max_running, &m, n))
        ;
    if (!atomic_load(&gate_open)) {
        uv_sem_wait(&gate);
        uv_sem_post(&gate); /* let the next one through too */
    }
    atomic_fetch_sub(&now_running, 1);
    atomic_fetch_add(&ran_total, 1);
}

static void long_after(pc_job *j, int ran)
{
    tjob *t = (tjob *)j;
    uv_thread_t me = uv_thread_self();
    t->wrong_thread |= !uv_thread_equal(&me, &t->owner); /* back on the loop that started it */
    t->after_calls++;
    t->ran = ran;
}

static int not_wanted(pc_job *j)
{
    return !((tjob *)j)->unwanted;
}

enum { PER_LOOP = 6 };

typedef struct side {
    uv_loop_t loop;
    tjob jobs[PER_LOOP];
    uv_timer_t stop;
} side;

static void stop_when_done(uv_timer_t *t)
{
    side *sd = t->data;
    int done = 1;
    for (int i = 0; i < PER_LOOP; i++)
        done &= sd->jobs[i].after_calls == 1;
    if (done)
        uv_close((uv_handle_t *)t, NULL);
}

static void side_run(void *arg)
{
    side *sd = arg;
    uv_loop_init(&sd->loop);
    assert_int_equal(pc_jobs_worker_init(&sd->loop), 0);
    for (int i = 0; i < PER_LOOP; i++) {
        sd->jobs[i] = (tjob){.j = {.work = long_work, .after = long_after, .wanted = not_wanted},
                             .owner = uv_thread_self()};
        assert_int_equal(pc_job_start_long(&sd->jobs[i].j), 0);
        if (sd->jobs[i].after_calls)
            sd->jobs[i].wrong_thread = 2; /* after() must never run inside the call */
    }
    uv_timer_init(&sd->loop, &sd->stop);
    sd->stop.data = sd;
    uv_timer_start(&sd->stop, stop_when_done, 10, 10);
    uv_run(&sd->loop, UV_RUN_DEFAULT);
    pc_jobs_worker_fini();
    uv_run(&sd->loop, UV_RUN_NOWAIT);
    uv_loop_close(&sd->loop);
}

/* A short job on the plain threadpool while the long ones hold their slots and block. */
static atomic_int short_done;
static void short_work(uv_work_t *r)
{
    (void)r;
}
static void short_after(uv_work_t *r, int st)
{
    (void)r;
    (void)st;
    atomic_store(&short_done, 1);
}

static void test_bound_and_a_thread_left(void **state)
{
    (void)state;
    assert_int_equal(pc_jobs_limit(), THREADS - 1);
    uv_sem_init(&gate, 0);
    static side a, b;
    uv_thread_t ta, tb;
    uv_thread_create(&ta, side_run, &a);
    uv_thread_create(&tb, side_run, &b);
    /* Wait until the long jobs hold every slot they may have, then run a short job. */
    for (int i = 0; i < 500 && atomic_load(&now_running) < THREADS - 1; i++)
        uv_sleep(10);
    assert_int_equal(atomic_load(&now_running), THREADS - 1);
    uv_loop_t main_loop;
    uv_loop_init(&main_loop);
    uv_work_t w;
    uv_queue_work(&main_loop, &w, short_work, short_after);
    uv_run(&main_loop, UV_RUN_DEFAULT); /* returns once the short job is done */
    assert_int_equal(atomic_load(&short_done), 1);
    uv_loop_close(&main_loop);
    atomic_store(&gate_open, 1);
    uv_sem_post(&gate);
    uv_thread_join(&ta);
    uv_thread_join(&tb);
    assert_int_equal(atomic_load(&max_running), THREADS - 1);
    assert_int_equal(atomic_load(&ran_total), 2 * PER_LOOP);
    for (int i = 0; i < PER_LOOP; i++) {
        assert_int_equal(a.jobs[i].after_calls, 1);
        assert_int_equal(b.jobs[i].after_calls, 1);
        assert_int_equal(a.jobs[i].ran, 1);
        assert_int_equal(a.jobs[i].wrong_thread, 0);
        assert_int_equal(b.jobs[i].wrong_thread, 0);
    }
}

static void count_after(pc_job *j, int ran)
{
    tjob *t = (tjob *)j;
    t->after_calls++;
    t->ran = ran;
}

static void never(uv_timer_t *t)
{
    (void)t;
}

static void test_unwanted_and_left_over(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    assert_int_equal(pc_jobs_worker_init(&loop), 0);
    atomic_store(&ran_total, 0);
    tjob gone = {.j = {.work = long_work, .after = count_after, .wanted = not_wanted},
                 .unwanted = 1};
    tjob kept = {.j = {.work = long_work, .after = count_after}};
    assert_int_equal(pc_job_start_long(&gone.j), 0);
    assert_int_equal(pc_job_start_long(&kept.j), 0);
    uv_timer_t alive; /* a session's handles keep a worker's loop running; this stands in */
    uv_timer_init(&loop, &alive);
    uv_timer_start(&alive, never, 60000, 0);
    for (int i = 0; i < 1000 && kept.after_calls == 0; i++)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&alive, NULL);
    assert_int_equal(gone.after_calls, 1);
    assert_int_equal(gone.ran, 0); /* dropped without running */
    assert_int_equal(kept.ran, 1);
    assert_int_equal(atomic_load(&ran_total), 1);
    /* queued but the loop never runs again: the worker's end answers it */
    tjob late = {.j = {.work = long_work, .after = count_after}};
    assert_int_equal(pc_job_start_long(&late.j), 0);
    pc_jobs_worker_fini();
    assert_int_equal(late.after_calls, 1);
    assert_int_equal(late.ran, 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&loop), 0);
    /* without a queue on this thread nothing starts */
    assert_int_equal(pc_job_start_long(&late.j), -1);
}

int main(void)
{
    setenv("UV_THREADPOOL_SIZE", "3", 1); /* before the threadpool starts */
    pc_jobs_setup(THREADS);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bound_and_a_thread_left),
        cmocka_unit_test(test_unwanted_and_left_over),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
