"""ovirt-cloudprovider: a Kubernetes cloud-provider sidecar for oVirt."""

__version__ = "0.1.0"
