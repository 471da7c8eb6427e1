from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = "Kommo CRM"

    def ready(self) -> None:
        from bookings.admin_extensions import register_attention_count, register_column, register_search_field
        from crm import checks  # noqa: F401  (registers the system checks)
        from crm.admin import booking_deal
        from crm.review_admin import review_count, review_sentence, review_url

        register_column("deal", "Kommo deal", booking_deal, order=10, select_related=("kommo_link",))
        register_search_field("=kommo_link__lead_id")  # a deal id typed in the booking search finds it
        register_attention_count("review", review_count, review_sentence, review_url, order=30)
