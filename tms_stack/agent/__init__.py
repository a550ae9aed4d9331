"""`tms agent`: runs beside Triton in every pod and makes Triton hold exactly the desired models."""
