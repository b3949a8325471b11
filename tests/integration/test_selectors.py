"""The client-side label-selector matcher agrees with the apiserver, selector by selector."""

from __future__ import annotations

import pytest

from pycontroller import CONFIGMAPS, Client
from pycontroller._util._selectors import label_selector_matcher

pytestmark = pytest.mark.integration

LABELS = {
    "none": {},
    "web": {"app": "web"},
    "web-db": {"app": "web", "tier": "db"},
    "api-5": {"app": "api", "gen": "5"},
    "api-x": {"app": "api", "gen": "x"},
    "prefixed": {"example.com/team": "a", "gen": "2"},
}
SELECTORS = [
    "app", "!app", "app=web", "app==web", "app!=web", "tier!=db", "app in (web, api)",
    "app notin (web)", "gen>3", "gen<3", "gen>0", "app=web,tier", "app=web,!tier",
    "example.com/team=a", "app=", "app!=", "",
]


def test_the_matcher_selects_what_the_apiserver_selects(
        kube_client: Client, kube_namespace: str) -> None:
    for name, labels in LABELS.items():
        kube_client.create(CONFIGMAPS, {"metadata": {"name": name, "labels": labels}},
                           kube_namespace)
    for selector in SELECTORS:
        served = {o["metadata"]["name"] for o in kube_client.list_all(
            CONFIGMAPS, kube_namespace, label_selector=selector or None)}
        matches = label_selector_matcher(selector)
        local = {name for name, labels in LABELS.items() if matches(labels)}
        assert local == served, selector


@pytest.mark.parametrize("selector", ["gen>-3", "app in (a", "!app=web", "app=web,", "a b"])
def test_selectors_the_apiserver_refuses_are_refused_here_too(
        kube_client: Client, kube_namespace: str, selector: str) -> None:
    from pycontroller._util._selectors import check_label_selector
    from pycontroller.errors import BadRequestError

    with pytest.raises(BadRequestError):
        kube_client.list(CONFIGMAPS, kube_namespace, label_selector=selector)
    with pytest.raises(ValueError, match=r"label selector|ends with"):
        check_label_selector(selector)
