"""tms-stack: GitOps fleets of NVIDIA Triton Inference Servers on Kubernetes."""

API_VERSION = "tms-stack/v1"
__version__ = "0.1.0"
