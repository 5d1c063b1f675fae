"""The rules filter end to end: PCRE2 rules on a decoded header (an RFC 2047 Subject), on the
decoded text of text/plain and text/html parts (base64 and quoted-printable, another charset), on
the raw message; attachment rules (a denied extension, also as the last of a double extension, is
refused; an executable declared as a PDF is found by libmagic); the names inside archive
attachments read with libarchive (a zip built here with invoice.exe is refused, one with only
report.pdf arrives; clamav-testfiles' clam.zip, clam.7z, clam.tar.gz, clam.cab; a tar.gz; a nested
zip is not opened; an encrypted, a broken and an over-long archive give ARCHIVE_UNREADABLE); MIME
anomalies; a runaway pattern held by the match limits; a pattern that does not compile refused at
-t with its line.
Checked where a user looks: the reply, X-Spam-Status upstream, the log.

Owns: a recording upstream and a gateway per test.
"""

import base64
import io
import os
import re
import tarfile
import time
import unittest
import zipfile

import harness as h

RULES = [
    {"symbol": "SUBJ_CASINO", "score": 3, "pattern": "(?i)casino", "header": "Subject"},
    {"symbol": "BODY_PILLS", "score": 4, "pattern": "(?i)cheap pills", "body": True},
    {"symbol": "BODY_UMLAUT", "score": 1.5, "pattern": "Grüße", "body": True},
    {"symbol": "RAW_MAILER", "score": 2, "pattern": "(?m)^X-Mailer: BulkBlaster", "raw": True},
]
CLAM_EXE = "/usr/share/clamav-testfiles/clam.exe"
CLAM_DIR = "/usr/share/clamav-testfiles"


