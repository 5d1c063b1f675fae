"""IMAP through the gateway against a real Dovecot: pre-login answered by the gateway (CAPABILITY,
STARTTLS, LOGIN, AUTHENTICATE PLAIN, LOGINDISABLED before TLS), the login relayed, whole sessions
compared with the same session straight against Dovecot, the attacks from THREATS.md (STARTTLS
injection, literal abuse, {n+} without LITERAL+), an upstream that is down, exactly one BYE per
session (LOGOUT, Dovecot ending the session through `doveadm kick`), the retrieve hook with the
testmark plugin (RFC822.SIZE of what is served, output batching), the CONNECT and CLOSE hooks
(testmark refusing, deferring or stalling clients by address, from 127.0.0.5/.7/.8), and real
clients (mbsync, curl).

Normalisation for the comparisons (norm()): CAPABILITY responses and [CAPABILITY ...] codes are
dropped (the gateway rewrites them on purpose), Dovecot's timing texts "(0.001 + 0.000 secs)." are
removed, and the numbers in UIDVALIDITY / APPENDUID / UIDNEXT / COPYUID codes become N (each run
seeds a fresh mailbox). Owns: one Dovecot per class (imap listener on a free 127.0.0.1 port),
gateways and clients, all stopped by PID in cleanups.
"""

import os
import re
import socket
import ssl
import subprocess
import time
import unittest

import harness as h

PLUGIN = os.environ.get("PORTCULLIS_TEST_PLUGIN", "")
USERS = h.Dovecot.users() if os.path.exists(h.Dovecot.USERS_FILE) else {}
ALICE_PW = USERS.get("alice", "")


def msg(subject, extra="", body="Hello from the test.\r\n"):
    return ("From: Sender <sender@client.test>\r\nTo: alice@example.test\r\nSubject: %s\r\n"
            "Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: <%s@client.test>\r\n%s\r\n%s"
            % (subject, re.sub(r"\W", "", subject), extra, body)).encode()


SEED = [msg("first"), msg("second", body="Line one.\r\nLine two.\r\n" * 50), msg("third")]


drain = h.drain


def byes(data):
    """The untagged BYE lines in a stretch of server output (without literals that hold one)."""
    return [x for x in data.split(b"\r\n") if x.startswith(b"* BYE")]


def norm(responses):
    out = []
    for r in responses:
        if re.match(rb"\* CAPABILITY ", r):
            continue
        r = re.sub(rb"\[CAPABILITY [^\]]*\] ?", b"", r)
        r = re.sub(rb" \(\d+\.\d+ \+ \d+\.\d+( \+ \d+\.\d+)? secs\)\.", b"", r)
        r = re.sub(rb"(UIDVALIDITY|UIDNEXT|APPENDUID|COPYUID) \d+( \d+)?", rb"\1 N", r)
        r = re.sub(rb"^t\d+ ", b"T ", r)
        out.append(r)
    return out


def vmrss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class ImapBase(h.GatewayTest):
    seed = SEED

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dport = h.free_port()
        cls.dove = h.Dovecot(cls.tmp, protocols="imap", extra_conf=h.dovecot_imap_conf(cls.dport))
        cls.dove.start()
        h.wait_port(cls.dport, timeout=15)

    @classmethod
    def tearDownClass(cls):
        cls.dove.stop()
        super().tearDownClass()

    def setUp(self):
        h.seed_maildir(self.dove, "alice", self.seed)

    def imap_gateway(self, tls=None, upstream_port=None, top=None, **over):
        port = h.free_port()
        lst = h.imap_listener_config(port, upstream_port or self.dport, tls=tls, pki=self.pki, **over)
        cfg = h.gateway_config(self.tmp, lst, **(top or {}))
        gw = h.Gateway(self.tmp, cfg)
        self.addCleanup(self._stop_gateway, gw)
        gw.start()
        return gw

    def imap(self, port, **kw):
        c = h.ImapClient(port, **kw)
        self.addCleanup(c.close)
        return c

    def tls_client(self, gw):
        return self.imap(gw.port, tls_context=self.ca_context())

    def login(self, c, user="alice", pw=None):
        r = c.cmd('LOGIN %s "%s"' % (user, pw or ALICE_PW))
        self.assertIn(b" OK ", r[-1], r)
        return r

    def kick(self, user="alice"):
        """Dovecot ends the user's sessions itself: "* BYE Server shutting down.", then close."""
        p = subprocess.run(["doveadm", "-c", self.dove.conf_path, "kick", user],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout)

    def assertServes(self, gw):
        self.assertTrue(gw.alive(), gw.log_text()[-3000:])
        c = h.ImapClient(gw.port, tls_context=self.ca_context() if gw.config["listeners"][0].get(
            "tls", {}).get("mode") == "implicit" else None)
        try:
            self.assertTrue(c.greeting.startswith(b"* OK "), c.greeting)
            self.assertIn(b" OK ", c.cmd("NOOP")[-1])
        finally:
            c.close()


