#!/usr/bin/env python3
"""Hostile probes against a running `dealledger serve`: what a red team sends, and what a healthy
daemon answers (docs/daemon.md, Security).

    python3 scripts/probe.py http://127.0.0.1:7878 [--token-file FILE] [--hubspot] [--only a,b]

The token comes from --token-file or DEALLEDGER_TOKEN; without one, the probes that need it are
skipped (and say so). --hubspot adds the unsigned-webhook probe (the daemon must have
[hubspot]). --list prints every probe, what it sends and what a healthy daemon answers.

Each probe prints `ok`, `HOLE` or `skipped` with what it saw; the exit status is 1 when any probe
found a hole, 2 when the daemon cannot be reached, else 0. Nothing is stored: the writes sent
are refused by design (invalid events, wrong types). The sign-in probe runs last, because a
healthy daemon then refuses every credential from this address for a minute.

Python 3.8+ standard library only, so that it runs wherever the daemon does.
"""

import argparse
import json
import os
import select
import socket
import sys
import time
import urllib.parse

TIMEOUT_S = 5.0


class Target:
    def __init__(self, url, token, hubspot):
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme != "http" or not parsed.hostname:
            raise SystemExit(f"probe: {url}: expected http://HOST:PORT")
        self.host = parsed.hostname
        self.port = parsed.port or 80
        self.token = token
        self.hubspot = hubspot

    @property
    def host_header(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def loopback(self):
        try:
            infos = socket.getaddrinfo(self.host, self.port, proto=socket.IPPROTO_TCP)
        except OSError:
            return False
        address = infos[0][4][0]
        return address.startswith("127.") or address == "::1"

    def connect(self, timeout=TIMEOUT_S):
        return socket.create_connection((self.host, self.port), timeout=timeout)

    def raw(self, data, timeout=TIMEOUT_S):
        """Sends bytes on a new connection; what came back before it closed or `timeout` passed."""
        with self.connect(timeout) as sock:
            sock.sendall(data)
            return read_all(sock, timeout)

    def request(self, method, path, headers=(), body=b"", auth=False, timeout=TIMEOUT_S):
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host_header}"]
        if auth and self.token:
            lines.append(f"Authorization: Bearer {self.token}")
        lines.extend(headers)
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        lines.append("Connection: close")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        return Answer(self.raw(data, timeout))


def read_all(sock, timeout):
    sock.settimeout(timeout)
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except OSError:
            break
        if not chunk:
            break
        got += chunk
    return got


class Answer:
    """An HTTP/1.1 answer as bytes came in: status, headers (lower-case names), body text."""

    def __init__(self, data):
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2) if lines and lines[0] else []
        self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers.setdefault(name.strip().lower(), value.strip())
        self.body = body.decode("utf-8", "replace")

    def error(self):
        try:
            return json.loads(self.body).get("error")
        except (ValueError, AttributeError):
            return None

    def __str__(self):
        if self.status is None:
            return "no HTTP answer (closed)"
        text = self.body.strip().replace("\n", " ")
        return f"{self.status} {text[:120]}"


PROBES = []


def probe(name, sends, healthy, needs=()):
    def register(fn):
        PROBES.append({"name": name, "sends": sends, "healthy": healthy, "needs": needs, "run": fn})
        return fn

    return register


class Skip(Exception):
    pass


def metric(target, name):
    answer = target.request("GET", "/metrics", auth=True)
    for line in answer.body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


@probe(
    "two_host_headers",
    "GET /healthz with two Host headers, the daemon's and evil.example",
    "400 bad_request (a proxy may route by one Host and the daemon check the other)",
)
def two_host_headers(t):
    a = t.request("GET", "/healthz", headers=["Host: evil.example"])
    return a.status == 400, str(a)


@probe(
    "foreign_host",
    "GET /v1/session with Host: evil.example (what a DNS-rebinding page sends), on loopback",
    "421 wrong_host",
)
def foreign_host(t):
    if not t.loopback():
        raise Skip("the daemon is not on a loopback address (the token is the door there)")
    data = f"GET /v1/session HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n".encode()
    a = Answer(t.raw(data))
    return a.status == 421 and a.error() == "wrong_host", str(a)


