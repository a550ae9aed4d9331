"""Reading and writing a fleet repository: YAML with positions, the tree of leases, pools and
policies, the placement lock, stack files, and git. Depends only on `tms_stack.models`."""
