"""Signs webhook bodies the way independent implementations do, for wasmhook's interop test.

Reads one JSON request per line on stdin and writes one JSON answer per line:
  {"scheme": "standard-webhooks" | "github" | "stripe" | "slack" | "shopify",
   "secret": "...", "id": "...", "timestamp": <unix seconds>, "body": "<base64>"}
  -> {"headers": {"name": "value", ...}}

Standard Webhooks signatures come from the `standardwebhooks` package (the reference Python
library); the other schemes are computed with Python's own hmac module from their published
descriptions. Nothing here shares code with wasmhook.
"""

import base64
import hashlib
import hmac
import json
import sys
from datetime import datetime, timezone

from standardwebhooks.webhooks import Webhook


def sign(request):
    scheme = request["scheme"]
    secret = request["secret"]
    body = base64.b64decode(request["body"])
    ts = int(request["timestamp"])
    msg_id = request["id"]
    if scheme == "standard-webhooks":
        when = datetime.fromtimestamp(ts, tz=timezone.utc)
        signature = Webhook(secret).sign(msg_id=msg_id, timestamp=when, data=body.decode())
        return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}
    key = secret.encode()
    if scheme == "github":
        digest = hmac.new(key, body, hashlib.sha256).hexdigest()
        return {"X-Hub-Signature-256": "sha256=" + digest, "X-GitHub-Delivery": msg_id,
                "X-GitHub-Event": "push"}
    if scheme == "stripe":
        digest = hmac.new(key, f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
        return {"Stripe-Signature": f"t={ts},v1={digest}"}
    if scheme == "slack":
        digest = hmac.new(key, f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": "v0=" + digest}
    if scheme == "shopify":
        digest = base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()
        return {"X-Shopify-Hmac-Sha256": digest, "X-Shopify-Webhook-Id": msg_id,
                "X-Shopify-Topic": "orders/create"}
    raise ValueError(f"unknown scheme {scheme}")


def main():
    for line in sys.stdin:
        if line.strip():
            print(json.dumps({"headers": sign(json.loads(line))}), flush=True)


if __name__ == "__main__":
    main()
