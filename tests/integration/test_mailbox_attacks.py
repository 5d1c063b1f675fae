"""Attack and fault tests for the IMAP and POP3 upstream legs, against hostile_mailbox.HostileMailbox
(a deliberately misbehaving upstream): THREATS.md rows "STARTTLS response injection (upstream)",
"STARTTLS stripping / PREAUTH (upstream)", "Upstream reply abuse", "IMAP literal abuse" (from the
server side) and the forwarded identity (PROXY v2, IMAP ID) as the upstream sees it.

Every row: the gateway fails closed before any credential leaves it, or closes the session cleanly
within a bounded wait, and keeps serving (a new session works, the process is alive, its VmRSS stays
under RSS_MAX). Each row that needs the hostile server to behave well for the rest has a positive
control (record mode) so that a refusal proves the defence, not a broken fake.

Owns: one PKI per class (harness), a HostileMailbox and a gateway per test, clients; all on
127.0.0.1, servers stopped by PID (gateway) or closed and joined (HostileMailbox) in cleanups.
"""

import os
import ssl
import time
import unittest

import harness as h
from hostile_mailbox import HostileMailbox

PLUGIN = os.environ.get("PORTCULLIS_TEST_PLUGIN", "")

PASSWORD = "s3cret-Pw-for-hostile"
CLIENT_ADDR = "127.0.0.5"
RSS_MAX_KB = 200 * 1024
SESSION_WAIT = 20.0  # bounded wait for a session to end (the gateway's reply timeout is 5 min)


def vmrss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def read_until_close(sock, timeout=SESSION_WAIT, cap=64 << 20):
    return h.read_until_close(sock, timeout, cap)


class MailboxAttackBase(h.GatewayTest):
    proto = "imap"

    def mailbox(self, mode="record", tls=None, **kw):
        """A HostileMailbox; tls: None, 'starttls' (offers it with the class cert) or 'implicit'."""
        ctx = self.server_tls_context() if tls else None
        up = HostileMailbox(self.proto, mode, tls_context=ctx, implicit=tls == "implicit", **kw)
        up.start()
        self.addCleanup(up.stop)
        return up

    def mail_gateway(self, up, tls="none", identity="none", mailbox=None, **upstream):
        port = h.free_port()
        mb = {"plaintext_auth": "allow"}
        mb.update(mailbox or {})
        ups = {"tls": tls, "client_identity": identity, "ca_file": self.pki["ca"], "verify": True,
               "reply_timeout": "60s", "connect_timeout": "5s"}
        ups.update(upstream)
        if self.proto == "imap":
            lst = h.imap_listener_config(port, up.port, mailbox=mb, upstream=ups)
        else:
            lst = h.pop3_listener_config(port, up.port, upstream=ups, mailbox=mb)
        gw = h.Gateway(self.tmp, h.gateway_config(self.tmp, lst))
        self.addCleanup(self._stop_gateway, gw)
        gw.start()
        return gw

    def assertNoCredentials(self, up, verbs):
        sent = up.all_bytes()
        self.assertNotIn(PASSWORD.encode(), sent)
        for v in verbs:
            self.assertEqual(up.sessions_with(v), [], "%s reached the upstream" % v)

    def assertAliveSmall(self, gw):
        self.assertTrue(gw.alive(), "gateway died; log:\n" + gw.log_text()[-3000:])
        rss = vmrss_kb(gw.proc.pid)
        self.assertLess(rss, RSS_MAX_KB, "gateway VmRSS %d kB" % rss)

    def assertProxyV2(self, up, verb, gw, c):
        """Exactly one upstream session got `verb`, after a valid PROXY v2 header naming client c
        (from CLIENT_ADDR) and the gateway's listener."""
        sess = up.sessions_with(verb)
        self.assertEqual(len(sess), 1)
        p = sess[0].proxy
        self.assertTrue(p and p["valid"], p)
        self.assertEqual(p["src"], CLIENT_ADDR)
        self.assertEqual(p["dst"], "127.0.0.1")
        self.assertEqual(p["dport"], gw.port)
        self.assertEqual(p["sport"], c.sock.getsockname()[1])


# ---------------------------------------------------------------------------------------- IMAP