class PreLogin(ImapBase):

    def test_starttls_mode_login(self):
        gw = self.imap_gateway(tls="starttls")
        c = self.imap(gw.port)
        self.assertRegex(c.greeting, rb"^\* OK \[CAPABILITY [^\]]*STARTTLS[^\]]*\] Portcullis IMAP ready")
        self.assertIn(b"LOGINDISABLED", c.greeting)
        self.assertNotIn(b"AUTH=", c.greeting)
        r = c.cmd('LOGIN alice "%s"' % ALICE_PW)
        self.assertRegex(r[-1], rb"^t\d+ NO \[PRIVACYREQUIRED\]")
        r = c.cmd("AUTHENTICATE PLAIN AGFsaWNlAHg=")
        self.assertRegex(r[-1], rb"^t\d+ NO \[PRIVACYREQUIRED\]")
        self.assertIn(b" OK ", c.starttls(self.ca_context())[-1])
        caps = c.cmd("CAPABILITY")
        self.assertIn(b"AUTH=PLAIN", caps[0])
        self.assertNotIn(b"STARTTLS", caps[0])
        self.assertNotIn(b"LOGINDISABLED", caps[0])
        r = self.login(c)
        # Dovecot announces its new capabilities after an AUTHENTICATE as "* CAPABILITY" (or as
        # a [CAPABILITY] code after LOGIN): both are rewritten.
        self.assertRegex(b"".join(r), rb"(\* CAPABILITY|OK \[CAPABILITY) IMAP4rev1 ")
        for bad in (b"COMPRESS", b"STARTTLS", b"LOGINDISABLED", b"BINARY", b"CATENATE",
                    b"MULTIAPPEND", b"AUTH="):
            self.assertNotIn(bad, b"".join(r))
        caps = c.cmd("CAPABILITY")
        self.assertTrue(caps[0].startswith(b"* CAPABILITY IMAP4rev1"), caps)
        self.assertNotIn(b"COMPRESS", caps[0])
        self.assertIn(b"IDLE", caps[0])
        r = c.cmd("COMPRESS DEFLATE")
        self.assertRegex(r[-1], rb"^t\d+ (NO|BAD) ")
        self.assertIn(b" OK ", c.cmd("NOOP")[-1])
        r = c.cmd("LOGOUT")
        self.assertTrue(any(x.startswith(b"* BYE") for x in r), r)
        self.assertTrue(c.closed())

    def test_implicit_tls_auth_plain_forms(self):
        gw = self.imap_gateway(tls="implicit")
        import base64
        ir = base64.b64encode(b"\0alice\0" + ALICE_PW.encode()).decode()
        # SASL-IR
        c = self.tls_client(gw)
        self.assertIn(b"AUTH=PLAIN", c.greeting)
        r = c.cmd("AUTHENTICATE PLAIN " + ir)
        self.assertRegex(r[-1], rb"^t\d+ OK ")
        c.cmd("LOGOUT")
        # continuation
        c = self.tls_client(gw)
        c.send("a1 AUTHENTICATE PLAIN\r\n")
        self.assertEqual(c.read_response(), b"+ \r\n")
        c.send(ir + "\r\n")
        self.assertRegex(c.until_tagged("a1")[-1], rb"^a1 OK ")
        # LOGIN with literals (the gateway's own "+")
        c = self.tls_client(gw)
        c.send("a2 LOGIN {5}\r\n")
        self.assertTrue(c.read_response().startswith(b"+ "))
        c.send("alice {%d}\r\n" % len(ALICE_PW))
        self.assertTrue(c.read_response().startswith(b"+ "))
        c.send(ALICE_PW + "\r\n")
        self.assertRegex(c.until_tagged("a2")[-1], rb"^a2 OK ")
        # wrong password: NO relayed with the client's tag
        c = self.tls_client(gw)
        r = c.cmd('LOGIN alice "wrong"')
        self.assertRegex(r[-1], rb"^t\d+ NO ")
        self.assertNotIn(ALICE_PW, gw.log_text())

    def test_failed_logins_counted_per_address(self):
        if not h.loopback_alias_ok("127.0.0.6"):
            self.skipTest("cannot bind 127.0.0.6")
        gw = self.imap_gateway(tls="implicit", mailbox={"auth_failures": 1})
        for _ in range(3):  # each session closes after its one allowed failure
            c = self.imap(gw.port, tls_context=self.ca_context(), source="127.0.0.6")
            r = c.cmd('LOGIN alice "wrong"')
            self.assertRegex(r[-1], rb"^t\d+ NO ")
            c.close()
        # Three failures from this address in the last minute: refused without asking the upstream.
        c = self.imap(gw.port, tls_context=self.ca_context(), source="127.0.0.6")
        r = c.cmd('LOGIN alice "%s"' % ALICE_PW)
        self.assertRegex(r[-1], rb"^t\d+ NO \[UNAVAILABLE\] Too many failed logins")
        self.assertIn("limit=auth_failures_per_address", gw.log_text())
        # Another address is not affected.
        c = self.tls_client(gw)
        self.login(c)

    def test_plaintext_allowed(self):
        gw = self.imap_gateway(mailbox={"plaintext_auth": "allow"})
        c = self.imap(gw.port)
        self.assertIn(b"AUTH=PLAIN", c.greeting)
        self.login(c)
        self.assertIn(b" OK ", c.cmd("SELECT INBOX")[-1])

    def test_starttls_injection(self):
        gw = self.imap_gateway(tls="starttls")
        c = self.imap(gw.port)
        c.send('a STARTTLS\r\nb LOGIN alice "%s"\r\n' % ALICE_PW)
        r = c.read_response()
        self.assertRegex(r, rb"^a OK ")
        c.sock = self.ca_context().wrap_socket(c.sock, server_hostname="localhost")
        c.buf = b""
        # b was never answered, in plaintext or after TLS; the session is fresh.
        r = c.cmd("NOOP")
        self.assertEqual(len(r), 1, r)
        self.assertRegex(r[0], rb"^t\d+ OK ")
        self.assertIn("starttls-injection", gw.log_text())
        self.assertNotIn("event=login", gw.log_text())

    def test_literal_abuse(self):
        gw = self.imap_gateway(tls="starttls")
        for lit in ("{99999999999999999999}", "{4294967296}", "{9000}"):
            c = self.imap(gw.port)
            c.send("a LOGIN %s\r\n" % lit)
            r = c.read_response()
            self.assertTrue(r is None or re.match(rb"^(a|\*) (BAD|NO|BYE)", r), r)
            c.close()
        c = self.imap(gw.port)
        c.send("a LOGIN {5+}\r\nalice x\r\n")
        r = c.read_response()
        self.assertTrue(r is None or re.match(rb"^(a|\*) (BAD|BYE)", r), r)
        self.assertTrue(c.closed())
        c = self.imap(gw.port)
        c.send("a " + "X" * 10000 + "\r\n")
        self.assertTrue(c.closed())
        c = self.imap(gw.port)
        r = c.cmd("FOO")
        self.assertRegex(r[-1], rb"^t\d+ BAD ")
        self.assertServes(gw)

    def test_upstream_down(self):
        gw = self.imap_gateway(tls="implicit", upstream_port=h.free_port())
        c = self.tls_client(gw)
        r = c.cmd('LOGIN alice "%s"' % ALICE_PW)
        self.assertRegex(r[-1], rb"^t\d+ NO \[UNAVAILABLE\]")
        self.assertIn(b" OK ", c.cmd("NOOP")[-1])


SESSION = [
    "SELECT INBOX",
    "FETCH 1:* (FLAGS BODY.PEEK[])",
    "UID FETCH 1:* (UID RFC822.SIZE)",
    "FETCH 2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT]<0.100>)",
    "SEARCH ALL",
    "STORE 1 +FLAGS (\\Deleted)",
    "SEARCH DELETED",
    "EXPUNGE",
    "FETCH 1:* (FLAGS ENVELOPE)",
    "STATUS INBOX (MESSAGES UNSEEN)",
]


