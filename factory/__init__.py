"""factory: an edge-deployment model factory (NAT2 search over OFAv2 super-networks)."""

__version__ = "0.1.0"
