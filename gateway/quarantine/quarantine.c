/* quarantine.c — storing a held message from a worker's loop (see quarantine.h): the disk work on
 * the threadpool, the index and the answer on the loop. */
#include "quarantine/quarantine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "portcullis/store.h"
#include "quarantine/qstore.h"
#include "store/store.h"

struct pc_quar_job {
    uv_work_t req;
    const pc_quarantine_cfg *cfg;
    char owner[256];
    struct pc_store *store;
    pc_message *msg;
    pc_qmeta meta;
    int rc;
    char err[256];
    pc_quar_done_fn done;
    void *ud; /* NULL after pc_quar_detach */
};

static void work(uv_work_t *req)
{
    pc_quar_job *j = req->data;
    j->rc = pc_qstore_write(j->cfg->directory, j->msg, &j->meta, j->err, sizeof(j->err));
}

/* One record per recipient; nobody waits for the answers (the directory is the truth). */
static void index_records(pc_quar_job *j)
{
    if (!j->store)
        return;
    unsigned ttl = j->cfg->max_age_s > 0xffffffffULL ? 0xffffffffU : (unsigned)j->cfg->max_age_s;
    for (size_t i = 0; i < j->meta.nrcpts; i++) {
        char key[64], val[PC_STORE_VALUE_MAX];
        snprintf(key, sizeof(key), "q:%s:%zu", j->meta.id, i);
        int n = snprintf(val, sizeof(val), "owner=%s id=%s time=%lld rcpt=%s", j->owner, j->meta.id,
                         j->meta.time, j->meta.rcpts[i].addr);
        if (n < 0 || (size_t)n >= sizeof(val) || !pc_store_set(j->store, key, val, ttl, NULL, NULL))
            pc_log_warn(0, "event=quarantine-index id=%s rcpt=%zu result=not-recorded", j->meta.id,
                        i);
    }
}

static void after(uv_work_t *req, int status)
{
    pc_quar_job *j = req->data;
    if (status != 0 && j->rc == 0) {
        j->rc = -1;
        snprintf(j->err, sizeof(j->err), "cancelled");
    }
    if (j->rc == 0)
        index_records(j);
    if (j->ud)
        j->done(j->ud, j->rc, j->meta.id, j->err);
    else if (j->rc == 0)
        pc_log_notice(0, "event=quarantine id=%s result=stored-client-gone", j->meta.id);
    pc_message_unref(j->msg);
    pc_qmeta_free(&j->meta);
    free(j);
}

pc_quar_job *pc_quar_hold(uv_loop_t *loop, const pc_quarantine_cfg *cfg, pc_message *msg,
                          pc_qmeta *m, pc_quar_done_fn done, void *ud)
{
    pc_quar_job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->cfg = cfg;
    if (gethostname(j->owner, sizeof(j->owner) - 1) < 0 || !j->owner[0])
        snprintf(j->owner, sizeof(j->owner), "localhost");
    for (char *c = j->owner; *c; c++)
        if (*c <= ' ' || *c > '~')
            *c = '?';
    j->store = pc_store_current();
    j->msg = pc_message_ref(msg);
    j->meta = *m;
    memset(m, 0, sizeof(*m));
    j->done = done;
    j->ud = ud;
    j->req.data = j;
    if (uv_queue_work(loop, &j->req, work, after) < 0) {
        *m = j->meta;
        pc_message_unref(j->msg);
        free(j);
        return NULL;
    }
    return j;
}

void pc_quar_detach(pc_quar_job *j)
{
    if (j)
        j->ud = NULL;
}

/* ---- expiry ---------------------------------------------------------------------------------
 */

struct pc_quar_sweeper {
    uv_timer_t timer;
    uv_work_t work;
    const pc_quarantine_cfg *cfg;
    int running, stopped, timer_closed;
    long expired;
    char err[256];
};

static void sweep_work(uv_work_t *req)
{
    pc_quar_sweeper *s = req->data;
    s->err[0] = '\0';
    s->expired = pc_qstore_sweep(s->cfg->directory, s->cfg->max_age_s, (long long)time(NULL),
                                 s->err, sizeof(s->err));
}

static void sweeper_free_if_done(pc_quar_sweeper *s)
{
    if (s->stopped && !s->running && s->timer_closed)
        free(s);
}

static void sweep_after(uv_work_t *req, int status)
{
    pc_quar_sweeper *s = req->data;
    s->running = 0;
    if (status == 0 && s->expired > 0)
        pc_log_notice(0, "event=quarantine-expired messages=%ld max_age=%s", s->expired,
                      s->cfg->max_age_text);
    else if (status == 0 && s->expired < 0)
        pc_log_err(0, "event=quarantine-sweep result=failed error=\"%s\"", s->err);
    sweeper_free_if_done(s);
}

static void on_sweep(uv_timer_t *t)
{
    pc_quar_sweeper *s = t->data;
    if (s->running || s->stopped)
        return;
    s->work.data = s;
    if (uv_queue_work(t->loop, &s->work, sweep_work, sweep_after) == 0)
        s->running = 1;
}

pc_quar_sweeper *pc_quar_sweeper_start(uv_loop_t *loop, const pc_quarantine_cfg *cfg)
{
    pc_quar_sweeper *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cfg = cfg;
    unsigned long long every = cfg->max_age_s * 1000 / 4;
    if (every < 1000)
        every = 1000;
    if (every > 3600 * 1000)
        every = 3600 * 1000;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, on_sweep, 0, every);
    uv_unref((uv_handle_t *)&s->timer);
    return s;
}

static void sweeper_timer_closed(uv_handle_t *h)
{
    pc_quar_sweeper *s = h->data;
    s->timer_closed = 1;
    sweeper_free_if_done(s);
}

void pc_quar_sweeper_stop(pc_quar_sweeper *s)
{
    if (!s)
        return;
    s->stopped = 1;
    uv_close((uv_handle_t *)&s->timer, sweeper_timer_closed);
}
