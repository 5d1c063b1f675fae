"""The arc filter (RFC 8617), cross-checked with an independent implementation (python3-dkim's
arc_sign / arc_verify, run by tests/integration/dkim_tool.py), keys generated here with openssl,
their records served by a real Unbound, the client given as 192.0.2.10 by PROXY.

A chain sealed by python3-dkim verifies in the gateway (arc=pass in Authentication-Results
upstream) and the gateway's own seal on top (i=2, cv=pass) verifies with python3-dkim; a message the
gateway seals first (i=1, cv=none) verifies too. A body changed after sealing fails, and the
gateway's seal then says cv=fail. In front of a p=reject domain, a chain sealed by a trusted sealer
that recorded dkim=pass for the From domain is let through (the DMARC override), the same chain
sealed by a sealer that is not trusted is refused 550, and a trusted sealer that recorded only an
SPF pass for the sender's own envelope domain under a forged From does not make it pass. A
duplicated set is a fail. A seal key that is not RSA is refused by `portcullis -t`.

Owns: keys and one Unbound for the module, a recording upstream and a gateway per test.
"""

import base64
import json
import os
import re
import subprocess
import unittest

import harness as h
import test_dkim as dk

ZONE = [
    # the From domains: p=reject (the override's case) and p=none (to see results upstream);
    # their SPF never matches the client, so DMARC passes only through DKIM or ARC
    'rej.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"',
    '_dmarc.rej.test. 300 IN TXT "v=DMARC1; p=reject"',
    'mon.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"',
    '_dmarc.mon.test. 300 IN TXT "v=DMARC1; p=none"',
]


