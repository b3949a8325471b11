"""Each example's ``--local`` demo, as its README tells users to run it: the workload
triggers the example's characteristic action, and everything it started is stopped."""

from __future__ import annotations

import pytest
from helpers import Process, event, free_port

from pycontroller.envtest import ControlPlane

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(("module", "extra", "shows"), [
    ("examples.restart_scaler", ["--cooldown", "2"], "scaled_up"),
    ("examples.traffic_tuner", [], "configmap_tuned"),
    ("examples.static_site", [], "site_torn_down"),
])
def test_local_demo_triggers_the_example(
    kube_envtest: ControlPlane, module: str, extra: list[str], shows: str,
) -> None:
    del kube_envtest  # only to skip where no control plane can be built
    proc = Process(["--local", "--duration", "90", *extra,
                    "--metrics-bind-address", f"127.0.0.1:{free_port()}",
                    "--health-probe-bind-address", f"127.0.0.1:{free_port()}"],
                   module=module)
    try:
        line = proc.wait_for(event(shows), timeout=120, what=shows)
        assert line["key"].startswith("demo/")
    finally:
        code = proc.stop()
    assert code == 0
    assert not [e for e in proc.lines if e.get("level") == "error"], proc.raw[-20:]
