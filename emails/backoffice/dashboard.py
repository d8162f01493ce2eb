"""The admin's Delivery page: are codes going out, how fast, what fails, which languages fall
back. Drawn from ``emails_deliverystat`` (emails/delivery/stats.py) and, for what waits now,
the status index of ``emails_message``: a page view reads no more rows than the queue holds."""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils import timezone

from emails.delivery.circuits import failover_enabled, open_circuits
from emails.delivery.stats import RANGES, stats_for, waiting_now
from emails.models import Message, MessageStatus


def delivery(request, model_admin):
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    range_name = request.GET.get("range", "hour")
    if range_name not in RANGES:
        range_name = "hour"
    now = timezone.now()
    stats = stats_for(range_name, now=now)
    waiting = waiting_now()
    oldest = (  # the email itself, for its link: among the queued rows only
        Message.objects.filter(status=MessageStatus.QUEUED)
        .order_by("created_at")
        .only("pk", "created_at", "usage_type")
        .first()
        if waiting.queued
        else None
    )
    per_minute = 60 / stats.bucket_seconds
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Delivery",
        "opts": model_admin.model._meta,
        "range": range_name,
        "ranges": list(RANGES),
        "stats": stats,
        "finished": sum(stats.totals.values()),
        "queued": waiting.queued,
        "sending": waiting.sending,
        "oldest": oldest,
        "oldest_age": (now - oldest.created_at).total_seconds() if oldest else None,
        "failover": failover_enabled(),
        "open_circuits": open_circuits() if failover_enabled() else [],
        "chart_data": {
            "times": stats.times,
            "perMinute": {
                status: [round(count * per_minute, 2) for count in counts]
                for status, counts in stats.statuses.items()
            },
            "p50": stats.p50,
            "p95": stats.p95,
            "bucketSeconds": stats.bucket_seconds,
        },
        "rows": [
            {
                "at": timezone.localtime(datetime.fromtimestamp(at, tz=UTC)),
                "sent": stats.statuses["sent"][i],
                "failed": stats.statuses["failed"][i],
                "expired": stats.statuses["expired"][i],
                "p50": stats.p50[i],
                "p95": stats.p95[i],
            }
            for i, at in enumerate(stats.times)
            if any(stats.statuses[status][i] for status in stats.statuses)
        ],
    }
    return TemplateResponse(request, "admin/emails/delivery.html", context)
