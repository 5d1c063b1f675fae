"""TLS on both legs: STARTTLS and implicit TLS with the gateway's certificate (verified against the
test CA), old protocol versions refused, no AUTH before TLS, require_tls (YAML and --require-tls),
upstream STARTTLS to a TLS-enabled Postfix with verification, and a wrong upstream name -> 4xx.

Owns: a TLS-enabled private Postfix (class); gateways per test.
"""

import ssl
import unittest

import harness as h


@unittest.skipUnless(h.have_tool("postfix") and h.have_tool("openssl"), "postfix/openssl not installed")
class Tls(h.GatewayTest):
    postfix = True
    postfix_tls = True

    def test_starttls_verified_then_delivery(self):
        gw = self.gateway(self.pf.port, tls="starttls")
        tag = h.unique("starttls")
        c = self.client(gw)
        c.ehlo()
        self.assertIn("STARTTLS", c.caps)
        self.assertCode(c.starttls(self.ca_context(), server_hostname="localhost"), 220)
        self.assertEqual(c.leftover_after_starttls, b"")
        self.assertIn(c.sock.version(), ("TLSv1.2", "TLSv1.3"))
        self.assertCode(c.ehlo(), 250)
        self.assertNotIn("STARTTLS", c.caps)
        self.assertCode(c.cmd("STARTTLS"), 5)              # no second STARTTLS
        reps = c.transaction("s@client.test", ["alice@example.test"], h.simple_message(subject=tag), helo=False)
        self.assertCode(reps[-1], 250)
        self.assertEqual(len(self.delivered("alice", tag)), 1)

    def test_starttls_cert_matches_ip_name(self):
        gw = self.gateway(self.pf.port, tls="starttls")
        c = self.client(gw)
        c.ehlo()
        self.assertCode(c.starttls(self.ca_context(), server_hostname="mx.test"), 220)
        self.assertCode(c.ehlo(), 250)

    def test_implicit_tls(self):
        gw = self.gateway(self.pf.port, tls="implicit")
        tag = h.unique("smtps")
        reps, ok = h.attempt(gw.port, "s@client.test", ["alice@example.test"], h.simple_message(subject=tag),
                             tls_context=self.ca_context(), server_hostname="localhost")
        self.assertTrue(ok, reps)
        self.assertEqual(len(self.delivered("alice", tag)), 1)

    def test_implicit_tls_no_starttls_advertised(self):
        gw = self.gateway(self.pf.port, tls="implicit")
        c = self.client(gw, tls_context=self.ca_context())
        self.assertCode(c.ehlo(), 250)
        self.assertNotIn("STARTTLS", c.caps)

    def _old_tls_context(self, version):
        ctx = h.client_context(verify=False)
        try:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = version
            ctx.maximum_version = version
        except (ValueError, ssl.SSLError) as e:
            self.skipTest("local OpenSSL cannot offer %s: %s" % (version, e))
        return ctx

    def assertHandshakeRefused(self, gw, ctx):
        """An implicit-TLS session with ctx fails: handshake error, reset or close before a greeting."""
        with self.assertRaises((ssl.SSLError, OSError, EOFError)):
            c = h.SmtpClient(gw.port, tls_context=ctx, timeout=10)
            try:
                if c.greeting is None:
                    raise EOFError("closed")
            finally:
                c.close()

    def test_tls11_and_tls10_refused_implicit(self):
        gw = self.gateway(self.pf.port, tls="implicit")
        for v in (ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1):
            with self.subTest(version=v):
                ctx = self._old_tls_context(v)
                self.assertHandshakeRefused(gw, ctx)
        self.assertGatewayServes_tls(gw)

    def test_weak_ciphers_refused(self):
        """TLS 1.2 with only suites outside the intermediate profile (static RSA key exchange, CBC
        with SHA-1, 3DES) finds no common cipher."""
        gw = self.gateway(self.pf.port, tls="implicit")
        tried = 0
        for suite in ("AES128-SHA", "AES256-SHA256", "DES-CBC3-SHA"):
            with self.subTest(cipher=suite):
                ctx = h.client_context(verify=False, max_version=ssl.TLSVersion.TLSv1_2)
                try:
                    ctx.set_ciphers(suite)
                except ssl.SSLError:
                    continue  # the client's own library refuses it already
                tried += 1
                self.assertHandshakeRefused(gw, ctx)
        self.assertGreaterEqual(tried, 1, "no weak suite could be offered by the test client")
        self.assertGatewayServes_tls(gw)

    def test_intermediate_tls12_suite_accepted(self):
        gw = self.gateway(self.pf.port, tls="implicit")
        ctx = self.ca_context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
        c = h.SmtpClient(gw.port, tls_context=ctx, server_hostname="localhost")
        try:
            self.assertCode(c.greeting, 220)
            self.assertEqual(c.sock.version(), "TLSv1.2")
            self.assertEqual(c.sock.cipher()[0], "ECDHE-RSA-AES128-GCM-SHA256")
        finally:
            c.close()

    def assertGatewayServes_tls(self, gw):
        c = h.SmtpClient(gw.port, tls_context=self.ca_context())
        try:
            self.assertCode(c.greeting, 220)
        finally:
            c.close()

    def test_tls11_refused_starttls(self):
        gw = self.gateway(self.pf.port, tls="starttls")
        ctx = self._old_tls_context(ssl.TLSVersion.TLSv1_1)
        c = self.client(gw)
        c.ehlo()
        with self.assertRaises((ssl.SSLError, OSError)):
            c.starttls(ctx)
            r = c.ehlo()
            if r is None:
                raise OSError("closed")
        self.assertGatewayServes(gw)

    def test_auth_not_before_tls(self):
        gw = self.gateway(self.pf.port, tls="starttls", require_tls=True)
        c = self.client(gw)
        c.ehlo()
        self.assertNotIn("AUTH", c.caps)
        r = c.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==")
        self.assertCode(r, 5)
        self.assertNotEqual(r.code, 334)

    def assertTlsRequired(self, c):
        """STARTTLS is offered, MAIL before it gets 530 5.7.0, the upgrade then succeeds."""
        c.ehlo()
        self.assertIn("STARTTLS", c.caps)
        r = c.cmd("MAIL FROM:<s@client.test>")
        self.assertCode(r, 530)
        self.assertEnhanced(r, "5.7.0")
        self.assertCode(c.starttls(self.ca_context()), 220)

    def test_require_tls_yaml(self):
        gw = self.gateway(self.pf.port, tls="starttls", require_tls=True)
        c = self.client(gw)
        self.assertTlsRequired(c)
        c.ehlo()
        self.assertCode(c.cmd("MAIL FROM:<s@client.test>"), 250)

    def test_require_tls_one_line(self):
        port = h.free_port()
        self.gateway_args(["--listen", "smtp://127.0.0.1:%d" % port, "--upstream", "smtp://127.0.0.1:%d" % self.pf.port,
                           "--cert", self.pki["cert"], "--key", self.pki["key"], "--require-tls",
                           "--domain", "example.test", "--hostname", "gw.test"], port)
        c = self.client(port)
        self.assertTlsRequired(c)
        tag = h.unique("reqtls1")
        reps = c.transaction("s@client.test", ["alice@example.test"], h.simple_message(subject=tag))
        self.assertCode(reps[-1], 250)
        self.assertEqual(len(self.delivered("alice", tag)), 1)

    def upstream_tls_attempt(self, ca_file, sni, tag):
        """A gateway verifying the upstream's STARTTLS against ca_file and sni; one message for alice
        tagged h.unique(tag). Returns (gw, tag, replies, ok)."""
        gw = self.gateway(self.pf.port, upstream={"tls": "starttls", "verify": True, "ca_file": ca_file,
                                                  "sni": sni})
        tag = h.unique(tag)
        reps, ok = h.attempt(gw.port, "s@client.test", ["alice@example.test"], h.simple_message(subject=tag))
        return gw, tag, reps, ok

    def test_upstream_starttls_verified(self):
        _gw, tag, reps, ok = self.upstream_tls_attempt(self.pki["ca"], "localhost", "upstls")
        self.assertTrue(ok, reps)
        got = self.delivered("alice", tag)
        self.assertEqual(len(got), 1)
        # Postfix records a TLS session as "with ESMTPS" in its Received header.
        self.assertIn(b"ESMTPS", h.header_values(got[0], "Received")[0])

    def test_upstream_wrong_name_tempfails(self):
        gw, tag, reps, ok = self.upstream_tls_attempt(self.pki["ca"], "wrong.test", "wrongname")
        self.assertTempFailed(reps, ok)
        self.assertEqual(self.delivered("alice", tag, expect=1, timeout=3), [])
        self.assertGatewayServes(gw)

    def test_upstream_untrusted_ca_tempfails(self):
        other = h.make_pki(self.tmp.sub(h.unique("otherca")))
        _gw, tag, reps, ok = self.upstream_tls_attempt(other["ca"], "localhost", "badca")
        self.assertTempFailed(reps, ok)
        self.assertEqual(self.delivered("alice", tag, expect=1, timeout=3), [])


if __name__ == "__main__":
    unittest.main()
