"""Policies (policies/, docs/configuration.md "Policies") end to end through SMTP, with a recording
upstream and the testmark plugin (it adds 1.5 to each message's score): one policy per
transaction (a recipient under another policy is answered 452 4.5.3 and goes through in a new
transaction), a policy's thresholds replacing the listener's, deny.senders refused at RCPT,
allow lists turning the thresholds off, message_size at RCPT (MAIL's SIZE=) and at the end of
DATA; the file:line errors of -t and what `portcullis policy explain` prints.

Owns: a recording upstream and gateways per test, policy directories in the class's temp dir.
"""

import os
import unittest

import harness as h

PLUGIN = os.environ.get("PORTCULLIS_TEST_PLUGIN", "")

POLICIES = """\
# the listener's thresholds apply (tag 10): a score of 1.5 passes unflagged
- name: lax
  match: { recipient: [lax.test] }
- name: strict
  match: { recipient: [strict.test] }
  scores: { reject: 1 }
  deny: { senders: ["@spam.test", bad@client.test] }
- name: strict-friends
  match: { recipient: [strict.test], sender: [friend@client.test] }
  scores: { reject: 1 }
  allow: { senders: [friend@client.test] }
- name: small
  match: { recipient: [small.test] }
  message_size: 2K
- name: tagged
  match: { recipient: [tagged.test] }
  scores: { tag: 1 }
- name: lan
  match: { recipient: [lan.test] }
  scores: { reject: 1 }
  allow: { networks: [127.0.0.0/8] }
"""


