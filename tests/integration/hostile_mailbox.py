"""HostileMailbox: a DELIBERATELY MISBEHAVING IMAP / POP3 upstream for fault and attack tests.

Like hostile_upstream.HostileUpstream (its SMTP sibling) this is a fake server on purpose: real
mailbox behaviour is tested against Dovecot (test_imap.py, test_pop3.py); this one misbehaves in
ways a real server will not, and records the exact bytes the gateway sends upstream (the PROXY v2
header, the ID command, any credentials). Threaded socket server on 127.0.0.1:<free port>; the
server machinery (listener, threads, line reading, recording, start/stop) is
hostile_base.HostileServer, shared with HostileUpstream.

IMAP modes (proto="imap"):
  record           well-behaved minimal server: greeting, CAPABILITY, STARTTLS (with a tls_context),
                   ID, LOGIN, AUTHENTICATE PLAIN, SELECT, FETCH (BODY[] of one message), NOOP,
                   LOGOUT; records everything it got
  preauth          greets "* PREAUTH ..." (a session already logged in, in plaintext)
  starttls_inject  answers STARTTLS with "tag OK Begin TLS" and more bytes in the same write
  no_starttls      CAPABILITY without STARTTLS (STARTTLS stripping); STARTTLS itself gets BAD
  cut_literal      after login, answers FETCH with "* 1 FETCH (BODY[] {1000}" + 100 bytes, closes
  huge_line        a 10 MB response line without CRLF (at="greeting", or at="command": the
                   answer to the first command after login)
  literal_bomb     answers FETCH with "* 1 FETCH (BODY[] {99999999999999999999}" and junk
  bye              "* BYE" (then close) as the answer to the first command after login
  mute             after login, records every command and answers none (a stalled server)
POP3 modes (proto="pop3"):
  record           well-behaved: greeting, CAPA, STLS (with a tls_context), USER/PASS, STAT, LIST,
                   UIDL, RETR, TOP, DELE, NOOP, RSET, QUIT
  starttls_inject  answers STLS with "+OK Begin TLS" and more bytes in the same write
  no_stls          CAPA without STLS; STLS gets -ERR
  cut_body         RETR: "+OK" and part of the body without the terminating "." line, then close
  huge_line        a 10 MB line without CRLF (at="greeting", or at="command": the answer to STAT)
  extra_answer     answers STAT and then, in the same write, "+OK smuggled" (an answer to nothing:
                   a desync if the gateway takes it for the answer to its next command)

Options: tls_context (ssl.SSLContext, server side) for STARTTLS/STLS and implicit=True (TLS from
the first byte); expect_proxy=True reads and parses a PROXY v2 header before greeting; caps replaces
the default capability list; pretls_caps are offered only in plaintext before STARTTLS/STLS (what
an attacker on the path could add). `mode` may be changed between connections (it is read when a
connection starts).
State owned: the listening socket, one thread per connection, the recordings (under a lock).
Invariants: bounded buffers (a session's record is capped at 64 MB, a command line at 1 MB); every
socket has a timeout; stop() closes every socket and joins the threads with a timeout.
"""

import socket
import ssl
import struct

import hostile_base
from harness import wait_for
from hostile_base import LINE_CAP, RECORD_CAP, Closed, Conn, HostileServer  # noqa: F401 (re-exported)

IMAP_MODES = ("record", "preauth", "starttls_inject", "no_starttls", "cut_literal", "huge_line",
              "literal_bomb", "bye", "mute")
POP3_MODES = ("record", "starttls_inject", "no_stls", "cut_body", "huge_line", "extra_answer")

PROXY_V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
HUGE = 10 * 1024 * 1024
# POP3 commands answered the same way every time (any credentials are taken).
POP3_FIXED_ANSWERS = {"USER": b"+OK\r\n", "PASS": b"+OK Logged in.\r\n", "AUTH": b"+OK Logged in.\r\n",
                      "DELE": b"+OK\r\n", "NOOP": b"+OK\r\n", "RSET": b"+OK\r\n",
                      "QUIT": b"+OK Logging out.\r\n"}

