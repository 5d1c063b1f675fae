"""The quarantine end to end through SMTP: a message the filters hold (tests/plugins/testmark.c's
`X-Test-Verdict: quarantine`, or the listener's `scores.quarantine` threshold) is written to the
quarantine directory — ID.eml as it would have been delivered, ID.meta with its envelope, verdict,
score and symbols — and only then answered `250 2.0.0 Quarantined as ID`; the upstream never gets
DATA. A failure to store is `451 4.3.0` with nothing left under the final names. A gateway killed
(SIGKILL) right after the client heard 250 leaves both files complete on disk.

Owns: a quarantine directory per test, a recording upstream and gateways per test.
"""

import os
import re
import signal
import shutil
import subprocess
import unittest

import harness as h

PLUGIN = os.environ.get("PORTCULLIS_TEST_PLUGIN", "")
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

    def start(self, scores=None, quarantine=True, top=None):
        self.up = self.hostile("record")
        t = {"plugins": [PLUGIN]}
        if quarantine:
            t["quarantine"] = {"directory": self.qdir, "max_age": "30d"}
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

    def test_bad_max_age_is_refused(self):
        cfg = h.gateway_config(self.tmp, h.listener_config(h.free_port(), 25),
                               quarantine={"directory": self.qdir, "max_age": "soon"})
        out = h.run_portcullis(["-t", "-c", self.tmp.file("bad-q.yaml", h.to_yaml(cfg))])
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("quarantine.max_age", out.stdout + out.stderr)


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
