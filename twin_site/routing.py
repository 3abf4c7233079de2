from django.urls import path

from runs import consumers

websocket_urlpatterns = [
    path("ws/events/", consumers.EventsConsumer.as_asgi()),
    path("ws/runs/<uuid:run_id>/", consumers.RunEventsConsumer.as_asgi()),
    path("ws/runs/<uuid:run_id>/live", consumers.LiveViewConsumer.as_asgi()),
]
