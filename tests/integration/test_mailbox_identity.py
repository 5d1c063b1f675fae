"""The client's real address reaches a real Dovecot behind the gateway: an outbound PROXY v2 header
(Dovecot `haproxy = yes` listeners, for IMAP and POP3) and IMAP `ID ("x-originating-ip" ...)`
(Dovecot `login_trusted_networks`). Checked where an admin would look: Dovecot's own login log line
shows the client's address (rip=127.0.0.5), not the gateway's.

Owns: one Dovecot (imap + pop3 listeners, two of them in haproxy mode) and gateways per test.
"""

import os
import unittest

import harness as h

USERS = h.Dovecot.users()
ALICE_PW = USERS["alice"]
CLIENT = "127.0.0.5"


def identity_conf(directory, imap_port, imap_proxy_port, pop3_proxy_port):
    text = ("mail_location = maildir:~/Maildir\n"
            "haproxy_trusted_networks = 127.0.0.0/8\n"
            "login_trusted_networks = 127.0.0.0/8\n"
            "service imap-login {\n"
            "  inet_listener imap {\n    address = 127.0.0.1\n    port = %d\n  }\n"
            "  inet_listener imap_haproxy {\n    address = 127.0.0.1\n    port = %d\n"
            "    haproxy = yes\n  }\n"
            "  inet_listener imaps {\n    port = 0\n  }\n}\n"
            "service pop3-login {\n"
            "  inet_listener pop3 {\n    address = 127.0.0.1\n    port = %d\n    haproxy = yes\n  }\n"
            "  inet_listener pop3s {\n    port = 0\n  }\n}\n"
            % (imap_port, imap_proxy_port, pop3_proxy_port))
    path = os.path.join(str(directory), "dovecot-identity.conf")
    with open(path, "w") as f:
        f.write(text)
    return "!include " + path


@unittest.skipUnless(h.have_tool("dovecot"), "dovecot not installed")
class MailboxIdentity(h.GatewayTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.imap_port, cls.imap_proxy_port, cls.pop3_proxy_port = (h.free_port() for _ in range(3))
        cls.dove = h.Dovecot(cls.tmp, protocols="imap pop3",
                             extra_conf=identity_conf(cls.tmp.sub("dove-id"), cls.imap_port,
                                                      cls.imap_proxy_port, cls.pop3_proxy_port))
        cls.dove.start()
        for p in (cls.imap_port, cls.imap_proxy_port, cls.pop3_proxy_port):
            h.wait_port(p, timeout=15)

    @classmethod
    def tearDownClass(cls):
        cls.dove.stop()
        super().tearDownClass()

    def setUp(self):
        if not h.loopback_alias_ok(CLIENT):
            self.skipTest("cannot bind %s" % CLIENT)
        h.seed_maildir(self.dove, "alice", [b"Subject: id\r\n\r\nhello\r\n"])

    def start(self, lst):
        cfg = h.gateway_config(self.tmp, lst)
        gw = h.Gateway(self.tmp, cfg)
        self.addCleanup(self._stop_gateway, gw)
        gw.start()
        return gw

    def logins_from_client(self, proto):
        """Dovecot's login lines for alice that name the client's own address."""
        return len([line for line in self.dove.log_text().splitlines()
                    if "%s-login:" % proto in line and "Login: user=<alice>" in line
                    and "rip=%s," % CLIENT in line])

    def dovecot_saw_client(self, proto, before):
        return h.wait_for(lambda: self.logins_from_client(proto) > before, timeout=10)

    def assertImapLoginShowsClient(self, upstream_port, identity):
        """A gateway (client_identity `identity`) in front of Dovecot's IMAP listener on
        upstream_port: alice logs in from CLIENT and Dovecot's login line names CLIENT."""
        port = h.free_port()
        gw = self.start(h.imap_listener_config(
            port, upstream_port, mailbox={"plaintext_auth": "allow"},
            upstream={"client_identity": identity}, trusted_networks=["127.0.0.1/32"]))
        before = self.logins_from_client("imap")
        c = h.ImapClient(gw.port, source=CLIENT)
        self.addCleanup(c.close)
        r = c.cmd('LOGIN alice "%s"' % ALICE_PW)
        self.assertIn(b" OK ", r[-1], r)
        self.assertTrue(self.dovecot_saw_client("imap", before), self.dove.log_text()[-2000:])

    def test_imap_proxy_v2(self):
        self.assertImapLoginShowsClient(self.imap_proxy_port, "proxy")

    def test_imap_id_x_originating_ip(self):
        self.assertImapLoginShowsClient(self.imap_port, "imap_id")

    def test_pop3_proxy_v2(self):
        port = h.free_port()
        gw = self.start(h.pop3_listener_config(
            port, self.pop3_proxy_port, upstream={"client_identity": "proxy"},
            mailbox={"plaintext_auth": "allow"}, trusted_networks=["127.0.0.1/32"]))
        before = self.logins_from_client("pop3")
        c = h.Pop3Client(gw.port, source=CLIENT)
        self.addCleanup(c.close)
        st = c.login("alice", ALICE_PW)
        self.assertTrue(st is not None and st.startswith(b"+OK"), st)
        c.cmd("QUIT")
        self.assertTrue(self.dovecot_saw_client("pop3", before), self.dove.log_text()[-2000:])


if __name__ == "__main__":
    unittest.main()