class OneLinePlaintext(ImapBase):
    """The one-line mode without a certificate: an imap:// listener where nobody can log in says so
    at start; --plaintext-auth (a legacy setup behind a VPN) lets a real Dovecot login through."""

    def one_line(self, *extra):
        port = h.free_port()
        return self.gateway_args(["--listen", "imap://127.0.0.1:%d" % port, "--upstream",
                                  "imap://127.0.0.1:%d" % self.dport, "--workers", "1"] + list(extra),
                                 port)

    def test_without_the_flag_every_login_is_refused_and_the_start_says_so(self):
        gw = self.one_line()
        self.assertTrue(h.wait_for(lambda: "no client can log in" in gw.log_text(), timeout=5),
                        gw.log_text())
        self.assertRegex(gw.log_text(), r"listener=listener0 protocol=imap tls=none plaintext_auth=never: "
                                        r"no client can log in .*certificate.*plaintext_auth: allow "
                                        r"\(--plaintext-auth\)")
        c = self.imap(gw.port)
        self.assertIn(b"LOGINDISABLED", c.greeting)
        r = c.cmd('LOGIN alice "%s"' % ALICE_PW)
        self.assertRegex(r[-1], rb"^t\d+ NO ")

    def test_plaintext_auth_flag_logs_in(self):
        gw = self.one_line("--plaintext-auth")
        c = self.imap(gw.port)
        self.assertNotIn(b"LOGINDISABLED", c.greeting)
        self.login(c)
        r = c.cmd("SELECT INBOX")
        self.assertIn(b" OK ", r[-1])
        self.assertTrue(any(b"3 EXISTS" in x for x in r), r)
        self.assertNotIn("no client can log in", gw.log_text())
        self.assertIn("listener=listener0 mailbox.plaintext_auth=allow: passwords are accepted before TLS",
                      gw.log_text())


class Sessions(ImapBase):

    def test_pipelined_commands_bounded(self):
        """10,000 small commands pipelined after login and not read: the gateway takes only a
        bounded number ahead of the answers (the rest stays unread in the socket), so its memory
        stays flat; once the client reads, every command has its answer, in order."""
        gw = self.imap_gateway(mailbox={"plaintext_auth": "allow"})
        c = self.imap(gw.port)
        self.login(c)
        self.assertIn(b" OK ", c.cmd("SELECT INBOX")[-1])
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        n = 10000
        rss0 = vmrss_kb(gw.proc.pid)
        data = b"".join(b"p%d NOOP\r\n" % i for i in range(n))
        sent = 0
        c.sock.settimeout(0.5)
        deadline = time.monotonic() + 20
        while sent < len(data) and time.monotonic() < deadline:
            try:
                sent += c.sock.send(data[sent:sent + 65536])
            except socket.timeout:
                break  # the gateway stopped taking input: what is left waits in our send buffer
        time.sleep(2)
        grown = vmrss_kb(gw.proc.pid) - rss0
        # Under AddressSanitizer freed memory sits in its quarantine and counts in RSS.
        cap = (16 if os.environ.get("ASAN_OPTIONS") else 3) * 1024
        self.assertLess(grown, cap, "gateway grew %d KB for %d pipelined commands" % (grown, n))
        # now read: every command gets its tagged answer, in order
        c.sock.settimeout(10)
        buf = b""
        got = 0
        deadline = time.monotonic() + 60
        while got < n and time.monotonic() < deadline:
            if sent < len(data):
                try:
                    c.sock.setblocking(False)
                    sent += c.sock.send(data[sent:sent + 65536])
                except (BlockingIOError, socket.timeout):
                    pass
                finally:
                    c.sock.settimeout(10)
            chunk = c.sock.recv(65536)
            self.assertTrue(chunk, "closed after %d answers" % got)
            buf += chunk
            lines = buf.split(b"\r\n")
            buf = lines.pop()
            for line in lines:
                if line.startswith(b"p"):
                    self.assertTrue(line.startswith(b"p%d OK" % got), line)
                    got += 1
        self.assertEqual(got, n)
        self.assertServes(gw)

    def run_session(self, c):
        out = []
        for line in SESSION:
            out += c.cmd(line)
        body = msg("appended sync")
        t = c.tag()
        c.send("%s APPEND INBOX (\\Seen) {%d}\r\n" % (t, len(body)))
        cont = c.read_response()
        out.append(cont[:2])
        c.send(body + b"\r\n")
        out += c.until_tagged(t)
        body = msg("appended nonsync")
        t = c.tag()
        c.send(b"%s APPEND INBOX {%d+}\r\n%s\r\n" % (t.encode(), len(body), body))
        out += c.until_tagged(t)
        out += c.cmd("FETCH 1:* (BODY.PEEK[])")
        t = c.tag()
        c.send("%s IDLE\r\n" % t)
        r = c.read_response()
        out.append(r[:2])
        c.send("DONE\r\n")
        out += c.until_tagged(t)
        out += c.cmd("LOGOUT")
        self.assertTrue(c.closed())
        return norm(out)

    def direct_session(self):
        h.seed_maildir(self.dove, "alice", self.seed)
        c = self.imap(self.dport)
        self.login(c)
        return self.run_session(c)

    def test_same_as_direct_imaps(self):
        gw = self.imap_gateway(tls="implicit")
        c = self.tls_client(gw)
        self.login(c)
        via = self.run_session(c)
        self.assertEqual(via, self.direct_session())
        self.assertTrue(any(b"Line two." in r for r in via))

    def test_same_as_direct_starttls(self):
        gw = self.imap_gateway(tls="starttls")
        c = self.imap(gw.port)
        c.starttls(self.ca_context())
        self.login(c)
        via = self.run_session(c)
        self.assertEqual(via, self.direct_session())

    def test_relay_attacks_after_login(self):
        gw = self.imap_gateway(tls="implicit")
        c = self.tls_client(gw)
        self.login(c)
        c.cmd("SELECT INBOX")
        # a synchronising literal over literal_max: refused before anything goes upstream
        r = c.cmd("APPEND INBOX {99999999999999999999}")
        self.assertRegex(r[-1], rb"^t\d+ (NO|BAD) ")
        r = c.cmd("STARTTLS")
        self.assertRegex(r[-1], rb"^t\d+ BAD ")
        self.assertIn(b" OK ", c.cmd("NOOP")[-1])
        # literal8 was not advertised: a framing error, the session closes
        c.send("x APPEND INBOX ~{5}\r\n")
        self.assertTrue(c.closed())
        self.assertServes(gw)

    def test_logout_gives_exactly_one_bye(self):
        gw = self.imap_gateway(tls="implicit")
        c = self.tls_client(gw)
        self.login(c)
        self.assertIn(b" OK ", c.cmd("SELECT INBOX")[-1])
        c.send("z LOGOUT\r\n")
        data, closed = drain(c)
        self.assertTrue(closed, data)
        # Dovecot's BYE and its tagged OK, nothing of the gateway's own after them
        self.assertEqual(byes(data), [b"* BYE Logging out"], data)
        self.assertRegex(data, rb"^\* BYE Logging out\r\nz OK [^\r]*\r\n$")
        # before login the gateway answers LOGOUT itself: one BYE as well
        c = self.tls_client(gw)
        c.send("y LOGOUT\r\n")
        data, closed = drain(c)
        self.assertTrue(closed, data)
        self.assertEqual(data, b"* BYE Logging out\r\ny OK LOGOUT completed\r\n")

    @unittest.skipUnless(h.have_tool("doveadm"), "doveadm not installed")
    def test_upstream_bye_relayed_once(self):
        gw = self.imap_gateway(tls="implicit")
        c = self.tls_client(gw)
        self.login(c)
        self.assertIn(b" OK ", c.cmd("SELECT INBOX")[-1])
        self.kick()
        data, closed = drain(c)
        self.assertTrue(closed, data)
        self.assertEqual(byes(data), [b"* BYE Server shutting down."], data)
        self.assertTrue(data.endswith(b"* BYE Server shutting down.\r\n"), data)
        self.assertIn("event=upstream-closed logout=0 bye=1", gw.log_text())
        self.assertServes(gw)


