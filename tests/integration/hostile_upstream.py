"""HostileUpstream: a DELIBERATELY MISBEHAVING SMTP upstream for fault and attack tests.

This is the only fake server in the integration suite (see tests/README.md). Real delivery is tested
against Postfix; this one exists to misbehave on purpose in ways a real MTA will not, and to record the
exact bytes the gateway sends upstream. Threaded socket server on 127.0.0.1:<free port>.

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
State owned: the listening socket, one thread per connection, and the recordings (guarded by a lock).
Invariants: bounded buffers (a session's record is capped at 64 MB); stop() closes every socket and
joins threads with a timeout.
"""

import socket
import ssl
import threading
import time

MODES = ("record", "starttls_inject", "no_starttls", "huge_reply", "no_crlf", "unexpected_354",
         "unexpected_2xx_data", "slow", "drop_mid_data")

RECORD_CAP = 64 * 1024 * 1024


class Session:
    def __init__(self, peer):
        self.peer = peer
        self.received = bytearray()      # every byte read from the gateway (plaintext part and TLS part)
        self.commands = []               # command lines (str) seen outside DATA
        self.tls = False
        self.closed_by_peer = False


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


class HostileUpstream:
    def __init__(self, mode="record", at="EHLO", reject_rcpts=(), tls_context=None, lenient_dot=False,
                 caps=None, greeting=b"220 hostile.test ESMTP test-upstream\r\n", size=10240000,
                 lines=100000):
        if mode not in MODES:
            raise ValueError("unknown mode %r" % mode)
        self.mode = mode
        self.at = at.upper()
        self.reject_rcpts = {r.lower() for r in reject_rcpts}
        self.tls_context = tls_context
        self.lenient_dot = lenient_dot
        self.greeting = greeting
        self.size = size
        self.lines = lines
        self.extra_caps = caps
        self.sessions = []
        self.messages = []
        self.lock = threading.Lock()
        self.conns = []
        self.threads = []
        self.stopping = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    # ------------------------------------------------------------------ lifecycle
    def start(self):
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def stop(self, timeout=5.0):
        self.stopping.set()
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.close()
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for t in list(self.threads):
            t.join(max(0.0, deadline - time.monotonic()))

    def drop_connections(self):
        """Closes every session open now (the listener stays): an upstream that lost its sessions."""
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                conn, peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sess = Session(peer)
            with self.lock:
                self.conns.append(conn)
                self.sessions.append(sess)
            t = threading.Thread(target=self._serve, args=(conn, sess), daemon=True)
            t.start()
            self.threads.append(t)

    # ------------------------------------------------------------------ views for tests
    def all_bytes(self):
        with self.lock:
            return b"".join(bytes(s.received) for s in self.sessions)

    def complete_messages(self):
        with self.lock:
            return [m for m in self.messages if m.complete]

    def all_commands(self):
        with self.lock:
            return [c for s in self.sessions for c in s.commands]

    def wait_sessions(self, n=1, timeout=10.0):
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.05) + 2):
            with self.lock:
                if len(self.sessions) >= n:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return False

    # ------------------------------------------------------------------ one connection
    def _serve(self, conn, sess):
        conn.settimeout(60)
        io = _Conn(conn, sess, self)
        try:
            self._dialogue(io, sess)
        except (OSError, ssl.SSLError, _Closed):
            pass
        finally:
            try:
                io.sock.close()
            except OSError:
                pass

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
        io.send(self.greeting)
        mail_from, rcpts = None, []
        offer_tls = mode == "starttls_inject" or (self.tls_context is not None and mode != "no_starttls")
        for _ in range(1000000):
            line = io.readline()
            if line is None:
                sess.closed_by_peer = True
                return
            text = line.rstrip(b"\r\n").decode("latin-1")
            with self.lock:
                sess.commands.append(text)
            verb = text.split(" ", 1)[0].upper()
            if mode == "slow":
                continue
            if verb in ("EHLO", "HELO", "LHLO"):
                if mode == "huge_reply" and self.at == "EHLO":
                    io.send(self._huge())
                elif mode == "no_crlf" and self.at == "EHLO":
                    io.send(b"250 hostile.test without line end")
                    io.silence()
                    return
                else:
                    io.send(self._caps(offer_tls and not sess.tls) if verb == "EHLO" else b"250 hostile.test\r\n")
            elif verb == "STARTTLS":
                if mode == "starttls_inject":
                    io.send(b"220 go\r\n250 injected\r\n")
                    if self.tls_context is None:
                        io.silence()
                        return
                    io.starttls(self.tls_context)
                elif offer_tls and not sess.tls:
                    io.send(b"220 2.0.0 Ready to start TLS\r\n")
                    io.starttls(self.tls_context)
                else:
                    io.send(b"502 5.5.1 STARTTLS not available\r\n")
            elif verb == "XCLIENT":
                io.send(self.greeting)
            elif verb == "MAIL":
                if mode == "huge_reply" and self.at == "MAIL":
                    io.send(self._huge())
                elif mode == "no_crlf" and self.at == "MAIL":
                    io.send(b"250 2.1.0 ok but no line end")
                    io.silence()
                    return
                elif mode == "unexpected_354":
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
            elif verb == "RSET":
                mail_from, rcpts = None, []
                io.send(b"250 2.0.0 Ok\r\n")
            elif verb == "NOOP":
                io.send(b"250 2.0.0 Ok\r\n")
            elif verb == "QUIT":
                io.send(b"221 2.0.0 Bye\r\n")
                return
            else:
                io.send(b"502 5.5.2 Error: command not recognized\r\n")


class _Closed(Exception):
    pass


class _Conn:
    """Buffered reader/writer over one accepted socket (plain, then optionally TLS)."""

    END_MARKERS_STRICT = (b"\r\n.\r\n",)
    END_MARKERS_LENIENT = (b"\r\n.\r\n", b"\n.\n", b"\n.\r\n", b"\r.\n", b"\r.\r", b"\r\n.\r", b"\r\n.\n",
                           b"\n.\r")

    def __init__(self, sock, sess, server):
        self.sock, self.sess, self.server = sock, sess, server
        self.buf = b""

    def _recv(self):
        if self.server.stopping.is_set():
            raise _Closed()
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise _Closed()
        if chunk and len(self.sess.received) < RECORD_CAP:
            with self.server.lock:
                self.sess.received += chunk
        return chunk

    def send(self, data):
        self.sock.sendall(data)

    def readline(self):
        for _ in range(100000):
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                return line
            if len(self.buf) > 1 << 20:
                line, self.buf = self.buf, b""
                return line
            chunk = self._recv()
            if not chunk:
                return None
            self.buf += chunk
        return None

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
        except _Closed:
            pass

    def starttls(self, ctx):
        if self.buf:
            # Pipelined plaintext after STARTTLS: a correct client never does this; drop it.
            self.buf = b""
        self.sock.settimeout(30)
        self.sock = ctx.wrap_socket(self.sock, server_side=True)
        self.sess.tls = True

    def silence(self, limit=120.0):
        """Say nothing more; keep reading (and recording) until the peer closes or `limit` passes."""
        deadline = time.monotonic() + limit
        self.sock.settimeout(0.5)
        for _ in range(int(limit / 0.5) + 2):
            if time.monotonic() >= deadline or self.server.stopping.is_set():
                return
            try:
                if not self._recv():
                    self.sess.closed_by_peer = True
                    return
            except _Closed:
                continue
            except OSError:
                return

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
