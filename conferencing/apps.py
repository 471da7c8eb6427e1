from django.apps import AppConfig


class ConferencingConfig(AppConfig):
    name = "conferencing"
    verbose_name = "Zoom meetings"

    def ready(self) -> None:
        from bookings.admin_extensions import register_column
        from conferencing import checks  # noqa: F401  (registers the system checks)
        from conferencing.admin import booking_zoom_meeting

        register_column("zoom", "Zoom meeting", booking_zoom_meeting, order=20)