@unittest.skipUnless(PLUGIN and os.path.exists(PLUGIN), "PORTCULLIS_TEST_PLUGIN (built by CMake) not set")
class Policies(h.GatewayTest):

    def policy_dir(self, name, files):
        d = self.tmp.sub(name)
        for fname, text in files.items():
            with open(os.path.join(d, fname), "w") as f:
                f.write(text)
        return d

    def start(self, policies=POLICIES):
        self.up = self.hostile("record")
        d = self.policy_dir(h.unique("pol"), {"10-test.yaml": policies})
        return self.gateway(self.up.port, top={"plugins": [PLUGIN], "policies": d},
                            scores={"tag": 10},
                            accepted_domains=["lax.test", "strict.test", "small.test", "lan.test",
                                              "tagged.test"],
                            filters=[{"name": "testmark", "timeout": "5s"}])

    def delivered(self, tag):
        return [m for m in self.up.complete_messages() if tag.encode() in m.data]

    def test_one_policy_per_transaction(self):
        gw = self.start()
        c = self.client(gw)
        self.assertCode(c.ehlo(), 250)
        self.assertCode(c.cmd("MAIL FROM:<s@client.test>"), 250)
        self.assertCode(c.cmd("RCPT TO:<a@lax.test>"), 250)
        r = c.cmd("RCPT TO:<b@strict.test>")
        self.assertCode(r, 452)
        self.assertEnhanced(r, "4.5.3")
        self.assertCode(c.cmd("RCPT TO:<c@lax.test>"), 250)
        tag = h.unique("split")
        self.assertCode(c.cmd("DATA"), 354)
        c.send(h.dot_stuff(h.simple_message(subject=tag)) + b".\r\n")
        self.assertCode(c.read_reply(), 250)
        # the client sends the refused recipient in a transaction of its own
        self.assertCode(c.cmd("MAIL FROM:<s@client.test>"), 250)
        self.assertCode(c.cmd("RCPT TO:<b@strict.test>"), 250)
        c.cmd("RSET")
        got = self.delivered(tag)
        self.assertEqual(len(got), 1)
        self.assertEqual([r.split("<", 1)[1].split(">")[0] for r in got[0].rcpts], ["a@lax.test", "c@lax.test"])
        self.assertIn("event=policy-split to=<b@strict.test> policy=strict transaction_policy=lax",
                      gw.log_text())

    def test_the_policys_thresholds_replace_the_listeners(self):
        gw = self.start()
        lax = h.unique("lax")
        reps, ok = h.attempt(gw.port, "s@client.test", ["a@lax.test"], h.simple_message(subject=lax))
        self.assertTrue(ok, reps)
        self.assertIn(b"X-Spam-Status: No, score=1.50 required=10.00", self.delivered(lax)[0].data)
        strict = h.unique("strict")
        reps, ok = h.attempt(gw.port, "s@client.test", ["a@strict.test"], h.simple_message(subject=strict))
        self.assertFalse(ok)
        self.assertCode(reps[-1], 550)
        self.assertEnhanced(reps[-1], "5.7.1")
        self.assertEqual(self.delivered(strict), [])
        self.assertIn("event=policy policy=strict allowed=no tag=10 quarantine=0 reject=1", gw.log_text())
        tagged = h.unique("tagged")
        reps, ok = h.attempt(gw.port, "s@client.test", ["a@tagged.test"], h.simple_message(subject=tagged))
        self.assertTrue(ok, reps)
        head = self.delivered(tagged)[0].data.split(b"\r\n\r\n", 1)[0]
        self.assertIn(b"X-Spam-Status: Yes, score=1.50 required=1.00", head)
        self.assertIn(b"X-Spam-Flag: YES", head)

    def test_deny_senders_refused_at_rcpt(self):
        gw = self.start()
        for sender in ("x@spam.test", "bad@client.test"):
            c = self.client(gw)
            self.assertCode(c.ehlo(), 250)
            self.assertCode(c.cmd("MAIL FROM:<%s>" % sender), 250)
            r = c.cmd("RCPT TO:<a@strict.test>")
            self.assertCode(r, 550)
            self.assertEnhanced(r, "5.7.1")
            self.assertCode(c.cmd("RCPT TO:<a@lax.test>"), 250)  # another policy: no deny list
            c.close()
        self.assertIn("event=policy-deny", gw.log_text())

    def test_allow_turns_the_thresholds_off(self):
        gw = self.start()
        # allow.senders: the more specific policy (two keys) applies to friend@client.test
        tag = h.unique("friend")
        reps, ok = h.attempt(gw.port, "friend@client.test", ["a@strict.test"], h.simple_message(subject=tag))
        self.assertTrue(ok, reps)
        self.assertEqual(len(self.delivered(tag)), 1)
        head = self.delivered(tag)[0].data.split(b"\r\n\r\n", 1)[0]
        self.assertIn(b"X-Spam-Status: No, score=1.50", head)  # not flagged: no thresholds
        self.assertNotIn(b"X-Spam-Flag", head)
        # allow.networks: the test client is 127.0.0.1
        tag = h.unique("lan")
        reps, ok = h.attempt(gw.port, "s@client.test", ["a@lan.test"], h.simple_message(subject=tag))
        self.assertTrue(ok, reps)
        self.assertEqual(len(self.delivered(tag)), 1)
        log = gw.log_text()
        self.assertIn("event=policy policy=strict-friends allowed=sender", log)
        self.assertIn("event=policy policy=lan allowed=network", log)
        self.assertIn("action=none reason=allowed", log)

    def test_message_size(self):
        gw = self.start()
        c = self.client(gw)
        self.assertCode(c.ehlo(), 250)
        self.assertCode(c.cmd("MAIL FROM:<s@client.test> SIZE=5000"), 250)
        r = c.cmd("RCPT TO:<a@small.test>")
        self.assertCode(r, 552)
        self.assertEnhanced(r, "5.3.4")
        self.assertCode(c.cmd("RCPT TO:<a@lax.test>"), 250)  # no limit of its own: the listener's
        c.cmd("RSET")
        c.close()
        big = h.unique("big")
        reps, ok = h.attempt(gw.port, "s@client.test", ["a@small.test"],
                             h.simple_message(subject=big, body="x" * 70 + "\r\n" * 1 + ("y" * 70 + "\r\n") * 60))
        self.assertFalse(ok)
        self.assertCode(reps[-1], 552)
        self.assertEnhanced(reps[-1], "5.3.4")
        small = h.unique("small")
        reps, ok = h.attempt(gw.port, "s@client.test", ["a@small.test"], h.simple_message(subject=small))
        self.assertTrue(ok, reps)
        self.assertEqual(self.delivered(big), [])

    # -- -t and explain

    def config_with(self, files, **top):
        d = self.policy_dir(h.unique("pol"), files)
        cfg = h.gateway_config(self.tmp, h.listener_config(h.free_port(), 25, name="mx"),
                               policies=d, **top)
        return self.tmp.file(h.unique("cfg") + ".yaml", h.to_yaml(cfg)), d

    def test_t_names_file_and_line(self):
        path, d = self.config_with({"10-a.yaml": "- name: a\n  match:\n    recipent: [x.test]\n"})
        out = h.run_portcullis(["-t", "-c", path])
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("%s/10-a.yaml:3: match.recipent: unknown key" % d, out.stderr)
        path, d = self.config_with({"10-a.yaml": "- name: a\n  match: { recipient: [x.test] }\n",
                                    "20-b.yaml": "- name: b\n  match: { recipient: [x.test] }\n"})
        out = h.run_portcullis(["-t", "-c", path])
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("%s/20-b.yaml:1: policy b and policy a (%s/10-a.yaml:1) have the same priority"
                      % (d, d), out.stderr)
        path, d = self.config_with({"10-a.yaml": "- name: a\n  match: { listener: nosuch }\n"})
        out = h.run_portcullis(["-t", "-c", path])
        self.assertIn("10-a.yaml:2: policy a: match.listener: no listener is named nosuch", out.stderr)
        path, d = self.config_with({"10-a.yaml": "- name: big\n  message_size: 20M\n"})
        out = h.run_portcullis(["-t", "-c", path])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("warning: policy=big (%s/10-a.yaml:1) message_size=20971520 is above listener=mx "
                      "limits.message_size=10485760, which applies" % d, out.stderr)
        d = self.policy_dir(h.unique("pol"), {"10-a.yaml": "- name: box\n  match: { listener: box }\n"})
        box = h.listener_config(h.free_port(), 143, name="box", protocol="imap",
                                upstream={"address": "127.0.0.1:143"})
        for k in ("smtp", "limits", "accepted_domains"):
            box.pop(k, None)
        path = self.tmp.file(h.unique("cfg") + ".yaml", h.to_yaml(h.gateway_config(self.tmp, box, policies=d)))
        out = h.run_portcullis(["-t", "-c", path])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("warning: policy=box (%s/10-a.yaml:1) listener=box: policies apply to SMTP "
                      "listeners only" % d, out.stderr)
        path, d = self.config_with({"10-a.yaml": POLICIES})
        out = h.run_portcullis(["-t", "-c", path])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertNotIn("warning: policy=", out.stderr)
        self.assertIn("policies=6 from %s" % d, out.stderr)

    def test_explain(self):
        path, d = self.config_with({"10-a.yaml": POLICIES})
        out = h.run_portcullis(["policy", "explain", "-c", path, "--listener", "mx", "--from",
                                "friend@client.test", "--rcpt", "a@strict.test", "--ip", "192.0.2.7"])
        self.assertEqual(out.returncode, 0, out.stderr)
        f = "%s/10-a.yaml" % d
        self.assertIn("case: listener=mx direction=inbound from=<friend@client.test>", out.stdout)
        self.assertIn("policy: strict-friends (%s:8)\n" % f, out.stdout)  # lines of POLICIES
        self.assertIn("  scores.reject: 1 (%s:10)\n" % f, out.stdout)
        self.assertIn("  allow.senders: friend@client.test (%s:11)\n" % f, out.stdout)
        self.assertIn("  scores.tag: (not set: the listener's)\n", out.stdout)
        self.assertIn("  also matched: strict (%s:4), lost: more match keys\n" % f, out.stdout)
        self.assertIn("  limits.message_size: 10485760 (%s:" % path, out.stdout)
        out = h.run_portcullis(["policy", "explain", "-c", path, "--listener", "mx", "--from", "<>",
                                "--rcpt", "a@nowhere.test", "--ip", "127.0.0.1", "--user", "bob"])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("direction=submission", out.stdout)
        self.assertIn("policy: none", out.stdout)
        out = h.run_portcullis(["policy", "explain", "-c", path, "--listener", "nope", "--from", "a@b",
                                "--rcpt", "c@d", "--ip", "192.0.2.1"])
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("no listener is named nope", out.stderr)


EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "policies", "examples")


class PolicyExamples(h.GatewayTest):
    """policies/examples/: each set loads with -t under the listeners it names, and its comments'
    claims hold in `policy explain`."""

    def check(self, example, listeners):
        d = os.path.realpath(os.path.join(EXAMPLES, example))
        cfg = h.gateway_config(self.tmp, listeners, policies=d)
        path = self.tmp.file(h.unique(example) + ".yaml", h.to_yaml(cfg))
        out = h.run_portcullis(["-t", "-c", path])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("policies=", out.stderr)
        return path, d

    def explain(self, path, listener, sender, rcpt, ip, user=None):
        args = ["policy", "explain", "-c", path, "--listener", listener, "--from", sender,
                "--rcpt", rcpt, "--ip", ip] + (["--user", user] if user else [])
        out = h.run_portcullis(args)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout

    def policy_of(self, text):
        return text.split("policy: ", 1)[1].split(" ", 1)[0].strip()

    def test_edge_firewall(self):
        lst = h.listener_config(h.free_port(), 25, name="mx", accepted_domains=["example.org"],
                                scores={"tag": 5, "reject": 10}, limits={"message_size": "50M"})
        path, d = self.check("edge-firewall", lst)
        f = d + "/10-edge.yaml"
        out = self.explain(path, "mx", "a@sender.example", "bob@example.org", "203.0.113.5")
        self.assertEqual(self.policy_of(out), "example-org")
        self.assertIn("message_size: 26214400 (%s:" % f, out)
        self.assertIn("deny.senders: @spam.example, newsletter@junk.example (%s:" % f, out)
        out = self.explain(path, "mx", "a@sender.example", "abuse@example.org", "203.0.113.5")
        self.assertEqual(self.policy_of(out), "role-accounts")
        self.assertIn("scores.reject: 20 (%s:" % f, out)
        self.assertIn("lost: recipient matched by address, not domain", out)
        out = self.explain(path, "mx", "a@partner.example", "bob@example.org", "198.51.100.20")
        self.assertEqual(self.policy_of(out), "partner-servers")
        self.assertIn("allow.networks: 198.51.100.0/24 (%s:" % f, out)
        self.assertIn("also matched: example-org", out)
        self.assertIn("lost: more match keys", out)

    def test_enterprise_exchange(self):
        mx = h.listener_config(h.free_port(), 25, name="mx", accepted_domains=["corp.example"],
                               trusted_networks=["10.0.10.0/24"])
        out_l = h.listener_config(h.free_port(), 587, name="outbound",
                                  trusted_networks=["10.0.10.0/24"])
        path, d = self.check("enterprise-exchange", [mx, out_l])
        out = self.explain(path, "mx", "x@internet.example", "staff@corp.example", "203.0.113.9")
        self.assertIn("direction=inbound", out)
        self.assertEqual(self.policy_of(out), "inbound")
        self.assertIn("scores.quarantine: 8 (%s/10-inbound.yaml:" % d, out)
        out = self.explain(path, "mx", "x@internet.example", "ceo@corp.example", "203.0.113.9")
        self.assertEqual(self.policy_of(out), "inbound-executives")
        self.assertIn("scores.reject: 8 (%s/10-inbound.yaml:" % d, out)
        out = self.explain(path, "outbound", "staff@corp.example", "x@internet.example",
                           "203.0.113.50", user="staff")
        self.assertIn("direction=submission", out)
        self.assertEqual(self.policy_of(out), "outbound-users")
        self.assertIn("scores.reject: 20 (%s/20-outbound.yaml:" % d, out)
        out = self.explain(path, "outbound", "staff@corp.example", "x@internet.example", "10.0.10.4")
        self.assertEqual(self.policy_of(out), "outbound-exchange")
        self.assertIn("lost: longer network prefix", out)
        # Exchange's address on the inbound listener is trusted: submission, no inbound policy
        out = self.explain(path, "mx", "staff@corp.example", "staff@corp.example", "10.0.10.4")
        self.assertIn("policy: none", out)

    def test_tls_front(self):
        lst = h.listener_config(h.free_port(), 25, name="legacy", tls="implicit", pki=self.pki,
                                accepted_domains=["legacy.example"], require_tls=True)
        path, d = self.check("tls-front", lst)
        f = d + "/10-legacy.yaml"
        out = self.explain(path, "legacy", "a@b.example", "user@legacy.example", "203.0.113.1")
        self.assertEqual(self.policy_of(out), "legacy-default")
        self.assertIn("message_size: 10485760 (%s:" % f, out)
        out = self.explain(path, "legacy", "a@b.example", "scans@legacy.example", "192.0.2.10")
        self.assertEqual(self.policy_of(out), "scanner-mailbox")
        self.assertIn("message_size: 31457280 (%s:" % f, out)
        self.assertIn("also matched: office", out)
        out = self.explain(path, "legacy", "a@b.example", "user@legacy.example", "192.0.2.10")
        self.assertEqual(self.policy_of(out), "office")
        self.assertIn("allow.networks: 192.0.2.0/26 (%s:" % f, out)


if __name__ == "__main__":
    unittest.main()
