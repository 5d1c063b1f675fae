"""POP3 through the gateway against a private Dovecot (protocols = pop3): the same session through the
gateway and directly gives the same answers (after normalisation: the greeting and CAPA are the
gateway's own and are not compared); login in each TLS mode on both legs; plaintext credentials
refused before STLS; STLS injection; commands outside the table; APOP; the upstream down; the
retrieve hook (tests/plugins/testmark.c) replacing a message by a notice and tagging the others; and
real clients (curl, fetchmail).

Owns: one Dovecot per class (pop3 on a free port, pop3s with the class PKI, Maildirs seeded fresh),
gateways per test. Everything on 127.0.0.1, stopped by PID.
"""

import base64
import email
import email.policy
import os
import re
import shutil
import socket
import subprocess
import time
import unittest

import harness as h

PLUGIN = os.environ.get("PORTCULLIS_TEST_PLUGIN", "")
USERS = h.Dovecot.users()
ALICE = USERS["alice"]
BOB = USERS["bob"]


def msg(subject, body, extra=""):
    return ("From: Sender <sender@client.test>\r\nTo: alice@example.test\r\nSubject: %s\r\n"
            "Date: Thu, 16 Nov 2023 10:00:00 +0000\r\nMessage-ID: <%s@client.test>\r\n%s\r\n%s"
            % (subject, subject.replace(" ", "-"), extra, body)).encode()


ALICE_MSGS = [
    msg("first", "Hello.\r\n.A line starting with a dot\r\n..two dots\r\n.\r\nend\r\n"),
    msg("second", "".join("line %d of a longer body\r\n" % i for i in range(200))),
    msg("third", "Short.\r\n"),
]
BOB_MSGS = [
    msg("clean one", "Nothing to see.\r\n.dot line\r\n"),
    msg("bad one", "Evil body.\r\n", extra="X-Test-Verdict: reject\r\n"),
]


class Pop3Base(h.GatewayTest):
    plugin = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.up_port = h.free_port()
        cls.up_tls_port = h.free_port()
        cls.dc = h.Dovecot(cls.tmp, protocols="pop3",
                           extra_conf=h.dovecot_pop3_conf(cls.tmp, cls.up_port, cls.up_tls_port, cls.pki))
        h.seed_maildir(cls.dc, "alice", ALICE_MSGS)
        h.seed_maildir(cls.dc, "bob", BOB_MSGS)
        try:
            cls.dc.start()
            h.wait_port(cls.up_port, proc=cls.dc.proc)
            h.wait_port(cls.up_tls_port, proc=cls.dc.proc)
        except Exception:
            cls.dc.stop()
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.dc.stop()
        super().tearDownClass()

    def pop_gateway(self, tls=None, upstream=None, mailbox=None, top=None, **over):
        port = h.free_port()
        if mailbox:
            over["mailbox"] = mailbox
        up_port = over.pop("up_port", self.up_port)
        lst = h.pop3_listener_config(port, up_port, tls=tls, pki=self.pki, upstream=upstream,
                                     **over)
        if self.plugin:
            lst["filters"] = [{"name": "testmark", "timeout": "5s"}]
            top = h.deep_merge({"plugins": [PLUGIN]}, top or {})
        gw = h.Gateway(self.tmp, h.gateway_config(self.tmp, lst, **(top or {})))
        self.addCleanup(self._stop_gateway, gw)
        gw.start()
        return gw

    def pop(self, port, **kw):
        c = h.Pop3Client(port, **kw)
        self.addCleanup(c.close)
        return c

    def assertOK(self, line, msg=None):
        self.assertIsNotNone(line, msg or "connection closed instead of a response")
        self.assertTrue(line.startswith(b"+OK"), msg or line)

    def assertERR(self, line, msg=None):
        self.assertIsNotNone(line, msg or "connection closed instead of a response")
        self.assertTrue(line.startswith(b"-ERR"), msg or line)


SCRIPT = ["STAT", "LIST", "LIST 2", "LIST 9", "UIDL", "UIDL 3", "RETR 1", "RETR 2", "TOP 1 0",
          "TOP 2 3", "RETR 9", "DELE 1", "LIST 1", "RETR 1", "STAT", "RSET", "NOOP", "STAT", "QUIT"]
