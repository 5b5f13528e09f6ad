"""API routes of the trading app."""

from django.urls import path

from trading.api import SyncClosePositionsView, SyncNewTradesView

urlpatterns = [
    path("sync_new_trades", SyncNewTradesView.as_view(), name="sync-new-trades"),
    path("sync_close_positions", SyncClosePositionsView.as_view(), name="sync-close-positions"),
]
