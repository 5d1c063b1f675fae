"""The dnsbl filter end to end through a real Unbound holding list zones (kept in this file): the
client's address (127.0.0.1, asked as 1.0.0.127.ZONE) against a block list, an allow list with a
negative weight, a list answering "query refused" (an error, not a listing), a list whose answer is
not one of the configured codes; the MAIL FROM domain against a domain list; URL hosts of the
message against a URI list; a list with `action: reject` refusing at MAIL; and a stopped DNS server.
Checked where a user looks: the reply the client saw, X-Spam-Status upstream, the log.

Owns: one Unbound for the module, a recording upstream and a gateway per test.
"""

import socket
import unittest

import harness as h

ZONES = [
    "1.0.0.127.bl.test. 300 IN A 127.0.0.2",
    "1.0.0.127.wl.test. 300 IN A 127.0.10.3",
    "1.0.0.127.refused.test. 300 IN A 127.255.255.254",
    "1.0.0.127.codes.test. 300 IN A 127.0.0.9",
    "1.0.0.127.mask.test. 300 IN A 127.0.0.12",
    "1.0.0.127.reject.test. 300 IN A 127.0.0.2",
    "spammer.test.rhsbl.test. 300 IN A 127.0.0.2",
    "evil.example.uribl.test. 300 IN A 127.0.0.2",
    "bad.co.uk.uribl.test. 300 IN A 127.0.0.2",
    # ::1 in the nibble form of RFC 5782 §2.4
    "1." + "0." * 31 + "bl6.test. 300 IN A 127.0.0.2",
]


