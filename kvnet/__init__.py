"""kvnet: network virtualization for small and medium KVM private clouds."""

__version__ = "0.1.0"
