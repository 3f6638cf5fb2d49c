#!/usr/bin/env python3
"""The probes' own test: each must find a hole in a daemon that has them all.

The "daemon" here is the naive server the red team's findings describe: it answers 200 to any
request (any Host, any type, any token, any parameter), reads whatever it is sent (a 1 MiB
header, a body it was promised), keeps every connection alive, streams forever to a client that
does not read, and serves connections on a fixed pool of threads that such clients hold. Every
probe must say HOLE against it: a probe that passes here could not fail.
(`tests/e2e/holes.rs` runs the probes against the real daemon, where each must say ok.)

    python3 scripts/probe_test.py
"""

import json
import os
import socket
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import probe  # noqa: E402

THREADS_MAX = 50


class NaiveServer:
    def __init__(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1024)
        self.port = self.listener.getsockname()[1]
        self.pool = threading.Semaphore(THREADS_MAX)
        self.stopped = False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.stopped:
            self.pool.acquire()
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        try:
            buffered = b""
            while True:
                while b"\r\n\r\n" not in buffered:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffered += chunk
                head, _, buffered = buffered.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length" and value.strip().isdigit():
                        length = int(value.strip())
                while len(buffered) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffered += chunk
                buffered = buffered[length:]
                if lines[0].startswith("GET /v1/stream"):
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
                    while True:
                        conn.sendall(b"id: 1\nevent: event\ndata: {}\n\n" * 100)
                body = b"{}"
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n" + body)
                if any(line.lower().replace(" ", "") == "connection:close" for line in lines[1:]):
                    return
        except OSError:
            return
        finally:
            conn.close()
            self.pool.release()

    def stop(self):
        self.stopped = True
        self.listener.close()


class EveryProbeFindsTheNaiveServersHole(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = NaiveServer()
        cls.url = f"http://127.0.0.1:{cls.server.port}"

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_each_probe_says_hole(self):
        target = probe.Target(self.url, "a-token-the-naive-server-takes-and-ignores", hubspot=True)
        for p in probe.PROBES:
            with self.subTest(probe=p["name"]):
                try:
                    ok, saw = p["run"](target)
                except OSError as e:
                    ok, saw = False, str(e)
                self.assertFalse(ok, f"{p['name']} found no hole in the naive server: {saw}")

    def test_the_command_line_reports_holes_and_exits_1(self):
        from io import StringIO
        from contextlib import redirect_stdout

        out = StringIO()
        os.environ["DEALLEDGER_TOKEN"] = "a-token-the-naive-server-takes-and-ignores"
        with redirect_stdout(out):
            code = probe.main([self.url, "--json", "--only", "two_host_headers,no_token,cross_site_post"])
        self.assertEqual(code, 1)
        results = json.loads(out.getvalue())
        self.assertEqual([r["verdict"] for r in results], ["HOLE", "HOLE", "HOLE"], results)

    def test_every_probe_says_what_it_sends_and_what_is_healthy(self):
        names = [p["name"] for p in probe.PROBES]
        self.assertEqual(len(names), len(set(names)))
        for p in probe.PROBES:
            self.assertTrue(p["sends"] and p["healthy"], p["name"])
        self.assertEqual(names[-1], "sign_in_guessing", "the probe that locks the address out runs last")


if __name__ == "__main__":
    unittest.main(verbosity=2)
