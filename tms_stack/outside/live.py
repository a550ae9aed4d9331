"""The objects a stack renders, as the cluster holds them now (`tms drift`): one paged LIST per kind
and namespace, however many objects, instead of one GET per object (what `pulumi refresh` does
through the provider, ~0.1 CPU s each).

Through the official `kubernetes` client (kubeconfig or in-cluster, as `tms lease status`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from tms_stack.outside.neterrors import network_reason
from tms_stack.outside.status import ClusterUnreachable, _api_client

TIMEOUT_S = 60
PAGE = 500


def plural(kind: str) -> str:
    """The resource name of a kind we render (NetworkPolicy -> networkpolicies)."""
    lower = kind.lower()
    return lower[:-1] + "ies" if lower.endswith("y") else lower + "s"


def collection_path(api_version: str, kind: str, namespace: str) -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{namespace}/{plural(kind)}"


def list_objects(kinds: Iterable[tuple[str, str, str]], kubeconfig: str | None = None,
                 context: str | None = None) -> dict[tuple[str, str, str], list[dict[str, Any]] | None]:
    """(apiVersion, kind, namespace) -> every such object (None: the API does not serve the kind,
    e.g. the Prometheus operator's CRDs are not installed). ClusterUnreachable when the cluster
    cannot be reached or refuses to list."""
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError

    api = _api_client(kubeconfig, context)
    out: dict[tuple[str, str, str], list[dict[str, Any]] | None] = {}
    try:
        for api_version, kind, namespace in sorted(set(kinds)):
            path = collection_path(api_version, kind, namespace)
            items: list[dict[str, Any]] | None = []
            token = ""
            while True:
                query: list[tuple[str, Any]] = [("limit", PAGE)] + ([("continue", token)] if token else [])
                try:
                    # The raw body, parsed here: the client's own deserialisation differs between
                    # its versions and would build typed objects for thousands of items.
                    raw = api.call_api(path, "GET", query_params=query, auth_settings=["BearerToken"],
                                       header_params={"Accept": "application/json"},
                                       _return_http_data_only=True, _preload_content=False,
                                       _request_timeout=TIMEOUT_S)
                    page = json.loads(raw.data)
                except ApiException as exc:
                    if exc.status == 404:
                        items = None   # the kind is not served: every such object is missing
                        break
                    raise
                assert items is not None
                items += page.get("items") or []
                token = (page.get("metadata") or {}).get("continue") or ""
                if not token:
                    break
            out[(api_version, kind, namespace)] = items
    except ApiException as exc:
        raise ClusterUnreachable(f"the cluster refused to list: HTTP {exc.status} {exc.reason}") from None
    except (HTTPError, OSError, ValueError) as exc:
        raise ClusterUnreachable(f"cannot reach the cluster at {api.configuration.host} "
                                 f"({network_reason(exc)})") from None
    finally:
        api.close()
    return out
