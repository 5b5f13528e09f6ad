"""API routes of the instruments app."""

urlpatterns: list = []