@unittest.skipUnless(PLUGIN and os.path.exists(PLUGIN), "PORTCULLIS_TEST_PLUGIN not set")
class RetrieveHook(ImapBase):
    seed = [msg("clean one"), msg("bad one", extra="X-Test-Verdict: reject\r\n"), msg("clean two")]

    def start(self):
        return self.imap_gateway(tls="implicit", top={"plugins": [PLUGIN]},
                                 filters=[{"name": "testmark", "timeout": "2s"}])

    def fetch_all(self, c, what="BODY.PEEK[]"):
        c.cmd("SELECT INBOX")
        r = c.cmd("FETCH 1:* (UID %s)" % what)
        out = {}
        for x in r[:-1]:
            m = re.match(rb"\* (\d+) FETCH \(.*?\{(\d+)\}\r\n", x, re.S)
            self.assertIsNotNone(m, x)
            n = int(m.group(2))
            lit = x[m.end():m.end() + n]
            self.assertEqual(len(lit), n)
            self.assertEqual(x[m.end() + n:], b")\r\n", x[-80:])
            out[int(m.group(1))] = lit
        self.assertRegex(r[-1], rb"^t\d+ OK ")
        return out

    def test_session_log_line(self):
        """One line per session: user, client, TLS, commands, what was scanned and decided, bytes
        each way; never the password."""
        gw = self.start()
        c = self.tls_client(gw)
        self.login(c)
        self.fetch_all(c)
        c.send("z LOGOUT\r\n")
        data, closed = h.drain(c)
        self.assertTrue(closed)
        line = h.wait_for(lambda: [x for x in gw.log_text().splitlines()
                                   if "event=disconnect proto=imap" in x and "user=alice" in x])
        self.assertTrue(line, gw.log_text()[-2000:])
        f = dict(kv.split("=", 1) for kv in line[0].split() if "=" in kv)
        self.assertEqual(f["client"], "127.0.0.1")
        self.assertTrue(f["tls"].startswith("TLSv1."), f)
        self.assertGreaterEqual(int(f["commands"]), 4)  # LOGIN SELECT FETCH LOGOUT
        self.assertEqual((f["scanned"], f["passed"], f["tagged"], f["withheld"]), ("3", "0", "2", "1"))
        self.assertGreater(int(f["bytes_out"]), sum(len(m) for m in self.seed))
        self.assertGreater(int(f["bytes_in"]), 30)
        self.assertNotIn(ALICE_PW, gw.log_text())

    def test_reject_replaced_by_notice_others_tagged(self):
        gw = self.start()
        c = self.tls_client(gw)
        self.login(c)
        got = self.fetch_all(c)
        self.assertEqual(sorted(got), [1, 2, 3])
        for i in (1, 3):
            self.assertTrue(got[i].startswith(b"X-Test-Filter: passed\r\n"), got[i][:200])
            self.assertEqual(got[i][len(b"X-Test-Filter: passed\r\n"):], self.seed[i - 1])
        notice = got[2]
        self.assertNotIn(b"X-Test-Verdict", notice)
        self.assertIn(b"Subject: [Withheld] bad one\r\n", notice)
        self.assertRegex(notice, rb"\r\nReference: [0-9a-f]{16}-2\r\n")
        self.assertIn(b"From: Sender <sender@client.test>\r\n", notice)
        self.assertIn(b"Marked for rejection by testmark", notice)
        import email
        parsed = email.message_from_bytes(notice)
        self.assertIn("[Withheld]", parsed["Subject"])
        self.assertEqual(parsed["Date"], email.message_from_bytes(self.seed[1])["Date"])
        self.assertIn("event=retrieve", gw.log_text())
        # RFC822 goes through the hook too, and so do sections (pre-scan, verdict cache)
        got = self.fetch_all(c, "RFC822")
        self.assertIn(b"withheld", got[2])
        got = self.fetch_all(c, "BODY.PEEK[TEXT]")
        self.assertEqual(got[1], b"Hello from the test.\r\n")
        self.assertTrue(got[2].startswith(b"This message was withheld by the mail gateway.\r\n"),
                        got[2][:100])

    def test_large_message_streamed_through_the_hook(self):
        big = msg("big one", body="".join("line %06d of a large body, padded to width\r\n" % i
                                           for i in range(60000)))
        h.seed_maildir(self.dove, "alice", [big, msg("small")])
        gw = self.start()
        c = self.tls_client(gw)
        self.login(c)
        got = self.fetch_all(c)
        self.assertGreater(len(big), 2 * 1024 * 1024)
        self.assertEqual(got[1], b"X-Test-Filter: passed\r\n" + big)
        self.assertEqual(got[2], b"X-Test-Filter: passed\r\n" + msg("small"))

    def test_without_hook_bytes_pass_unchanged(self):
        gw = self.imap_gateway(tls="implicit")
        c = self.tls_client(gw)
        self.login(c)
        got = self.fetch_all(c)
        self.assertEqual([got[i] for i in (1, 2, 3)], self.seed)

    def test_literals_around_the_batch_size(self):
        """The framing, the literal and the rest of the line are gathered into 64 KiB writes: the
        bytes stay exact when a literal, or the response around it, ends on or near a boundary."""
        tagged = len(b"X-Test-Filter: passed\r\n")
        base = len(msg("size probe 0", body=""))
        seed = []
        for i, total in enumerate((65536 - tagged - 30, 65536 - tagged, 65536 - tagged + 1,
                                   2 * 65536 - 7, 100)):
            seed.append(msg("size probe %d" % i, body="b" * (total - base - 2) + "\r\n"))
        h.seed_maildir(self.dove, "alice", seed)
        gw = self.start()
        c = self.tls_client(gw)
        self.login(c)
        got = self.fetch_all(c, "FLAGS BODY.PEEK[]")
        self.assertEqual(sorted(got), list(range(1, len(seed) + 1)))
        for i, m in enumerate(seed):
            self.assertEqual(got[i + 1], b"X-Test-Filter: passed\r\n" + m, i)

    def test_rfc822_size_matches_what_is_served(self):
        """RFC822.SIZE in the response that carries the whole message is the size of what the
        gateway serves: the notice, or the message with the filters' header."""
        gw = self.start()
        c = self.tls_client(gw)
        self.login(c)
        c.cmd("SELECT INBOX")
        for items in ("UID RFC822.SIZE BODY.PEEK[]", "BODY.PEEK[] RFC822.SIZE FLAGS",
                      "RFC822.SIZE RFC822"):
            r = c.cmd("FETCH 1:* (%s)" % items)
            self.assertRegex(r[-1], rb"^t\d+ OK ")
            lits = fetch_literals(r)
            self.assertEqual(sorted(lits), [1, 2, 3], r)
            for x in r[:-1]:
                seq = int(re.match(rb"\* (\d+) FETCH", x).group(1))
                size = re.search(rb"[( ]RFC822\.SIZE (\d+)[ )]", x)
                self.assertIsNotNone(size, x[:200])
                self.assertEqual(int(size.group(1)), len(lits[seq]), (items, x[:200]))
            self.assertIn(b"withheld", lits[2])
            self.assertEqual(lits[1], b"X-Test-Filter: passed\r\n" + self.seed[0])
        # Without the message in the same response the upstream's size stays (see docs/imap.md).
        r = c.cmd("FETCH 2 (RFC822.SIZE)")
        self.assertIn(b"RFC822.SIZE %d" % len(self.seed[1]), r[0])

    @unittest.skipUnless(h.have_tool("doveadm"), "doveadm not installed")
    def test_upstream_bye_while_a_verdict_is_due(self):
        """Dovecot answers the FETCH, then leaves (BYE, close) while the filter still decides on
        the first message: the response is completed after the verdict, then the upstream's BYE,
        and the client sees no BYE of the gateway's."""
        h.seed_maildir(self.dove, "alice", [msg("slow one", extra="X-Test-Verdict: hang\r\n"),
                                            msg("clean one")])
        gw = self.start()
        c = self.tls_client(gw)
        self.login(c)
        c.cmd("SELECT INBOX")
        c.send("f1 FETCH 1:* (UID BODY.PEEK[])\r\n")
        time.sleep(0.5)  # the filter's timeout is 2 s
        self.kick()
        data, closed = drain(c)
        self.assertTrue(closed, data[-300:])
        self.assertRegex(data, rb"^\* 1 FETCH \(UID 1 BODY\[\] \{\d+\}\r\n")
        self.assertIn(b"withheld", data)
        self.assertIn(b"* 2 FETCH (UID 2 BODY[] {", data)
        self.assertRegex(data, rb"\r\nf1 OK [^\r]*\r\n\* BYE Server shutting down\.\r\n$")
        self.assertEqual(byes(data), [b"* BYE Server shutting down."])


