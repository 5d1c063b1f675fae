"""Upstream faults: nothing listening, a client that vanishes mid-DATA, every misbehaviour of the
hostile upstream (huge reply, reply without CRLF, unexpected 354 / 2xx, silence, drop mid-DATA), and
an upstream that answers 421 at MAIL, RCPT, DATA or the final dot (smtp-sink -Q).
The client must get a 4xx (never a 250 for a message the upstream did not take) and the gateway must
keep serving the next session.

Owns: a private Postfix (class), hostile upstreams and gateways per test.
"""

import socket
import time
import unittest

import harness as h

FAST = {"command": "5s", "data_end": "5s", "data_block": "5s"}
FAST_UPSTREAM = {"connect_timeout": "5s", "reply_timeout": "5s", "data_timeout": "5s"}


@unittest.skipUnless(h.have_tool("postfix"), "postfix not installed")
class UpstreamFaults(h.GatewayTest):
    postfix = True

    def test_upstream_not_listening(self):
        dead = h.free_port()
        gw = self.gateway(dead)
        reps, ok = h.attempt(gw.port, "s@client.test", ["alice@example.test"], b"Subject: dead\r\n\r\nx\r\n")
        fail = self.assertTempFailed(reps, ok)
        self.assertIn(fail.code, (421, 451, 450, 452, 454), fail)
        self.assertGatewayServes(gw)

    def test_client_drops_mid_data_postfix(self):
        gw = self.gateway(self.pf.port)
        tag = h.unique("dropmid")
        c = h.SmtpClient(gw.port)
        c.ehlo()
        self.assertCode(c.cmd("MAIL FROM:<s@client.test>"), 250)
        self.assertCode(c.cmd("RCPT TO:<alice@example.test>"), 250)
        self.assertCode(c.cmd("DATA"), 354)
        c.send(b"Subject: " + tag.encode() + b"\r\n\r\npart one\r\npart two\r\n")
        c.close()
        time.sleep(3)
        self.assertEqual(self.delivered("alice", tag, expect=1, timeout=2), [])
        self.assertGatewayServes(gw)

    def test_client_drops_mid_data_recorder(self):
        up = self.hostile("record")
        gw = self.gateway(up.port)
        c = h.SmtpClient(gw.port)
        c.ehlo()
        c.cmd("MAIL FROM:<s@client.test>")
        c.cmd("RCPT TO:<alice@example.test>")
        self.assertCode(c.cmd("DATA"), 354)
        c.send(b"Subject: partial\r\n\r\n" + b"y" * 5000 + b"\r\n")
        c.close()
        time.sleep(2)
        self.assertEqual(up.complete_messages(), [])
        self.assertGatewayServes(gw)

    def _hostile_case(self, mode, **kw):
        up = self.hostile(mode, **kw)
        gw = self.gateway(up.port, timeouts=FAST, upstream=FAST_UPSTREAM)
        reps, ok = h.attempt(gw.port, "s@client.test", ["alice@example.test"], b"Subject: hostile\r\n\r\nx\r\n",
                             timeout=90)
        fail = self.assertTempFailed(reps, ok)
        self.assertGatewayServes(gw)
        return up, fail

    def test_huge_reply_to_ehlo(self):
        self._hostile_case("huge_reply", at="EHLO")

    def test_huge_reply_to_mail(self):
        self._hostile_case("huge_reply", at="MAIL")

    def test_reply_without_crlf(self):
        self._hostile_case("no_crlf", at="EHLO")

    def test_reply_without_crlf_at_mail(self):
        self._hostile_case("no_crlf", at="MAIL")

    def test_unexpected_354_to_mail(self):
        up, _ = self._hostile_case("unexpected_354")
        self.assertEqual(up.complete_messages(), [])

    def test_unexpected_2xx_to_data(self):
        up, _ = self._hostile_case("unexpected_2xx_data")
        self.assertFalse(b"Subject: hostile" in up.all_bytes() and b"\r\n.\r\n" in up.all_bytes())

    def test_silent_upstream(self):
        self._hostile_case("slow")

    def test_upstream_drops_mid_data(self):
        self._hostile_case("drop_mid_data")

    def test_hostile_greeting_without_crlf(self):
        self._hostile_case("record", greeting=b"220 no line end")


