"""Client identity towards the upstream: XCLIENT to Postfix (its Received header shows the real client,
127.0.0.5), outbound PROXY v2 to Postfix's haproxy-mode smtpd (same), and the control case without
identity forwarding (Postfix sees the gateway's own address).

Owns: a private Postfix (class) with a plain and a PROXY-mode smtpd; gateways per test.
"""

import unittest

import harness as h


@unittest.skipUnless(h.have_tool("postfix"), "postfix not installed")
class Identity(h.GatewayTest):
    postfix = True

    def setUp(self):
        if not h.loopback_alias_ok("127.0.0.5"):
            self.skipTest("cannot bind 127.0.0.5")

    def _deliver_from(self, gw, source="127.0.0.5"):
        tag = h.unique("ident")
        reps, ok = h.attempt(gw.port, "s@client.test", ["alice@example.test"], h.simple_message(subject=tag),
                             source=source)
        self.assertTrue(ok, reps)
        got = self.delivered("alice", tag)
        self.assertEqual(len(got), 1, self.pf.log_text()[-2000:])
        return h.header_values(got[0], "Received")[0]   # Postfix's own, the top one

    def test_xclient(self):
        gw = self.gateway(self.pf.port, upstream={"client_identity": "xclient"})
        rcv = self._deliver_from(gw)
        self.assertIn(b"[127.0.0.5]", rcv)

    def test_proxy_v2_outbound(self):
        gw = self.gateway(self.pf.proxy_port, upstream={"client_identity": "proxy"})
        rcv = self._deliver_from(gw)
        self.assertIn(b"[127.0.0.5]", rcv)

    def test_without_identity_postfix_sees_gateway(self):
        gw = self.gateway(self.pf.port, upstream={"client_identity": "none"})
        rcv = self._deliver_from(gw)
        self.assertNotIn(b"127.0.0.5", rcv)
        self.assertIn(b"[127.0.0.1]", rcv)

    def test_one_line_xclient(self):
        port = h.free_port()
        self.gateway_args(["--listen", "smtp://127.0.0.1:%d" % port, "--upstream", "smtp://127.0.0.1:%d" % self.pf.port,
                           "--domain", "example.test", "--upstream-identity", "xclient"], port)
        gw = type("P", (), {"port": port})()
        rcv = self._deliver_from(gw)
        self.assertIn(b"[127.0.0.5]", rcv)


if __name__ == "__main__":
    unittest.main()
