/* clam_rate.c — libclamav's own cost per scan, in process, for filters_bench.py.
 *
 * Loads a signature database the way the clamav filter does (cl_load with CL_DB_STDOPT, the
 * filter's default limits, cl_engine_compile), reads one message into memory and scans it again
 * and again through an fmap over that memory with every parser enabled (the filter's
 * cl_scanmap_callback call and options). One thread, or THREADS threads sharing the engine.
 *
 *   clam_rate DBDIR MESSAGE SCANS [THREADS] [MAX_SECONDS]
 *
 * Prints one line: scans, seconds (wall), rate (scans/s), cpu_s (process CPU time), p50_us and
 * p99_us (per-scan wall time), and the verdict of the last scan (clean / the virus name). Exits 2
 * on a scan error. The loop is bounded by SCANS and by MAX_SECONDS (default 60).
 *
 * Build: cc -O2 -o clam_rate clam_rate.c $(pkg-config --cflags --libs libclamav) -lpthread */
#include <clamav.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct job {
    struct cl_engine *engine;
    const char *data;
    size_t len;
    long scans;
    double max_s;
    double *lat_us; /* scans entries */
    long done;
    int error;
    char verdict[128];
} job;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run(void *arg)
{
    job *j = arg;
    double start = now_s();
    snprintf(j->verdict, sizeof(j->verdict), "none");
    for (long i = 0; i < j->scans; i++) {
        double t0 = now_s();
        if (t0 - start > j->max_s)
            break;
        cl_fmap_t *map = cl_fmap_open_memory(j->data, j->len);
        if (!map) {
            j->error = 1;
            break;
        }
        struct cl_scan_options so = {.parse = ~0u};
        const char *vn = NULL;
        unsigned long scanned = 0;
        cl_error_t rc = cl_scanmap_callback(map, NULL, &vn, &scanned, j->engine, &so, NULL);
        cl_fmap_close(map);
        j->lat_us[i] = (now_s() - t0) * 1e6;
        j->done = i + 1;
        if (rc == CL_VIRUS) {
            snprintf(j->verdict, sizeof(j->verdict), "%s", vn ? vn : "virus");
        } else if (rc == CL_CLEAN) {
            snprintf(j->verdict, sizeof(j->verdict), "clean");
        } else {
            snprintf(j->verdict, sizeof(j->verdict), "error:%s", cl_strerror(rc));
            j->error = 1;
            break;
        }
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s DBDIR MESSAGE SCANS [THREADS] [MAX_SECONDS]\n", argv[0]);
        return 1;
    }
    long scans = atol(argv[3]);
    int threads = argc > 4 ? atoi(argv[4]) : 1;
    double max_s = argc > 5 ? atof(argv[5]) : 60.0;
    if (scans < 1 || scans > 100000000 || threads < 1 || threads > 64) {
        fprintf(stderr, "bad SCANS or THREADS\n");
        return 1;
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    static char data[1 << 24];
    size_t len = fread(data, 1, sizeof(data), f);
    fclose(f);

    cl_error_t rc = cl_init(CL_INIT_DEFAULT);
    struct cl_engine *e = rc == CL_SUCCESS ? cl_engine_new() : NULL;
    if (!e) {
        fprintf(stderr, "libclamav init: %s\n", cl_strerror(rc));
        return 1;
    }
    /* the clamav filter's default limits */
    cl_engine_set_num(e, CL_ENGINE_MAX_SCANSIZE, 100LL << 20);
    cl_engine_set_num(e, CL_ENGINE_MAX_FILESIZE, 25LL << 20);
    cl_engine_set_num(e, CL_ENGINE_MAX_RECURSION, 16);
    cl_engine_set_num(e, CL_ENGINE_MAX_FILES, 10000);
    cl_engine_set_num(e, CL_ENGINE_MAX_SCANTIME, 120000);
    unsigned sigs = 0;
    double tl = now_s();
    rc = cl_load(argv[1], e, &sigs, CL_DB_STDOPT);
    if (rc == CL_SUCCESS)
        rc = cl_engine_compile(e);
    if (rc != CL_SUCCESS) {
        fprintf(stderr, "database %s: %s\n", argv[1], cl_strerror(rc));
        return 1;
    }
    double load_s = now_s() - tl;

    /* warm-up: a few scans, not counted */
    double warm[16];
    job w = {.engine = e, .data = data, .len = len, .scans = 16, .max_s = 5, .lat_us = warm};
    run(&w);

    job *jobs = calloc((size_t)threads, sizeof(*jobs));
    pthread_t *tid = calloc((size_t)threads, sizeof(*tid));
    long per = scans / threads;
    for (int t = 0; t < threads; t++) {
        jobs[t] = (job){.engine = e, .data = data, .len = len, .scans = per, .max_s = max_s};
        jobs[t].lat_us = calloc((size_t)per, sizeof(double));
    }
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = now_s();
    for (int t = 0; t < threads; t++)
        pthread_create(&tid[t], NULL, run, &jobs[t]);
    for (int t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);
    double wall = now_s() - t0;
    getrusage(RUSAGE_SELF, &r1);
    double cpu = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) +
                 (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1e6 +
                 (double)(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) +
                 (double)(r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6;

    long total = 0;
    int error = 0;
    for (int t = 0; t < threads; t++) {
        total += jobs[t].done;
        error |= jobs[t].error;
    }
    double *all = calloc((size_t)(total ? total : 1), sizeof(double));
    long k = 0;
    for (int t = 0; t < threads; t++)
        for (long i = 0; i < jobs[t].done; i++)
            all[k++] = jobs[t].lat_us[i];
    qsort(all, (size_t)total, sizeof(double), cmp_double);
    double p50 = total ? all[total / 2] : 0,
           p99 = total ? all[(long)((double)(total - 1) * 0.99)] : 0;
    printf("scans=%ld threads=%d seconds=%.3f rate=%.1f cpu_s=%.3f p50_us=%.1f p99_us=%.1f "
           "signatures=%u load_s=%.3f bytes=%zu verdict=%s\n",
           total, threads, wall, wall > 0 ? (double)total / wall : 0, cpu, p50, p99, sigs, load_s,
           len, jobs[0].verdict);
    cl_engine_free(e);
    return error ? 2 : 0;
}
