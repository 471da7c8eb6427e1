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
        self._attach_batch_hooks()

    @staticmethod
    def _attach_batch_hooks() -> None:
        """Let the pipeline sync several waiting bookings at once (crm.batching), read ahead first."""
        from crm import batching, sync

        batching.reconcile_batch.prepare = batching.lookup_batch  # type: ignore[attr-defined]
        sync.reconcile.batch = batching.reconcile_batch  # type: ignore[attr-defined]
