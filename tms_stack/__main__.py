"""Entry point of the Pulumi program (`Pulumi.yaml`: main: tms_stack/)."""

from tms_stack.program import run

run()
