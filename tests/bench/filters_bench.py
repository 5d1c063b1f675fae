#!/usr/bin/env python3
"""SMTP throughput with the real filters, as ratios to the same gateway without filters, in one run.

Everything on 127.0.0.1: one `smtp-sink` as the upstream, a private Unbound holding the corpus
domain's SPF, DKIM and DMARC records and a DNS list, Postfix's `smtp-source` as the load, sending one
DKIM-signed 4 KB message (signed here with python3-dkim) again and again, 20 sessions. Targets,
interleaved in each repetition: no filter; spf+dkim+dmarc+dnsbl; the same + rules; + clamav (a small
test database: the cost of libclamav's parsers, not of a full signature set); all together. Also the
gateway's memory (RSS of its process tree) with and without the clamav filter loaded.

    PORTCULLIS_BIN=build/gateway/portcullis python3 tests/bench/filters_bench.py [--quick]

Output: a markdown table on stdout, per-run lines on stderr. Every process is started here and
stopped by its PID."""

import argparse
import base64
import hashlib
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness as h  # noqa: E402
from smtp_bench import tree_rss_kb  # noqa: E402

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def corpus(tmp, key):
    body = "".join("Line %04d of a message of about four kilobytes, for the benchmark.\r\n" % i
                   for i in range(55))
    msg = ("From: Bench <bench@corpus.test>\r\nTo: alice@example.test\r\nSubject: benchmark\r\n"
           "Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <bench@corpus.test>\r\n\r\n" + body).encode()
    tool = os.path.join(HERE, "..", "integration", "dkim_tool.py")
    signed = subprocess.run(["/usr/bin/python3", tool, "sign", key, "b", "corpus.test", "rsa-sha256"],
                            input=msg, capture_output=True, check=True).stdout
    return tmp.file("corpus.eml", signed.replace(b"\r\n", b"\n"))  # smtp-source -F takes LF lines


def start(tmp, sink_port, dns, filters):
    port = h.free_port()
    lst = h.listener_config(port, sink_port, trusted_networks=["10.255.255.0/24"],
                            accepted_domains=["example.test"],
                            limits={"message_size": "20M", "recipients": 1000, "errors": 100},
                            max_connections_per_ip=100000, filters=filters)
    cfg = h.gateway_config(tmp, lst, log={"target": "stderr", "level": "notice"},
                           resolver={"servers": [dns.server]})
    return h.Gateway(tmp, cfg).start()


def load(port, messages, path):
    args = ["smtp-source", "-s", "20", "-m", str(messages), "-F", path, "-f", "bench@corpus.test",
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
    reps, msgs = (1, 300) if args.quick else (3, 3000)
    tmp = h.TempDir(prefix="portcullis-fbench-")
    key = os.path.join(tmp.sub("keys"), "b.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key],
                   check=True, capture_output=True)
    pub = base64.b64encode(subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"],
                                          check=True, capture_output=True).stdout).decode()
    rec = "v=DKIM1; k=rsa; p=" + pub
    dns = h.Unbound(tmp, records=[
        'corpus.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"',
        '_dmarc.corpus.test. 300 IN TXT "v=DMARC1; p=reject"',
        "b._domainkey.corpus.test. 300 IN TXT " + " ".join('"%s"' % rec[i:i + 200] for i in range(0, len(rec), 200)),
        "2.0.0.127.bl.test. 300 IN A 127.0.0.2"]).start()
    db = tmp.sub("clamdb")
    tmp.file("clamdb/eicar.hdb", "%s:%d:Eicar\n" % (hashlib.md5(EICAR).hexdigest(), len(EICAR)))
    tmp.file("clamdb/eicar.ndb", "Eicar-Hex:0:*:%s\n" % EICAR[:40].hex())
    path = corpus(tmp, key)
    auth = [{"name": "spf"}, {"name": "dkim"}, {"name": "dmarc"},
            {"name": "dnsbl", "options": {"zones": [{"zone": "bl.test", "weight": 3}]}}]
    rules = [{"name": "rules", "options": {"rules": [
        {"symbol": "R%d" % i, "score": 1, "pattern": "(?i)viagra%d|casino%d" % (i, i), "body": True}
        for i in range(20)] + [{"symbol": "S", "score": 1, "pattern": "(?i)lottery", "header": "Subject"}]}}]
    clam = [{"name": "clamav", "timeout": "2m", "options": {"database": db}}]
    configs = [("no filter", []), ("spf+dkim+dmarc+dnsbl", auth), ("+ rules", auth + rules),
               ("+ clamav (test database)", auth + clam), ("all together", auth + rules + clam)]
    sink = h.SmtpSink(tmp, dump=False, backlog=4096).start()
    gws = []
    try:
        for name, filters in configs:
            gws.append((name, start(tmp, sink.port, dns, filters)))
        rss = {name: tree_rss_kb(gw.proc.pid) for name, gw in gws}
        results = {name: [] for name, _ in configs}
        for rep in range(reps):
            for name, gw in gws:
                rate = load(gw.port, msgs, path)
                results[name].append(rate)
                print("# rep %d %-26s %8.1f msg/s" % (rep + 1, name, rate), file=sys.stderr)
        base = statistics.median(results["no filter"])
        print("\n## SMTP with the filters (4 KB DKIM-signed, 20 sessions; msg/s median; ratio to no filter)\n")
        print("| Filters | msg/s | ratio | gateway RSS after start (kB) |\n|---|---|---|---|")
        for name, _ in configs:
            m = statistics.median(results[name])
            print("| %s | %.0f | %.2f | %d |" % (name, m, m / base, rss[name]))
        r = statistics.median(results["spf+dkim+dmarc+dnsbl"]) / base
        print("\n| Goal | measured | target |\n|---|---|---|\n| spf+dkim+dmarc+dnsbl ÷ no filter | %.2f | ≥ 0.8 |" % r)
    finally:
        for _, gw in gws:
            gw.stop()
        sink.stop()
        dns.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
