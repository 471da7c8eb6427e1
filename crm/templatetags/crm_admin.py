"""The admin index's "N meetings wait for review" banner."""

from django import template
from django.urls import reverse

from crm.models import ReviewItem

register = template.Library()


@register.inclusion_tag("admin/crm/review_banner.html", takes_context=True)
def review_queue_banner(context) -> dict:
    user = context["request"].user
    if not user.has_perm("crm.view_reviewitem"):
        return {"count": 0}
    return {"count": ReviewItem.objects.count(), "url": reverse("admin:crm_reviewitem_changelist")}
