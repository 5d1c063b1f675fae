"""Basic SMTP relaying through Portcullis: delivery into a real Postfix Maildir, byte-exact forwarding
(smtp-sink dumps and the recording upstream), pipelining, per-recipient upstream answers, relay refusal,
RSET/HELP/VRFY/unknown commands and the EHLO capability list.

Owns: one private Postfix (class), gateways/sinks per test. Invariant checked: what the client was told
matches what arrived upstream.
"""

import unittest

import harness as h


@unittest.skipUnless(h.have_tool("postfix") and h.have_tool("smtp-sink"), "postfix/smtp-sink not installed")
class Basic(h.GatewayTest):
    postfix = True

    def test_greeting_names_hostname(self):
        gw = self.gateway(self.pf.port)
        c = self.client(gw)
        self.assertCode(c.greeting, 220)
        self.assertIn("gw.test", c.greeting.lines[0])

    def test_delivery_into_postfix_maildir(self):
        gw = self.gateway(self.pf.port)
        tag = h.unique("basic")
        reps, ok = h.attempt(gw.port, "sender@client.test", ["alice@example.test"],
                             h.simple_message(subject=tag))
        self.assertTrue(ok, reps)
        got = self.delivered("alice", tag)
        self.assertEqual(len(got), 1, self.pf.log_text()[-2000:])
        received = h.header_values(got[0], "Received")
        # Postfix's own Received (top) plus the one the gateway prepended.
        self.assertGreaterEqual(len(received), 2, received)
        self.assertTrue(any(b"gw.test" in r for r in received[1:]), received)

    def test_byte_exact_via_smtp_sink(self):
        sink = h.SmtpSink(self.tmp.sub(h.unique("sink"))).start()
        self.addCleanup(sink.stop)
        gw = self.gateway(sink.port)
        msg = (b"From: <a@client.test>\r\nTo: <alice@example.test>\r\nSubject: exact\r\n"
               b"X-Weird:   spaced\t value \r\n\r\n"
               b".leading dot\r\n..two dots\r\n.\r\n"          # dot-stuffed on the wire
               b"8-bit: \xe9\xe8\xff\xfe latin-1 and \xc3\xa9 utf-8\r\n"
               b"trailing spaces   \r\n\r\nlast line\r\n")
        reps, ok = h.attempt(gw.port, "a@client.test", ["alice@example.test"], msg)
        self.assertTrue(ok, reps)
        dumps = sink.messages(expect=1)
        self.assertEqual(len(dumps), 1)
        rcv, rest = h.strip_first_received(dumps[0]["message"])
        self.assertIsNotNone(rcv, "the gateway must prepend a Received header: %r" % dumps[0]["message"][:300])
        self.assertEqual(rest, msg)
        self.assertIn("alice@example.test", " ".join(dumps[0]["rcpts"]))
        # the session's log line counts what the client sent (the message, dot-stuffed) and got
        line = h.wait_for(lambda: [x for x in gw.log_text().splitlines()
                                   if "event=disconnect client=" in x and "messages=1" in x])
        self.assertTrue(line, gw.log_text()[-2000:])
        f = dict(kv.split("=", 1) for kv in line[0].split() if "=" in kv)
        self.assertGreater(int(f["bytes_in"]), len(msg))
        self.assertGreater(int(f["bytes_out"]), 100)

    def test_byte_exact_on_the_wire(self):
        up = self.hostile("record")
        gw = self.gateway(up.port)
        msg = b"Subject: wire\r\n\r\n.x\r\n..\r\n.\r\nend\r\n"
        reps, ok = h.attempt(gw.port, "a@client.test", ["alice@example.test"], msg)
        self.assertTrue(ok, reps)
        msgs = up.complete_messages()
        self.assertEqual(len(msgs), 1)
        raw = msgs[0].raw
        self.assertIsNone(h.BARE_LF.search(raw))
        self.assertIsNone(h.BARE_CR.search(raw))
        rcv, rest = h.strip_first_received(msgs[0].data)
        self.assertIsNotNone(rcv)
        self.assertEqual(rest, msg)
        self.assertIn(b"\r\n...\r\n", raw)   # ".." re-stuffed
        self.assertIn(b"\r\n..\r\n", raw)    # "." re-stuffed

    def test_pipelined_transaction(self):
        gw = self.gateway(self.pf.port)
        tag = h.unique("pipe")
        c = self.client(gw)
        c.ehlo()
        self.assertIn("PIPELINING", c.caps)
        c.send(b"MAIL FROM:<p@client.test>\r\nRCPT TO:<alice@example.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\nDATA\r\n")
        codes = [c.read_reply().code for _ in range(4)]
        self.assertEqual(codes, [250, 250, 250, 354])
        c.send(h.dot_stuff(h.simple_message(subject=tag)) + b".\r\nQUIT\r\n")
        self.assertCode(c.read_reply(timeout=30), 250)
        self.assertCode(c.read_reply(), 221)
        self.assertEqual(len(self.delivered("alice", tag)), 1)
        self.assertEqual(len(self.delivered("bob", tag)), 1)

    def test_per_recipient_upstream_answers(self):
        gw = self.gateway(self.pf.port)
        tag = h.unique("perrcpt")
        c = self.client(gw)
        c.ehlo()
        self.assertCode(c.cmd("MAIL FROM:<s@client.test>"), 250)
        self.assertCode(c.cmd("RCPT TO:<alice@example.test>"), 250)
        r = c.cmd("RCPT TO:<nosuchuser@example.test>")
        self.assertCode(r, 550)                 # Postfix's own answer, relayed
        self.assertEnhanced(r, "5.1.1")
        self.assertCode(c.cmd("RCPT TO:<bob@example.test>"), 250)
        self.assertCode(c.cmd("DATA"), 354)
        c.send(h.dot_stuff(h.simple_message(subject=tag)) + b".\r\n")
        self.assertCode(c.read_reply(timeout=30), 250)
        self.assertEqual(len(self.delivered("alice", tag)), 1)
        self.assertEqual(len(self.delivered("bob", tag)), 1)
        self.assertFalse(h.os.path.exists(h.os.path.join(self.pf.mail, "example.test", "nosuchuser")))

    def test_relay_refused_for_untrusted_source(self):
        if not h.loopback_alias_ok("127.0.0.5"):
            self.skipTest("cannot bind 127.0.0.5")
        up = self.hostile("record")
        gw = self.gateway(up.port, trusted_networks=["127.0.0.1/32"])
        c = self.client(gw, source="127.0.0.5")
        c.ehlo()
        self.assertCode(c.cmd("MAIL FROM:<s@client.test>"), 250)
        r = c.cmd("RCPT TO:<someone@other.test>")
        self.assertCode(r, 554)
        self.assertEnhanced(r, "5.7.1")
        self.assertCode(c.cmd("RCPT TO:<alice@example.test>"), 250)   # accepted domain still fine
        c.cmd("QUIT")
        c.close()
        self.assertNotIn(b"other.test", up.all_bytes())

    def test_trusted_source_may_relay(self):
        up = self.hostile("record")
        gw = self.gateway(up.port, trusted_networks=["127.0.0.1/32"])
        reps, ok = h.attempt(gw.port, "s@client.test", ["someone@other.test"], b"Subject: relay\r\n\r\nx\r\n")
        self.assertTrue(ok, reps)

    def test_rset_frees_transaction(self):
        gw = self.gateway(self.pf.port)
        c = self.client(gw)
        c.ehlo()
        self.assertCode(c.cmd("MAIL FROM:<s@client.test>"), 250)
        self.assertCode(c.cmd("RCPT TO:<alice@example.test>"), 250)
        self.assertCode(c.cmd("RSET"), 250)
        self.assertCode(c.cmd("RCPT TO:<alice@example.test>"), 503)   # no MAIL any more
        self.assertCode(c.cmd("DATA"), 503)
        self.assertCode(c.cmd("MAIL FROM:<s2@client.test>"), 250)     # not "nested MAIL"
        self.assertCode(c.cmd("RSET"), 250)

    def test_help_vrfy_noop_unknown(self):
        gw = self.gateway(self.pf.port)
        c = self.client(gw)
        c.ehlo()
        self.assertCode(c.cmd("HELP"), 2)
        r = c.cmd("VRFY alice@example.test")
        self.assertIn(r.code, (250, 252, 502), r)
        self.assertCode(c.cmd("NOOP"), 250)
        r = c.cmd("FOOBAR baz")
        self.assertCode(r, 500)
        self.assertEnhanced(r, "5.5.1")
        self.assertCode(c.cmd("MAIL FROM:<s@client.test>"), 250)       # session still usable
        self.assertCode(c.cmd("QUIT"), 221)
        self.assertTrue(c.closed(5))

    def test_commands_before_ehlo(self):
        gw = self.gateway(self.pf.port)
        c = self.client(gw)
        self.assertCode(c.cmd("MAIL FROM:<s@client.test>"), 503)
        self.assertCode(c.cmd("HELO client.test"), 250)

    def test_ehlo_capabilities(self):
        gw = self.gateway(self.pf.port, tls="starttls")   # gateway 10M, Postfix 5000000
        c = self.client(gw)
        self.assertCode(c.ehlo(), 250)
        # Postfix's limit less the default headroom for the headers the gateway adds
        self.assertEqual(c.caps.get("SIZE"), str(5000000 - 16384))
        for cap in ("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "STARTTLS"):
            self.assertIn(cap, c.caps)
        self.assertNotIn("CHUNKING", c.caps)
        self.assertNotIn("XCLIENT", c.caps)
        self.assertNotIn("AUTH", c.caps)

    def test_ehlo_size_gateway_smaller(self):
        gw = self.gateway(self.pf.port, limits={"message_size": 1000000})
        c = self.client(gw)
        c.ehlo()
        self.assertEqual(c.caps.get("SIZE"), "1000000")
        self.assertNotIn("STARTTLS", c.caps)   # no certificate configured


class Envelope(h.GatewayTest):
    """What the gateway lets into the envelope it relays: 8-bit addresses only with SMTPUTF8
    (RFC 6531 §3.4), and local parts it does not interpret passed on unchanged to its one upstream."""

    UTF8_FROM = "usér@exämple.test"
    UTF8_RCPT = "ålice@example.test"

    def _probed(self, gw, cap):
        def has():
            c = h.SmtpClient(gw.port)
            try:
                c.ehlo()
                return cap in c.caps
            finally:
                c.close()
        self.assertTrue(h.wait_for(has, 15), "the gateway never learnt the upstream's %s" % cap)

    def _refused_8bit(self, c):
        r = c.cmd("MAIL FROM:<%s>" % self.UTF8_FROM)
        self.assertCode(r, 553)
        self.assertEnhanced(r, "5.6.7")
        self.assertCode(c.cmd("NOOP"), 250)                  # the session goes on
        self.assertCode(c.cmd("MAIL FROM:<s@client.test>"), 250)
        r = c.cmd("RCPT TO:<%s>" % self.UTF8_RCPT)          # a transaction opened without SMTPUTF8
        self.assertCode(r, 553)
        self.assertEnhanced(r, "5.6.7")
        self.assertCode(c.cmd("RCPT TO:<alice@example.test>"), 250)
        self.assertCode(c.cmd("RSET"), 250)

    def test_8bit_address_without_smtputf8_refused(self):
        # The upstream offers SMTPUTF8, but greets late: the first client arrives while the gateway's
        # start-up probe is still waiting, and must get the same answers as one after it.
        up = self.hostile("record", caps=["SMTPUTF8"], greeting_delay=3.0)
        gw = self.gateway(up.port)
        c = self.client(gw, timeout=20)
        c.ehlo()
        self.assertNotIn("SMTPUTF8", c.caps)                 # the probe has not finished yet
        self._refused_8bit(c)
        c.cmd("QUIT")
        self._probed(gw, "SMTPUTF8")
        c2 = self.client(gw, timeout=20)
        c2.ehlo()
        self._refused_8bit(c2)
        c2.cmd("QUIT")
        c.close()
        c2.close()
        sent = up.all_bytes()
        self.assertTrue(sent)
        self.assertFalse([b for b in sent if b >= 0x80], "8-bit bytes reached the upstream: %r" % sent)

    def test_8bit_address_with_smtputf8_relayed(self):
        up = self.hostile("record", caps=["SMTPUTF8"])
        gw = self.gateway(up.port)
        self._probed(gw, "SMTPUTF8")
        c = self.client(gw)
        c.ehlo()
        self.assertCode(c.cmd("MAIL FROM:<%s> SMTPUTF8" % self.UTF8_FROM), 250)
        self.assertCode(c.cmd("RCPT TO:<%s>" % self.UTF8_RCPT), 250)
        self.assertCode(c.cmd("DATA"), 354)
        c.send(b"Subject: utf8\r\n\r\nx\r\n.\r\n")
        self.assertCode(c.read_reply(timeout=30), 250)
        msgs = up.complete_messages()
        self.assertEqual(len(msgs), 1)
        # recorded as latin-1 text: compare the bytes
        self.assertEqual(msgs[0].mail_from.encode("latin-1"),
                         ("FROM:<%s> SMTPUTF8" % self.UTF8_FROM).encode())
        self.assertEqual([r.encode("latin-1") for r in msgs[0].rcpts], [("TO:<%s>" % self.UTF8_RCPT).encode()])

    # Local parts with routing in them: the percent hack, a quoted "@", a bang path. The gateway
    # interprets none of them: the domain after the last "@" is the destination (accepted here), the
    # address goes to its one upstream unchanged, and the client hears the upstream's own answer.
    # Whether the upstream then routes to foreign.example is its configuration (SECURITY.md).
    ROUTED = ["u%foreign.example@example.test", '"u@foreign.example"@example.test',
              "u!foreign.example@example.test"]

    def test_routing_local_parts_reach_the_upstream_unchanged(self):
        up = self.hostile("record", reject_rcpts=[self.ROUTED[2]])
        gw = self.gateway(up.port, trusted_networks=["192.0.2.0/24"])   # the test client is untrusted
        c = self.client(gw)
        c.ehlo()
        self.assertCode(c.cmd("MAIL FROM:<s@client.test>"), 250)
        r = c.cmd("RCPT TO:<u@foreign.example>")                    # control: a foreign domain
        self.assertCode(r, 554)
        self.assertEnhanced(r, "5.7.1")
        self.assertCode(c.cmd("RCPT TO:<%s>" % self.ROUTED[0]), 250)
        self.assertCode(c.cmd("RCPT TO:<%s>" % self.ROUTED[1]), 250)
        r = c.cmd("RCPT TO:<%s>" % self.ROUTED[2])
        self.assertCode(r, 550)                                      # the upstream's refusal, relayed
        self.assertEnhanced(r, "5.1.1")
        self.assertIn("Recipient address rejected", r.text)
        self.assertCode(c.cmd("DATA"), 354)
        c.send(b"Subject: routed\r\n\r\nx\r\n.\r\n")
        self.assertCode(c.read_reply(timeout=30), 250)
        c.cmd("QUIT")
        msgs = up.complete_messages()
        self.assertEqual(len(msgs), 1)
        self.assertEqual(msgs[0].rcpts, ["TO:<%s>" % a for a in self.ROUTED[:2]])
        rcpt_lines = [x for x in up.all_commands() if x.upper().startswith("RCPT")]
        self.assertEqual(rcpt_lines, ["RCPT TO:<%s>" % a for a in self.ROUTED])
        self.assertNotIn(b"<u@foreign.example>", up.all_bytes())
        # the gateway has no route of its own: foreign.example appears in its log only as part of an
        # address, never as a host it resolved or connected to
        for line in gw.log_text().splitlines():
            if "foreign.example" in line:
                self.assertRegex(line, r"event=(relay-denied|message) ", line)


if __name__ == "__main__":
    unittest.main()
