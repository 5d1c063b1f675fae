"""The services the core gives filters, used together by the example plugin (tests/plugins/example.c)
loaded as a shared object: per-worker state (init_worker/fini_worker), a DNS question through the
gateway's resolver to a real Unbound, and the sealed message read on the threadpool without a copy,
also after the chain's timeout gave up on the filter and the client has gone. Under the sanitizer
build a use after free or a leak in any of that shows in the gateway's log and fails the test.

Owns: one Unbound (local data only) for the module, a recording upstream and gateways per test.
"""

import os
import re
import time
import unittest

import harness as h

PLUGIN = os.environ.get("PORTCULLIS_TEST_EXAMPLE", "")
LOOKUP = "probe.example.test"
TEXT = "hello from unbound"


def fnv1a(data):
    v = 2166136261
    for b in data:
        v = ((v ^ b) * 16777619) & 0xFFFFFFFF
    return "%08x" % v


@unittest.skipUnless(PLUGIN and os.path.exists(PLUGIN), "PORTCULLIS_TEST_EXAMPLE (built by CMake) not set")
@unittest.skipUnless(h.have_tool("unbound"), "unbound not installed")
class ExamplePlugin(h.GatewayTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dns = h.Unbound(cls.tmp, records=['%s. 300 IN TXT "%s"' % (LOOKUP, TEXT)]).start()

    @classmethod
    def tearDownClass(cls):
        cls.dns.stop()
        super().tearDownClass()

    def start(self, lookup=LOOKUP, delay="0s", timeout="5s", workers=2):
        self.up = self.hostile("record")
        top = {"plugins": [PLUGIN], "workers": workers, "resolver": {"servers": [self.dns.server]}}
        return self.gateway(self.up.port, top=top,
                            filters=[{"name": "example", "timeout": timeout, "on_error": "continue",
                                      "options": {"lookup": lookup, "delay": delay}}])

    def deliver(self, gw, tag):
        msg = h.simple_message(subject=tag)
        reps, ok = h.attempt(gw.port, "s@client.test", ["alice@example.test"], msg)
        self.assertTrue(ok, reps)
        got = [m for m in self.up.complete_messages() if tag.encode() in m.data]
        self.assertEqual(len(got), 1)
        return msg, got[0].data

    def offload_lines(self, gw):
        return re.findall(r"example-offload bytes=(\d+) fnv=([0-9a-f]{8}) mapped=(\d) cancelled=(\d)",
                          gw.log_text())

    def test_lookup_header_and_sealed_read(self):
        gw = self.start()
        msg, up = self.deliver(gw, h.unique("lookup"))
        head = up.split(b"\r\n\r\n", 1)[0]
        self.assertIn(("X-Example-Lookup: NOERROR %s\r\n" % TEXT).encode(), head)
        # The threadpool read the bytes the client sent, all of them, from the sealed message (the
        # header the filter added is layered on top, not in those bytes).
        lines = self.offload_lines(gw)
        self.assertEqual(lines, [(str(len(msg)), fnv1a(msg), "1", "0")])
        self.assertIn("filter=example hook=message action=tag", gw.log_text())

    def test_authentication_results_one_header_forged_ones_removed(self):
        gw = self.start()
        tag = h.unique("authres")
        msg = h.simple_message(subject=tag, extra_headers=(
            "Authentication-Results: gw.test; x-example=pass policy.dns=FORGED\r\n"
            "Authentication-Results: elsewhere.example; spf=pass smtp.mailfrom=x.example\r\n"))
        reps, ok = h.attempt(gw.port, "s@client.test", ["alice@example.test"], msg)
        self.assertTrue(ok, reps)
        up = [m for m in self.up.complete_messages() if tag.encode() in m.data][0].data
        head = up.split(b"\r\n\r\n", 1)[0]
        # The listener's host name is the authserv-id; the client's claim to it is gone, another
        # site's result stays.
        self.assertIn(b"Authentication-Results: gw.test;\r\n\tx-example=pass policy.dns=NOERROR\r\n",
                      head)
        self.assertNotIn(b"FORGED", head)
        self.assertIn(b"Authentication-Results: elsewhere.example; spf=pass", head)
        self.assertEqual(head.count(b"Authentication-Results: gw.test"), 1)

    def test_unknown_name_is_nxdomain(self):
        gw = self.start(lookup="missing.example.test")
        _, up = self.deliver(gw, h.unique("nx"))
        self.assertIn(b"X-Example-Lookup: NXDOMAIN\r\n", up.split(b"\r\n\r\n", 1)[0])

    def test_read_after_the_hook_timed_out_and_the_client_left(self):
        gw = self.start(delay="2500ms", timeout="1s")
        t0 = time.monotonic()
        msg, up = self.deliver(gw, h.unique("late"))
        # The chain gave up after its 1 s and the message went on without the filter's verdict.
        self.assertLess(time.monotonic() - t0, 2.4)
        self.assertIn("filter=example hook=message action=continue", gw.log_text())
        self.assertIn(b"X-Example-Lookup: NOERROR", up)
        # The client has quit and the session is gone; the offloaded read still finds every byte.
        self.assertTrue(h.wait_for(lambda: self.offload_lines(gw), timeout=6), gw.log_text()[-2000:])
        self.assertEqual(self.offload_lines(gw), [(str(len(msg)), fnv1a(msg), "1", "1")])

    def test_worker_state_per_loop(self):
        gw = self.start(workers=2)
        n = 4
        for i in range(n):
            self.deliver(gw, h.unique("w%d" % i))
        gw.stop()
        counts = [int(c) for c in re.findall(r"example-worker-stop messages=(\d+)", gw.log_text())]
        self.assertEqual(len(counts), 2, gw.log_text()[-2000:])  # one state per worker loop
        self.assertEqual(sum(counts), n)


if __name__ == "__main__":
    unittest.main()