MULTI = {"LIST", "UIDL", "RETR", "TOP"}


def run_script(c, user, password, script=SCRIPT):
    """[(command, status, body)] for a logged-in session; login answers included."""
    out = [("USER", c.cmd("USER " + user), None), ("PASS", c.cmd("PASS " + password), None)]
    for line in script:
        verb = line.split()[0]
        multi = verb in MULTI and (verb in ("RETR", "TOP") or len(line.split()) == 1)
        if multi:
            st, body = c.cmd_multi(line)
        else:
            st, body = c.cmd(line), None
        out.append((line, st, body))
    return out


def run_pipelined(c, user, password, script=SCRIPT):
    """The whole script (ending in QUIT) sent in one write after login; everything the server
    answered, up to its close."""
    assert c.cmd("USER " + user).startswith(b"+OK")
    assert c.cmd("PASS " + password).startswith(b"+OK")
    c.send("".join(line + "\r\n" for line in script))
    while c._fill():
        pass
    return c.buf


class Pop3OneLinePlaintext(Pop3Base):
    """--plaintext-auth in the one-line mode: a pop3:// listener without a certificate logs a real
    Dovecot user in; without it the start warns that nobody can."""

    def one_line(self, *extra):
        port = h.free_port()
        return self.gateway_args(["--listen", "pop3://127.0.0.1:%d" % port, "--upstream",
                                  "pop3://127.0.0.1:%d" % self.up_port, "--workers", "1"] + list(extra),
                                 port)

    def test_plaintext_auth_flag_logs_in(self):
        gw = self.one_line("--plaintext-auth")
        c = self.pop(gw.port)
        self.assertOK(c.login("alice", ALICE))
        self.assertTrue(c.cmd("STAT").startswith(b"+OK 3 "))
        self.assertNotIn("no client can log in", gw.log_text())
        self.assertIn("mailbox.plaintext_auth=allow", gw.log_text())

    def test_without_the_flag_the_start_warns(self):
        gw = self.one_line()
        self.assertTrue(h.wait_for(lambda: "no client can log in" in gw.log_text(), timeout=5),
                        gw.log_text())
        self.assertIn("listener=listener0 protocol=pop3 tls=none plaintext_auth=never", gw.log_text())
        c = self.pop(gw.port)
        self.assertOK(c.greeting)
        self.assertERR(c.login("alice", ALICE))


