"""Self-test of the integration fixtures (no gateway needed): proves that the private Postfix, smtp-sink
dumps, the PKI and the hostile upstream work on this machine before any gateway test relies on them.

Owns: one Postfix instance, one smtp-sink, one HostileUpstream per test class; all stopped by PID/close.
"""

import smtplib
import socket
import ssl
import unittest

import harness as h
from hostile_upstream import HostileUpstream


@unittest.skipUnless(h.have_tool("postfix") and h.have_tool("openssl"), "postfix/openssl not installed")
class PostfixFixture(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = h.TempDir()
        cls.pki = h.make_pki(cls.tmp.sub("pki"))
        cls.pf = h.Postfix(cls.tmp, tls=True, pki=cls.pki).start()

    @classmethod
    def tearDownClass(cls):
        cls.pf.stop()
        cls.tmp.cleanup()

    def test_delivers_to_maildir(self):
        msg = h.simple_message(subject="fixture", to="alice@example.test", body="fixture body\r\n")
        with smtplib.SMTP("127.0.0.1", self.pf.port, timeout=10) as s:
            refused = s.sendmail("x@client.test", ["alice@example.test"], msg)
        self.assertEqual(refused, {})
        got = self.pf.maildir_messages("alice", expect=1)
        self.assertTrue(any(b"Subject: fixture" in m for m in got), self.pf.log_text()[-2000:])

    def test_unknown_recipient_550_and_size(self):
        with smtplib.SMTP("127.0.0.1", self.pf.port, timeout=10) as s:
            code, _ = s.ehlo("t")
            self.assertEqual(code, 250)
            self.assertEqual(s.esmtp_features.get("size"), "5000000")
            self.assertIn("xclient", s.esmtp_features)
            s.mail("x@client.test")
            code, text = s.rcpt("nosuchuser@example.test")
            self.assertEqual(code, 550, text)

    def test_starttls_with_test_ca(self):
        c = h.SmtpClient(self.pf.port)
        self.assertEqual(c.greeting.code, 220)
        c.ehlo()
        self.assertIn("STARTTLS", c.caps)
        r = c.starttls(h.client_context(self.pki["ca"]), server_hostname="mx.test")
        self.assertEqual(r.code, 220)
        self.assertEqual(c.ehlo().code, 250)
        c.cmd("QUIT")
        c.close()

    def test_xclient_address_in_received(self):
        c = h.SmtpClient(self.pf.port)
        c.ehlo("gw.test")
        r = c.cmd("XCLIENT ADDR=127.0.0.5 NAME=[UNAVAILABLE]")
        self.assertEqual(r.code, 220, r)
        reps = c.transaction("x@client.test", ["bob@example.test"],
                             h.simple_message(subject="xclient", to="bob@example.test"))
        self.assertEqual(reps[-1].code, 250, reps)
        c.close()
        got = [m for m in self.pf.maildir_messages("bob", expect=1) if b"Subject: xclient" in m]
        self.assertTrue(got)
        self.assertIn(b"[127.0.0.5]", h.header_values(got[0], "Received")[0])

    def test_proxy_v2_port(self):
        import struct
        src, dst = socket.inet_aton("127.0.0.6"), socket.inet_aton("127.0.0.1")
        body = src + dst + struct.pack("!HH", 40000, 25)
        hdr = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body
        s = socket.create_connection(("127.0.0.1", self.pf.proxy_port), timeout=10)
        s.sendall(hdr)
        s.settimeout(10)
        banner = s.recv(1000)
        self.assertTrue(banner.startswith(b"220"), banner)
        s.close()
        h.wait_until(lambda: "127.0.0.6" in self.pf.log_text(), timeout=5, what="postfix logs proxied addr")


@unittest.skipUnless(h.have_tool("smtp-sink"), "smtp-sink not installed")
class SmtpSinkFixture(unittest.TestCase):
    def test_dump_roundtrip(self):
        with h.TempDir() as tmp, h.SmtpSink(tmp) as sink:
            msg = b"Subject: dump\r\n\r\n.leading dot\r\n\xe9\xff 8-bit\r\nlast\r\n"
            c = h.SmtpClient(sink.port)
            reps = c.transaction("a@client.test", ["alice@example.test", "bob@example.test"], msg)
            self.assertEqual(reps[-1].code, 250, reps)
            c.cmd("QUIT")
            c.close()
            got = sink.messages(expect=1)
            self.assertEqual(len(got), 1)
            self.assertEqual(got[0]["message"], msg)
            self.assertEqual(len(got[0]["rcpts"]), 2)
            self.assertEqual(got[0]["client_addr"], "127.0.0.1")


class HostileFixture(unittest.TestCase):
    def test_record_mode(self):
        with HostileUpstream("record", reject_rcpts=["nosuchuser@example.test"]) as up:
            c = h.SmtpClient(up.port)
            reps = c.transaction("a@client.test", ["alice@example.test", "nosuchuser@example.test"],
                                 b"Subject: r\r\n\r\n.dot\r\nx\r\n")
            self.assertEqual([r.code for r in reps], [250, 250, 250, 550, 354, 250])
            c.close()
            msgs = up.complete_messages()
            self.assertEqual(len(msgs), 1)
            self.assertEqual(msgs[0].raw, b"Subject: r\r\n\r\n..dot\r\nx\r\n")
            self.assertEqual(msgs[0].data, b"Subject: r\r\n\r\n.dot\r\nx\r\n")

    def test_lenient_dot_sees_smuggling(self):
        with HostileUpstream("record", lenient_dot=True) as up:
            c = h.SmtpClient(up.port)
            c.ehlo()
            c.cmd("MAIL FROM:<a@b.test>")
            c.cmd("RCPT TO:<alice@example.test>")
            c.cmd("DATA")
            c.send(b"Subject: s\r\n\r\nx\n.\nMAIL FROM:<e@vil>\r\n")
            self.assertEqual(c.read_reply().code, 250)
            c.close()
            self.assertEqual(len(up.complete_messages()), 1)

    def test_starttls_inject_mode(self):
        with HostileUpstream("starttls_inject") as up:
            c = h.SmtpClient(up.port)
            self.assertIn("STARTTLS", (c.ehlo(), c.caps)[1])
            c.send(b"STARTTLS\r\n")
            self.assertEqual(c.read_reply().code, 220)
            self.assertEqual(c.read_reply().lines[0], "injected")
            c.close()

    def test_huge_reply_mode(self):
        with HostileUpstream("huge_reply", lines=100000) as up:
            c = h.SmtpClient(up.port)
            c.MAX_REPLY_LINES = 200000
            r = c.ehlo()
            self.assertEqual(len(r.lines), 100000)
            c.close()


if __name__ == "__main__":
    unittest.main()
