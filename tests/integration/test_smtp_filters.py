"""The filter chain end to end: a filter plugin loaded as a shared object (tests/plugins/testmark.c)
answers each verdict — reject, tempfail, quarantine, discard, a filter that never answers — and adds a
header to what it lets through; the built-in access filter refuses listed clients, senders and
recipients at their hooks. Checked where a user would look: the reply codes and the bytes upstream.

Owns: a recording upstream (hostile_upstream.py in record mode, a well-behaved recorder) and gateways.
"""

import os
import time
import unittest

import harness as h

PLUGIN = os.environ.get("PORTCULLIS_TEST_PLUGIN", "")


@unittest.skipUnless(PLUGIN and os.path.exists(PLUGIN), "PORTCULLIS_TEST_PLUGIN (built by CMake) not set")
class PluginFilter(h.GatewayTest):

    def start(self, on_error="tempfail"):
        self.up = self.hostile("record")
        return self.gateway(self.up.port, top={"plugins": [PLUGIN]},
                            filters=[{"name": "testmark", "timeout": "1s", "on_error": on_error}])

    def send(self, gw, verdict, tag):
        extra = "X-Test-Verdict: %s\r\n" % verdict if verdict else ""
        return h.attempt(gw.port, "s@client.test", ["alice@example.test"],
                         h.simple_message(subject=tag, extra_headers=extra))

    def upstream_has(self, tag):
        return [m for m in self.up.complete_messages() if tag.encode() in m.data]

    def test_clean_message_passes_with_the_filters_header(self):
        gw = self.start()
        tag = h.unique("clean")
        reps, ok = self.send(gw, None, tag)
        self.assertTrue(ok, reps)
        msgs = self.upstream_has(tag)
        self.assertEqual(len(msgs), 1)
        head = msgs[0].data.split(b"\r\n\r\n", 1)[0]
        self.assertIn(b"X-Test-Filter: passed\r\nReceived: from ", head)
        # The filter's symbol and score are reported (no thresholds here: never flagged).
        self.assertIn(b"X-Spam-Status: No, score=1.50 tests=TESTMARK_SEEN(1.50)\r\n", head)
        self.assertNotIn(b"X-Spam-Flag", head)
        self.assertIn("filter=testmark hook=message action=tag", gw.log_text())
        # The close hook runs when the client leaves.
        self.assertTrue(h.wait_for(lambda: "filter=testmark hook=close" in gw.log_text(), timeout=5))

    def test_reject(self):
        gw = self.start()
        tag = h.unique("reject")
        reps, ok = self.send(gw, "reject", tag)
        self.assertFalse(ok)
        self.assertCode(reps[-1], 550)
        self.assertIn("testmark", reps[-1].text)
        self.assertEqual(self.upstream_has(tag), [])

    def test_tempfail(self):
        gw = self.start()
        tag = h.unique("tempfail")
        reps, ok = self.send(gw, "tempfail", tag)
        self.assertCode(reps[-1], 451)
        self.assertEqual(self.upstream_has(tag), [])

    def test_quarantine_is_never_accepted_without_a_store(self):
        gw = self.start()
        tag = h.unique("quarantine")
        reps, ok = self.send(gw, "quarantine", tag)
        self.assertCode(reps[-1], 451)
        self.assertEnhanced(reps[-1], "4.7.1")
        self.assertEqual(self.upstream_has(tag), [])

    def test_discard_is_logged(self):
        gw = self.start()
        tag = h.unique("discard")
        reps, ok = self.send(gw, "discard", tag)
        self.assertTrue(ok, reps)  # the admin's policy asked for it
        self.assertEqual(self.upstream_has(tag), [])
        self.assertIn("result=discarded-by-policy", gw.log_text())

    def test_filter_that_never_answers_tempfails_and_the_session_goes_on(self):
        gw = self.start()
        tag = h.unique("hang")
        c = self.client(gw)
        c.ehlo()
        t0 = time.monotonic()
        reps = c.transaction("s@client.test", ["alice@example.test"],
                             h.simple_message(subject=tag, extra_headers="X-Test-Verdict: hang\r\n"),
                             helo=False)
        self.assertCode(reps[-1], 451)
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        self.assertEqual(self.upstream_has(tag), [])
        tag2 = h.unique("after-hang")
        reps = c.transaction("s@client.test", ["alice@example.test"], h.simple_message(subject=tag2),
                             helo=False)
        self.assertCode(reps[-1], 250)
        self.assertEqual(len(self.upstream_has(tag2)), 1)

    def test_on_error_continue_delivers_after_the_timeout(self):
        gw = self.start(on_error="continue")
        tag = h.unique("hang-continue")
        reps, ok = self.send(gw, "hang", tag)
        self.assertTrue(ok, reps)
        self.assertEqual(len(self.upstream_has(tag)), 1)