def fetch_literals(responses):
    """{seq: literal} of the FETCH responses in a command's answer (one literal per response)."""
    out = {}
    for x in responses:
        m = re.match(rb"\* (\d+) FETCH \(.*?\{(\d+)\}\r\n", x, re.S)
        if m:
            out[int(m.group(1))] = x[m.end():m.end() + int(m.group(2))]
    return out


@unittest.skipUnless(PLUGIN and os.path.exists(PLUGIN), "PORTCULLIS_TEST_PLUGIN not set")
class AppendHook(ImapBase):
    """APPEND through PC_HOOK_MESSAGE: the gateway answers "+", spools, runs the testmark plugin,
    then appends upstream (or answers NO itself)."""

    def start(self, **over):
        return self.imap_gateway(tls="implicit", top={"plugins": [PLUGIN]},
                                 filters=[{"name": "testmark", "timeout": "2s"}], **over)

    def direct(self):
        c = self.imap(self.dport)
        self.login(c)
        self.assertIn(b" OK ", c.cmd("SELECT INBOX")[-1])
        return c

    def append_sync(self, c, body, args="INBOX"):
        t = c.tag()
        c.send("%s APPEND %s {%d}\r\n" % (t, args, len(body)))
        cont = c.read_response()
        self.assertTrue(cont.startswith(b"+ "), cont)
        c.send(body + b"\r\n")
        return c.until_tagged(t)

    def test_append_rejected_not_stored(self):
        gw = self.start()
        c = self.tls_client(gw)
        self.login(c)
        body = msg("append bad", extra="X-Test-Verdict: reject\r\n")
        r = self.append_sync(c, body)
        self.assertRegex(r[-1], rb"^t\d+ NO \[CANNOT\] Marked for rejection by testmark")
        self.assertIn(b" OK ", c.cmd("NOOP")[-1])
        self.assertIn("event=append", gw.log_text())
        self.assertIn("action=rejected", gw.log_text())
        d = self.direct()
        r = d.cmd('SEARCH HEADER Subject "append bad"')
        self.assertEqual(r[0].strip(), b"* SEARCH", r)
        r = d.cmd("STATUS INBOX (MESSAGES)")
        self.assertIn(b"MESSAGES %d" % len(self.seed), r[0])

    def test_append_clean_tagged_with_appenduid(self):
        gw = self.start()
        c = self.tls_client(gw)
        self.login(c)
        body = msg("append good")
        r = self.append_sync(c, body, args="INBOX (\\Seen) \"01-Jan-2024 10:00:00 +0000\"")
        m = re.match(rb"^t\d+ OK \[APPENDUID (\d+) (\d+)\]", r[-1])
        self.assertIsNotNone(m, r)
        uid = int(m.group(2))
        d = self.direct()
        r = d.cmd("UID FETCH %d (FLAGS INTERNALDATE BODY.PEEK[])" % uid)
        got = fetch_literals(r)
        self.assertEqual(list(got.values()), [b"X-Test-Filter: passed\r\n" + body])
        self.assertIn(b"\\Seen", r[0])
        self.assertIn(b"01-Jan-2024 10:00:00 +0000", r[0])

    def test_append_mailbox_literal_and_multiappend_refused(self):
        gw = self.start()
        c = self.tls_client(gw)
        self.login(c)
        t = c.tag()
        c.send("%s APPEND {5}\r\n" % t)
        self.assertTrue(c.read_response().startswith(b"+ "))
        body = msg("mailbox literal")
        c.send("INBOX {%d}\r\n" % len(body))
        self.assertTrue(c.read_response().startswith(b"+ "))
        c.send(body + b"\r\n")
        self.assertRegex(c.until_tagged(t)[-1], rb"^t\d+ OK \[APPENDUID ")
        # MULTIAPPEND is not advertised: a second message in one APPEND is refused, no "+"
        t = c.tag()
        c.send("%s APPEND INBOX {%d}\r\n" % (t, len(body)))
        self.assertTrue(c.read_response().startswith(b"+ "))
        c.send(body + b" {%d}\r\n" % len(body))
        r = c.read_response()
        self.assertRegex(r, rb"^t\d+ BAD ")
        self.assertIn(b" OK ", c.cmd("NOOP")[-1])
        d = self.direct()
        r = d.cmd('SEARCH HEADER Subject "mailbox literal"')
        self.assertEqual(len(r[0].split()), 3, r)  # exactly one stored

    def test_append_nonsync_literals(self):
        gw = self.start()
        c = self.tls_client(gw)
        r = self.login(c)
        caps = c.cmd("CAPABILITY")[0]
        self.assertIn(b"LITERAL-", caps)
        self.assertNotIn(b"MULTIAPPEND", caps)
        body = msg("nonsync ok")
        self.assertLess(len(body), 4096)
        t = c.tag()
        c.send(b"%s APPEND INBOX {%d+}\r\n%s\r\n" % (t.encode(), len(body), body))
        r = c.until_tagged(t)
        self.assertRegex(r[-1], rb"^t\d+ OK \[APPENDUID ")
        bad = msg("nonsync bad", extra="X-Test-Verdict: reject\r\n")
        t = c.tag()
        c.send(b"%s APPEND INBOX {%d+}\r\n%s\r\n" % (t.encode(), len(bad), bad))
        self.assertRegex(c.until_tagged(t)[-1], rb"^t\d+ NO ")
        # over nonsync_literal_max (4096): BAD (RFC 7888), then the session closes
        big = msg("nonsync too big", body="x" * 5000 + "\r\n")
        t = c.tag()
        c.send(b"%s APPEND INBOX {%d+}\r\n" % (t.encode(), len(big)))
        r = c.read_response()
        self.assertRegex(r, rb"^t\d+ BAD \[TOOBIG\]")
        self.assertTrue(c.closed())
        d = self.direct()
        r = d.cmd("SEARCH ALL")
        self.assertEqual(len(r[0].split()), 2 + 1 + len(self.seed), r)  # "* SEARCH" + ids
        r = d.cmd('SEARCH OR HEADER Subject "nonsync bad" HEADER Subject "too big"')
        self.assertEqual(r[0].strip(), b"* SEARCH", r)
        self.assertServes(gw)

    def test_append_limits(self):
        gw = self.start(mailbox={"scan_max": "2K", "oversize": "refuse", "literal_max": "1M"})
        c = self.tls_client(gw)
        self.login(c)
        big = msg("oversize", body="y" * 3000 + "\r\n")
        t = c.tag()
        c.send("%s APPEND INBOX {%d}\r\n" % (t, len(big)))
        r = c.read_response()
        self.assertRegex(r, rb"^t\d+ NO \[TOOBIG\]")
        t = c.tag()
        c.send("%s APPEND INBOX {%d}\r\n" % (t, 2 * 1024 * 1024))
        self.assertRegex(c.read_response(), rb"^t\d+ NO \[TOOBIG\]")
        self.assertRegex(self.append_sync(c, msg("small"))[-1], rb"^t\d+ OK \[APPENDUID ")
        # oversize: pass (the default): relayed unscanned, with a log line
        gw2 = self.start(mailbox={"scan_max": "2K"})
        c = self.tls_client(gw2)
        self.login(c)
        r = self.append_sync(c, big)
        self.assertRegex(r[-1], rb"^t\d+ OK \[APPENDUID ")
        self.assertIn("action=unscanned", gw2.log_text())


