"""The client-go pieces the Python client lacks: reflector, work queue, events, leader election, patches.

Objects are handled as the plain JSON dicts the API server sends: they are cheap to decode and
compare, which matters with thousands of Services.
"""
