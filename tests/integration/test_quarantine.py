"""The quarantine end to end through SMTP and the admin socket: a message the filters hold (tests/plugins/testmark.c's
`X-Test-Verdict: quarantine`, or the listener's `scores.quarantine` threshold) is written to the
quarantine directory — ID.eml as it would have been delivered, ID.meta with its envelope, verdict,
score and symbols — and only then answered `250 2.0.0 Quarantined as ID`; the upstream never gets
DATA. A failure to store is `451 4.3.0` with nothing left under the final names. A gateway killed
(SIGKILL) right after the client heard 250 leaves both files complete on disk, and the restarted
gateway lists the message. `portcullisctl` (PORTCULLISCTL_BIN) lists (by recipient, by time),
shows and deletes over the admin socket, whose mode is the configured one, which logs every
command with the peer's uid and pid, and which bounds its lines, clients and time.

Owns: a quarantine directory per test, a recording upstream and gateways per test.
"""

import json
import os
import re
import socket
import stat
import time
import signal
import shutil
import subprocess
import unittest

import harness as h

PLUGIN = os.environ.get("PORTCULLIS_TEST_PLUGIN", "")
CTL = os.environ.get("PORTCULLISCTL_BIN", "")
if not CTL and os.environ.get("PORTCULLIS_BIN"):
    CTL = os.path.join(os.path.dirname(os.environ["PORTCULLIS_BIN"]), "portcullisctl")
ID = re.compile(r"Quarantined as ([0-9a-f]{32})$")


def read_meta(path):
    """The metadata file as (key, value) pairs, in order."""
    out = []
    with open(path, "rb") as f:
        for line in f.read().decode("utf-8").split("\n")[1:]:
            if line:
                k, _, v = line.partition(" ")
                out.append((k, v))
    return out