def have_arc_tools():
    try:
        return subprocess.run([dk.SYSPY, "-c", "import dkim, authres"], capture_output=True,
                              timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@unittest.skipUnless(have_arc_tools(), "python3-dkim and python3-authres (Debian's) not installed")
@unittest.skipUnless(h.have_tool("unbound"), "unbound not installed")
class Arc(h.GatewayTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        d = cls.tmp.sub("keys")
        cls.keys, records = {}, {}
        for name, dom, sel in (("list", "lists.test", "arc"), ("other", "other.test", "arc"),
                               ("gw", "gw.test", "seal")):
            path = os.path.join(d, name + ".pem")
            dk.openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path)
            pub = base64.b64encode(dk.openssl("pkey", "-in", path, "-pubout", "-outform", "DER")).decode()
            cls.keys[name] = path
            records["%s._domainkey.%s." % (sel, dom)] = "v=DKIM1; k=rsa; p=" + pub
        cls.ed = os.path.join(d, "ed.pem")
        dk.openssl("genpkey", "-algorithm", "ed25519", "-out", cls.ed)
        cls.records_path = cls.tmp.file("records.json", json.dumps(records))
        zone = ZONE + ["%s 300 IN TXT %s" % (n, dk.txt_strings(t)) for n, t in records.items()]
        cls.dns = h.Unbound(cls.tmp, records=zone).start()

    @classmethod
    def tearDownClass(cls):
        cls.dns.stop()
        super().tearDownClass()

    def start(self, trusted=("lists.test",), seal=True):
        self.up = self.hostile("record")
        arc = {"trusted_sealers": list(trusted)}
        if seal:
            arc["seal"] = {"domain": "gw.test", "selector": "seal", "key": self.keys["gw"]}
        return self.gateway(self.up.port, top={"resolver": {"servers": [self.dns.server]}},
                            proxy_protocol={"trusted": ["127.0.0.1/32"]},
                            filters=[{"name": "spf", "timeout": "10s"}, {"name": "dkim", "timeout": "10s"},
                                     {"name": "arc", "timeout": "10s", "options": arc},
                                     {"name": "dmarc", "timeout": "10s"}])

    def send(self, gw, message, envelope="bounce@lists.test"):
        c = h.SmtpClient(gw.port, greeting=False)
        try:
            c.send(h.proxy_v1("192.0.2.10", dport=gw.port))
            self.assertCode(c.read_reply(), 220)
            self.assertCode(c.ehlo("mail.lists.test"), 250)
            return c.transaction(envelope, ["alice@example.test"], message, helo=False)
        finally:
            c.close()

    def sealed(self, tag, frm, results, sealer="list", domain="lists.test"):
        """A message From frm, as a mailing list at domain passes it on: its own
        Authentication-Results (results), then its ARC set made by python3-dkim."""
        msg = dk.message(tag, frm=frm, extra="Authentication-Results: %s; %s\r\n" % (domain, results))
        out = subprocess.run([dk.SYSPY, dk.TOOL, "arc-sign", self.keys[sealer], "arc", domain, domain],
                             input=msg, capture_output=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertTrue(out.stdout.startswith(b"ARC-Seal: i=1;"), out.stdout[:200])
        return out.stdout

    def delivered(self, tag):
        got = [m for m in self.up.complete_messages() if tag.encode() in m.data]
        self.assertEqual(len(got), 1)
        return got[0].data

    def pyverify(self, data):
        out = subprocess.run([dk.SYSPY, dk.TOOL, "arc-verify", self.records_path], input=data,
                             capture_output=True, timeout=60)
        return out.stdout.decode().strip()

    def our_ar(self, data):
        head = h.unfold(data.split(b"\r\n\r\n", 1)[0]).decode()
        return re.search(r"(?m)^Authentication-Results: gw\.test;.*$", head).group(0)

    def deliver(self, gw, message, **kw):
        reps = self.send(gw, message, **kw)
        self.assertCode(reps[-1], 250)

    def test_python_chain_passes_and_our_seal_on_top_verifies(self):
        gw = self.start()
        tag = h.unique("relay")
        self.deliver(gw, self.sealed(tag, "a@mon.test", "dkim=pass header.d=mon.test"))
        data = self.delivered(tag)
        ar = self.our_ar(data)
        self.assertIn("arc=pass header.oldest-pass=1 smtp.remote-ip=192.0.2.10", ar)
        head = h.unfold(data.split(b"\r\n\r\n", 1)[0])
        self.assertRegex(head, rb"(?m)^ARC-Seal: i=2; cv=pass; a=rsa-sha256; d=gw\.test; s=seal;")
        self.assertRegex(head, rb"(?m)^ARC-Message-Signature: i=2; a=rsa-sha256; c=relaxed/relaxed;")
        self.assertRegex(head, rb"(?m)^ARC-Authentication-Results: i=2; gw\.test;.*arc=pass")
        self.assertEqual(self.pyverify(data).split()[0], "pass", self.pyverify(data))
        # the chain is the gateway's and the list's, both checked: changing the body breaks it
        tampered = data.replace(b"Hello, signed world.", b"Hello, changed world.")
        self.assertEqual(self.pyverify(tampered).split()[0], "fail")

    def test_gateway_seals_first_set(self):
        gw = self.start()
        tag = h.unique("first")
        self.deliver(gw, dk.message(tag, frm="a@mon.test"))
        data = self.delivered(tag)
        self.assertIn("arc=none", self.our_ar(data))
        head = h.unfold(data.split(b"\r\n\r\n", 1)[0])
        self.assertRegex(head, rb"(?m)^ARC-Seal: i=1; cv=none;")
        self.assertRegex(head, rb"(?m)^ARC-Authentication-Results: i=1; gw\.test;.*dmarc=")
        self.assertEqual(self.pyverify(data).split()[0], "pass", self.pyverify(data))

    def test_changed_body_fails(self):
        gw = self.start()
        tag = h.unique("tamper")
        msg = self.sealed(tag, "a@mon.test", "dkim=pass header.d=mon.test")
        self.deliver(gw, msg.replace(b"Hello, signed world.", b"Hello, changed world."))
        data = self.delivered(tag)
        self.assertIn("arc=fail smtp.remote-ip=192.0.2.10", self.our_ar(data))
        head = h.unfold(data.split(b"\r\n\r\n", 1)[0])
        self.assertRegex(head, rb"(?m)^ARC-Seal: i=2; cv=fail;")
        self.assertRegex(head, rb"X-Spam-Status: .*ARC_FAIL")
        self.assertNotEqual(self.pyverify(data).split()[0], "pass")

    def test_seal_by_the_wrong_key_fails(self):
        # sealed for d=lists.test with another key than the one lists.test publishes
        gw = self.start()
        tag = h.unique("wrongkey")
        msg = dk.message(tag, frm="a@mon.test",
                         extra="Authentication-Results: lists.test; dkim=pass header.d=mon.test\r\n")
        out = subprocess.run([dk.SYSPY, dk.TOOL, "arc-sign", self.keys["other"], "arc", "lists.test",
                              "lists.test"], input=msg, capture_output=True, timeout=60, check=True)
        self.deliver(gw, out.stdout)
        data = self.delivered(tag)
        self.assertIn("arc=fail", self.our_ar(data))
        self.assertRegex(h.unfold(data.split(b"\r\n\r\n", 1)[0]), rb"(?m)^ARC-Seal: i=2; cv=fail;")
        self.assertIn("did not verify", self.gw_log(gw))

    def gw_log(self, gw):
        return gw.log_text()

    def test_duplicate_set_fails(self):
        gw = self.start(seal=False)
        tag = h.unique("dup")
        msg = self.sealed(tag, "a@mon.test", "dkim=pass header.d=mon.test")
        first = msg.split(b"\r\n")[0]  # the ARC-Seal i=1 (one line: its b= folds after it)
        seal = re.match(rb"ARC-Seal:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*", msg).group(0)
        self.assertTrue(first.startswith(b"ARC-Seal: i=1"))
        self.deliver(gw, seal + b"\r\n" + msg)
        data = self.delivered(tag)
        self.assertIn("arc=fail", self.our_ar(data))
        self.assertNotIn(b"ARC-Seal: i=2", data)  # no seal configured here

    def test_trusted_sealer_overrides_dmarc_reject(self):
        gw = self.start()
        tag = h.unique("override")
        self.deliver(gw, self.sealed(tag, "a@rej.test", "dkim=pass header.d=rej.test; "
                                     "dmarc=pass header.from=rej.test"))
        ar = self.our_ar(self.delivered(tag))
        self.assertIn("arc=pass", ar)
        self.assertIn("dmarc=fail (p=reject dis=none, arc override by lists.test) header.from=rej.test", ar)

    def test_untrusted_sealer_does_not_override(self):
        gw = self.start()
        tag = h.unique("untrusted")
        msg = self.sealed(tag, "a@rej.test", "dkim=pass header.d=rej.test", sealer="other",
                          domain="other.test")
        reps = self.send(gw, msg, envelope="bounce@other.test")
        self.assertCode(reps[-1], 550)
        self.assertIn("5.7.1", reps[-1].text)
        self.assertEqual(self.up.complete_messages(), [])

    def test_spf_pass_for_own_envelope_domain_is_not_enough(self):
        # A trusted list's seal that only saw the sender's own SPF pass (attacker.test) under a
        # From of rej.test: nothing the list saw is aligned with rej.test.
        gw = self.start()
        tag = h.unique("forged")
        msg = self.sealed(tag, "ceo@rej.test", "spf=pass smtp.mailfrom=bounce@attacker.test; dkim=none")
        reps = self.send(gw, msg)
        self.assertCode(reps[-1], 550)
        self.assertEqual(self.up.complete_messages(), [])

    def test_seal_key_must_be_rsa(self):
        cfg = h.gateway_config(self.tmp, h.listener_config(h.free_port(), 25, filters=[
            {"name": "arc", "options": {"seal": {"domain": "gw.test", "selector": "s", "key": self.ed}}}]))
        out = h.run_portcullis(["-t", "-c", self.tmp.file("bad-arc.yaml", h.to_yaml(cfg))])
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("is not a PEM RSA private key", out.stdout + out.stderr)


if __name__ == "__main__":
    unittest.main()
