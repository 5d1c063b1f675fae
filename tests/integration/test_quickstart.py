"""The README's first command, end to end: scripts/quickstart.py (what scripts/quickstart runs after
installing and building) starts Postfix, Dovecot and the gateway on loopback; a message sent through
the gateway's SMTPS listener is delivered by Postfix and read back through the gateway's IMAPS and
POP3S listeners, with the certificate the script made; the filters are on (the EICAR file is
refused with 554, a client on the example DNS list is tagged); SIGTERM stops everything.

Owns: one quickstart process group (started here, stopped by its PID), on free ports.
"""

import imaplib
import os
import poplib
import re
import signal
import smtplib
import ssl
import subprocess
import sys
import time
import unittest

import harness as h

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@unittest.skipUnless(h.have_tool("postfix") and h.have_tool("dovecot"), "postfix/dovecot not installed")
class Quickstart(unittest.TestCase):

    def setUp(self):
        self.ports = {k: h.free_port() for k in ("SMTPS", "SMTP", "IMAPS", "POP3S")}
        env = dict(os.environ, **{"PORTCULLIS_%s_PORT" % k: str(v) for k, v in self.ports.items()})
        self.out_path = os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                     "portcullis-quickstart-test-%d.out" % os.getpid())
        self.out = open(self.out_path, "w+")
        self.proc = subprocess.Popen([sys.executable, os.path.join(REPO, "scripts", "quickstart.py"),
                                      h.portcullis_bin()], stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, cwd=REPO)
        self.addCleanup(self.stop)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.out.close()
        os.unlink(self.out_path)

    def output(self):
        self.out.flush()
        with open(self.out_path, errors="replace") as f:
            return f.read()

    def read_back(self, ctx, users, tag, item):
        """The message whose Subject holds tag, read through the gateway's IMAPS (Postfix delivers
        asynchronously: a bounded wait), or None."""
        for _ in range(100):
            imap = imaplib.IMAP4_SSL("localhost", self.ports["IMAPS"], ssl_context=ctx, timeout=30)
            imap.login("alice", users["alice"])
            imap.select("INBOX")
            typ, data = imap.search(None, "SUBJECT", tag)
            found = None
            if data and data[0]:
                typ, msg = imap.fetch(data[0].split()[-1], item)
                found = msg[0][1]
            imap.logout()
            if found:
                return found
            time.sleep(0.2)
        return None

    def test_send_then_read_through_the_gateway(self):
        for k in ("SMTPS", "IMAPS", "POP3S"):
            h.wait_port(self.ports[k], timeout=60, proc=self.proc)
        text = self.output()
        ca = re.search(r"-CAfile (\S+)", text)
        self.assertIsNotNone(ca, text)
        users = h.Dovecot.users()
        ctx = ssl.create_default_context(cafile=ca.group(1))
        tag = h.unique("quickstart")
        with smtplib.SMTP_SSL("localhost", self.ports["SMTPS"], context=ctx, timeout=30) as s:
            s.sendmail("sender@client.test", ["alice@example.test"],
                       "From: sender@client.test\r\nTo: alice@example.test\r\nSubject: %s\r\n\r\n"
                       "Hello through the gateway.\r\n" % tag)
        found = self.read_back(ctx, users, tag, "(BODY.PEEK[])")
        self.assertIsNotNone(found, "not delivered; quickstart output:\n" + self.output()[-3000:])
        self.assertIn(b"Hello through the gateway.", found)
        self.assertIn(b"gateway.example.test", found)  # the gateway's Received header
        pop = poplib.POP3_SSL("localhost", self.ports["POP3S"], context=ctx, timeout=30)
        pop.user("alice")
        pop.pass_(users["alice"])
        count, _ = pop.stat()
        bodies = [b"\r\n".join(pop.retr(i)[1]) for i in range(1, count + 1)]
        pop.quit()
        self.assertTrue(any(tag.encode() in b for b in bodies), bodies[-1:])
        # The filters are on: the EICAR file the script wrote is refused with the signature's name.
        eicar = re.search(r"--attach (\S+)", text)
        self.assertIsNotNone(eicar, text)
        with open(eicar.group(1), "rb") as f:
            virus = f.read()
        with smtplib.SMTP_SSL("localhost", self.ports["SMTPS"], context=ctx, timeout=30) as s:
            with self.assertRaises(smtplib.SMTPDataError) as cm:
                s.sendmail("sender@client.test", ["alice@example.test"],
                           b"From: sender@client.test\r\nSubject: virus\r\n\r\n" + virus + b"\r\n")
        self.assertEqual(cm.exception.smtp_code, 554)
        self.assertIn(b"Eicar-Test-Signature", cm.exception.smtp_error)
        # and a client on the example DNS list (127.0.0.2) is tagged
        tag2 = h.unique("listed")
        with smtplib.SMTP_SSL("localhost", self.ports["SMTPS"], context=ctx, timeout=30,
                              source_address=("127.0.0.2", 0)) as s:
            s.sendmail("sender@client.test", ["alice@example.test"],
                       "From: sender@client.test\r\nSubject: %s\r\n\r\nHi.\r\n" % tag2)
        flagged = self.read_back(ctx, users, tag2, "(BODY.PEEK[HEADER])")
        self.assertIsNotNone(flagged, self.output()[-3000:])
        self.assertIn(b"X-Spam-Flag: YES", flagged)
        self.assertIn(b"DNSBL_BL_EXAMPLE_TEST(6.00)", flagged)
        # Signed on the way out (submission) and verified on the way in (smtps, python3-dkim's
        # signature with the quickstart's key).
        signed = re.search(r"--data (\S+signed\.eml)", text)
        self.assertIsNotNone(signed, text)
        with open(signed.group(1), "rb") as f:
            sample = f.read()
        with smtplib.SMTP_SSL("localhost", self.ports["SMTPS"], context=ctx, timeout=30) as s:
            s.sendmail("alice@example.test", ["alice@example.test"], sample)
        got = self.read_back(ctx, users, "\"signed sample\"", "(BODY.PEEK[HEADER])")
        self.assertIsNotNone(got, self.output()[-3000:])
        self.assertRegex(got, rb"Authentication-Results: gateway.example.test;\s+spf=pass[^\r]*;"
                              rb"\r\n\s+dkim=pass header.d=example.test")
        self.assertIn(b"dmarc=pass", got)
        self.assertIn(b"arc=none", got)  # no chain yet; the gateway seals the first set
        self.assertRegex(got, rb"ARC-Seal: i=1; cv=none; a=rsa-sha256; d=example.test; s=gw;")
        tag3 = h.unique("outgoing")
        with smtplib.SMTP("localhost", self.ports["SMTP"], timeout=30) as s:
            s.starttls(context=ctx)
            s.sendmail("alice@example.test", ["alice@example.test"],
                       "From: Alice <alice@example.test>\r\nTo: alice@example.test\r\nSubject: %s\r\n\r\n"
                       "Going out.\r\n" % tag3)
        got = self.read_back(ctx, users, tag3, "(BODY.PEEK[HEADER])")
        self.assertIsNotNone(got, self.output()[-3000:])
        self.assertRegex(h.unfold(got), rb"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.test;\s*s=gw;")
        # SIGTERM: the gateway, Dovecot and Postfix stop, the script exits
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=60), 0, self.output()[-2000:])
        self.assertFalse(h.port_open(self.ports["SMTPS"]))


if __name__ == "__main__":
    unittest.main()