@unittest.skipUnless(PLUGIN and os.path.exists(PLUGIN), "PORTCULLIS_TEST_PLUGIN (built by CMake) not set")
class Quarantine(h.GatewayTest):

    def setUp(self):
        self.qdir = os.path.join(str(self.tmp), "q-%s" % h.unique("dir"))
        self.sock = os.path.join(str(self.tmp), "a-%s.sock" % h.unique("s"))

    def ctl(self, *args, json_out=False):
        """portcullisctl against this test's socket: (exit code, stdout, stderr)."""
        cmd = [CTL, "-s", self.sock] + (["--json"] if json_out else []) + ["quarantine"] + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout, p.stderr

    def start(self, scores=None, quarantine=True, top=None):
        self.up = self.hostile("record")
        t = {"plugins": [PLUGIN]}
        if quarantine:
            t["quarantine"] = {"directory": self.qdir, "max_age": "30d"}
            t["admin"] = {"socket": self.sock, "mode": "0600", "max_clients": 2, "timeout": "2s"}
        t.update(top or {})
        over = {"filters": [{"name": "testmark", "timeout": "5s"}]}
        if scores:
            over["scores"] = scores
        return self.gateway(self.up.port, top=t, **over)

    def send(self, gw, tag, verdict="quarantine", rcpts=("alice@example.test",)):
        extra = "X-Test-Verdict: %s\r\n" % verdict if verdict else ""
        return h.attempt(gw.port, "s@client.test", list(rcpts),
                         h.simple_message(subject=tag, extra_headers=extra))

    def files(self):
        return sorted(os.listdir(self.qdir)) if os.path.isdir(self.qdir) else []

    def qid(self, reply):
        self.assertCode(reply, 250)
        self.assertEnhanced(reply, "2.0.0")
        m = ID.search(reply.lines[-1])
        self.assertIsNotNone(m, repr(reply))
        return m.group(1)

    def test_held_message_is_stored_before_250_and_never_sent_upstream(self):
        gw = self.start()
        tag = h.unique("held")
        reps, ok = self.send(gw, tag, rcpts=("alice@example.test", "bob@example.test"))
        self.assertTrue(ok, reps)
        qid = self.qid(reps[-1])
        self.assertEqual(self.files(), [qid + ".eml", qid + ".meta"])
        with open(os.path.join(self.qdir, qid + ".eml"), "rb") as f:
            eml = f.read()
        # As it would have been delivered: with the gateway's Received header.
        self.assertIn(tag.encode(), eml)
        self.assertTrue(eml.startswith(b"Received: from client.test (127.0.0.1 [127.0.0.1])\r\n"), eml[:200])
        meta = read_meta(os.path.join(self.qdir, qid + ".meta"))
        d = dict(meta)
        self.assertEqual(d["id"], qid)
        self.assertEqual(d["from"], "s@client.test")
        self.assertEqual([v for k, v in meta if k == "rcpt"], ["alice@example.test", "bob@example.test"])
        self.assertEqual(d["client"], "127.0.0.1")
        self.assertEqual(d["listener"], "in")
        self.assertEqual(d["action"], "quarantine")
        self.assertEqual(int(d["size"]), len(eml))
        self.assertNotIn("released", d)
        # Nothing reached the upstream: not a byte of DATA.
        self.assertEqual([m for m in self.up.messages], [])
        self.assertIn("result=quarantined action=quarantine id=%s" % qid, gw.log_text())

    def test_score_threshold_quarantines(self):
        gw = self.start(scores={"quarantine": 1})
        reps, ok = self.send(gw, h.unique("scored"), verdict=None)
        self.assertTrue(ok, reps)
        qid = self.qid(reps[-1])
        self.assertIn(qid + ".meta", self.files())
        self.assertEqual(self.up.complete_messages(), [])
        d = dict(read_meta(os.path.join(self.qdir, qid + ".meta")))
        self.assertEqual(d["symbols"], "TESTMARK_SEEN")
        self.assertEqual(d["score"], "1.50")
        # The report headers are written as for a delivered message.
        with open(os.path.join(self.qdir, qid + ".eml"), "rb") as f:
            self.assertIn(b"X-Spam-Status: No, score=1.50 tests=TESTMARK_SEEN(1.50)\r\n", f.read())

    def test_session_goes_on_after_a_quarantined_message(self):
        gw = self.start()
        c = self.client(gw)
        c.ehlo()
        tag = h.unique("first")
        reps = c.transaction("s@client.test", ["alice@example.test"],
                             h.simple_message(subject=tag, extra_headers="X-Test-Verdict: quarantine\r\n"),
                             helo=False)
        self.qid(reps[-1])
        tag2 = h.unique("second")
        reps = c.transaction("s@client.test", ["alice@example.test"], h.simple_message(subject=tag2),
                             helo=False)
        self.assertCode(reps[-1], 250)
        got = [m for m in self.up.complete_messages()]
        self.assertEqual(len(got), 1)
        self.assertIn(tag2.encode(), got[0].data)
        self.assertNotIn(tag.encode(), got[0].data)

    def test_failure_to_store_is_451_and_leaves_nothing(self):
        gw = self.start()
        shutil.rmtree(self.qdir)
        reps, ok = self.send(gw, h.unique("nodir"))
        self.assertFalse(ok)
        self.assertCode(reps[-1], 451)
        self.assertEnhanced(reps[-1], "4.3.0")
        self.assertFalse(os.path.exists(self.qdir))
        self.assertIn("result=quarantine-failed", gw.log_text())
        # The directory back: the next message is stored.
        os.mkdir(self.qdir)
        reps, ok = self.send(gw, h.unique("again"))
        self.qid(reps[-1])

    def test_without_the_section_a_hold_is_still_451(self):
        gw = self.start(quarantine=False)
        reps, ok = self.send(gw, h.unique("nostore"))
        self.assertCode(reps[-1], 451)
        self.assertEnhanced(reps[-1], "4.7.1")
        self.assertFalse(os.path.exists(self.qdir))

    def test_killed_right_after_250_the_files_are_complete(self):
        gw = self.start()
        tag = h.unique("crash")
        c = self.client(gw)
        c.ehlo()
        reps = c.transaction("s@client.test", ["alice@example.test"],
                             h.simple_message(subject=tag, extra_headers="X-Test-Verdict: quarantine\r\n"),
                             helo=False)
        qid = self.qid(reps[-1])
        os.kill(gw.proc.pid, signal.SIGKILL)
        gw.proc.wait(10)
        self.assertEqual(self.files(), [qid + ".eml", qid + ".meta"])
        d = dict(read_meta(os.path.join(self.qdir, qid + ".meta")))
        with open(os.path.join(self.qdir, qid + ".eml"), "rb") as f:
            self.assertEqual(len(f.read()), int(d["size"]))
        # A new gateway on the same directory lists it (the stale socket is replaced).
        gw2 = h.Gateway(self.tmp, gw.config)
        self.addCleanup(self._stop_gateway, gw2)
        gw2.start()
        rc, out, err = self.ctl("list", json_out=True)
        self.assertEqual(rc, 0, err)
        self.assertEqual([m["id"] for m in json.loads(out)], [qid])

    def held(self, gw, tag, rcpts=("alice@example.test",)):
        reps, ok = self.send(gw, tag, rcpts=rcpts)
        self.assertTrue(ok, reps)
        return self.qid(reps[-1])

    @unittest.skipUnless(CTL and os.path.exists(CTL), "PORTCULLISCTL_BIN not set")
    def test_list_show_delete(self):
        gw = self.start()
        a = self.held(gw, h.unique("one"), rcpts=("alice@example.test",))
        b = self.held(gw, h.unique("two"), rcpts=("bob@example.test", "carol@example.test"))
        self.assertEqual(stat.S_IMODE(os.stat(self.sock).st_mode), 0o600)
        rc, out, err = self.ctl("list", json_out=True)
        self.assertEqual(rc, 0, err)
        got = {m["id"]: m for m in json.loads(out)}
        self.assertEqual(set(got), {a, b})
        self.assertEqual(got[b]["rcpts"], "bob@example.test,carol@example.test")
        self.assertEqual(got[b]["from"], "s@client.test")
        self.assertEqual(got[b]["action"], "quarantine")
        self.assertEqual(got[b]["released"], "")
        # by recipient (case-insensitive), by time
        rc, out, _ = self.ctl("list", "--rcpt", "CAROL@example.test", json_out=True)
        self.assertEqual([m["id"] for m in json.loads(out)], [b])
        rc, out, _ = self.ctl("list", "--since", str(int(time.time()) + 3600), json_out=True)
        self.assertEqual(json.loads(out), [])
        rc, out, _ = self.ctl("list", "--since", "1h", json_out=True)
        self.assertEqual(len(json.loads(out)), 2)
        # for people: one line each
        rc, out, _ = self.ctl("list")
        self.assertEqual(rc, 0)
        self.assertEqual(len(out.strip().split("\n")), 2)
        self.assertIn("<s@client.test> -> bob@example.test,carol@example.test", out)
        # show: the envelope and the header section
        rc, out, err = self.ctl("show", b, json_out=True)
        self.assertEqual(rc, 0, err)
        d = json.loads(out)
        self.assertEqual(d["id"], b)
        self.assertEqual(d["client"], "127.0.0.1")
        self.assertTrue(any(x.startswith("Received: from client.test") for x in d["headers"]), d)
        self.assertTrue(any(x.startswith("Subject: two-") for x in d["headers"]), d)
        rc, out, _ = self.ctl("show", b)
        self.assertIn("to:        bob@example.test,carol@example.test", out)
        # delete; then it is gone
        rc, out, err = self.ctl("delete", a)
        self.assertEqual((rc, out.strip()), (0, "deleted"), err)
        self.assertNotIn(a + ".eml", self.files())
        self.assertNotIn(a + ".meta", self.files())
        self.assertEqual(self.ctl("delete", a)[0], 4)
        self.assertEqual(self.ctl("show", a)[0], 4)
        self.assertEqual(self.ctl("show", "../../etc/passwd")[0], 2)  # not an ID: refused
        log = gw.log_text()
        self.assertRegex(log, r"event=admin uid=%d gid=\d+ pid=\d+ user=\S+ command=\"quarantine delete %s\" result=ok"
                         % (os.getuid(), a))

    @unittest.skipUnless(CTL and os.path.exists(CTL), "PORTCULLISCTL_BIN not set")
    def test_release_sends_once_with_the_original_envelope(self):
        gw = self.start()
        tag = h.unique("rel")
        qid = self.held(gw, tag, rcpts=("alice@example.test", "bob@example.test"))
        with open(os.path.join(self.qdir, qid + ".eml"), "rb") as f:
            stored = f.read()
        rc, out, err = self.ctl("release", qid)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "delivered: alice@example.test\ndelivered: bob@example.test\n")
        got = [m for m in self.up.complete_messages() if tag.encode() in m.data]
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0].mail_from, "FROM:<s@client.test>")
        self.assertEqual(got[0].rcpts, ["TO:<alice@example.test>", "TO:<bob@example.test>"])
        self.assertEqual(got[0].data, stored)  # the filters skipped: not a header added
        # The bytes are gone; the metadata stays as the record of who released it.
        self.assertEqual(self.files(), [qid + ".meta"])
        meta = read_meta(os.path.join(self.qdir, qid + ".meta"))
        rel = [v for k, v in meta if k == "released"]
        self.assertEqual(len(rel), 2)
        self.assertRegex(rel[0], r"^\d+ uid=%d user=\S+ rcpt=alice@example.test$" % os.getuid())
        # Once only.
        rc, out, err = self.ctl("release", qid)
        self.assertEqual(rc, 5, (out, err))
        self.assertIn("already released", err)
        time.sleep(0.3)
        self.assertEqual(len([m for m in self.up.complete_messages() if tag.encode() in m.data]), 1)
        self.assertIn("event=quarantine-release id=%s rcpt=bob@example.test result=delivered" % qid,
                      gw.log_text())
        rc, out, _ = self.ctl("list", json_out=True)
        self.assertEqual(json.loads(out)[0]["released"], "alice@example.test,bob@example.test")

    @unittest.skipUnless(CTL and os.path.exists(CTL), "PORTCULLISCTL_BIN not set")
    def test_release_keeps_8bitmime_and_smtputf8(self):
        self.up = self.hostile("record", caps=["SMTPUTF8"])
        gw = self.gateway(self.up.port, top={"plugins": [PLUGIN], "quarantine": {"directory": self.qdir},
                                             "admin": {"socket": self.sock}},
                          filters=[{"name": "testmark"}])

        def held_8bit(tag):
            body = ("Subject: %s\r\nX-Test-Verdict: quarantine\r\n\r\nGr\u00fc\u00dfe, \u00e9t\u00e9\r\n" % tag).encode()
            c = self.client(gw.port)
            self.assertCode(c.ehlo("client.test"), 250)
            self.assertCode(c.cmd("MAIL FROM:<s@client.test> BODY=8BITMIME SMTPUTF8"), 250)
            self.assertCode(c.cmd("RCPT TO:<alice@example.test>"), 250)
            self.assertCode(c.cmd("DATA"), 354)
            c.send(h.dot_stuff(body) + b".\r\n")
            qid = self.qid(c.read_reply(timeout=30))
            c.close()
            return qid

        tag = h.unique("eight")
        qid = held_8bit(tag)
        d = dict(read_meta(os.path.join(self.qdir, qid + ".meta")))
        self.assertEqual((d["body"], d["smtputf8"]), ("8bitmime", "yes"))
        with open(os.path.join(self.qdir, qid + ".eml"), "rb") as f:
            stored = f.read()
        self.assertIn("Gr\u00fc\u00dfe".encode(), stored)
        rc, out, err = self.ctl("release", qid)
        self.assertEqual((rc, out), (0, "delivered: alice@example.test\n"), err)
        got = [m for m in self.up.complete_messages() if tag.encode() in m.data]
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0].mail_from, "FROM:<s@client.test> BODY=8BITMIME SMTPUTF8")
        self.assertEqual(got[0].data, stored)  # the 8-bit bytes as they came
        # An upstream that no longer offers SMTPUTF8 gets no downgraded copy: the release fails,
        # the message stays held and can be released later.
        tag = h.unique("eight")
        qid = held_8bit(tag)
        self.up.extra_caps = []
        rc, out, err = self.ctl("release", qid)
        self.assertEqual(rc, 1, (out, err))
        self.assertIn("SMTPUTF8", err)
        self.assertEqual(self.files().count(qid + ".eml"), 1)
        self.assertEqual([m for m in self.up.complete_messages() if tag.encode() in m.data], [])
        self.up.extra_caps = ["SMTPUTF8"]
        rc, out, err = self.ctl("release", qid)
        self.assertEqual((rc, out), (0, "delivered: alice@example.test\n"), err)

    @unittest.skipUnless(CTL and os.path.exists(CTL), "PORTCULLISCTL_BIN not set")
    def test_release_to_one_recipient(self):
        gw = self.start()
        tag = h.unique("one")
        qid = self.held(gw, tag, rcpts=("alice@example.test", "bob@example.test"))
        rc, out, err = self.ctl("release", qid, "--rcpt", "bob@example.test", json_out=True)
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["rcpts"], [{"addr": "bob@example.test", "result": "delivered"}])
        got = [m for m in self.up.complete_messages() if tag.encode() in m.data]
        self.assertEqual([m.rcpts for m in got], [["TO:<bob@example.test>"]])
        self.assertEqual(self.files(), [qid + ".eml", qid + ".meta"])  # alice still held
        self.assertEqual(self.ctl("release", qid, "--rcpt", "bob@example.test")[0], 5)
        self.assertEqual(self.ctl("release", qid, "--rcpt", "zed@example.test")[0], 4)
        rc, out, err = self.ctl("release", qid)
        self.assertEqual((rc, out), (0, "delivered: alice@example.test\n"), err)
        got = [m for m in self.up.complete_messages() if tag.encode() in m.data]
        self.assertEqual([m.rcpts for m in got], [["TO:<bob@example.test>"], ["TO:<alice@example.test>"]])
        self.assertEqual(self.files(), [qid + ".meta"])

    @unittest.skipUnless(CTL and os.path.exists(CTL), "PORTCULLISCTL_BIN not set")
    def test_release_the_upstream_refuses_can_be_tried_again(self):
        self.up = self.hostile("record", reject_rcpts=("alice@example.test",))
        qdir = self.qdir
        gw = self.gateway(self.up.port, top={"plugins": [PLUGIN], "quarantine": {"directory": qdir},
                                             "admin": {"socket": self.sock}},
                          filters=[{"name": "testmark"}])
        # Held at DATA: the upstream refuses alice only at RCPT; bob is accepted and held.
        tag = h.unique("refused")
        qid = self.held(gw, tag, rcpts=("bob@example.test",))
        self.up.reject_rcpts.add("bob@example.test")
        rc, out, err = self.ctl("release", qid)
        self.assertEqual(rc, 1, (out, err))
        self.assertIn("upstream", err)
        self.assertEqual(self.files(), [qid + ".eml", qid + ".meta"])
        meta = read_meta(os.path.join(self.qdir, qid + ".meta"))
        self.assertEqual([k for k, v in meta if k in ("released", "unreleased")], ["released", "unreleased"])
        self.up.reject_rcpts.discard("bob@example.test")
        rc, out, err = self.ctl("release", qid)
        self.assertEqual((rc, out), (0, "delivered: bob@example.test\n"), err)
        self.assertEqual(len([m for m in self.up.complete_messages() if tag.encode() in m.data]), 1)

    @unittest.skipUnless(CTL and os.path.exists(CTL), "PORTCULLISCTL_BIN not set")
    def test_one_command_at_a_time_per_message(self):
        self.up = self.hostile("record")
        gw = self.gateway(self.up.port, top={"plugins": [PLUGIN], "admin": {"socket": self.sock},
                                             "quarantine": {"directory": self.qdir}},
                          filters=[{"name": "testmark"}], upstream={"reply_timeout": "3s"})
        tag = h.unique("busy")
        qid = self.held(gw, tag)
        self.up.mode = "slow"  # the release's upstream session hangs until reply_timeout
        first = subprocess.Popen([CTL, "-s", self.sock, "quarantine", "release", qid],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            self.assertTrue(h.wait_for(lambda: "command=\"quarantine release" not in gw.log_text()
                                       and self.up.wait_sessions(3, timeout=0.1), timeout=5))
            rc, out, err = self.ctl("release", qid)
            self.assertEqual(rc, 1, (out, err))
            self.assertIn("busy", err)
            self.assertEqual(self.ctl("delete", qid)[0], 1)
            out1, err1 = first.communicate(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        self.assertEqual(first.returncode, 1, err1)  # the upstream never answered: marked back
        self.up.mode = "record"
        rc, out, err = self.ctl("release", qid)
        self.assertEqual((rc, out), (0, "delivered: alice@example.test\n"), err)
        self.assertEqual(len([m for m in self.up.complete_messages() if tag.encode() in m.data]), 1)

    @unittest.skipUnless(CTL and os.path.exists(CTL), "PORTCULLISCTL_BIN not set")
    def test_list_is_by_time_and_skips_what_is_not_a_message(self):
        os.makedirs(self.qdir)
        now = int(time.time())
        for n, age in ((3, 10), (1, 30), (2, 20)):
            qid = "%032x" % n
            with open(os.path.join(self.qdir, qid + ".meta"), "w") as f:
                f.write("portcullis-quarantine 1\nid %s\ntime %d\nfrom a@b.test\nrcpt r%d@example.test\n"
                        "action quarantine\nscore 0.00\nsize 3\n" % (qid, now - age, n))
            with open(os.path.join(self.qdir, qid + ".eml"), "wb") as f:
                f.write(b"x\r\n")
        # Not listed: a corrupt .meta, a name that is not an ID, a .meta claiming another ID.
        with open(os.path.join(self.qdir, "%032x.meta" % 7), "w") as f:
            f.write("portcullis-quarantine 1\nid %032x\nrcpt x@y\ntime zz\n" % 7)
        with open(os.path.join(self.qdir, "notanid.meta"), "w") as f:
            f.write("portcullis-quarantine 1\nid %032x\nrcpt x@y\n" % 8)
        with open(os.path.join(self.qdir, "%032x.meta" % 9), "w") as f:
            f.write("portcullis-quarantine 1\nid %032x\nrcpt x@y\n" % 1)
        self.start()
        rc, out, err = self.ctl("list", json_out=True)
        self.assertEqual(rc, 0, err)
        self.assertEqual([m["id"] for m in json.loads(out)], ["%032x" % n for n in (1, 2, 3)])
        rc, out, err = self.ctl("list", "--since", "25s", json_out=True)
        self.assertEqual([m["id"] for m in json.loads(out)], ["%032x" % n for n in (2, 3)])

    def admin_raw(self, data, timeout=5, want=None):
        """Sends data, reads until `want` lines (default: one per command line sent) or EOF."""
        if want is None:
            want = max(1, data.count(b"\n"))
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self.sock)
        if data:
            s.sendall(data)
        out = b""
        try:
            while out.count(b"\n") < want:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        finally:
            s.close()
        return out

    def test_admin_socket_limits(self):
        gw = self.start()
        self.assertEqual(self.admin_raw(b"quarantine frobnicate\n"),
                         b"error bad-request unknown command\n")
        self.assertTrue(self.admin_raw(b"quarantine list\n").startswith(b"ok 0"))
        # two commands on one connection, answered in order
        self.assertEqual(self.admin_raw(b"quarantine show 00\nquarantine list\n"),
                         b"error bad-request an ID (32 hex digits) is needed\nok 0\n")
        # a line over 4 KiB: refused, and its rest never taken for a command
        out = self.admin_raw(b"quarantine list " + b"x" * 5000 + b" quarantine list\n")
        self.assertEqual(out, b"error bad-request line longer than 4096 bytes\n")
        out = self.admin_raw(b"quarantine list " + b"x" * 5000 + b"\nquarantine list\n")
        self.assertEqual(out, b"error bad-request line longer than 4096 bytes\nok 0\n")
        # a client that sends nothing is dropped after admin.timeout (2 s here)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(self.sock)
        t0 = time.monotonic()
        self.assertEqual(s.recv(100), b"")
        self.assertLess(time.monotonic() - t0, 8)
        s.close()
        # max_clients (2): the third is told so
        held = []
        for _ in range(2):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(self.sock)
            held.append(c)
        try:
            h.wait_for(lambda: gw.log_text().count("event=admin-connect") >= 3, timeout=5)
            self.assertEqual(self.admin_raw(b""), b"error busy too many admin clients\n")
        finally:
            for c in held:
                c.close()
        self.assertIn("result=timeout", gw.log_text())

    def test_expiry_after_max_age(self):
        os.makedirs(self.qdir)
        # Leftovers of interrupted writes: removed when older than an hour, kept while fresh.
        old = "%032x" % 1
        fresh = "%032x" % 2
        for name in (old + ".eml.tmp", old + ".eml", fresh + ".meta.tmp"):
            with open(os.path.join(self.qdir, name), "wb") as f:
                f.write(b"partial")
        for name in (old + ".eml.tmp", old + ".eml"):
            t = time.time() - 7200
            os.utime(os.path.join(self.qdir, name), (t, t))
        self.up = self.hostile("record")
        gw = self.gateway(self.up.port, top={"plugins": [PLUGIN], "admin": {"socket": self.sock},
                                             "quarantine": {"directory": self.qdir, "max_age": "2s"}},
                          filters=[{"name": "testmark"}])
        qid = self.held(gw, h.unique("expire"))
        self.assertIn(qid + ".meta", self.files())
        self.assertTrue(h.wait_for(lambda: qid + ".meta" not in self.files(), timeout=10), self.files())
        self.assertEqual(self.files(), [fresh + ".meta.tmp"])
        self.assertTrue(h.wait_for(lambda: "event=quarantine-expired messages=1 max_age=2s" in gw.log_text(),
                                   timeout=5))

    def test_bad_max_age_and_mode_are_refused(self):
        for over, key in (({"quarantine": {"directory": self.qdir, "max_age": "soon"}}, "quarantine.max_age"),
                          ({"quarantine": {"directory": self.qdir, "max_age": "3651d"}}, "quarantine.max_age"),
                          ({"admin": {"mode": "0999"}}, "admin.mode"),
                          ({"admin": {"mode": "rw-rw----"}}, "admin.mode")):
            cfg = h.gateway_config(self.tmp, h.listener_config(h.free_port(), 25), **over)
            out = h.run_portcullis(["-t", "-c", self.tmp.file("bad-q.yaml", h.to_yaml(cfg))])
            self.assertNotEqual(out.returncode, 0, over)
            self.assertIn(key, out.stdout + out.stderr)

    @unittest.skipUnless(os.getuid() == 0 and h.have_tool("getent"), "needs root to give the socket a group")
    def test_admin_socket_group_and_one_gateway_per_socket(self):
        import grp
        gid = grp.getgrnam("daemon").gr_gid
        gw = self.start(top={"admin": {"socket": self.sock, "mode": "0660", "group": "daemon"}})
        st = os.stat(self.sock)
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_gid), (0o660, gid))
        # A second gateway on the same socket while the first serves it: refused, the first untouched.
        cfg = dict(gw.config)
        cfg["listeners"] = [h.listener_config(h.free_port(), self.up.port)]
        out = h.run_portcullis(["-c", self.tmp.file("second.yaml", h.to_yaml(cfg))], timeout=15)
        self.assertEqual(out.returncode, 1)
        self.assertIn("another gateway is serving it", out.stderr)
        self.assertEqual(self.ctl("list")[0], 0)


