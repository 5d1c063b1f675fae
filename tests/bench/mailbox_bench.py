#!/usr/bin/env python3
"""POP3/IMAP benchmark for Portcullis (NOT a test; not in CTest). Method of /work/shared/BENCHMARKS.md.

Job: measure, in one run on this machine, the time of one mailbox cycle -- connect, login, fetch all
1,000 messages of ~4 KB, logout -- through four targets in front of the same private Dovecot:
direct, HAProxy TCP passthrough, Portcullis with no filter, Portcullis with the testmark filter
plugin (retrieve hook: every message spooled, scanned and tagged). Both protocols:
  IMAP: LOGIN, SELECT INBOX, `FETCH 1:* BODY.PEEK[]` in one command (the whole response is read,
        literal-aware), LOGOUT;
  POP3: USER/PASS, `RETR 1` .. `RETR 1000` one by one, NOT pipelined (each answer read to its "."
        line before the next command), QUIT; and a second POP3 table with the 1,000 RETR commands
        pipelined (sent in one write, answers read as they come; --no-pipeline skips it).
The same over TLS: Dovecot's own imaps/pop3s, HAProxy `bind ... ssl crt` in front of plaintext
Dovecot, Portcullis implicit-TLS listeners with a plaintext upstream (one full TLS handshake per
cycle for every target). Three repetitions interleaved across targets (each repetition = --cycles
cycles per target), min and median seconds per cycle, ratio = median / median of direct.
Then the gateway's resident memory per idle IMAP connection over TLS (logged in, INBOX selected, in
IDLE; 2,000 connections, a fresh gateway, sum of VmRSS before/after). Prints markdown tables.

State owned: a temp dir, one Dovecot, HAProxy and portcullis child processes, all stopped by the PID
recorded at start. Every loop is bounded. Everything on 127.0.0.1.
Usage: PORTCULLIS_BIN=build/gateway/portcullis python3 tests/bench/mailbox_bench.py [--quick]
"""

import argparse
import os
import re
import resource
import socket
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import smtp_bench as sb  # noqa: E402  (HAProxy, tree_rss_kb; puts tests/integration on sys.path)
import harness as h  # noqa: E402

USER = "alice"
PASSWORD = h.Dovecot.users()[USER]
PLUGIN_DEFAULT = os.path.join(h.REPO, "build", "tests", "testmark.so")
FILTER_HEADER = b"X-Test-Filter: passed\r\n"          # what testmark adds to every clean message


# ----------------------------------------------------------------------------- mailbox + Dovecot

def make_messages(n, size=4096):
    """n distinct text messages of about `size` bytes (CRLF), a few body lines starting with '.'."""
    out = []
    for i in range(n):
        head = ("From: Sender %d <sender%d@client.test>\r\nTo: alice@example.test\r\n"
                "Subject: benchmark message %d\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
                "Message-ID: <bench-%d@client.test>\r\nMIME-Version: 1.0\r\n"
                "Content-Type: text/plain; charset=us-ascii\r\n\r\n" % (i, i, i, i))
        body, k = [], 0
        while len(head) + sum(len(x) for x in body) < size - 80:
            lead = "." if k % 17 == 16 else ""
            body.append(lead + ("line %04d of message %04d " % (k, i)).ljust(74, "x") + "\r\n")
            k += 1
        out.append((head + "".join(body)).encode())
    return out


def dovecot_conf(tmp, ports, pki):
    """extra_conf for h.Dovecot(protocols="imap pop3"): plaintext and TLS listeners for both
    protocols, limits raised for thousands of sessions of one user from 127.0.0.1, login
    processes in high-performance mode. Written to a file; extra_conf is one `!include` line."""
    text = (
        "mail_location = maildir:~/Maildir\n"
        "ssl = yes\nssl_cert = <%(cert)s\nssl_key = <%(key)s\n"
        "pop3_uidl_format = %%08Xu%%08Xv\n"
        "pop3_no_flag_updates = yes\n"                 # the mailbox stays the same from cycle to cycle
        "default_process_limit = 5000\n"
        "default_client_limit = 20000\n"
        "protocol imap {\n  mail_max_userip_connections = 5000\n}\n"
        "protocol pop3 {\n  mail_max_userip_connections = 5000\n}\n"
        "service imap-login {\n"
        "  inet_listener imap {\n    address = 127.0.0.1\n    port = %(imap)d\n  }\n"
        "  inet_listener imaps {\n    address = 127.0.0.1\n    port = %(imaps)d\n    ssl = yes\n  }\n"
        "  service_count = 0\n  process_min_avail = 2\n"
        "}\n"
        "service pop3-login {\n"
        "  inet_listener pop3 {\n    address = 127.0.0.1\n    port = %(pop3)d\n  }\n"
        "  inet_listener pop3s {\n    address = 127.0.0.1\n    port = %(pop3s)d\n    ssl = yes\n  }\n"
        "  service_count = 0\n  process_min_avail = 2\n"
        "}\n"
        "service imap {\n  process_limit = 5000\n}\n"
        "service pop3 {\n  process_limit = 5000\n}\n"
    ) % dict(ports, cert=pki["cert"], key=pki["key"])
    path = tmp.file("dovecot-bench.conf", text)
    return "!include %s" % path


