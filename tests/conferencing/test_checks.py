import pytest

from conferencing.checks import check_zoom_settings

pytestmark = pytest.mark.django_db  # the package's autouse fixture clears the (database) cache


def test_settings_are_fine_by_default():
    assert check_zoom_settings(None) == []


@pytest.mark.parametrize(
    ("changes", "check_id"),
    [({"ZOOM_AUTO_RECORDING": "always"}, "conferencing.E001"), ({"ZOOM_CLIENT_ID": "abc"}, "conferencing.W001")],
)
def test_bad_zoom_settings_are_reported(settings, changes, check_id):
    for name, value in changes.items():
        setattr(settings, name, value)
    assert [p.id for p in check_zoom_settings(None)] == [check_id]