MESSAGE = (b"From: Hostile <h@hostile.test>\r\nTo: alice@example.test\r\nSubject: hostile\r\n"
           b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n\r\nA line.\r\n.A dot line.\r\n")


class Session(hostile_base.Session):
    def __init__(self, peer):
        super().__init__(peer)        # commands: literals not included
        self.proxy = None             # parsed PROXY v2 header (dict) when expect_proxy
        self.mode = None              # the server's mode when this connection started


def parse_proxy_v2(data):
    """A PROXY v2 header (whole) -> dict(valid, command, family, src, dst, sport, dport, raw)."""
    out = {"valid": False, "raw": bytes(data)}
    if len(data) < 16 or not data.startswith(PROXY_V2_SIG):
        return out
    ver_cmd, fam = data[12], data[13]
    length = struct.unpack("!H", data[14:16])[0]
    body = data[16:16 + length]
    out.update(version=ver_cmd >> 4, command=ver_cmd & 0xF, family=fam, length=length)
    if ver_cmd >> 4 != 2 or len(body) != length:
        return out
    if fam == 0x11 and length >= 12:
        out.update(src=socket.inet_ntop(socket.AF_INET, body[0:4]),
                   dst=socket.inet_ntop(socket.AF_INET, body[4:8]),
                   sport=struct.unpack("!H", body[8:10])[0], dport=struct.unpack("!H", body[10:12])[0])
        out["valid"] = (ver_cmd & 0xF) == 1
    elif fam == 0x21 and length >= 36:
        out.update(src=socket.inet_ntop(socket.AF_INET6, body[0:16]),
                   dst=socket.inet_ntop(socket.AF_INET6, body[16:32]),
                   sport=struct.unpack("!H", body[32:34])[0], dport=struct.unpack("!H", body[34:36])[0])
        out["valid"] = (ver_cmd & 0xF) == 1
    return out


class _Conn(Conn):
    """hostile_base.Conn plus the mailbox readers: a PROXY v2 header, an IMAP command with literals."""

    def read_proxy(self):
        """Reads a PROXY v2 header (16 bytes + its length); anything else is left in the buffer
        and reported as an invalid header."""
        if not self._need(16):
            raise Closed()
        if not self.buf.startswith(PROXY_V2_SIG):
            return parse_proxy_v2(self.buf[:16])
        length = struct.unpack("!H", self.buf[14:16])[0]
        if not self._need(16 + length):
            raise Closed()
        hdr, self.buf = self.buf[:16 + length], self.buf[16 + length:]
        return parse_proxy_v2(hdr)

    def read_imap_command(self):
        """One IMAP command line without CRLF; literals ({n} answered with "+", {n+}) are read and
        replaced by "{n}" in the returned text."""
        out = b""
        for _ in range(1000):
            line = self.readline()
            if line is None:
                return None
            line = line.rstrip(b"\r\n")
            if line.endswith(b"}") and b"{" in line:
                spec = line[line.rindex(b"{") + 1:-1]
                sync = not spec.endswith(b"+")
                digits = spec.rstrip(b"+")
                if digits.isdigit() and int(digits) <= LINE_CAP:
                    n = int(digits)
                    if sync:
                        self.send(b"+ go ahead\r\n")
                    if not self._need(n):
                        return None
                    self.buf = self.buf[n:]
                    out += line
                    continue
            return out + line
        return out


class HostileMailbox(HostileServer):
    session_class = Session
    conn_class = _Conn

    def __init__(self, proto="imap", mode="record", tls_context=None, implicit=False,
                 expect_proxy=False, at="command", caps=None, pretls_caps=(), huge=HUGE,
                 message=MESSAGE):
        if at not in ("greeting", "command"):
            raise ValueError("at must be 'greeting' or 'command'")
        modes = IMAP_MODES if proto == "imap" else POP3_MODES if proto == "pop3" else ()
        super().__init__(mode, modes, tls_context, "%s mode" % proto)
        self.proto = proto
        self.implicit = implicit
        self.expect_proxy = expect_proxy
        self.at = at
        self.caps = caps
        self.pretls_caps = list(pretls_caps)
        self.huge = huge
        self.message = message

    # ------------------------------------------------------------------ views for tests
    def sessions_with(self, verb):
        """Sessions in which a command starting with verb (after an IMAP tag for IMAP) was seen."""
        verb = verb.upper()
        with self.lock:
            out = []
            for s in self.sessions:
                for c in s.commands:
                    words = c.split(" ")
                    if self.proto == "imap":
                        words = words[1:]
                    if words and words[0].upper() == verb:
                        out.append(s)
                        break
            return out

    def wait_command(self, verb, timeout=10.0):
        return wait_for(lambda: self.sessions_with(verb), timeout, 0.05)

    # ------------------------------------------------------------------ one connection
    def _dialogue(self, io, sess):
        if self.expect_proxy:
            sess.proxy = io.read_proxy()
        if self.implicit:
            io.starttls(self.tls_context)
        if self.proto == "imap":
            self._imap(io, sess)
        else:
            self._pop3(io, sess)

    def _huge_line(self, io, prefix):
        """Sends prefix and then huge bytes of text without any CRLF, stopping when the peer has
        gone; then keeps quiet until it closes."""
        io.send(prefix)
        chunk = b"x" * 65536
        sent = 0
        while sent < self.huge and not self.stopping.is_set():
            try:
                io.send(chunk)
            except (OSError, ssl.SSLError):
                return
            sent += len(chunk)
        io.silence(30.0)

    # ------------------------------------------------------------------ IMAP
    def _imap_caps(self, sess):
        caps = list(self.caps or ["IMAP4rev1", "ID", "IDLE", "LITERAL+"])
        if not sess.tls:
            caps += self.pretls_caps
        offer = self.tls_context is not None and not sess.tls and not self.implicit
        if self.mode == "starttls_inject" or (offer and self.mode != "no_starttls"):
            caps.append("STARTTLS")
        return " ".join(caps)

    def _imap(self, io, sess):
        mode = sess.mode = self.mode
        if mode == "preauth":
            io.send(b"* PREAUTH [CAPABILITY IMAP4rev1] hostile.test logged in already\r\n")
        elif mode == "huge_line" and self.at == "greeting":
            return self._huge_line(io, b"* OK ")
        else:
            io.send(b"* OK hostile.test IMAP ready\r\n")
        authed = False
        after_login = 0
        for text in self.commands(io, sess, io.read_imap_command):
            parts = text.split(" ", 2)
            tag = parts[0].encode("latin-1")
            verb = parts[1].upper() if len(parts) > 1 else ""
            if verb == "UID" and len(parts) > 2:
                verb = parts[2].split(" ", 1)[0].upper()
            if authed:
                after_login += 1
                if after_login == 1 and mode == "huge_line":
                    return self._huge_line(io, b"* 1 EXISTS ")
                if after_login == 1 and mode == "bye":
                    io.send(b"* BYE hostile.test is going away\r\n")
                    return
                if mode == "mute":
                    continue  # records every command after login, answers none
            if verb == "CAPABILITY":
                io.send(b"* CAPABILITY " + self._imap_caps(sess).encode() + b"\r\n" + tag +
                        b" OK Capability completed\r\n")
            elif verb == "STARTTLS":
                offered = not (mode == "no_starttls" or self.tls_context is None or sess.tls)
                inject = tag + b" OK Begin TLS\r\n* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] injected\r\n"
                if not self.starttls_step(io, mode, offered, inject,
                                          tag + b" OK Begin TLS negotiation now\r\n",
                                          tag + b" BAD STARTTLS not available\r\n"):
                    return
            elif verb == "ID":
                io.send(b'* ID ("name" "hostile")\r\n' + tag + b" OK ID completed\r\n")
            elif verb == "LOGIN":
                authed = True
                io.send(tag + b" OK [CAPABILITY IMAP4rev1 ID IDLE] Logged in\r\n")
            elif verb == "AUTHENTICATE":
                if len(text.split(" ")) < 4:
                    io.send(b"+ \r\n")
                    resp = io.read_imap_command()
                    if resp is None:
                        return
                    self.record(sess, resp.decode("latin-1"))
                authed = True
                io.send(tag + b" OK Logged in\r\n")
            elif verb == "SELECT" or verb == "EXAMINE":
                io.send(b"* FLAGS (\\Seen \\Deleted)\r\n* 1 EXISTS\r\n* 0 RECENT\r\n"
                        b"* OK [UIDVALIDITY 1] UIDs valid\r\n* OK [UIDNEXT 2] Predicted next UID\r\n" +
                        tag + b" OK [READ-WRITE] Select completed\r\n")
            elif verb == "FETCH":
                if mode == "cut_literal":
                    io.send(b"* 1 FETCH (BODY[] {1000}\r\n" + b"y" * 100)
                    return
                if mode == "literal_bomb":
                    io.send(b"* 1 FETCH (BODY[] {99999999999999999999}\r\n")
                    try:
                        for _ in range(64):
                            io.send(b"z" * 65536)
                    except (OSError, ssl.SSLError):
                        return
                    return io.silence(30.0)
                m = self.message
                io.send(b"* 1 FETCH (UID 1 BODY[] {%d}\r\n" % len(m) + m + b")\r\n" + tag +
                        b" OK Fetch completed\r\n")
            elif verb == "NOOP":
                io.send(tag + b" OK NOOP completed\r\n")
            elif verb == "LOGOUT":
                io.send(b"* BYE Logging out\r\n" + tag + b" OK Logout completed\r\n")
                return
            else:
                io.send(tag + b" BAD Unknown command\r\n")

    # ------------------------------------------------------------------ POP3
    def _pop3_capa(self, sess):
        caps = list(self.caps or ["USER", "UIDL", "TOP", "RESP-CODES", "PIPELINING"])
        if not sess.tls:
            caps += self.pretls_caps
        offer = self.tls_context is not None and not sess.tls and not self.implicit
        if self.mode == "starttls_inject" or (offer and self.mode != "no_stls"):
            caps.append("STLS")
        return b"".join(c.encode() + b"\r\n" for c in caps)

    def _stuffed(self):
        m = self.message
        lines = m.split(b"\r\n")
        body = b"\r\n".join(b"." + l if l.startswith(b".") else l for l in lines)
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        return body

    def _pop3(self, io, sess):
        mode = sess.mode = self.mode
        if mode == "huge_line" and self.at == "greeting":
            return self._huge_line(io, b"+OK ")
        io.send(b"+OK hostile.test POP3 ready\r\n")
        for text in self.commands(io, sess):
            verb = text.split(" ", 1)[0].upper()
            size = len(self.message)
            if verb == "CAPA":
                io.send(b"+OK Capability list follows\r\n" + self._pop3_capa(sess) + b".\r\n")
            elif verb == "STLS":
                offered = not (mode == "no_stls" or self.tls_context is None or sess.tls)
                if not self.starttls_step(io, mode, offered, b"+OK Begin TLS\r\n+OK injected\r\n",
                                          b"+OK Begin TLS negotiation\r\n", b"-ERR STLS not available\r\n"):
                    return
            elif verb == "STAT":
                if mode == "huge_line":
                    return self._huge_line(io, b"+OK ")
                extra = b"+OK smuggled\r\n" if mode == "extra_answer" else b""
                io.send(b"+OK 1 %d\r\n" % size + extra)
            elif verb in ("LIST", "UIDL"):
                one = b"1 %d" % size if verb == "LIST" else b"1 hostile-uid-1"
                if len(text.split()) > 1:
                    io.send(b"+OK " + one + b"\r\n")
                else:
                    io.send(b"+OK\r\n" + one + b"\r\n.\r\n")
            elif verb in ("RETR", "TOP"):
                body = self._stuffed()
                if mode == "cut_body":
                    io.send(b"+OK %d octets\r\n" % size + body[:len(body) // 2])
                    return
                io.send(b"+OK %d octets\r\n" % size + body + b".\r\n")
            elif not self.fixed_answer(io, verb, POP3_FIXED_ANSWERS, b"-ERR Unknown command\r\n"):
                return