class Pop3Session(Pop3Base):

    def test_pipelined_session_matches_direct(self):
        """RFC 2449 §6.6: a client that pipelines the whole script (three times over) in one
        write gets exactly what Dovecot answers to the same pipeline (the gateway pipelines upstream
        too when Dovecot announces PIPELINING; the answers must stay in order and complete)."""
        script = [x for x in SCRIPT if x != "QUIT"] * 3 + ["STAT", "QUIT"]
        gw = self.pop_gateway(mailbox={"plaintext_auth": "allow"})
        via = run_pipelined(self.pop(gw.port), "alice", ALICE, script)
        direct = run_pipelined(self.pop(self.up_port), "alice", ALICE, script)
        self.assertEqual(via, direct)
        self.assertGreater(len(via), 3 * sum(len(m) for m in ALICE_MSGS))
        self.assertIn(b"+OK Logging out", via[-40:])
        line = h.wait_for(lambda: [x for x in gw.log_text().splitlines()
                                   if "event=disconnect proto=pop3" in x and "user=alice" in x])
        self.assertTrue(line, gw.log_text()[-2000:])
        f = dict(kv.split("=", 1) for kv in line[0].split() if "=" in kv)
        self.assertEqual(int(f["commands"]), 2 + len(script))
        self.assertGreaterEqual(int(f["bytes_out"]), len(via))
        self.assertGreaterEqual(int(f["bytes_in"]), sum(len(x) + 2 for x in script))

    def test_pipelined_slow_reader(self):
        """A deep pipeline (about 4.5 MB of answers) to a client that does not read for a while:
        the gateway stops reading the upstream past its output limit (1 MiB queued) with commands
        still in flight, resumes when the client drains, and every answer arrives complete and in
        order, as Dovecot gives them directly."""
        script = ["RETR 2", "LIST 2", "UIDL 1", "RETR 1", "STAT"] * 800 + ["QUIT"]
        gw = self.pop_gateway(mailbox={"plaintext_auth": "allow"})
        c = self.pop(gw.port)
        self.assertOK(c.login("alice", ALICE))
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.send("".join(line + "\r\n" for line in script))
        time.sleep(1.5)  # the gateway's queue to us fills up: the upstream is paused
        via, closed = h.drain(c, timeout=60)
        self.assertTrue(closed)
        direct = run_pipelined(self.pop(self.up_port), "alice", ALICE, script)
        self.assertEqual(len(via), len(direct))
        self.assertEqual(via, direct)
        self.assertTrue(gw.alive())

    def test_session_matches_direct(self):
        """Normalisation: greetings differ (the gateway's own) and CAPA is not compared; every other
        status line and body is byte-identical."""
        gw = self.pop_gateway(mailbox={"plaintext_auth": "allow"})
        via = run_script(self.pop(gw.port), "alice", ALICE)
        direct = run_script(self.pop(self.up_port), "alice", ALICE)
        self.assertEqual(len(via), len(direct))
        for (cmd, st1, b1), (_, st2, b2) in zip(via, direct):
            self.assertEqual(st1, st2, cmd)
            self.assertEqual(b1, b2, cmd)
        self.assertOK(via[1][1])
        # the body really went through: dot-stuffed lines survive
        retr1 = [b for c, s, b in via if c == "RETR 1"][0]
        self.assertIn(b"\r\n..A line starting with a dot\r\n", retr1)
        self.assertEqual(h.unstuff(retr1), ALICE_MSGS[0])
        log = gw.log_text()
        self.assertIn("event=disconnect proto=pop3", log)
        self.assertNotIn(ALICE, log)

    def test_greeting_and_capa_before_login(self):
        gw = self.pop_gateway(tls="starttls")
        c = self.pop(gw.port)
        self.assertEqual(c.greeting, b"+OK Portcullis POP3 ready.")
        st, body = c.cmd_multi("CAPA")
        self.assertOK(st)
        caps = body.split(b"\r\n")
        self.assertIn(b"STLS", caps)
        self.assertIn(b"UIDL", caps)
        self.assertNotIn(b"USER", caps)  # plaintext refused: not offered
        self.assertFalse([x for x in caps if x.startswith(b"SASL")])
        self.assertIn(b"PIPELINING", caps)  # the gateway reads pipelined commands in order
        self.assertERR(c.cmd("NOOP"))
        self.assertERR(c.cmd("STAT"))
        self.assertOK(c.cmd("QUIT"))
        self.assertTrue(c.closed())

    def test_plaintext_refused_then_stls_login(self):
        gw = self.pop_gateway(tls="starttls")
        c = self.pop(gw.port)
        st = c.cmd("USER alice")
        self.assertTrue(st.startswith(b"-ERR [AUTH]"), st)
        self.assertTrue(c.cmd("PASS " + ALICE).startswith(b"-ERR [AUTH]"))
        self.assertTrue(c.cmd("AUTH PLAIN " + base64.b64encode(b"\0alice\0" + ALICE.encode())
                              .decode()).startswith(b"-ERR [AUTH]"))
        self.assertOK(c.stls(self.ca_context()))
        st, body = c.cmd_multi("CAPA")
        caps = body.split(b"\r\n")
        self.assertNotIn(b"STLS", caps)
        self.assertIn(b"USER", caps)
        self.assertIn(b"SASL PLAIN", caps)
        self.assertOK(c.login("alice", ALICE))
        st = c.cmd("STAT")
        self.assertTrue(st.startswith(b"+OK 3 "), st)
        log = gw.log_text()
        self.assertNotIn(ALICE, log)

    def test_stls_injection_discarded(self):
        gw = self.pop_gateway(tls="starttls")
        c = self.pop(gw.port)
        c.send(b"STLS\r\nUSER alice\r\n")
        st = c.read_line()
        self.assertOK(st)
        import ssl
        c.sock = self.ca_context().wrap_socket(c.sock, server_hostname="localhost")
        c.buf = b""
        # the USER line was never answered, nor remembered
        st, body = c.cmd_multi("CAPA")
        self.assertEqual(st, b"+OK Capability list follows")
        self.assertTrue(c.cmd("PASS " + ALICE).startswith(b"-ERR No user name"))
        del ssl
        self.assertIn("event=stls-injection", gw.log_text())

    def test_pop3s_and_auth_plain(self):
        gw = self.pop_gateway(tls="implicit")
        c = self.pop(gw.port, tls_context=self.ca_context())
        self.assertEqual(c.greeting, b"+OK Portcullis POP3 ready.")
        ir = base64.b64encode(b"\0alice\0" + ALICE.encode()).decode()
        self.assertOK(c.cmd("AUTH PLAIN " + ir))
        self.assertTrue(c.cmd("STAT").startswith(b"+OK 3 "))
        self.assertOK(c.cmd("QUIT"))
        # the "+ " continuation form
        c = self.pop(gw.port, tls_context=self.ca_context())
        self.assertEqual(c.cmd("AUTH PLAIN"), b"+ ")
        self.assertOK(c.cmd(ir))
        self.assertTrue(c.cmd("STAT").startswith(b"+OK 3 "))
        log = gw.log_text()
        self.assertNotIn(ALICE, log)
        self.assertNotIn(ir, log)
        self.assertIn("user=alice", log)

    def test_upstream_pop3s_and_stls(self):
        for mode, port in (("implicit", self.up_tls_port), ("starttls", self.up_port)):
            with self.subTest(upstream=mode):
                gw = self.pop_gateway(tls="implicit", up_port=port,
                                      upstream={"tls": mode, "ca_file": self.pki["ca"],
                                                "sni": "localhost"})
                c = self.pop(gw.port, tls_context=self.ca_context())
                self.assertOK(c.login("alice", ALICE))
                st, body = c.cmd_multi("RETR 3")
                self.assertOK(st)
                self.assertEqual(h.unstuff(body), ALICE_MSGS[2])

    def test_upstream_name_mismatch_fails_closed(self):
        gw = self.pop_gateway(tls="implicit", up_port=self.up_tls_port,
                              upstream={"tls": "implicit", "ca_file": self.pki["ca"],
                                        "sni": "wrong.test"})
        c = self.pop(gw.port, tls_context=self.ca_context())
        self.assertOK(c.cmd("USER alice"))
        st = c.cmd("PASS " + ALICE)
        self.assertTrue(st.startswith(b"-ERR [SYS/TEMP]"), st)
        self.assertTrue(c.closed())

    def test_unknown_command_after_login(self):
        gw = self.pop_gateway(mailbox={"plaintext_auth": "allow"})
        c = self.pop(gw.port)
        self.assertOK(c.login("alice", ALICE))
        self.assertERR(c.cmd("XYZZY"))
        self.assertERR(c.cmd("USER bob"))
        self.assertERR(c.cmd("LAST"))
        self.assertTrue(c.cmd("STAT").startswith(b"+OK 3 "))
        st, body = c.cmd_multi("CAPA")
        self.assertOK(st)
        self.assertNotIn(b"SASL", body)
        self.assertIn(b"PIPELINING", body)

    def test_apop_refused(self):
        gw = self.pop_gateway(mailbox={"plaintext_auth": "allow"})
        c = self.pop(gw.port)
        st = c.cmd("APOP alice c4c9334bac560ecc979e58001b3e22fb")
        self.assertERR(st)
        self.assertIn(b"APOP", st)
        self.assertOK(c.login("alice", ALICE))

    def test_upstream_down(self):
        gw = self.pop_gateway(mailbox={"plaintext_auth": "allow"}, up_port=h.free_port())
        c = self.pop(gw.port)
        self.assertOK(c.cmd("USER alice"))
        st = c.cmd("PASS " + ALICE)
        self.assertTrue(st.startswith(b"-ERR [SYS/TEMP]"), st)
        self.assertTrue(c.closed())

    def test_failed_logins_close_the_session(self):
        gw = self.pop_gateway(mailbox={"plaintext_auth": "allow", "auth_failures": 2})
        c = self.pop(gw.port)
        self.assertERR(c.login("alice", "wrong-password-1"))
        st = c.login("alice", "wrong-password-2")
        self.assertERR(st)
        self.assertTrue(c.closed())
        self.assertNotIn("wrong-password", gw.log_text())

    def test_long_line_and_errors_limit(self):
        gw = self.pop_gateway(mailbox={"errors": 3})
        c = self.pop(gw.port)
        self.assertERR(c.cmd("NOOP " + "x" * 400))
        self.assertERR(c.cmd("BOGUS"))
        self.assertERR(c.cmd("BOGUS"))
        self.assertTrue(c.closed())

    def test_client_lost_does_not_commit_deletes(self):
        gw = self.pop_gateway(mailbox={"plaintext_auth": "allow"})
        c = self.pop(gw.port)
        self.assertOK(c.login("alice", ALICE))
        self.assertOK(c.cmd("DELE 3"))
        c.close()
        h.wait_until(lambda: "event=disconnect" in gw.log_text(), timeout=5)
        d = self.pop(self.up_port)
        self.assertOK(d.login("alice", ALICE))
        self.assertTrue(d.cmd("STAT").startswith(b"+OK 3 "))


