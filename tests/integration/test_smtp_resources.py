"""Resource caps that protect the gateway and everyone behind it: connections per client address,
TLS handshakes per address and minute, and the spool budgets (a full spool answers 452 4.3.1 and
never loses the message silently).

Owns: a recording upstream (a well-behaved recorder) and gateways per test.
"""

import unittest

import harness as h


class Resources(h.GatewayTest):

    def setUp(self):
        if not h.loopback_alias_ok("127.0.0.5"):
            self.skipTest("cannot bind 127.0.0.5")

    def test_connections_per_address(self):
        up = self.hostile("record")
        gw = self.gateway(up.port, max_connections_per_ip=2)
        a = self.client(gw, source="127.0.0.5")
        b = self.client(gw, source="127.0.0.5")
        self.assertCode(a.greeting, 220)
        self.assertCode(b.greeting, 220)
        c = self.client(gw, source="127.0.0.5")
        self.assertCode(c.greeting, 421)
        self.assertEnhanced(c.greeting, "4.7.0")
        self.assertTrue(c.closed())
        # Trusted networks are exempt, as Postfix exempts $mynetworks.
        d = self.client(gw)
        self.assertCode(d.greeting, 220)
        # A slot frees when a client leaves.
        a.cmd("QUIT")
        a.close()
        self.assertTrue(h.wait_for(lambda: self._greets(gw), timeout=5.0))

    def _greets(self, gw):
        c = h.SmtpClient(gw.port, source="127.0.0.5")
        try:
            return c.greeting is not None and c.greeting.code == 220
        finally:
            c.close()

    def test_starttls_handshakes_per_minute(self):
        up = self.hostile("record")
        gw = self.gateway(up.port, tls="starttls", tls_over={"handshakes_per_minute": 3})
        for i in range(3):
            c = self.client(gw, source="127.0.0.5")
            c.ehlo()
            self.assertCode(c.starttls(self.ca_context(), server_hostname="localhost"), 220)
            c.close()
        c = self.client(gw, source="127.0.0.5")
        c.ehlo()
        r = c.cmd("STARTTLS")
        self.assertCode(r, 454)
        self.assertEnhanced(r, "4.7.0")
        # The session goes on in plaintext for what does not need TLS.
        self.assertCode(c.cmd("NOOP"), 250)

    def test_spool_disk_budget_452(self):
        up = self.hostile("record")
        gw = self.gateway(up.port, top={"spool": {"memory_threshold": "4K", "memory_total": "8K",
                                                  "disk_total": "32K"}})
        tag = h.unique("bigspool")
        body = ("x" * 70 + "\r\n") * 1500  # ~108 KB: over both budgets
        reps, ok = h.attempt(gw.port, "s@client.test", ["alice@example.test"],
                             h.simple_message(subject=tag, body=body))
        self.assertFalse(ok)
        self.assertCode(reps[-1], 452)
        self.assertEnhanced(reps[-1], "4.3.1")
        self.assertEqual([m for m in up.complete_messages() if tag.encode() in m.data], [])
        # A message that fits still goes through: the budget was given back.
        reps, ok = h.attempt(gw.port, "s@client.test", ["alice@example.test"],
                             h.simple_message(subject=h.unique("small")))
        self.assertTrue(ok, reps)


if __name__ == "__main__":
    unittest.main()
