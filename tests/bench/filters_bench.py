#!/usr/bin/env python3
"""SMTP throughput and latency with the real filters, as ratios to the same gateway without filters, in one run.

Everything on 127.0.0.1: one `smtp-sink` as the upstream, a private Unbound holding the corpus
domain's SPF, DKIM and DMARC records and a DNS list, Postfix's `smtp-source` as the load, sending one
DKIM-signed 4 KB message (signed here with python3-dkim) again and again, 20 sessions.

Parts, all in the same run:
  - throughput, interleaved in each repetition: no filter; spf+dkim+dmarc+dnsbl; the same + rules;
    + clamav (a small test database: the cost of libclamav's parsers, not of a full signature set);
    all together; clamav alone (in process); clamav alone through clamd; and the peer: a private
    Postfix relaying to the same smtp-sink, without a filter and with clamav-milter + clamd on UNIX
    sockets (same database);
  - latency: one message per session, one session at a time, through gateways with one filter each
    (and Postfix with and without clamav-milter); the time from connect to the reply to the end of
    DATA; the filter's added latency is the difference of the medians and of the 99th percentiles;
  - libclamav's own cost: tests/bench/clam_rate.c (built here with cc and pkg-config libclamav)
    scans the same message with the same database N times in process; clamdscan and INSTREAM to a
    private clamd with the same database;
  - the ceiling two cores allow with clamav: cores ÷ (cores ÷ no-filter rate + 1 ÷ scan rate);
  - memory: RSS of each gateway's process tree after start and after the run; clamd's and
    clamav-milter's.

    PORTCULLIS_BIN=build/gateway/portcullis python3 tests/bench/filters_bench.py [--quick]

Output: markdown tables on stdout, per-run lines on stderr. Every process is started here and
stopped by its PID; every loop is bounded in count and time."""

import argparse
import base64
import hashlib
import os
import random
import resource
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness as h  # noqa: E402
from smtp_bench import tree_rss_kb  # noqa: E402

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
SENDER, RCPT = "bench@corpus.test", "alice@example.test"


# ----------------------------------------------------------------------------- corpus and targets

def corpus(tmp, key):
    """The DKIM-signed message: (LF file for smtp-source -F, CRLF file for the scanners, CRLF bytes)."""
    body = "".join("Line %04d of a message of about four kilobytes, for the benchmark.\r\n" % i
                   for i in range(55))
    msg = ("From: Bench <bench@corpus.test>\r\nTo: alice@example.test\r\nSubject: benchmark\r\n"
           "Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <bench@corpus.test>\r\n\r\n" + body).encode()
    tool = os.path.join(HERE, "..", "integration", "dkim_tool.py")
    signed = subprocess.run(["/usr/bin/python3", tool, "sign", key, "b", "corpus.test", "rsa-sha256"],
                            input=msg, capture_output=True, check=True).stdout
    signed = h.to_crlf(signed)
    lf = tmp.file("corpus.eml", signed.replace(b"\r\n", b"\n"))  # smtp-source -F takes LF lines
    crlf = tmp.file("corpus-crlf.eml", signed)
    return lf, crlf, signed


def start(tmp, sink_port, dns, filters, tmpdir=None, top=None):
    """A gateway with these filters in front of the sink; tmpdir: its TMPDIR (where libclamav makes
    its per-scan temporary directory; default /tmp)."""
    port = h.free_port()
    lst = h.listener_config(port, sink_port, trusted_networks=["10.255.255.0/24"],
                            accepted_domains=["example.test"],
                            limits={"message_size": "20M", "recipients": 1000, "errors": 100},
                            max_connections_per_ip=100000, filters=filters)
    cfg = h.gateway_config(tmp, lst, log={"target": "stderr", "level": "notice"},
                           resolver={"servers": [dns.server]}, **(top or {}))
    saved = os.environ.get("TMPDIR")
    if tmpdir:
        os.environ["TMPDIR"] = tmpdir       # inherited by the gateway's process only
    try:
        return h.Gateway(tmp, cfg).start()
    finally:
        if tmpdir:
            if saved is None:
                del os.environ["TMPDIR"]
            else:
                os.environ["TMPDIR"] = saved


