"""Objects of one pool: a Deployment + desired-models ConfigMap per placed instance."""

from __future__ import annotations

from typing import Any

from tms_stack.desired import DesiredDocument, desired_lease
from tms_stack.models import Lease, Pool
from tms_stack.models.lock import PoolPlacement
from tms_stack.models.policies import RepositoriesSpec
from tms_stack.models.pool import k8s_pool_name
from tms_stack.render.labels import POOL, common_labels
from tms_stack.render.workload import Workload, render_workload
from tms_stack.resolve import EffectiveResources
from tms_stack.stack import StackSettings


def render_pool(pool: Pool, placement: PoolPlacement, leases: dict[str, Lease], image: str,
                resources: EffectiveResources, settings: StackSettings, repos: RepositoriesSpec,
                restricted: bool, triton_args: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for inst in sorted(placement.instances, key=lambda i: i.index):
        name = pool.instance_name(inst.index)
        labels = common_labels(settings, name, "pool-instance")
        labels[POOL] = k8s_pool_name(pool.name)
        desired = DesiredDocument(
            instance=name, repositorySize=resources.repository_size,
            leases=[desired_lease(leases[n], repos) for n in inst.leases if n in leases],
        )
        # Pool instances never scale by HPA; their lease set changes through the ConfigMap only,
        # which the agent applies without restarting Triton: `pooled` mounts every repository of
        # the policies, so no hosted lease ever changes the pod template (render/mounts.py).
        workload = Workload(name=name, image=image, resources=resources, desired=desired, labels=labels,
                            annotations={}, replicas=1, restricted=restricted, triton_args=triton_args,
                            pooled=True)
        objects.extend(render_workload(workload, settings, repos))
    return objects
