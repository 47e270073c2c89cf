"""The portal's rules for ``spec.addons``: dependencies and what the platform would ignore.

A ``valuesOverride`` under the wrong top-level key (e.g. ``ingressNginx:`` instead of
``ingress-nginx:``) is accepted by the platform and silently does nothing, so it is an error here.
"""

from __future__ import annotations

import re
from typing import Any

from cozystack import catalog, limits, values
from cozystack.rules import FieldError, is_dns_name, join, quote
from cozystack.specs import AddonSpec, ClusterSpec


def _json_compatible(value: Any) -> bool:
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, list):
        return all(_json_compatible(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_compatible(v) for k, v in value.items())
    return False


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _check_values_override(addon: catalog.Addon, given: AddonSpec) -> list[FieldError]:
    path = f"addons.{addon.key}.values_override"
    override = given.values_override
    if override is None or override == {}:
        return []
    if not addon.has_values_override:
        return [
            FieldError(path, f"{addon.label} takes no custom values; remove them.", "not_supported")
        ]
    if not isinstance(override, dict):
        return [
            FieldError(
                path,
                f"Custom values for {addon.label} must be a mapping of keys to values.",
                "invalid_values_override",
            )
        ]
    try:
        values.check_document(override)
    except values.ValuesError as exc:
        return [FieldError(path, f"Custom values for {addon.label}: {exc.message}", exc.code)]
    if not _json_compatible(override):
        return [
            FieldError(
                path,
                f"Custom values for {addon.label} may only hold text, numbers, true/false, lists "
                "and mappings.",
                "invalid_values_override",
            )
        ]
    roots = addon.value_roots
    allowed = join(f"“{r}:”" for r in roots)
    errors = []
    for key, value in override.items():
        if key in roots:
            if not isinstance(value, dict):
                errors.append(
                    FieldError(
                        path,
                        f"The key “{key}:” in the custom values for {addon.label} must hold a "
                        "mapping of settings.",
                        "invalid_values_override",
                    )
                )
            continue
        lookalike = next((r for r in roots if _squash(r) == _squash(key)), None)
        if lookalike:
            message = (
                f"Use “{lookalike}:” as the top-level key instead of “{key}:”; the platform "
                f"silently ignores “{key}:”."
            )
            code = "camelcase_values_root"
        else:
            message = (
                f"Top-level key “{key}:” is not used by {addon.label}; nest custom values under "
                f"{allowed} (anything else is silently ignored)."
            )
            code = "unknown_values_root"
        errors.append(FieldError(path, message, code))
    return errors


def _check_ingress(spec: ClusterSpec, given: AddonSpec) -> list[FieldError]:
    prefix = f"addons.{catalog.INGRESS_NGINX}"
    errors = []
    methods = [m.name for m in catalog.expose_methods()]
    if given.expose_method not in methods:
        errors.append(
            FieldError(
                f"{prefix}.expose_method",
                f"Expose method {quote(given.expose_method)} does not exist; choose "
                f"{' or '.join(methods)}.",
                "invalid_choice",
            )
        )
    if len(given.hosts) > limits.INGRESS_HOSTS:
        errors.append(
            FieldError(
                f"{prefix}.hosts",
                f"Ingress NGINX can route at most {limits.INGRESS_HOSTS} host names.",
                "too_many",
            )
        )
        return errors
    seen: set[str] = set()
    for i, host in enumerate(given.hosts):
        if not is_dns_name(host, allow_wildcard=True):
            errors.append(
                FieldError(
                    f"{prefix}.hosts[{i}]",
                    f"The host {quote(host)} is not a valid name; enter a lowercase DNS name such "
                    "as “app.example.com”.",
                    "invalid_host",
                )
            )
        elif host in seen:
            errors.append(
                FieldError(f"{prefix}.hosts[{i}]", f"The host {host} is listed twice.", "duplicate")
            )
        seen.add(host)
    if given.hosts and given.expose_method == "LoadBalancer":
        errors.append(
            FieldError(
                f"{prefix}.hosts",
                "Hosts are only used with the Proxied expose method; remove them or switch to "
                "Proxied.",
                "hosts_need_proxied",
            )
        )
    has_ingress_nodes = any(catalog.INGRESS_NGINX_ROLE in g.roles for g in spec.node_groups)
    if given.enabled and not has_ingress_nodes:
        errors.append(
            FieldError(
                f"{prefix}.enabled",
                "Ingress NGINX runs only on nodes with the ingress-nginx role; give at least one "
                "node group that role, or turn the add-on off.",
                "ingress_needs_nodes",
            )
        )
    return errors


def _check_offered(given: AddonSpec, offer: catalog.Catalogue) -> list[FieldError]:
    """An add-on the platform's release does not have may be listed off, never on."""
    addon = catalog.get_addon(given.key)
    if addon is None:
        return [
            FieldError(
                f"addons.{given.key}",
                f"Unknown add-on {quote(given.key)}; choose one of "
                f"{join(a.key for a in offer.addons)}.",
                "invalid_choice",
            )
        ]
    if offer.get_addon(given.key) is None and (given.enabled or given.values_override):
        return [
            FieldError(
                f"addons.{given.key}.enabled",
                f"{addon.label} is not offered by this platform release; turn it off.",
                "not_supported",
            )
        ]
    return []


def _check_requirements(spec: ClusterSpec, offer: catalog.Catalogue) -> list[FieldError]:
    """The chart refuses to render an add-on whose companion is off (hami, ouroboros)."""
    errors = []
    for addon in offer.addons:
        if not addon.requires or not spec.addon(addon.key).enabled:
            continue
        missing = [key for key in addon.requires if not spec.addon_enabled(key)]
        for key in missing:
            needed = catalog.get_addon(key)
            label = needed.label if needed else key
            errors.append(
                FieldError(
                    f"addons.{addon.key}.enabled",
                    f"{addon.label} needs {label}; enable {label} too, or turn "
                    f"{addon.label} off.",
                    "addon_requires",
                )
            )
    return errors


def check_addons(
    spec: ClusterSpec, monitoring_available: bool | None, offer: catalog.Catalogue
) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: set[str] = set()
    for given in spec.addons:
        refusals = _check_offered(given, offer)
        addon = catalog.get_addon(given.key)
        if refusals or addon is None or offer.get_addon(given.key) is None:
            errors += refusals
            continue
        if given.key in seen:
            errors.append(
                FieldError(
                    f"addons.{given.key}", f"The add-on {addon.label} is listed twice.", "duplicate"
                )
            )
        seen.add(given.key)
        errors += _check_values_override(addon, given)
    errors += _check_ingress(spec, spec.addon(catalog.INGRESS_NGINX))
    errors += _check_requirements(spec, offer)
    if any(g.gpus for g in spec.node_groups) and not spec.addon(catalog.GPU_OPERATOR).enabled:
        errors.append(
            FieldError(
                f"addons.{catalog.GPU_OPERATOR}.enabled",
                "A node group has GPUs, so the NVIDIA GPU operator must be enabled to install "
                "the drivers.",
                "gpu_operator_required",
            )
        )
    monitoring = spec.addon(catalog.MONITORING_AGENTS).enabled
    if monitoring and monitoring_available is False:
        errors.append(
            FieldError(
                f"addons.{catalog.MONITORING_AGENTS}.enabled",
                "Monitoring agents need a monitoring stack in this tenant or a parent tenant, "
                "and there is none; ask the platform team to enable monitoring, or turn the "
                "add-on off.",
                "monitoring_unavailable",
            )
        )
    vpa = spec.addon(catalog.VERTICAL_POD_AUTOSCALER)
    if vpa.values_override and not monitoring:
        errors.append(
            FieldError(
                f"addons.{catalog.VERTICAL_POD_AUTOSCALER}.values_override",
                "The Vertical Pod Autoscaler is only installed with monitoring agents; enable "
                "monitoring agents or remove these custom values.",
                "vpa_without_monitoring",
            )
        )
    return errors