@probe(
    "cross_site_post",
    "POST /v1/events as text/plain (a cross-site form may send it without asking first)",
    "415 unsupported_media_type, nothing read or stored",
)
def cross_site_post(t):
    a = t.request("POST", "/v1/events", headers=["Content-Type: text/plain"], body=b"{}", auth=True)
    return a.status == 415, str(a)


@probe(
    "no_token",
    "GET /v1/events with no Authorization header",
    "401 unauthorized",
    needs=("token",),
)
def no_token(t):
    a = t.request("GET", "/v1/events?limit=1")
    return a.status == 401, str(a)


@probe(
    "readyz_to_a_stranger",
    "GET /readyz with no token",
    "200 `ready`, or 503 without the store's error text",
)
def readyz_to_a_stranger(t):
    a = t.request("GET", "/readyz")
    if a.status == 200:
        return a.body.strip() == "ready", str(a)
    return a.status == 503 and "details with the token" in a.body, str(a)


@probe(
    "request_smuggling",
    "POST /v1/events with both Content-Length and Transfer-Encoding: chunked, a second request "
    "hidden in the body, on a connection kept alive",
    "at most one answer, then the connection closed (RFC 9112 6.3): the hidden request never "
    "answered",
)
def request_smuggling(t):
    body = f"0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: {t.host_header}\r\n\r\n".encode()
    data = (
        f"POST /v1/events HTTP/1.1\r\nHost: {t.host_header}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode() + body
    started = time.monotonic()
    got = t.raw(data, timeout=3.0)
    closed = time.monotonic() - started < 2.9
    answers = got.count(b"HTTP/1.1 ")
    saw = f"{Answer(got)}; {answers} answer(s); connection {'closed' if closed else 'kept open'}"
    return answers <= 1 and closed, saw


@probe(
    "huge_header",
    "GET /healthz with a 1 MiB header",
    "431 or 400, or the connection closed: never read whole into memory and answered 200",
)
def huge_header(t):
    data = (
        f"GET /healthz HTTP/1.1\r\nHost: {t.host_header}\r\nX-Big: " + "a" * (1 << 20) + "\r\nConnection: close\r\n\r\n"
    ).encode()
    try:
        a = Answer(t.raw(data))
    except OSError as e:
        return True, f"closed while sending ({e.__class__.__name__})"
    return a.status != 200, str(a)


@probe(
    "last_event_id_overflow",
    "GET /v1/stream with Last-Event-ID: 18446744073709551615 (resume after the largest seq)",
    "400 bad_parameter, the daemon still up",
)
def last_event_id_overflow(t):
    a = t.request("GET", "/v1/stream", headers=["Last-Event-ID: 18446744073709551615"], auth=True)
    up = t.request("GET", "/healthz").status == 200
    return a.status == 400 and up, f"{a}; /healthz {'up' if up else 'DOWN'}"


@probe(
    "what_if_value_out_of_range",
    "GET /v1/whatif?rule=unanswered_touches=4294967296 (one past u32)",
    "400: refused, never clamped and run as another value",
)
def what_if_value_out_of_range(t):
    a = t.request("GET", "/v1/whatif?rule=unanswered_touches%3D4294967296", auth=True)
    return a.status == 400, str(a)


@probe(
    "what_if_left_by_its_client",
    "GET /v1/whatif?sweep=gone_dark=0..9999 (10,000 values), then the connection closed after 1 s",
    "dealledger_whatifs_running back to 0 within 5 s: the work stops with its client",
    needs=("token",),
)
def what_if_left_by_its_client(t):
    sock = t.connect()
    sock.sendall(
        (
            f"GET /v1/whatif?sweep=gone_dark%3D0..9999 HTTP/1.1\r\nHost: {t.host_header}\r\n"
            f"Authorization: Bearer {t.token}\r\n\r\n"
        ).encode()
    )
    time.sleep(1.0)
    sock.close()
    deadline = time.monotonic() + 5.0
    running = metric(t, "dealledger_whatifs_running")
    while running and time.monotonic() < deadline:
        time.sleep(0.1)
        running = metric(t, "dealledger_whatifs_running")
    if running is None:
        return False, "no dealledger_whatifs_running in /metrics"
    return running == 0, f"what-ifs running 5 s after the client left: {running:.0f}"


@probe(
    "stalled_live_tails",
    "100 GET /v1/stream?from_seq=1 that never read a byte, then GET /v1/events?limit=1",
    "the page answered within 1 s; each stalled tail costs bytes (about 200 KiB), no thread",
    needs=("token",),
)
def stalled_live_tails(t):
    head = f"GET /v1/stream?from_seq=1 HTTP/1.1\r\nHost: {t.host_header}\r\nAuthorization: Bearer {t.token}\r\n\r\n"
    a, took = while_held(t, 100, head, lambda: t.request("GET", "/v1/events?limit=1", auth=True))
    return a.status == 200 and took < 1.0, f"{a.status} after {took:.2f} s with 100 stalled tails"


def while_held(t, count, head, then):
    """Opens `count` connections that send `head` and then neither send nor read, and times
    `then()` while they are held: its answer and seconds."""
    socks = []
    try:
        for _ in range(count):
            sock = t.connect()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(head.encode())
            socks.append(sock)
        time.sleep(0.5)
        started = time.monotonic()
        answer = then()
        return answer, time.monotonic() - started
    finally:
        for sock in socks:
            sock.close()


@probe(
    "unsigned_webhook_budget",
    "130 POST /v1/hooks/hubspot announcing 1 MiB each and sending none, then an authenticated "
    "POST /v1/events of `{}`",
    "400 for the write within 1 s (unsigned bodies have a budget of their own), not 503 queue_full",
    needs=("token", "hubspot"),
)
def unsigned_webhook_budget(t):
    head = (
        f"POST /v1/hooks/hubspot HTTP/1.1\r\nHost: {t.host_header}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n"
    )
    write = lambda: t.request("POST", "/v1/events", headers=["Content-Type: application/json"], body=b"{}", auth=True)
    a, took = while_held(t, 130, head, write)
    return a.status == 400 and took < 1.0, f"{a} after {took:.2f} s"


@probe(
    "connection_flood_from_one_address",
    "300 connections from this address, each a header half sent",
    "some refused with 503 too_many_connections naming connections_per_address_max, and the "
    "daemon answering again once they close",
)
def connection_flood_from_one_address(t):
    socks = []
    refused = 0
    per_address = False
    try:
        for _ in range(300):
            try:
                sock = t.connect()
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")
                socks.append(sock)
            except OSError:
                refused += 1
        deadline = time.monotonic() + 2.0
        pending = list(socks)
        while pending and time.monotonic() < deadline:
            readable, _, _ = select.select(pending, [], [], 0.2)
            if not readable:
                break
            for sock in readable:
                pending.remove(sock)
                try:
                    data = sock.recv(4096)
                except OSError:
                    data = b""
                if b"too_many_connections" in data:
                    refused += 1
                    per_address = per_address or b"connections_per_address_max" in data
    finally:
        for sock in socks:
            sock.close()
    deadline = time.monotonic() + 5.0
    up = False
    while not up and time.monotonic() < deadline:
        up = t.request("GET", "/healthz").status == 200
        if not up:
            time.sleep(0.1)
    saw = f"{refused} of 300 refused ({'per address' if per_address else 'by the total cap only'}); " + (
        "answering again" if up else "NOT answering 5 s after they closed"
    )
    return per_address and up, saw


@probe(
    "session_expires",
    "POST /v1/session with the right token",
    "204 and a session cookie with Max-Age (at most a day), HttpOnly, SameSite=Strict",
    needs=("token",),
)
def session_expires(t):
    body = json.dumps({"token": t.token}).encode()
    a = t.request("POST", "/v1/session", headers=["Content-Type: application/json"], body=body)
    cookie = a.headers.get("set-cookie", "")
    fields = {p.strip().split("=", 1)[0].lower(): p.strip() for p in cookie.split(";")}
    max_age = fields.get("max-age", "").partition("=")[2]
    ok = (
        a.status == 204
        and max_age.isdigit()
        and 0 < int(max_age) <= 86400
        and "httponly" in fields
        and fields.get("samesite", "").lower() == "samesite=strict"
    )
    return ok, f"{a.status} Set-Cookie: {cookie.split('=', 1)[0]}=...; " + "; ".join(
        v for k, v in fields.items() if k != cookie.split("=", 1)[0].lower()
    )


@probe(
    "sign_in_guessing",
    "15 POST /v1/session with wrong tokens in a row (runs last: a healthy daemon then refuses "
    "every credential from this address for a minute)",
    "401 at first, then 429 too_many_attempts with Retry-After from the 11th at the latest",
    needs=("token",),
)
def sign_in_guessing(t):
    statuses = []
    last = None
    for i in range(15):
        body = json.dumps({"token": f"wrong-guess-{i:04d}-of-the-probe"}).encode()
        last = t.request("POST", "/v1/session", headers=["Content-Type: application/json"], body=body)
        statuses.append(last.status)
    throttled_from = next((i + 1 for i, s in enumerate(statuses) if s == 429), None)
    ok = (
        throttled_from is not None
        and throttled_from <= 11
        and last.status == 429
        and last.error() == "too_many_attempts"
        and "retry-after" in last.headers
    )
    return ok, f"statuses {statuses}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", nargs="?", help="the daemon, http://HOST:PORT")
    parser.add_argument("--token-file", help="file holding the daemon's token (else DEALLEDGER_TOKEN)")
    parser.add_argument("--hubspot", action="store_true", help="the daemon has [hubspot]: probe the webhook too")
    parser.add_argument("--only", help="comma-separated probe names")
    parser.add_argument("--list", action="store_true", help="list the probes and what a healthy daemon answers")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.list:
        for p in PROBES:
            needs = f" (needs {', '.join(p['needs'])})" if p["needs"] else ""
            print(f"{p['name']}{needs}\n  sends:   {p['sends']}\n  healthy: {p['healthy']}")
        return 0
    if not args.url:
        parser.error("the daemon's URL is required (or --list)")
    token = None
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            token = f.read().strip()
    else:
        token = os.environ.get("DEALLEDGER_TOKEN") or None
    target = Target(args.url, token, args.hubspot)
    try:
        target.request("GET", "/healthz")
    except OSError as e:
        print(f"probe: cannot reach {args.url}: {e}", file=sys.stderr)
        return 2
    only = set(args.only.split(",")) if args.only else None
    unknown = (only or set()) - {p["name"] for p in PROBES}
    if unknown:
        parser.error(f"no such probe: {', '.join(sorted(unknown))} (see --list)")
    results = []
    for p in PROBES:
        if only and p["name"] not in only:
            continue
        missing = [n for n in p["needs"] if not (target.token if n == "token" else target.hubspot)]
        if missing:
            verdict, saw = "skipped", f"needs {' and '.join('a token' if n == 'token' else '--hubspot' for n in missing)}"
        else:
            try:
                ok, saw = p["run"](target)
                verdict = "ok" if ok else "HOLE"
            except Skip as why:
                verdict, saw = "skipped", str(why)
            except OSError as e:
                verdict, saw = "HOLE", f"{e.__class__.__name__}: {e}"
        results.append({"probe": p["name"], "verdict": verdict, "saw": saw, "healthy": p["healthy"]})
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        width = max(len(r["probe"]) for r in results) if results else 0
        for r in results:
            print(f"{r['verdict']:<8} {r['probe']:<{width}}  {r['saw']}")
            if r["verdict"] == "HOLE":
                print(f"{'':<8} {'':<{width}}  healthy: {r['healthy']}")
        holes = sum(r["verdict"] == "HOLE" for r in results)
        skipped = sum(r["verdict"] == "skipped" for r in results)
        print(f"{len(results)} probes: {holes} holes, {skipped} skipped")
    return 1 if any(r["verdict"] == "HOLE" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
