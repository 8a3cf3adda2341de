#!/usr/bin/env python3
"""details (HTTP, Python 3 standard library only): book details by id.

The demo's non-JavaScript service: the mesh does not care what the app is
written in; its sidecar handles discovery, mTLS, retries and metrics.
"""
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BOOKS = {
    1: {"title": "The Comedy of Errors", "author": "William Shakespeare", "year": 1595, "pages": 200},
    2: {"title": "Twelfth Night", "author": "William Shakespeare", "year": 1602, "pages": 180},
    3: {"title": "The Tempest", "author": "William Shakespeare", "year": 1611, "pages": 160},
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        parts = self.path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "details" and parts[1].isdigit() and int(parts[1]) in BOOKS:
            book = dict(BOOKS[int(parts[1])])
            book["id"] = int(parts[1])
            book["served_by"] = "details (python %d.%d, %s)" % (sys.version_info[0], sys.version_info[1], os.environ.get("TRELLIS_WORKLOAD", "local"))
            # Set by the inbound sidecar for calls that arrived over mTLS.
            caller = self.headers.get("x-trellis-peer-identity")
            if caller:
                book["caller"] = caller
            self.reply(200, book)
        else:
            self.reply(404, {"error": "not found", "path": self.path})

    def reply(self, status, body):
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        pass  # the sidecar logs every request


def main():
    port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("TRELLIS_PORTS", "9080").split(",")[0])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("details listening on 127.0.0.1:%d (python)" % port, flush=True)
    try:
        server.serve_forever()
    except SystemExit:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
