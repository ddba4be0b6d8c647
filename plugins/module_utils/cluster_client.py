# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a cluster's Services with the ``kubernetes`` client, for ``allocate`` and ``pool_info``.

The only I/O beside :mod:`.cluster` (which is pure): one paged list of every
Service in every namespace, as the API's JSON. Errors name the ``kubeconfig``
option and say what failed (the file, the context, the connection, the
answer), never a traceback.
"""

from __future__ import annotations

import json
import os
import traceback
from typing import Any

from .errors import InputError

try:
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.client.rest import ApiException
    from kubernetes.config.config_exception import ConfigException
except ImportError:
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None

PAGE = 500  # Services per list call: a big cluster answers in pages, as kubectl reads it
TIMEOUT_S = 30


def read_services(kubeconfig: str | dict[str, Any] | None, context: str | None = None) -> list[dict[str, Any]]:
    """Every Service of the cluster, as the API's JSON (dicts); none without a kubeconfig.

    ``kubeconfig``: a path, or the kubeconfig's content as a mapping. Errors show the path, never the content.
    """
    if not kubeconfig:
        return []
    shown = kubeconfig if isinstance(kubeconfig, str) else "(the kubeconfig given as a mapping)"
    if not isinstance(kubeconfig, (str, dict)):
        raise InputError("kubeconfig", type(kubeconfig).__name__, "must be a path or a kubeconfig mapping")
    try:
        if isinstance(kubeconfig, dict):
            api = k8s_config.new_client_from_config_dict(kubeconfig, context=context)
        else:
            api = k8s_config.new_client_from_config(config_file=os.path.expanduser(kubeconfig), context=context)
    except (ConfigException, OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        where = f" (context {context!r})" if context else ""
        raise InputError("kubeconfig", shown, f"cannot be used{where}: {exc}") from None
    host = api.configuration.host
    items: list[dict[str, Any]] = []
    token: str | None = None
    try:
        with api:
            core = k8s_client.CoreV1Api(api)
            for _page in range(100_000):  # bounded: 50 million Services
                kwargs: dict[str, Any] = {"limit": PAGE, "_preload_content": False, "_request_timeout": TIMEOUT_S}
                if token:
                    kwargs["_continue"] = token
                raw: Any = core.list_service_for_all_namespaces(**kwargs)  # unparsed: an HTTP response
                answer = json.loads(raw.data)
                items.extend(answer.get("items") or ())
                token = (answer.get("metadata") or {}).get("continue")
                if not token:
                    break
    except ApiException as exc:
        raise InputError("kubeconfig", shown,
                         f"the cluster at {host} refused to list Services: {exc.status} {exc.reason}") from None
    except Exception as exc:
        raise InputError("kubeconfig", shown, f"cannot reach the cluster at {host}: {exc}") from None
    return items
