from django.apps import AppConfig


class ConferencingConfig(AppConfig):
    name = "conferencing"
    verbose_name = "Zoom meetings"

    def ready(self) -> None:
        from conferencing import checks  # noqa: F401  (registers the system checks)
