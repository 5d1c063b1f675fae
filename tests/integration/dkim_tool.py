#!/usr/bin/python3
"""The independent DKIM tool of test_dkim.py: python3-dkim (dkimpy), run by Debian's /usr/bin/python3
where the package lives. Reads a message on stdin.

  dkim_tool.py sign KEY SELECTOR DOMAIN rsa-sha256|ed25519-sha256   -> the signed message on stdout
  dkim_tool.py verify RECORDS.json   -> one line per DKIM-Signature, top to bottom: "pass" or "fail"
                                        (RECORDS.json maps "sel._domainkey.dom." to the TXT text)
  dkim_tool.py arc-sign KEY SELECTOR DOMAIN SRV_ID   -> the message with a new ARC set on top (from
                                        the Authentication-Results of SRV_ID in it; RSA only)
  dkim_tool.py arc-verify RECORDS.json   -> "CV" ("pass", "fail", "none") and the reason, one line
"""
import json
import sys

import dkim


def main():
    msg = sys.stdin.buffer.read()
    if sys.argv[1] == "sign":
        key, sel, dom, alg = sys.argv[2:6]
        with open(key, "rb") as f:
            priv = f.read()
        sig = dkim.sign(msg, sel.encode(), dom.encode(), priv, canonicalize=(b"relaxed", b"relaxed"),
                        signature_algorithm=alg.encode(),
                        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
        sys.stdout.buffer.write(sig + msg)
        return 0
    if sys.argv[1] == "arc-sign":
        key, sel, dom, srv = sys.argv[2:6]
        with open(key, "rb") as f:
            priv = f.read()
        lines = dkim.arc_sign(msg, sel.encode(), dom.encode(), priv, srv.encode(),
                              include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
        if not lines:
            sys.stderr.write("no ARC set made (no Authentication-Results of %s)\n" % srv)
            return 1
        sys.stdout.buffer.write(b"".join(lines) + msg)
        return 0
    with open(sys.argv[2]) as f:
        records = json.load(f)

    def dnsfunc(name, timeout=5):
        n = name.decode() if isinstance(name, bytes) else name
        return records.get(n if n.endswith(".") else n + ".", "").encode()

    if sys.argv[1] == "arc-verify":
        cv, _, why = dkim.arc_verify(msg, dnsfunc=dnsfunc)
        print((cv or b"fail").decode(), why)
        return 0
    d = dkim.DKIM(msg)
    n = sum(1 for line in msg.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
            if line.lower().startswith(b"dkim-signature:"))
    for i in range(n):
        try:
            ok = d.verify(idx=i, dnsfunc=dnsfunc)
        except Exception as e:  # a bad signature or key is a failure, as for any verifier
            sys.stderr.write("signature %d: %s\n" % (i, e))
            ok = False
        print("pass" if ok else "fail")
    return 0


if __name__ == "__main__":
    sys.exit(main())
