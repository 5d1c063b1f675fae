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

    def test_plugin_of_another_abi_refused(self):
        """A .so plugin built for filter ABI 1 (before the per-worker hooks) is refused at load,
        with the file and both ABI versions named, in -t and at start."""
        plugin = os.path.join(os.path.dirname(os.path.abspath(os.environ["PORTCULLIS_TEST_PLUGIN"])),
                              "oldabi.so")
        self.assertTrue(os.path.exists(plugin), plugin)
        path = self.write("oldabi.yaml", "plugins: [%s]\n" % plugin + self.good_config())
        r = h.run_portcullis(["-t", "-c", path])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("%s: plugin built for filter ABI 1, this gateway has ABI 2" % plugin, r.stderr)

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


class OneLineTrustAndWarnings(h.GatewayTest):
    """--trust replaces the loopback default (an untrusted test from 127.0.0.1); -t and the start
    warn about a mailbox listener where nobody can log in. Owns: a recording upstream, gateways."""

    def one_line(self, *extra):
        self.up = self.hostile("record")
        port = h.free_port()
        return self.gateway_args(["--listen", "smtp://127.0.0.1:%d" % port, "--upstream",
                                  "smtp://127.0.0.1:%d" % self.up.port, "--domain", "example.test",
                                  "--workers", "1"] + list(extra), port)

    def rcpt(self, gw, addr):
        c = self.client(gw)
        self.assertCode(c.ehlo(), 250)
        self.assertCode(c.cmd("MAIL FROM:<s@client.test>"), 250)
        return c.cmd("RCPT TO:<%s>" % addr)

    def test_trust_replaces_loopback(self):
        gw = self.one_line("--trust", "10.0.0.0/8")
        r = self.rcpt(gw, "x@foreign.test")
        self.assertCode(r, 554)
        self.assertEnhanced(r, "5.7.1")
        self.assertCode(self.rcpt(gw, "alice@example.test"), 250)   # an accepted domain still is
        self.assertNotIn("foreign.test", " ".join(self.up.all_commands()))

    def test_trust_given_twice_keeps_both(self):
        gw = self.one_line("--trust", "10.0.0.0/8", "--trust", "127.0.0.0/8")
        self.assertCode(self.rcpt(gw, "x@foreign.test"), 250)

    def test_loopback_is_trusted_by_default(self):
        gw = self.one_line()
        self.assertCode(self.rcpt(gw, "x@foreign.test"), 250)

    def test_check_warns_about_a_mailbox_listener_nobody_can_log_in_to(self):
        for scheme in ("imap", "pop3"):
            with self.subTest(scheme=scheme):
                r = h.run_portcullis(["-t", "--listen", "%s://127.0.0.1:%d" % (scheme, h.free_port()),
                                      "--upstream", "%s://127.0.0.1:1" % scheme])
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertRegex(r.stderr, r"warning: listener=listener0 protocol=%s tls=none "
                                           r"plaintext_auth=never: no client can log in" % scheme)
                self.assertIn("certificate", r.stderr)
                self.assertIn("mailbox.plaintext_auth: allow (--plaintext-auth)", r.stderr)
                r = h.run_portcullis(["-t", "--listen", "%s://127.0.0.1:%d" % (scheme, h.free_port()),
                                      "--upstream", "%s://127.0.0.1:1" % scheme, "--plaintext-auth"])
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertNotIn("no client can log in", r.stderr)
                self.assertIn("mailbox.plaintext_auth=allow: passwords are accepted before TLS", r.stderr)
        # With a certificate (STLS/STARTTLS offered) there is nothing to say.
        r = h.run_portcullis(["-t", "--listen", "imap://127.0.0.1:%d" % h.free_port(), "--upstream",
                              "imap://127.0.0.1:1", "--cert", self.pki["cert"], "--key", self.pki["key"]])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("warning", r.stderr)

    def test_check_warns_for_a_file_too(self):
        lst = h.pop3_listener_config(h.free_port(), 1, name="legacy", mailbox={"plaintext_auth": "never"})
        lst["tls"] = {"mode": "none"}
        path = self.tmp.file("nologin.yaml", h.to_yaml(h.gateway_config(self.tmp, lst)) + "\n")
        r = h.run_portcullis(["-t", "-c", path])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("listener=legacy protocol=pop3 tls=none plaintext_auth=never: no client can log in",
                      r.stderr)


    def test_check_refuses_a_pregreet_timeout_within_its_delay(self):
        lst = h.listener_config(h.free_port(), 1)
        lst["filters"] = [{"name": "pregreet", "timeout": "2s", "options": {"delay": "3s"}}]
        text = h.to_yaml(h.gateway_config(self.tmp, lst)) + "\n"
        path = self.tmp.file("pregreet.yaml", text)
        r = h.run_portcullis(["-t", "-c", path])
        self.assertEqual(r.returncode, 1, r.stderr)
        line = 1 + [l.strip() for l in text.splitlines()].index("timeout: 2s")
        self.assertIn("%s:%d: listeners[0].filters[0].timeout: must be longer than the pregreet filter's "
                      "delay (3000 ms)" % (path, line), r.stderr)
        path = self.tmp.file("pregreet-ok.yaml", text.replace("timeout: 2s", "timeout: 4s"))
        r = h.run_portcullis(["-t", "-c", path])
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
