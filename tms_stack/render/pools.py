"""Objects of one pool: a Deployment + desired-models ConfigMap per placed instance."""

from __future__ import annotations

from typing import Any

from tms_stack.logic.resolve import EffectiveResources
from tms_stack.models import Lease, Pool
from tms_stack.models.desired import DesiredDocument, desired_lease
from tms_stack.models.lock import PoolPlacement
from tms_stack.models.policies import RepositoriesSpec
from tms_stack.models.pool import k8s_pool_name
from tms_stack.models.stack import StackSettings
from tms_stack.render.labels import POOL, common_labels
from tms_stack.render.workload import Workload, render_workload


def render_pool(pool: Pool, placement: PoolPlacement, leases: dict[str, Lease], image: str,
                resources: EffectiveResources, settings: StackSettings, repos: RepositoriesSpec,
                restricted: bool, triton_args: tuple[str, ...] = (),
                scheduling: dict[str, Any] | None = None) -> list[dict[str, Any]]:
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
        # With TLS, the certificate names exactly the Services that reach this instance (issue 23
        # #7): its hosted leases and their aliases, so no tenant holds a key for other Services.
        hosted = tuple(sorted({n for lease in inst.leases if lease in leases
                               for n in (lease, *leases[lease].spec.names)}))
        workload = Workload(name=name, image=image, resources=resources, desired=desired, labels=labels,
                            annotations={}, replicas=1, restricted=restricted, triton_args=triton_args,
                            pooled=True, scheduling=scheduling, service_names=hosted)
        objects.extend(render_workload(workload, settings, repos))
    return objects