class AppendSyncUpstream(AppendHook):
    """The same APPEND tests against a Dovecot that offers LITERAL- only: messages over 4096
    bytes go upstream as synchronising literals, the gateway waits for Dovecot's "+"."""

    @classmethod
    def setUpClass(cls):
        super(ImapBase, cls).setUpClass()
        cls.dport = h.free_port()
        conf = "\nimap_literal_minus = yes" + h.dovecot_imap_conf(cls.dport)
        cls.dove = h.Dovecot(cls.tmp, protocols="imap", extra_conf=conf)
        cls.dove.start()
        h.wait_port(cls.dport, timeout=15)

    def test_append_large_sync_upstream(self):
        gw = self.start()
        # The start-up probe of the upstream logs its capabilities shortly after the listener is up.
        self.assertTrue(h.wait_for(lambda: "LITERAL-" in gw.log_text(), timeout=10), gw.log_text())
        c = self.tls_client(gw)
        self.login(c)
        body = msg("large sync", body="z" * 70 + "\r\n" * 200 + "line\r\n" * 3000)
        self.assertGreater(len(body), 4096)
        r = self.append_sync(c, body)
        m = re.match(rb"^t\d+ OK \[APPENDUID \d+ (\d+)\]", r[-1])
        self.assertIsNotNone(m, r)
        self.assertIn("literal=sync", gw.log_text())
        # an upstream refusal instead of "+" is relayed with the client's tag
        r = self.append_sync(c, body, args="NoSuchMailbox")
        self.assertRegex(r[-1], rb"^t\d+ NO \[TRYCREATE\]")
        self.assertIn(b" OK ", c.cmd("NOOP")[-1])
        d = self.direct()
        got = fetch_literals(d.cmd("UID FETCH %s (BODY.PEEK[])" % m.group(1).decode()))
        self.assertEqual(list(got.values()), [b"X-Test-Filter: passed\r\n" + body])


