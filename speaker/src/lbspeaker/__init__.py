"""baremetal.lb speaker: announces service IPs over Layer 2 and BGP."""

__version__ = "0.1.0"
