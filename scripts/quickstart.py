#!/usr/bin/env python3
"""Runs the gateway in front of a private Postfix on loopback (see scripts/quickstart).

Uses the integration-test harness to start Postfix from tests/fixtures/postfix and to make a
throw-away CA and server certificate; then runs portcullis in the foreground until Ctrl-C."""

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
    work = harness.TempDir(prefix="portcullis-quickstart-")
    pki = harness.make_pki(work.sub("pki"))
    postfix = harness.Postfix(str(work), tls=False).start()
    spool = work.sub("spool")
    config = f"""# Written by scripts/quickstart; see etc/portcullis.yaml for every key.
workers: auto
log: {{ target: stderr, level: info }}
spool: {{ directory: {spool} }}
listeners:
  - name: smtps
    protocol: smtp
    listen: ["127.0.0.1:{smtps}"]
    hostname: gateway.example.test
    tls: {{ mode: implicit, certificates: [ {{ cert: {pki['cert']}, key: {pki['key']} }} ] }}
    accepted_domains: [ example.test ]
    upstream: {{ address: "127.0.0.1:{postfix.port}", client_identity: xclient }}
    filters:
      - name: pregreet
        options: {{ delay: 0s }}
  - name: submission
    protocol: smtp
    listen: ["127.0.0.1:{smtp}"]
    hostname: gateway.example.test
    tls: {{ mode: starttls, certificates: [ {{ cert: {pki['cert']}, key: {pki['key']} }} ] }}
    accepted_domains: [ example.test ]
    upstream: {{ address: "127.0.0.1:{postfix.port}", client_identity: xclient }}
"""
    path = work.file("portcullis.yaml", config)
    print(f"""
Portcullis is starting in front of Postfix (127.0.0.1:{postfix.port}).

  implicit TLS:  swaks --server 127.0.0.1:{smtps} --tls-on-connect --to alice@example.test
  STARTTLS:      swaks --server 127.0.0.1:{smtp} --tls --to bob@example.test
  verify TLS:    openssl s_client -connect 127.0.0.1:{smtps} -CAfile {pki['ca']}

Delivered mail: {postfix.mail}/example.test/<user>/new/
Configuration:  {path}
Ctrl-C stops the gateway and Postfix.
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
        postfix.stop()
        work.cleanup()


if __name__ == "__main__":
    main()
