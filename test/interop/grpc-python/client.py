"""A proxyless gRPC C-core (Python grpcio) xDS client for Trellis's interop tests.

It reads GRPC_XDS_BOOTSTRAP, dials the xds:/// target in XDS_TARGET and
answers commands on stdin, one JSON line each, with one JSON line on stdout
(the protocol of test/interop/grpc-go/main.go):

  {"n":10,"deadlineMs":1000,"method":"/echo.Echo/Call","metadata":{"k":"v"}}
  -> {"counts":{"v1":7,"v2":3},"errors":{"UNAVAILABLE":1}}

Backends answer with their name as raw bytes: no generated code, the
serializers are left out so bytes go through unchanged.
"""
import json
import os
import sys

import grpc


def main() -> None:
    target = os.environ["XDS_TARGET"]
    channel = grpc.insecure_channel(target)
    calls = {}
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        try:
            cmd = json.loads(line)
        except ValueError as e:
            print(f"grpc-python-xds: bad command: {e}", file=sys.stderr, flush=True)
            continue
        method = cmd.get("method") or "/echo.Echo/Call"
        if method not in calls:
            calls[method] = channel.unary_unary(method)
        deadline = (cmd.get("deadlineMs") or 2000) / 1000
        metadata = tuple((cmd.get("metadata") or {}).items())
        counts, errors = {}, {}
        for _ in range(cmd.get("n", 1)):
            try:
                resp = calls[method](b"x", timeout=deadline, metadata=metadata)
                name = resp.decode()
                counts[name] = counts.get(name, 0) + 1
            except grpc.RpcError as e:
                code = e.code().name
                errors[code] = errors.get(code, 0) + 1
        print(json.dumps({"counts": counts, "errors": errors}), flush=True)
    channel.close()


if __name__ == "__main__":
    main()
