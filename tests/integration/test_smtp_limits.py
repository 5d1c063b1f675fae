"""Limits and timeouts: a 1 MB line without LF, SIZE (declared and actual; the upstream's SIZE less
the headroom is announced and enforced), the recipients cap, the errors cap, Received hop counting, the command timeout, and a slow-but-alive client.

Owns: a recording upstream and gateways per test (timeouts shortened in the config for the test).
"""

import socket
import time
import unittest

import harness as h


class Limits(h.GatewayTest):
    def test_megabyte_line_without_lf(self):
        up = self.hostile("record")
        gw = self.gateway(up.port)
        c = self.client(gw, timeout=30)
        c.ehlo()
        t = h.send_in_thread(c.sock.sendall, b"NOOP " + b"A" * (1 << 20))
        r = c.read_reply(timeout=30)
        self.assertCode(r, 500)
        self.assertEnhanced(r, "5.5.2")
        t.join(30)
        # Either the session continues after the line ends, or it is closed cleanly.
        try:
            c.send(b"\r\nNOOP\r\n")
            r = c.read_reply(timeout=15)
            for _ in range(5):
                if r is None or r.code == 250:
                    break
                self.assertCode(r, 5)
                r = c.read_reply(timeout=15)
            if r is not None:
                self.assertCode(r, 250)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.assertGatewayServes(gw)

    def test_size_declared_too_big(self):
        up = self.hostile("record")
        gw = self.gateway(up.port, limits={"message_size": 100000})
        c = self.client(gw)
        c.ehlo()
        self.assertEqual(c.caps.get("SIZE"), "100000")
        r = c.cmd("MAIL FROM:<s@client.test> SIZE=200000")
        self.assertCode(r, 552)
        self.assertCode(c.cmd("MAIL FROM:<s@client.test> SIZE=1000"), 250)

    def test_message_over_size_552_after_dot(self):
        up = self.hostile("record")
        gw = self.gateway(up.port, limits={"message_size": 100000})
        c = self.client(gw, timeout=30)
        c.ehlo()
        self.assertCode(c.cmd("MAIL FROM:<s@client.test>"), 250)
        self.assertCode(c.cmd("RCPT TO:<alice@example.test>"), 250)
        self.assertCode(c.cmd("DATA"), 354)
        body = b"Subject: big\r\n\r\n" + (b"x" * 78 + b"\r\n") * 2000   # 160 KB
        t = h.send_in_thread(c.sock.sendall, body + b".\r\n")
        r = c.read_reply(timeout=30)
        t.join(30)
        self.assertCode(r, 552)
        self.assertEnhanced(r, "5.3.4")
        self.assertEqual(up.complete_messages(), [])
        self.assertCode(c.cmd("RSET"), 250)
        self.assertCode(c.cmd("MAIL FROM:<s@client.test>"), 250)

    def test_recipients_cap(self):
        up = self.hostile("record")
        gw = self.gateway(up.port, limits={"recipients": 3})
        c = self.client(gw)
        c.ehlo()
        c.cmd("MAIL FROM:<s@client.test>")
        for i in range(3):
            self.assertCode(c.cmd("RCPT TO:<u%d@example.test>" % i), 250)
        r = c.cmd("RCPT TO:<u9@example.test>")
        self.assertCode(r, 452)
        self.assertEnhanced(r, "4.5.3")
        self.assertCode(c.cmd("DATA"), 354)
        c.send(b"Subject: cap\r\n\r\nx\r\n.\r\n")
        self.assertCode(c.read_reply(), 250)
        self.assertEqual(len(up.complete_messages()[0].rcpts), 3)

    def test_errors_cap(self):
        up = self.hostile("record")
        gw = self.gateway(up.port, limits={"errors": 3})
        c = self.client(gw)
        c.ehlo()
        last = None
        for i in range(12):
            try:
                last = c.cmd("BOGUS%d" % i)
            except (BrokenPipeError, ConnectionResetError):
                last = None
            if last is None or last.code == 421:
                break
        self.assertIsNotNone(last, "closed without 421")
        self.assertCode(last, 421)
        self.assertEnhanced(last, "4.7.0")
        self.assertTrue(c.closed(5))
        self.assertGatewayServes(gw)

    def test_received_hops(self):
        up = self.hostile("record")
        gw = self.gateway(up.port, limits={"max_received": 30})
        hops = b"".join(b"Received: from h%d.test by h%d.test; Mon, 1 Jan 2024 00:00:00 +0000\r\n" % (i, i + 1)
                        for i in range(31))
        reps, ok = h.attempt(gw.port, "s@client.test", ["alice@example.test"], hops + b"Subject: loop\r\n\r\nx\r\n")
        self.assertFalse(ok)
        self.assertCode(reps[-1], 554)
        self.assertEnhanced(reps[-1], "5.4.6")
        self.assertEqual(up.complete_messages(), [])
        few = hops[: hops.index(b"Received: from h5.")]
        reps, ok = h.attempt(gw.port, "s@client.test", ["alice@example.test"], few + b"Subject: ok\r\n\r\nx\r\n")
        self.assertTrue(ok, reps)

    def test_command_timeout(self):
        up = self.hostile("record")
        gw = self.gateway(up.port, timeouts={"command": "2s"})
        c = self.client(gw, timeout=15)
        c.ehlo()
        t0 = time.monotonic()
        r = c.read_reply(timeout=15)
        elapsed = time.monotonic() - t0
        self.assertCode(r, 421)
        self.assertEnhanced(r, "4.4.2")
        self.assertTrue(1.5 <= elapsed <= 10, elapsed)
        self.assertTrue(c.closed(5))

    def test_trickling_clients_timed_out(self):
        """The greeting and command timeouts are deadlines for a whole command line: a byte every
        0.5 s does not move them (before the first command, and after EHLO), for every client."""
        up = self.hostile("record")
        gw = self.gateway(up.port, timeouts={"greeting": "3s", "command": "3s"})
        greeted = [self.client(gw, timeout=15) for _ in range(6)]
        after_ehlo = [self.client(gw, timeout=15) for _ in range(6)]
        for c in after_ehlo:
            c.ehlo()
        closed = h.trickle_until_close([c.sock for c in greeted + after_ehlo], limit=15.0)
        for t in closed:
            self.assertIsNotNone(t, "a trickling client was never timed out: %r" % closed)
            self.assertLess(t, 9.0, closed)
        self.assertIn("timeout", gw.log_text())
        reps, ok = h.attempt(gw.port, "s@client.test", ["alice@example.test"], b"Subject: ok\r\n\r\nx\r\n")
        self.assertTrue(ok, reps)

    def test_slow_client_one_byte_per_second(self):
        up = self.hostile("record")
        gw = self.gateway(up.port, timeouts={"command": "8s"})
        c = self.client(gw, timeout=20)
        c.ehlo()
        for b in b"NOOP\r\n":
            c.send(bytes([b]))
            time.sleep(1)
        self.assertCode(c.read_reply(timeout=10), 250)
        r = c.read_reply(timeout=20)             # then idle: the timeout still applies
        self.assertCode(r, 421)

    # -- SIZE: the limit announced is the limit enforced. The recording upstream announces
    # SIZE 5000000 and deliberately does not enforce it (a lax peer): whatever it received is what the
    # gateway let through.
    UP_SIZE = 5000000
    HEADROOM = 16384          # limits.size_headroom default

    def _size_gateway(self, **limits):
        up = self.hostile("record", size=self.UP_SIZE)
        gw = self.gateway(up.port, limits=limits)
        # the start-up probe of the upstream teaches the gateway its SIZE: wait for it
        want = str(self.UP_SIZE - limits.get("size_headroom", self.HEADROOM))
        def probed():
            c = h.SmtpClient(gw.port)
            try:
                c.ehlo()
                return c.caps.get("SIZE") != "10485760"
            finally:
                c.close()
        self.assertTrue(h.wait_for(probed, 10), "the gateway never learnt the upstream's SIZE")
        return up, gw, want

    def test_size_announced_is_upstream_minus_headroom(self):
        up, gw, want = self._size_gateway()
        c = self.client(gw)
        c.ehlo()
        self.assertEqual(c.caps.get("SIZE"), want)
        up2, gw2, want2 = self._size_gateway(size_headroom=1024)
        c2 = self.client(gw2)
        c2.ehlo()
        self.assertEqual(c2.caps.get("SIZE"), want2)
        self.assertEqual(want2, str(self.UP_SIZE - 1024))

    def test_size_declared_over_announced_refused_at_mail(self):
        up, gw, want = self._size_gateway()
        c = self.client(gw)
        c.ehlo()
        # over the announcement though under the upstream's own SIZE
        r = c.cmd("MAIL FROM:<s@client.test> SIZE=%d" % (int(want) + 1))
        self.assertCode(r, 552)
        self.assertEnhanced(r, "5.3.4")
        self.assertCode(c.cmd("MAIL FROM:<s@client.test> SIZE=%s" % want), 250)
        self.assertFalse([x for x in up.all_commands() if "SIZE=%d" % (int(want) + 1) in x])

    def _send_sized(self, gw, total):
        """One transaction with a message of `total` bytes as RFC 1870 counts them (CRLF line ends,
        before dot-stuffing), no SIZE parameter. Returns the reply to the final dot."""
        c = self.client(gw, timeout=60)
        c.ehlo()
        self.assertCode(c.cmd("MAIL FROM:<s@client.test>"), 250)
        self.assertCode(c.cmd("RCPT TO:<alice@example.test>"), 250)
        self.assertCode(c.cmd("DATA"), 354)
        head = b"Subject: sized\r\n\r\n"
        line = b"." + b"x" * 77 + b"\r\n"      # leading dots: stuffing must not count
        n, rest = divmod(total - len(head), len(line))
        if rest == 1:
            n, rest = n - 1, rest + len(line)
        body = head + line * n + (b"y" * (rest - 2) + b"\r\n" if rest else b"")
        self.assertEqual(len(body), total)
        wire = h.dot_stuff(body) + b".\r\n"
        t = h.send_in_thread(c.sock.sendall, wire)
        r = c.read_reply(timeout=60)
        t.join(60)
        return c, r

    def test_message_over_upstream_size_refused_after_dot(self):
        up, gw, want = self._size_gateway()
        c, r = self._send_sized(gw, 5002000)
        self.assertCode(r, 552)
        self.assertEnhanced(r, "5.3.4")
        self.assertEqual(up.complete_messages(), [])
        self.assertNotIn(b"Subject: sized", up.all_bytes())
        self.assertCode(c.cmd("RSET"), 250)

    def test_message_over_announced_size_refused_after_dot(self):
        up, gw, want = self._size_gateway()
        c, r = self._send_sized(gw, int(want) + 1)
        self.assertCode(r, 552)
        self.assertEnhanced(r, "5.3.4")
        self.assertEqual(up.complete_messages(), [])

    def test_message_of_announced_size_fits_upstream(self):
        up, gw, want = self._size_gateway()
        c, r = self._send_sized(gw, int(want))
        self.assertCode(r, 250)
        msgs = up.complete_messages()
        self.assertEqual(len(msgs), 1)
        # with the gateway's Received header it still fits the upstream's SIZE
        self.assertLessEqual(len(msgs[0].data), self.UP_SIZE)
        rcv, rest = h.strip_first_received(msgs[0].data)
        self.assertIsNotNone(rcv)
        self.assertEqual(len(rest), int(want))


if __name__ == "__main__":
    unittest.main()