class Clamd(h.ChildProcess):
    """A private clamd: own config, database, temp dir and UNIX socket under `directory`;
    `clamd -c CONF --foreground`, stopped by PID."""

    def __init__(self, directory, database):
        self.dir = os.path.join(str(directory), "clamd")
        self.database = database
        self.socket = os.path.join(self.dir, "clamd.sock")
        self.conf = os.path.join(self.dir, "clamd.conf")
        self.log_path = os.path.join(self.dir, "clamd.log")
        self.proc = None

    def start(self, timeout=60.0):
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        os.chmod(self.dir, 0o755)
        with open(self.conf, "w") as f:
            f.write("LocalSocket %s\nLocalSocketMode 666\nFixStaleSocket yes\nForeground yes\n"
                    "DatabaseDirectory %s\nTemporaryDirectory %s\nLogFile %s\nPidFile %s\n"
                    "MaxThreads 10\nSelfCheck 0\nHeuristicAlerts no\n"
                    % (self.socket, self.database, os.path.join(self.dir, "tmp"), self.log_path,
                       os.path.join(self.dir, "clamd.pid")))
        out = open(os.path.join(self.dir, "clamd.out"), "wb")
        self.proc = subprocess.Popen(["clamd", "-c", self.conf, "--foreground"], stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        try:
            h.wait_until(lambda: self.proc.poll() is not None or self.ping(), timeout=timeout, what="clamd")
            if self.proc.poll() is not None:
                raise RuntimeError("exited with %s" % self.proc.returncode)
        except Exception as e:
            self.stop()
            raise RuntimeError("clamd did not start (%s):\n%s" % (e, self.log_text()[-3000:]))
        return self

    def ping(self):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(2)
            s.connect(self.socket)
            s.sendall(b"zPING\0")
            ok = s.recv(64).startswith(b"PONG")
            s.close()
            return ok
        except OSError:
            return False


class ClamavMilter(h.ChildProcess):
    """A private clamav-milter talking to `clamd` over its UNIX socket, listening on its own UNIX socket;
    no header added (the gateway's clamav filter adds none to a clean message). Stopped by PID."""

    def __init__(self, directory, clamd):
        self.dir = os.path.join(str(directory), "milter")
        self.clamd = clamd
        self.socket = os.path.join(self.dir, "milter.sock")
        self.conf = os.path.join(self.dir, "clamav-milter.conf")
        self.log_path = os.path.join(self.dir, "milter.log")
        self.proc = None

    def start(self, timeout=30.0):
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        os.chmod(self.dir, 0o755)
        with open(self.conf, "w") as f:
            f.write("MilterSocket %s\nMilterSocketMode 666\nFixStaleSocket yes\nForeground yes\n"
                    "ClamdSocket unix:%s\nTemporaryDirectory %s\nLogFile %s\nPidFile %s\n"
                    "AddHeader No\nOnClean Accept\nOnInfected Reject\nOnFail Defer\nMaxFileSize 25M\n"
                    % (self.socket, self.clamd.socket, os.path.join(self.dir, "tmp"), self.log_path,
                       os.path.join(self.dir, "milter.pid")))
        out = open(os.path.join(self.dir, "milter.out"), "wb")
        self.proc = subprocess.Popen(["clamav-milter", "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        try:
            h.wait_until(lambda: self.proc.poll() is not None or os.path.exists(self.socket),
                         timeout=timeout, what="clamav-milter socket")
            if self.proc.poll() is not None:
                raise RuntimeError("exited with %s" % self.proc.returncode)
        except Exception as e:
            self.stop()
            with open(os.path.join(self.dir, "milter.out"), errors="replace") as f:
                raise RuntimeError("clamav-milter did not start (%s):\n%s%s" % (e, f.read()[-2000:],
                                                                                 self.log_text()[-2000:]))
        return self


class PostfixRelay(h.Postfix):
    """The harness's private Postfix, relaying example.test to the smtp-sink instead of delivering it:
    `port` without a milter, `milter_port` with `smtpd_milters = unix:MILTER` (when given)."""

    def __init__(self, directory, sink_port, milter_socket=None):
        extra = "relay_domains = example.test\nmilter_protocol = 6\nmilter_default_action = tempfail\n"
        super().__init__(directory, message_size_limit=20000000, extra_main=extra)
        self.sink_port = sink_port
        self.milter_socket = milter_socket
        self.milter_port = self.proxy_port

    def _write_config(self):
        super()._write_config()
        path = os.path.join(self.conf, "main.cf")
        with open(path) as f:
            text = f.read()
        for old, new in (("virtual_mailbox_domains = example.test\n", "virtual_mailbox_domains =\n"),
                         ("relayhost =\n", "relayhost = [127.0.0.1]:%d\n" % self.sink_port)):
            if old not in text:
                raise RuntimeError("main.cf.in changed: no %r" % old)
            text = text.replace(old, new)
        with open(path, "w") as f:
            f.write(text)
        path = os.path.join(self.conf, "master.cf")
        with open(path) as f:
            text = f.read()
        over = "-o smtpd_milters=unix:%s" % self.milter_socket if self.milter_socket else ""
        text = text.replace("smtpd -o smtpd_upstream_proxy_protocol=haproxy", "smtpd " + over)
        with open(path, "w") as f:
            f.write(text)

    def queued(self):
        n = 0
        for d in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _root, _dirs, files in os.walk(os.path.join(self.queue, d)):
                n += len(files)
        return n

    def drain(self, timeout=300.0, interval=0.1):
        """Wait (bounded) until the queue is empty; True when it is."""
        try:
            h.wait_until(lambda: self.queued() == 0, timeout=timeout, interval=interval, what="empty queue")
            return True
        except TimeoutError:
            return False


# ----------------------------------------------------------------------------- load

def load(port, messages, path):
    args = ["smtp-source", "-s", "20", "-m", str(messages), "-F", path, "-f", SENDER,
            "-t", RCPT, "-M", "client.test", "127.0.0.1:%d" % port]
    t0 = time.monotonic()
    r = subprocess.run(args, capture_output=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError("smtp-source: %s" % r.stderr.decode(errors="replace")[-300:])
    return messages / (time.monotonic() - t0)


class LineReader:
    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def reply(self):
        """One (possibly multi-line) SMTP reply -> its code."""
        for _ in range(1000):
            while b"\r\n" not in self.buf:
                data = self.sock.recv(65536)
                if not data:
                    raise RuntimeError("connection closed")
                self.buf += data
            line, self.buf = self.buf.split(b"\r\n", 1)
            if line[3:4] != b"-":
                return int(line[:3])
        raise RuntimeError("reply too long")


def one_session(port, payload, timeout=30.0, final=250):
    """One message in one session: connect, EHLO, MAIL, RCPT, DATA, message, QUIT; the reply to the
    end of data must be `final` (a code, or its first digit when < 10).
    Returns (seconds from connect to the reply to the end of data, seconds from MAIL to that reply)."""
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        r = LineReader(s)
        steps = [(None, 220), (b"EHLO client.test\r\n", 250), (b"MAIL FROM:<%s>\r\n" % SENDER.encode(), 250),
                 (b"RCPT TO:<%s>\r\n" % RCPT.encode(), 250), (b"DATA\r\n", 354), (payload, final)]
        t1 = t0
        for cmd, want in steps:
            if cmd is not None:
                if cmd.startswith(b"MAIL"):
                    t1 = time.perf_counter()
                s.sendall(cmd)
            code = r.reply()
            if code != want and not (want < 10 and code // 100 == want):
                raise RuntimeError("port %d: %r answered %d" % (port, (cmd or b"greeting")[:20], code))
        t2 = time.perf_counter()
        s.sendall(b"QUIT\r\n")
        try:
            r.reply()
        except (OSError, RuntimeError):
            pass
        return t2 - t0, t2 - t1
    finally:
        s.close()


def preflight(tmp, dns, filters, payload):
    """One message through a gateway with every filter, to a dumping smtp-sink: the filters must have
    passed it for the right reasons (spf, dkim and dmarc pass in its Authentication-Results, clamav
    clean), or the figures would measure a shortcut. Returns the header."""
    dump = h.SmtpSink(tmp.sub("preflight"), dump=True).start()
    gw = start(tmp, dump.port, dns, filters)
    try:
        one_session(gw.port, payload)
        got = dump.messages(expect=1, timeout=10)
    finally:
        gw.stop()
        dump.stop()
    if not got:
        raise RuntimeError("preflight: nothing reached the sink")
    msg = got[-1]["message"]
    ar = b" ".join(h.header_values(msg, "Authentication-Results")).decode(errors="replace")
    for want in ("spf=pass", "dkim=pass", "dmarc=pass"):
        if want not in ar:
            raise RuntimeError("preflight: no %s in Authentication-Results: %r" % (want, ar))
    if b"CLAMAV" in h.header_block(msg):
        raise RuntimeError("preflight: clamav did not find the message clean")
    return ar


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


# ----------------------------------------------------------------------------- libclamav and clamd

def build_clam_rate(tmp):
    out = os.path.join(tmp.path, "clam_rate")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libclamav"], capture_output=True,
                           check=True, text=True).stdout.split()
    subprocess.run(["cc", "-O2", "-o", out, os.path.join(HERE, "clam_rate.c")] + flags + ["-lpthread"],
                   check=True, capture_output=True)
    return out


def clam_rate(binary, db, path, scans, threads=1, tmpdir=None):
    env = dict(os.environ)
    env.pop("TMPDIR", None)
    if tmpdir:
        env["TMPDIR"] = tmpdir
    r = subprocess.run([binary, db, path, str(scans), str(threads), "30"], capture_output=True, text=True,
                       timeout=300, env=env)
    if r.returncode != 0:
        raise RuntimeError("clam_rate: %s %s" % (r.stdout, r.stderr))
    return dict(kv.split("=", 1) for kv in r.stdout.split())


def instream(sock_path, data, scans, max_s=60.0):
    """INSTREAM scans one at a time in one IDSESSION over clamd's UNIX socket (as the filter's clamd
    mode does). Returns (scans per second, the last answer)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(sock_path)
    s.sendall(b"zIDSESSION\0")
    req = b"zINSTREAM\0" + struct.pack("!I", len(data)) + data + struct.pack("!I", 0)
    answer, done = b"", 0
    t0 = time.monotonic()
    try:
        for _ in range(scans):
            if time.monotonic() - t0 > max_s:
                break
            s.sendall(req)
            buf = b""
            for _ in range(1000):
                buf += s.recv(4096)
                if buf.endswith(b"\0"):
                    break
            answer = buf
            done += 1
        dt = time.monotonic() - t0
        s.sendall(b"zEND\0")
    finally:
        s.close()
    return done / dt, answer.rstrip(b"\0").decode(errors="replace")


def clamdscan(clamd, files_dir, count, stream):
    """clamdscan of `count` copies of the message: the directory (clamd opens the files, CONTSCAN) or
    each file sent with --stream (INSTREAM, one at a time). Returns files per second."""
    args = ["clamdscan", "--config-file=%s" % clamd.conf, "--no-summary"]
    if stream:
        args += ["--stream"] + [os.path.join(files_dir, n) for n in sorted(os.listdir(files_dir))]
    else:
        args.append(files_dir)
    t0 = time.monotonic()
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    dt = time.monotonic() - t0
    if r.returncode != 0 or "FOUND" in r.stdout or ": OK" not in r.stdout:
        raise RuntimeError("clamdscan (%d): %s %s" % (r.returncode, r.stdout[-500:], r.stderr[-500:]))
    return count / dt


# ----------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 repetition, few messages")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--messages", type=int, default=None, help="messages per smtp-source run")
    ap.add_argument("--latency", type=int, default=None, help="messages per latency target (total)")
    ap.add_argument("--no-postfix", action="store_true", help="skip the Postfix + clamav-milter peer")
    args = ap.parse_args()
    for tool in ("smtp-source", "smtp-sink", "unbound", "clamd", "clamdscan", "cc", "pkg-config"):
        if not h.have_tool(tool):
            sys.exit("missing tool: %s" % tool)
    postfix = not args.no_postfix
    if postfix and not (h.have_tool("clamav-milter") and h.have_tool("postfix")):
        sys.exit("missing tool: clamav-milter or postfix (or --no-postfix)")
    h.portcullis_bin()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 16384)), hard))
    reps = args.reps or (1 if args.quick else 5)
    msgs = args.messages or (300 if args.quick else 5000)
    lat_n = args.latency or (60 if args.quick else 1000)
    scans = 2000 if args.quick else 5000
    cores = os.cpu_count() or 2

    tmp = h.TempDir(prefix="portcullis-fbench-")
    key = os.path.join(tmp.sub("keys"), "b.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key],
                   check=True, capture_output=True)
    pub = base64.b64encode(subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"],
                                          check=True, capture_output=True).stdout).decode()
    rec = "v=DKIM1; k=rsa; p=" + pub
    db = tmp.sub("clamdb")
    tmp.file("clamdb/eicar.hdb", "%s:%d:Eicar\n" % (hashlib.md5(EICAR).hexdigest(), len(EICAR)))
    tmp.file("clamdb/eicar.ndb", "Eicar-Hex:0:*:%s\n" % EICAR[:40].hex())
    path, crlf_path, signed = corpus(tmp, key)
    payload = h.dot_stuff(signed) + b".\r\n"
    clam_bin = build_clam_rate(tmp)

    auth = [{"name": "spf"}, {"name": "dkim"}, {"name": "dmarc"},
            {"name": "dnsbl", "options": {"zones": [{"zone": "bl.test", "weight": 3}]}}]
    rules = [{"name": "rules", "options": {"rules": [
        {"symbol": "R%d" % i, "score": 1, "pattern": "(?i)viagra%d|casino%d" % (i, i), "body": True}
        for i in range(20)] + [{"symbol": "S", "score": 1, "pattern": "(?i)lottery", "header": "Subject"}]}}]
    clam = [{"name": "clamav", "timeout": "2m", "options": {"database": db}}]

    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    procs = []
    gws = {}
    shm_dirs = []
    try:
        dns = h.Unbound(tmp, records=[
            'corpus.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"',
            '_dmarc.corpus.test. 300 IN TXT "v=DMARC1; p=reject"',
            "b._domainkey.corpus.test. 300 IN TXT " + " ".join('"%s"' % rec[i:i + 200]
                                                                for i in range(0, len(rec), 200)),
            "2.0.0.127.bl.test. 300 IN A 127.0.0.2"]).start()
        procs.append(dns)
        sink = h.SmtpSink(tmp, dump=False, backlog=4096).start()
        procs.append(sink)
        clamd = Clamd(tmp, db).start()
        procs.append(clamd)
        clamd_filter = [{"name": "clamav", "timeout": "2m", "options": {"clamd": clamd.socket}}]
        pf = pf_shm = milter = None
        if postfix:
            milter = ClamavMilter(tmp, clamd).start()
            procs.append(milter)
            pf = PostfixRelay(tmp, sink.port, milter.socket).start()
            procs.append(pf)
            if shm:                    # the same Postfix with its queue on tmpfs: no fsync cost
                shm_dirs.append(tempfile.mkdtemp(prefix="portcullis-fbench-", dir=shm))
                os.chmod(shm_dirs[-1], 0o755)
                pf_shm = PostfixRelay(shm_dirs[-1], sink.port, milter.socket).start()
                procs.append(pf_shm)
        postfixes = [(pf, "Postfix relay, no filter", "Postfix + clamav-milter + clamd")]
        if pf_shm:
            postfixes.append((pf_shm, "Postfix (queue on tmpfs), no filter",
                              "Postfix (queue on tmpfs) + clamav-milter + clamd"))
        if not pf:
            postfixes = []
        pf_of = {}
        for p, plain, with_milter in postfixes:
            pf_of[plain], pf_of[with_milter] = (p, p.port), (p, p.milter_port)

        ar = preflight(tmp, dns, auth + rules + clam, payload)
        print("# preflight: Authentication-Results: %s" % ar, file=sys.stderr)
        virus = h.dot_stuff(b"From: <bench@corpus.test>\r\nTo: <alice@example.test>\r\nSubject: eicar\r\n\r\n"
                            + EICAR + b"\r\n") + b".\r\n"
        configs = [("no filter", []), ("spf+dkim+dmarc+dnsbl", auth), ("+ rules", auth + rules),
                   ("+ clamav (test database)", auth + clam), ("all together", auth + rules + clam),
                   ("clamav alone", clam), ("clamav alone, through clamd", clamd_filter)]
        configs.append(("clamav alone, threadpool_size 16", clam))
        if shm:
            configs.append(("clamav alone, TMPDIR on tmpfs", clam))
        lat_only = [("spf", [auth[0]]), ("dkim", [auth[1]]), ("spf+dkim", auth[:2]),
                    ("spf+dkim+dmarc", auth[:3]), ("dnsbl", [auth[3]]), ("rules", rules)]
        for name, filters in configs + lat_only:
            gws[name] = start(tmp, sink.port, dns, filters, tmpdir=shm if "tmpfs" in name else None,
                              top={"threadpool_size": 16} if "threadpool_size" in name else None)
            procs.append(gws[name])
        # every scanner in the comparison really scans: the test virus is refused by each
        for n in ("clamav alone", "clamav alone, through clamd"):
            one_session(gws[n].port, virus, final=5)
        for p, _a, with_milter in postfixes:
            one_session(pf_of[with_milter][1], virus, final=5)
            one_session(pf_of[with_milter][1], payload)
        print("# preflight: the test virus refused by every clamav target", file=sys.stderr)
        time.sleep(0.5)
        rss0 = {name: tree_rss_kb(gw.proc.pid) for name, gw in gws.items()}

        # -- throughput, interleaved
        targets = [(name, gws[name].port) for name, _ in configs]
        targets += [(name, pf_of[name][1]) for _p, a, b in postfixes for name in (a, b)]
        results = {name: [] for name, _ in targets}
        drained = {name: [] for name, _ in targets}
        libs, libs_shm = [], []
        for rep in range(reps):
            k = rep * len(targets) // max(1, reps)      # each repetition starts elsewhere in the list
            for name, port in targets[k:] + targets[:k]:
                t0 = time.monotonic()
                rate = load(port, msgs, path)
                results[name].append(rate)
                extra = ""
                if name in pf_of:
                    p = pf_of[name][0]
                    if not p.drain():
                        raise RuntimeError("Postfix's queue did not drain (%d left)" % p.queued())
                    drained[name].append(msgs / (time.monotonic() - t0))
                    extra = "  (%8.1f msg/s until the queue was empty)" % drained[name][-1]
                print("# rep %d %-32s %8.1f msg/s%s" % (rep + 1, name, rate, extra), file=sys.stderr)
            # libclamav's own cost, in the same repetition: the same message and database
            libs.append(clam_rate(clam_bin, db, crlf_path, scans, 1))
            print("# rep %d libclamav in process: %s" % (rep + 1, libs[-1]), file=sys.stderr)
            if shm:
                libs_shm.append(clam_rate(clam_bin, db, crlf_path, scans, 1, tmpdir=shm))
                print("# rep %d libclamav in process, TMPDIR=%s: %s" % (rep + 1, shm, libs_shm[-1]), file=sys.stderr)
        rss1 = {name: tree_rss_kb(gw.proc.pid) for name, gw in gws.items()}

        # -- libclamav and clamd, the same message and database
        lib2 = clam_rate(clam_bin, db, crlf_path, scans, cores)
        print("# libclamav in process, %d threads: %s" % (cores, lib2), file=sys.stderr)

        def median_run(runs):          # the run with the median rate (its percentiles with it)
            return sorted(runs, key=lambda r: float(r["rate"]))[len(runs) // 2] if runs else None
        lib1, lib_shm = median_run(libs), median_run(libs_shm)
        cpu_rates = [float(r["scans"]) / float(r["cpu_s"]) for r in libs if float(r["cpu_s"]) > 0]
        ins_rate, ins_answer = instream(clamd.socket, signed, scans // 4)
        print("# clamd INSTREAM one at a time: %.1f scans/s (%s)" % (ins_rate, ins_answer), file=sys.stderr)
        nfiles = 200 if args.quick else 1000
        fdir = tmp.sub("scanfiles")
        for i in range(nfiles):
            shutil.copyfile(crlf_path, os.path.join(fdir, "m%05d.eml" % i))
        cds_rate = clamdscan(clamd, fdir, nfiles, stream=False)
        cds_stream = clamdscan(clamd, fdir, nfiles, stream=True)
        print("# clamdscan: %.1f files/s, --stream %.1f files/s" % (cds_rate, cds_stream), file=sys.stderr)
        clamd_rss = tree_rss_kb(clamd.proc.pid)
        milter_rss = tree_rss_kb(milter.proc.pid) if milter else 0

        # -- latency: one message per session, one session at a time, interleaved in batches
        lat_targets = [("no filter", gws["no filter"].port)] + \
            [(n, gws[n].port) for n, _ in lat_only] + \
            [(n, gws[n].port) for n in ("clamav alone", "clamav alone, through clamd",
                                        "clamav alone, TMPDIR on tmpfs", "all together") if n in gws]
        lat_targets += [(name, pf_of[name][1]) for _p, a, b in postfixes for name in (a, b)]
        lat = {n: [] for n, _ in lat_targets}
        txn = {n: [] for n, _ in lat_targets}
        deadline = time.monotonic() + (120 if args.quick else 900)
        for n, port in lat_targets:            # warm-up, not counted
            for _ in range(5):
                one_session(port, payload)
        order = random.Random(1)
        for i in range(lat_n):  # rounds: one message to each target, in a new random order each round
            if time.monotonic() > deadline:
                print("# latency: time limit reached", file=sys.stderr)
                break
            for n, port in order.sample(lat_targets, len(lat_targets)):
                a, b = one_session(port, payload)
                lat[n].append(a)
                txn[n].append(b)
                if n in pf_of:      # its delivery to the sink must not overlap the next target's session
                    pf_of[n][0].drain(timeout=30, interval=0.002)
        for n, _ in lat_targets:
            print("# latency %-32s n=%d median %.2f ms p99 %.2f ms" % (n, len(lat[n]), 1e3 * statistics.median(lat[n]),
                                                                      1e3 * pct(lat[n], 0.99)), file=sys.stderr)

        # -- report
        base = statistics.median(results["no filter"])
        print("\n## SMTP with the filters (4 KB DKIM-signed, 20 sessions; %d × %d messages; msg/s median; "
              "ratio to no filter)\n" % (reps, msgs))
        print("Ratio = median ÷ median of no filter; per repetition: the range of target ÷ no filter within "
              "each repetition.\n")
        print("| Target | msg/s (min / median) | ÷ no filter | per repetition | RSS after start / after the run (kB) |")
        print("|---|---|---|---|---|")
        for name, _ in targets:
            v = results[name]
            m = statistics.median(v)
            per = [a / b for a, b in zip(v, results["no filter"])]
            mem = "%d / %d" % (rss0[name], rss1[name]) if name in rss0 else ""
            if name in drained and drained[name]:
                mem = "(accepted; %.0f msg/s until its queue was empty)" % statistics.median(drained[name])
            print("| %s | %.0f / %.0f | %.2f | %.2f–%.2f | %s |" % (name, min(v), m, m / base, min(per), max(per), mem))
        print("\nclamd (test database): %d kB; clamav-milter: %d kB" % (clamd_rss, milter_rss))

        s1 = float(lib1["rate"])
        s1_cpu = statistics.median(cpu_rates) if cpu_rates else s1
        print("\n## libclamav's own cost (the same message, the same database; %d scans per repetition, "
              "the median of %d repetitions)\n" % (int(lib1["scans"]), len(libs)))
        print("In process, wall per repetition: %s scans/s; TMPDIR on tmpfs: %s scans/s\n"
              % (", ".join("%.0f" % float(r["rate"]) for r in libs),
                 ", ".join("%.0f" % float(r["rate"]) for r in libs_shm)))
        print("| Scanner | scans/s | per scan |\n|---|---|---|")
        print("| libclamav in process, 1 thread (wall) | %.0f | %.0f µs (p50 %s µs, p99 %s µs) |"
              % (s1, 1e6 / s1, lib1["p50_us"], lib1["p99_us"]))
        print("| libclamav in process, 1 thread (CPU time) | %.0f | %.0f µs |" % (s1_cpu, 1e6 / s1_cpu))
        print("| libclamav in process, %d threads (wall) | %.0f | — |" % (cores, float(lib2["rate"])))
        s_shm = float(lib_shm["rate"]) if lib_shm else 0
        if lib_shm:
            print("| libclamav in process, 1 thread, TMPDIR on tmpfs (wall) | %.0f | %.0f µs (p50 %s µs, p99 %s µs) |"
                  % (s_shm, 1e6 / s_shm, lib_shm["p50_us"], lib_shm["p99_us"]))
        print("| clamd INSTREAM, one at a time, one IDSESSION (UNIX socket) | %.0f | %.0f µs |"
              % (ins_rate, 1e6 / ins_rate))
        print("| clamdscan DIR (%d files, clamd reads them) | %.0f | %.0f µs |" % (nfiles, cds_rate, 1e6 / cds_rate))
        print("| clamdscan --stream DIR | %.0f | %.0f µs |" % (cds_stream, 1e6 / cds_stream))

        def ceiling(rate0, scan_rate):
            return cores / (cores / rate0 + 1.0 / scan_rate)

        r_auth = statistics.median(results["spf+dkim+dmarc+dnsbl"])
        r_clam = statistics.median(results["clamav alone"])
        r_authclam = statistics.median(results["+ clamav (test database)"])
        r_clamd = statistics.median(results["clamav alone, through clamd"])
        c1, c1_cpu = ceiling(base, s1), ceiling(base, s1_cpu)
        c2, c2_cpu = ceiling(r_auth, s1), ceiling(r_auth, s1_cpu)
        print("\n## The ceiling with clamav on %d cores: cores ÷ (cores ÷ rate without clamav + 1 ÷ scan rate)\n"
              % cores)
        print("| Gateway | without clamav | ceiling (wall scan rate / CPU scan rate) | measured | ÷ ceiling |")
        print("|---|---|---|---|---|")
        print("| clamav alone | %.0f (no filter) | %.0f / %.0f | %.0f | %.2f / %.2f |"
              % (base, c1, c1_cpu, r_clam, r_clam / c1, r_clam / c1_cpu))
        print("| clamav alone, through clamd | %.0f (no filter) | %.0f / %.0f | %.0f | %.2f / %.2f |"
              % (base, c1, c1_cpu, r_clamd, r_clamd / c1, r_clamd / c1_cpu))
        print("| spf+dkim+dmarc+dnsbl + clamav | %.0f (spf+dkim+dmarc+dnsbl) | %.0f / %.0f | %.0f | %.2f / %.2f |"
              % (r_auth, c2, c2_cpu, r_authclam, r_authclam / c2, r_authclam / c2_cpu))
        if lib_shm:
            r_shm = statistics.median(results["clamav alone, TMPDIR on tmpfs"])
            c3 = ceiling(base, s_shm)
            print("| clamav alone, TMPDIR on tmpfs | %.0f (no filter) | %.0f (tmpfs scan rate) | %.0f | %.2f |"
                  % (base, c3, r_shm, r_shm / c3))

        b_lat, b_txn = lat["no filter"], txn["no filter"]
        print("\n## Latency each filter adds (one message per session, one session at a time; %d messages "
              "each; ms)\n" % len(b_lat))
        print("Session = connect to the reply to the end of DATA; transaction = MAIL to that reply. "
              "Added = difference of the medians and of the 99th percentiles against the base.\n")
        print("| Target | base | session median / p99 | added median / p99 | transaction added median / p99 |")
        print("|---|---|---|---|---|")
        bases = {"spf+dkim+dmarc": "spf+dkim"}
        for _p, a, b in postfixes:
            bases[a], bases[b] = a, a
        for n, _ in lat_targets:
            bn = bases.get(n, "no filter")
            bl, bt = lat[bn], txn[bn]
            label = "dmarc (over spf+dkim)" if n == "spf+dkim+dmarc" else n
            if bn == n:
                print("| %s | — | %.2f / %.2f | — | — |" % (n, 1e3 * statistics.median(lat[n]), 1e3 * pct(lat[n], .99)))
                continue
            if n == "no filter":
                print("| no filter | — | %.2f / %.2f | — | — |" % (1e3 * statistics.median(b_lat), 1e3 * pct(b_lat, .99)))
                continue
            print("| %s | %s | %.2f / %.2f | %+.2f / %+.2f | %+.2f / %+.2f |" % (
                label, bn, 1e3 * statistics.median(lat[n]), 1e3 * pct(lat[n], .99),
                1e3 * (statistics.median(lat[n]) - statistics.median(bl)), 1e3 * (pct(lat[n], .99) - pct(bl, .99)),
                1e3 * (statistics.median(txn[n]) - statistics.median(bt)), 1e3 * (pct(txn[n], .99) - pct(bt, .99))))

        print("\n## Goals\n\n| Goal | measured | target | |\n|---|---|---|---|")

        def goal(text, value, target, fmt="%.2f"):
            print("| %s | %s | ≥ %s | %s |" % (text, fmt % value, fmt % target, "met" if value >= target else "missed"))

        goal("spf+dkim+dmarc+dnsbl ÷ no filter", r_auth / base, 0.8)
        goal("clamav alone ÷ ceiling (wall scan rate)", r_clam / c1, 0.8)
        goal("clamav alone ÷ ceiling (CPU scan rate)", r_clam / c1_cpu, 0.8)
        if lib_shm:
            goal("clamav alone, TMPDIR on tmpfs ÷ ceiling (tmpfs scan rate)", r_shm / c3, 0.8)
        for _p, _a, b in postfixes:
            peer = statistics.median(results[b])
            goal("clamav alone ÷ %s (accepted msg/s)" % b, r_clam / peer, 2.0)
            goal("clamav alone, through clamd ÷ %s" % b, r_clamd / peer, 2.0)
            goal("spf+dkim+dmarc+dnsbl + clamav ÷ %s" % b, r_authclam / peer, 2.0)
        print("\nmemory with ClamAV loaded (clamav alone): %d kB after start, %d kB after the run; "
              "no filter: %d / %d kB" % (rss0["clamav alone"], rss1["clamav alone"], rss0["no filter"],
                                        rss1["no filter"]))
    finally:
        for p in reversed(procs):
            p.stop()
        tmp.cleanup()
        for d in shm_dirs:
            if not os.environ.get("PORTCULLIS_KEEP_TMP"):
                shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
