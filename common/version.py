"""Versions both ends report in Hello."""

SOFTWARE_VERSION = "0.1.0"

# Bumped whenever the meaning of a message or field changes in a way an older
# peer would misread; a sender refuses a receiver that speaks another version.
PROTOCOL_VERSION = 2
