"""The edge gateway role: seat links over serial, bridged to MQTT without losing an event."""