@unittest.skipUnless(PLUGIN and os.path.exists(PLUGIN), "PORTCULLIS_TEST_PLUGIN not set")
class SectionFetch(ImapBase):
    """Sections and partials of a message the retrieve hook withholds are replaced by a notice;
    those of a clean message pass byte-exact; verdicts are cached per worker."""
    seed = [msg("clean one"), msg("bad one", extra="X-Test-Verdict: reject\r\n"),
            msg("clean two")]

    def start(self):
        return self.imap_gateway(tls="implicit", top={"plugins": [PLUGIN]},
                                 filters=[{"name": "testmark", "timeout": "2s"}])

    def both(self, gw):
        c = self.tls_client(gw)
        self.login(c)
        self.assertIn(b" OK ", c.cmd("SELECT INBOX")[-1])
        d = self.imap(self.dport)
        self.login(d)
        self.assertIn(b" OK ", d.cmd("SELECT INBOX")[-1])
        return c, d

    def test_sections_and_partials(self):
        gw = self.start()
        c, d = self.both(gw)
        for cmd in ("FETCH 2 (BODY.PEEK[1])", "FETCH 2 (BODY.PEEK[]<0.100>)",
                    "UID FETCH 2 (BODY.PEEK[HEADER])"):
            r = c.cmd(cmd)
            self.assertRegex(r[-1], rb"^t\d+ OK ", r)
            lit = list(fetch_literals(r).values())
            self.assertEqual(len(lit), 1, r)
            self.assertNotIn(b"X-Test-Verdict", lit[0])
            self.assertIn(b"withheld", lit[0].lower())
            if "<0.100>" in cmd:
                self.assertLessEqual(len(lit[0]), 100)
                self.assertTrue(lit[0].startswith(b"From: Sender <sender@client.test>\r\n"))
        for cmd in ("FETCH 1 (BODY.PEEK[1])", "FETCH 1 (BODY.PEEK[]<0.100>)",
                    "UID FETCH 1:3 (BODY.PEEK[TEXT]<5.10>)", "FETCH 3 (BODY.PEEK[HEADER])",
                    "FETCH 1,3 (UID BODY.PEEK[1.MIME] RFC822.SIZE)"):
            via = [x for x in c.cmd(cmd) if x.startswith(b"* ")]
            direct = [x for x in d.cmd(cmd) if x.startswith(b"* ")]
            if "1:3" in cmd:  # the withheld message's part differs, the others are exact
                self.assertEqual(len(via), 3)
                self.assertEqual(via[0], direct[0])
                self.assertEqual(via[2], direct[2])
                self.assertNotEqual(via[1], direct[1])
            else:
                self.assertEqual(via, direct, cmd)
        self.assertIn(b" OK ", c.cmd("NOOP")[-1])
        log = gw.log_text()
        self.assertIn("source=prescan", log)
        # no internal command leaked to the client
        self.assertNotIn(b"PCX", b"".join(c.cmd("NOOP")))

    def test_cache_hit_no_rescan(self):
        gw = self.start()
        c, _ = self.both(gw)
        r1 = c.cmd("FETCH 2 (BODY.PEEK[1])")
        n_scan = gw.log_text().count("source=prescan")
        self.assertGreaterEqual(n_scan, 1)
        r2 = c.cmd("FETCH 2 (BODY.PEEK[1])")
        self.assertEqual(r1[0], r2[0])  # the same notice, same reference
        self.assertIn(b"withheld", r2[0])
        log = gw.log_text()
        self.assertIn("uid=2 source=cache result=hit action=withheld", log)
        self.assertEqual(log.count("source=prescan"), n_scan)
        # a new session on the same worker uses the cache too; a clean message as well
        c2 = self.tls_client(gw)
        self.login(c2)
        c2.cmd("EXAMINE INBOX")
        c2.cmd("UID FETCH 1 (BODY.PEEK[1])")
        c2.cmd("UID FETCH 1 (BODY.PEEK[1])")
        log = gw.log_text()
        self.assertIn("uid=1 source=cache result=hit action=pass", log)

    def test_pipelined_around_a_section_fetch(self):
        gw = self.start()
        c, _ = self.both(gw)
        c.send("a STORE 2 +FLAGS (\\Flagged)\r\nb FETCH 2 (BODY.PEEK[1])\r\n"
               "c FETCH 1 (FLAGS BODY.PEEK[1])\r\nd NOOP\r\n")
        r = c.until_tagged("d")
        tags = [x.split(b" ")[0] for x in r if not x.startswith(b"* ")]
        self.assertEqual(tags, [b"a", b"b", b"c", b"d"], r)
        self.assertTrue(any(re.match(rb"\* 2 FETCH \(FLAGS \(.*\\Flagged", x) for x in r), r)
        lits = [x for x in r if x.startswith(b"* ") and b"BODY[1]" in x]
        self.assertEqual(len(lits), 2, r)
        self.assertIn(b"withheld", lits[0])
        self.assertTrue(lits[1].endswith(b"Hello from the test.\r\n)\r\n"), lits[1])
        self.assertNotIn(b"PCX", b"".join(r))

    def test_whole_message_verdict_cached(self):
        gw = self.start()
        c, _ = self.both(gw)
        r = c.cmd("UID FETCH 1:3 (BODY.PEEK[])")
        self.assertEqual(len(fetch_literals(r)), 3)
        r = c.cmd("FETCH 1:3 (BODY.PEEK[2])")
        self.assertRegex(r[-1], rb"^t\d+ OK ")
        log = gw.log_text()
        self.assertEqual(log.count("source=cache result=hit"), 3, log[-3000:])
        self.assertNotIn("source=prescan", log)


REFUSED, DEFERRED, SLOW = "127.0.0.5", "127.0.0.7", "127.0.0.8"


@unittest.skipUnless(PLUGIN and os.path.exists(PLUGIN), "PORTCULLIS_TEST_PLUGIN not set")
@unittest.skipUnless(all(h.loopback_alias_ok(a) for a in (REFUSED, DEFERRED, SLOW)),
                     "cannot bind the 127.0.0.x test addresses")
