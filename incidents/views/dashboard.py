"""The managers' home: open cases by phase × severity, SLA state and breaches, response times, slow steps."""

from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from incidents import charts, metrics, permissions
from incidents.views.common import AuthedRequest, int_or_none


@require_GET
def home(request: AuthedRequest) -> HttpResponse:
    """Managers land on the dashboard, everyone else on the incident list."""
    target = "incidents:dashboard" if permissions.can_manage(request.user) else "incidents:list"
    return HttpResponseRedirect(reverse(target))


@require_GET
def dashboard(request: AuthedRequest) -> HttpResponse:
    if not permissions.can_manage(request.user):
        return render(request, "403.html", {"message": "The dashboard is for managers."}, status=403)
    days = int_or_none(request.GET.get("days"))
    days = days if days in metrics.PERIOD_DAYS else metrics.DEFAULT_PERIOD_DAYS
    now = timezone.now()
    period = metrics.Period.last(days, now=now)
    user = request.user
    by_type = metrics.response_times_by(user=user, period=period, field="finding_type")
    by_cluster = metrics.response_times_by(user=user, period=period, field="cluster_name")
    bucket, trend = metrics.response_trend(user=user, period=period)
    context = {
        "period": period,
        "periods": metrics.PERIOD_DAYS,
        "now": now,
        "matrix": metrics.open_matrix(user=user),
        "sla_rows": metrics.sla_by_priority(user=user, period=period, now=now),
        "breaches": metrics.sla_breaches(user=user, period=period, now=now),
        "overall": metrics.response_times_overall(user=user, period=period),
        "by_type": by_type,
        "by_cluster": by_cluster,
        "type_chart": charts.bar_chart(
            title="Response times by finding type", rows=[(r.label, _cases(r.incidents), r.url, r) for r in by_type]
        ),
        "cluster_chart": charts.bar_chart(
            title="Response times by cluster", rows=[(r.label, _cases(r.incidents), r.url, r) for r in by_cluster]
        ),
        "trend_bucket": bucket,
        "trend_chart": charts.line_chart(title=f"Response times per {bucket}", points=[(p.day, p) for p in trend]),
        "steps": metrics.step_durations(user=user, period=period),
        "clusters": metrics.open_by_cluster(user=user, now=now),
    }
    return render(request, "incidents/dashboard.html", context)


def _cases(count: int) -> str:
    return f"{count} case{'' if count == 1 else 's'}"
