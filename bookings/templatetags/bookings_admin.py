"""The admin index's "needs a person" banner: failed events, failing bookings, the review queue…"""

from django import template

from bookings.admin_extensions import attention_counts

register = template.Library()


@register.inclusion_tag("admin/bookings/attention_banner.html", takes_context=True)
def needs_a_person_banner(context) -> dict:
    user = context["request"].user
    lines = []
    for item in attention_counts():
        count = item.count(user)
        if count:
            lines.append({"name": item.name, "text": item.sentence(count), "url": item.url()})
    return {"lines": lines}
