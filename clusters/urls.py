from __future__ import annotations

app_name = "clusters"
urlpatterns: list = []
