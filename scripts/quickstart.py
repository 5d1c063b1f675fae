#!/usr/bin/env python3
"""Runs the gateway in front of a private Postfix and Dovecot on loopback (see scripts/quickstart).

Uses the integration-test harness to start Postfix from tests/fixtures/postfix and Dovecot from
tests/fixtures/dovecot (reading the Maildirs Postfix delivers into), a private Unbound holding the
example's DNS list, and to make a throw-away CA and server certificate and a small ClamAV database
(the EICAR test signatures); then runs portcullis in the foreground, with the clamav and dnsbl
filters on, until Ctrl-C or SIGTERM."""

import base64
import hashlib
import os
import signal
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import harness  # noqa: E402


def _stop(signum, frame):
    raise KeyboardInterrupt


def main():
    signal.signal(signal.SIGTERM, _stop)
    binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/gateway/portcullis")
    smtps = int(os.environ.get("PORTCULLIS_SMTPS_PORT", "2465"))
    smtp = int(os.environ.get("PORTCULLIS_SMTP_PORT", "2587"))
    imaps = int(os.environ.get("PORTCULLIS_IMAPS_PORT", "2993"))
    pop3s = int(os.environ.get("PORTCULLIS_POP3S_PORT", "2995"))
    work = harness.TempDir(prefix="portcullis-quickstart-")
    pki = harness.make_pki(work.sub("pki"))
    postfix = harness.Postfix(str(work), tls=False).start()
    # Dovecot serves what Postfix delivered (as the same unprivileged user), plaintext on loopback:
    # the gateway adds the TLS.
    d_imap, d_pop3 = harness.free_port(), harness.free_port()
    mailboxes = os.path.join(postfix.mail, "example.test")
    dovecot_conf = ("\nmail_location = maildir:%s/%%n\n"
                    "service imap-login {\n  inet_listener imap {\n    address = 127.0.0.1\n"
                    "    port = %d\n  }\n  inet_listener imaps {\n    port = 0\n  }\n}\n"
                    "service pop3-login {\n  inet_listener pop3 {\n    address = 127.0.0.1\n"
                    "    port = %d\n  }\n  inet_listener pop3s {\n    port = 0\n  }\n}\n#"
                    % (mailboxes, d_imap, d_pop3))
    dovecot = harness.Dovecot(str(work), protocols="imap pop3", extra_conf=dovecot_conf)
    try:
        dovecot.start()
        harness.wait_port(d_imap, proc=dovecot.proc)
        harness.wait_port(d_pop3, proc=dovecot.proc)
    except Exception:
        dovecot.stop()
        postfix.stop()
        raise
    # The filters' world: a DNS list that lists 127.0.0.2 (send from that address to see it), a
    # ClamAV database with the EICAR test signatures (send the EICAR file to see the 554), and a
    # DKIM key for example.test with its record (the submission listener signs with it; a message
    # signed with it verifies on the smtps listener), SPF and DMARC records for example.test.
    dkim_key = os.path.join(work.sub("dkim"), "example.test.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", dkim_key], check=True, capture_output=True)
    pub = base64.b64encode(subprocess.run(["openssl", "pkey", "-in", dkim_key, "-pubout", "-outform", "DER"],
                                          check=True, capture_output=True).stdout).decode()
    record = "v=DKIM1; k=rsa; p=" + pub
    dns = harness.Unbound(str(work), records=[
        "2.0.0.127.bl.example.test. 300 IN A 127.0.0.2",
        "bl.example.test. 300 IN TXT \"the quickstart example block list\"",
        "example.test. 300 IN TXT \"v=spf1 ip4:127.0.0.0/8 -all\"",
        "_dmarc.example.test. 300 IN TXT \"v=DMARC1; p=none\"",
        "gw._domainkey.example.test. 300 IN TXT " + " ".join(
            '"%s"' % record[i:i + 200] for i in range(0, len(record), 200))]).start()
    # A message signed with that key by an independent implementation (python3-dkim), to send in.
    sample = ("From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: signed sample\r\n"
              "Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <signed-sample@example.test>\r\n\r\n"
              "This message carries a DKIM signature.\r\n").encode()
    signed_file = None
    tool = os.path.join(REPO, "tests", "integration", "dkim_tool.py")
    signed = subprocess.run(["/usr/bin/python3", tool, "sign", dkim_key, "gw", "example.test", "rsa-sha256"],
                            input=sample, capture_output=True)
    if signed.returncode == 0:
        signed_file = work.file("signed.eml", signed.stdout)
    eicar = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
    clamdb = work.sub("clamav")
    work.file("clamav/eicar.hdb", "%s:%d:Eicar-Test-Signature\n" % (hashlib.md5(eicar).hexdigest(), len(eicar)))
    work.file("clamav/eicar.ndb", "Eicar-Test-Signature:0:*:%s\n" % eicar[:40].hex())
    eicar_file = work.file("eicar.com", eicar)
    users = harness.Dovecot.users()
    spool = work.sub("spool")
    config = f"""# Written by scripts/quickstart; see etc/portcullis.yaml for every key.
workers: auto
log: {{ target: stderr, level: info }}
spool: {{ directory: {spool} }}
resolver: {{ servers: ["{dns.server}"] }}
state: {{ backend: lmdb, path: {work.sub("state")} }}
listeners:
  - name: smtps
    protocol: smtp
    listen: ["127.0.0.1:{smtps}"]
    hostname: gateway.example.test
    tls: {{ mode: implicit, certificates: [ {{ cert: {pki['cert']}, key: {pki['key']} }} ] }}
    accepted_domains: [ example.test ]
    upstream: {{ address: "127.0.0.1:{postfix.port}", client_identity: xclient }}
    scores: {{ tag: 5, reject: 50 }}
    filters:
      - name: pregreet
        options: {{ delay: 0s }}
      - name: ratelimit
        options: {{ limits: [ {{ count: connections, per: client, max: 600, window: 1m }} ], exempt_trusted: false }}
      - name: spf
      - name: dkim
      - name: arc
        options: {{ seal: {{ domain: example.test, selector: gw, key: {dkim_key} }} }}
      - name: dmarc
      - name: dnsbl
        options: {{ zones: [ {{ zone: bl.example.test, weight: 6 }} ] }}
      - name: clamav
        timeout: 2m
        options: {{ database: {clamdb} }}
  - name: submission
    protocol: smtp
    listen: ["127.0.0.1:{smtp}"]
    hostname: gateway.example.test
    tls: {{ mode: starttls, certificates: [ {{ cert: {pki['cert']}, key: {pki['key']} }} ] }}
    accepted_domains: [ example.test ]
    upstream: {{ address: "127.0.0.1:{postfix.port}", client_identity: xclient }}
    filters:
      - name: clamav
        timeout: 2m
        options: {{ database: {clamdb} }}
      - name: dkim
        options: {{ verify: false, sign: [ {{ domain: example.test, selector: gw, key: {dkim_key} }} ] }}
  - name: imaps
    protocol: imap
    listen: ["127.0.0.1:{imaps}"]
    hostname: gateway.example.test
    tls: {{ mode: implicit, certificates: [ {{ cert: {pki['cert']}, key: {pki['key']} }} ] }}
    upstream: {{ address: "127.0.0.1:{d_imap}" }}
    filters:
      - name: clamav
        timeout: 2m
        options: {{ database: {clamdb} }}
  - name: pop3s
    protocol: pop3
    listen: ["127.0.0.1:{pop3s}"]
    hostname: gateway.example.test
    tls: {{ mode: implicit, certificates: [ {{ cert: {pki['cert']}, key: {pki['key']} }} ] }}
    upstream: {{ address: "127.0.0.1:{d_pop3}" }}
    filters:
      - name: clamav
        timeout: 2m
        options: {{ database: {clamdb} }}
"""
    path = work.file("portcullis.yaml", config)
    print(f"""
Portcullis is starting in front of Postfix (127.0.0.1:{postfix.port}) and Dovecot
(imap 127.0.0.1:{d_imap}, pop3 127.0.0.1:{d_pop3}).

  send (implicit TLS):  swaks --server 127.0.0.1:{smtps} --tls-on-connect --to alice@example.test
  send (STARTTLS):      swaks --server 127.0.0.1:{smtp} --tls --to bob@example.test
  read (IMAPS):         curl --cacert {pki['ca']} -u alice:{users['alice']} imaps://localhost:{imaps}/INBOX/;UID=1
  read (POP3S):         curl --cacert {pki['ca']} -u alice:{users['alice']} pop3s://localhost:{pop3s}/1
  verify TLS:           openssl s_client -connect 127.0.0.1:{smtps} -CAfile {pki['ca']}

The filters at work:
  a virus (554):        swaks --server 127.0.0.1:{smtps} --tls-on-connect --to alice@example.test --attach {eicar_file}
  a listed client:      swaks --server 127.0.0.1:{smtps} --tls-on-connect --to alice@example.test --local-interface 127.0.0.2
                        then read it back: X-Spam-Flag: YES, X-Spam-Status: ... DNSBL_BL_EXAMPLE_TEST(6.00)
  signed on the way out: swaks --server 127.0.0.1:{smtp} --tls --from alice@example.test --to bob@example.test
                        (the submission listener adds DKIM-Signature: d=example.test; s=gw)
  verified on the way in: swaks --server 127.0.0.1:{smtps} --tls-on-connect --to alice@example.test --data {signed_file}
                        then read it back: Authentication-Results: gateway.example.test; dkim=pass ...
                        and the gateway's ARC set on top (ARC-Seal: i=1; cv=none; d=example.test)

Users: alice, bob (passwords in {dovecot.users_path}).
Delivered mail: {mailboxes}/<user>/new/
Configuration:  {path}
Ctrl-C stops the gateway, Dovecot and Postfix.
""", flush=True)
    gw = subprocess.Popen([binary, "-c", path])
    try:
        gw.wait()
    except KeyboardInterrupt:
        gw.send_signal(signal.SIGTERM)
        try:
            gw.wait(timeout=35)
        except subprocess.TimeoutExpired:
            gw.kill()
    finally:
        dovecot.stop()
        postfix.stop()
        dns.stop()
        work.cleanup()


if __name__ == "__main__":
    main()
