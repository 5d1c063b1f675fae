#!/usr/bin/env python3
"""SMTP benchmark for Portcullis (NOT a test; not in CTest). Method of /work/shared/BENCHMARKS.md.

Job: measure, in one run on this machine, SMTP throughput through four targets in front of the same
smtp-sink upstream -- direct, HAProxy TCP passthrough, Portcullis (no filters), Portcullis with
access+pregreet(delay 0) -- with smtp-source (4 KB x 5000 and 1 MB x 200, 20 sessions), 3 repetitions
interleaved; idle memory per connection (fresh gateway, 2,000 connections that read the greeting);
TLS full handshakes per second (Portcullis implicit TLS vs HAProxy `bind ... ssl crt`, no resumption).
Prints a markdown table with min/median and the ratios the goals are stated in
(4 KB: Portcullis >= 0.9 x HAProxy; 1 MB: Portcullis >= 0.85 x direct).

State owned: a temp dir, smtp-sink / haproxy / portcullis child processes (stopped by recorded PID).
Usage: PORTCULLIS_BIN=build/gateway/portcullis python3 tests/bench/smtp_bench.py [--quick]
"""

import argparse
import os
import resource
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import harness as h  # noqa: E402


# ----------------------------------------------------------------------------- targets

class HAProxy:
    """haproxy in the foreground (-db) from a generated config; TCP passthrough, optional TLS frontend."""

    def __init__(self, tmp, upstream_port, tls_pem=None):
        self.tmp = tmp
        self.port = h.free_port()
        self.upstream_port = upstream_port
        self.tls_pem = tls_pem
        self.proc = None

    def start(self):
        bind = "bind 127.0.0.1:%d" % self.port
        if self.tls_pem:
            bind += " ssl crt %s no-tls-tickets" % self.tls_pem
        cfg = ("global\n  maxconn 5000\n  nbthread 1\n"
               "  tune.ssl.cachesize 0\n"
               "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n"
               "frontend fe\n  %s\n  default_backend be\n"
               "backend be\n  server s1 127.0.0.1:%d\n" % (bind, self.upstream_port))
        path = os.path.join(self.tmp.path, "haproxy-%d.cfg" % self.port)
        with open(path, "w") as f:
            f.write(cfg)
        log = open(os.path.join(self.tmp.path, "haproxy-%d.log" % self.port), "wb")
        self.proc = subprocess.Popen(["haproxy", "-f", path, "-db"], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()
        try:
            h.wait_port(self.port, proc=self.proc)
        except Exception:
            with open(os.path.join(self.tmp.path, "haproxy-%d.log" % self.port)) as f:
                raise RuntimeError("haproxy did not start: " + f.read()[-2000:])
        return self

    def stop(self):
        h.stop_pid(self.proc)


def start_gateway(tmp, upstream_port, filters=None, tls=None, pki=None, workers=None):
    port = h.free_port()
    over = {}
    if filters:
        over["filters"] = filters
    lst = h.listener_config(port, upstream_port, tls=tls, pki=pki,
                            trusted_networks=["127.0.0.0/8"], accepted_domains=["example.test"],
                            limits={"message_size": "20M", "recipients": 1000, "errors": 100},
                            max_connections_per_ip=100000, **over)
    if tls:
        lst["tls"]["handshakes_per_minute"] = 0          # the bench measures handshakes: no rate cap
    top = {"log": {"target": "stderr", "level": "notice"}}
    if workers:
        top["workers"] = workers
    cfg = h.gateway_config(tmp, lst, **top)
    return h.Gateway(tmp, cfg).start()


# ----------------------------------------------------------------------------- load

def smtp_source(port, sessions, messages, length, timeout=900):
    """Run smtp-source; returns messages per second (wall clock)."""
    args = ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(length),
            "-f", "bench@client.test", "-t", "alice@example.test", "-M", "client.test",
            "127.0.0.1:%d" % port]
    t0 = time.monotonic()
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        raise RuntimeError("smtp-source failed (%d): %s" % (r.returncode, r.stderr.decode(errors="replace")[-500:]))
    return messages / dt


# ----------------------------------------------------------------------------- memory

