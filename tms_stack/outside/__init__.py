"""Systems outside the repository: the Kubernetes API, Prometheus, model repositories and model
sources. Beside `tms_stack.repo` in the layering: depends only on `tms_stack.models`."""
