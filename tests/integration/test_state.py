"""The state store for filters (include/portcullis/store.h) against real backends, through its
conformance driver store_check (tests/unit/store_check.c: every operation and status on a real
libuv loop, one line per step, exit 0 only when every expectation held).

Redis (Debian's redis-server, private, on 127.0.0.1 high ports, nothing persisted): the script over
TCP, over a UNIX socket, in another database, with a password (AUTH from a password file); what
lands in Redis (the prefix, the expiries); the sliding window's formula by the server's clock on
buckets seeded here; a wrong or missing password, an unreachable port and a server that accepts and
never answers (every operation UNAVAILABLE, quickly, logged once); a server stopped mid-run and
started again on the same port (the store recovers on its own, logged once each way).
LMDB: the same script, on a directory of its own, and again by a second process on what the first
left.

Owns: a temp dir, one Redis (plus one with requirepass) for the module, a Redis of its own for the
restart test; each stopped by its PID.
"""

import os
import queue
import signal
import socket
import subprocess
import threading
import time
import unittest

import harness as h

PASSWORD = "pc-Test-pw.7f3a"


def store_check_bin():
    """$PORTCULLIS_STORE_CHECK, else tests/store_check in the build dir of $PORTCULLIS_BIN, else
    build/tests/store_check in the repository."""
    p = os.environ.get("PORTCULLIS_STORE_CHECK")
    if p:
        return p
    cands = []
    b = os.environ.get("PORTCULLIS_BIN")
    if b:
        d = os.path.dirname(os.path.abspath(b))
        for _ in range(3):
            cands.append(os.path.join(d, "tests", "store_check"))
            d = os.path.dirname(d)
    cands.append(os.path.join(h.REPO, "build", "tests", "store_check"))
    for c in cands:
        if os.access(c, os.X_OK):
            return c
    raise RuntimeError("store_check not found: set PORTCULLIS_STORE_CHECK or build the tests")


