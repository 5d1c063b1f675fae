"""The clamav filter with the real libclamav engine in process, on signature databases written here
at test time: the EICAR test string as a hash (.hdb) and as a hex signature (.ndb), and the line
for the ClamAV test file of Debian's clamav-testfiles package (its MD5 and size), which the engine
finds inside the package's archives (zip, 7z, ...) through its own parsers. Checked where a user
looks: SMTP's 554 with the signature name and nothing upstream, the POP3 notice instead of the
message, IMAP APPEND's NO with the mailbox unchanged; and a database swapped while the gateway runs
(a new signature is found within seconds; a corrupt database keeps the old engine serving).

Owns: a database directory per class, a recording upstream per test, one Dovecot per mailbox class.
"""

import base64
import email
import email.policy
import hashlib
import os
import re
import subprocess
import time
import unittest

import harness as h

EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")
TESTFILES = "/usr/share/clamav-testfiles"
MARKER = b"PORTCULLIS-SWAP-MARKER-7f3a9c"
USERS = h.Dovecot.users() if os.path.exists(h.Dovecot.USERS_FILE) else {}


def have_clamav():
    return os.path.isdir(TESTFILES) and os.path.exists(os.path.join(TESTFILES, "clam.exe"))


def write_db(directory, extra_ndb=""):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "test.hdb"), "w") as f:
        f.write("%s:%d:Eicar-Test-Hash\n" % (hashlib.md5(EICAR).hexdigest(), len(EICAR)))
        with open(os.path.join(TESTFILES, "clam.exe"), "rb") as exe:
            data = exe.read()
        f.write("%s:%d:ClamAV-Test-File\n" % (hashlib.md5(data).hexdigest(), len(data)))
    with open(os.path.join(directory, "test.ndb"), "w") as f:
        f.write("Eicar-Test-Hex:0:*:%s\n" % EICAR[:40].hex())
        f.write(extra_ndb)
    return directory


def attachment_message(tag, name, data):
    b64 = base64.encodebytes(data).replace(b"\n", b"\r\n").decode()
    return ("From: <s@client.test>\r\nTo: <alice@example.test>\r\nSubject: %s\r\n"
            "Message-ID: <%s@client.test>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
            "--b1\r\nContent-Type: text/plain\r\n\r\nSee the file.\r\n"
            "--b1\r\nContent-Type: application/octet-stream; name=\"%s\"\r\n"
            "Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"%s\"\r\n\r\n"
            "%s--b1--\r\n" % (tag, re.sub(r"\W", "", tag), name, name, b64)).encode()


