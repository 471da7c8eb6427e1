"""manage.py calendly_webhook subscribe|list|delete|check — the Calendly webhook subscription."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from bookings import subscriptions
from bookings.calendly_api import CalendlyClient, CalendlyError

EXIT_DISABLED = 1
EXIT_MISSING = 2
EXIT_INCOMPLETE = 3


def describe(sub: dict) -> str:
    events = ", ".join(sub.get("events") or [])
    line = f"{sub.get('uri', '?')}\n  state: {sub.get('state', '?')}  scope: {sub.get('scope', '?')}"
    line += f"\n  url: {sub.get('callback_url', '?')}\n  events: {events}\n  created: {sub.get('created_at', '?')}"
    if sub.get("retry_started_at"):
        line += f"\n  failing since: {sub['retry_started_at']}"
    return line


class Command(BaseCommand):
    help = "Manage the Calendly webhook subscription that feeds calsync (uses CALENDLY_API_TOKEN)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        subscribe = sub.add_parser("subscribe", help="subscribe a public URL to every kind calsync handles")
        subscribe.add_argument("--url", help="public webhook URL (default: CALENDLY_WEBHOOK_URL)")
        subscribe.add_argument("--scope", choices=["organization", "user"], help="default: CALENDLY_WEBHOOK_SCOPE")
        subscribe.add_argument(
            "--upgrade",
            action="store_true",
            help="replace an existing subscription that lacks a kind (the new one is created before the old "
            "one is deleted)",
        )
        listing = sub.add_parser("list", help="list the subscriptions in the scope")
        listing.add_argument("--scope", choices=["organization", "user"])
        delete = sub.add_parser("delete", help="delete a subscription by its URI")
        delete.add_argument("uri")
        check = sub.add_parser(
            "check", help="exit 0 when active, 1 when disabled, 2 when missing, 3 when it lacks a handled kind"
        )
        check.add_argument("--url", help="default: CALENDLY_WEBHOOK_URL")
        check.add_argument("--scope", choices=["organization", "user"])

    def handle(self, *args, **options) -> None:
        try:
            client = CalendlyClient.from_settings()
            getattr(self, f"do_{options['action']}")(client, options)
        except CalendlyError as exc:
            raise CommandError(str(exc)) from None

    def _url(self, options: dict) -> str:
        url = options.get("url") or settings.CALENDLY_WEBHOOK_URL
        if not url:
            raise CommandError("give --url https://…/webhooks/calendly/ (or set CALENDLY_WEBHOOK_URL)")
        if not url.startswith("https://"):
            self.stderr.write(self.style.WARNING("Calendly needs an https:// URL reachable from the internet."))
        return url

    def do_subscribe(self, client: CalendlyClient, options: dict) -> None:
        url = self._url(options)
        if options.get("upgrade"):
            return self._upgrade(client, url, options)
        result = subscriptions.subscribe(client, url, options.get("scope"))
        if not result.created:
            self.stdout.write(self.style.WARNING(f"{url} is already subscribed:"))
            self.stdout.write(describe(result.subscription))
            lacking = subscriptions.missing_kinds(result.subscription)
            if lacking and result.subscription.get("events"):
                self.stdout.write(
                    self.style.WARNING(f"It does not deliver {', '.join(lacking)}.")
                    + " Replace it safely with `calendly_webhook subscribe --upgrade`."
                )
            self.stdout.write(
                "Nothing changed. If calsync does not have that subscription's signing key, delete it "
                "(`calendly_webhook delete URI`) and subscribe again."
            )
            return
        self.stdout.write(self.style.SUCCESS("Subscribed:"))
        self.stdout.write(describe(result.subscription))
        if result.generated_key:
            # The only time anyone sees this key: Calendly never returns it.
            self.stdout.write(
                "\nCALENDLY_SIGNING_KEY was not set, so calsync generated the subscription's signing key.\n"
                "Put it in the environment (or .env) of every calsync process NOW and restart them;\n"
                "it is shown only this once and Calendly never shows it again:\n\n"
                f"CALENDLY_SIGNING_KEY={result.generated_key}\n"
            )
        else:
            self.stdout.write("Deliveries are signed with the key already in CALENDLY_SIGNING_KEY.")

    def _upgrade(self, client: CalendlyClient, url: str, options: dict) -> None:
        try:
            result = subscriptions.upgrade(client, url, options.get("scope"))
        except ValueError as exc:  # no signing key to give the new subscription
            raise CommandError(str(exc)) from None
        if result.new is None:
            self.stdout.write(result.detail)
            if result.old is None:
                raise CommandError(result.detail, returncode=EXIT_MISSING)
            return
        self.stdout.write(self.style.SUCCESS("Upgraded:"))
        self.stdout.write(describe(result.new))
        if not result.old_deleted:
            raise CommandError(result.detail)
        self.stdout.write(f"The old subscription {result.old.get('uri')} was deleted after the new one worked.")

    def do_list(self, client: CalendlyClient, options: dict) -> None:
        owner = subscriptions.find_owner(client, options.get("scope"))
        subs = client.list_webhook_subscriptions(**owner.list_kwargs())
        if not subs:
            self.stdout.write(f"No webhook subscriptions in {owner.scope} scope.")
        for sub in subs:
            self.stdout.write(describe(sub))

    def do_delete(self, client: CalendlyClient, options: dict) -> None:
        client.delete_webhook_subscription(options["uri"])
        self.stdout.write(self.style.SUCCESS(f"Deleted {options['uri']}."))

    def do_check(self, client: CalendlyClient, options: dict) -> None:
        url = self._url(options)
        owner = subscriptions.find_owner(client, options.get("scope"))
        result = subscriptions.check(client, url, owner)
        if result.state == "missing":
            raise CommandError(f"no webhook subscription for {url} in {owner.scope} scope", returncode=EXIT_MISSING)
        self.stdout.write(describe(result.subscription or {}))
        if result.state == "disabled":
            raise CommandError(
                "the subscription is DISABLED (Calendly gave up after 24 h of failed deliveries): "
                "recreate it, then run calendly_reconcile over the gap",
                returncode=EXIT_DISABLED,
            )
        if result.missing_kinds:
            raise CommandError(
                f"the subscription does not deliver {', '.join(result.missing_kinds)}, which calsync handles: "
                "replace it with `calendly_webhook subscribe --upgrade` (it creates the new subscription "
                "before deleting the old one)",
                returncode=EXIT_INCOMPLETE,
            )
        self.stdout.write(self.style.SUCCESS("active"))
