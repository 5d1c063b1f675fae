/* chain.h — runs a listener's filters for one hook: in configured order, each with its own timeout
 * and on-error action, short-circuiting on a final verdict, adding scores and symbols to the
 * transaction's results, honouring monitor mode, and logging each filter's verdict and time.
 * A pc_chain (the filter instances of one listener) is immutable and shared by all threads; a run
 * is per session and lives on the session's loop. */
#ifndef PC_CHAIN_H
#define PC_CHAIN_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "config/config.h"
#include "portcullis/filter.h"

struct pc_conn;

/* Shared results of one transaction (see message.h: pc_ctx_result_*, scores and symbols). */
typedef struct pc_results {
    char **keys, **values;
    size_t nkv;
    char **symbols;
    double *symscores; /* the score each symbol came with */
    size_t nsymbols;
    double score;
    char **authres; /* Authentication-Results resinfo, one per method result */
    size_t nauthres;
} pc_results;

void pc_results_reset(pc_results *r); /* frees everything, leaves an empty set */

/* What a protocol session exposes to filters. Owned by the session; the chain only reads it, except
 * results and msg which filters change through the API. */
typedef struct pc_session_view {
    uint64_t sid;
    uv_loop_t *loop;
    const char *protocol;    /* "smtp" */
    const char *listener;    /* listener name */
    const char *authserv_id; /* the listener's Authentication-Results id */
    struct sockaddr_storage client;
    char client_ip[INET6_ADDRSTRLEN];
    int tls;
    int trusted; /* the client is in the listener's trusted_networks */
    const char *user;
    const char *helo;
    const char *sender;
    char **rcpts;
    size_t nrcpts;
    const char *rcpt;            /* the recipient under test at PC_HOOK_RCPT */
    struct pc_conn *conn;        /* the client connection (pending input) */
    pc_message *msg;             /* at MESSAGE / RETRIEVE */
    pc_results *results;         /* the transaction's */
    const pc_scores_cfg *scores; /* the transaction's thresholds (its policy's), replacing the
                                    chain's; NULL: the chain's */
    int scores_skip;             /* 1: no thresholds for this transaction (a policy's allow) */
    void *const *fstate; /* per-worker filter states of this listener's chain (may be NULL) */
    void **slots;        /* per-session filter states (pc_ctx_session_state), made on first use; the
                            session frees the array, each filter what it put there (at CLOSE) */
} pc_session_view;

typedef struct pc_chain pc_chain;

/* Instantiates every filter a listener uses (pc_filter_lookup + init with its options). Returns
 * NULL with "filter NAME: reason" in err. */
pc_chain *pc_chain_build(const pc_filter_use *uses, size_t n, char *err, size_t errlen);
void pc_chain_free(pc_chain *ch);
/* Bit set of the hooks at least one filter uses. */
unsigned pc_chain_hooks(const pc_chain *ch);

/* The merged result: action CONTINUE when no filter objected. Strings valid during the call only.
 */
typedef void (*pc_chain_cb)(void *ud, const pc_verdict *v);

typedef struct pc_chain_run pc_chain_run;

/* Starts running hook over the chain. cb is called exactly once, possibly before this function
 * returns (when every filter answers at once); the return value is then NULL. Otherwise it returns
 * the run, which the session may pc_chain_abort() (session ends: cb is not called). A chain with no
 * filter for hook answers CONTINUE at once. */
pc_chain_run *pc_chain_start(const pc_chain *ch, pc_hook hook, pc_session_view *sv, pc_chain_cb cb,
                             void *ud);
void pc_chain_abort(pc_chain_run *run);

/* What the chain's verdicts on content depend on: the filters' content versions mixed into one
 * number (0 when none has one), for the retrieval verdict cache's key. */
unsigned long long pc_chain_content_version(const pc_chain *ch);

/* The listener's score thresholds (copied): at MESSAGE and RETRIEVE, a run that ended without a
 * final verdict maps the transaction's total score to reject, quarantine or tag. The session
 * view's scores replace them for one transaction, and its scores_skip turns them off. */
void pc_chain_set_scores(pc_chain *ch, const pc_scores_cfg *sc);

/* Runs each filter's init_worker on the calling worker's loop thread. Returns the array of
 * per-worker states (one per filter, owned by the caller, freed by pc_chain_worker_fini), or NULL
 * when the chain has no filter or memory ran out (the filters then see NULL). */
void **pc_chain_worker_init(const pc_chain *ch, uv_loop_t *loop, unsigned worker);
/* Runs each filter's fini_worker with its state, then frees the array. NULL is a no-op. */
void pc_chain_worker_fini(const pc_chain *ch, void **states, unsigned worker);

#endif