class ConnectCloseHooks(ImapBase):
    """PC_HOOK_CONNECT before the greeting (testmark refuses, defers or never answers by client
    address) and PC_HOOK_CLOSE at the end of every session."""

    def start(self, tls=None):
        opts = {"reject_connect_from": [REFUSED], "tempfail_connect_from": DEFERRED,
                "hang_connect_from": SLOW}
        return self.imap_gateway(tls=tls, top={"plugins": [PLUGIN]},
                                 mailbox={"plaintext_auth": "allow"},
                                 filters=[{"name": "testmark", "timeout": "1s",
                                           "on_error": "continue", "options": opts}])

    def dovecot_logins(self):
        return self.dove.log_text().count("Login: user=<alice>")

    def sid_of(self, gw, client):
        m = re.findall(r"sid=(\S+) event=connect client=%s " % re.escape(client), gw.log_text())
        self.assertTrue(m, "no session from %s" % client)
        return m[-1]

    def session_log(self, gw, sid):
        return "\n".join(x for x in gw.log_text().splitlines() if "sid=%s " % sid in x)

    def test_refused_and_deferred_clients(self):
        gw = self.start()
        logins = self.dovecot_logins()
        # refused: a LOGIN pipelined before the greeting is never read; BYE, close
        c = self.imap(gw.port, source=REFUSED, greeting=False)
        c.send('a LOGIN alice "%s"\r\n' % ALICE_PW)
        data, closed = drain(c)
        self.assertTrue(closed, data)
        self.assertEqual(data, b"* BYE Connection refused by testmark\r\n")
        # deferred: BYE [UNAVAILABLE]
        d = self.imap(gw.port, source=DEFERRED)
        self.assertEqual(d.greeting, b"* BYE [UNAVAILABLE] Connection deferred by testmark\r\n")
        self.assertTrue(d.closed())
        log = gw.log_text()
        self.assertIn('event=connect-refused client=%s action=reject '
                      'reason="Connection refused by testmark"' % REFUSED, log)
        self.assertIn('event=connect-refused client=%s action=tempfail '
                      'reason="Connection deferred by testmark"' % DEFERRED, log)
        for addr in (REFUSED, DEFERRED):
            own = self.session_log(gw, self.sid_of(gw, addr))
            self.assertNotIn("event=login", own)
            self.assertIn("event=disconnect", own)
        # another address is served as usual
        ok = self.imap(gw.port)
        self.assertTrue(ok.greeting.startswith(b"* OK [CAPABILITY "), ok.greeting)
        self.login(ok)
        self.assertIn(b" OK ", ok.cmd("SELECT INBOX")[-1])
        # nothing of the refused client reached Dovecot: only the allowed login did
        self.assertTrue(h.wait_for(lambda: self.dovecot_logins() == logins + 1, timeout=5),
                        self.dove.log_text()[-2000:])

    def test_refused_after_implicit_tls(self):
        gw = self.start(tls="implicit")
        c = self.imap(gw.port, tls_context=self.ca_context(), source=REFUSED)
        self.assertEqual(c.greeting, b"* BYE Connection refused by testmark\r\n")
        self.assertTrue(c.closed())
        own = self.session_log(gw, self.sid_of(gw, REFUSED))
        self.assertLess(own.index("event=tls "), own.index("event=connect-refused"))
        self.assertServes(gw)

    def test_commands_wait_for_the_verdict(self):
        gw = self.start()
        t0 = time.monotonic()
        c = self.imap(gw.port, source=SLOW, greeting=False)
        c.send("a NOOP\r\n")  # before the greeting, while the filter has not answered
        first = c.read_response()
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        self.assertTrue(first.startswith(b"* OK [CAPABILITY "), first)
        self.assertEqual(c.read_response(), b"a OK NOOP completed\r\n")
        self.assertRegex(gw.log_text(), r"filter=testmark hook=connect action=continue "
                         r"time_ms=\d+ error=timeout")

    def test_connect_hook_aborted_when_the_client_leaves(self):
        gw = self.start()
        sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10,
                                        source_address=(SLOW, 0))
        self.assertTrue(h.wait_for(lambda: "event=connect client=%s " % SLOW in gw.log_text()))
        sock.close()
        sid = self.sid_of(gw, SLOW)
        self.assertTrue(h.wait_for(lambda: "event=disconnect" in self.session_log(gw, sid)))
        time.sleep(1.5)  # past the filter's timeout: an aborted run never reports it
        own = self.session_log(gw, sid)
        self.assertNotIn("hook=connect", own)
        self.assertIn("testmark-close protocol=imap client=%s user=-" % SLOW, own)
        self.assertServes(gw)

    def test_close_hook_runs(self):
        gw = self.start()
        c = self.imap(gw.port)
        self.login(c)
        c.cmd("LOGOUT")
        self.assertTrue(c.closed())
        sid = self.sid_of(gw, "127.0.0.1")
        self.assertTrue(h.wait_for(
            lambda: "testmark-close protocol=imap client=127.0.0.1 user=alice"
            in self.session_log(gw, sid)), gw.log_text()[-2000:])
        self.assertIn("filter=testmark hook=close", self.session_log(gw, sid))


class RealClients(ImapBase):

    @unittest.skipUnless(h.have_tool("curl"), "curl not installed")
    def test_curl_imaps(self):
        gw = self.imap_gateway(tls="implicit")
        p = subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert", self.pki["ca"],
                            "--user", "alice:" + ALICE_PW,
                            "imaps://localhost:%d/INBOX;UID=1" % gw.port],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.replace(b"\r\n", b"\n"), SEED[0].replace(b"\r\n", b"\n"))

    @unittest.skipUnless(h.have_tool("mbsync"), "mbsync not installed")
    def test_mbsync_imaps(self):
        gw = self.imap_gateway(tls="implicit")
        d = self.tmp.sub("mbsync-%d" % gw.port)
        local = os.path.join(d, "local")
        os.makedirs(local, exist_ok=True)
        rc = os.path.join(d, "mbsyncrc")
        with open(rc, "w") as f:
            f.write("IMAPAccount gw\nHost localhost\nPort %d\nUser alice\nPass %s\n"
                    "SSLType IMAPS\nCertificateFile %s\nAuthMechs LOGIN PLAIN\n\n"
                    "IMAPStore remote\nAccount gw\n\n"
                    "MaildirStore local\nPath %s/\nInbox %s/INBOX\n\n"
                    "Channel sync\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Near\n"
                    "SyncState *\n" % (gw.port, ALICE_PW, self.pki["ca"], local, local))
        p = subprocess.run(["mbsync", "-c", rc, "-a"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60, cwd=d)
        out = p.stdout.decode(errors="replace")
        if "CertificateFile" in out and "unknown" in out.lower():
            self.skipTest("mbsync too old for this config: " + out[:200])
        self.assertEqual(p.returncode, 0, out)
        files = []
        for sub in ("cur", "new"):
            dd = os.path.join(local, "INBOX", sub)
            if os.path.isdir(dd):
                for x in os.listdir(dd):
                    with open(os.path.join(dd, x), "rb") as f:
                        files.append(f.read())
        self.assertEqual(len(files), len(SEED), out)
        self.assertTrue(any(b"Subject: second" in x for x in files))


if __name__ == "__main__":
    unittest.main()
