from django.apps import AppConfig


class CalsyncConfig(AppConfig):
    name = "calsync"
    verbose_name = "calsync"

    def ready(self) -> None:
        from calsync import checks  # noqa: F401  (registers the system checks)
        from calsync.http import on_api_call
        from calsync.metrics import observe_api_call

        on_api_call(observe_api_call)  # every external API call made through build_session is counted
