"""The one MQTT contract every role speaks: topics (topics.py), documented in docs/mqtt.md."""