def tree_rss_kb(pid):
    """Sum of VmRSS over pid and its descendants (kB)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(d))
        except (OSError, IndexError, ValueError):
            pass
    total, todo, seen = 0, [pid], set()
    while todo and len(seen) < 10000:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
        todo.extend(children.get(p, []))
    return total


def idle_memory(tmp, sink_port, n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, n * 2 + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    gw = start_gateway(tmp, sink_port)
    conns = []
    try:
        time.sleep(0.5)
        before = tree_rss_kb(gw.proc.pid)
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
            conns.append(s)
        got = 0
        for s in conns:                      # every connection reads its greeting
            try:
                data = s.recv(512)
                got += data.startswith(b"220")
            except OSError:
                pass
        time.sleep(1.0)
        after = tree_rss_kb(gw.proc.pid)
        return before, after, got, (after - before) / max(1, got)
    finally:
        for s in conns:
            s.close()
        gw.stop()


# ----------------------------------------------------------------------------- TLS handshakes

def tls_handshakes(port, seconds, threads=20):
    """Full TLS handshakes per second (fresh context per connection: no resumption) + read the greeting."""
    stop = time.monotonic() + seconds
    counts = [0] * threads
    errors = [0] * threads

    def run(i):
        for _ in range(10 ** 7):
            if time.monotonic() >= stop:
                return
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.options |= ssl.OP_NO_TICKET
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                        s.recv(256)
                counts[i] += 1
            except OSError:
                errors[i] += 1

    ts = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join(seconds + 30)
    return sum(counts) / (time.monotonic() - t0), sum(errors)


# ----------------------------------------------------------------------------- main

def fmt(x):
    return "%.1f" % x if x < 100 else "%.0f" % x


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run (fewer messages, 1 repetition)")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--idle", type=int, default=2000, help="idle connections for the memory test")
    args = ap.parse_args()
    for tool in ("smtp-source", "smtp-sink", "haproxy", "openssl"):
        if not h.have_tool(tool):
            sys.exit("missing tool: %s" % tool)
    h.portcullis_bin()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 16384)), hard))  # children inherit
    reps = args.reps or (1 if args.quick else 3)
    loads = [("4 KB, 20 sessions", 20, 500 if args.quick else 5000, 4096),
             ("1 MB, 20 sessions", 20, 40 if args.quick else 200, 1048576)]
    idle_n = 300 if args.quick else args.idle
    tls_secs = 3 if args.quick else 10

    tmp = h.TempDir(prefix="portcullis-bench-")
    pki = h.make_pki(tmp.sub("pki"))
    combined = os.path.join(tmp.path, "haproxy.pem")
    with open(combined, "w") as f:
        f.write(open(pki["cert"]).read() + open(pki["key"]).read())

    sink = h.SmtpSink(tmp, dump=False, backlog=4096).start()
    procs = []
    try:
        hap = HAProxy(tmp, sink.port).start()
        procs.append(hap)
        gw = start_gateway(tmp, sink.port)
        procs.append(gw)
        gwf = start_gateway(tmp, sink.port, filters=[
            {"name": "access", "options": {"deny_senders": ["spam@bad.test"], "deny_clients": ["127.0.0.9/32"]}},
            {"name": "pregreet", "options": {"delay": "0s", "action": "reject"}}])
        procs.append(gwf)
        targets = [("direct to smtp-sink", sink.port), ("HAProxy TCP", hap.port),
                   ("Portcullis", gw.port), ("Portcullis access+pregreet", gwf.port)]
        results = {(t, l[0]): [] for t, _ in targets for l in loads}
        for load_name, sessions, msgs, length in loads:
            for rep in range(reps):
                for tname, port in targets:          # interleaved: direct, peer, portcullis, ...
                    rate = smtp_source(port, sessions, msgs, length)
                    results[(tname, load_name)].append(rate)
                    print("# rep %d %-28s %-20s %8.1f msg/s" % (rep + 1, tname, load_name, rate), file=sys.stderr)

        print("\n## SMTP throughput (msg/s: min / median; ratio = median / median of baseline)\n")
        print("| Target | " + " | ".join(l[0] for l in loads) + " |")
        print("|---|" + "---|" * len(loads))
        med = {k: statistics.median(v) for k, v in results.items()}
        for tname, _ in targets:
            cells = []
            for l in loads:
                v = results[(tname, l[0])]
                cells.append("%s / %s (%.2f of direct)" % (fmt(min(v)), fmt(med[(tname, l[0])]),
                                                           med[(tname, l[0])] / med[("direct to smtp-sink", l[0])]))
            print("| %s | %s |" % (tname, " | ".join(cells)))
        r4 = med[("Portcullis", loads[0][0])] / med[("HAProxy TCP", loads[0][0])]
        r1 = med[("Portcullis", loads[1][0])] / med[("direct to smtp-sink", loads[1][0])]
        print("\n| Goal | measured | target | |\n|---|---|---|---|")
        print("| 4 KB: Portcullis / HAProxy | %.2f | >= 0.90 | %s |" % (r4, "ok" if r4 >= 0.9 else "MISSED"))
        print("| 1 MB: Portcullis / direct | %.2f | >= 0.85 | %s |" % (r1, "ok" if r1 >= 0.85 else "MISSED"))

        # idle memory: fresh gateway process
        before, after, got, per = idle_memory(tmp, sink.port, idle_n)
        print("\n## Idle connections\n\n| connections (greeted) | RSS before (kB) | RSS after (kB) | kB per connection |")
        print("|---|---|---|---|\n| %d (%d) | %d | %d | %.2f |" % (idle_n, got, before, after, per))

        # TLS handshakes
        gwt = start_gateway(tmp, sink.port, tls="implicit", pki=pki)
        procs.append(gwt)
        hapt = HAProxy(tmp, sink.port, tls_pem=combined).start()
        procs.append(hapt)
        rows = []
        for rep in range(reps):
            for name, port in (("HAProxy TLS", hapt.port), ("Portcullis implicit TLS", gwt.port)):
                rate, errs = tls_handshakes(port, tls_secs)
                rows.append((name, rate, errs))
                print("# rep %d %-28s %8.1f handshakes/s (%d errors)" % (rep + 1, name, rate, errs), file=sys.stderr)
        print("\n## TLS full handshakes (20 client threads, no resumption)\n\n| Target | handshakes/s min / median |"
              " ratio of HAProxy |\n|---|---|---|")
        hmed = statistics.median([r for n, r, _ in rows if n == "HAProxy TLS"])
        for name in ("HAProxy TLS", "Portcullis implicit TLS"):
            v = [r for n, r, _ in rows if n == name]
            print("| %s | %s / %s | %.2f |" % (name, fmt(min(v)), fmt(statistics.median(v)),
                                              statistics.median(v) / hmed))
        print("\n(Python client threads share the GIL; the ratio is what holds, not the absolute rate.)")
    finally:
        for p in reversed(procs):
            p.stop()
        sink.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
