"""Command line: `-t -c FILE` (config check: exit 0, or exit 1 with "FILE:LINE: key: problem"), one-line
mode delivering into Postfix, and SIGTERM -> graceful exit 0.

Owns: a private Postfix (class), config files in the class temp dir.
"""

import os
import re
import unittest

import harness as h


@unittest.skipUnless(h.have_tool("postfix"), "postfix not installed")
class Cli(h.GatewayTest):
    postfix = True

    def good_config(self):
        return h.to_yaml(h.gateway_config(self.tmp, h.listener_config(h.free_port(), self.pf.port, tls="starttls",
                                                                         pki=self.pki))) + "\n"

    def write(self, name, text):
        return self.tmp.file(name, text)

    def test_check_good_file(self):
        path = self.write("good.yaml", self.good_config())
        r = h.run_portcullis(["-t", "-c", path])
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_check_bad_files(self):
        good = self.good_config().splitlines()
        cases = {
            # name: (text, expected line or None)
            "unknown_key": ("workers: 1\nno_such_key: 3\n" + "\n".join(good[1:]) + "\n", 2),
            "bad_size": (re.sub(r"message_size: \S+", "message_size: tenmegs", "\n".join(good)) + "\n", None),
            "bad_mode": (re.sub(r"mode: starttls", "mode: sometimes", "\n".join(good)) + "\n", None),
            "bad_address": (re.sub(r'listen: \[[^\]]*\]', 'listen: ["127.0.0.1:99999"]', "\n".join(good)) + "\n",
                            None),
            "bad_network": (re.sub(r"trusted_networks: \[[^\]]*\]", "trusted_networks: [127.0.0.1/99]",
                                   "\n".join(good)) + "\n", None),
            "not_yaml": ("listeners: [\n  - {\n", None),
        }
        for name, (text, line) in cases.items():
            with self.subTest(case=name):
                path = self.write("bad_%s.yaml" % name, text)
                r = h.run_portcullis(["-t", "-c", path])
                self.assertNotEqual(r.returncode, 0, "accepted:\n" + text)
                m = re.search(re.escape(path) + r":(\d+):", r.stderr) or \
                    re.search(re.escape(os.path.basename(path)) + r":(\d+):", r.stderr)
                self.assertIsNotNone(m, "no FILE:LINE: in stderr: %r" % r.stderr)
                if line is not None:
                    self.assertEqual(int(m.group(1)), line, r.stderr)

    def test_missing_file(self):
        r = h.run_portcullis(["-t", "-c", os.path.join(self.tmp.path, "does-not-exist.yaml")])
        self.assertNotEqual(r.returncode, 0)

    def test_one_line_mode_delivers_and_sigterm_exits_cleanly(self):
        port = h.free_port()
        gw = self.gateway_args(["--listen", "smtp://127.0.0.1:%d" % port, "--upstream",
                                "smtp://127.0.0.1:%d" % self.pf.port, "--domain", "example.test",
                                "--hostname", "gw.test", "--log-level", "debug"], port)
        tag = h.unique("oneline")
        reps, ok = h.attempt(port, "s@client.test", ["alice@example.test"], h.simple_message(subject=tag))
        self.assertTrue(ok, reps)
        self.assertEqual(len(self.delivered("alice", tag)), 1)
        self.assertEqual(gw.stop(), 0, gw.log_text()[-2000:])
        self.assertRegex(gw.log_text(), r"\w+=\S+")       # key=value log lines

    def test_yaml_mode_sigterm(self):
        port = h.free_port()
        gw = self.gateway(self.pf.port)
        self.assertEqual(gw.stop(), 0, gw.log_text()[-2000:])


if __name__ == "__main__":
    unittest.main()