def zip_of(files):
    """A zip built here: {name: bytes}."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def attached(name, data, ctype="application/zip"):
    """A base64 attachment part for mime()."""
    body = base64.encodebytes(data).decode().replace("\n", "\r\n")
    return ("Content-Type: %s; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\n"
            "Content-Transfer-Encoding: base64\r\n" % (ctype, name, name), body)


def mime(tag, parts, extra=""):
    out = ("From: <s@client.test>\r\nTo: <alice@example.test>\r\nSubject: %s\r\n"
           "Message-ID: <%s@client.test>\r\nMIME-Version: 1.0\r\n%s"
           "Content-Type: multipart/mixed; boundary=\"bnd\"\r\n\r\n" % (tag, re.sub(r"\W", "", tag), extra))
    for headers, body in parts:
        out += "--bnd\r\n" + headers + "\r\n" + body
    return (out + "--bnd--\r\n").encode()


class Rules(h.GatewayTest):

    def start(self, options, scores=None):
        self.up = self.hostile("record")
        over = {"filters": [{"name": "rules", "timeout": "10s", "options": options}]}
        if scores:
            over["scores"] = scores
        return self.gateway(self.up.port, **over)

    def send(self, gw, message):
        return h.attempt(gw.port, "s@client.test", ["alice@example.test"], message)

    def head_of(self, tag):
        got = [m for m in self.up.complete_messages() if tag.encode() in m.data
               or base64.b64encode(("Best CASINO " + tag).encode()) in m.data]
        self.assertEqual(len(got), 1)
        return h.unfold(got[0].data.split(b"\r\n\r\n", 1)[0])

    def test_header_body_and_raw_rules(self):
        gw = self.start({"rules": RULES}, scores={"tag": 5})
        tag = h.unique("rules")
        subject = "=?UTF-8?B?%s?=" % base64.b64encode(("Best CASINO " + tag).encode()).decode()
        body = base64.encodebytes(("Buy cheap pills now. %s\n" % tag).encode()).decode().replace("\n", "\r\n")
        qp = "Viele Gr=C3=BC=C3=9Fe aus Berlin=\r\n\r\n"
        msg = mime(subject, [("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n", body),
                             ("Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n", qp)],
                   extra="X-Mailer: BulkBlaster 2.0\r\n")
        reps, ok = self.send(gw, msg)
        self.assertTrue(ok, reps)
        head = self.head_of(tag)
        for sym in (b"SUBJ_CASINO(3.00)", b"BODY_PILLS(4.00)", b"BODY_UMLAUT(1.50)", b"RAW_MAILER(2.00)"):
            self.assertIn(sym, head)
        self.assertIn(b"X-Spam-Status: Yes, score=10.50", head)
        self.assertIn(b"X-Spam-Flag: YES", head)

    def test_clean_message_matches_nothing(self):
        gw = self.start({"rules": RULES})
        tag = h.unique("clean")
        reps, ok = self.send(gw, mime(tag, [("Content-Type: text/plain\r\n", "Lunch at noon?\r\n")]))
        self.assertTrue(ok, reps)
        self.assertNotIn(b"X-Spam-Status", self.head_of(tag))
        self.assertNotIn("rules=hit", gw.log_text())

    def test_denied_extension_and_double_extension(self):
        gw = self.start({"attachments": {"deny_extensions": ["exe", ".scr"]}})
        for name, sym in (("setup.exe", "ATTACH_DENIED_EXT"), ("invoice.pdf.exe", "ATTACH_DOUBLE_EXT"),
                          ("SCREEN.SCR", "ATTACH_DENIED_EXT")):
            tag = h.unique("att")
            reps, ok = self.send(gw, mime(tag, [
                ("Content-Type: text/plain\r\n", "See attached.\r\n"),
                ("Content-Type: application/octet-stream; name=\"%s\"\r\n"
                 "Content-Disposition: attachment; filename=\"%s\"\r\n"
                 "Content-Transfer-Encoding: base64\r\n" % (name, name), "TVqQAAMAAAAEAAAA\r\n")]))
            with self.subTest(name=name):
                self.assertFalse(ok)
                self.assertCode(reps[-1], 554)
                self.assertEnhanced(reps[-1], "5.7.1")
                self.assertIn("Attachment type not allowed: %s" % name, reps[-1].text)
                self.assertEqual([m for m in self.up.complete_messages() if tag.encode() in m.data], [])
                self.assertIn("symbol=%s" % sym, gw.log_text())
        # a permitted name goes through
        tag = h.unique("ok")
        reps, ok = self.send(gw, mime(tag, [("Content-Type: application/pdf; name=\"a.pdf\"\r\n"
                                             "Content-Disposition: attachment; filename=\"a.pdf\"\r\n",
                                             "%PDF-1.4\r\n")]))
        self.assertTrue(ok, reps)

    @unittest.skipUnless(os.path.exists(CLAM_EXE), "clamav-testfiles not installed")
    def test_executable_declared_as_pdf(self):
        gw = self.start({"attachments": {"check_types": True, "type_score": 4}})
        with open(CLAM_EXE, "rb") as f:
            exe = base64.encodebytes(f.read()).decode().replace("\n", "\r\n")
        tag = h.unique("disguise")
        reps, ok = self.send(gw, mime(tag, [("Content-Type: application/pdf; name=\"report.pdf\"\r\n"
                                             "Content-Disposition: attachment; filename=\"report.pdf\"\r\n"
                                             "Content-Transfer-Encoding: base64\r\n", exe)]))
        self.assertTrue(ok, reps)
        self.assertIn(b"ATTACH_TYPE_MISMATCH(4.00)", self.head_of(tag))
        self.assertRegex(gw.log_text(), r"application/\S*(dosexec|portable-executable) declared application/pdf")

    def refused_for(self, gw, tag, reps, ok, text):
        self.assertFalse(ok, reps)
        self.assertCode(reps[-1], 554)
        self.assertEnhanced(reps[-1], "5.7.1")
        self.assertIn("Attachment type not allowed: " + text, reps[-1].text)
        self.assertEqual([m for m in self.up.complete_messages() if tag.encode() in m.data], [])

    def test_name_inside_a_zip_is_refused(self):
        gw = self.start({"attachments": {"deny_extensions": ["exe", "scr"]}})
        tag = h.unique("zipexe")
        z = zip_of({"readme.txt": b"Please pay.\n", "invoice.exe": b"MZ\x90\x00" + b"\x00" * 200})
        reps, ok = self.send(gw, mime(tag, [("Content-Type: text/plain\r\n", "See attached.\r\n"),
                                            attached("files.zip", z)]))
        self.refused_for(gw, tag, reps, ok, "invoice.exe in files.zip")
        log = gw.log_text()
        self.assertIn('symbol=ARCHIVE_DENIED_EXT score=10.00 on="files.zip: invoice.exe"', log)
        # the same name in a subdirectory of the archive, as the last of a double extension
        tag = h.unique("zipdbl")
        z = zip_of({"docs/": b"", "docs/statement.pdf.scr": b"x"})
        reps, ok = self.send(gw, mime(tag, [attached("docs.zip", z)]))
        self.refused_for(gw, tag, reps, ok, "docs/statement.pdf.scr in docs.zip")
        self.assertIn('symbol=ARCHIVE_DOUBLE_EXT score=10.00 on="docs.zip: docs/statement.pdf.scr"',
                      gw.log_text())
        # a trailing dot, which Windows drops from a file name: still an .exe
        tag = h.unique("zipdot")
        reps, ok = self.send(gw, mime(tag, [attached("dot.zip", zip_of({"invoice.exe.": b"MZ"}))]))
        self.refused_for(gw, tag, reps, ok, "invoice.exe. in dot.zip")

    def test_zip_with_permitted_names_arrives(self):
        gw = self.start({"attachments": {"deny_extensions": ["exe"]}})
        tag = h.unique("zippdf")
        z = zip_of({"report.pdf": b"%PDF-1.4\n" + b"0" * 5000})
        reps, ok = self.send(gw, mime(tag, [("Content-Type: text/plain\r\n", "The report.\r\n"),
                                            attached("report.zip", z)]))
        self.assertTrue(ok, reps)
        got = [m for m in self.up.complete_messages() if tag.encode() in m.data]
        self.assertEqual(len(got), 1)
        self.assertIn(base64.encodebytes(z).split(b"\n")[0], got[0].data)  # the zip itself, as sent
        self.assertNotIn(b"X-Spam-Status", self.head_of(tag))
        self.assertNotIn("rules=hit", gw.log_text())
        self.assertNotIn("rules=archive", gw.log_text())

    def test_clamav_testfiles_archives(self):
        files = [f for f in ("clam.zip", "clam.7z", "clam.tar.gz", "clam.cab")
                 if os.path.exists(os.path.join(CLAM_DIR, f))]
        if not files:
            self.skipTest("clamav-testfiles not installed")
        gw = self.start({"attachments": {"deny_extensions": ["exe"]}})
        for f in files:
            with self.subTest(archive=f):
                with open(os.path.join(CLAM_DIR, f), "rb") as fh:
                    data = fh.read()
                tag = h.unique("clam")
                reps, ok = self.send(gw, mime(tag, [attached(f, data, "application/octet-stream")]))
                self.refused_for(gw, tag, reps, ok, "clam.exe in " + f)
                self.assertIn('on="%s: clam.exe"' % f, gw.log_text())

    def test_tar_gz_and_score_action(self):
        gw = self.start({"attachments": {"deny_extensions": ["exe"], "action": "score", "score": 6}},
                        scores={"tag": 5})
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as t:
            for name, data in (("notes.txt", b"hello\n"), ("bin/setup.exe", b"MZ")):
                ti = tarfile.TarInfo(name)
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
        tag = h.unique("targz")
        reps, ok = self.send(gw, mime(tag, [attached("backup.tar.gz", buf.getvalue(), "application/gzip")]))
        self.assertTrue(ok, reps)  # action score: tagged, not refused
        head = self.head_of(tag)
        self.assertIn(b"ARCHIVE_DENIED_EXT(6.00)", head)
        self.assertIn(b"X-Spam-Flag: YES", head)
        self.assertIn('on="backup.tar.gz: bin/setup.exe"', gw.log_text())

    def test_nested_archive_is_not_opened(self):
        gw = self.start({"attachments": {"deny_extensions": ["exe"]}})
        tag = h.unique("nested")
        inner = zip_of({"payload.exe": b"MZ"})
        reps, ok = self.send(gw, mime(tag, [attached("outer.zip", zip_of({"inner.zip": inner}))]))
        self.assertTrue(ok, reps)
        self.assertNotIn(b"ARCHIVE_", self.head_of(tag))
        # naming the inner archive's extension is how to refuse archives in archives
        gw2 = self.start({"attachments": {"deny_extensions": ["exe", "zip"]}})
        tag = h.unique("nested2")
        reps, ok = self.send(gw2, mime(tag, [attached("outer.7z.txt", zip_of({"inner.zip": inner}),
                                                      "text/plain")]))
        self.refused_for(gw2, tag, reps, ok, "inner.zip in outer.7z.txt")

    def test_unreadable_archives(self):
        gw = self.start({"attachments": {"deny_extensions": ["exe"], "max_archive_entries": 5,
                                         "archive_unreadable_score": 1.5}})
        enc = bytearray(zip_of({"secret.docx": b"x" * 50}))
        for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # the "encrypted" flag bit
            enc[enc.find(sig) + off] |= 1
        many = zip_of(dict(("f%02d.txt" % i, b"x") for i in range(9)))
        cases = (("secret.zip", bytes(enc), "encrypted"),
                 ("broken.zip", b"PK\x03\x04 not a zip at all " * 8, ""),
                 ("many.zip", many, "more than 5 entries"))
        for name, data, reason in cases:
            with self.subTest(archive=name):
                tag = h.unique("unreadable")
                reps, ok = self.send(gw, mime(tag, [attached(name, data)]))
                self.assertTrue(ok, reps)
                self.assertIn(b"ARCHIVE_UNREADABLE(1.50)", self.head_of(tag))
                self.assertRegex(gw.log_text(), r'rules=archive-unreadable attachment="%s" format="[^"]*" '
                                 r'reason="[^"]*%s' % (re.escape(name), re.escape(reason)))

    def test_archive_options_checked_at_t(self):
        cfg = h.gateway_config(self.tmp, h.listener_config(
            h.free_port(), 25, filters=[{"name": "rules", "options": {"attachments": {
                "deny_extensions": ["exe"], "max_archive_entries": 0}}}]))
        path = self.tmp.file("bad-archive.yaml", h.to_yaml(cfg))
        out = h.run_portcullis(["-t", "-c", path])
        self.assertNotEqual(out.returncode, 0)
        self.assertRegex(out.stdout + out.stderr, re.escape(path) + r":\d+: .*max_archive_entries")

    def test_mime_anomaly(self):
        gw = self.start({"mime": {"anomaly_score": 2.5}})
        tag = h.unique("anomaly")
        msg = ("From: <s@client.test>\r\nSubject: %s\r\nMIME-Version: 1.0\r\n"
               "Content-Type: multipart/mixed\r\n\r\nno boundary at all\r\n" % tag).encode()
        reps, ok = self.send(gw, msg)
        self.assertTrue(ok, reps)
        self.assertIn(b"MIME_ANOMALY(2.50)", self.head_of(tag))

    def test_runaway_pattern_is_held_by_the_limits(self):
        gw = self.start({"rules": [{"symbol": "EVIL", "score": 1, "pattern": "(a+)+$", "raw": True}]})
        tag = h.unique("runaway")
        t0 = time.monotonic()
        reps, ok = self.send(gw, h.simple_message(subject=tag, body=("a" * 990 + "b\r\n")))
        self.assertTrue(ok, reps)
        self.assertLess(time.monotonic() - t0, 8)
        self.assertIn("rules=match-limit", gw.log_text())
        self.assertNotIn(b"EVIL", self.head_of(tag))

    def test_bad_pattern_refused_with_its_line(self):
        cfg = h.gateway_config(self.tmp, h.listener_config(
            h.free_port(), 25, filters=[{"name": "rules", "options": {"rules": [
                {"symbol": "X", "score": 1, "pattern": "(unclosed", "body": True}]}}]))
        path = self.tmp.file("bad-rules.yaml", h.to_yaml(cfg))
        out = h.run_portcullis(["-t", "-c", path])
        self.assertNotEqual(out.returncode, 0)
        self.assertRegex(out.stdout + out.stderr, re.escape(path) + r":\d+: pattern: missing closing parenthesis")


if __name__ == "__main__":
    unittest.main()