@unittest.skipUnless(have_clamav(), "clamav-testfiles / libclamav not installed")
class ClamavSmtp(h.GatewayTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.db = write_db(os.path.join(str(cls.tmp), "clamdb"))

    def start(self, db=None, **opts):
        self.up = self.hostile("record")
        options = {"database": db or self.db}
        options.update(opts)
        return self.gateway(self.up.port, filters=[{"name": "clamav", "timeout": "30s",
                                                    "options": options}])

    def send(self, gw, message):
        return h.attempt(gw.port, "s@client.test", ["alice@example.test"], message)

    def upstream_has(self, tag):
        return [m for m in self.up.complete_messages() if tag.encode() in m.data]

    def assertRefused(self, reps, tag, name):
        self.assertCode(reps[-1], 554)
        self.assertEnhanced(reps[-1], "5.7.1")
        self.assertIn("Virus found: %s" % name, reps[-1].text)
        self.assertEqual(self.upstream_has(tag), [])

    def test_eicar_in_the_body_and_as_attachment(self):
        gw = self.start()
        tag = h.unique("eicar-body")
        reps, ok = self.send(gw, h.simple_message(subject=tag, body=EICAR + b"\r\n"))
        self.assertFalse(ok)
        self.assertRefused(reps, tag, "Eicar-Test-Hex")
        tag = h.unique("eicar-att")
        reps, ok = self.send(gw, attachment_message(tag, "eicar.com", EICAR))
        self.assertFalse(ok)
        self.assertRegex(reps[-1].text, r"Virus found: Eicar-Test-(Hash|Hex)")
        self.assertEqual(self.upstream_has(tag), [])
        self.assertIn("clamav=virus name=Eicar-Test-", gw.log_text())

    def test_test_file_inside_archives(self):
        # libclamav's scratch files (archives are unpacked) in a directory of the admin's choosing
        gw = self.start(temp_directory=self.tmp.sub("clamtmp"))
        for name in ("clam.zip", "clam.7z", "clam.exe.bz2", "clam.tar.gz"):
            path = os.path.join(TESTFILES, name)
            if not os.path.exists(path):
                continue
            with open(path, "rb") as f:
                data = f.read()
            tag = h.unique(name)
            with self.subTest(file=name):
                reps, ok = self.send(gw, attachment_message(tag, name, data))
                self.assertFalse(ok, name)
                self.assertRefused(reps, tag, "ClamAV-Test-File")

    def test_clean_message_is_delivered(self):
        gw = self.start()
        tag = h.unique("clean")
        reps, ok = self.send(gw, attachment_message(tag, "notes.txt", b"Just some notes.\n" * 100))
        self.assertTrue(ok, reps)
        self.assertEqual(len(self.upstream_has(tag)), 1)

    def test_database_swapped_while_running(self):
        db = write_db(os.path.join(str(self.tmp), "swapdb"))
        gw = self.start(db=db, reload_check="500ms")
        marker = MARKER
        tag = h.unique("before")
        reps, ok = self.send(gw, h.simple_message(subject=tag, body=marker + b"\r\n"))
        self.assertTrue(ok, reps)  # no signature for it yet
        time.sleep(1.1)  # the directory's time stamps have a resolution of one second
        write_db(db, extra_ndb="Portcullis-Swap-Test:0:*:%s\n" % marker.hex())
        self.assertTrue(h.wait_for(lambda: "clamav-reload result=ok" in gw.log_text(), timeout=15),
                        gw.log_text()[-2000:])
        tag = h.unique("after")
        reps, ok = self.send(gw, h.simple_message(subject=tag, body=marker + b"\r\n"))
        self.assertFalse(ok)
        self.assertRefused(reps, tag, "Portcullis-Swap-Test")
        # A corrupt database at the next change: the old engine keeps serving.
        time.sleep(1.1)
        with open(os.path.join(db, "broken.ndb"), "w") as f:
            f.write("this is not a signature\n")
        self.assertTrue(h.wait_for(lambda: "clamav-reload result=failed" in gw.log_text(), timeout=15),
                        gw.log_text()[-2000:])
        tag = h.unique("still")
        reps, ok = self.send(gw, h.simple_message(subject=tag, body=marker + b"\r\n"))
        self.assertRefused(reps, tag, "Portcullis-Swap-Test")
        self.assertTrue(gw.alive())

    def test_swap_while_scans_run(self):
        """Clients keep sending while the database is swapped under them: every message gets a
        definite answer (delivered, or refused as infected), none a temporary failure."""
        import threading
        db = write_db(os.path.join(str(self.tmp), "busydb"))
        gw = self.start(db=db, reload_check="300ms")
        answers, stop = [], threading.Event()

        def client(n):
            while not stop.is_set() and len(answers) < 400:
                tag = h.unique("busy%d" % n)
                body = (EICAR if n % 2 else b"clean text") + b"\r\n" + b"filler line\r\n" * 2000
                reps, ok = self.send(gw, h.simple_message(subject=tag, body=body))
                answers.append((n % 2, reps[-1].code if hasattr(reps[-1], "code") else None))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        try:
            for gen in range(3):  # three swaps while the clients send
                time.sleep(1.1)
                write_db(db, extra_ndb="Portcullis-Busy-%d:0:*:%s\n" % (gen, MARKER.hex()))
                self.assertTrue(h.wait_for(lambda g=gen: gw.log_text().count("clamav-reload result=ok") > g,
                                           timeout=15), gw.log_text()[-2000:])
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)
        self.assertGreater(len(answers), 8)
        for infected, code in answers:
            self.assertEqual(code, 554 if infected else 250, answers)
        self.assertTrue(gw.alive())

    def test_bad_database_is_refused_at_start(self):
        bad = os.path.join(str(self.tmp), "baddb")
        os.makedirs(bad, exist_ok=True)
        with open(os.path.join(bad, "x.ndb"), "w") as f:
            f.write("garbage line\n")
        cfg = h.gateway_config(self.tmp, h.listener_config(
            h.free_port(), 25, filters=[{"name": "clamav", "options": {"database": bad}}]))
        out = h.run_portcullis(["-t", "-c", self.tmp.file("bad-clam.yaml", h.to_yaml(cfg))])
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("database %s" % bad, out.stdout + out.stderr)
        cfg = h.gateway_config(self.tmp, h.listener_config(
            h.free_port(), 25, filters=[{"name": "clamav", "options": {
                "database": self.db, "temp_directory": "/nonexistent/clamav"}}]))
        out = h.run_portcullis(["-t", "-c", self.tmp.file("bad-clam-tmp.yaml", h.to_yaml(cfg))])
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("temp_directory: /nonexistent/clamav is not a writable directory", out.stdout + out.stderr)