class TrickleTests:
    """THREATS.md "Oversize and slow clients": the pre-login and idle timeouts are deadlines for a
    whole command line, so a client sending one byte every 0.5 s is closed on time, before and
    after login. (Mixed into each protocol's class below.)"""

    def test_trickling_clients_timed_out(self):
        up = self.mailbox("record")
        gw = self.mail_gateway(up, mailbox={"prelogin_timeout": "3s", "idle_timeout": "3s"})
        before = [self.greeted(gw) for _ in range(4)]
        after = [self.logged_in(gw) for _ in range(4)]
        closed = h.trickle_until_close([c.sock for c in before + after], limit=15.0)
        for t in closed:
            self.assertIsNotNone(t, "a trickling client was never timed out: %r" % closed)
            self.assertLess(t, 9.0, closed)
        self.assertServes(gw)


class ImapUpstreamAttacks(TrickleTests, MailboxAttackBase):
    proto = "imap"

    def imap(self, port, source=None):
        c = h.ImapClient(port, source=source)
        self.addCleanup(c.close)
        self.assertTrue(c.greeting.startswith(b"* OK "), c.greeting)
        return c

    def login(self, c):
        return c.cmd('LOGIN alice "%s"' % PASSWORD)

    def greeted(self, gw):
        return self.imap(gw.port)

    def assertLoginUnavailable(self, gw, up):
        c = self.imap(gw.port)
        r = self.login(c)
        self.assertTrue(r, "no answer to LOGIN")
        self.assertRegex(r[-1], rb"^t\d+ NO \[UNAVAILABLE\]")
        self.assertNoCredentials(up, ("LOGIN", "AUTHENTICATE"))
        # the session stays usable in the not-authenticated state, the gateway serves on
        self.assertIn(b" OK ", c.cmd("NOOP")[-1])
        self.assertServes(gw)
        return c

    def test_pipelining_ahead_is_bounded(self):
        """A client may pipeline only a bounded number of commands ahead of the answers: with an
        upstream that answers none, of 2,000 pipelined commands only about 64 reach it; the
        rest stays unread (the gateway's buffer, then the socket), and the session still ends
        cleanly. (The limit is IMAP_PIPELINE_MAX, docs/imap.md.)"""
        up = self.mailbox("mute")
        gw = self.mail_gateway(up)
        c = self.logged_in(gw)
        c.sock.settimeout(5)
        c.sock.sendall(b"".join(b"p%d NOOP\r\n" % i for i in range(2000)))
        self.assertTrue(h.wait_for(lambda: sum(1 for x in up.all_commands() if x.startswith("p"))
                                   >= 64, 10))
        time.sleep(1.0)
        relayed = sum(1 for x in up.all_commands() if x.startswith("p"))
        self.assertLess(relayed, 100, "%d pipelined commands reached the upstream" % relayed)
        self.assertAliveSmall(gw)
        c.close()
        self.assertServes(gw)

    def assertServes(self, gw):
        self.assertTrue(gw.alive(), gw.log_text()[-3000:])
        c = h.ImapClient(gw.port)
        try:
            self.assertTrue(c.greeting.startswith(b"* OK "), c.greeting)
            self.assertIn(b" OK ", c.cmd("NOOP")[-1])
        finally:
            c.close()

    def logged_in(self, gw):
        c = self.imap(gw.port)
        r = self.login(c)
        self.assertIn(b" OK ", r[-1], r)
        return c

    def fetch_until_close(self, mode):
        """A gateway in front of a HostileMailbox in `mode`; a logged-in session selects INBOX and
        sends FETCH 1 BODY[]. Returns (gw, c, data, closed): what came after the FETCH until the
        close (bounded by SESSION_WAIT; c.buf holds what the client had read before)."""
        up = self.mailbox(mode)
        gw = self.mail_gateway(up)
        c = self.logged_in(gw)
        self.assertIn(b" OK ", c.cmd("SELECT INBOX")[-1])
        c.send("t9 FETCH 1 BODY[]\r\n")
        data, closed = read_until_close(c.sock)
        return gw, c, data, closed

    # -- positive controls: the fake behaves, so the refusals below prove the defence
    def test_record_starttls_login_and_fetch(self):
        up = self.mailbox("record", tls="starttls")
        gw = self.mail_gateway(up, tls="starttls")
        c = self.logged_in(gw)
        self.assertIn(b" OK ", c.cmd("SELECT INBOX")[-1])
        r = c.cmd("FETCH 1 BODY.PEEK[]")
        self.assertIn(b" OK ", r[-1])
        self.assertIn(b".A dot line.", b"".join(r))
        sess = up.sessions_with("LOGIN")
        self.assertEqual(len(sess), 1)
        self.assertTrue(sess[0].tls, "credentials went upstream without TLS")

    def test_record_implicit_tls_login(self):
        up = self.mailbox("record", tls="implicit")
        gw = self.mail_gateway(up, tls="implicit")
        self.logged_in(gw)

    # -- STARTTLS stripping / PREAUTH
    def test_preauth_greeting_refused(self):
        for tls in ("none", "implicit"):
            with self.subTest(upstream_tls=tls):
                up = self.mailbox("preauth", tls=None if tls == "none" else "implicit")
                gw = self.mail_gateway(up, tls=tls)
                self.assertLoginUnavailable(gw, up)
                self.assertIn("PREAUTH", gw.log_text())

    def test_missing_starttls_refused(self):
        up = self.mailbox("no_starttls", tls="starttls")
        gw = self.mail_gateway(up, tls="starttls")
        self.assertLoginUnavailable(gw, up)
        self.assertIn("does not offer STARTTLS", gw.log_text())
        self.assertEqual(up.sessions_with("STARTTLS"), [])

    # -- STARTTLS response injection
    def test_starttls_response_injection_refused(self):
        up = self.mailbox("starttls_inject", tls="starttls")
        gw = self.mail_gateway(up, tls="starttls")
        self.assertLoginUnavailable(gw, up)
        self.assertTrue(up.sessions_with("STARTTLS"), "the gateway never tried STARTTLS")
        self.assertIn("upstream-starttls-injection", gw.log_text())

    def test_plaintext_capabilities_not_kept(self):
        """What the upstream announced in plaintext before STARTTLS (an attacker on the path could
        have added LITERAL+) must not become the listener's view of the upstream: a logged-in
        session's CAPABILITY must not change when another session fails after that step."""
        up = self.mailbox("record", tls="starttls", caps=["IMAP4rev1", "ID", "IDLE"],
                          pretls_caps=["LITERAL+", "AUTH=PLAIN"])
        gw = self.mail_gateway(up, tls="starttls")
        c = self.logged_in(gw)
        self.assertNotRegex(b"".join(c.cmd("CAPABILITY")), rb"LITERAL[+-]")
        up.mode = "no_starttls"
        c2 = self.imap(gw.port)
        self.assertRegex(self.login(c2)[-1], rb"^t\d+ NO \[UNAVAILABLE\]")
        self.assertNotRegex(b"".join(c.cmd("CAPABILITY")), rb"LITERAL[+-]")
        self.assertEqual([s.mode for s in up.sessions_with("LOGIN")], ["record"])

    # -- upstream reply abuse after login
    def test_response_cut_mid_literal(self):
        gw, c, data, closed = self.fetch_until_close("cut_literal")
        self.assertTrue(closed, "session not closed within %ss: %r" % (SESSION_WAIT, data[-200:]))
        self.assertTrue((c.buf + data).startswith(b"* 1 FETCH (BODY[] {1000}\r\n"), data[:100])
        self.assertNotIn(b"t9 OK", data)
        self.assertAliveSmall(gw)
        self.assertServes(gw)
        self.logged_in(gw)  # and the next session reaches the upstream again

    def test_cut_literal_gets_no_bye_inside_the_literal(self):
        """When the upstream closes inside a literal (or inside a line after one), the gateway
        writes nothing of its own -- a BYE would land in what the client reads as message bytes or
        as the rest of an unfinished line. The client sees the bytes relayed so far, then the
        close."""
        _gw, c, data, closed = self.fetch_until_close("cut_literal")
        self.assertTrue(closed)
        self.assertEqual(c.buf + data, b"* 1 FETCH (BODY[] {1000}\r\n" + b"y" * 100)

    def test_huge_response_line(self):
        for at in ("command", "greeting"):
            with self.subTest(at=at):
                up = self.mailbox("huge_line", at=at)
                gw = self.mail_gateway(up)
                c = self.imap(gw.port)
                r = self.login(c)
                if at == "greeting":
                    self.assertRegex(r[-1], rb"^t\d+ NO \[UNAVAILABLE\]")
                    self.assertNoCredentials(up, ("LOGIN",))
                else:
                    self.assertIn(b" OK ", r[-1], r)
                    c.send("t9 SELECT INBOX\r\n")
                    data, closed = read_until_close(c.sock)
                    self.assertTrue(closed, "session not closed: %r" % data[-200:])
                    self.assertLess(len(data), 2 << 20, "the huge line went to the client")
                    self.assertIn(b"* BYE", data)
                self.assertAliveSmall(gw)
                self.assertServes(gw)

    def test_literal_bomb(self):
        gw, _c, data, closed = self.fetch_until_close("literal_bomb")
        self.assertTrue(closed, "session not closed: %r" % data[-200:])
        self.assertNotIn(b"99999999999999999999", data)
        self.assertIn(b"* BYE", data)
        self.assertAliveSmall(gw)
        self.assertServes(gw)

    def test_upstream_bye_mid_session(self):
        up = self.mailbox("bye")
        gw = self.mail_gateway(up)
        c = self.logged_in(gw)
        c.send("t9 SELECT INBOX\r\n")
        data, closed = read_until_close(c.sock)
        self.assertTrue(closed, "session not closed: %r" % data)
        # the upstream's BYE reaches the client, and no second one of the gateway's own
        self.assertEqual(data, b"* BYE hostile.test is going away\r\n")
        self.assertAliveSmall(gw)
        self.assertServes(gw)

    # -- the client's identity as the upstream sees it
    @unittest.skipUnless(h.loopback_alias_ok(CLIENT_ADDR), "cannot bind %s" % CLIENT_ADDR)
    def test_identity_imap_id(self):
        up = self.mailbox("record")
        gw = self.mail_gateway(up, identity="imap_id")
        c = self.imap(gw.port, source=CLIENT_ADDR)
        self.assertIn(b" OK ", self.login(c)[-1])
        sess = up.sessions_with("LOGIN")
        self.assertEqual(len(sess), 1)
        cmds = [x.split(" ", 1)[1] for x in sess[0].commands]
        want = 'ID ("x-originating-ip" "%s")' % CLIENT_ADDR
        self.assertIn(want, cmds)
        login_at = [i for i, x in enumerate(cmds) if x.upper().startswith("LOGIN ")][0]
        self.assertLess(cmds.index(want), login_at, cmds)

    @unittest.skipUnless(h.loopback_alias_ok(CLIENT_ADDR), "cannot bind %s" % CLIENT_ADDR)
    def test_identity_proxy_v2(self):
        up = self.mailbox("record", expect_proxy=True)
        gw = self.mail_gateway(up, identity="proxy")
        c = self.imap(gw.port, source=CLIENT_ADDR)
        self.assertIn(b" OK ", self.login(c)[-1])
        self.assertProxyV2(up, "LOGIN", gw, c)