@unittest.skipUnless(h.have_tool("unbound"), "unbound not installed")
class Dnsbl(h.GatewayTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dns = h.Unbound(cls.tmp, records=ZONES).start()

    @classmethod
    def tearDownClass(cls):
        cls.dns.stop()
        super().tearDownClass()

    def start(self, options, scores=None, dns=None, timeout="5s"):
        self.up = self.hostile("record")
        over = {"filters": [{"name": "dnsbl", "timeout": timeout, "options": options}]}
        if scores:
            over["scores"] = scores
        return self.gateway(self.up.port, top={"resolver": {"servers": [dns or self.dns.server],
                                                             "timeout": "500ms", "attempts": 1}},
                            **over)

    def send(self, gw, tag, sender="s@client.test", body="Hello.\r\n"):
        return h.attempt(gw.port, sender, ["alice@example.test"], h.simple_message(subject=tag, body=body))

    def head_of(self, tag):
        got = [m for m in self.up.complete_messages() if tag.encode() in m.data]
        self.assertEqual(len(got), 1)
        return got[0].data.split(b"\r\n\r\n", 1)[0]

    def delivered(self, gw, name, **send):
        """A message sent (send: sender, body) and accepted: delivered once; its header."""
        tag = h.unique(name)
        reps, ok = self.send(gw, tag, **send)
        self.assertTrue(ok, reps)
        return self.head_of(tag)

    def test_address_lists_weights_and_errors(self):
        gw = self.start({"zones": [
            {"zone": "bl.test", "weight": 3},
            {"zone": "wl.test", "weight": -2, "symbol": "DNSWL_TEST"},
            {"zone": "refused.test", "weight": 50},
            {"zone": "codes.test", "weight": 50, "codes": ["127.0.0.2", "127.0.0.4"]},
            {"zone": "mask.test", "weight": 1.5, "mask": 4},
            {"zone": "unlisted.test", "weight": 50},
        ]}, scores={"tag": 2})
        head = self.delivered(gw, "addr")
        status = [l for l in h.unfold(head).split(b"\r\n") if l.startswith(b"X-Spam-Status:")][0]
        # Listed: bl.test (+3), the allow list (-2), mask.test (12 & 4): 2.5, flagged at 2.
        self.assertIn(b"Yes, score=2.50 required=2.00", status)
        for sym in (b"DNSBL_BL_TEST(3.00)", b"DNSWL_TEST(-2.00)", b"DNSBL_MASK_TEST(1.50)"):
            self.assertIn(sym, status)
        # Not listings: a refused query is an error, an answer outside the codes does not count.
        self.assertNotIn(b"REFUSED", status)
        self.assertNotIn(b"CODES", status)
        self.assertNotIn(b"UNLISTED", status)
        self.assertIn(b"X-Spam-Flag: YES", head)
        log = gw.log_text()
        self.assertIn("dnsbl=error zone=refused.test name=127.0.0.1 answer=127.255.255.254", log)
        self.assertIn("score=2.50 symbols=DNSBL_BL_TEST,DNSWL_TEST,DNSBL_MASK_TEST result=delivered", log)

    def test_sender_domain_and_url_hosts(self):
        gw = self.start({"domains": [{"zone": "rhsbl.test", "weight": 2}],
                         "uris": [{"zone": "uribl.test", "weight": 4}]})
        body = ("Cheap offer at https://WWW.Evil.Example/buy?now=1 and http://shop.bad.co.uk/x\r\n"
                "and a clean one http://www.harmless.test/\r\n")
        head = h.unfold(self.delivered(gw, "uri", sender="boss@spammer.test", body=body))
        self.assertIn(b"RHSBL_RHSBL_TEST(2.00)", head)
        self.assertIn(b"URIBL_URIBL_TEST(4.00)", head)  # one symbol for the list
        self.assertIn(b"score=6.00", head)
        log = gw.log_text()
        self.assertIn("dnsbl=listed zone=uribl.test name=evil.example", log)
        self.assertIn("dnsbl=listed zone=uribl.test name=bad.co.uk", log)
        self.assertNotIn("name=harmless.test answer", log)

    def test_clean_message_no_listing(self):
        gw = self.start({"zones": [{"zone": "unlisted.test", "weight": 5}],
                         "domains": [{"zone": "rhsbl.test", "weight": 2}]}, scores={"tag": 1})
        head = self.delivered(gw, "clean")
        self.assertIn(b"X-Spam-Status: No, score=0.00 required=1.00", head)
        self.assertNotIn(b"X-Spam-Flag", head)

    def test_reject_list_refuses_at_mail(self):
        gw = self.start({"zones": [{"zone": "reject.test", "weight": 10, "action": "reject"}]})
        c = h.SmtpClient(gw.port)
        try:
            self.assertCode(c.ehlo(), 250)
            r = c.cmd("MAIL FROM:<s@client.test>")
            self.assertCode(r, 554)
            self.assertEnhanced(r, "5.7.1")
            self.assertIn("blocked using reject.test", r.text)
            self.assertCode(c.cmd("NOOP"), 250)  # the session goes on
        finally:
            c.close()
        self.assertEqual(self.up.complete_messages(), [])

    def test_dns_server_down_lists_are_errors_mail_goes_on(self):
        dead = "127.0.0.1:%d" % h.free_port()  # nothing answers there
        gw = self.start({"zones": [{"zone": "bl.test", "weight": 3}]}, dns=dead, scores={"tag": 1})
        head = self.delivered(gw, "nodns")
        self.assertIn(b"X-Spam-Status: No, score=0.00", head)
        self.assertIn("dnsbl=error zone=bl.test", gw.log_text())

    def test_ipv6_client_in_nibble_form(self):
        self.up = self.hostile("record")
        port = h.free_port()
        gw = self.gateway(self.up.port, top={"resolver": {"servers": [self.dns.server]}},
                          listen=["127.0.0.1:%d" % port, "[::1]:%d" % port], trusted_networks=["::1/128"],
                          filters=[{"name": "dnsbl", "timeout": "5s",
                                    "options": {"zones": [{"zone": "bl6.test", "weight": 4}]}}])
        tag = h.unique("v6")
        s = socket.create_connection(("::1", port), timeout=10)
        f = s.makefile("rb")
        def reply():
            line = f.readline()
            while line[3:4] == b"-":
                line = f.readline()
            return line
        try:
            self.assertTrue(reply().startswith(b"220"))
            for cmd in (b"EHLO client.test", b"MAIL FROM:<s@client.test>", b"RCPT TO:<alice@example.test>",
                        b"DATA"):
                s.sendall(cmd + b"\r\n")
                self.assertIn(reply()[:1], (b"2", b"3"))
            s.sendall(h.simple_message(subject=tag) + b".\r\n")
            self.assertTrue(reply().startswith(b"250"))
            s.sendall(b"QUIT\r\n")
        finally:
            s.close()
        self.assertIn("dnsbl=listed zone=bl6.test name=::1 answer=127.0.0.2", gw.log_text())
        self.assertIn(b"DNSBL_BL6_TEST(4.00)", self.head_of(tag))

    def test_options_are_checked(self):
        cfg = h.gateway_config(self.tmp, h.listener_config(
            h.free_port(), 25, filters=[{"name": "dnsbl", "options": {"zones": [{"weight": 2}]}}]))
        out = h.run_portcullis(["-t", "-c", self.tmp.file("bad-dnsbl.yaml", h.to_yaml(cfg))])
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("zone", out.stdout + out.stderr)


if __name__ == "__main__":
    unittest.main()