class Pop3Clients(Pop3Base):

    def test_curl_pop3s(self):
        if not shutil.which("curl"):
            self.skipTest("curl not installed")
        gw = self.pop_gateway(tls="implicit")
        out = subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert", self.pki["ca"],
                              "-u", "alice:" + ALICE, "pop3s://127.0.0.1:%d/1" % gw.port],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, ALICE_MSGS[0])
        out = subprocess.run(["curl", "-sS", "--max-time", "20", "--ssl-reqd", "--cacert",
                              self.pki["ca"], "-u", "alice:" + ALICE,
                              "pop3://127.0.0.1:%d/" % self.pop_gateway(tls="starttls").port],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(len(out.stdout.strip().split(b"\r\n")), 3, out.stdout)

    def test_fetchmail_pop3s(self):
        if not shutil.which("fetchmail"):
            self.skipTest("fetchmail not installed")
        gw = self.pop_gateway(tls="implicit")
        d = self.tmp.sub("fetchmail")
        out = os.path.join(d, "mbox")
        rc = os.path.join(d, "fetchmailrc")
        with open(rc, "w") as f:
            f.write('set no bouncemail\nset no syslog\n'
                    'poll 127.0.0.1 protocol pop3 port %d timeout 20\n'
                    '  username "alice" password "%s"\n'
                    '  ssl sslcertck sslcertfile "%s" sslcommonname localhost\n'
                    '  keep mda "cat >> %s"\n' % (gw.port, ALICE, self.pki["ca"], out))
        os.chmod(rc, 0o600)
        env = dict(os.environ, HOME=d)
        p = subprocess.run(["fetchmail", "-f", rc, "-i", os.path.join(d, "ids"), "--nodetach",
                            "-a", "-v"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env=env, timeout=60)
        self.assertIn(p.returncode, (0,), p.stdout.decode(errors="replace")[-3000:])
        with open(out, "rb") as f:
            got = f.read()
        for m in ALICE_MSGS:
            subj = email.message_from_bytes(m).get("Subject")
            self.assertIn(("Subject: %s" % subj).encode(), got)
        self.assertIn(b"line 199 of a longer body", got)


@unittest.skipUnless(PLUGIN and os.path.exists(PLUGIN), "PORTCULLIS_TEST_PLUGIN (built by CMake) not set")
class Pop3Filters(Pop3Base):
    plugin = True

    def direct(self, user, pw, cmds):
        d = self.pop(self.up_port)
        self.assertOK(d.login(user, pw))
        return [d.cmd_multi(x) for x in cmds]

    def test_reject_is_replaced_by_a_notice(self):
        gw = self.pop_gateway(mailbox={"plaintext_auth": "allow"})
        c = self.pop(gw.port)
        self.assertOK(c.login("bob", BOB))
        st, uidl = c.cmd_multi("UIDL")
        (dst, duidl), = self.direct("bob", BOB, ["UIDL"])
        self.assertEqual(uidl, duidl)  # same UIDL
        for attempt in range(2):  # the second one comes from the verdict cache
            st, body = c.cmd_multi("RETR 2")
            self.assertOK(st)
            notice = h.unstuff(body)
            self.assertNotIn(b"Evil body", notice)
            m = email.message_from_bytes(notice, policy=email.policy.default)
            self.assertIn("bad one", m["Subject"])
            self.assertEqual(m["From"], "Sender <sender@client.test>")
            self.assertEqual(m["Date"], "Thu, 16 Nov 2023 10:00:00 +0000")
            text = m.get_content()
            self.assertIn("Marked for rejection by testmark", text)
            self.assertIn("TESTMARK_REJECT", text)
            self.assertRegex(text, r"Reference: [0-9a-f]{16}-2")
        st, body = c.cmd_multi("TOP 2 0")
        self.assertOK(st)
        self.assertNotIn(b"Evil", body)
        self.assertTrue(body.endswith(b"\r\n\r\n"), body)
        log = gw.log_text()
        self.assertIn("verdict=rejected", log)
        self.assertIn("cached=1", log)

    def test_clean_message_is_tagged_and_otherwise_exact(self):
        gw = self.pop_gateway(mailbox={"plaintext_auth": "allow"})
        c = self.pop(gw.port)
        self.assertOK(c.login("bob", BOB))
        st, body = c.cmd_multi("RETR 1")
        (dst, dbody), = self.direct("bob", BOB, ["RETR 1"])
        self.assertOK(st)
        self.assertTrue(body.startswith(b"X-Test-Filter: passed\r\n"), body[:200])
        self.assertEqual(body[len(b"X-Test-Filter: passed\r\n"):], dbody)
        self.assertEqual(h.unstuff(dbody), BOB_MSGS[0])

    def test_oversize_passes_unscanned(self):
        gw = self.pop_gateway(mailbox={"plaintext_auth": "allow", "scan_max": 64})
        c = self.pop(gw.port)
        self.assertOK(c.login("bob", BOB))
        st, body = c.cmd_multi("RETR 2")
        self.assertOK(st)
        self.assertEqual(h.unstuff(body), BOB_MSGS[1])
        self.assertIn("reason=scan_max", gw.log_text())

    def test_oversize_refused(self):
        gw = self.pop_gateway(mailbox={"plaintext_auth": "allow", "scan_max": 64,
                                       "oversize": "refuse"})
        c = self.pop(gw.port)
        self.assertOK(c.login("bob", BOB))
        self.assertERR(c.cmd("RETR 2"))
        self.assertTrue(c.cmd("STAT").startswith(b"+OK 2 "))


REFUSED, DEFERRED, SLOW = "127.0.0.5", "127.0.0.7", "127.0.0.8"


@unittest.skipUnless(PLUGIN and os.path.exists(PLUGIN), "PORTCULLIS_TEST_PLUGIN not set")
@unittest.skipUnless(all(h.loopback_alias_ok(a) for a in (REFUSED, DEFERRED, SLOW)),
                     "cannot bind the 127.0.0.x test addresses")
class Pop3ConnectCloseHooks(Pop3Base):
    """PC_HOOK_CONNECT before the greeting (testmark refuses, defers or never answers by client
    address: the greeting is then -ERR [SYS/PERM] / [SYS/TEMP] and the session closes) and
    PC_HOOK_CLOSE at the end of every session."""

    def start(self, tls=None):
        opts = {"reject_connect_from": [REFUSED], "tempfail_connect_from": DEFERRED,
                "hang_connect_from": SLOW}
        port = h.free_port()
        lst = h.pop3_listener_config(port, self.up_port, tls=tls, pki=self.pki,
                                     mailbox={"plaintext_auth": "allow"})
        lst["filters"] = [{"name": "testmark", "timeout": "1s", "on_error": "continue",
                           "options": opts}]
        gw = h.Gateway(self.tmp, h.gateway_config(self.tmp, lst, plugins=[PLUGIN]))
        self.addCleanup(self._stop_gateway, gw)
        gw.start()
        return gw

    def session_log(self, gw, client):
        sids = re.findall(r"sid=(\S+) event=connect proto=pop3 client=%s " % re.escape(client),
                          gw.log_text())
        self.assertTrue(sids, "no session from %s" % client)
        return "\n".join(x for x in gw.log_text().splitlines() if "sid=%s " % sids[-1] in x)

    def test_refused_and_deferred_clients(self):
        gw = self.start()
        logins = self.dc.log_text().count("Login: user=<alice>")
        c = self.pop(gw.port, source=REFUSED, greeting=False)
        c.send("USER alice\r\nPASS %s\r\n" % ALICE)  # sent before the greeting: never read
        self.assertEqual(c.read_line(), b"-ERR [SYS/PERM] Connection refused by testmark")
        self.assertTrue(c.closed())
        d = self.pop(gw.port, source=DEFERRED)
        self.assertEqual(d.greeting, b"-ERR [SYS/TEMP] Connection deferred by testmark")
        self.assertTrue(d.closed())
        log = gw.log_text()
        self.assertIn('event=connect-refused client=%s action=reject '
                      'reason="Connection refused by testmark"' % REFUSED, log)
        self.assertIn('event=connect-refused client=%s action=tempfail' % DEFERRED, log)
        self.assertNotIn("event=auth", self.session_log(gw, REFUSED))
        ok = self.pop(gw.port)
        self.assertEqual(ok.greeting, b"+OK Portcullis POP3 ready.")
        self.assertOK(ok.login("alice", ALICE))
        self.assertTrue(ok.cmd("STAT").startswith(b"+OK 3 "))
        self.assertTrue(h.wait_for(
            lambda: self.dc.log_text().count("Login: user=<alice>") == logins + 1, timeout=5))

    def test_refused_after_implicit_tls(self):
        gw = self.start(tls="implicit")
        c = self.pop(gw.port, tls_context=self.ca_context(), source=REFUSED)
        self.assertEqual(c.greeting, b"-ERR [SYS/PERM] Connection refused by testmark")
        self.assertTrue(c.closed())
        own = self.session_log(gw, REFUSED)
        self.assertLess(own.index("event=tls "), own.index("event=connect-refused"))

    def test_commands_wait_for_the_verdict(self):
        gw = self.start()
        t0 = time.monotonic()
        c = self.pop(gw.port, source=SLOW, greeting=False)
        c.send("CAPA\r\n")  # before the greeting, while the filter has not answered
        self.assertEqual(c.read_line(), b"+OK Portcullis POP3 ready.")
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        self.assertOK(c.read_line())
        self.assertRegex(gw.log_text(), r"filter=testmark hook=connect action=continue "
                         r"time_ms=\d+ error=timeout")

    def test_close_hook_runs(self):
        gw = self.start()
        c = self.pop(gw.port)
        self.assertOK(c.login("alice", ALICE))
        self.assertOK(c.cmd("QUIT"))
        self.assertTrue(h.wait_for(
            lambda: "testmark-close protocol=pop3 client=127.0.0.1 user=alice" in gw.log_text()))
        s = socket.create_connection(("127.0.0.1", gw.port), timeout=10, source_address=(SLOW, 0))
        self.assertTrue(h.wait_for(lambda: "client=%s " % SLOW in gw.log_text()))
        s.close()  # gone while the CONNECT hook runs: the run is aborted, the CLOSE hook runs
        self.assertTrue(h.wait_for(
            lambda: "testmark-close protocol=pop3 client=%s user=-" % SLOW in gw.log_text()))
        time.sleep(1.5)  # past the filter's timeout: an aborted run never reports it
        self.assertNotIn("hook=connect", self.session_log(gw, SLOW))


class Pop3BuiltinFilters(Pop3Base):
    """The built-in CONNECT filters on a POP3 listener answer in POP3 (filters/README.md)."""

    def test_pregreet(self):
        port = h.free_port()
        lst = h.pop3_listener_config(port, self.up_port, mailbox={"plaintext_auth": "allow"})
        lst["filters"] = [{"name": "pregreet", "timeout": "5s",
                           "options": {"delay": "700ms", "action": "reject"}}]
        gw = h.Gateway(self.tmp, h.gateway_config(self.tmp, lst))
        self.addCleanup(self._stop_gateway, gw)
        gw.start()
        bot = self.pop(gw.port, greeting=False)
        bot.send("USER alice\r\n")  # before the greeting
        self.assertEqual(bot.read_line(), b"-ERR [SYS/PERM] Protocol error: talked before greeting")
        self.assertTrue(bot.closed())
        c = self.pop(gw.port)  # a client that waits gets the greeting and is served
        self.assertEqual(c.greeting, b"+OK Portcullis POP3 ready.")
        self.assertOK(c.login("alice", ALICE))
        self.assertIn("PREGREET", gw.log_text())


class FakePop3Upstream:
    """A scripted POP3 upstream on 127.0.0.1 (one thread, one connection at a time): records every
    line it receives; `mode` picks the misbehaviour: 'stls-inject' (bytes after +OK to STLS),
    'no-stls' (CAPA without STLS), 'drop-on-stat' (closes the connection at STAT)."""

    def __init__(self, mode):
        import socket
        import threading
        self.mode = mode
        self.lines = []
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.srv.settimeout(0.2)
        self.port = self.srv.getsockname()[1]
        self.stop_flag = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        import socket
        while not self.stop_flag:
            try:
                conn, _ = self.srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                self.serve(conn)
            except OSError:
                pass
            finally:
                conn.close()

    def serve(self, conn):
        f = conn.makefile("rb")
        conn.sendall(b"+OK fake ready\r\n")
        while True:
            line = f.readline()
            if not line:
                return
            line = line.rstrip(b"\r\n")
            self.lines.append(line)
            verb = line.split(b" ")[0].upper()
            if verb == b"CAPA":
                caps = b"USER\r\nUIDL\r\nTOP\r\nSASL PLAIN\r\n"
                if self.mode != "no-stls":
                    caps += b"STLS\r\n"
                conn.sendall(b"+OK\r\n" + caps + b".\r\n")
            elif verb == b"STLS":
                conn.sendall(b"+OK Begin TLS\r\n+OK injected\r\n")
            elif verb == b"STAT" and self.mode == "drop-on-stat":
                return
            elif verb == b"QUIT":
                conn.sendall(b"+OK bye\r\n")
                return
            else:
                conn.sendall(b"+OK\r\n")

    def stop(self):
        self.stop_flag = True
        self.srv.close()
        self.t.join(5)


class Pop3UpstreamFaults(h.GatewayTest):

    def fake(self, mode):
        up = FakePop3Upstream(mode)
        self.addCleanup(up.stop)
        return up

    def gw(self, up, **upstream):
        port = h.free_port()
        lst = h.pop3_listener_config(port, up.port, upstream=upstream,
                                     mailbox={"plaintext_auth": "allow"})
        g = h.Gateway(self.tmp, h.gateway_config(self.tmp, lst))
        self.addCleanup(self._stop_gateway, g)
        g.start()
        return g

    def login_fails_closed(self, g, up):
        c = h.Pop3Client(g.port)
        self.addCleanup(c.close)
        self.assertTrue(c.cmd("USER alice").startswith(b"+OK"))
        st = c.cmd("PASS " + ALICE)
        self.assertTrue(st is not None and st.startswith(b"-ERR [SYS/TEMP]"), st)
        self.assertTrue(c.closed())
        sent = b"\n".join(up.lines)
        self.assertNotIn(ALICE.encode(), sent)
        self.assertNotIn(b"USER", sent)

    def test_upstream_stls_injection_fails_closed(self):
        up = self.fake("stls-inject")
        g = self.gw(up, tls="starttls", verify=False)
        self.login_fails_closed(g, up)
        self.assertIn("injection", g.log_text())

    def test_upstream_without_stls_fails_closed(self):
        up = self.fake("no-stls")
        g = self.gw(up, tls="starttls", verify=False)
        self.login_fails_closed(g, up)
        self.assertIn("does not offer STLS", g.log_text())

    def test_upstream_dropped_mid_session(self):
        up = self.fake("drop-on-stat")
        g = self.gw(up)
        c = h.Pop3Client(g.port)
        self.addCleanup(c.close)
        self.assertTrue(c.login("alice", ALICE).startswith(b"+OK"))
        st = c.cmd("STAT")
        self.assertTrue(st is not None and st.startswith(b"-ERR [SYS/TEMP]"), st)
        self.assertTrue(c.closed())
        self.assertTrue(g.alive())


if __name__ == "__main__":
    unittest.main()