class Clamd(h.ChildProcess):
    """A private clamd (Debian's clamav-daemon) on a UNIX socket in directory, with database db:
    `clamd -c CONF` in the foreground, stopped by its PID."""

    LOG_ATTRS = ("log_path",)
    STOP_TIMEOUT = 15.0

    def __init__(self, directory, db, stream_max="1M"):
        self.dir = os.path.join(str(directory), "clamd")
        os.makedirs(self.dir, exist_ok=True)
        self.socket = os.path.join(self.dir, "clamd.sock")
        self.log_path = os.path.join(self.dir, "clamd.log")
        self.conf = os.path.join(self.dir, "clamd.conf")
        with open(self.conf, "w") as f:
            f.write("LocalSocket %s\nForeground yes\nDatabaseDirectory %s\nLogFile %s\n"
                    "PidFile %s\nStreamMaxLength %s\nIdleTimeout 30\nMaxThreads 4\n"
                    "LogTime yes\n" % (self.socket, db, self.log_path,
                                        os.path.join(self.dir, "clamd.pid"), stream_max))
        self.proc = None

    def start(self, timeout=60.0):
        out = open(os.path.join(self.dir, "clamd.out"), "wb")
        self.proc = subprocess.Popen(["clamd", "-c", self.conf], stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        out.close()

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("clamd exited: %s" % self.log_text()[-2000:])
            return os.path.exists(self.socket)
        h.wait_until(ready, timeout=timeout, what="clamd socket")
        return self


@unittest.skipUnless(have_clamav() and h.have_tool("clamd"), "clamd (clamav-daemon) not installed")
class ClamdMode(h.GatewayTest):
    """The same verdicts through a real clamd: INSTREAM in an IDSESSION over its UNIX socket, the
    connections pooled per worker; StreamMaxLength respected; clamd stopped: the configured action."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.db = write_db(os.path.join(str(cls.tmp), "clamdb"))
        cls.clamd = Clamd(cls.tmp, cls.db).start()

    @classmethod
    def tearDownClass(cls):
        cls.clamd.stop()
        super().tearDownClass()

    def start(self, **opts):
        self.up = self.hostile("record")
        options = {"clamd": self.clamd.socket}
        options.update(opts)
        return self.gateway(self.up.port, filters=[{"name": "clamav", "timeout": "30s",
                                                    "options": options}])

    def send(self, gw, tag, body):
        return h.attempt(gw.port, "s@client.test", ["alice@example.test"],
                         h.simple_message(subject=tag, body=body))

    def test_virus_clean_and_a_pooled_session(self):
        gw = self.start()
        for i in range(3):  # later scans reuse the pooled IDSESSION
            tag = h.unique("clamd-virus")
            reps, ok = self.send(gw, tag, EICAR + b"\r\n")
            self.assertFalse(ok)
            self.assertCode(reps[-1], 554)
            self.assertIn("Virus found: Eicar-Test-Hex", reps[-1].text)
        tag = h.unique("clamd-clean")
        reps, ok = self.send(gw, tag, b"Nothing to see.\r\n")
        self.assertTrue(ok, reps)
        self.assertEqual(len([m for m in self.up.complete_messages() if tag.encode() in m.data]), 1)
        # four scans, at most one clamd session per worker: the connections were kept and reused
        opened = gw.log_text().count("clamav-clamd connect")
        self.assertGreaterEqual(opened, 1)
        self.assertLessEqual(opened, 2)

    def test_stream_max_length_and_clamd_down(self):
        gw = self.start(stream_max="64K", on_limits="tempfail")
        big = b"".join(b"%070d\r\n" % i for i in range(2000))  # about 140 KB
        reps, ok = self.send(gw, h.unique("big"), big)
        self.assertFalse(ok)
        self.assertCode(reps[-1], 451)
        self.assertIn("StreamMaxLength", gw.log_text())
        dead = os.path.join(str(self.tmp), "no-such-clamd.sock")
        gw2 = self.start(clamd=dead)
        reps, ok = self.send(gw2, h.unique("down"), b"Hello.\r\n")
        self.assertFalse(ok)
        self.assertCode(reps[-1], 451)  # on_scan_error: tempfail, the default
        self.assertIn("clamav=error", gw2.log_text())


def mbox_msg(subject, body):
    return ("From: Sender <sender@client.test>\r\nTo: alice@example.test\r\nSubject: %s\r\n"
            "Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: <%s@client.test>\r\n\r\n"
            % (subject, re.sub(r"\W", "", subject))).encode() + body


@unittest.skipUnless(have_clamav(), "clamav-testfiles / libclamav not installed")
class ClamavPop3(h.GatewayTest):
    """RETR of an infected message serves the notice instead; a clean one comes byte for byte."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.db = write_db(os.path.join(str(cls.tmp), "clamdb"))
        cls.up_port = h.free_port()
        cls.dc = h.Dovecot(cls.tmp, protocols="pop3",
                           extra_conf=h.dovecot_pop3_conf(cls.tmp, cls.up_port, 0, None))
        h.seed_maildir(cls.dc, "alice", [mbox_msg("clean one", b"Nothing here.\r\n"),
                                         mbox_msg("infected one", EICAR + b"\r\n"),
                                         mbox_msg("later one", MARKER + b"\r\n")])
        cls.dc.start()
        h.wait_port(cls.up_port, proc=cls.dc.proc)

    @classmethod
    def tearDownClass(cls):
        cls.dc.stop()
        super().tearDownClass()

    def logged_in(self, options):
        """A POP3 gateway with the clamav filter in front of the class's Dovecot, and alice logged in."""
        port = h.free_port()
        lst = h.pop3_listener_config(port, self.up_port, mailbox={"plaintext_auth": "allow"},
                                     filters=[{"name": "clamav", "timeout": "30s", "options": options}])
        gw = h.Gateway(self.tmp, h.gateway_config(self.tmp, lst))
        self.addCleanup(self._stop_gateway, gw)
        gw.start()
        c = h.Pop3Client(port)
        self.addCleanup(c.close)
        self.assertTrue(c.login("alice", USERS.get("alice", "")).startswith(b"+OK"))
        return gw, c

    def test_infected_is_replaced_by_the_notice(self):
        gw, c = self.logged_in({"database": self.db})
        st, body = c.cmd_multi("RETR 1")
        self.assertTrue(st.startswith(b"+OK"))
        self.assertIn(b"Nothing here.", h.unstuff(body))
        st, body = c.cmd_multi("RETR 2")
        self.assertTrue(st.startswith(b"+OK"), st)
        notice = h.unstuff(body)
        self.assertNotIn(b"EICAR-STANDARD", notice)
        m = email.message_from_bytes(notice, policy=email.policy.default)
        self.assertIn("infected one", m["Subject"])
        self.assertIn("Virus found: Eicar-Test-Hex", m.get_content())


    def test_read_again_after_a_signature_update_is_scanned_again(self):
        db = write_db(os.path.join(str(self.tmp), "pop-swapdb"))
        gw, c = self.logged_in({"database": db, "reload_check": "500ms"})
        for attempt in range(2):  # the second read comes from the verdict cache
            st, body = c.cmd_multi("RETR 3")
            self.assertIn(MARKER, h.unstuff(body))
        time.sleep(1.1)
        write_db(db, extra_ndb="Portcullis-Swap-Test:0:*:%s\n" % MARKER.hex())
        self.assertTrue(h.wait_for(lambda: "clamav-reload result=ok" in gw.log_text(), timeout=15))
        st, body = c.cmd_multi("RETR 3")
        notice = h.unstuff(body)
        self.assertNotIn(MARKER, notice)
        self.assertIn(b"Portcullis-Swap-Test", notice)


@unittest.skipUnless(have_clamav(), "clamav-testfiles / libclamav not installed")
class ClamavImapAppend(h.GatewayTest):
    """APPEND of an infected message is answered NO and the mailbox does not change."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.db = write_db(os.path.join(str(cls.tmp), "clamdb"))
        cls.dport = h.free_port()
        cls.dove = h.Dovecot(cls.tmp, protocols="imap", extra_conf=h.dovecot_imap_conf(cls.dport))
        h.seed_maildir(cls.dove, "alice", [mbox_msg("first", b"Hello.\r\n")])
        cls.dove.start()
        h.wait_port(cls.dport, timeout=15)

    @classmethod
    def tearDownClass(cls):
        cls.dove.stop()
        super().tearDownClass()

    def test_append_infected_is_no(self):
        port = h.free_port()
        lst = h.imap_listener_config(port, self.dport, mailbox={"plaintext_auth": "allow"},
                                     filters=[{"name": "clamav", "timeout": "30s",
                                               "options": {"database": self.db}}])
        gw = h.Gateway(self.tmp, h.gateway_config(self.tmp, lst))
        self.addCleanup(self._stop_gateway, gw)
        gw.start()
        c = h.ImapClient(port)
        self.addCleanup(c.close)
        r = c.cmd('LOGIN alice "%s"' % USERS.get("alice", ""))
        self.assertIn(b" OK ", r[-1], r)
        def exists():
            out = c.cmd("STATUS INBOX (MESSAGES)")
            return int(re.search(rb"MESSAGES (\d+)", b"".join(out)).group(1))
        before = exists()
        body = mbox_msg("append bad", EICAR + b"\r\n")
        t = c.tag()
        c.send("%s APPEND INBOX {%d}\r\n" % (t, len(body)))
        cont = c.read_response()
        self.assertTrue(cont.startswith(b"+ "), cont)
        c.send(body + b"\r\n")
        r = c.until_tagged(t)
        self.assertRegex(r[-1], rb"^t\d+ NO ")
        self.assertIn(b"Virus found: Eicar-Test-Hex", r[-1])
        self.assertEqual(exists(), before)
        good = mbox_msg("append good", b"Fine.\r\n")
        t = c.tag()
        c.send("%s APPEND INBOX {%d}\r\n" % (t, len(good)))
        self.assertTrue(c.read_response().startswith(b"+ "))
        c.send(good + b"\r\n")
        self.assertRegex(c.until_tagged(t)[-1], rb"^t\d+ OK ")
        self.assertEqual(exists(), before + 1)


if __name__ == "__main__":
    unittest.main()
