#!/usr/bin/env python3
"""verify_webhook.py: checks Standard Webhooks signatures with Python's own
hmac, hashlib and base64 (an implementation independent of sluice's C one),
the way a backend verifies a call by hand:

  signed content = webhook-id + "." + webhook-timestamp + "." + body
  signature      = base64(HMAC-SHA256(base64decode(secret minus "whsec_"), content))

Usage: verify_webhook.py ID TIMESTAMP SIGNATURE_HEADER BODY_FILE SECRET...
Exits 0 when the header holds exactly one valid "v1," signature per secret,
in the order of the secrets; else prints what is wrong and exits 1."""
import base64
import hashlib
import hmac
import sys


def expected(secret, msg_id, ts, body):
    key = base64.b64decode(secret[len("whsec_"):])
    content = msg_id.encode() + b"." + ts.encode() + b"." + body
    return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def main(argv):
    if len(argv) < 6:
        print(__doc__, file=sys.stderr)
        return 2
    msg_id, ts, header, body_file = argv[1:5]
    secrets = argv[5:]
    with open(body_file, "rb") as f:
        body = f.read()
    got = header.split(" ")
    want = ["v1," + expected(s, msg_id, ts, body) for s in secrets]
    if len(got) != len(want):
        print(f"{len(got)} signatures for {len(want)} secrets: {header}")
        return 1
    for i, (g, w) in enumerate(zip(got, want)):
        if not hmac.compare_digest(g, w):
            print(f"signature {i} does not verify: got {g}, want {w}")
            return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
