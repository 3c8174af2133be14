"""Per-task webhooks: a task submitted with a `callback_url` is POSTed a signed `WebhookEvent` when it ends.

`signing` (the `X-QQueue-Signature` header, and `verify` for receivers), `targets` (which URLs may be called:
the allow-list, checked at submission and again at each send), `deliverer` (the worker's thread that sends
due deliveries, with retries and backoff, recorded in qqueue.webhook_deliveries).
"""

from qqueue.webhooks.signing import SIGNATURE_HEADER, sign, signature_header, verify

__all__ = ["SIGNATURE_HEADER", "sign", "signature_header", "verify"]
