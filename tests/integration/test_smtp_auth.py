"""SMTP AUTH relayed through the gateway to a real SASL upstream: Postfix (smtpd_sasl_type = dovecot)
backed by a private Dovecot with passwd-file users. No AUTH before STARTTLS (not advertised, 530);
after STARTTLS AUTH PLAIN (initial response) and AUTH LOGIN (334 challenges relayed) reach 235, after
which the gateway no longer refuses foreign recipients and stamps "with ESMTPSA"; wrong passwords ->
535 relayed, limits.auth_failures (3) of them -> 421 and close; "*" cancels a LOGIN exchange (501
relayed, session usable); the password and its base64 never appear in the gateway's debug log.

The client connects from 127.0.0.5, outside the gateway's trusted_networks (127.0.0.1/32), so relaying
to other.test depends on AUTH alone. Owns: one Dovecot and one Postfix (class); gateways per test.
"""

import base64
import unittest

import harness as h

CLIENT = "127.0.0.5"
USERS = h.Dovecot.users()          # {user: password} from tests/fixtures/dovecot/users
WRONG = "Wrong-pw-9931"


def b64(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.b64encode(data).decode("ascii")


def plain(user, password, authzid=""):
    return b64("%s\0%s\0%s" % (authzid, user, password))


@unittest.skipUnless(h.have_tool("postfix") and h.have_tool("openssl") and h.have_tool("dovecot"),
                     "postfix/openssl/dovecot not installed")
class SmtpAuth(h.GatewayTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dovecot = None
        try:
            cls.dovecot = h.Dovecot(cls.tmp).start()
            cls.pf = h.Postfix(cls.tmp, sasl_path=cls.dovecot.auth_socket).start()
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.pf:
            cls.pf.stop()
            cls.pf = None
        if cls.dovecot:
            cls.dovecot.stop()
            cls.dovecot = None
        super().tearDownClass()

    def setUp(self):
        if not h.loopback_alias_ok(CLIENT):
            self.skipTest("cannot bind %s" % CLIENT)
        self.password = USERS["alice"]

    # -- helpers
    def auth_gateway(self):
        """A STARTTLS gateway in front of the SASL Postfix, at log level debug, once its upstream
        probe has seen Postfix's AUTH capability (until then the gateway offers no AUTH)."""
        gw = self.gateway(self.pf.port, tls="starttls", top={"log": {"target": "stderr", "level": "debug"}})
        h.wait_until(lambda: "event=upstream-probe" in gw.log_text(), timeout=15, what="upstream probe")
        probe = [l for l in gw.log_text().splitlines() if "event=upstream-probe" in l][0]
        self.assertIn("result=ok", probe)
        self.assertIn("PLAIN", probe)
        return gw

    def tls_client(self, gw):
        c = self.client(gw, source=CLIENT)
        self.assertCode(c.greeting, 220)
        self.assertCode(c.ehlo(), 250)
        self.assertCode(c.starttls(self.ca_context(), server_hostname="localhost"), 220)
        self.assertCode(c.ehlo(), 250)
        return c

    def assertNoSecrets(self, gw, *passwords):
        """Neither a password nor any base64 form the client sent appears in the gateway's log."""
        log = gw.log_text()
        self.assertIn("event=connect", log)  # the log is there and being read
        for pw in passwords:
            forms = {pw, b64(pw), plain("alice", pw), plain("bob", pw)}
            for f in sorted(forms):
                self.assertNotIn(f, log, "secret %r found in gateway log" % f)

    # -- tests
    def test_no_auth_before_starttls(self):
        gw = self.auth_gateway()
        c = self.client(gw, source=CLIENT)
        self.assertCode(c.ehlo(), 250)
        self.assertIn("STARTTLS", c.caps)
        self.assertNotIn("AUTH", c.caps)
        r = c.cmd("AUTH PLAIN " + plain("alice", self.password))
        self.assertCode(r, 530)
        self.assertEnhanced(r, "5.7.0")
        # Still refused to relay: no authentication happened.
        self.assertCode(c.cmd("MAIL FROM:<s@client.test>"), 250)
        self.assertCode(c.cmd("RCPT TO:<someone@other.test>"), 554)
        self.assertNoSecrets(gw, self.password)

    def test_plain_initial_response_then_relay_and_esmtpsa(self):
        gw = self.auth_gateway()
        c = self.tls_client(gw)
        self.assertIn("AUTH", c.caps)
        self.assertIn("PLAIN", c.caps["AUTH"].upper().split())
        r = c.cmd("AUTH PLAIN " + plain("alice", self.password))
        self.assertCode(r, 235)
        self.assertCode(c.cmd("AUTH PLAIN " + plain("alice", self.password)), 503)  # only once
        self.assertCode(c.ehlo(), 250)
        self.assertNotIn("AUTH", c.caps)

        # Authenticated: the gateway passes the foreign recipient on; Postfix (SASL client) accepts it.
        self.assertCode(c.cmd("MAIL FROM:<alice@example.test>"), 250)
        self.assertCode(c.cmd("RCPT TO:<someone@other.test>"), 250)
        self.assertCode(c.cmd("RSET"), 250)

        tag = h.unique("authplain")
        reps = c.transaction("alice@example.test", ["alice@example.test"], h.simple_message(subject=tag),
                             helo=False)
        self.assertCode(reps[-1], 250)
        got = self.delivered("alice", tag)
        self.assertEqual(len(got), 1, self.pf.log_text()[-3000:])
        ours = [v for v in h.header_values(got[0], "Received") if b"(Portcullis)" in v]
        self.assertEqual(len(ours), 1, h.header_values(got[0], "Received"))
        self.assertIn(b"with ESMTPSA", ours[0])
        self.assertIn(b"[127.0.0.5]", ours[0])
        self.assertIn("event=auth result=ok user=alice", gw.log_text())
        self.assertNoSecrets(gw, self.password)

    def test_foreign_rcpt_refused_without_auth_after_starttls(self):
        gw = self.auth_gateway()
        c = self.tls_client(gw)
        self.assertCode(c.cmd("MAIL FROM:<s@client.test>"), 250)
        r = c.cmd("RCPT TO:<someone@other.test>")
        self.assertCode(r, 554)
        self.assertEnhanced(r, "5.7.1")
        self.assertCode(c.cmd("RCPT TO:<alice@example.test>"), 250)   # an accepted domain is fine

    def test_auth_after_rset_of_an_upstream_transaction(self):
        """MAIL (relayed: the upstream session opens and its transaction starts), RSET, then AUTH:
        RFC 4954 allows AUTH once the transaction is reset, so it must reach the SASL exchange."""
        gw = self.auth_gateway()
        c = self.tls_client(gw)
        self.assertCode(c.cmd("MAIL FROM:<s@client.test>"), 250)
        self.assertCode(c.cmd("RCPT TO:<someone@other.test>"), 554)
        self.assertCode(c.cmd("RSET"), 250)
        r = c.cmd("AUTH PLAIN " + plain("alice", self.password))
        self.assertCode(r, 235)
        self.assertCode(c.cmd("MAIL FROM:<alice@example.test>"), 250)
        self.assertCode(c.cmd("RCPT TO:<someone@other.test>"), 250)
        self.assertNotIn("event=auth result=failed", gw.log_text())

    def test_login_multi_step(self):
        gw = self.auth_gateway()
        c = self.tls_client(gw)
        self.assertIn("LOGIN", c.caps["AUTH"].upper().split())
        r = c.cmd("AUTH LOGIN")
        self.assertCode(r, 334)
        self.assertEqual(base64.b64decode(r.lines[0]).lower(), b"username:")
        r = c.cmd(b64("alice"))
        self.assertCode(r, 334)
        self.assertEqual(base64.b64decode(r.lines[0]).lower(), b"password:")
        self.assertCode(c.cmd(b64(self.password)), 235)
        self.assertCode(c.cmd("MAIL FROM:<alice@example.test>"), 250)
        self.assertCode(c.cmd("RCPT TO:<someone@other.test>"), 250)
        self.assertCode(c.cmd("RSET"), 250)
        self.assertNoSecrets(gw, self.password)

    def test_login_user_name_logged_not_password(self):
        """The gateway decodes LOGIN's first response as the user name (for its log). "carol" has
        base64 padding, her password (15 characters) has none."""
        gw = self.auth_gateway()
        c = self.tls_client(gw)
        self.assertCode(c.cmd("AUTH LOGIN"), 334)
        self.assertCode(c.cmd(b64("carol")), 334)
        self.assertCode(c.cmd(b64(USERS["carol"])), 235)
        c.cmd("QUIT")
        self.assertTrue(c.closed())
        h.wait_until(lambda: "event=disconnect client=%s" % CLIENT in gw.log_text(), timeout=10,
                     what="disconnect logged")
        self.assertNoSecrets(gw, USERS["carol"])
        self.assertIn("event=auth result=ok user=carol ", gw.log_text())

    def test_wrong_password_535_and_421_after_three(self):
        gw = self.auth_gateway()
        c = self.tls_client(gw)
        r = c.cmd("AUTH PLAIN " + plain("alice", WRONG))
        self.assertCode(r, 535)
        self.assertEnhanced(r, "5.7.8")
        self.assertCode(c.ehlo(), 250)
        self.assertIn("AUTH", c.caps)                   # not authenticated: AUTH still offered
        # LOGIN with a wrong password: the second failure.
        self.assertCode(c.cmd("AUTH LOGIN"), 334)
        self.assertCode(c.cmd(b64("alice")), 334)
        self.assertCode(c.cmd(b64(WRONG)), 535)
        # Third failure: 535 relayed, then 421 and the connection closes.
        self.assertCode(c.cmd("AUTH PLAIN " + plain("alice", WRONG)), 535)
        r = c.read_reply()
        self.assertCode(r, 421)
        self.assertEnhanced(r, "4.7.0")
        self.assertTrue(c.closed(), "gateway kept the session open after %r" % r)
        self.assertIn("failures=3", gw.log_text())
        self.assertGatewayServes(gw, source=CLIENT)
        self.assertNoSecrets(gw, WRONG)

    @unittest.skipUnless(h.have_tool("redis-server"), "redis-server not installed")
    def test_failures_per_address_shared_through_the_state_store(self):
        # Two gateways with one Redis: failed logins on the first count on the second, whose own
        # sessions from that address have never failed.
        redis = h.Redis(self.tmp, name="redis-auth").start()
        self.addCleanup(redis.stop)
        top = {"state": {"backend": "redis", "redis": {"address": redis.address}}}
        gws = []
        for _ in range(2):
            gw = self.gateway(self.pf.port, tls="starttls", top=top)
            h.wait_until(lambda: "event=upstream-probe" in gw.log_text(), timeout=15, what="upstream probe")
            gws.append(gw)
        a, b = gws
        for _ in range(3):  # 3 sessions of 3 failures: the per-address limit (3 x auth_failures)
            c = self.tls_client(a)
            for _ in range(3):
                self.assertCode(c.cmd("AUTH PLAIN " + plain("alice", WRONG)), 535)
            c.close()
        c = self.tls_client(a)
        self.assertCode(c.cmd("AUTH PLAIN " + plain("alice", self.password)), 454)
        c.close()
        c = self.tls_client(b)
        r = c.cmd("AUTH PLAIN " + plain("alice", self.password))
        c.close()
        self.assertCode(r, 454)
        self.assertIn("Too many failed authentications from your address", r.text)
        self.assertNotIn("event=auth result=failed", b.log_text())  # none failed on this one

    def test_login_cancel_then_session_usable(self):
        gw = self.auth_gateway()
        c = self.tls_client(gw)
        self.assertCode(c.cmd("AUTH LOGIN"), 334)
        r = c.cmd("*")
        self.assertCode(r, 501)
        # The session goes on: commands are commands again, and a new AUTH succeeds.
        self.assertCode(c.cmd("NOOP"), 250)
        self.assertCode(c.cmd("AUTH LOGIN"), 334)
        self.assertCode(c.cmd(b64("alice")), 334)
        r = c.cmd("*")
        self.assertCode(r, 501)
        self.assertCode(c.cmd("AUTH PLAIN"), 334)       # PLAIN without initial response
        self.assertCode(c.cmd(plain("alice", self.password)), 235)
        tag = h.unique("authcancel")
        reps = c.transaction("alice@example.test", ["alice@example.test"], h.simple_message(subject=tag),
                             helo=False)
        self.assertCode(reps[-1], 250)
        self.assertEqual(len(self.delivered("alice", tag)), 1)
        self.assertNoSecrets(gw, self.password)

    def test_unannounced_mechanism_504(self):
        gw = self.auth_gateway()
        c = self.tls_client(gw)
        self.assertCode(c.cmd("AUTH CRAM-MD5"), 504)
        self.assertCode(c.cmd("AUTH PLAIN " + plain("alice", self.password)), 235)

    def test_password_never_logged_debug(self):
        gw = self.auth_gateway()
        # A success (PLAIN), a success (LOGIN), failures of both kinds and a cancellation, each in
        # its own session, all at log level debug.
        c = self.tls_client(gw)
        self.assertCode(c.cmd("AUTH PLAIN " + plain("alice", self.password)), 235)
        c.cmd("QUIT")
        c.close()
        c = self.tls_client(gw)
        self.assertCode(c.cmd("AUTH LOGIN"), 334)
        self.assertCode(c.cmd(b64("alice")), 334)
        self.assertCode(c.cmd(b64(self.password)), 235)
        c.cmd("QUIT")
        c.close()
        c = self.tls_client(gw)
        self.assertCode(c.cmd("AUTH PLAIN " + plain("alice", WRONG)), 535)
        self.assertCode(c.cmd("AUTH LOGIN " + b64("alice")), 334)
        self.assertCode(c.cmd(b64(WRONG)), 535)
        c.cmd("QUIT")
        c.close()
        gw.stop()  # flush everything the gateway had to say
        self.assertEqual(gw.config["log"]["level"], "debug")
        self.assertNoSecrets(gw, self.password, WRONG)


if __name__ == "__main__":
    unittest.main()
