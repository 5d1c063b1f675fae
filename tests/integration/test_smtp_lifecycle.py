"""The gateway's life: SIGTERM lets a session in flight finish its message while no new client is
accepted; SIGHUP reloads the certificates without a restart; an upstream session lost while the
client sends a long message is reopened and the envelope replayed.

Owns: a private Postfix (class); gateways, certificate copies and a recording upstream per test.
"""

import os
import shutil
import signal
import socket
import ssl
import time
import unittest

import harness as h


def der_of(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def peer_cert(port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw) as s:
            der = s.getpeercert(binary_form=True)
    return der


@unittest.skipUnless(h.have_tool("postfix") and h.have_tool("openssl"), "postfix/openssl not installed")
class Lifecycle(h.GatewayTest):
    postfix = True

    def test_sigterm_lets_the_session_in_flight_finish(self):
        gw = self.gateway(self.pf.port, top={"shutdown_timeout": "20s"})
        tag = h.unique("sigterm")
        c = self.client(gw)
        c.ehlo()
        self.assertCode(c.cmd("MAIL FROM:<s@client.test>"), 250)
        self.assertCode(c.cmd("RCPT TO:<alice@example.test>"), 250)
        self.assertCode(c.cmd("DATA"), 354)
        msg = h.simple_message(subject=tag)
        c.send(msg[: len(msg) // 2])
        gw.proc.send_signal(signal.SIGTERM)
        # New clients are no longer accepted (bounded wait for the listener to close).
        refused = False
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", gw.port), timeout=1).close()
                time.sleep(0.1)
            except OSError:
                refused = True
                break
        self.assertTrue(refused, "listener still accepting after SIGTERM")
        c.send(msg[len(msg) // 2:] + b".\r\n")
        self.assertCode(c.read_reply(), 250)
        self.assertCode(c.cmd("QUIT"), 221)
        c.close()
        self.assertEqual(gw.proc.wait(timeout=15), 0)
        self.assertEqual(len(self.delivered("alice", tag)), 1)

    def test_sighup_reloads_certificates(self):
        certdir = self.tmp.sub("reload-%s" % h.unique("c"))
        cert, key = os.path.join(certdir, "cert.pem"), os.path.join(certdir, "key.pem")
        shutil.copy(self.pki["cert"], cert)
        shutil.copy(self.pki["key"], key)
        pki = dict(self.pki, cert=cert, key=key)
        port = h.free_port()
        cfg = h.gateway_config(self.tmp, h.listener_config(port, self.pf.port, tls="implicit", pki=pki))
        gw = h.Gateway(self.tmp, cfg)
        self.addCleanup(self._stop_gateway, gw)
        gw.start()
        before = peer_cert(gw.port)
        self.assertEqual(before, der_of(self.pki["cert"]))
        shutil.copy(self.pki["wrong_cert"], cert)
        shutil.copy(self.pki["wrong_key"], key)
        gw.proc.send_signal(signal.SIGHUP)
        want = der_of(self.pki["wrong_cert"])
        after = None
        for _ in range(50):
            after = peer_cert(gw.port)
            if after == want:
                break
            time.sleep(0.1)
        self.assertEqual(after, want, "the new certificate is not served after SIGHUP")
        self.assertTrue(gw.alive())

    def test_upstream_lost_during_data_is_reopened_and_replayed(self):
        up = self.hostile("record")
        gw = self.gateway(up.port)
        tag = h.unique("replay")
        c = self.client(gw)
        c.ehlo()
        self.assertCode(c.cmd("MAIL FROM:<s@client.test>"), 250)
        self.assertCode(c.cmd("RCPT TO:<alice@example.test>"), 250)
        self.assertCode(c.cmd("RCPT TO:<bob@example.test>"), 250)
        self.assertCode(c.cmd("DATA"), 354)
        # The upstream drops every session it has while the client is still sending.
        up.drop_connections()
        time.sleep(0.5)
        c.send(h.simple_message(subject=tag) + b".\r\n")
        self.assertCode(c.read_reply(), 250)
        msgs = [m for m in up.complete_messages() if tag.encode() in m.data]
        self.assertEqual(len(msgs), 1)
        rcpts = " ".join(msgs[0].rcpts)
        self.assertIn("<alice@example.test>", rcpts)
        self.assertIn("<bob@example.test>", rcpts)
        self.assertEqual(len(msgs[0].rcpts), 2)
        self.assertIn("reconnect-replay", gw.log_text())

    def test_upstream_sessions_are_reused_and_stale_ones_replaced(self):
        up = self.hostile("record")
        gw = self.gateway(up.port)  # client_identity: none, so upstream sessions may be shared
        tags = [h.unique("pool") for _ in range(3)]
        for tag in tags[:2]:
            reps, ok = h.attempt(gw.port, "s@client.test", ["alice@example.test"],
                                 h.simple_message(subject=tag))
            self.assertTrue(ok, reps)
        # The probe at start is one upstream session; both clients shared a second one.
        self.assertEqual(len(up.sessions), 2)
        # The upstream closes its idle sessions: the next client still gets through, on a new one.
        up.drop_connections()
        time.sleep(0.3)
        reps, ok = h.attempt(gw.port, "s@client.test", ["alice@example.test"],
                             h.simple_message(subject=tags[2]))
        self.assertTrue(ok, reps)
        self.assertEqual(len(up.sessions), 3)
        for tag in tags:
            self.assertEqual(len([m for m in up.complete_messages() if tag.encode() in m.data]), 1)

    def test_upstream_sessions_with_client_identity_are_not_shared(self):
        up = self.hostile("record")  # it announces XCLIENT
        gw = self.gateway(up.port, upstream={"client_identity": "xclient"})
        for _ in range(2):
            reps, ok = h.attempt(gw.port, "s@client.test", ["alice@example.test"],
                                 h.simple_message(subject=h.unique("ident")))
            self.assertTrue(ok, reps)
        self.assertEqual(len(up.sessions), 3)

    def _uid(self, pid):
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
        return None

    def test_privileges_dropped_after_bind(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to start as root")
        spool = self.tmp.sub("spool-nobody-%s" % h.unique("s"))
        os.chmod(spool, 0o1777)
        up = self.hostile("record")
        gw = self.gateway(up.port, top={"user": "nobody", "spool": {"directory": spool}})
        self.assertTrue(h.wait_for(lambda: self._uid(gw.proc.pid) == h.NOBODY_UID, timeout=5))
        tag = h.unique("nobody")
        body = ("y" * 70 + "\r\n") * 5000  # ~360 KB: spooled to a file by the unprivileged user
        reps, ok = h.attempt(gw.port, "s@client.test", ["alice@example.test"],
                             h.simple_message(subject=tag, body=body))
        self.assertTrue(ok, reps)
        self.assertEqual(len([m for m in up.complete_messages() if tag.encode() in m.data]), 1)

    def test_spool_unusable_by_the_service_user_is_refused_at_start(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to start as root")
        spool = self.tmp.sub("spool-root-%s" % h.unique("s"))
        os.chmod(spool, 0o755)  # root's: nobody cannot create files there
        port = h.free_port()
        cfg = h.gateway_config(self.tmp, h.listener_config(port, self.pf.port),
                               user="nobody", spool={"directory": spool})
        path = h.Gateway(self.tmp, cfg).write_config()
        r = h.run_portcullis(["-c", path], timeout=20)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("spool directory %s" % spool, r.stderr)


if __name__ == "__main__":
    unittest.main()
