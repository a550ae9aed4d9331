"""Stack settings from `Pulumi.<stack>.yaml` (keys `tms-stack:<name>`), read by the Pulumi
program and by `tms render` alike, so both produce the same objects."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from tms_stack.diagnostics import Diagnostic, TmsError
from tms_stack.loader import validation_diagnostics
from tms_stack.models.common import DnsLabel, Duration, Strict
from tms_stack.yamlio import Document, parse_file

CONFIG_PREFIX = "tms-stack:"


class PrometheusSettings(Strict):
    # Prometheus selects PodMonitors and PrometheusRules by these labels (TMS troubleshooting).
    podMonitorLabels: dict[str, str] = Field(default_factory=lambda: {"release": "prometheus"})
    ruleLabels: dict[str, str] = Field(default_factory=lambda: {"release": "prometheus"})
    scrapeInterval: Duration = "15s"
    # Where Prometheus runs: the rendered NetworkPolicies let this namespace (and only it) reach the
    # metrics and agent ports (render/access.py).
    namespace: DnsLabel = "monitoring"


KEY_SIZES = {"RSA": (2048, 4096, 8192), "ECDSA": (256, 384, 521)}


class TlsSettings(Strict):
    """cert-manager issuer for Triton's TLS certificates (TMS `server.security.tls.certManager`).

    Present means enabled (TMS `tls.enabled: true`). Rendered as a Certificate per Triton
    Deployment and Triton's gRPC TLS flags (tms_stack/render/tritonopts.py)."""

    issuerName: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")]
    issuerKind: Annotated[str, Field(pattern=r"^[A-Z][A-Za-z0-9]{0,62}$")] = "ClusterIssuer"
    issuerGroup: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")] = "cert-manager.io"
    privateKeyAlgorithm: Literal["RSA", "ECDSA", "Ed25519"] = "RSA"
    privateKeySize: int = 4096  # ignored for Ed25519, as in TMS
    # Triton 2.51 has no TLS for HTTP: expose its plaintext HTTP port on the Services anyway?
    plaintextHttp: bool = False

    @model_validator(mode="after")
    def _size(self) -> TlsSettings:
        sizes = KEY_SIZES.get(self.privateKeyAlgorithm)
        if sizes and self.privateKeySize not in sizes:
            raise ValueError(f"privateKeySize {self.privateKeySize} is not a {self.privateKeyAlgorithm} key size: "
                             f"use one of {', '.join(map(str, sizes))} (TMS rule)")
        return self


class ScaleToZero(Strict):
    """HPA `minReplicas: 0` (TMS `autoscaling.replicas.limits.minimum: 0`). Kubernetes allows it
    only with the HPAScaleToZero feature gate and at least one External or Object metric, since
    a Deployment with no pods has no pod metrics to wake it: the admin names an External metric
    (e.g. requests waiting at a gateway) selected by `tms-stack.dev/lease=<lease>`."""

    externalMetric: Annotated[str, Field(pattern=r"^[A-Za-z_:][A-Za-z0-9_:]{0,199}$")]
    averageValue: Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?m?$")] = "1"


class TelemetrySettings(Strict):
    """Where `tms prune` learns whether an auto-renew lease served requests. `source` is required
    for auto-renew (check refuses it otherwise); the URL may instead come from the prune job's
    environment (TMS_PROMETHEUS_URL / TMS_TRITON_URL_TEMPLATE), which wins when both are set."""

    source: Literal["prometheus", "triton"]
    prometheusUrl: str | None = None
    tritonUrlTemplate: str | None = None


class StackSettings(Strict):
    namespace: DnsLabel = "default"
    partOf: str = "tms-stack"
    agentImage: str = "ghcr.io/tms-stack/agent:0.1.0"
    imagePullSecrets: list[str] = Field(default_factory=list)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    customLabels: dict[str, str] = Field(default_factory=dict)
    customAnnotations: dict[str, str] = Field(default_factory=dict)
    tls: TlsSettings | None = None
    scaleToZero: ScaleToZero | None = None
    telemetry: TelemetrySettings | None = None
    # How long Triton may take to load its models before Kubernetes restarts it (TMS 1.1 fix).
    startupTimeout: Duration = "1h"
    # Pulumi waits this long for a Deployment to become ready (pulumi.com/timeoutSeconds).
    deployTimeout: Duration = "30m"
    # Test-only: no kubelet in the test cluster, so Pulumi must not wait for pods. Never in production.
    testSkipAwait: bool = False


