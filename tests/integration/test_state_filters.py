"""Greylisting and rate limits on the state store, end to end through SMTP, the client given by PROXY
(192.0.2.10 and others, none of them trusted), SPF records served by a real Unbound.

Greylisting: a new triplet is refused `451 4.7.1` with the time to wait, an early retry too, a retry
after the delay passes and allow-lists the client's network, whose other triplets then pass at once;
after an SPF pass the SPF domain is the key, so a retry from another network of the same sender
passes; exempt networks and clients on a DNSWL zone are not greylisted; with the state
kept in LMDB, a restarted gateway still knows the triplets and the allow-listed network. Rate
limits: connections per client (421 4.7.0), messages per client and recipients per sender (451
4.7.1), counted across a restart. Without a state store, `on_unavailable` decides.

The backend is LMDB in a directory of the module's; the same tests run on Redis (test class
RedisStateFilters) when the harness can start one.

Owns: one Unbound and one state directory per class, a recording upstream and gateways per test.
"""

import os
import time
import unittest

import harness as h

ZONE = [
    'spf.test. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.0/24 -all"',
    'dnswl.test. 300 IN A 127.0.0.2',
    '10.2.0.192.list.test. 300 IN A 127.0.0.2',
]


@unittest.skipUnless(h.have_tool("unbound"), "unbound not installed")
class StateFilters(h.GatewayTest):
    """LMDB."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dns = h.Unbound(cls.tmp, records=ZONE).start()
        cls.start_backend()

    @classmethod
    def start_backend(cls):
        cls.state_dir = cls.tmp.sub("state")

    @classmethod
    def tearDownClass(cls):
        cls.dns.stop()
        super().tearDownClass()

    def state(self):
        return {"backend": "lmdb", "path": self.state_dir}

    def start(self, filters, state=True):
        self.up = self.hostile("record")
        top = {"resolver": {"servers": [self.dns.server]}}
        if state:
            top["state"] = self.state()
        return self.gateway(self.up.port, top=top, proxy_protocol={"trusted": ["127.0.0.1/32"]},
                            trusted_networks=["10.255.255.0/24"], filters=filters)

    def client(self, gw, ip, helo="mx.sender.test"):
        c = h.SmtpClient(gw.port, greeting=False)
        c.send(h.proxy_v1(ip, dport=gw.port))
        first = c.read_reply()
        if first is not None and first.code == 220:
            self.assertCode(c.ehlo(helo), 250)
        return c, first

    def rcpt(self, gw, ip, sender, rcpt):
        """One transaction up to RCPT (then RSET): the RCPT reply."""
        c, first = self.client(gw, ip)
        try:
            self.assertCode(first, 220)
            self.assertCode(c.cmd("MAIL FROM:<%s>" % sender), 250)
            return c.cmd("RCPT TO:<%s>" % rcpt)
        finally:
            c.close()

    def grey(self, **opts):
        o = {"delay": "2s", "retry_window": "1m"}
        o.update(opts)
        return [{"name": "greylist", "timeout": "10s", "options": o}]

    def test_greylisting_delays_then_allow_lists(self):
        gw = self.start(self.grey())
        sender, rcpt = h.unique("s") + "@sender.test", "alice@example.test"
        r = self.rcpt(gw, "203.0.113.5", sender, rcpt)
        self.assertCode(r, 451)
        self.assertIn("4.7.1", r.text)
        self.assertRegex(r.text, r"try again in [12] seconds")
        r = self.rcpt(gw, "203.0.113.5", sender, rcpt)  # too early
        self.assertCode(r, 451)
        time.sleep(2.2)
        c, _ = self.client(gw, "203.0.113.5")
        tag = h.unique("grey")
        reps = c.transaction(sender, [rcpt], h.simple_message(subject=tag), helo=False)
        c.close()
        self.assertCode(reps[-1], 250)
        self.assertEqual(len([m for m in self.up.complete_messages() if tag.encode() in m.data]), 1)
        # the client's /24 is allow-listed now: another triplet from 203.0.113.77 passes at once
        self.assertCode(self.rcpt(gw, "203.0.113.77", "other@else.test", "bob@example.test"), 250)
        # another network is not
        self.assertCode(self.rcpt(gw, "198.18.0.1", sender, rcpt), 451)
        seen = time.monotonic()
        # the state is on disk: a new gateway on the same directory knows all of it — the
        # allow-listed network, and when the triplet from 198.18.0.1 was first seen (a gateway that
        # forgot it would see a new triplet and answer 451 again)
        gw.stop()
        gw2 = self.start(self.grey())
        self.assertCode(self.rcpt(gw2, "203.0.113.9", "third@else.test", "bob@example.test"), 250)
        time.sleep(max(0.0, 2.2 - (time.monotonic() - seen)))
        self.assertCode(self.rcpt(gw2, "198.18.0.1", sender, rcpt), 250)

    def send(self, gw, ip, sender, rcpt, message):
        c, first = self.client(gw, ip)
        try:
            self.assertCode(first, 220)
            return c.transaction(sender, [rcpt], message, helo=False)[-1]
        finally:
            c.close()

    def test_greylisting_after_data_keys_on_the_message(self):
        gw = self.start(self.grey(stage="data"))
        sender, rcpt = h.unique("s") + "@sender.test", "alice@example.test"
        tag = h.unique("gd")
        msg = h.simple_message(subject=tag)
        r = self.send(gw, "203.0.114.5", sender, rcpt, msg)  # RCPT passes, the end of DATA does not
        self.assertCode(r, 451)
        self.assertIn("4.7.1", r.text)
        self.assertRegex(r.text, r"try again in [12] seconds")
        self.assertIn("greylist=delayed stage=data", gw.log_text())
        # another message from the same client and sender is a new triplet
        self.assertCode(self.send(gw, "203.0.114.5", sender, rcpt, h.simple_message(subject=tag + "-b")), 451)
        time.sleep(2.2)
        r = self.send(gw, "203.0.114.5", sender, rcpt, msg)  # the same message again: passes
        self.assertCode(r, 250)
        got = [m for m in self.up.complete_messages() if tag.encode() in m.data]
        self.assertEqual(len(got), 1, "only the retried message arrived")
        self.assertIn(("Subject: %s\r\n" % tag).encode(), got[0].data)

    def test_greylisting_after_data_spares_low_scores(self):
        rules = {"name": "rules", "timeout": "10s",
                 "options": {"rules": [{"symbol": "T_CASINO", "score": 6, "pattern": "(?i)casino",
                                        "header": "Subject"}]}}
        gw = self.start([rules] + self.grey(stage="data", min_score=5))
        sender, rcpt = h.unique("s") + "@sender.test", "alice@example.test"
        low = h.unique("plain")
        self.assertCode(self.send(gw, "203.0.115.5", sender, rcpt, h.simple_message(subject=low)), 250)
        self.assertIn("greylist=exempt reason=score", gw.log_text())
        high = h.unique("casino")
        self.assertCode(self.send(gw, "203.0.115.5", sender, rcpt, h.simple_message(subject=high)), 451)
        self.assertEqual([m for m in self.up.complete_messages() if high.encode() in m.data], [])
        self.assertEqual(len([m for m in self.up.complete_messages() if low.encode() in m.data]), 1)

    def test_min_score_needs_stage_data(self):
        cfg = h.to_yaml(h.gateway_config(self.tmp, h.listener_config(h.free_port(), 2525, filters=self.grey(min_score=5)))) + "\n"
        path = os.path.join(str(self.tmp), "grey-min.yaml")
        with open(path, "w") as f:
            f.write(cfg)
        r = h.run_portcullis(["-t", "-c", path])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("min_score: only with stage: data", r.stderr)

    def test_spf_domain_is_the_key_after_a_pass(self):
        gw = self.start([{"name": "spf", "timeout": "10s"}] + self.grey())
        sender = h.unique("s") + "@spf.test"
        self.assertCode(self.rcpt(gw, "192.0.2.10", sender, "alice@example.test"), 451)
        time.sleep(2.2)
        # the retry comes from another network of the same sender, as large senders do
        self.assertCode(self.rcpt(gw, "198.51.100.7", sender, "alice@example.test"), 250)

    def test_exemptions(self):
        gw = self.start(self.grey(exempt_networks=["203.0.113.128/25"], dnswl=["list.test"]))
        self.assertCode(self.rcpt(gw, "203.0.113.200", h.unique("s") + "@a.test", "alice@example.test"), 250)
        # 192.0.2.10 is on the DNS allow-list
        self.assertCode(self.rcpt(gw, "192.0.2.10", h.unique("s") + "@a.test", "alice@example.test"), 250)
        self.assertCode(self.rcpt(gw, "192.0.2.11", h.unique("s") + "@a.test", "alice@example.test"), 451)

    def test_no_store_follows_on_unavailable(self):
        gw = self.start(self.grey(), state=False)
        self.assertCode(self.rcpt(gw, "203.0.113.5", "a@b.test", "alice@example.test"), 250)
        self.assertIn("no state store", gw.log_text())
        gw2 = self.start(self.grey(on_unavailable="tempfail"), state=False)
        r = self.rcpt(gw2, "203.0.113.5", "a@b.test", "alice@example.test")
        self.assertCode(r, 451)
        self.assertIn("4.3.0", r.text)

    def limits(self, *limits):
        return [{"name": "ratelimit", "timeout": "10s", "options": {"limits": list(limits)}}]

    def test_rate_limits(self):
        gw = self.start(self.limits({"count": "messages", "per": "client", "max": 2, "window": "1m"},
                                    {"count": "recipients", "per": "sender", "max": 3, "window": "1m"}))
        ip = "203.0.113.%d" % (os.getpid() % 200 + 20)
        for _ in range(2):
            c, _ = self.client(gw, ip)
            self.assertCode(c.cmd("MAIL FROM:<x@y.test>"), 250)
            c.close()
        c, _ = self.client(gw, ip)
        r = c.cmd("MAIL FROM:<x@y.test>")
        c.close()
        self.assertCode(r, 451)
        self.assertIn("4.7.1", r.text)
        self.assertIn("Too many messages per client", r.text)
        # recipients per sender, from several clients
        sender = h.unique("bulk") + "@y.test"
        codes = []
        for k in range(5):
            c, _ = self.client(gw, "198.18.1.%d" % (k + 1))
            self.assertCode(c.cmd("MAIL FROM:<%s>" % sender), 250)
            codes.append(c.cmd("RCPT TO:<alice@example.test>").code)
            c.close()
        self.assertEqual(codes, [250, 250, 250, 451, 451])
        # counted across a restart
        gw.stop()
        gw2 = self.start(self.limits({"count": "messages", "per": "client", "max": 2, "window": "1m"}))
        c, _ = self.client(gw2, ip)
        self.assertCode(c.cmd("MAIL FROM:<x@y.test>"), 451)
        c.close()

    def test_connection_limit(self):
        gw = self.start(self.limits({"count": "connections", "per": "client", "max": 2, "window": "1m"}))
        ip = "198.18.2.%d" % (os.getpid() % 200 + 20)
        for _ in range(2):
            c, first = self.client(gw, ip)
            self.assertCode(first, 220)
            c.close()
        c, first = self.client(gw, ip)
        c.close()
        self.assertCode(first, 421)
        self.assertIn("4.7.0", first.text)
        # another client is not limited
        c, first = self.client(gw, "198.18.3.1")
        c.close()
        self.assertCode(first, 220)

    def test_bad_options_fail_the_check(self):
        cfg = h.gateway_config(self.tmp, h.listener_config(h.free_port(), 25, filters=self.limits(
            {"count": "connections", "per": "sender", "max": 1, "window": "1m"})))
        out = h.run_portcullis(["-t", "-c", self.tmp.file("bad-rl.yaml", h.to_yaml(cfg))])
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("connections are counted per client", out.stdout + out.stderr)


if __name__ == "__main__":
    unittest.main()


@unittest.skipUnless(h.have_tool("redis-server"), "redis-server not installed")
@unittest.skipUnless(h.have_tool("unbound"), "unbound not installed")
class RedisStateFilters(StateFilters):
    """The same on Redis, and what only Redis has: Redis going away and coming back."""

    @classmethod
    def start_backend(cls):
        cls.redis = h.Redis(cls.tmp).start()

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()
        super().tearDownClass()

    def state(self):
        return {"backend": "redis", "prefix": "t:",
                "redis": {"address": self.redis.address, "timeout": "500ms", "connect_timeout": "500ms"}}

    def test_redis_down_then_back(self):
        gw = self.start(self.grey(on_unavailable="tempfail"))
        gw_open = self.start(self.grey())
        self.assertCode(self.rcpt(gw, "198.19.50.1", h.unique("s") + "@a.test", "alice@example.test"), 451)
        self.redis.stop()
        try:
            # the store is down: tempfail says 451 4.3.0, continue lets mail in; both keep serving
            r = self.rcpt(gw, "198.19.51.1", h.unique("s") + "@a.test", "alice@example.test")
            self.assertCode(r, 451)
            self.assertIn("4.3.0", r.text)
            self.assertCode(self.rcpt(gw_open, "198.19.52.1", h.unique("s") + "@a.test", "alice@example.test"), 250)
            self.assertIn("greylist=unavailable", gw_open.log_text())
        finally:
            self.redis.start()
        # back: greylisting again (a new triplet is delayed), within the reconnect backoff
        sender = h.unique("s") + "@a.test"
        h.wait_until(lambda: self.rcpt(gw, "198.19.53.1", sender, "alice@example.test").text.find("Greylisted") >= 0,
                     timeout=15, what="greylisting after Redis came back")


class HAProxy(h.ChildProcess):
    """HAProxy in TCP mode in front of gateways, sending PROXY v2, round robin: two gateways stand
    in for a cluster. Stopped by PID."""

    LOG_ATTRS = ("log_path",)

    def __init__(self, directory, backends):
        self.dir = os.path.join(str(directory), "haproxy-%d" % h.free_port())
        self.port = h.free_port()
        self.backends = backends
        self.log_path = os.path.join(self.dir, "haproxy.log")
        self.proc = None

    def start(self, timeout=15.0):
        import subprocess
        os.makedirs(self.dir, exist_ok=True)
        servers = "".join("    server gw%d 127.0.0.1:%d send-proxy-v2\n" % (i, p)
                          for i, p in enumerate(self.backends))
        conf = os.path.join(self.dir, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write("global\n    maxconn 1000\n    nbthread 1\n"
                    "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n"
                    "    timeout server 60s\n"
                    "frontend smtp\n    bind 127.0.0.1:%d\n    default_backend gws\n"
                    "backend gws\n    balance roundrobin\n%s" % (self.port, servers))
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", conf], stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        h.wait_port(self.port, timeout=timeout, proc=self.proc)
        return self


@unittest.skipUnless(h.have_tool("redis-server") and h.have_tool("haproxy"), "redis-server or haproxy missing")
class TwoGateways(h.GatewayTest):
    """Two gateways behind HAProxy (PROXY v2 from it only) sharing one Redis: a triplet greylisted by
    one passes the other after the delay; a rate limit counts across both."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.redis = h.Redis(cls.tmp).start()

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()
        super().tearDownClass()

    def pair(self, filters):
        self.up = self.hostile("record")
        top = {"state": {"backend": "redis", "redis": {"address": self.redis.address}}}
        gws = [self.gateway(self.up.port, top=top, proxy_protocol={"trusted": ["127.0.0.1/32"]},
                            trusted_networks=["10.255.255.0/24"], filters=filters) for _ in range(2)]
        lb = HAProxy(self.tmp, [g.port for g in gws]).start()
        self.addCleanup(lb.stop)
        return gws, lb

    def talk(self, lb, *lines):
        c = h.SmtpClient(lb.port)
        try:
            self.assertCode(c.ehlo("mx.sender.test"), 250)
            return [c.cmd(line) for line in lines]
        finally:
            c.close()

    def test_greylisting_and_rate_limit_are_shared(self):
        (g1, g2), lb = self.pair([
            {"name": "ratelimit", "timeout": "10s",
             "options": {"limits": [{"count": "messages", "per": "sender", "max": 3, "window": "1m"}]}},
            {"name": "greylist", "timeout": "10s", "options": {"delay": "2s"}}])
        sender = h.unique("s") + "@a.test"
        first = self.talk(lb, "MAIL FROM:<%s>" % sender, "RCPT TO:<alice@example.test>")
        self.assertCode(first[1], 451)
        time.sleep(2.2)
        second = self.talk(lb, "MAIL FROM:<%s>" % sender, "RCPT TO:<alice@example.test>")
        self.assertCode(second[1], 250)  # on the other gateway: round robin
        self.assertIn("greylist=delayed", g1.log_text() + g2.log_text())
        self.assertIn("greylist=passed", g1.log_text() + g2.log_text())
        self.assertTrue("greylist=" in g1.log_text() and "greylist=" in g2.log_text(),
                        "both gateways took part")
        # the third MAIL of this sender passes, the fourth does not, whichever gateway takes it
        self.assertCode(self.talk(lb, "MAIL FROM:<%s>" % sender)[0], 250)
        r = self.talk(lb, "MAIL FROM:<%s>" % sender)[0]
        self.assertCode(r, 451)
        self.assertIn("Too many messages per sender", r.text)
