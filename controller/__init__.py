"""Call-transfer controller for Kamailio and rtpengine."""
