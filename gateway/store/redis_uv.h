/* redis_uv.h — hiredis's asynchronous context driven by a libuv loop: one uv_poll_t on the
 * context's socket, read and write interest switched as hiredis asks.
 *
 * Written here rather than taken from hiredis's adapters/libuv.h, which (in 0.14) returns on a
 * poll error without telling hiredis: a connect that fails that way is never noticed. Here a poll
 * error counts as the events that were watched, so hiredis makes the syscall and sees the error
 * itself. Builds against hiredis 0.14 and 1.x. Timeouts are the caller's (uv_timer). */
#ifndef PC_STORE_REDIS_UV_H
#define PC_STORE_REDIS_UV_H

#include <hiredis/async.h>
#include <uv.h>

/* Called once, when hiredis lets go of the context (it is being freed: after its pending
 * callbacks have had their NULL reply, before its disconnect callback). ac is still valid during
 * the call, never after. */
typedef void (*pc_redis_uv_gone_cb)(void *arg, redisAsyncContext *ac);

/* Attaches ac (freshly connected with redisAsyncConnect*, ac->err == 0) to loop. The poll
 * handle's memory is freed in its close callback, after hiredis's cleanup hook. 0, or -1 (ac is
 * left alone: the caller frees it). */
int pc_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop, pc_redis_uv_gone_cb gone, void *arg);

#endif
