"""API routes of the positions app."""

urlpatterns: list = []
