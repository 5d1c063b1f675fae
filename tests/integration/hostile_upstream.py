"""HostileUpstream: a DELIBERATELY MISBEHAVING SMTP upstream for fault and attack tests.

This and its IMAP/POP3 sibling hostile_mailbox.py are the only fake servers in the integration suite
(see tests/README.md). Real delivery is tested
against Postfix; this one exists to misbehave on purpose in ways a real MTA will not, and to record the
exact bytes the gateway sends upstream. Threaded socket server on 127.0.0.1:<free port>; the server
machinery (listener, threads, line reading, recording, start/stop) is hostile_base.HostileServer,
shared with hostile_mailbox.HostileMailbox.

Modes:
  record              well-behaved recorder: 220 greeting, EHLO caps, 250 to MAIL/RCPT, 354 to DATA,
                      250 after CRLF.CRLF; stores every byte and every message (raw dot-stuffed wire
                      bytes and unstuffed). reject_rcpts={addr,...} -> 550 for those RCPTs.
                      lenient_dot=True: ALSO ends DATA at bare-LF/bare-CR dot lines (like an MTA
                      vulnerable to smuggling), which makes any smuggling the gateway lets through
                      visible as an extra message.
  starttls_inject     advertises STARTTLS, answers it with "220 go\\r\\n250 injected\\r\\n" in one write
                      (then, with a tls_context, does the handshake and continues as record)
  no_starttls         EHLO without STARTTLS (otherwise record) -- STARTTLS stripping
  huge_reply          a 100,000-line reply to EHLO (at="EHLO") or MAIL (at="MAIL")
  no_crlf             a reply without CRLF (to EHLO, or at="MAIL"), then silence
  unexpected_354      answers MAIL with 354
  unexpected_2xx_data answers DATA with 250 instead of 354
  slow                greets, then never answers anything
  drop_mid_data       354 to DATA, reads a little of the message, then closes
Options of every mode: size=N is announced as SIZE N and never enforced (a deliberately lax peer: a
message over it is taken, so a test sees what the gateway let through); caps=[...] adds capabilities
(e.g. SMTPUTF8, AUTH PLAIN); close_421={verb,...} answers those commands 421 and closes;
greeting_delay=S waits S seconds before each greeting (the gateway's start-up probe is
then still running when a test's first client arrives).
State owned: the listening socket, one thread per connection, and the recordings (guarded by a lock).
Invariants: bounded buffers (a session's record is capped at 64 MB); stop() closes every socket and
joins threads with a timeout.
"""

import time

from harness import wait_for
from hostile_base import RECORD_CAP, Closed, Conn, HostileServer, Session  # noqa: F401 (re-exported)

MODES = ("record", "starttls_inject", "no_starttls", "huge_reply", "no_crlf", "unexpected_354",
         "unexpected_2xx_data", "slow", "drop_mid_data")

# The replies huge_reply / no_crlf replace (at=...), and what no_crlf sends instead: no line end.
UNTERMINATED = {"EHLO": b"250 hostile.test without line end", "MAIL": b"250 2.1.0 ok but no line end"}
# Commands answered the same way every time (RSET also forgets the transaction).
FIXED_ANSWERS = {"RSET": b"250 2.0.0 Ok\r\n", "NOOP": b"250 2.0.0 Ok\r\n", "QUIT": b"221 2.0.0 Bye\r\n"}
UNKNOWN_ANSWER = b"502 5.5.2 Error: command not recognized\r\n"


class Message:
    def __init__(self, mail_from, rcpts, raw, complete):
        self.mail_from = mail_from       # MAIL FROM line argument
        self.rcpts = list(rcpts)         # RCPT TO line arguments
        self.raw = raw                   # DATA payload as on the wire (dot-stuffed), without the end marker
        self.complete = complete         # True when the end-of-data marker was seen

    @property
    def data(self):
        """Unstuffed message bytes (CRLF line ends as sent)."""
        d = self.raw
        if d.startswith(b".."):
            d = d[1:]
        return d.replace(b"\r\n..", b"\r\n.")


class _Conn(Conn):
    """hostile_base.Conn plus the SMTP readers: the DATA payload, and a little of it."""

    END_MARKERS_STRICT = (b"\r\n.\r\n",)
    END_MARKERS_LENIENT = (b"\r\n.\r\n", b"\n.\n", b"\n.\r\n", b"\r.\n", b"\r.\r", b"\r\n.\r", b"\r\n.\n",
                           b"\n.\r")

    def read_data(self, lenient):
        """Read the DATA payload up to the end marker. Returns (raw payload, complete)."""
        markers = self.END_MARKERS_LENIENT if lenient else self.END_MARKERS_STRICT
        data = b"\r\n" + self.buf  # the DATA command line ended with CRLF; a first-line "." counts
        self.buf = b""
        for _ in range(1000000):
            best = None
            for m in markers:
                i = data.find(m)
                if i >= 0 and (best is None or i < best[0]):
                    best = (i, m)
            if best:
                i, m = best
                self.buf = data[i + len(m):]
                end = i + m.index(b".")           # keep the line end that precedes the dot
                return data[2:max(2, end)], True
            chunk = self._recv()
            if not chunk:
                return data[2:], False
            data += chunk
        return data[2:], False

    def read_some(self, n):
        if len(self.buf) >= n:
            return
        try:
            self._recv()
        except Closed:
            pass


