"""`POST /api/v1/findings/`: GuardDuty findings pushed by an EventBridge API destination or SNS.

Authenticated by an API token with the `findings:write` scope (`Authorization: Bearer …`) or by an
HMAC signature header (`X-Watchpost-Signature`, see integrations.signing), never by a session cookie.
An authenticated body is stored before it is parsed and answered 202 with the result per finding;
what cannot be ingested is quarantined and answered with a problem+json 4xx naming it.
"""

import logging
import time
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from incidents.models import InboundPayload, QuarantinedDocument
from incidents.services.findings import REJECTED, IngestReport, payload_receive, payload_store
from integrations import signing
from integrations.services import TokenError, api_token_authenticate

log = logging.getLogger("watchpost.security")


def problem(status: int, title: str, detail: str, **extra: Any) -> JsonResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail} | extra
    return JsonResponse(body, status=status, content_type="application/problem+json")


def _read_body(request: HttpRequest, limit: int) -> bytes:
    # request.read, not request.body: the limit here is ours, not DATA_UPLOAD_MAX_MEMORY_SIZE's.
    return request.read(limit + 1)


def _report_json(report: IngestReport) -> dict[str, Any]:
    return {
        "payload": report.payload_id,
        "counts": report.counts,
        "results": [
            {"status": r.status, "finding": r.finding_key or None, "incident": r.incident_id}
            | ({"reason": r.reason, "position": r.position} if r.status == REJECTED else {})
            for r in report.results
        ],
    }


def _replayed(signature: signing.ParsedSignature) -> bool:
    # The same signature twice within the window is a replay; cache.add is atomic on Redis.
    return not cache.add(f"webhook-sig:{signature.digests[0]}", 1, timeout=2 * signing.TOLERANCE_SECONDS)


EXCERPT_BYTES = 64 * 1024


def _oversized(request: HttpRequest, body: bytes, limit: int, address: str | None) -> JsonResponse:
    """Too large to verify; a sender with a well-formed, current signature header still gets its
    delivery recorded (an excerpt, bounded) so the refusal is visible in the quarantine."""
    detail = f"the body is larger than the {limit}-byte limit (WATCHPOST_WEBHOOK_MAX_BYTES)"
    try:
        signature = signing.parse(request.headers.get(signing.HEADER, ""))
    except signing.SignatureError:
        return problem(413, "Payload too large", detail)
    if abs(time.time() - signature.timestamp) > signing.TOLERANCE_SECONDS:
        return problem(413, "Payload too large", detail)
    meta = {"address": address, "truncated_to": EXCERPT_BYTES, "content_length": request.headers.get("Content-Length")}
    payload = payload_store(source=InboundPayload.Source.WEBHOOK, body=body[:EXCERPT_BYTES], meta=meta)
    QuarantinedDocument.objects.create(payload=payload, reason=detail + "; the first 64 KiB are kept")
    InboundPayload.objects.filter(pk=payload.pk).update(status=InboundPayload.Status.REJECTED)
    return problem(413, "Payload too large", detail, payload=payload.pk)


@csrf_exempt  # no cookies are used here: the signature authenticates the body
@login_not_required
@require_POST
def findings_webhook(request: HttpRequest) -> JsonResponse:
    limit = settings.WATCHPOST_WEBHOOK_MAX_BYTES
    body = _read_body(request, limit)
    address = request.META.get("REMOTE_ADDR")
    if len(body) > limit:
        return _oversized(request, body, limit, address)
    if "Authorization" in request.headers:
        try:
            token = api_token_authenticate(
                header=request.headers["Authorization"], scope="findings:write", address=address
            )
        except TokenError as exc:
            log.warning("findings webhook refused address=%s reason=%s", address, exc)
            return problem(exc.status, "Not authorized" if exc.status == 403 else "Invalid token", str(exc))
        meta: dict[str, Any] = {"address": address, "token": f"wp_{token.key_id}"}
    else:
        try:
            signature = signing.verify(
                header=request.headers.get(signing.HEADER, ""),
                body=body,
                secrets=settings.WATCHPOST_FINDINGS_WEBHOOK_SECRETS,
            )
        except signing.SignatureError as exc:
            log.warning("findings webhook refused address=%s reason=%s", address, exc)
            return problem(401, "Signature required", f"{exc} (or send a Bearer token with the findings:write scope)")
        if _replayed(signature):
            return problem(409, "Replayed delivery", "this signature was already used; sign each delivery anew")
        meta = {"address": address, "signed_at": signature.timestamp}
    meta["content_type"] = request.content_type
    report = payload_receive(source=InboundPayload.Source.WEBHOOK, body=body, meta=meta)  # answered once committed
    if report.results and all(r.status == REJECTED for r in report.results):
        reasons = "; ".join(r.reason for r in report.results[:5])
        return problem(422, "No finding could be ingested", reasons, **_report_json(report))
    return JsonResponse(_report_json(report), status=202)