@unittest.skipUnless(PLUGIN and os.path.exists(PLUGIN) and h.have_tool("mdb_dump"),
                     "PORTCULLIS_TEST_PLUGIN or mdb_dump (lmdb-utils) missing")
class QuarantineIndex(h.GatewayTest):
    """With a state store, one index record per recipient, naming the gateway that owns the files;
    the files are written all the same (the index is never the only copy)."""

    def test_one_record_per_recipient(self):
        qdir = os.path.join(str(self.tmp), "q-%s" % h.unique("idx"))
        sdir = self.tmp.sub(h.unique("state"))
        up = self.hostile("record")
        gw = self.gateway(up.port, top={"plugins": [PLUGIN], "quarantine": {"directory": qdir},
                                        "admin": {"socket": os.path.join(sdir, "admin.sock")},
                                        "state": {"backend": "lmdb", "path": sdir}},
                          filters=[{"name": "testmark"}])
        reps, ok = h.attempt(gw.port, "s@client.test", ["alice@example.test", "bob@example.test"],
                             h.simple_message(subject=h.unique("idx"),
                                              extra_headers="X-Test-Verdict: quarantine\r\n"))
        self.assertTrue(ok, reps)
        qid = ID.search(reps[-1].lines[-1]).group(1)
        self.assertEqual(sorted(os.listdir(qdir)), [qid + ".eml", qid + ".meta"])
        gw.stop()  # the store's last writes committed

        def dump():
            out = subprocess.run(["mdb_dump", "-p", sdir], capture_output=True, timeout=10).stdout
            return out.decode("latin-1")
        text = dump()
        self.assertIn("q:%s:0" % qid, text)
        self.assertIn("q:%s:1" % qid, text)
        self.assertRegex(text, r"owner=\S+ id=%s time=\d+ rcpt=bob@example.test" % qid)
        self.assertRegex(text, r"owner=\S+ id=%s time=\d+ rcpt=alice@example.test" % qid)


if __name__ == "__main__":
    unittest.main()
