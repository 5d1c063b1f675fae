#!/usr/bin/env python3
"""SMTP throughput with greylisting and rate limits on the state store, LMDB and Redis, as ratios
to the same gateway without filters, in one run.

Everything on 127.0.0.1: one `smtp-sink` as the upstream, Postfix's `smtp-source` as the load
(20 sessions, 4 KB messages, one per session: the same load as smtp_bench.py), a private
redis-server (nothing persisted). Targets, interleaved in each repetition: no filter; greylist
(the load's network allow-listed first, so every RCPT is one store read) + ratelimit (messages
per client and recipients per sender, limits never reached: one sliding-window update at MAIL and
one at RCPT) on LMDB; the same on Redis. Goals: at least 0.85 of no filter on LMDB, 0.75 on Redis.

    PORTCULLIS_BIN=build/gateway/portcullis python3 tests/bench/state_bench.py [--quick]

Output: a markdown table on stdout, per-run lines on stderr. Every process is started here and
stopped by its PID."""

import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness as h  # noqa: E402

FILTERS = [
    {"name": "ratelimit", "options": {"limits": [
        {"count": "messages", "per": "client", "max": 1000000000, "window": "1h"},
        {"count": "recipients", "per": "sender", "max": 1000000000, "window": "1h"}]}},
    {"name": "greylist", "options": {"delay": "1s"}},
]


def start(tmp, sink_port, filters, state=None):
    port = h.free_port()
    lst = h.listener_config(port, sink_port, trusted_networks=["10.255.255.0/24"],
                            accepted_domains=["example.test"],
                            limits={"message_size": "20M", "recipients": 1000, "errors": 100},
                            max_connections_per_ip=100000, filters=filters)
    over = {"log": {"target": "stderr", "level": "notice"}, "workers": 1}
    if state:
        over["state"] = state
    return h.Gateway(tmp, h.gateway_config(tmp, lst, **over)).start()


def allow_list(port):
    """Greylists the load's triplet once, waits out the delay and retries: 127.0.0.0/24 is then
    allow-listed and the load's RCPTs pass with one store read each."""
    for attempt in range(2):
        c = h.SmtpClient(port)
        try:
            c.ehlo("client.test")
            c.cmd("MAIL FROM:<bench@client.test>")
            r = c.cmd("RCPT TO:<alice@example.test>")
        finally:
            c.close()
        if r is not None and r.code == 250:
            return
        time.sleep(1.2)
    raise RuntimeError("the load's network was not allow-listed: %r" % (r,))


def load(port, messages):
    args = ["smtp-source", "-s", "20", "-m", str(messages), "-l", "4096", "-f", "bench@client.test",
            "-t", "alice@example.test", "-M", "client.test", "127.0.0.1:%d" % port]
    t0 = time.monotonic()
    r = subprocess.run(args, capture_output=True, timeout=900)
    if r.returncode != 0:
        raise RuntimeError("smtp-source: %s" % r.stderr.decode(errors="replace")[-300:])
    return messages / (time.monotonic() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    reps, msgs = (1, 500) if args.quick else (3, 5000)
    tmp = h.TempDir(prefix="portcullis-sbench-")
    sink = h.SmtpSink(tmp, dump=False, backlog=4096).start()
    redis = h.Redis(tmp).start()
    gws = []
    try:
        gws.append(("no filter", start(tmp, sink.port, [])))
        gws.append(("greylist + ratelimit, LMDB",
                    start(tmp, sink.port, FILTERS, {"backend": "lmdb", "path": tmp.sub("lmdb")})))
        gws.append(("greylist + ratelimit, Redis",
                    start(tmp, sink.port, FILTERS, {"backend": "redis", "redis": {"address": redis.address}})))
        for _, gw in gws[1:]:
            allow_list(gw.port)
        results = {name: [] for name, _ in gws}
        for rep in range(reps):
            for name, gw in gws:
                rate = load(gw.port, msgs)
                results[name].append(rate)
                print("# rep %d %-28s %8.1f msg/s" % (rep + 1, name, rate), file=sys.stderr)
        for name, gw in gws[1:]:
            if "ratelimit=unavailable" in gw.log_text() or "greylist=delayed" in gw.log_text()[-20000:]:
                print("# warning: %s logged store failures or delays during the load" % name, file=sys.stderr)
        base = statistics.median(results["no filter"])
        print("\n## SMTP with greylist + ratelimit on the state store (4 KB, 20 sessions, workers: 1; "
              "msg/s median of %d; ratio to no filter)\n" % reps)
        print("| Target | msg/s | ratio | target |\n|---|---|---|---|")
        goals = {"greylist + ratelimit, LMDB": "≥ 0.85", "greylist + ratelimit, Redis": "≥ 0.75"}
        for name, _ in gws:
            m = statistics.median(results[name])
            print("| %s | %.0f | %.2f | %s |" % (name, m, m / base, goals.get(name, "")))
    finally:
        for _, gw in gws:
            gw.stop()
        redis.stop()
        sink.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