# ----------------------------------------------------------------------------- clients

def _nodelay(sock):
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


_LITERAL = re.compile(rb"\{(\d+)\+?\}$")


def imap_read_tagged(c, tag, timeout=120.0):
    """Read an h.ImapClient's stream up to the tagged response of `tag` without copying it line by
    line (the harness reader slices its buffer per line, which costs as much as the server on a
    4 MB FETCH). Literal-aware: literal bytes are skipped by length. Returns (tagged line, number
    of literals, literal bytes). Leaves the bytes after the tagged line in c.buf."""
    buf = bytearray(c.buf)
    c.buf = b""
    pos, at_line_start = 0, True
    nlit = litbytes = 0
    tagb = tag.encode() + b" "
    deadline = time.monotonic() + timeout
    c.sock.settimeout(timeout)
    for _ in range(10 ** 8):
        e = buf.find(b"\r\n", pos) if pos <= len(buf) else -1
        if e < 0:
            if time.monotonic() > deadline:
                raise socket.timeout("no tagged response for %s" % tag)
            if pos > 0 and pos <= len(buf):
                del buf[:pos]
                pos = 0
            d = c.sock.recv(262144)
            if not d:
                raise EOFError("connection closed before %s completed" % tag)
            buf += d
            continue
        if at_line_start and buf.startswith(tagb, pos):
            line = bytes(buf[pos:e])
            c.buf = bytes(buf[e + 2:])
            return line, nlit, litbytes
        m = _LITERAL.search(buf, max(pos, e - 24), e)
        if m:
            n = int(m.group(1))
            nlit += 1
            litbytes += n
            pos = e + 2 + n                    # may point past the data received so far
            at_line_start = False
        else:
            pos = e + 2
            at_line_start = True
    raise RuntimeError("imap_read_tagged loop bound hit")


def imap_cycle(port, n, tls_ctx=None):
    """One IMAP cycle; returns (seconds, literal bytes fetched)."""
    t0 = time.monotonic()
    c = h.ImapClient(port, timeout=60, tls_context=tls_ctx)
    try:
        _nodelay(c.sock)
        if not c.greeting or not c.greeting.startswith(b"* OK"):
            raise RuntimeError("IMAP greeting: %r" % c.greeting)
        for cmd in ('LOGIN %s "%s"' % (USER, PASSWORD), "SELECT INBOX", "FETCH 1:* BODY.PEEK[]"):
            t = c.tag()
            c.send("%s %s\r\n" % (t, cmd))
            line, nlit, nbytes = imap_read_tagged(c, t)
            if not line.startswith((t + " OK").encode()):
                raise RuntimeError("IMAP %s: %r" % (cmd.split()[0], line))
        if nlit != n:
            raise RuntimeError("FETCH returned %d literals, expected %d" % (nlit, n))
        t = c.tag()
        c.send("%s LOGOUT\r\n" % t)
        line, _, _ = imap_read_tagged(c, t)
    finally:
        c.close()
    return time.monotonic() - t0, nbytes


def pop3_read_retrs(c, count, timeout=120.0):
    """Read `count` pipelined RETR answers (status line + body to CRLF "." CRLF) from an
    h.Pop3Client without per-message buffer copies; returns the body bytes (wire form)."""
    buf = bytearray(c.buf)
    c.buf = b""
    pos, total, done = 0, 0, 0
    deadline = time.monotonic() + timeout
    c.sock.settimeout(timeout)
    for _ in range(10 ** 8):
        if done == count:
            c.buf = bytes(buf[pos:])
            return total
        e = buf.find(b"\r\n", pos)
        end = buf.find(b"\r\n.\r\n", e) if e >= 0 else -1
        if e >= 0 and not buf.startswith(b"+OK", pos):
            raise RuntimeError("RETR answer %d: %r" % (done + 1, bytes(buf[pos:e])))
        if end >= 0:
            total += end + 2 - (e + 2)
            pos = end + 5
            done += 1
            continue
        if time.monotonic() > deadline:
            raise socket.timeout("RETR answers incomplete")
        if pos:
            del buf[:pos]
            pos = 0
        d = c.sock.recv(262144)
        if not d:
            raise EOFError("connection closed after %d RETR answers" % done)
        buf += d
    raise RuntimeError("pop3_read_retrs loop bound hit")


