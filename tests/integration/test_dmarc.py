"""The dmarc filter after spf and dkim, end to end through a real Unbound (zones in this file) with the
client given as 192.0.2.10 by PROXY: an aligned SPF pass and an aligned DKIM pass (signed here by
python3-dkim) pass; p=reject refuses 550 5.7.1, p=quarantine holds (451 4.7.1 until the quarantine
store exists), p=none only records; an SPF pass for the sender's own envelope domain under a forged
From fails; strict alignment and the sp of the organisational domain for a subdomain; pct=0 takes
the next lower policy; several From fields; the admin's softening (reject as tag). DMARCbis'
tree walk (organizational_domain: tree_walk): the organisational domain's record found for a From
domain of 11 labels (the walk goes on at the last 7), psd=y and psd=n against the suffix list's
answer, np for a From domain that does not exist, t=y. (The ARC override is tested with the arc filter
in test_arc.py.)

Owns: one Unbound and a DKIM key for the module, a recording upstream and a gateway per test.
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
    'pass.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"',
    '_dmarc.pass.test. 300 IN TXT "v=DMARC1; p=reject"',
    'rej.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"',
    '_dmarc.rej.test. 300 IN TXT "v=DMARC1; p=reject"',
    'quar.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"',
    '_dmarc.quar.test. 300 IN TXT "v=DMARC1; p=quarantine"',
    'mon.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"',
    '_dmarc.mon.test. 300 IN TXT "v=DMARC1; p=none"',
    # strict alignment needs a suffix the public suffix list knows (example.com's is com)
    'example.com. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"',
    '_dmarc.example.com. 300 IN TXT "v=DMARC1; p=reject; sp=quarantine; aspf=s"',
    'pct.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"',
    '_dmarc.pct.test. 300 IN TXT "v=DMARC1; p=reject; pct=0"',
    'dk.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"',
    '_dmarc.dk.test. 300 IN TXT "v=DMARC1; p=reject"',
    # DMARCbis tree walk (organizational_domain: tree_walk): only the organisational domain's
    # record, for a From domain many labels below it
    'walk.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"',
    '_dmarc.walk.test. 300 IN TXT "v=DMARC1; p=reject"',
    # psd=n: corp.walk.test is an organisational domain of its own
    '_dmarc.corp.walk.test. 300 IN TXT "v=DMARC1; p=reject; psd=n"',
    # psd=y: psd.test is a public suffix domain; shop.psd.test and other.psd.test are two
    # organisations (the suffix list, not knowing psd.test, makes them one)
    '_dmarc.psd.test. 300 IN TXT "v=DMARC1; p=reject; psd=y"',
    'shop.psd.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"',
    'other.psd.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"',
    # np: ghost.np.test does not exist, real.np.test does
    'np.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"',
    '_dmarc.np.test. 300 IN TXT "v=DMARC1; p=none; sp=none; np=reject"',
    'real.np.test. 300 IN A 192.0.2.99',
    # t=y: the next lower policy
    'tt.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"',
    '_dmarc.tt.test. 300 IN TXT "v=DMARC1; p=reject; t=y"',
]

DEEP = "a.b.c.d.e.f.g.h.i.walk.test"  # 11 labels: the walk goes on at its last 7
TREE = {"organizational_domain": "tree_walk"}


@unittest.skipUnless(h.have_tool("unbound"), "unbound not installed")
class Dmarc(h.GatewayTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.key = os.path.join(cls.tmp.sub("keys"), "rsa.pem")
        dk.openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", cls.key)
        pub = base64.b64encode(dk.openssl("pkey", "-in", cls.key, "-pubout", "-outform", "DER")).decode()
        zone = ZONE + ["s1._domainkey.dk.test. 300 IN TXT %s" % dk.txt_strings("v=DKIM1; k=rsa; p=" + pub)]
        cls.dns = h.Unbound(cls.tmp, records=zone).start()

    @classmethod
    def tearDownClass(cls):
        cls.dns.stop()
        super().tearDownClass()

    def start(self, options=None):
        self.up = self.hostile("record")
        return self.gateway(self.up.port, top={"resolver": {"servers": [self.dns.server]}},
                            proxy_protocol={"trusted": ["127.0.0.1/32"]},
                            filters=[{"name": "spf", "timeout": "10s"}, {"name": "dkim", "timeout": "10s"},
                                     {"name": "dmarc", "timeout": "10s", "options": options or {}}])

    def send(self, gw, envelope, message):
        c = h.SmtpClient(gw.port, greeting=False)
        try:
            c.send(h.proxy_v1("192.0.2.10", dport=gw.port))
            self.assertCode(c.read_reply(), 220)
            self.assertCode(c.ehlo("client.test"), 250)
            return c.transaction(envelope, ["alice@example.test"], message, helo=False)
        finally:
            c.close()

    def msg(self, tag, frm, extra=""):
        return dk.message(tag, frm=frm, extra=extra)

    def delivered(self, tag):
        got = [m for m in self.up.complete_messages() if tag.encode() in m.data]
        self.assertEqual(len(got), 1)
        return h.unfold(got[0].data.split(b"\r\n\r\n", 1)[0]).decode()

    def accepted(self, gw, envelope, frm, name, extra=""):
        """A message From frm sent with the envelope sender given: answered 250 and delivered
        once; its header, unfolded."""
        tag = h.unique(name)
        reps = self.send(gw, envelope, self.msg(tag, frm, extra))
        self.assertCode(reps[-1], 250)
        return self.delivered(tag)

    def answered(self, gw, envelope, frm, name, code):
        """A message From frm sent with the envelope sender given: the final reply, of code."""
        reps = self.send(gw, envelope, self.msg(h.unique(name), frm))
        self.assertCode(reps[-1], code)
        return reps[-1]

    def test_aligned_spf_pass(self):
        gw = self.start()
        self.assertRegex(self.accepted(gw, "bounce@pass.test", "a@pass.test", "pass"),
                         r"dmarc=pass \(p=reject dis=none\) header.from=pass.test")

    def test_aligned_dkim_pass_despite_spf_fail(self):
        gw = self.start()
        tag = h.unique("dkim")
        signed = subprocess.run([dk.SYSPY, dk.TOOL, "sign", self.key, "s1", "dk.test", "rsa-sha256"],
                                input=self.msg(tag, "a@dk.test"), capture_output=True, check=True).stdout
        reps = self.send(gw, "x@dk.test", signed)
        self.assertCode(reps[-1], 250)
        head = self.delivered(tag)
        self.assertIn("spf=fail", head)
        self.assertRegex(head, r"dkim=pass header.d=dk.test")
        self.assertRegex(head, r"dmarc=pass \(p=reject dis=none\) header.from=dk.test")

    def test_policies(self):
        gw = self.start()
        r = self.answered(gw, "x@rej.test", "a@rej.test", "rej", 550)
        self.assertEnhanced(r, "5.7.1")
        self.assertIn("DMARC policy of rej.test", r.text)
        r = self.answered(gw, "x@quar.test", "a@quar.test", "quar", 451)
        self.assertEnhanced(r, "4.7.1")
        self.assertRegex(self.accepted(gw, "x@mon.test", "a@mon.test", "mon"),
                         r"dmarc=fail \(p=none dis=none\) header.from=mon.test")

    def test_forged_from_with_the_senders_own_spf_pass(self):
        gw = self.start()
        # SPF passed for pass.test: not aligned with rej.test
        self.answered(gw, "attacker@pass.test", "ceo@rej.test", "forged", 550)

    def test_strict_alignment_and_subdomain_policy(self):
        gw = self.start()
        # relaxed alignment would pass (example.com is the organisational domain of
        # mail.example.com); aspf=s does not, and the subdomain takes sp=quarantine
        self.answered(gw, "x@example.com", "a@mail.example.com", "strict", 451)
        self.assertIn("dmarc=fail (p=quarantine dis=quarantine) header.from=mail.example.com",
                      gw.log_text())

    def test_pct_zero_takes_the_next_lower_policy(self):
        gw = self.start()
        self.answered(gw, "x@pct.test", "a@pct.test", "pct", 451)  # reject sampled out: quarantine
        self.assertIn("dis=quarantine", gw.log_text())

    def test_several_from_and_softened_reject(self):
        gw = self.start({"reject": "tag"})
        head = self.accepted(gw, "x@rej.test", "a@rej.test", "soft")
        self.assertRegex(head, r"dmarc=fail \(p=reject dis=none\) header.from=rej.test")
        self.assertIn("DMARC_FAIL", head)
        head = self.accepted(gw, "x@pass.test", "a@pass.test", "twofrom", extra="From: b@rej.test\r\n")
        self.assertIn("dmarc=permerror (several From fields)", head)
        self.assertIn("DMARC_MULTIPLE_FROM", head)

    def test_tree_walk_finds_the_organisational_record_deep_below(self):
        gw = self.start(TREE)
        # SPF pass for walk.test: the same organisational domain
        self.assertRegex(self.accepted(gw, "bounce@walk.test", "a@" + DEEP, "deep"),
                         r"dmarc=pass \(p=reject dis=none\) header.from=" + DEEP)
        r = self.answered(gw, "x@np.test", "a@" + DEEP, "deepfail", 550)
        self.assertIn("DMARC policy of " + DEEP, r.text)

    def test_tree_walk_psd(self):
        # psd=y: shop.psd.test is its own organisational domain, other.psd.test is not aligned
        # with it; the suffix list (psl) makes psd.test the organisational domain of both
        gw = self.start(TREE)
        self.answered(gw, "x@other.psd.test", "a@shop.psd.test", "psdy", 550)
        self.assertIn("dmarc=fail (p=reject dis=reject) header.from=shop.psd.test", gw.log_text())
        # the walk of shop.psd.test: aligned
        self.assertRegex(self.accepted(gw, "x@shop.psd.test", "a@mail.shop.psd.test", "psdsub"),
                         r"dmarc=pass \(p=reject dis=none\) header.from=mail.shop.psd.test")
        # psd=n: corp.walk.test is an organisational domain, walk.test's SPF pass does not align
        self.answered(gw, "x@walk.test", "a@x.corp.walk.test", "psdn", 550)
        gw = self.start()
        self.assertRegex(self.accepted(gw, "x@other.psd.test", "a@shop.psd.test", "psl"),
                         r"dmarc=pass \(p=reject dis=none\) header.from=shop.psd.test")
        self.accepted(gw, "x@walk.test", "a@x.corp.walk.test", "psln")

    def test_tree_walk_np_for_a_subdomain_that_does_not_exist(self):
        gw = self.start(TREE)
        self.answered(gw, "x@np.test", "a@ghost.np.test", "ghost", 550)
        self.assertIn("dmarc=fail (p=reject dis=reject) header.from=ghost.np.test", gw.log_text())
        # it exists: sp=none
        self.assertRegex(self.accepted(gw, "x@np.test", "a@real.np.test", "real"),
                         r"dmarc=fail \(p=none dis=none\) header.from=real.np.test")
        self.answered(gw, "x@tt.test", "a@tt.test", "t", 451)  # t=y: reject taken down to quarantine
        gw = self.start()  # psl: np is not read, sp=none
        self.assertRegex(self.accepted(gw, "x@np.test", "a@ghost.np.test", "pslghost"),
                         r"dmarc=fail \(p=none dis=none\) header.from=ghost.np.test")


if __name__ == "__main__":
    unittest.main()