def stack_file(root: Path, stack: str | None) -> Path | None:
    """`Pulumi.<stack>.yaml`; without a name, the only stack file there is (or none)."""
    if stack:
        path = root / f"Pulumi.{stack}.yaml"
        if not path.exists():
            raise TmsError(f"{path.name}: no such stack file (stacks here: {', '.join(_stacks(root)) or 'none'})")
        return path
    stacks = _stacks(root)
    if len(stacks) == 1:
        return root / f"Pulumi.{stacks[0]}.yaml"
    if len(stacks) > 1:
        raise TmsError(f"several stacks ({', '.join(stacks)}): choose one with --stack")
    return None


def _stacks(root: Path) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def load_stack_settings(root: Path, stack: str | None = None) -> StackSettings:
    path = stack_file(root, stack)
    if path is None:
        return StackSettings()
    display = path.name
    doc = parse_file(path, display)
    return settings_from_document(doc)


def settings_from_document(doc: Document) -> StackSettings:
    config = (doc.data or {}).get("config") or {} if isinstance(doc.data, dict) else {}
    if not isinstance(config, dict):
        raise TmsError(f"{doc.file}: `config` must be a mapping")
    ours = {k[len(CONFIG_PREFIX):]: _plain(v) for k, v in config.items()
            if isinstance(k, str) and k.startswith(CONFIG_PREFIX)}
    try:
        return StackSettings.model_validate(ours)
    except ValidationError as exc:
        # Re-key positions: the document path is ("config", "tms-stack:<key>", ...).
        shifted = Document(doc.file, {"config": config},
                           {k: v for k, v in doc.values.items()}, {k: v for k, v in doc.keys.items()})
        diags: list[Diagnostic] = []
        for d in validation_diagnostics(doc.file, _prefixed(shifted), StackSettings, exc):
            diags.append(d)
        raise TmsError("invalid stack settings:\n" + "\n".join(
            f"{d.location()}: {d.message}" for d in diags), diags) from None


def _plain(value: Any) -> Any:
    """Pulumi may store a config value under `value:`; accept both shapes."""
    return value["value"] if isinstance(value, dict) and set(value) == {"value"} else value


def configmaps_mutable(doc: Document) -> bool:
    """Whether the stack file tells the Kubernetes provider to update ConfigMaps in place
    (`kubernetes:enableConfigMapMutable: "true"`); without it every lease edit deletes and
    recreates the lease's desired-models ConfigMap (docs/rendering.md, "Stack settings")."""
    config = doc.data.get("config") if isinstance(doc.data, dict) else None
    value = config.get("kubernetes:enableConfigMapMutable") if isinstance(config, dict) else None
    return str(_plain(value)).lower() == "true"


def _prefixed(doc: Document) -> Document:
    """A view of the document where `config.tms-stack:key` reads as top-level `key`."""
    values: dict[tuple[Any, ...], Any] = {}
    keys: dict[tuple[Any, ...], Any] = {}
    for table, out in ((doc.values, values), (doc.keys, keys)):
        for path, pos in table.items():
            if len(path) >= 2 and path[0] == "config" and isinstance(path[1], str) and path[1].startswith(CONFIG_PREFIX):
                out[(path[1][len(CONFIG_PREFIX):],) + tuple(path[2:])] = pos
    data = {k[len(CONFIG_PREFIX):]: v for k, v in doc.data["config"].items()
            if isinstance(k, str) and k.startswith(CONFIG_PREFIX)}
    return Document(doc.file, data, values, keys)


def stack_rules(repo: Any, now: Any = None) -> list[Diagnostic]:
    """`tms check` validates every stack file: a typo such as `tms-stack:namspace` is an error at its
    line (it used to pass check and silently fall back to the default). Rule `stacksettings.schema`;
    a stack file that does not parse is reported as `yaml` (unreadable input, exit 2)."""
    from tms_stack.diagnostics import UnreadableInput

    found: list[Diagnostic] = []
    for name in _stacks(repo.root):
        path = repo.root / f"Pulumi.{name}.yaml"
        if path.is_symlink() or not path.is_file():
            found.append(Diagnostic(path.name, 0, 0, "files.layout",
                                    f"{path.name} is {'a symbolic link' if path.is_symlink() else 'not a file'}: "
                                    "stack files must be regular files (nothing was read)"))
            continue
        try:
            settings_from_document(parse_file(path, path.name))
        except UnreadableInput as exc:
            repo.unreadable.extend(exc.diagnostics or [Diagnostic(path.name, 0, 0, "yaml", str(exc))])
        except TmsError as exc:
            found.extend(exc.diagnostics or [Diagnostic(path.name, 0, 0, "stacksettings.schema", str(exc))])
    return found
