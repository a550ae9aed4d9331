"""Entry point of the Pulumi program (`Pulumi.yaml`: main: tms_stack/)."""

from tms_stack.deploy.program import run

run()