@unittest.skipUnless(PLUGIN and os.path.exists(PLUGIN), "PORTCULLIS_TEST_PLUGIN (built by CMake) not set")
class Scores(h.GatewayTest):
    """The listener's thresholds map the total score of a message (testmark adds 1.5 to each message
    it passes) to tag, quarantine or reject; the spam headers report it, replacing the client's."""

    def start(self, scores):
        self.up = self.hostile("record")
        return self.gateway(self.up.port, top={"plugins": [PLUGIN]}, scores=scores,
                            filters=[{"name": "testmark", "timeout": "5s"}])

    def send(self, gw, tag, extra=""):
        return h.attempt(gw.port, "s@client.test", ["alice@example.test"],
                         h.simple_message(subject=tag, extra_headers=extra))

    def head_of(self, tag):
        msgs = [m for m in self.up.complete_messages() if tag.encode() in m.data]
        self.assertEqual(len(msgs), 1)
        return msgs[0].data.split(b"\r\n\r\n", 1)[0]

    def test_tag_threshold_flags_and_replaces_the_clients_headers(self):
        gw = self.start({"tag": 1, "reject": 10})
        tag = h.unique("tagged")
        reps, ok = self.send(gw, tag, "X-Spam-Flag: NO\r\nX-Spam-Score: -50\r\n")
        self.assertTrue(ok, reps)
        head = self.head_of(tag)
        self.assertIn(b"X-Spam-Flag: YES\r\n", head)
        self.assertIn(b"X-Spam-Score: 1.50\r\n", head)
        self.assertIn(b"X-Spam-Status: Yes, score=1.50 required=1.00 tests=TESTMARK_SEEN(1.50)", head)
        self.assertNotIn(b"X-Spam-Flag: NO", head)
        self.assertNotIn(b"-50", head)
        self.assertIn("event=score hook=message score=1.50 threshold=1.00 action=tag", gw.log_text())

    def test_under_the_threshold_is_not_flagged(self):
        gw = self.start({"tag": 2})
        tag = h.unique("clean")
        reps, ok = self.send(gw, tag)
        self.assertTrue(ok, reps)
        head = self.head_of(tag)
        self.assertIn(b"X-Spam-Status: No, score=1.50 required=2.00", head)
        self.assertNotIn(b"X-Spam-Flag", head)

    def test_reject_threshold(self):
        gw = self.start({"tag": 0.5, "reject": 1.5})
        tag = h.unique("spam")
        reps, ok = self.send(gw, tag)
        self.assertFalse(ok)
        self.assertCode(reps[-1], 550)
        self.assertEnhanced(reps[-1], "5.7.1")
        self.assertEqual([m for m in self.up.complete_messages() if tag.encode() in m.data], [])
        self.assertIn("score=1.50", gw.log_text())

    def test_quarantine_threshold_is_451_without_a_store(self):
        gw = self.start({"quarantine": 1})
        reps, ok = self.send(gw, h.unique("held"))
        self.assertFalse(ok)
        self.assertCode(reps[-1], 451)
        self.assertEnhanced(reps[-1], "4.7.1")

    def test_thresholds_must_rise(self):
        out = h.run_portcullis(["-t", "-c", self.tmp.file("bad-scores.yaml", h.to_yaml(
            h.gateway_config(self.tmp, h.listener_config(h.free_port(), 25, scores={"tag": 5, "reject": 3}))))])
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("scores.reject: must be greater than tag", out.stdout + out.stderr)


class AccessFilter(h.GatewayTest):

    def start(self, **options):
        self.up = self.hostile("record")
        return self.gateway(self.up.port, filters=[{"name": "access", "options": options}])

    def test_denied_sender_and_recipient(self):
        gw = self.start(deny_senders=["spam@bad.test"], deny_recipients=["bob@example.test"])
        c = self.client(gw)
        c.ehlo()
        r = c.cmd("MAIL FROM:<spam@bad.test>")
        self.assertCode(r, 554)
        self.assertEnhanced(r, "5.7.1")
        self.assertCode(c.cmd("MAIL FROM:<good@client.test>"), 250)
        self.assertCode(c.cmd("RCPT TO:<bob@example.test>"), 554)
        self.assertCode(c.cmd("RCPT TO:<alice@example.test>"), 250)
        self.assertNotIn("spam@bad.test", " ".join(self.up.all_commands()))
        self.assertNotIn("bob@example.test", " ".join(self.up.all_commands()))

    def test_denied_client_is_refused_at_connect(self):
        if not h.loopback_alias_ok("127.0.0.9"):
            self.skipTest("cannot bind 127.0.0.9")
        gw = self.start(deny_clients=["127.0.0.9/32"])
        c = h.SmtpClient(gw.port, source="127.0.0.9")
        self.addCleanup(c.close)
        self.assertCode(c.greeting, 5)
        self.assertTrue(c.closed())
        ok = h.SmtpClient(gw.port)
        self.addCleanup(ok.close)
        self.assertCode(ok.greeting, 220)


if __name__ == "__main__":
    unittest.main()
