"""A webhook receiver that checks signatures with the `standardwebhooks` package.

    WEBHOOK_SECRET=whsec_... python examples/receiver.py [port]

Answers 204 to a correctly signed request and 400 to anything else.
"""

from __future__ import annotations

import http.server
import json
import os
import sys

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

webhook = Webhook(os.environ["WEBHOOK_SECRET"])


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            event = webhook.verify(body, dict(self.headers))
        except WebhookVerificationError as exc:
            print(f"rejected: {exc}", flush=True)
            self.send_response(400)
        else:
            # webhook-id is the same on every retry: use it to drop duplicates.
            print(f"verified {self.headers['webhook-id']}: {json.dumps(event)}", flush=True)
            self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    print(f"listening on http://127.0.0.1:{port}/", flush=True)
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