@unittest.skipUnless(h.have_tool("smtp-sink"), "smtp-sink not installed")
class Upstream421(h.GatewayTest):
    """An upstream that answers 421 (smtp-sink -Q: 421 and disconnect after a command). RFC 5321 §3.8:
    421 means the server closes. The gateway answers 451 4.4.2, drops that upstream leg and keeps
    serving its client, who must never see a 421 it would take for the gateway closing."""

    def _sink(self, commands):
        sink = h.SmtpSink(self.tmp.sub(h.unique("sink421")), extra_args=["-Q", commands]).start()
        self.addCleanup(sink.stop)
        return sink

    def assertUpstream421(self, r):
        self.assertCode(r, 451)
        self.assertEnhanced(r, "4.4.2")

    def assertServing(self, c):
        self.assertCode(c.cmd("NOOP"), 250)
        self.assertFalse(c.closed(1), "the gateway closed the session")
        self.assertCode(c.cmd("RSET"), 250)
        self.assertCode(c.cmd("QUIT"), 221)

    def test_421_at_final_dot(self):
        sink = self._sink(".")
        gw = self.gateway(sink.port)
        c = self.client(gw, timeout=30)
        c.ehlo()
        self.assertCode(c.cmd("MAIL FROM:<s@client.test>"), 250)
        self.assertCode(c.cmd("RCPT TO:<alice@example.test>"), 250)
        self.assertCode(c.cmd("DATA"), 354)
        c.send(b"Subject: dot421\r\n\r\nx\r\n.\r\n")
        self.assertUpstream421(c.read_reply(timeout=30))
        # a next transaction is served on a new upstream leg (which 421s at its dot again)
        self.assertCode(c.cmd("MAIL FROM:<s@client.test>"), 250)
        self.assertCode(c.cmd("RCPT TO:<alice@example.test>"), 250)
        self.assertCode(c.cmd("DATA"), 354)
        c.send(b"Subject: dot421 again\r\n\r\nx\r\n.\r\n")
        self.assertUpstream421(c.read_reply(timeout=30))
        self.assertServing(c)
        self.assertGatewayServes(gw)

    def test_421_at_data_command(self):
        sink = self._sink("DATA")
        gw = self.gateway(sink.port)
        c = self.client(gw, timeout=30)
        c.ehlo()
        self.assertCode(c.cmd("MAIL FROM:<s@client.test>"), 250)
        self.assertCode(c.cmd("RCPT TO:<alice@example.test>"), 250)
        self.assertCode(c.cmd("DATA"), 354)          # the gateway's own 354: the message is spooled first
        c.send(b"Subject: data421\r\n\r\nx\r\n.\r\n")
        self.assertUpstream421(c.read_reply(timeout=30))
        self.assertServing(c)
        self.assertEqual(sink.messages(), [])

    def test_421_at_auth(self):
        up = self.hostile("record", caps=["AUTH PLAIN"], close_421=["AUTH"])
        gw = self.gateway(up.port, smtp={"plaintext_auth": "allow"})
        def offered():
            c = h.SmtpClient(gw.port)
            try:
                c.ehlo()
                return "AUTH" in c.caps
            finally:
                c.close()
        self.assertTrue(h.wait_for(offered, 10), "the gateway never offered AUTH")
        c = self.client(gw, timeout=30)
        c.ehlo()
        self.assertUpstream421(c.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA=="))
        self.assertServing(c)
        self.assertIn(b"AUTH PLAIN", up.all_bytes())
        self.assertNotIn("result=failed", gw.log_text())   # not counted as a failed login

    def test_421_at_mail(self):
        sink = self._sink("MAIL")
        gw = self.gateway(sink.port)
        c = self.client(gw, timeout=30)
        c.ehlo()
        self.assertUpstream421(c.cmd("MAIL FROM:<s@client.test>"))
        self.assertCode(c.cmd("RCPT TO:<alice@example.test>"), 503)   # no transaction was opened
        self.assertUpstream421(c.cmd("MAIL FROM:<s@client.test>"))   # a new leg, refused again
        self.assertServing(c)

    def test_421_at_rcpt(self):
        sink = self._sink("RCPT")
        gw = self.gateway(sink.port)
        c = self.client(gw, timeout=30)
        c.ehlo()
        self.assertCode(c.cmd("MAIL FROM:<s@client.test>"), 250)
        self.assertUpstream421(c.cmd("RCPT TO:<alice@example.test>"))
        self.assertCode(c.cmd("DATA"), 554)                            # no recipient was accepted
        self.assertServing(c)
        self.assertEqual(sink.messages(), [])


if __name__ == "__main__":
    unittest.main()
