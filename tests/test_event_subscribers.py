"""runs.events reaches the apps that react to events through its subscriber registry."""

from approvals import notify
from runs import events
from skills import learning
from webhooks import services as webhook_services


def test_webhook_deliveries_then_notifications_then_learning_are_subscribed_once():
    handlers = [handler for _, handler in events.event_subscribers]
    assert handlers == [webhook_services.on_run_event, notify.on_run_event, learning.on_run_event]
    events.subscribe(notify.on_run_event, order=0)  # again: no second call, no new place
    assert [handler for _, handler in events.event_subscribers] == handlers
