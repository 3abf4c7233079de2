"""The browser engine: the executor, the host browser and its egress proxy, the live view, the
session recording and its video, restore verification, and scrubbing/masking.

Not a Django app (no models): it uses ``runs.models`` and records through ``runs.events``;
``runs/`` is the web/API side that calls it (``runs.tasks``, ``runs.consumers``)."""
