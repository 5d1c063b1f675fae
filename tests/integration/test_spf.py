"""The spf filter end to end through a real Unbound holding SPF records for every result (kept in
this file): pass through an address, an include and an mx mechanism; fail, softfail, neutral,
none, permerror (a bad record, more than 10 lookups, more than 2 void lookups); the HELO identity
for the null sender; temperror when the DNS server does not answer, answered 451 4.4.3 when so
configured. The client is 192.0.2.10, given by a PROXY header from the trusted test client (libspf2
passes a loopback client whatever the record says). Checked where a user looks: Received-SPF and
Authentication-Results upstream, the reply.

Owns: one Unbound for the module, a recording upstream and a gateway per test.
"""

import re
import unittest

import harness as h

ZONE = [
    'pass.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"',
    'fail.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"',
    'soft.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 ~all"',
    'neutral.test. 300 IN TXT "v=spf1 ?all"',
    'none.test. 300 IN A 192.0.2.5',
    'perm.test. 300 IN TXT "v=spf1 bogus:thing -all"',
    'inc.test. 300 IN TXT "v=spf1 include:inner.inc.test -all"',
    'inner.inc.test. 300 IN TXT "v=spf1 include:pass.test -all"',
    'mx.test. 300 IN TXT "v=spf1 mx -all"',
    'mx.test. 300 IN MX 10 mail.mx.test.',
    'mail.mx.test. 300 IN A 192.0.2.10',
    'void.test. 300 IN TXT "v=spf1 a:nx1.void.test a:nx2.void.test a:nx3.void.test ip4:192.0.2.10 -all"',
    'helo.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"',
]
# eleven includes: more than the 10 lookups RFC 7208 §4.6.4 allows
ZONE.append('many.test. 300 IN TXT "v=spf1 %s -all"' % " ".join("include:i%d.many.test" % i for i in range(11)))
ZONE += ['i%d.many.test. 300 IN TXT "v=spf1 ?all"' % i for i in range(11)]


@unittest.skipUnless(h.have_tool("unbound"), "unbound not installed")
class Spf(h.GatewayTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dns = h.Unbound(cls.tmp, records=ZONE).start()

    @classmethod
    def tearDownClass(cls):
        cls.dns.stop()
        super().tearDownClass()

    def start(self, options=None, dns=None):
        self.up = self.hostile("record")
        return self.gateway(self.up.port, top={"resolver": {"servers": [dns or self.dns.server],
                                                             "timeout": "500ms", "attempts": 1}},
                            proxy_protocol={"trusted": ["127.0.0.1/32"]},
                            filters=[{"name": "spf", "timeout": "10s", "options": options or {}}])

    def client(self, gw):
        """A client that the gateway sees as 192.0.2.10 (PROXY v1 from a trusted address)."""
        c = h.SmtpClient(gw.port, greeting=False)
        c.send(h.proxy_v1("192.0.2.10", dport=gw.port))
        c.greeting = c.read_reply()
        self.assertCode(c.greeting, 220)
        return c

    def send(self, gw, sender, tag, helo="client.test"):
        c = self.client(gw)
        try:
            self.assertCode(c.ehlo(helo), 250)
            return c.transaction(sender, ["alice@example.test"], h.simple_message(subject=tag), helo=False)
        finally:
            c.close()

    def delivered(self, gw, sender, name, helo="client.test"):
        """A message sent from sender: answered 250 and delivered once; its header, unfolded."""
        tag = h.unique(name)
        reps = self.send(gw, sender, tag, helo=helo)
        self.assertCode(reps[-1], 250)
        got = [m for m in self.up.complete_messages() if tag.encode() in m.data]
        self.assertEqual(len(got), 1)
        return h.unfold(got[0].data.split(b"\r\n\r\n", 1)[0]).decode()

    def mail_from(self, gw, sender, code, enhanced):
        """MAIL FROM:<sender> after EHLO: answered code with the enhanced status given."""
        c = self.client(gw)
        try:
            self.assertCode(c.ehlo("client.test"), 250)
            r = c.cmd("MAIL FROM:<%s>" % sender)
            self.assertCode(r, code)
            self.assertEnhanced(r, enhanced)
        finally:
            c.close()

    def result(self, gw, domain):
        head = self.delivered(gw, "someone@%s" % domain, domain)
        ar = re.search(r"Authentication-Results: gw.test;\s+spf=(\w+) smtp.mailfrom=(\S+)", head)
        self.assertIsNotNone(ar, head)
        self.assertEqual(ar.group(2), domain)
        rs = re.search(r"Received-SPF: (\w+)", head)
        self.assertIsNotNone(rs, head)
        return ar.group(1), rs.group(1), head

    def test_every_result(self):
        gw = self.start()
        want = {"pass.test": "pass", "inc.test": "pass", "mx.test": "pass", "fail.test": "fail",
                "soft.test": "softfail", "neutral.test": "neutral", "none.test": "none",
                "perm.test": "permerror", "many.test": "permerror", "void.test": "permerror"}
        for domain, result in want.items():
            with self.subTest(domain=domain):
                ar, received, head = self.result(gw, domain)
                self.assertEqual(ar, result, head)
                self.assertEqual(received.lower(), result)
        self.assertIn("SPF_FAIL(3.00)", self.result(gw, "fail.test")[2])

    def test_null_sender_uses_helo(self):
        gw = self.start()
        self.assertRegex(self.delivered(gw, "", "bounce", helo="helo.test"), r"spf=pass smtp.helo=helo.test")

    def test_fail_reject_and_dns_down(self):
        self.mail_from(self.start({"fail": "reject"}), "x@fail.test", 550, "5.7.23")
        dead = "127.0.0.1:%d" % h.free_port()
        self.mail_from(self.start({"temperror": "tempfail"}, dns=dead), "x@pass.test", 451, "4.4.3")
        gw3 = self.start(dns=dead)  # by default a temperror only scores
        self.assertIn("spf=temperror", self.delivered(gw3, "x@pass.test", "temp"))


if __name__ == "__main__":
    unittest.main()
