from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = "Kommo CRM"

    def ready(self) -> None:
        from bookings.admin_extensions import register_column
        from crm import checks  # noqa: F401  (registers the system checks)
        from crm.admin import booking_deal

        register_column("deal", "Kommo deal", booking_deal, order=10, select_related=("kommo_link",))