def run_check(*args, timeout=60):
    r = subprocess.run([store_check_bin()] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def failed_lines(out):
    return [l for l in out.splitlines() if l.startswith("FAIL")]


@unittest.skipUnless(h.have_tool("redis-server") and h.have_tool("redis-cli"),
                     "redis-server and redis-cli are not installed")
class RedisStore(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = h.TempDir(prefix="portcullis-state-")
        cls.redis = h.Redis(cls.tmp, unix_socket=True).start()
        try:
            cls.redis_auth = h.Redis(cls.tmp, password=PASSWORD, name="redis-auth").start()
        except Exception:
            cls.redis.stop()
            raise
        cls.pwfile = cls.tmp.file("password", PASSWORD + "\nsecond line is ignored\n", mode=0o600)

    @classmethod
    def tearDownClass(cls):
        cls.redis_auth.stop()
        cls.redis.stop()
        cls.tmp.cleanup()

    def check_ok(self, *args, timeout=60):
        rc, out, err = run_check(*args, timeout=timeout)
        self.assertEqual(failed_lines(out), [], out + err)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("PASSED", out)
        return out, err

    # -- the script

    def test_conformance_tcp(self):
        out, err = self.check_ok("redis", self.redis.address, "--prefix", "it:tcp:")
        self.assertIn("ok window-5", out)
        self.assertIn("event=state-store-connected", err)
        self.assertNotIn("state-store-down", err)
        # what landed in Redis: every key under the prefix; expiries as asked
        keys = self.redis.cli("KEYS", "it:tcp:*").split()
        self.assertIn("it:tcp:a1", keys)
        self.assertFalse([k for k in keys if not k.startswith("it:tcp:")])
        ttl = int(self.redis.cli("TTL", "it:tcp:c1"))
        self.assertTrue(90 <= ttl <= 100, ttl)          # incr: the expiry of the key it created
        self.assertEqual(self.redis.cli("TTL", "it:tcp:e4").strip(), "-1")  # an existing one keeps its own
        self.assertEqual(self.redis.cli("TTL", "it:tcp:a1").strip(), "-1")  # add without ttl
        buckets = [k for k in keys if k.startswith("it:tcp:w1:")]
        self.assertEqual(len(buckets), 1, keys)
        self.assertEqual(self.redis.cli("GET", buckets[0]).strip(), "5")
        bttl = int(self.redis.cli("TTL", buckets[0]))
        self.assertTrue(0 < bttl <= 7200, bttl)         # a bucket lives two windows
        self.assertEqual(self.redis.cli("GET", "it:tcp:burst").strip(), "200")

    def test_conformance_unix_socket(self):
        self.check_ok("redis", self.redis.socket_path, "--prefix", "it:unix:")
        self.assertIn("it:unix:a1", self.redis.cli("KEYS", "it:unix:*").split())

    def test_conformance_other_db(self):
        self.check_ok("redis", self.redis.address, "--db", "5", "--prefix", "it:db5:")
        self.assertEqual(self.redis.cli("KEYS", "it:db5:*").split(), [])
        self.assertIn("it:db5:a1", self.redis.cli("KEYS", "it:db5:*", db=5).split())

    def test_default_prefix(self):
        self.check_ok("redis", self.redis.address, "--db", "6", "--default-prefix")
        self.assertEqual(self.redis.cli("GET", "pc:a1", db=6).strip(), "first")

    def test_empty_prefix(self):
        self.check_ok("redis", self.redis.address, "--db", "7", "--prefix", "")
        self.assertEqual(self.redis.cli("GET", "a1", db=7).strip(), "first")

    def test_conformance_password(self):
        out, err = self.check_ok("redis", self.redis_auth.address, self.pwfile, "--db", "2",
                                 "--prefix", "it:auth:")
        self.assertNotIn("auth-failed", err)
        self.assertIn("it:auth:a1", self.redis_auth.cli("KEYS", "it:auth:*", db=2).split())

    def test_workers_in_threads(self):
        out, err = self.check_ok("redis", self.redis.address, "--workers", "4",
                                 "--prefix", "it:workers:")
        self.assertIn("ok workers-total", out)
        self.assertEqual(self.redis.cli("GET", "it:workers:workers").strip(), "2000")

    # -- the sliding window, by the server's clock

    def test_window_formula(self):
        w = 100000
        prefix = "it:wf:"

        def server_now():
            return int(self.redis.cli("TIME").split()[0])

        now = server_now()
        k = now // w
        self.redis.cli("SET", "%swf:%d" % (prefix, k - 1), "1000")
        self.redis.cli("SET", "%swf:%d" % (prefix, k), "7")
        rc, out, err = run_check("redis", self.redis.address, "--prefix", prefix,
                                 "--window", "wf", w, 2)
        self.assertEqual(rc, 0, out + err)
        n = int([l for l in out.splitlines() if l.startswith("n=")][0][2:])
        later = server_now()

        def expect(t):
            weight = 1.0 - (t - (t // w) * w) / w
            return 9 + int(1000 * weight)

        self.assertIn(n, {expect(t) for t in range(now, later + 1)}, (now, later))
        self.assertEqual(self.redis.cli("GET", "%swf:%d" % (prefix, k)).strip(), "9")
        ttl = int(self.redis.cli("TTL", "%swf:%d" % (prefix, k)))
        self.assertTrue(2 * w - 10 <= ttl <= 2 * w, ttl)

    # -- failures

    def test_wrong_password(self):
        bad = self.tmp.file("badpassword", "not-the-password\n", mode=0o600)
        out, err = self.check_ok("redis", self.redis_auth.address, bad, "--unavailable")
        self.assertEqual(err.count("event=state-store-auth-failed"), 1, err)
        self.assertNotIn(PASSWORD, err)
        self.assertEqual(err.count("event=state-store-down"), 1, err)

    def test_no_password_against_requirepass(self):
        out, err = self.check_ok("redis", self.redis_auth.address, "--unavailable")
        self.assertIn("NOAUTH", err)

    def test_password_file_missing(self):
        out, err = self.check_ok("redis", self.redis.address,
                                 os.path.join(self.tmp.path, "nosuchfile"), "--expect-open-error")
        self.assertIn("nosuchfile", out)

    def test_password_file_empty(self):
        empty = self.tmp.file("emptypassword", "\n", mode=0o600)
        self.check_ok("redis", self.redis.address, empty, "--expect-open-error")

    def test_address_must_be_an_ip_or_a_path(self):
        for a in ("localhost:%d" % self.redis.port, "127.0.0.1", "relative/path.sock", ""):
            out, err = self.check_ok("redis", a, "--expect-open-error")

    def test_unreachable(self):
        port = h.free_port()  # nothing listens there
        t0 = time.monotonic()
        out, err = self.check_ok("redis", "127.0.0.1:%d" % port, "--unavailable")
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(err.count("event=state-store-down"), 1, err)
        self.assertIn("refused", err)

    def test_never_answers(self):
        # a socket that listens and never accepts: the connect succeeds, nothing is ever answered
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", 0))
            s.listen(64)
            port = s.getsockname()[1]
            out, err = self.check_ok("redis", "127.0.0.1:%d" % port, "--unavailable",
                                     "--timeout-ms", "300", "--connect-timeout-ms", "400")
        finally:
            s.close()
        self.assertEqual(err.count("event=state-store-down"), 1, err)
        self.assertNotIn("event=state-store-up", err)

    def test_unix_socket_missing(self):
        out, err = self.check_ok("redis", os.path.join(self.tmp.path, "no.sock"), "--unavailable")
        self.assertEqual(err.count("event=state-store-down"), 1, err)

    def test_ipv6_literal(self):
        rc, out, err = run_check("redis", "[::1]:%d" % h.free_port(), "--unavailable")
        self.assertEqual(rc, 0, out + err)  # parsed as an address; nothing listens there


@unittest.skipUnless(h.have_tool("redis-server") and h.have_tool("redis-cli"),
                     "redis-server and redis-cli are not installed")
class RedisRestart(unittest.TestCase):
    """The server stopped while the store is in use, and started again on the same port."""

    def setUp(self):
        self.tmp = h.TempDir(prefix="portcullis-state-")
        self.addCleanup(self.tmp.cleanup)
        self.redis = h.Redis(self.tmp, password=PASSWORD).start()
        self.addCleanup(self.redis.stop)
        self.pwfile = self.tmp.file("password", PASSWORD + "\n", mode=0o600)

    def test_recovers_after_restart(self):
        self.recover(self.redis.stop, self.redis.start)

    def test_recovers_after_stall(self):
        # SIGSTOP: the server holds its connections and answers nothing (the kernel still accepts
        # new ones): commands time out, the connection is dropped and made again until it answers
        pid = self.redis.proc.pid
        self.addCleanup(lambda: self.redis.alive() and os.kill(pid, signal.SIGCONT))
        self.recover(lambda: os.kill(pid, signal.SIGSTOP), lambda: os.kill(pid, signal.SIGCONT))

    def test_idle_close_is_no_outage(self):
        # the server closes idle connections after a second: made again, silently
        self.redis.cli("CONFIG", "SET", "timeout", "1")
        rc, out, err = run_check("redis", self.redis.address, self.pwfile, "--idle", "3500")
        self.assertEqual(failed_lines(out), [], out + err)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("event=state-store-reconnect", err)
        self.assertNotIn("event=state-store-down", err)

    def recover(self, stop, restart):
        p = subprocess.Popen([store_check_bin(), "redis", self.redis.address, self.pwfile,
                              "--db", "1", "--recover"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(p.stderr.close)
        self.addCleanup(p.stdout.close)
        self.addCleanup(h.stop_pid, p)
        lines = queue.Queue()
        err_chunks = []

        def reader():
            for raw in p.stdout:
                lines.put(raw.decode(errors="replace").rstrip("\n"))
            lines.put(None)

        def err_reader():
            err_chunks.append(p.stderr.read().decode(errors="replace"))

        threads = [threading.Thread(target=reader, daemon=True),
                   threading.Thread(target=err_reader, daemon=True)]
        for t in threads:
            t.start()
        seen = []

        def wait_line(prefix, timeout):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    l = lines.get(timeout=max(0.05, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if l is None:
                    break
                seen.append(l)
                if l.startswith(prefix):
                    return l
            self.fail("no %r line within %ss: %s" % (prefix, timeout, "\n".join(seen)))

        wait_line("ok up", 15)
        stop()
        wait_line("ok down", 25)
        time.sleep(1.5)  # a few attempts fail while it is down
        restart()
        wait_line("ok recovered", 30)
        rc = p.wait(timeout=30)
        out_rest = []
        while True:
            try:
                l = lines.get(timeout=5)
            except queue.Empty:
                break
            if l is None:
                break
            out_rest.append(l)
        for t in threads:
            t.join(timeout=10)
        err = "".join(err_chunks)
        out = "\n".join(seen + out_rest)
        self.assertEqual(failed_lines(out), [], out + err)
        self.assertEqual(rc, 0, out + err)
        # logged once each way, not once per attempt
        self.assertEqual(err.count("event=state-store-down"), 1, err)
        self.assertEqual(err.count("event=state-store-up"), 1, err)
        keys = self.redis.cli("KEYS", "pctest:*:k", db=1).split()
        self.assertEqual(len(keys), 1, keys)
        self.assertEqual(self.redis.cli("GET", keys[0], db=1).strip(), "again")


class LmdbStore(unittest.TestCase):
    def setUp(self):
        self.tmp = h.TempDir(prefix="portcullis-lmdb-")
        self.addCleanup(self.tmp.cleanup)

    def test_conformance(self):
        rc, out, err = run_check("lmdb", self.tmp.sub("env"), timeout=120)
        self.assertEqual(failed_lines(out), [], out + err)
        self.assertEqual(rc, 0, out + err)

    def test_conformance_again_same_dir(self):
        d = self.tmp.sub("env")
        for _ in range(2):  # a second process opens what the first left
            rc, out, err = run_check("lmdb", d, timeout=120)
            self.assertEqual(rc, 0, out + err)


if __name__ == "__main__":
    unittest.main()