def pop3_cycle(port, n, tls_ctx=None, pipeline=False):
    """One POP3 cycle; RETR one by one, each answer read before the next command (default), or all
    RETR commands in one write (pipeline=True). Returns (seconds, body bytes fetched, wire form)."""
    t0 = time.monotonic()
    c = h.Pop3Client(port, timeout=60, tls_context=tls_ctx)
    total = 0
    try:
        _nodelay(c.sock)
        if not c.greeting or not c.greeting.startswith(b"+OK"):
            raise RuntimeError("POP3 greeting: %r" % c.greeting)
        st = c.login(USER, PASSWORD)
        if not st or not st.startswith(b"+OK"):
            raise RuntimeError("POP3 login: %r" % st)
        if pipeline:
            c.send("".join("RETR %d\r\n" % i for i in range(1, n + 1)))
            total = pop3_read_retrs(c, n)
        else:
            for i in range(1, n + 1):
                st, body = c.cmd_multi("RETR %d" % i)
                if body is None:
                    raise RuntimeError("RETR %d: %r" % (i, st))
                total += len(body)
        st = c.cmd("QUIT")
        if not st or not st.startswith(b"+OK"):
            raise RuntimeError("POP3 QUIT: %r" % st)
    finally:
        c.close()
    return time.monotonic() - t0, total


# ----------------------------------------------------------------------------- gateway

def pop3_pipelined_cycle(port, n, tls_ctx=None):
    return pop3_cycle(port, n, tls_ctx, pipeline=True)


def start_gateway(tmp, proto, port_up, tls=None, pki=None, plugin=None, workers=1):
    port = h.free_port()
    over = {"trusted_networks": ["127.0.0.0/8"], "max_connections_per_ip": 100000,
            "mailbox": {"plaintext_auth": "allow"}}
    if plugin:
        over["filters"] = [{"name": "testmark", "timeout": "30s"}]
    mk = h.imap_listener_config if proto == "imap" else h.pop3_listener_config
    lst = mk(port, port_up, tls=tls, pki=pki, **over)
    if tls:
        lst["tls"]["handshakes_per_minute"] = 0          # one full handshake per cycle: no rate cap
    top = {"log": {"target": "stderr", "level": "notice"}, "workers": workers,
           "max_connections": 20000}
    if plugin:
        top["plugins"] = [plugin]
    return h.Gateway(tmp, h.gateway_config(tmp, lst, **top)).start()


# ----------------------------------------------------------------------------- idle memory

