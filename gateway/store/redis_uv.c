/* redis_uv.c — the libuv adapter of hiredis's asynchronous API (see redis_uv.h).
 *
 * State: one rpoll per context, owned by hiredis's ev.data until its cleanup hook, then by libuv
 * until the poll handle's close callback frees it. Invariant: once cleanup has run, ac is NULL and
 * nothing calls into hiredis from here again (a poll callback already running checks it between
 * the read and the write step, since the read step may free the context). */
#include "store/redis_uv.h"

#include <stdlib.h>

typedef struct rpoll {
    uv_poll_t poll;
    redisAsyncContext *ac; /* NULL once hiredis's cleanup hook has run */
    int events;            /* UV_READABLE | UV_WRITABLE wanted by hiredis */
    int started;
    pc_redis_uv_gone_cb gone;
    void *arg;
} rpoll;

static void on_poll(uv_poll_t *h, int status, int events)
{
    rpoll *p = h->data;
    if (status < 0)
        events = p->events; /* let hiredis try, and find the error itself */
    if ((events & UV_READABLE) && p->ac)
        redisAsyncHandleRead(p->ac);
    if ((events & UV_WRITABLE) && p->ac)
        redisAsyncHandleWrite(p->ac);
}

static void update(rpoll *p, int events)
{
    if (events == p->events && p->started == (events != 0))
        return;
    p->events = events;
    if (events) {
        if (uv_poll_start(&p->poll, events, on_poll) == 0)
            p->started = 1;
    } else if (p->started) {
        uv_poll_stop(&p->poll);
        p->started = 0;
    }
}

static void add_read(void *d)
{
    rpoll *p = d;
    update(p, p->events | UV_READABLE);
}

static void del_read(void *d)
{
    rpoll *p = d;
    update(p, p->events & ~UV_READABLE);
}

static void add_write(void *d)
{
    rpoll *p = d;
    update(p, p->events | UV_WRITABLE);
}

static void del_write(void *d)
{
    rpoll *p = d;
    update(p, p->events & ~UV_WRITABLE);
}

static void on_close(uv_handle_t *h)
{
    free(h->data);
}

static void cleanup(void *d)
{
    rpoll *p = d;
    redisAsyncContext *ac = p->ac;
    p->ac = NULL;
    if (ac)
        ac->ev.data = NULL;
    uv_close((uv_handle_t *)&p->poll, on_close); /* before hiredis closes the socket */
    if (p->gone)
        p->gone(p->arg, ac);
}

int pc_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop, pc_redis_uv_gone_cb gone, void *arg)
{
    if (ac->ev.data)
        return -1;
    rpoll *p = calloc(1, sizeof(*p));
    if (!p)
        return -1;
    if (uv_poll_init_socket(loop, &p->poll, ac->c.fd) != 0) {
        free(p);
        return -1;
    }
    p->poll.data = p;
    p->ac = ac;
    p->gone = gone;
    p->arg = arg;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = p;
    return 0;
}
