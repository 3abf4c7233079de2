from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from .models import Membership


@login_required
@require_POST
def switch_tenant(request: HttpRequest) -> HttpResponse:
    membership = get_object_or_404(Membership, user=request.user, tenant__slug=request.POST.get("tenant", ""))
    request.session["tenant_id"] = membership.tenant_id
    target = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/"
    return HttpResponseRedirect(target)