def idle_memory(tmp, imap_port, pki, n, tls_ctx):
    """Fresh gateway (implicit-TLS IMAP listener, plaintext Dovecot upstream); n clients log in,
    SELECT INBOX and IDLE; returns (before kB, after kB, idling, kB per connection)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n * 3 + 512)), hard))
    gw = start_gateway(tmp, "imap", imap_port, tls="implicit", pki=pki)
    conns = []
    idling = 0
    try:
        time.sleep(0.5)
        before = sb.tree_rss_kb(gw.proc.pid)
        t0 = time.monotonic()
        for i in range(n):
            try:
                c = h.ImapClient(gw.port, timeout=30, tls_context=tls_ctx)
            except OSError as e:
                print("# idle connection %d failed: %s" % (i, e), file=sys.stderr)
                break
            conns.append(c)
            ok = True
            for cmd in ('LOGIN %s "%s"' % (USER, PASSWORD), "SELECT INBOX"):
                t = c.tag()
                c.send("%s %s\r\n" % (t, cmd))
                line, _, _ = imap_read_tagged(c, t, timeout=30)
                ok = ok and line.startswith((t + " OK").encode())
            c.send("%s IDLE\r\n" % c.tag())
            r = c.read_response(timeout=30)
            if ok and r and r.startswith(b"+"):
                idling += 1
            if (i + 1) % 500 == 0:
                print("# idle: %d connections in IDLE (%.1f s)" % (i + 1, time.monotonic() - t0),
                      file=sys.stderr)
        time.sleep(2.0)
        after = sb.tree_rss_kb(gw.proc.pid)
        if not gw.alive():
            raise RuntimeError("gateway died during the idle test:\n" + gw.log_text()[-3000:])
        return before, after, idling, (after - before) / max(1, idling)
    finally:
        for c in conns:
            c.close()
        gw.stop()


# ----------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run (1 repetition, 2 cycles, 300 idle)")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 3, quick 1)")
    ap.add_argument("--cycles", type=int, default=None, help="cycles per target per repetition "
                    "(default 20, quick 2)")
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--idle", type=int, default=None, help="idle IMAP/TLS connections (default 2000)")
    ap.add_argument("--no-tls", action="store_true", help="skip the TLS cycle tables")
    ap.add_argument("--no-pipeline", action="store_true", help="skip the pipelined POP3 tables")
    args = ap.parse_args()
    for tool in ("dovecot", "haproxy", "openssl"):
        if not h.have_tool(tool):
            sys.exit("missing tool: %s" % tool)
    h.portcullis_bin()
    plugin = os.environ.get("PORTCULLIS_TEST_PLUGIN") or PLUGIN_DEFAULT
    if not os.path.exists(plugin):
        print("# no testmark plugin at %s: the filter targets are skipped" % plugin, file=sys.stderr)
        plugin = None

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 16384)), hard))  # children inherit
    reps = args.reps or (1 if args.quick else 3)
    cycles = args.cycles or (2 if args.quick else 20)
    idle_n = args.idle or (300 if args.quick else 2000)
    nmsg = args.messages

    tmp = h.TempDir(prefix="portcullis-mbench-")
    pki = h.make_pki(tmp.sub("pki"))
    combined = os.path.join(tmp.path, "haproxy.pem")
    with open(combined, "w") as f:
        f.write(open(pki["cert"]).read() + open(pki["key"]).read())
    cctx = h.client_context(verify=False)

    msgs = make_messages(nmsg)
    procs = []
    dove = None
    try:
        for attempt in range(3):           # a free port can be taken before Dovecot binds it: retry
            ports = {}
            for _ in range(20):
                ports = {k: h.free_port() for k in ("imap", "imaps", "pop3", "pop3s")}
                if len(set(ports.values())) == 4:
                    break
            dove = h.Dovecot(tmp, protocols="imap pop3", extra_conf=dovecot_conf(tmp, ports, pki))
            h.seed_maildir(dove, USER, msgs)
            try:
                dove.start()
                for p in ports.values():
                    h.wait_port(p, proc=dove.proc)
                break
            except (RuntimeError, TimeoutError) as e:
                dove.stop()
                if attempt == 2 or "Address already in use" not in str(e):
                    raise
        print("# Dovecot up; %d messages, %d bytes" % (nmsg, sum(len(m) for m in msgs)), file=sys.stderr)

        def hap(port_up, tls=False):
            x = sb.HAProxy(tmp, port_up, tls_pem=combined if tls else None).start()
            procs.append(x)
            return x.port

        def gw(proto, tls=None, filt=False):
            g = start_gateway(tmp, proto, ports[proto], tls=tls, pki=pki, plugin=plugin if filt else None)
            procs.append(g)
            return g.port

        # (table, target name, cycle function, port, TLS context, filtered?)
        plans = []
        for proto in ("imap", "pop3"):
            p_hap, p_gw = hap(ports[proto]), gw(proto)
            p_gwf = gw(proto, filt=True) if plugin else None
            if not args.no_tls:
                t_hap, t_gw = hap(ports[proto], tls=True), gw(proto, tls="implicit")
                t_gwf = gw(proto, tls="implicit", filt=True) if plugin else None
            fns = [(proto, imap_cycle if proto == "imap" else pop3_cycle)]
            if proto == "pop3" and not args.no_pipeline:
                fns.append(("pop3-pipelined", pop3_pipelined_cycle))
            for table, fn in fns:
                plans.append((table, "direct (Dovecot)", fn, ports[proto], None, False))
                plans.append((table, "HAProxy TCP", fn, p_hap, None, False))
                plans.append((table, "Portcullis, no filter", fn, p_gw, None, False))
                if plugin:
                    plans.append((table, "Portcullis + testmark", fn, p_gwf, None, True))
                if not args.no_tls:
                    t = table + " TLS"
                    plans.append((t, "direct (Dovecot TLS)", fn, ports[proto + "s"], cctx, False))
                    plans.append((t, "HAProxy TLS (bind ssl crt)", fn, t_hap, cctx, False))
                    plans.append((t, "Portcullis implicit TLS, no filter", fn, t_gw, cctx, False))
                    if plugin:
                        plans.append((t, "Portcullis implicit TLS + testmark", fn, t_gwf, cctx, True))

        # warm-up: one untimed cycle per target (Dovecot builds its index and cache on the first
        # one); the byte count checks that every target serves the same messages
        expect = {}
        for table, name, fn, port, ctx, filt in plans:
            _, nbytes = fn(port, nmsg, ctx)
            base = expect.setdefault(table[:4], nbytes)
            want = base + (len(FILTER_HEADER) * nmsg if filt else 0)
            if nbytes != want:
                raise RuntimeError("%s / %s fetched %d bytes, expected %d" % (table, name, nbytes, want))
            print("# warm-up %-9s %-36s ok (%d bytes)" % (table, name, nbytes), file=sys.stderr)

        results = {(p[0], p[1]): [] for p in plans}
        t_start = time.monotonic()
        for rep in range(reps):
            for table, name, fn, port, ctx, filt in plans:      # interleaved: direct, peer, gateway, ...
                for _ in range(cycles):
                    dt, _ = fn(port, nmsg, ctx)
                    results[(table, name)].append(dt)
                v = results[(table, name)][-cycles:]
                print("# rep %d %-9s %-36s median %.3f s/cycle" % (rep + 1, table, name, statistics.median(v)),
                      file=sys.stderr)
        print("# cycles took %.0f s" % (time.monotonic() - t_start), file=sys.stderr)

        what = {"imap": "IMAP: LOGIN, SELECT, `FETCH 1:* BODY.PEEK[]`, LOGOUT",
                "pop3": "POP3: USER/PASS, `RETR` x %d one by one (not pipelined), QUIT" % nmsg,
                "pop3-pipelined": "POP3: USER/PASS, `RETR` x %d pipelined (one write), QUIT" % nmsg}
        goals = []
        tables = []
        for p in plans:
            if p[0] not in tables:
                tables.append(p[0])
        for table in tables:
            rows = [p for p in plans if p[0] == table]
            base = statistics.median(results[(table, rows[0][1])])
            hbase = statistics.median(results[(table, rows[1][1])])
            print("\n## %s%s (%d messages of ~4 KB; seconds per cycle, %d samples)\n"
                  % (what[table.split()[0]], ", TLS (a full handshake per cycle)" if "TLS" in table else "",
                     nmsg, reps * cycles))
            print("| Target | min | median | median / %s | median / %s |\n|---|---|---|---|---|"
                  % (rows[0][1], rows[1][1]))
            for _, name, *_rest in rows:
                v = results[(table, name)]
                r = statistics.median(v) / base
                print("| %s | %.3f | %.3f | %.2f | %.2f |" % (name, min(v), statistics.median(v), r,
                                                              statistics.median(v) / hbase))
                if "no filter" in name:
                    goals.append(("%s, Portcullis no filter / direct" % table, r, hbase / base))
        # The target is 1.25 x direct. Where a TCP byte pump in the same run is already past it (a
        # latency-bound case: one hop more per round trip), it is read as BENCHMARKS.md reads small
        # messages: against HAProxy, within 1/0.9 of its time.
        print("\n| Goal | measured | target | | HAProxy / direct, same run | Portcullis / HAProxy |")
        print("|---|---|---|---|---|---|")
        for label, r, hr in goals:
            ok = r <= 1.25 or (hr > 1.25 and r / hr <= 1 / 0.9)
            print("| %s | %.2f | <= 1.25 (or <= 1.11 x HAProxy) | %s | %.2f | %.2f |"
                  % (label, r, "ok" if ok else "MISSED", hr, r / hr))
        sys.stdout.flush()

        # idle memory: a fresh gateway; the cycle gateways are stopped first (fewer processes around)
        for p in reversed(procs):
            p.stop()
        procs = []
        before, after, idling, per = idle_memory(tmp, ports["imap"], pki, idle_n, cctx)
        print("\n## Idle IMAP connections over TLS (logged in, INBOX selected, in IDLE)\n")
        print("| connections (in IDLE) | gateway RSS before (kB) | after (kB) | kB per connection | target |")
        print("|---|---|---|---|---|")
        print("| %d (%d) | %d | %d | %.1f | <= 48 (%s) |" % (idle_n, idling, before, after, per,
                                                           "ok" if per <= 48 else "MISSED"))
    finally:
        for p in reversed(procs):
            p.stop()
        if dove:
            dove.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
