"""The Pulumi program (`tms_stack/__main__.py` runs `deploy.program.run`)."""
