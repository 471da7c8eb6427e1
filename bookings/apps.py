from django.apps import AppConfig


class BookingsConfig(AppConfig):
    name = "bookings"
    verbose_name = "Calendly bookings"

    def ready(self) -> None:
        from bookings import attention

        attention.register()
