from django.apps import AppConfig


class ConferencingConfig(AppConfig):
    name = "conferencing"
    verbose_name = "Zoom meetings"