class HostileUpstream(HostileServer):
    conn_class = _Conn
    session_timeout = 60.0
    tls_timeout = 30.0
    silence_limit = 120.0
    command_limit = 1000000

    def __init__(self, mode="record", at="EHLO", reject_rcpts=(), tls_context=None, lenient_dot=False,
                 caps=None, greeting=b"220 hostile.test ESMTP test-upstream\r\n", size=10240000,
                 lines=100000, greeting_delay=0.0, close_421=()):
        super().__init__(mode, MODES, tls_context)
        self.greeting_delay = greeting_delay
        self.close_421 = {v.upper() for v in close_421}
        self.at = at.upper()
        self.reject_rcpts = {r.lower() for r in reject_rcpts}
        self.lenient_dot = lenient_dot
        self.greeting = greeting
        self.size = size
        self.lines = lines
        self.extra_caps = caps
        self.messages = []

    # ------------------------------------------------------------------ views for tests
    def complete_messages(self):
        with self.lock:
            return [m for m in self.messages if m.complete]

    def wait_sessions(self, n=1, timeout=10.0):
        def enough():
            with self.lock:
                return len(self.sessions) >= n
        return bool(wait_for(enough, timeout, 0.05))

    # ------------------------------------------------------------------ one connection
    def _caps(self, starttls):
        caps = ["hostile.test", "PIPELINING", "SIZE %d" % self.size, "8BITMIME", "ENHANCEDSTATUSCODES",
                "XCLIENT NAME ADDR PROTO HELO"]
        if starttls:
            caps.append("STARTTLS")
        if self.extra_caps:
            caps.extend(self.extra_caps)
        out = b""
        for i, c in enumerate(caps):
            out += ("250%s%s\r\n" % (" " if i == len(caps) - 1 else "-", c)).encode()
        return out

    def _huge(self):
        return b"".join(b"250-line %d of a very long reply\r\n" % i for i in range(self.lines - 1)) + b"250 ok\r\n"

    def _dialogue(self, io, sess):
        mode = self.mode
        if self.greeting_delay:
            time.sleep(self.greeting_delay)
        io.send(self.greeting)
        mail_from, rcpts = None, []
        offer_tls = mode == "starttls_inject" or (self.tls_context is not None and mode != "no_starttls")
        for text in self.commands(io, sess):
            verb = text.split(" ", 1)[0].upper()
            if mode == "slow":
                continue
            point = "EHLO" if verb in ("EHLO", "HELO", "LHLO") else verb
            if verb in self.close_421:                     # "421 ... closing", and it does
                io.send(b"421 4.3.2 hostile.test Service shutting down\r\n")
                return
            if point == self.at and point in UNTERMINATED:  # where huge_reply and no_crlf strike
                if mode == "huge_reply":
                    io.send(self._huge())
                    continue
                if mode == "no_crlf":
                    io.send(UNTERMINATED[point])
                    io.silence()
                    return
            if point == "EHLO":
                io.send(self._caps(offer_tls and not sess.tls) if verb == "EHLO" else b"250 hostile.test\r\n")
            elif verb == "STARTTLS":
                if not self.starttls_step(io, mode, offer_tls and not sess.tls, b"220 go\r\n250 injected\r\n",
                                          b"220 2.0.0 Ready to start TLS\r\n",
                                          b"502 5.5.1 STARTTLS not available\r\n"):
                    return
            elif verb == "XCLIENT":
                io.send(self.greeting)
            elif verb == "MAIL":
                if mode == "unexpected_354":
                    io.send(b"354 go ahead (unexpected)\r\n")
                else:
                    mail_from, rcpts = text[5:].strip(), []
                    io.send(b"250 2.1.0 Ok\r\n")
            elif verb == "RCPT":
                addr = text[5:].strip()
                bare = addr.split(":", 1)[-1].strip().split(" ")[0].strip("<>").lower()
                if bare in self.reject_rcpts:
                    io.send(b"550 5.1.1 <%s>: Recipient address rejected\r\n" % bare.encode())
                else:
                    rcpts.append(addr)
                    io.send(b"250 2.1.5 Ok\r\n")
            elif verb == "DATA":
                if mode == "unexpected_2xx_data":
                    io.send(b"250 2.0.0 Ok (unexpected)\r\n")
                    continue
                if mail_from is None or not rcpts:
                    io.send(b"503 5.5.1 Error: need RCPT command\r\n")
                    continue
                io.send(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                if mode == "drop_mid_data":
                    io.read_some(64)
                    msg = Message(mail_from, rcpts, b"", False)
                    with self.lock:
                        self.messages.append(msg)
                    io.close()
                    return
                raw, complete = io.read_data(self.lenient_dot)
                msg = Message(mail_from, rcpts, raw, complete)
                with self.lock:
                    self.messages.append(msg)
                if not complete:
                    sess.closed_by_peer = True
                    return
                io.send(b"250 2.0.0 Ok: queued as HOSTILE%d\r\n" % len(self.messages))
                mail_from, rcpts = None, []
            else:
                if verb == "RSET":
                    mail_from, rcpts = None, []
                if not self.fixed_answer(io, verb, FIXED_ANSWERS, UNKNOWN_ANSWER):
                    return

