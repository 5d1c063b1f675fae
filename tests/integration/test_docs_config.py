"""The documentation and the loader agree: every YAML code block in filters/README.md, docs/*.md and
README.md, and every inline `key: value` the same pages show, is accepted by `portcullis -t` once
placed in a configuration (etc/portcullis.yaml is checked by tests/unit/test_config.c).

A code block whose top-level keys are the file's (workers, listeners, ...) is a file of its own;
any other block is a listener's keys. An inline `key: value` (dotted keys allowed) is accepted when
one place in a configuration takes it: the top level, a listener (SMTP, POP3 or IMAP) or one of its
sections, or a filter use. Owns: config files in a temp dir; nothing is started but `-t`.
"""

import glob
import os
import re
import subprocess
import unittest

import harness as h

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAGES = sorted(glob.glob(os.path.join(REPO, "docs", "*.md"))) + [
    os.path.join(REPO, "filters", "README.md"), os.path.join(REPO, "README.md")]
TOP_KEYS = {"workers", "user", "group", "log", "max_connections", "spool", "shutdown_timeout",
            "threadpool_size", "plugins", "listeners", "quarantine", "admin"}
LISTENER_SECTIONS = ["smtp", "mailbox", "tls", "upstream", "limits", "timeouts", "proxy_protocol"]
TOP_SECTIONS = ["log", "spool", "quarantine", "admin"]


def yaml_blocks(text):
    """(line, text) of each ```yaml block."""
    out = []
    for m in re.finditer(r"^```ya?ml\n(.*?)^```", text, re.S | re.M):
        out.append((text.count("\n", 0, m.start()) + 2, m.group(1)))
    return out


def inline_pairs(text):
    """(line, key, value) of each inline `key: value` outside code blocks."""
    text = re.sub(r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S | re.M)
    out = []
    for m in re.finditer(r"`([a-z_]+(?:\.[a-z_]+)*): ([^`\s]+)`", text):
        out.append((text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2)))
    return out


class DocsConfig(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = h.TempDir()
        cls.pki = h.make_pki(cls.tmp.sub("pki"))
        # The ClamAV database the docs name: one signature is enough for the engine to load.
        cls.clamdb = cls.tmp.sub("clamav")
        cls.tmp.file("clamav/doc.hdb", "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Hash\n")
        # The DKIM keys the docs name.
        for stem, alg in (("example.com.rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"]),
                          ("example.com.ed25519", ["-algorithm", "ed25519"])):
            subprocess.run(["openssl", "genpkey"] + alg + ["-out", os.path.join(cls.tmp.sub("dkim"), stem + ".pem")],
                           check=True, capture_output=True)
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def check(self, text):
        """Runs -t on text (paths under /etc/portcullis/ point at the test PKI, /var/lib/clamav at a
        small signature database)."""
        text = text.replace("/etc/portcullis/cert.pem", self.pki["cert"]) \
                   .replace("/etc/portcullis/key.pem", self.pki["key"]) \
                   .replace("/var/lib/clamav", str(self.clamdb)) \
                   .replace("/etc/portcullis/dkim", os.path.join(str(self.tmp), "dkim"))
        DocsConfig.n += 1
        path = self.tmp.file("doc-%d.yaml" % DocsConfig.n, text)
        return h.run_portcullis(["-t", "-c", path])

    def base(self, protocol="smtp"):
        lst = {"name": "doc", "protocol": protocol, "listen": ["127.0.0.1:%d" % h.free_port()],
               "tls": {"mode": "starttls",
                       "certificates": [{"cert": self.pki["cert"], "key": self.pki["key"]}]},
               "upstream": {"address": "127.0.0.1:%d" % h.free_port()}}
        return {"workers": 1, "spool": {"directory": str(self.tmp)}, "listeners": [lst]}

    def listener_file(self, body):
        """A listener with the block's keys appended (4 spaces in)."""
        head = h.to_yaml(self.base()) + "\n"
        return head + "".join("    " + l + "\n" if l.strip() else "\n" for l in body.splitlines())

    def test_yaml_blocks(self):
        found = 0
        for page in PAGES:
            with open(page) as f:
                text = f.read()
            for line, block in yaml_blocks(text):
                found += 1
                keys = set(re.findall(r"^([A-Za-z_]+):", block, re.M))
                if keys & TOP_KEYS:
                    cfg = block if "listeners" in keys else \
                        block + "\n" + h.to_yaml({"listeners": self.base()["listeners"]}) + "\n"
                else:
                    cfg = self.listener_file(block)
                with self.subTest(page=os.path.relpath(page, REPO), line=line):
                    r = self.check(cfg)
                    self.assertEqual(r.returncode, 0, "%s:%d:\n%s\n%s" % (page, line, block, r.stderr))
        self.assertGreaterEqual(found, 2)

    def placements(self, path, value):
        """Configurations that put path = value in each place a key can live."""
        def nest(keys, v):
            d = v
            for k in reversed(keys):
                d = {k: d}
            return d
        keys = path.split(".")
        yield h.deep_merge(self.base(), nest(keys, value))
        for protocol in ("smtp", "pop3", "imap"):
            for where in [[]] + [[s] for s in LISTENER_SECTIONS]:
                cfg = self.base(protocol)
                cfg["listeners"][0] = h.deep_merge(cfg["listeners"][0], nest(where + keys, value))
                yield cfg
            cfg = self.base(protocol)
            cfg["listeners"][0]["filters"] = [h.deep_merge({"name": "access"}, nest(keys, value))]
            yield cfg
        for s in TOP_SECTIONS:
            yield h.deep_merge(self.base(), nest([s] + keys, value))

    def test_inline_keys(self):
        seen = set()
        for page in PAGES:
            with open(page) as f:
                text = f.read()
            for line, key, value in inline_pairs(text):
                if (key, value) in seen:
                    continue
                seen.add((key, value))
                with self.subTest(page=os.path.relpath(page, REPO), line=line, key=key):
                    errors = []
                    for cfg in self.placements(key, value):
                        r = self.check(h.to_yaml(cfg) + "\n")
                        if r.returncode == 0:
                            break
                        errors.append(r.stderr.strip())
                    else:
                        self.fail("%s:%d: `%s: %s` is accepted nowhere; e.g.\n%s"
                                  % (page, line, key, value, "\n".join(errors[:3])))
        self.assertGreater(len(seen), 10)

    def test_the_check_catches_an_unknown_key(self):
        # What the README said before: `monitor: true` for a filter is an unknown key everywhere.
        for cfg in self.placements("monitor", "true"):
            self.assertNotEqual(self.check(h.to_yaml(cfg) + "\n").returncode, 0)
        r = self.check(self.listener_file("filters:\n  - name: access\n    monitor: true\n"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("filters[0].monitor: unknown key", r.stderr)


if __name__ == "__main__":
    unittest.main()
