#!/usr/bin/env python3
"""A tiny confab WebSocket chat client using only the Python standard library.

    python3 scripts/ws-chat.py "ws://127.0.0.1:8000/ws/chat?token=$TOKEN" "What is ownership in Rust?"

Opens /ws/chat, sends `init` (agent `dashboard`, or --agent/--course/--session),
waits for `ready`, sends each MESSAGE as a `chat_message` and prints the
answer as its `token` events arrive, then `done`. Exits 0 when every answer
streamed at least one token and ended with `done`; 1 on an `error` event, a
closed socket or a timeout. --raw prints every frame as received.
"""

import argparse
import base64
import json
import os
import socket
import struct
import sys
import urllib.parse


class WsError(Exception):
    """The connection or the protocol failed."""


class Ws:
    """A minimal RFC 6455 client: text frames out (masked), frames in."""

    def __init__(self, url, timeout):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "ws":
            raise WsError(f"only ws:// URLs are supported (got {u.scheme}://)")
        host, port = u.hostname or "127.0.0.1", u.port or 80
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise WsError("connection closed during the handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0].decode(errors="replace")
        if " 101 " not in status + " ":
            body = self.buf.decode(errors="replace")
            raise WsError(f"handshake refused: {status} {body}".strip())

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise WsError("connection closed by the server")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send_json(self, obj):
        self._send_frame(0x1, json.dumps(obj).encode())

    def recv_text(self):
        """The next text message (answers pings, raises on close)."""
        parts = []
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read(8))
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x9:  # ping
                self._send_frame(0xA, payload)
            elif opcode == 0x8:  # close
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                raise WsError(f"server closed the socket ({code}) {payload[2:].decode(errors='replace')}")
            elif opcode in (0x1, 0x0):
                parts.append(payload)
                if b0 & 0x80:
                    return b"".join(parts).decode()

    def close(self):
        try:
            self._send_frame(0x8, struct.pack("!H", 1000))
            self.sock.close()
        except OSError:
            pass


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url", help="ws://HOST:PORT/ws/chat?token=ACCESS_TOKEN")
    p.add_argument("message", nargs="+", help="one or more messages, sent in turn")
    p.add_argument("--agent", default="dashboard", help="dashboard (default) or course")
    p.add_argument("--course", help="course id of a course session")
    p.add_argument("--session", help="resume this session id")
    p.add_argument("--timeout", type=float, default=120, help="seconds to wait for any frame")
    p.add_argument("--raw", action="store_true", help="print every frame as JSON")
    args = p.parse_args()

    try:
        ws = Ws(args.url, args.timeout)
        init = {"type": "init", "agent": args.agent}
        if args.course:
            init["course_id"] = args.course
        if args.session:
            init["session_id"] = args.session
        ws.send_json(init)
        for message in [None] + args.message:
            if message is not None:
                ws.send_json({"type": "chat_message", "content": message})
                print(f"you> {message}")
            tokens = 0
            midline = [False]

            def nl():
                """A newline when the answer's text left the cursor mid-line."""
                was, midline[0] = midline[0], False
                return "\n" if was else ""

            while True:
                frame = ws.recv_text()
                if args.raw:
                    print(frame, flush=True)
                event = json.loads(frame)
                kind = event.get("type")
                if kind == "ready" and message is None:
                    if not args.raw:
                        print(f"[ready] session {event['session_id']}, agent {event['agent']}, backend {event['backend']}")
                    break
                if kind == "error":
                    raise WsError(f"error event: {event.get('code')}: {event.get('message')}")
                if args.raw:
                    if kind == "token":
                        tokens += 1
                    if kind == "done":
                        break
                    continue
                if kind == "token":
                    if tokens == 0:
                        print("confab> ", end="")
                    tokens += 1
                    midline[0] = True
                    print(event["content"], end="", flush=True)
                elif kind in ("tool_call", "tool_result", "stage"):
                    print(f"{nl()}[{kind}] {json.dumps({k: v for k, v in event.items() if k != 'type'})}")
                elif kind == "sources":
                    names = ", ".join(s.get("file_path", "?") for s in event.get("sources", []))
                    print(f"{nl()}[sources] {names}")
                elif kind == "done":
                    print(f"{nl()}[done] session {event['session_id']}, message {event['message_id']}, "
                          f"model {event.get('model')}, finish {event.get('finish_reason')}")
                    break
            if message is not None and tokens == 0:
                raise WsError("the answer ended without any token")
        ws.close()
    except (WsError, OSError, ValueError, KeyError) as e:
        print(f"\nws-chat: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