# ---------------------------------------------------------------------------------------- POP3

class Pop3UpstreamAttacks(TrickleTests, MailboxAttackBase):
    proto = "pop3"

    def pop(self, port, source=None):
        c = h.Pop3Client(port, source=source)
        self.addCleanup(c.close)
        self.assertTrue(c.greeting and c.greeting.startswith(b"+OK"), c.greeting)
        return c

    def greeted(self, gw):
        return self.pop(gw.port)

    def login(self, c):
        st = c.cmd("USER alice")
        self.assertTrue(st and st.startswith(b"+OK"), st)
        return c.cmd("PASS " + PASSWORD)

    def logged_in(self, gw, source=None):
        c = self.pop(gw.port, source)
        st = self.login(c)
        self.assertTrue(st and st.startswith(b"+OK"), st)
        return c

    def assertServes(self, gw):
        self.assertTrue(gw.alive(), gw.log_text()[-3000:])
        c = h.Pop3Client(gw.port)
        try:
            self.assertTrue(c.greeting.startswith(b"+OK"), c.greeting)
            self.assertTrue(c.cmd("CAPA").startswith(b"+OK"))
        finally:
            c.close()

    def cut_body_until_close(self, commands):
        """A gateway in front of a HostileMailbox in "cut_body"; a logged-in session sends
        `commands`. Returns (gw, c, data, closed): all the client got after the login until the
        close (bounded by SESSION_WAIT)."""
        up = self.mailbox("cut_body")
        gw = self.mail_gateway(up)
        c = self.logged_in(gw)
        c.send(commands)
        data, closed = read_until_close(c.sock)
        return gw, c, c.buf + data, closed

    def assertLoginFailsClosed(self, gw, up):
        c = self.pop(gw.port)
        st = self.login(c)
        self.assertTrue(st is not None and st.startswith(b"-ERR [SYS/TEMP]"), st)
        self.assertTrue(c.closed(SESSION_WAIT))
        self.assertNoCredentials(up, ("USER", "PASS", "AUTH"))
        self.assertServes(gw)

    def test_record_stls_login_and_retr(self):
        up = self.mailbox("record", tls="starttls")
        gw = self.mail_gateway(up, tls="starttls")
        c = self.logged_in(gw)
        st, body = c.cmd_multi("RETR 1")
        self.assertTrue(st.startswith(b"+OK"), st)
        self.assertEqual(h.unstuff(body), up.message)
        sess = up.sessions_with("PASS")
        self.assertEqual(len(sess), 1)
        self.assertTrue(sess[0].tls)

    def test_stls_response_injection_refused(self):
        up = self.mailbox("starttls_inject", tls="starttls")
        gw = self.mail_gateway(up, tls="starttls")
        self.assertLoginFailsClosed(gw, up)
        self.assertTrue(up.sessions_with("STLS"), "the gateway never tried STLS")
        self.assertIn("injection", gw.log_text())

    def test_missing_stls_refused(self):
        up = self.mailbox("no_stls", tls="starttls")
        gw = self.mail_gateway(up, tls="starttls")
        self.assertLoginFailsClosed(gw, up)
        self.assertEqual(up.sessions_with("STLS"), [])
        self.assertIn("does not offer STLS", gw.log_text())

    def test_plaintext_capa_not_kept(self):
        """The plaintext CAPA read before STLS (an attacker on the path could have written it) must
        not become what the gateway offers its clients (TOP, UIDL, SASL PLAIN follow the upstream)."""
        up = self.mailbox("record", tls="starttls", caps=["USER", "UIDL", "RESP-CODES"],
                          pretls_caps=["TOP"])
        gw = self.mail_gateway(up, tls="starttls")
        self.logged_in(gw)  # a session over TLS has stored the upstream's real CAPA

        def capa():
            st, body = self.pop(gw.port).cmd_multi("CAPA")
            self.assertTrue(st.startswith(b"+OK"), st)
            return body.split(b"\r\n")

        self.assertIn(b"UIDL", capa())
        self.assertNotIn(b"TOP", capa())
        up.mode = "no_stls"
        c = self.pop(gw.port)
        st = self.login(c)
        self.assertTrue(st is not None and st.startswith(b"-ERR [SYS/TEMP]"), st)
        self.assertNotIn(b"TOP", capa())

    def test_unsolicited_answer_not_taken(self):
        """Bytes after a complete answer were sent before the gateway's next command: they are not
        the answer to it (pipelined client commands must not get an injected reply). The upstream
        does not announce PIPELINING, so the gateway has nothing else in flight."""
        up = self.mailbox("extra_answer", caps=["USER", "UIDL", "TOP", "RESP-CODES"])
        gw = self.mail_gateway(up)
        c = self.logged_in(gw)
        c.send("STAT\r\nNOOP\r\n")
        st = c.read_line()
        self.assertTrue(st and st.startswith(b"+OK 1 "), st)
        data, closed = read_until_close(c.sock)
        data = c.buf + data
        self.assertNotIn(b"smuggled", data)
        self.assertTrue(closed, "session not closed: %r" % data)
        self.assertAliveSmall(gw)
        self.assertServes(gw)

    def test_unsolicited_answer_with_upstream_pipelining(self):
        """With PIPELINING announced the gateway pipelines the client's commands upstream, so an
        extra answer cannot be told from the answer to the command behind it (as for a client
        talking to that server directly, docs/pop3.md); the answer left over at the end still has
        no command and ends the session."""
        up = self.mailbox("extra_answer")
        gw = self.mail_gateway(up)
        c = self.logged_in(gw)
        c.send("STAT\r\nNOOP\r\n")
        self.assertTrue(c.read_line().startswith(b"+OK 1 "))
        self.assertTrue(c.read_line().startswith(b"+OK"))
        self.assertTrue(h.wait_for(lambda: "event=upstream-unsolicited" in gw.log_text(), 5))
        # The upstream session is gone: the client's session is closed at once (the leftover came
        # with the last answer) or its next command gets a clear error and the close.
        st = c.cmd("STAT")
        self.assertTrue(st is None or st.startswith(b"-ERR [SYS/TEMP]"), st)
        self.assertTrue(c.closed())
        self.assertAliveSmall(gw)
        self.assertServes(gw)

    def test_retrieve_without_upstream_pipelining(self):
        """An upstream without PIPELINING gets UIDL, LIST and RETR one at a time (the retrieve
        hook's sequential path): the message is still scanned and tagged, and the client's own
        pipeline is answered in order."""
        up = self.mailbox("record", caps=["USER", "UIDL", "TOP", "RESP-CODES"])
        port = h.free_port()
        lst = h.pop3_listener_config(port, up.port, upstream={"tls": "none"},
                                     mailbox={"plaintext_auth": "allow"})
        lst["filters"] = [{"name": "testmark", "timeout": "5s"}]
        gw = h.Gateway(self.tmp, h.gateway_config(self.tmp, lst, plugins=[PLUGIN]))
        self.addCleanup(self._stop_gateway, gw)
        gw.start()
        c = self.logged_in(gw)
        c.send("RETR 1\r\nSTAT\r\nTOP 1 0\r\nNOOP\r\n")
        st, body = c.read_line(), c.read_body()
        self.assertTrue(st.startswith(b"+OK"), st)
        self.assertTrue(body.startswith(b"X-Test-Filter: passed\r\n"), body[:100])
        self.assertEqual(h.unstuff(body[len(b"X-Test-Filter: passed\r\n"):]), up.message)
        self.assertTrue(c.read_line().startswith(b"+OK 1 "))
        st, body = c.read_line(), c.read_body()
        self.assertTrue(st.startswith(b"+OK"), st)
        self.assertTrue(body.startswith(b"X-Test-Filter: passed\r\n"), body[:100])
        self.assertTrue(c.read_line().startswith(b"+OK"))
        verbs = [l.split()[0] for l in up.all_bytes().split(b"\r\n") if l]
        self.assertIn(b"UIDL", verbs)
        self.assertIn(b"LIST", verbs)
        self.assertIn("verdict=", gw.log_text())

    def test_body_cut_off(self):
        gw, _c, data, closed = self.cut_body_until_close("RETR 1\r\n")
        self.assertTrue(closed, "session not closed: %r" % data[-200:])
        self.assertTrue(data.startswith((b"+OK", b"-ERR")), data[:100])
        self.assertFalse(data.endswith(b"\r\n.\r\n"), "a cut body was completed: %r" % data[-100:])
        self.assertAliveSmall(gw)
        self.assertServes(gw)
        self.logged_in(gw)

    def test_body_cut_off_mid_pipeline(self):
        """The upstream dies in the middle of a pipeline (PIPELINING announced, so the commands
        behind the cut RETR are already in flight): what arrived whole is relayed, the cut body is
        never completed, nothing is answered for the commands after it, the session closes."""
        gw, _c, data, closed = self.cut_body_until_close(
            "STAT\r\nNOOP\r\nRETR 1\r\nSTAT\r\nNOOP\r\nRETR 1\r\n")
        self.assertTrue(closed, "session not closed: %r" % data[-200:])
        self.assertRegex(data, rb"^\+OK 1 \d+\r\n\+OK[^\r]*\r\n\+OK \d+ octets\r\n")
        self.assertFalse(data.endswith(b"\r\n.\r\n"), "a cut body was completed: %r" % data[-100:])
        self.assertEqual(data.count(b"+OK 1 "), 1, data[-200:])  # no answer to the second STAT
        self.assertAliveSmall(gw)
        self.assertServes(gw)

    def test_huge_line(self):
        for at in ("command", "greeting"):
            with self.subTest(at=at):
                up = self.mailbox("huge_line", at=at)
                gw = self.mail_gateway(up)
                c = self.pop(gw.port)
                st = self.login(c)
                if at == "greeting":
                    self.assertTrue(st is not None and st.startswith(b"-ERR [SYS/TEMP]"), st)
                    self.assertTrue(c.closed(SESSION_WAIT))
                    self.assertNoCredentials(up, ("USER", "PASS"))
                else:
                    self.assertTrue(st and st.startswith(b"+OK"), st)
                    c.send("STAT\r\n")
                    data, closed = read_until_close(c.sock)
                    data = c.buf + data
                    self.assertTrue(closed, "session not closed: %r" % data[-200:])
                    self.assertLess(len(data), 4096, "the huge line went to the client")
                    self.assertTrue(data.startswith(b"-ERR [SYS/TEMP]"), data[:200])
                self.assertAliveSmall(gw)
                self.assertServes(gw)

    @unittest.skipUnless(h.loopback_alias_ok(CLIENT_ADDR), "cannot bind %s" % CLIENT_ADDR)
    def test_identity_proxy_v2(self):
        up = self.mailbox("record", expect_proxy=True)
        gw = self.mail_gateway(up, identity="proxy")
        c = self.logged_in(gw, source=CLIENT_ADDR)
        self.assertProxyV2(up, "PASS", gw, c)
        self.assertTrue(c.cmd("QUIT").startswith(b"+OK"))


if __name__ == "__main__":
    unittest.main()
