"""The dkim filter, cross-checked with an independent implementation (python3-dkim, run by
tests/integration/dkim_tool.py): keys generated here with openssl (RSA 2048 and Ed25519), their
records served by a real Unbound. A message the gateway signs (both algorithms) verifies with
python3-dkim, and one python3-dkim signs verifies in the gateway (Authentication-Results upstream);
a body changed after signing fails; an rsa-sha1 signature fails (RFC 8301); only mail from a
trusted network or an authenticated user is signed, and only for the domain of its single From.

Owns: keys and one Unbound for the module, a recording upstream and a gateway per test.
"""

import base64
import json
import os
import re
import subprocess
import unittest

import harness as h

TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dkim_tool.py")
SYSPY = "/usr/bin/python3"


def have_dkimpy():
    try:
        return subprocess.run([SYSPY, "-c", "import dkim, nacl"], capture_output=True,
                              timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def openssl(*args, input=None):
    return subprocess.run(["openssl"] + list(args), input=input, capture_output=True, check=True).stdout


def txt_strings(text):
    """A TXT record's text as quoted strings of at most 255 characters."""
    return " ".join('"%s"' % text[i:i + 200] for i in range(0, len(text), 200))


def message(tag, frm="Alice <alice@example.test>", body="Hello, signed world.\r\n", extra=""):
    return ("From: %s\r\nTo: bob@example.test\r\nSubject: %s\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\n"
            "Message-ID: <%s@example.test>\r\n%s\r\n%s" % (frm, tag, re.sub(r"\W", "", tag), extra, body)).encode()


@unittest.skipUnless(have_dkimpy(), "python3-dkim (Debian's) not installed")
@unittest.skipUnless(h.have_tool("unbound"), "unbound not installed")
class Dkim(h.GatewayTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if os.environ.get("ASAN_OPTIONS"):
            # libopendkim's own leak of Ed25519 keys is suppressed by its function name
            # (tests/lsan.supp); the full stacks through OpenSSL need the slow unwinder.
            os.environ["ASAN_OPTIONS"] += ":fast_unwind_on_malloc=0"
        d = cls.tmp.sub("keys")
        cls.rsa = os.path.join(d, "rsa.pem")
        cls.ed = os.path.join(d, "ed.pem")
        cls.ed_raw = os.path.join(d, "ed.raw")
        cls.weak = os.path.join(d, "weak.pem")
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", cls.rsa)
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:768", "-out", cls.weak)
        openssl("genpkey", "-algorithm", "ed25519", "-out", cls.ed)
        rsa_pub = base64.b64encode(openssl("pkey", "-in", cls.rsa, "-pubout", "-outform", "DER")).decode()
        weak_pub = base64.b64encode(openssl("pkey", "-in", cls.weak, "-pubout", "-outform", "DER")).decode()
        ed_pub = base64.b64encode(openssl("pkey", "-in", cls.ed, "-pubout", "-outform", "DER")[-32:]).decode()
        with open(cls.ed_raw, "w") as f:  # python3-dkim's form of an Ed25519 key: the seed, base64
            f.write(base64.b64encode(openssl("pkey", "-in", cls.ed, "-outform", "DER")[-32:]).decode())
        cls.records = {
            "rsa._domainkey.example.test.": "v=DKIM1; k=rsa; p=" + rsa_pub,
            "ed._domainkey.example.test.": "v=DKIM1; k=ed25519; p=" + ed_pub,
            "weak._domainkey.example.test.": "v=DKIM1; k=rsa; p=" + weak_pub,
        }
        cls.records_path = cls.tmp.file("records.json", json.dumps(cls.records))
        cls.dns = h.Unbound(cls.tmp, records=["%s 300 IN TXT %s" % (n, txt_strings(t))
                                              for n, t in cls.records.items()]).start()

    @classmethod
    def tearDownClass(cls):
        cls.dns.stop()
        super().tearDownClass()

    def start(self, options, trusted=("127.0.0.1/32",)):
        self.up = self.hostile("record")
        return self.gateway(self.up.port, top={"resolver": {"servers": [self.dns.server]}},
                            trusted_networks=list(trusted),
                            filters=[{"name": "dkim", "timeout": "10s", "options": options}])

    def sign_options(self):
        return {"verify": False, "sign": [{"domain": "example.test", "selector": "rsa", "key": self.rsa},
                                          {"domain": "example.test", "selector": "ed", "key": self.ed}]}

    def deliver(self, gw, msg, tag):
        reps, ok = h.attempt(gw.port, "alice@example.test", ["bob@example.test"], msg)
        self.assertTrue(ok, reps)
        got = [m for m in self.up.complete_messages() if tag.encode() in m.data]
        self.assertEqual(len(got), 1)
        return got[0].data

    def pyverify(self, data):
        out = subprocess.run([SYSPY, TOOL, "verify", self.records_path], input=data,
                             capture_output=True, timeout=60)
        return out.stdout.decode().split(), out.stderr.decode()

    def pysign(self, msg, key, sel, alg):
        return subprocess.run([SYSPY, TOOL, "sign", key, sel, "example.test", alg], input=msg,
                              capture_output=True, check=True, timeout=60).stdout

    def test_signed_by_the_gateway_verifies_with_python_dkim(self):
        gw = self.start(self.sign_options())
        tag = h.unique("signed")
        data = self.deliver(gw, message(tag), tag)
        head = data.split(b"\r\n\r\n", 1)[0]
        sigs = re.findall(rb"(?m)^DKIM-Signature:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*", head)
        self.assertEqual(len(sigs), 2, head)
        joined = h.unfold(b"\r\n".join(sigs))
        self.assertIn(b"a=rsa-sha256", joined)
        self.assertIn(b"a=ed25519-sha256", joined)
        self.assertIn(b"c=relaxed/relaxed", joined)
        self.assertIn(b"d=example.test", joined)
        self.assertRegex(joined, rb"(?i)h=from:[^;]*:from;")  # From oversigned
        results, err = self.pyverify(data)
        self.assertEqual(results, ["pass", "pass"], err)
        # A body changed after signing fails, with both algorithms.
        tampered = data.replace(b"Hello, signed world.", b"Hello, changed world.")
        results, err = self.pyverify(tampered)
        self.assertEqual(results, ["fail", "fail"], err)

    def test_not_signed_for_outsiders_or_foreign_from(self):
        gw = self.start(self.sign_options(), trusted=("10.0.0.0/8",))
        tag = h.unique("outsider")
        data = self.deliver(gw, message(tag), tag)
        self.assertNotIn(b"DKIM-Signature", data)  # 127.0.0.1 is not trusted here
        gw2 = self.start(self.sign_options())
        tag = h.unique("foreign")
        data = self.deliver(gw2, message(tag, frm="x@elsewhere.test"), tag)
        self.assertNotIn(b"DKIM-Signature", data)
        tag = h.unique("twofrom")
        data = self.deliver(gw2, message(tag, extra="From: other@example.test\r\n"), tag)
        self.assertNotIn(b"DKIM-Signature", data)
        self.assertIn("no single From address", gw2.log_text())

    def test_signed_by_python_dkim_verifies_in_the_gateway(self):
        gw = self.start({})
        for key, sel, alg in ((self.rsa, "rsa", "rsa-sha256"), (self.ed_raw, "ed", "ed25519-sha256")):
            tag = h.unique(sel)
            signed = self.pysign(message(tag), key, sel, alg)
            data = self.deliver(gw, signed, tag)
            head = h.unfold(data.split(b"\r\n\r\n", 1)[0])
            with self.subTest(alg=alg):
                self.assertRegex(head, rb"Authentication-Results: gw.test;\s+dkim=pass header.d=example.test "
                                       rb"header.i=@example.test header.s=" + sel.encode() +
                                 rb" header.a=" + alg.encode() + rb" header.b=\S{8}")
            # changed after signing: fail
            tag = h.unique(sel + "-bad")
            signed = self.pysign(message(tag), key, sel, alg).replace(b"signed world", b"forged world")
            data = self.deliver(gw, signed, tag)
            head = h.unfold(data.split(b"\r\n\r\n", 1)[0])
            with self.subTest(alg=alg, tampered=True):
                self.assertRegex(head, rb"dkim=fail[^;]* header.s=" + sel.encode())
                self.assertIn(b"DKIM_FAIL", head)

    def test_unsigned_is_none_and_short_keys_fail(self):
        gw = self.start({})
        tag = h.unique("plain")
        data = self.deliver(gw, message(tag), tag)
        self.assertIn(b"Authentication-Results: gw.test;\r\n\tdkim=none", data)
        tag = h.unique("weak")
        signed = self.pysign(message(tag), self.weak, "weak", "rsa-sha256")
        data = self.deliver(gw, signed, tag)
        self.assertRegex(h.unfold(data), rb"dkim=(fail|permerror)[^;]* header.s=weak")

    def test_rsa_sha1_fails(self):
        gw = self.start({})
        tag = h.unique("sha1")
        signed = self.pysign(message(tag), self.rsa, "rsa", "rsa-sha1")
        data = self.deliver(gw, signed, tag)
        self.assertRegex(h.unfold(data), rb"dkim=fail reason=\"rsa-sha1[^\"]*\" header.d=example.test")


if __name__ == "__main__":
    unittest.main()
